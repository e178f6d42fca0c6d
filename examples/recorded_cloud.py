"""A cloud tier that replays answers GPT-4 really gave, for running the demo without a key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

DATA = Path(__file__).parent / "data" / "gsm8k_sample.jsonl"
RECORDED_MODEL = "gpt-4-1106-preview"


def load_sample() -> list[dict[str, str]]:
    """The demo's GSM8K questions with their gold answers and recorded GPT-4 responses."""
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


class RecordedGPT4(BaseChatModel):
    """Answers a known question with GPT-4's recorded response (no network, no key).

    Unknown questions get an answer saying so, so the demo never invents a cloud reply.
    """

    answers: dict[str, str]
    model_name: str = RECORDED_MODEL

    @classmethod
    def from_sample(cls) -> RecordedGPT4:
        return cls(answers={row["question"]: row[RECORDED_MODEL] for row in load_sample()})

    @property
    def _llm_type(self) -> str:
        return "recorded-gpt-4"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        question = str(messages[-1].content)
        text = self.answers.get(question, "[no recorded GPT-4 answer for this question]")
        message = AIMessage(
            content=text,
            response_metadata={"model_name": RECORDED_MODEL},
            usage_metadata={
                "input_tokens": len(question) // 4,
                "output_tokens": len(text) // 4,
                "total_tokens": (len(question) + len(text)) // 4,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
