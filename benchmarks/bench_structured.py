"""Local structured output with and without constrained decoding, measured side by side.

    python benchmarks/bench_structured.py [--limit N] [--max-tokens 64] [--batch 10]

On the embedded model (SmolLM2-135M-Instruct) and the 100 prompts of
``benchmarks/data/structured_prompts.jsonl`` (made for this benchmark: 50 extractions
from short texts into 5 pydantic schemas through ``with_structured_output(method=
"json_schema")``, 45 required or named tool calls over 4 tool sets through
``bind_tools``, 5 ``response_format={"type": "json_object"}`` answers):

1. Validity rate: an extraction is valid when it parses into its schema; a tool call
   when the reply holds at least one call, no invalid call, every call names an
   offered tool (the named one, when named) and its arguments validate; a JSON-mode
   answer when it is a JSON object. With a 95% Wilson interval.
2. Decode speed: tokens per second of long answers (a JSON object with one long string
   field, so both modes run to ``max_tokens`` on the same prompts) with constrained
   decoding on and off, one row and a batch of 8, alternating on/off over several
   rounds so both see the same machine load; the best round of each (goal >= 0.9x).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_hybrid import ChatTransformers

DATA = Path(__file__).parent / "data" / "structured_prompts.jsonl"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Person(_Strict):
    """A person mentioned in a text."""

    name: str = Field(description="full name")
    age: int
    city: str


class Product(_Strict):
    """A product on offer."""

    name: str
    price: float
    currency: str = Field(description="ISO 4217 code, e.g. EUR")


class Event(_Strict):
    """An event announcement."""

    title: str
    city: str
    date: str = Field(description="YYYY-MM-DD")


class Book(_Strict):
    """A book."""

    title: str
    author: str
    year: int


class Review(_Strict):
    """The sentiment of a review."""

    sentiment: Literal["positive", "neutral", "negative"]
    score: int = Field(ge=1, le=5)


class GetWeather(_Strict):
    """Get the current weather of a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"] = "celsius"


class Calculator(_Strict):
    """Add two numbers."""

    a: float
    b: float


class WebSearch(_Strict):
    """Search the web."""

    query: str


class SendEmail(_Strict):
    """Send an email."""

    to: str = Field(description="recipient address")
    subject: str
    body: str


class CreateEvent(_Strict):
    """Create a calendar event."""

    title: str
    date: str


class BookFlight(_Strict):
    """Book a flight."""

    origin: str
    destination: str
    date: str = Field(description="YYYY-MM-DD")


class ConvertCurrency(_Strict):
    """Convert an amount of money between currencies."""

    amount: float
    source: str = Field(description="ISO 4217 code")
    target: str = Field(description="ISO 4217 code")


SCHEMAS: dict[str, type[BaseModel]] = {
    c.__name__: c
    for c in (
        Person,
        Product,
        Event,
        Book,
        Review,
        GetWeather,
        Calculator,
        WebSearch,
        SendEmail,
        CreateEvent,
        BookFlight,
        ConvertCurrency,
    )
}


def runnable(llm: ChatTransformers, item: dict[str, Any]) -> Runnable[Any, Any]:
    if item["kind"] == "extract":
        return llm.with_structured_output(SCHEMAS[item["schema"]], include_raw=True)
    if item["kind"] == "tool":
        tools = [SCHEMAS[name] for name in item["tools"]]
        return llm.bind_tools(tools, tool_choice=item["tool_choice"])
    return llm.bind(response_format={"type": "json_object"})


def valid(item: dict[str, Any], out: Any) -> bool:
    if item["kind"] == "extract":
        return out["parsing_error"] is None and isinstance(out["parsed"], BaseModel)
    assert isinstance(out, AIMessage)
    if item["kind"] == "json_mode":
        try:
            return isinstance(json.loads(out.text), dict)
        except json.JSONDecodeError:
            return False
    if not out.tool_calls or out.invalid_tool_calls:
        return False
    allowed = item["tools"] if item["tool_choice"] == "any" else [item["tool_choice"]]
    for call in out.tool_calls:
        if call["name"] not in allowed:
            return False
        try:
            SCHEMAS[call["name"]].model_validate(call["args"])
        except ValidationError:
            return False
    return True


