"""Benchmarks of the local tier, printed as ratios measured side by side in one run.

    python benchmarks/bench_local.py

1. Decode speed of ChatTransformers against a bare ``model.generate`` with the
   same settings (goal >= 0.95x).
2. ``batch`` of 16 prompts against 16 sequential invokes (goal >= 3x throughput).
3. Cold start with a warm cache: new process to first streamed token (goal < 4 s
   on a 2-core machine, stretch 3 s).
4. One-shot script with a warm cache: new process that imports, builds
   ChatTransformers, invokes once and exits. Goal: exit does not wait on the idle
   worker, so exit after the answer stays under 1.5 s (the interpreter's own
   teardown of torch and transformers takes about 1 s on 2 cores).

3 and 4 run in fresh processes, interleaved so both see the same machine state;
each figure is the minimum of several runs, since other work on the machine only
ever adds time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import torch
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid import ChatTransformers

PROMPT = "Write a long story about a dragon who learns to paint."
PROMPTS: list[LanguageModelInput] = [
    "What is the capital of France?",
    "Name three colours.",
    "What is 12 times 12?",
    "Write one sentence about the sea.",
    "Who wrote Hamlet?",
    "Give me a synonym for happy.",
    "What is the boiling point of water?",
    "Translate 'good morning' to French.",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Name a planet in the solar system.",
    "What is the square root of 81?",
    "Suggest a name for a cat.",
    "What is the largest ocean?",
    "What do bees make?",
    "Spell the word 'necessary'.",
]


def decode_speed(llm: ChatTransformers, rounds: int = 5, tokens: int = 128) -> None:
    model, tokenizer = llm._loaded.model, llm._loaded.tokenizer
    ids = torch.tensor([llm._prompt_ids([HumanMessage(PROMPT)])])

    def bare() -> int:
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        return int(out.shape[1] - ids.shape[1])

    def ours() -> int:
        usage = llm.invoke(PROMPT, max_tokens=tokens).usage_metadata
        assert usage is not None
        return usage["output_tokens"]

    bare(), ours()  # warm-up
    bare_tps, our_tps = [], []
    for _ in range(rounds):  # interleaved so both see the same machine state
        start = time.perf_counter()
        n = bare()
        bare_tps.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        n = ours()
        our_tps.append(n / (time.perf_counter() - start))
    b, o = statistics.median(bare_tps), statistics.median(our_tps)
    print(f"decode speed: bare generate {b:.1f} tok/s, ChatTransformers {o:.1f} tok/s")
    print(f"  ratio ChatTransformers / bare generate = {o / b:.3f}x   (goal >= 0.95x)")


def _output_tokens(message: AIMessage) -> int:
    assert message.usage_metadata is not None
    return message.usage_metadata["output_tokens"]


def batch_throughput(llm: ChatTransformers, tokens: int = 32) -> None:
    llm.batch(PROMPTS[:2], max_tokens=4)  # warm-up
    start = time.perf_counter()
    sequential = [llm.invoke(p, max_tokens=tokens) for p in PROMPTS]
    t_seq = time.perf_counter() - start
    start = time.perf_counter()
    batched = llm.batch(PROMPTS, max_tokens=tokens)
    t_batch = time.perf_counter() - start
    n_seq = sum(_output_tokens(m) for m in sequential)
    n_batch = sum(_output_tokens(m) for m in batched)
    print(
        f"batch of {len(PROMPTS)}: sequential {t_seq:.2f}s ({n_seq} tokens), "
        f"batch {t_batch:.2f}s ({n_batch} tokens)"
    )
    print(f"  throughput ratio batch / sequential = {t_seq / t_batch:.2f}x   (goal >= 3x)")


COLD_START = """
import time
start = time.perf_counter()
from langchain_hybrid import ChatTransformers
llm = ChatTransformers(max_tokens=4)
next(iter(llm.stream("Hi")))
print(time.monotonic(), time.perf_counter() - start)  # first token: when, and since import
"""

ONE_SHOT = """
import time
from langchain_hybrid import ChatTransformers
ChatTransformers(max_tokens=8).invoke("Hi")
print(time.monotonic())  # when the answer was there; the rest is exit
"""


def _run(code: str) -> tuple[float, float, list[float]]:
    """Run ``code`` in a new interpreter.

    Returns the monotonic clock (one clock for every process) at launch and at
    exit, and the numbers of the last line the code printed.
    """
    launched = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ended = time.monotonic()
    return launched, ended, [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def new_processes(rounds: int = 5) -> None:
    to_token: list[float] = []
    inside: list[float] = []
    whole: list[float] = []
    exits: list[float] = []
    for _ in range(rounds):
        launched, _, (first_token, since_import) = _run(COLD_START)
        to_token.append(first_token - launched)
        inside.append(since_import)
        launched, ended, (answered,) = _run(ONE_SHOT)
        whole.append(ended - launched)
        exits.append(ended - answered)
    print(
        f"cold start (warm cache): new process to first token {min(to_token):.2f}s "
        f"(from import {min(inside):.2f}s), min of {rounds}   (goal < 4 s, stretch 3 s)"
    )
    print(
        f"one-shot script (warm cache): import, build, invoke once, exit {min(whole):.2f}s "
        f"(exit after the answer {min(exits):.2f}s), min of {rounds}   (goal: exit < 1.5 s)"
    )


def main() -> None:
    llm = ChatTransformers()
    decode_speed(llm)
    batch_throughput(llm)
    new_processes()


if __name__ == "__main__":
    main()
