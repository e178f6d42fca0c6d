"""A small local chat model for unit tests: scripted answers with log-probs, no tools.

:class:`FakeLocalChatModel` stands in for a local tier such as ``ChatTransformers``
without loading any weights: it answers with scripted texts, one log-prob entry
per token in OpenAI's format (``response_metadata["logprobs"]``, as
``ChatTransformers`` and ``ChatOpenAI(logprobs=True)`` give them), streams token
by token, and, like ``ChatTransformers``, cannot call tools: ``bind_tools``
raises ``NotImplementedError``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import GenericFakeChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

from tests.support.openai_fake import logprob_content, split_tokens

__all__ = ["FakeLocalChatModel"]


def _answers() -> Iterator[AIMessage | str]:
    return itertools.repeat("The capital of France is Paris.")


class FakeLocalChatModel(GenericFakeChatModel):
    """Scripted answers with per-token log-probs; a local tier that cannot call tools.

    Example::

        llm = FakeLocalChatModel(messages=iter(["Paris."]), logprob=-0.2)
        msg = llm.invoke("Capital of France?")
        msg.response_metadata["logprobs"]["content"]  # [{"token": "Paris", "logprob": -0.2, ...
    """

    messages: Iterator[AIMessage | str] = Field(default_factory=_answers)
    """The answers, in order (text or ``AIMessage``); default: one confident answer, forever."""

    logprob: float = -0.05
    """The log-prob of every token of every answer."""

    model_name: str = "fake-local"
    """Reported as ``response_metadata["model_name"]``."""

    finish_reason: str = "stop"
    """Reported as ``response_metadata["finish_reason"]`` (e.g. ``"timeout"``, as
    ``ChatTransformers(timeout=...)`` reports an answer its deadline ended)."""

    @property
    def _llm_type(self) -> str:
        return "fake-local-chat"

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, float]:
        """Return the next answer's text and the log-prob of each of its tokens."""
        message = next(self.messages)
        return (message if isinstance(message, str) else message.text), self.logprob

    @staticmethod
    def _logprobs(tokens: Sequence[str], logprob: float) -> dict[str, Any]:
        return {"content": logprob_content(tokens, [logprob] * len(tokens))}

    @staticmethod
    def _usage(messages: list[BaseMessage], output_tokens: int) -> UsageMetadata:
        input_tokens = sum(len(split_tokens(m.text)) for m in messages)
        return UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text, logprob = self._answer(messages, kwargs)
        tokens = split_tokens(text)
        message = AIMessage(
            content=text,
            response_metadata={
                "logprobs": self._logprobs(tokens, logprob),
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
        text, logprob = self._answer(messages, kwargs)
        tokens = split_tokens(text)
        for token in tokens:
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=token, response_metadata={"logprobs": self._logprobs([token], logprob)}
                )
            )
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        # Like ChatOpenAI, the model name and finish reason come once, at the end.
        last = AIMessageChunk(
            content="",
            response_metadata={"finish_reason": self.finish_reason, "model_name": self.model_name},
            usage_metadata=self._usage(messages, len(tokens)),
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=last)

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This local model cannot call tools."""
        raise NotImplementedError(f"{type(self).__name__} cannot call tools.")
