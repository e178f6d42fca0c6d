"""A local chat model for evaluation tests: answers chosen by the question, with log-probs.

``FakeLocalChatModel`` answers in call order, which a threaded ``batch`` makes racy;
:class:`KeyedLocalChatModel` picks each answer by the question it is asked, so batched
collection gives the same records every run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from tests.support.fake_chat import FakeLocalChatModel
from tests.support.openai_fake import logprob_content, split_tokens

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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(dict(kwargs))
        text, logprob = self._pick(messages)
        tokens = split_tokens(text)
        message = AIMessage(
            content=text,
            response_metadata={
                "logprobs": {"content": logprob_content(tokens, [logprob] * len(tokens))},
                "model_name": self.model_name,
                "finish_reason": self.finish_reason,
            },
            usage_metadata=self._usage(messages, len(tokens)),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream the keyed answer token by token (``ChatHybrid`` streams its local tier)."""
        self.calls.append(dict(kwargs))
        text, logprob = self._pick(messages)
        tokens = split_tokens(text)
        for token in tokens:
            lp = {"content": logprob_content([token], [logprob])}
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(content=token, response_metadata={"logprobs": lp})
            )
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        last = AIMessageChunk(
            content="",
            response_metadata={"finish_reason": self.finish_reason, "model_name": self.model_name},
            usage_metadata=self._usage(messages, len(tokens)),
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=last)


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
