"""An offline stand-in for the cloud tier, so the demo runs without a key or a network.

For the maths problems it replays the answer GPT-4 (``gpt-4-1106-preview``) really gave,
as recorded by RouteLLM. For the questions over a passage and the closed-book questions
no cloud answers were recorded, so it replies with the dataset's reference answer (and
"The passage does not say." where the passage lacks one): an upper bound on what a
cloud model would score, and the demo labels it as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_hybrid.evaluation.collect import DECLINE_SENTENCE
from langchain_hybrid.evaluation.graders import grade
from langchain_hybrid.evaluation.records import Example

RECORDED_MODEL = "gpt-4-1106-preview"


def reference_reply(example: Example) -> tuple[str, str]:
    """Return ``(text, where it comes from)``: GPT-4's recorded answer or the reference."""
    recorded = example.recorded.get(RECORDED_MODEL)
    if recorded is not None:
        return recorded.text, f"{RECORDED_MODEL}, recorded"
    if example.answerable is False:
        return DECLINE_SENTENCE, "reference answer"
    return example.answers[0], "reference answer"


def is_right(text: str, example: Example) -> bool:
    """Grade an answer; GPT-4's recorded answer keeps the correctness it was recorded with."""
    recorded = example.recorded.get(RECORDED_MODEL)
    if recorded is not None and recorded.correct is not None and text == recorded.text:
        return recorded.correct
    return grade(text, example)


class OfflineCloud(BaseChatModel):
    """Answers the demo's questions (found by their text in the last message) offline.

    A question it does not know gets a reply saying so, so nothing is ever invented.
    """

    replies: dict[str, str]
    model_name: str = "offline-stand-in"

    @classmethod
    def for_examples(cls, examples: Iterable[Example]) -> OfflineCloud:
        return cls(replies={ex.question: reference_reply(ex)[0] for ex in examples})

    @property
    def _llm_type(self) -> str:
        return "offline-cloud"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = messages[-1].text
        text = next(
            (reply for question, reply in self.replies.items() if question in prompt),
            "[the offline stand-in has no answer for this question]",
        )
        message = AIMessage(
            content=text,
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
            usage_metadata={
                "input_tokens": len(prompt) // 4,
                "output_tokens": max(1, len(text) // 4),
                "total_tokens": len(prompt) // 4 + max(1, len(text) // 4),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
