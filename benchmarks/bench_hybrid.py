"""Benchmarks of ChatHybrid, printed as ratios measured side by side in one run.

    python benchmarks/bench_hybrid.py

1. Router overhead: ChatHybrid answering locally against calling ChatTransformers
   directly on the same prompts (goal <= 1.02x).
2. Early escalation: on escalated questions, the local time ChatHybrid spends before
   escalating against the time a full local generation takes (goal <= 0.3x).
"""

from __future__ import annotations

import statistics
import time

from langchain_core.language_models import FakeListChatModel

from langchain_hybrid import ChatHybrid, ChatTransformers

LOCAL_PROMPTS = [
    "What is the capital of France?",
    "What is the capital of Japan?",
    "What is the capital of England?",
    "How many days are in a week?",
]
HARD_PROMPTS = [
    "Who wrote the novel Middlemarch?",
    "Who won the 1923 Nobel Prize in Physics?",
    "What is the population of the town of Tromsø in 1900?",
    "Which ship did Ernest Shackleton sail on his last expedition?",
    "Who was the first president of the Republic of Texas?",
    "In what year was the treaty of Nerchinsk signed?",
    "What is the name of the dog in the novel Jerome K. Jerome wrote about a boat?",
    "Who designed the Vasa warship?",
]


def router_overhead(local: ChatTransformers, hybrid: ChatHybrid, rounds: int = 3) -> None:
    for prompt in LOCAL_PROMPTS:  # warm-up, and check these stay local
        tier = hybrid.invoke(prompt).response_metadata["routing"]["tier"]
        assert tier == "local", f"{prompt!r} did not stay local; pick another prompt"
    direct, routed = [], []
    for _ in range(rounds):
        for prompt in LOCAL_PROMPTS:
            start = time.perf_counter()
            local.invoke(prompt)
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            hybrid.invoke(prompt)
            routed.append(time.perf_counter() - start)
    d, r = statistics.median(direct), statistics.median(routed)
    print(f"router overhead: ChatTransformers {d:.3f}s, ChatHybrid (local answer) {r:.3f}s")
    print(f"  ratio ChatHybrid / ChatTransformers = {r / d:.3f}x   (goal <= 1.02x)")


def early_escalation(local: ChatTransformers, hybrid: ChatHybrid) -> None:
    spent, full, aborted = [], [], 0
    for prompt in HARD_PROMPTS:
        routing = hybrid.invoke(prompt).response_metadata["routing"]
        start = time.perf_counter()
        local.invoke(prompt)
        whole = time.perf_counter() - start
        if routing["tier"] != "cloud":
            print(f"  (stayed local: {prompt!r} -> {routing['reason']})")
            continue
        aborted += bool(routing["early_abort"])
        spent.append(routing["local_latency_s"])
        full.append(whole)
    if not spent:
        print("early escalation: no question was escalated")
        return
    print(
        f"early escalation on {len(spent)} escalated questions ({aborted} stopped early): "
        f"local time before escalating {sum(spent):.2f}s vs full local generation {sum(full):.2f}s"
    )
    ratios = [s / f for s, f in zip(spent, full, strict=True)]
    print(
        f"  ratio (total) = {sum(spent) / sum(full):.3f}x, median per question "
        f"{statistics.median(ratios):.3f}x   (goal <= 0.3x)"
    )


def main() -> None:
    local = ChatTransformers(max_tokens=128)
    cloud = FakeListChatModel(responses=["(cloud answer)"])
    hybrid = ChatHybrid(local=local, cloud=cloud, threshold=-0.6)
    router_overhead(local, hybrid)
    early_escalation(local, hybrid)


if __name__ == "__main__":
    main()