def raw_message(out: Any) -> AIMessage:
    message = out["raw"] if isinstance(out, dict) else out
    assert isinstance(message, AIMessage)
    return message


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_batch(llm: ChatTransformers, items: list[dict[str, Any]]) -> tuple[list[Any], float, int]:
    """Run ``items`` as one engine batch; return outputs, seconds and generated tokens."""
    from langchain_hybrid.chat_models.transformers import _BATCH_GROUP, _GROUP_IDS

    token = _BATCH_GROUP.set((next(_GROUP_IDS), len(items)))
    try:
        from concurrent.futures import ThreadPoolExecutor
        from contextvars import copy_context

        start = time.perf_counter()
        with ThreadPoolExecutor(len(items)) as pool:
            futures = [
                pool.submit(copy_context().run, runnable(llm, item).invoke, item["text"])
                for item in items
            ]
            outs = [f.result() for f in futures]
        seconds = time.perf_counter() - start
    finally:
        _BATCH_GROUP.reset(token)
    tokens = sum((raw_message(o).usage_metadata or {}).get("output_tokens", 0) for o in outs)
    return outs, seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="prompts, evenly spread")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-only", action="store_true", help="only the decode speed")
    args = parser.parse_args()
    items = [json.loads(line) for line in DATA.read_text().splitlines()]
    step = max(1, math.ceil(len(items) / args.limit))
    items = items[::step]  # an evenly spread sample of every kind when limited
    on = ChatTransformers(max_tokens=args.max_tokens, constrained_decoding=True)
    off = on.model_copy(update={"constrained_decoding": False})
    if args.speed_only:
        speed_test(on, off, rounds=args.rounds)
        return
    run_batch(on, items[:2])  # warm up: weights, the grammar tokenizer, kernels
    results: dict[str, dict[str, Any]] = {
        "on": {"valid": {}, "seconds": 0.0, "tokens": 0},
        "off": {"valid": {}, "seconds": 0.0, "tokens": 0},
    }
    # Batches of one kind share a prompt length, like the requests of one application.
    ordered = sorted(items, key=lambda i: (i["kind"], i.get("schema", ""), i["id"]))
    for n, start in enumerate(range(0, len(ordered), args.batch)):
        chunk = ordered[start : start + args.batch]
        modes = [("on", on), ("off", off)] if n % 2 == 0 else [("off", off), ("on", on)]
        for name, llm in modes:
            outs, seconds, tokens = run_batch(llm, chunk)
            results[name]["seconds"] += seconds
            results[name]["tokens"] += tokens
            for item, out in zip(chunk, outs, strict=True):
                results[name]["valid"][item["id"]] = valid(item, out)
        print(f"batch {n + 1}: {len(chunk)} prompts done", flush=True)

    print(f"\n{len(items)} prompts, max_tokens={args.max_tokens}, batches of {args.batch}")
    print(f"{'':28}{'constrained':>20}{'unconstrained':>20}")
    kinds = ["extract", "tool", "json_mode", None]
    for kind in kinds:
        ids = [i["id"] for i in items if kind is None or i["kind"] == kind]
        if not ids:
            continue
        cells = []
        for name in ("on", "off"):
            k = sum(results[name]["valid"][i] for i in ids)
            lo, hi = wilson(k, len(ids))
            cells.append(f"{k}/{len(ids)} [{lo:.2f}-{hi:.2f}]")
        label = f"valid, {kind or 'all'}"
        print(f"{label:28}{cells[0]:>20}{cells[1]:>20}")
    mean = {n: r["tokens"] / len(items) for n, r in results.items()}
    print(f"{'mean generated tokens':28}{mean['on']:>20.1f}{mean['off']:>20.1f}")
    speed_test(on, off, rounds=args.rounds)


STORY = {
    "type": "json_schema",
    "json_schema": {
        "name": "Story",
        "schema": {
            "type": "object",
            # A story too long to end within max_tokens: both modes decode every token.
            "properties": {"story": {"type": "string", "minLength": 2000}},
            "required": ["story"],
        },
    },
}
TOPICS = ["a dragon", "the sea", "a lost key", "a robot", "a garden", "winter", "a train", "a cat"]


def speed_test(on: ChatTransformers, off: ChatTransformers, rounds: int) -> None:
    """Decode tokens/s with the grammar and without, on answers that both run to max_tokens."""
    print(f"\ndecode speed, {on.max_tokens} tokens per answer, best of {rounds} rounds")
    for size in (1, 8):
        prompts = [f"Write a very long story about {t}, as JSON." for t in TOPICS[:size]]
        best = {"on": 0.0, "off": 0.0}
        counts = {"on": 0, "off": 0}
        for r in range(rounds):
            order = [("on", on), ("off", off)] if r % 2 == 0 else [("off", off), ("on", on)]
            for name, llm in order:
                bound = llm.bind(response_format=STORY)
                start = time.perf_counter()
                outs = bound.batch(prompts) if size > 1 else [bound.invoke(prompts[0])]
                seconds = time.perf_counter() - start
                tokens = sum((o.usage_metadata or {}).get("output_tokens", 0) for o in outs)
                best[name] = max(best[name], tokens / seconds)
                counts[name] = tokens
        ratio = best["on"] / best["off"]
        print(
            f"{f'batch of {size}, tokens/s':28}{best['on']:>20.1f}{best['off']:>20.1f}"
            f"   ratio {ratio:.2f}x (goal >= 0.9x; tokens {counts['on']} vs {counts['off']})"
        )


if __name__ == "__main__":
    main()
