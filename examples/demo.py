"""Demo: a calibrated hybrid that keeps the answers the local model gets right.

Run with ``make demo``. A small mixed workload goes through ``ChatHybrid``: questions
asked over a passage (where the embedded SmolLM2-135M is often right), closed-book
questions and maths problems (where it is not). The routing policy is the one calibrated
on the evaluation data, shipped as ``examples/hybrid_policy.json`` (its ``fitted_on`` says
what it was fitted on and what it achieved there). For each question the demo prints the
local attempt, its confidence against the calibrated threshold, the reason in plain words
and the final tier, and it ends with the Cloud-only / Local-only / Hybrid table.

The cloud tier is GPT-4o when ``OPENAI_API_KEY`` is set. Otherwise it is an offline
stand-in (``offline_cloud.py``): GPT-4's recorded answers for the maths problems, and
the dataset's reference answers for the other questions, which the output says.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from offline_cloud import OfflineCloud, is_right, reference_reply

from langchain_hybrid import ChatHybrid, RoutingPolicy
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.evaluation.collect import prompt_for
from langchain_hybrid.evaluation.datasets import load_dataset
from langchain_hybrid.evaluation.records import Example

HERE = Path(__file__).parent
DATA = HERE / "data"
POLICY = HERE / "hybrid_policy.json"
SHORT_MAX_TOKENS, MATH_MAX_TOKENS = 32, 160  # the limits the policy was calibrated with
PRICED_AS = "gpt-4o"  # the cloud's cost is estimated at GPT-4o's prices

#: What each routing reason means, in plain words.
PLAIN = {
    "confident": "confident enough: kept local, no cloud call",
    "low_confidence": "not confident enough: sent to the cloud",
    "early_abort": "on course to miss the threshold: the local model was stopped early "
    "and the cloud answered",
    "truncated": "the answer hit its token limit: sent to the cloud",
    "hedge": "the local model hedged ('I don't know'): sent to the cloud",
    "empty_answer": "the local model gave no answer: sent to the cloud",
    "rule_force_cloud": "a routing rule sends this to the cloud",
}


def demo_questions() -> list[tuple[str, Example]]:
    """The workload: the first rows of each sample in examples/data (none were fitted on)."""
    rag = load_dataset(DATA / "squad2_rag_sample.jsonl")
    answerable = [ex for ex in rag if ex.answerable][:3]
    unanswerable = [ex for ex in rag if not ex.answerable][:1]
    closed = load_dataset(DATA / "nq_open_sample.jsonl", limit=2)
    maths = load_dataset(DATA / "gsm8k_recorded_sample.jsonl", limit=2)
    return (
        [("passage", ex) for ex in answerable + unanswerable]
        + [("closed-book", ex) for ex in closed]
        + [("maths", ex) for ex in maths]
    )


class LocalAttempts(BaseCallbackHandler):
    """Keeps what the local tier answered on each call (ChatHybrid names its run 'local')."""

    def __init__(self) -> None:
        self.names: dict[UUID, str] = {}
        self.tokens: dict[UUID, list[str]] = {}
        self.last: str = ""

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.names[run_id] = name or ""
        self.tokens[run_id] = []

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.tokens.setdefault(run_id, []).append(str(token))
        if self.names.get(run_id) == "local":  # an early stop may end the run without an end
            self.last = "".join(self.tokens[run_id])

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.tokens.pop(run_id, None)
        if self.names.pop(run_id, "") == "local" and response.generations[0][0].text:
            self.last = response.generations[0][0].text


@dataclass
class Outcome:
    kind: str
    example: Example
    tier: str
    right: bool
    local_text: str
    local_right: bool | None  # None: stopped early, completed for the table afterwards
    cloud_right: bool
    cloud_cost: float
    seconds: float


def shorten(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def describe_confidence(routing: dict[str, Any], policy: RoutingPolicy) -> str:
    score, threshold = routing.get("confidence"), routing.get("threshold")
    if score is None or threshold is None:
        return "no confidence score"
    relation = ">=" if score >= threshold else "<"
    if policy.scorer.name == "logistic":  # the score is the log-odds of a right answer
        p, need = 1 / (1 + math.exp(-score)), 1 / (1 + math.exp(-threshold))
        return f"chance right {p:.0%} {relation} {need:.0%} needed"
    return f"confidence {score:.2f} {relation} threshold {threshold:.2f}"


def demo_prices() -> PriceTable:
    """Prices with the offline stand-in priced as GPT-4o, so costs are GPT-4o's estimates."""
    table = PriceTable.default()
    return table.merged({OfflineCloud.model_fields["model_name"].default: table[PRICED_AS]})


