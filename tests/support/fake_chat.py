"""A small local chat model for unit tests: scripted answers with log-probs, tools optional.

:class:`FakeLocalChatModel` stands in for a local tier such as ``ChatTransformers``
without loading any weights: it answers with scripted texts, one log-prob entry
per token in OpenAI's format (``response_metadata["logprobs"]``, as
``ChatTransformers`` and ``ChatOpenAI(logprobs=True)`` give them), and streams token
by token. By default it cannot call tools (``bind_tools`` raises
``NotImplementedError``); with ``can_call_tools=True`` it binds them like a tool-calling
model, and scripted ``AIMessage`` answers with ``tool_calls`` (or
``invalid_tool_calls``: arguments that are not JSON) come back as tool calls, streamed
as ``tool_call_chunks``. Every call's options (``tools``, ``tool_choice``,
``response_format``) are recorded in ``seen``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import GenericFakeChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from tests.support.openai_fake import logprob_content, split_tokens

__all__ = ["FakeLocalChatModel"]


#: The tool calls of the answer being produced on this thread (from ``_answer``).
_PENDING = threading.local()


def _answers() -> Iterator[AIMessage | str]:
    return itertools.repeat("The capital of France is Paris.")


class FakeLocalChatModel(GenericFakeChatModel):
    """Scripted answers with per-token log-probs; a local tier, with or without tools.

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

    can_call_tools: bool = False
    """Whether ``bind_tools`` works (as a tool-calling local model's does)."""

    seen: list[dict[str, Any]] = Field(default_factory=list)
    """The options of every call, in order (``tools``, ``tool_choice``, ...)."""

    received: list[list[BaseMessage]] = Field(default_factory=list)
    """The messages of every call, in order."""

    @property
    def _llm_type(self) -> str:
        return "fake-local-chat"

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, float]:
        """Return the next answer's text and the log-prob of each of its tokens.

        Subclasses override this to pick answers their own way; a scripted ``AIMessage``'s
        tool calls are handed on through :meth:`_next`.
        """
        message = next(self.messages)
        if isinstance(message, str):
            return message, self.logprob
        calls = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c.get("id") or f"call_{i}"}
            for i, c in enumerate(message.tool_calls)
        ]
        calls += [
            {"name": c.get("name"), "args": c.get("args") or "", "id": c.get("id") or "bad"}
            for c in message.invalid_tool_calls
        ]
        _PENDING.calls = calls
        return str(message.text), self.logprob

    def _next(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[str, list[dict[str, Any]], float]:
        """Return the next answer: text, tool-call chunks (args as strings), log-prob."""
        self.seen.append(dict(kwargs))
        self.received.append(list(messages))
        _PENDING.calls = []
        text, logprob = self._answer(messages, kwargs)
        calls, _PENDING.calls = _PENDING.calls, []
        return text, calls, logprob

    @staticmethod
    def _call_tokens(calls: list[dict[str, Any]]) -> list[str]:
        """The tokens a tool-call answer is made of (its calls written out)."""
        return split_tokens(" ".join(f"{c['name']} {c['args']}" for c in calls)) if calls else []

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
        text, calls, logprob = self._next(messages, kwargs)
        tokens = split_tokens(text) + self._call_tokens(calls)
        merged = AIMessageChunk(
            content=text,
            tool_call_chunks=[
                {"name": c["name"], "args": c["args"], "id": c["id"], "index": i}
                for i, c in enumerate(calls)
            ],
        )
        message = AIMessage(
            content=text,
            tool_calls=merged.tool_calls,
            invalid_tool_calls=merged.invalid_tool_calls,
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
        text, calls, logprob = self._next(messages, kwargs)
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
        for i, call in enumerate(calls):
            call_tokens = self._call_tokens([call])
            tokens += call_tokens
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {"name": call["name"], "args": call["args"], "id": call["id"], "index": i}
                    ],
                    response_metadata={"logprobs": self._logprobs(call_tokens, logprob)},
                )
            )
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
        """Bind the tools (``can_call_tools=True``); else raise ``NotImplementedError``."""
        if not self.can_call_tools:
            raise NotImplementedError(f"{type(self).__name__} cannot call tools.")
        kwargs.pop("ls_structured_output_format", None)
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)
