"""Reliability under load: the cloud fault matrix, then many concurrent calls with faults.

    python benchmarks/bench_reliability.py [--requests 1000] [--concurrency 16] [--seed 0]

Everything runs on 127.0.0.1: the local tier and the cloud tier are the real
``ChatOpenAI`` client talking to two scripted OpenAI-compatible servers (the local one
answers with log-probs, confident or not at random; the cloud one fails at random: HTTP
500/429/401, timeouts, dropped connections, malformed JSON, streams dropped midway or
ended early). The calls mix invoke, stream, ainvoke and astream.

It prints:
1. the fault matrix: each fault in each call style, and what the caller got;
2. the load run: answers, typed errors (each carrying its decision), lost requests
   (anything else: must be 0), answers that belong to another request (must be 0),
   whether the decisions add up in a ``RoutingStatsHandler``, and p50/p95 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import BaseMessage  # noqa: E402

from langchain_hybrid import ChatHybrid, RoutingStatsHandler  # noqa: E402
from langchain_hybrid.errors import BothTiersFailedError, RoutedCallError  # noqa: E402
from tests.support.fault_matrix import FAULTS, STYLES, outcome_of  # noqa: E402
from tests.support.fixtures import make_chat_openai  # noqa: E402
from tests.support.openai_fake import Fault, ScriptedReply, last_user_text  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402

CLIENT_TIMEOUT_S = 0.5
#: Cloud faults of the load run with their weights (no fault: the rest).
LOAD_FAULTS: list[tuple[Fault, float]] = [
    (Fault(status=500), 0.06),
    (Fault(status=429, retry_after_s=None), 0.04),
    (Fault(status=401), 0.01),
    (Fault(delay_s=CLIENT_TIMEOUT_S * 2), 0.02),
    (Fault(drop=True), 0.04),
    (Fault(malformed=True), 0.02),
    (Fault(drop_after_chunks=5), 0.06),
    (Fault(end_after_chunks=5), 0.03),
]
_ID = re.compile(r"request-(\d+)")


def fault_matrix() -> None:
    print("1. Cloud fault matrix (fault x call style -> what the caller gets)\n")
    width = max(len(f) for f in FAULTS)
    print(f"| {'fault':<{width}} | " + " | ".join(STYLES) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(s) + 2) for s in STYLES) + "|")

    async def rows(server: FakeOpenAIServer) -> None:
        for fault in FAULTS:
            outcomes = [await outcome_of(server, fault, style) for style in STYLES]
            print(f"| {fault:<{width}} | " + " | ".join(outcomes) + " |")

    with FakeOpenAIServer() as server:
        asyncio.run(rows(server))
    print()


def _request_id(body: dict[str, Any]) -> int:
    match = _ID.search(last_user_text(body))
    return int(match.group(1)) if match else -1


def _local_reply(body: dict[str, Any]) -> ScriptedReply:
    rid = _request_id(body)
    confident = random.Random(f"local-{rid}").random() < 0.5
    return ScriptedReply(
        f"Local answer to request-{rid}, which is short.",
        logprobs=-0.05 if confident else -2.0,
    )


def _cloud_reply(seed: int) -> Any:
    def reply(body: dict[str, Any]) -> ScriptedReply:
        rid = _request_id(body)
        rng = random.Random(seed * 1_000_003 + rid)
        fault = None
        roll, edge = rng.random(), 0.0
        for candidate, weight in LOAD_FAULTS:
            edge += weight
            if roll < edge:
                fault = candidate
                break
        return ScriptedReply(
            f"Cloud answer to request-{rid}, with a few more words to stream.",
            logprobs=-0.01,
            fault=fault,
        )

    return reply


async def _one(llm: ChatHybrid, rid: int, style: str, stats: RoutingStatsHandler) -> tuple:
    question = f"Please answer request-{rid}."
    config: Any = {"callbacks": [stats]}
    started = time.perf_counter()
    try:
        if style == "invoke":
            message: BaseMessage = await asyncio.to_thread(llm.invoke, question, config)
        elif style == "ainvoke":
            message = await llm.ainvoke(question, config)
        elif style == "stream":
            chunks = await asyncio.to_thread(lambda: list(llm.stream(question, config)))
            message = _sum(chunks)
        else:
            message = _sum([c async for c in llm.astream(question, config)])
    except (RoutedCallError, BothTiersFailedError) as exc:
        elapsed = time.perf_counter() - started
        kind = "typed error" if exc.decision is not None else "lost"
        return kind, type(exc).__name__, elapsed, True
    except Exception as exc:  # noqa: BLE001 - anything else is a lost request
        return "lost", f"{type(exc).__name__}: {exc}", time.perf_counter() - started, False
    elapsed = time.perf_counter() - started
    routing = message.response_metadata.get("routing")
    if not routing:
        return "lost", "no decision", elapsed, False
    mine = f"request-{rid}," in str(message.content)
    return "answer", f"{routing['tier']}:{routing['reason']}", elapsed, mine


def _sum(chunks: list[Any]) -> Any:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


async def _load(requests: int, concurrency: int, seed: int) -> None:
    background: list[str] = []  # errors nobody awaited: must stay empty
    asyncio.get_running_loop().set_exception_handler(
        lambda _, context: background.append(str(context.get("exception") or context))
    )
    sys.unraisablehook = lambda unraisable: background.append(repr(unraisable.exc_value))
    with (
        FakeOpenAIServer(responder=_local_reply) as local_server,
        FakeOpenAIServer(responder=_cloud_reply(seed)) as cloud_server,
    ):
        llm = ChatHybrid(
            local=make_chat_openai(local_server, model="local-small", logprobs=True),
            cloud=make_chat_openai(cloud_server, timeout=CLIENT_TIMEOUT_S, stream_usage=True),
            threshold=-0.6,
        )
        stats = RoutingStatsHandler()
        rng = random.Random(seed)
        jobs = [(rid, rng.choice(STYLES)) for rid in range(requests)]
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        results: list[tuple] = []

        async def worker() -> None:
            while not queue.empty():
                rid, style = queue.get_nowait()
                results.append((style, *await _one(llm, rid, style, stats)))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started

    kinds = Counter(r[1] for r in results)
    mixed = sum(1 for r in results if r[1] == "answer" and not r[4])
    latencies = sorted(r[3] for r in results)
    snap = stats.snapshot()
    print(f"2. Load: {requests} requests at concurrency {concurrency}, seed {seed}\n")
    print(
        f"answers {kinds['answer']} | typed errors with a decision {kinds['typed error']}"
        f" | lost {kinds['lost']} | answers of another request {mixed}"
    )
    print(f"by style: {dict(Counter(r[0] for r in results))}")
    print(f"outcomes: {dict(Counter(r[2] for r in results).most_common())}")
    adds_up = snap.calls == requests and snap.failed == kinds["typed error"]
    print(
        f"stats handler: calls {snap.calls}, failed {snap.failed}, degraded {snap.degraded},"
        f" escalated {snap.escalated} -> adds up: {adds_up}"
    )
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"latency p50 {p50 * 1000:.0f} ms | p95 {p95 * 1000:.0f} ms | wall {wall:.1f} s")
    print(f"errors left in the background (loop handler, unraisable): {len(background)}")
    lost = [r for r in results if r[1] == "lost"]
    for row in lost[:10]:
        print("LOST:", row)
    for text in background[:10]:
        print("BACKGROUND:", text)
    if lost or mixed or not adds_up or background:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fault_matrix()
    asyncio.run(_load(args.requests, args.concurrency, args.seed))


if __name__ == "__main__":
    main()
