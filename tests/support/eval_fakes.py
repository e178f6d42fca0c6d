"""A local chat model for evaluation tests: answers chosen by the question, with log-probs.

``FakeLocalChatModel`` answers in call order, which a threaded ``batch`` makes racy;
:class:`KeyedLocalChatModel` picks each answer by the question it is asked, so batched
collection gives the same records every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage

from tests.support.fake_chat import FakeLocalChatModel

__all__ = ["KeyedLocalChatModel"]


class KeyedLocalChatModel(FakeLocalChatModel):
    """Answers ``answers[key] = (text, logprob per token)`` for the first key in the prompt.

    A prompt that holds no key gets ``default`` (text, logprob).
    """

    answers: Mapping[str, tuple[str, float]] = {}
    default: tuple[str, float] = ("I don't know.", -0.1)
    calls: list[dict[str, Any]] = []

    def _pick(self, messages: list[BaseMessage]) -> tuple[str, float]:
        prompt = "\n".join(m.text for m in messages)
        for key, answer in self.answers.items():
            if key in prompt:
                return answer
        return self.default

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, float]:
        """Answer by the question asked (batched runs stay deterministic); record the call."""
        self.calls.append(dict(kwargs))
        return self._pick(messages)


def sample_local() -> KeyedLocalChatModel:
    """A local tier for ``langchain-hybrid eval --local-factory`` on the GSM8K sample.

    It answers the first two questions of ``examples/data/gsm8k_recorded_sample.jsonl``
    confidently (one right, one wrong) and hedges on every other question.
    """
    return KeyedLocalChatModel(
        answers={
            "Grace weighs 125 pounds": ("4 * 125 - 2 = 498, 498 + 125 = 623. Answer: 623", -0.05),
            "After transferring to a new school": ("20 + 80 = 100. Answer: 100", -0.1),
        },
        default=("I don't know.", -0.2),
    )


def rag_local() -> KeyedLocalChatModel:
    """A local tier for ``langchain-hybrid calibrate --local-factory`` on the SQuAD sample.

    On the answerable questions of ``examples/data/squad2_rag_sample.jsonl`` it answers
    with the accepted span, confidently (log-prob -0.05 a token); on the unanswerable ones
    it guesses a wrong answer with low confidence (-2.5 a token). Half its answers are
    right, and mean log-prob separates them perfectly.
    """
    import json
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "data" / "squad2_rag_sample.jsonl"
    answers: dict[str, tuple[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["answerable"]:
            answers[row["question"]] = (row["answers"][0], -0.05)
        else:
            answers[row["question"]] = ("Somewhere in the north", -2.5)
    return KeyedLocalChatModel(answers=answers, default=("I don't know.", -0.2))
