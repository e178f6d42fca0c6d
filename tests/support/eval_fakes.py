"""A local chat model for evaluation tests: answers chosen by the question, with log-probs.

``FakeLocalChatModel`` answers in call order, which a threaded ``batch`` makes racy;
:class:`KeyedLocalChatModel` picks each answer by the question it is asked, so batched
collection gives the same records every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

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
