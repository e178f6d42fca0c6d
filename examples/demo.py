"""Demo: a hybrid chat that answers locally when confident and escalates when not.

Run with ``make demo``. The local tier is the embedded SmolLM2-135M-Instruct. The
cloud tier is GPT-4o when ``OPENAI_API_KEY`` is set; otherwise it replays the answers
GPT-4 really gave to these GSM8K problems (recorded by RouteLLM), so the demo runs
offline. Pass your own questions as arguments.
"""

from __future__ import annotations

import os
import re
import sys
import time

from langchain_core.language_models import BaseChatModel
from recorded_cloud import RecordedGPT4, load_sample

from langchain_hybrid import ChatHybrid, ChatTransformers, RoutingStatsHandler

EASY = ["What is the capital of France?"]


def cloud_tier() -> tuple[BaseChatModel, str]:
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model="gpt-4o", temperature=0), "gpt-4o (live)"
    return RecordedGPT4.from_sample(), "gpt-4-1106-preview (recorded answers, offline)"


def last_number(text: str) -> str | None:
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", text)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def main() -> None:
    start = time.perf_counter()
    local = ChatTransformers(max_tokens=96)
    cloud, cloud_label = cloud_tier()
    llm = ChatHybrid(local=local, cloud=cloud, threshold=-0.6)
    stats = RoutingStatsHandler()
    print(f"local: {local.model_name} (loaded in {time.perf_counter() - start:.1f}s)")
    print(
        f"cloud: {cloud_label}\nthreshold: mean token log-prob >= {llm.routing_policy.threshold}\n"
    )

    gold = {row["question"]: row["answer"] for row in load_sample()}
    questions = sys.argv[1:] or EASY + list(gold)
    for question in questions:
        t0 = time.perf_counter()
        answer = llm.invoke(question, config={"callbacks": [stats]})
        elapsed = time.perf_counter() - t0
        r = answer.response_metadata["routing"]
        text = " ".join(str(answer.content).split())
        print(f"Q: {question}")
        print(f"A: {text[:160]}{'...' if len(text) > 160 else ''}")
        verdict = ""
        if question in gold:
            verdict = " | correct" if last_number(text) == gold[question] else " | wrong"
        confidence = f"{r['confidence']:.2f}" if r["confidence"] is not None else "n/a"
        print(
            f"   -> {r['tier']} ({r['reason']}), confidence {confidence}, "
            f"early abort {r['early_abort']}, local tokens {r['local_output_tokens']}, "
            f"{elapsed:.1f}s{verdict}\n"
        )
    print(stats.report())


if __name__ == "__main__":
    main()