def cloud_cost(prompt: Sequence[BaseMessage], reply: str, prices: PriceTable) -> float:
    n_in = sum(len(m.text) for m in prompt) // 4
    return prices.cost_of(PRICED_AS, n_in, max(1, len(reply) // 4))


def run(
    llm: ChatHybrid,
    questions: Sequence[tuple[str, Example]],
    cloud_label: str,
    cloud_reply: Callable[[Example], str],
    out: Callable[[str], None] = print,
) -> list[Outcome]:
    """Route every question, print what happened, return the outcomes for the table."""
    policy = llm.routing_policy
    prices = PriceTable.default()
    attempts = LocalAttempts()
    outcomes = []
    for i, (kind, ex) in enumerate(questions, 1):
        prompt = list(prompt_for(ex))
        max_tokens = MATH_MAX_TOKENS if ex.task == "math" else SHORT_MAX_TOKENS
        attempts.last = ""
        t0 = time.perf_counter()
        answer = llm.invoke(prompt, max_tokens=max_tokens, config={"callbacks": [attempts]})
        seconds = time.perf_counter() - t0
        r = answer.response_metadata["routing"]
        text = str(answer.content)
        right = is_right(text, ex)
        local_text = attempts.last if r["escalated"] else text
        stopped = r["early_abort"]
        out(f"[{i}/{len(questions)}] {kind}: {shorten(ex.question, 100)}")
        if ex.context is not None:
            out(f"  passage: {shorten(ex.context, 100)}")
        spent = f"stopped after {r['local_output_tokens']} tokens" if stopped else ""
        out(f"  local attempt: {shorten(local_text) or '(nothing)'!r} {spent}".rstrip())
        out(f"  {describe_confidence(r, policy)}; {PLAIN.get(r['reason'], r['reason'])}")
        tier = "local" if r["tier"] == "local" else f"cloud ({cloud_label})"
        verdict = "right" if right else "wrong"
        out(f"  answer from {tier}: {shorten(text)!r} -> {verdict} ({seconds:.1f} s)\n")
        reply = text if r["escalated"] else cloud_reply(ex)
        outcomes.append(
            Outcome(
                kind=kind,
                example=ex,
                tier=r["tier"],
                right=right,
                local_text=local_text,
                local_right=None if stopped else is_right(local_text, ex),
                cloud_right=is_right(reply, ex),
                cloud_cost=cloud_cost(prompt, reply, prices),
                seconds=seconds,
            )
        )
    return outcomes


def complete_local(
    local: BaseChatModel, outcomes: Sequence[Outcome], out: Callable[[str], None] = print
) -> None:
    """Local-only needs full local answers: generate those the hybrid stopped early.

    One at a time, with a line for each, so that a long wait (a maths answer runs to 160
    tokens) shows how far it is.
    """
    todo = [o for o in outcomes if o.local_right is None]
    if not todo:
        return
    out(f"Local-only row: generating in full the {len(todo)} local answers stopped early ...")
    for i, o in enumerate(todo, 1):
        max_tokens = MATH_MAX_TOKENS if o.example.task == "math" else SHORT_MAX_TOKENS
        t0 = time.perf_counter()
        full = local.invoke(list(prompt_for(o.example)), max_tokens=max_tokens)
        o.local_right = is_right(str(full.content), o.example)
        out(f"  {i}/{len(todo)} done ({time.perf_counter() - t0:.1f} s)")
    out("")


def table(outcomes: Sequence[Outcome]) -> str:
    n = len(outcomes)
    cloud_only = sum(o.cloud_cost for o in outcomes)
    rows = [
        ("Cloud-only", sum(o.cloud_right for o in outcomes), n, cloud_only),
        ("Local-only", sum(bool(o.local_right) for o in outcomes), 0, 0.0),
        (
            "Hybrid",
            sum(o.right for o in outcomes),
            sum(o.tier != "local" for o in outcomes),
            sum(o.cloud_cost for o in outcomes if o.tier != "local"),
        ),
    ]
    lines = [f"{'system':<11} {'right':>7} {'accuracy':>9} {'to cloud':>9} {'est. cost':>10}"]
    for name, right, to_cloud, cost in rows:
        lines.append(
            f"{name:<11} {right:>3} / {n:<2} {right / n:>8.0%} {to_cloud / n:>9.0%} "
            f"{'$' + format(cost, '.4f'):>10}"
        )
    return "\n".join(lines)


def cloud_tier(questions: Sequence[tuple[str, Example]]) -> tuple[BaseChatModel, str, str]:
    """GPT-4o with a key; else the offline stand-in. Returns (model, label, header line)."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model="gpt-4o", temperature=0), "gpt-4o", "cloud: gpt-4o (live)"
    header = (
        "cloud: offline stand-in for the cloud: the dataset's reference answers for the\n"
        "       passage and closed-book questions, GPT-4's recorded answers for the maths\n"
        "       (set OPENAI_API_KEY to ask GPT-4o instead)"
    )
    return OfflineCloud.for_examples(ex for _, ex in questions), "offline stand-in", header


def main() -> None:
    from langchain_hybrid import ChatTransformers

    start = time.perf_counter()
    questions = demo_questions()
    policy = RoutingPolicy.load(POLICY)
    # top_logprobs as in calibration: the learned scorer reads the top-1/top-2 margin.
    local = ChatTransformers(top_logprobs=5)
    local.invoke("Hi", max_tokens=1)  # load (and on the first run convert) the model now
    cloud, cloud_label, header = cloud_tier(questions)
    llm = ChatHybrid(local=local, cloud=cloud, policy=policy, prices=demo_prices())
    fitted = policy.fitted_on or {}
    achieved = fitted.get("achieved", {})
    print(f"local: {local.model_name} (ready in {time.perf_counter() - start:.1f} s)")
    print(header)
    print(
        f"policy: {POLICY.name}, a {fitted.get('scorer', policy.scorer.name)} scorer fitted "
        f"for {fitted.get('target', '?')}\n"
        f"        on {fitted.get('n', '?')} answers of {fitted.get('dataset', '?')};\n"
        f"        held out there: {achieved.get('cloud_share', float('nan')):.0%} sent to the "
        f"cloud, accuracy {achieved.get('accuracy', float('nan')):.1%} (cloud-only "
        f"{achieved.get('cloud_only_accuracy', float('nan')):.1%})\n"
    )

    def cloud_reply(ex: Example) -> str:  # the cloud's answer where the hybrid kept local
        if isinstance(cloud, OfflineCloud):
            return reference_reply(ex)[0]
        return str(cloud.invoke(list(prompt_for(ex))).content)

    outcomes = run(llm, questions, cloud_label, cloud_reply)
    complete_local(local, outcomes)
    print(f"On these {len(outcomes)} questions (cost at {PRICED_AS} prices, estimated):")
    print(table(outcomes))
    print("(Local-only: the local model's full answers; those the hybrid stopped early were")
    print(" generated in full for this row. Hybrid: the answers above.)")
    print(f"\ndone in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
