"""The OpenAI-compatible server under load, on 127.0.0.1 only.

    python benchmarks/bench_server.py [--requests 1000] [--concurrency 16] [--seed 0]
        [--batch-requests 32] [--max-tokens 16] [--rounds 1] [--skip-real]

1. Load and correctness: ``--requests`` chat completions at ``--concurrency`` against the
   server (uvicorn in this process), a third of them streamed. The served model is a
   ChatHybrid whose local tier is a fast fake (answers in microseconds, confident or not
   at random: the point is the server and the route, not the model) and whose cloud tier
   is the fake OpenAI server with injected faults (HTTP 500 and 429, dropped
   connections, malformed JSON, streams dropped midway, timeouts). Every response is
   validated with the ``openai`` types (``ChatCompletion``, ``ChatCompletionChunk``) and
   must answer its own request; an error must be OpenAI's error format. Lost requests
   (anything else) must be 0. Prints p50/p95/p99 latency and throughput.
2. Batching: the same load of ``--batch-requests`` requests at ``--concurrency`` against
   the server running the real embedded model (``ChatTransformers``, ``--max-tokens``
   per answer), once with the engine batching concurrent generations and once with the
   engine's batch size forced to 1 (one generation at a time), side by side in one run.
   Prints the throughput of each and the ratio (goal >= 3x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from langchain_core.messages import BaseMessage  # noqa: E402
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402

from langchain_hybrid import ChatHybrid, RouteDecision  # noqa: E402
from langchain_hybrid.server import ServerSettings, create_app, serve_in_thread  # noqa: E402
from tests.support.fake_chat import FakeLocalChatModel  # noqa: E402
from tests.support.fixtures import make_chat_openai  # noqa: E402
from tests.support.openai_fake import Fault, ScriptedReply, last_user_text  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402

MODEL = "langchain-hybrid"
CLOUD_TIMEOUT_S = 0.5
#: Cloud faults with their weights (no fault: the rest).
CLOUD_FAULTS: list[tuple[Fault, float]] = [
    (Fault(status=500), 0.06),
    (Fault(status=429, retry_after_s=None), 0.04),
    (Fault(drop=True), 0.04),
    (Fault(malformed=True), 0.02),
    (Fault(drop_after_chunks=3), 0.05),
    (Fault(delay_s=CLOUD_TIMEOUT_S * 2), 0.02),
]
_ID = re.compile(r"request-(\d+)")


class EchoLocal(FakeLocalChatModel):
    """Answers 'Local answer to request-N.'; unsure (escalates) for about 40% of N."""

    seed: int = 0

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, float]:
        n = int(_ID.findall(messages[-1].text)[0])
        unsure = random.Random(self.seed * 100_003 + n).random() < 0.4
        return f"Local answer to request-{n}.", (-2.5 if unsure else -0.05)


def cloud_responder(rng: random.Random) -> Any:
    def respond(body: dict[str, Any]) -> ScriptedReply:
        n = _ID.findall(last_user_text(body))[0]
        reply = ScriptedReply(f"Cloud answer to request-{n}.", logprobs=-0.01)
        roll = rng.random()
        for fault, weight in CLOUD_FAULTS:
            if roll < weight:
                return ScriptedReply(reply.content, logprobs=-0.01, fault=fault)
            roll -= weight
        return reply

    return respond


def _body(n: int, stream: bool, max_tokens: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Please answer request-{n}."}],
        "stream": stream,
    }
    if max_tokens:
        body["max_tokens"] = max_tokens
    return body


async def _one(client: httpx.AsyncClient, n: int, stream: bool) -> tuple[str, float, str]:
    """Send request n; return (outcome, latency, detail). Outcomes: ok:<tier>, error:<status>."""
    started = time.perf_counter()
    try:
        if not stream:
            r = await client.post("/v1/chat/completions", json=_body(n, False))
            latency = time.perf_counter() - started
            if r.status_code != 200:
                return _error(r.status_code, r.json()), latency, ""
            answer = ChatCompletion.model_validate(r.json())
            text = answer.choices[0].message.content or ""
            decision = RouteDecision.from_dict(answer.model_extra["hybrid"])  # type: ignore[index]
            if r.headers.get("x-hybrid-tier") != decision.tier:
                return "lost", latency, "headers disagree with the decision"
        else:
            text, decision_dict = "", None
            async with client.stream("POST", "/v1/chat/completions", json=_body(n, True)) as r:
                if r.status_code != 200:
                    payload = json.loads(await r.aread())
                    return _error(r.status_code, payload), time.perf_counter() - started, ""
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    data = json.loads(line[6:])
                    if "error" in data:
                        return _error(200, data), time.perf_counter() - started, "in stream"
                    piece = ChatCompletionChunk.model_validate(data)
                    if piece.choices:
                        text += piece.choices[0].delta.content or ""
                    decision_dict = (piece.model_extra or {}).get("hybrid", decision_dict)
            latency = time.perf_counter() - started
            if decision_dict is None:
                return "lost", latency, "stream without a decision"
            decision = RouteDecision.from_dict(decision_dict)
    except Exception as e:  # noqa: BLE001 - a request the server lost
        return "lost", time.perf_counter() - started, f"{type(e).__name__}: {e}"
    if f"request-{n}." not in text:
        return "lost", latency, f"answer of another request: {text!r}"
    outcome = f"ok:{decision.tier}" + (":degraded" if decision.degraded else "")
    return outcome, latency, decision.reason


def _error(status: int, payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or not {"message", "type", "param", "code"} <= set(error):
        return "lost"
    return f"error:{status}:{error['type']}"


async def _load(base_url: str, requests: int, concurrency: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    streamed = [rng.random() < 1 / 3 for _ in range(requests)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    results: list[Any] = [None] * requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                results[n] = await _one(client, n, streamed[n])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def load_run(args: argparse.Namespace) -> None:
    print(
        f"1. Load: {args.requests} requests at concurrency {args.concurrency}, a third "
        "streamed; local tier: a fast fake (40% unsure), cloud tier: the fake OpenAI "
        "server with injected faults\n"
    )
    with FakeOpenAIServer(responder=cloud_responder(random.Random(args.seed))) as cloud:
        llm = ChatHybrid(
            local=EchoLocal(seed=args.seed),
            cloud=make_chat_openai(
                cloud, stream_usage=True, timeout=CLOUD_TIMEOUT_S, max_retries=0
            ),
            threshold=-0.6,
            circuit_breaker=None,  # every request meets the faults; none skips the cloud
        )
        settings = ServerSettings(max_concurrency=args.concurrency, max_queue=args.concurrency)
        app = create_app(llm, settings)
        with serve_in_thread(app) as server:
            started = time.perf_counter()
            results = asyncio.run(_load(server.url, args.requests, args.concurrency, args.seed))
            elapsed = time.perf_counter() - started
            metrics = httpx.get(f"{server.url}/metrics").text
    outcomes = Counter(r[0] for r in results)
    latencies = [r[1] for r in results]
    lost = [r for r in results if r[0] == "lost"]
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print("| outcome | requests |")
    print("| --- | ---: |")
    for outcome, count in sorted(outcomes.items()):
        print(f"| {outcome} | {count} |")
    reasons = Counter(r[2] for r in results if r[0].startswith("ok"))
    print(f"\nreasons: {dict(sorted(reasons.items()))}")
    print(f"lost requests: {len(lost)} (must be 0)")
    for entry in lost[:5]:
        print(f"  {entry}")
    print(
        f"latency p50 {q[49] * 1000:.1f} ms | p95 {q[94] * 1000:.1f} ms | "
        f"p99 {q[98] * 1000:.1f} ms | throughput {len(results) / elapsed:.1f} requests/s "
        f"({elapsed:.1f} s)"
    )
    served = re.search(r"langchain_hybrid_tier_requests_total\{tier=\"cloud\"\} (\S+)", metrics)
    print(f"/metrics: cloud-tier requests {served.group(1) if served else '?'}\n")


def batching_run(args: argparse.Namespace) -> None:
    from langchain_hybrid import ChatTransformers

    print(
        f"2. Batching: {args.batch_requests} requests at concurrency {args.concurrency} "
        f"against the real embedded model (max_tokens {args.max_tokens}), engine batching "
        "on vs the engine's batch size forced to 1, side by side\n"
    )
    local = ChatTransformers(max_tokens=args.max_tokens)
    engine = local._engine
    default_batch = engine.max_batch_size
    settings = ServerSettings(model_name=MODEL, max_concurrency=args.concurrency)

    async def run_load(base_url: str) -> tuple[float, int]:
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
            sem = asyncio.Semaphore(args.concurrency)

            async def one(n: int) -> int:
                async with sem:
                    body = _body(n, False, args.max_tokens)
                    r = await client.post("/v1/chat/completions", json=body)
                    r.raise_for_status()
                    usage = ChatCompletion.model_validate(r.json()).usage
                    return usage.completion_tokens if usage else 0

            started = time.perf_counter()
            tokens = await asyncio.gather(*(one(n) for n in range(args.batch_requests)))
            return time.perf_counter() - started, sum(tokens)

    rows: dict[str, list[tuple[float, int]]] = {"batched": [], "one at a time": []}
    with serve_in_thread(create_app(local, settings)) as server:
        asyncio.run(run_load(server.url))  # warm-up
        for _ in range(args.rounds):
            for name, size in (("one at a time", 1), ("batched", default_batch)):
                engine.max_batch_size = size
                rows[name].append(asyncio.run(run_load(server.url)))
        engine.max_batch_size = default_batch
    print("| engine | requests/s | tokens/s | seconds |")
    print("| --- | ---: | ---: | ---: |")
    throughput = {}
    for name, runs in rows.items():
        seconds = sum(r[0] for r in runs)
        tokens = sum(r[1] for r in runs)
        throughput[name] = args.batch_requests * len(runs) / seconds
        print(f"| {name} | {throughput[name]:.2f} | {tokens / seconds:.1f} | {seconds:.1f} |")
    ratio = throughput["batched"] / throughput["one at a time"]
    print(f"\nbatched / one at a time: {ratio:.1f}x (goal >= 3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-real", action="store_true", help="skip the real-model run")
    parser.add_argument("--skip-load", action="store_true", help="skip the load run")
    args = parser.parse_args()
    if not args.skip_load:
        load_run(args)
    if not args.skip_real:
        batching_run(args)


if __name__ == "__main__":
    main()
