"""Demo: chat with the embedded local model and see how sure it is of every token.

Run with ``make demo`` (or ``python examples/demo.py "your question"``).
"""

import math
import sys
import time

from langchain_hybrid import ChatTransformers

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote the novel 'Middlemarch'?",
    "What is 17 times 23?",
]


def show(llm: ChatTransformers, question: str) -> None:
    start = time.perf_counter()
    message = llm.invoke(question)
    elapsed = time.perf_counter() - start
    entries = message.response_metadata["logprobs"]["content"]
    mean = sum(e["logprob"] for e in entries) / max(len(entries), 1)
    print(f"\nQ: {question}\nA: {message.content}")
    print(
        f"   {len(entries)} tokens in {elapsed:.2f}s, mean log-prob {mean:.3f} "
        f"(perplexity {math.exp(-mean):.2f})"
    )
    print("   least sure tokens:", end="")
    for entry in sorted(entries, key=lambda e: e["logprob"])[:3]:
        print(f"  {entry['token']!r} p={math.exp(entry['logprob']):.2f}", end="")
    print()


def main() -> None:
    start = time.perf_counter()
    llm = ChatTransformers(max_tokens=64)
    print(f"Loaded {llm.model_name} in {time.perf_counter() - start:.1f}s")
    for question in sys.argv[1:] or QUESTIONS:
        show(llm, question)


if __name__ == "__main__":
    main()
