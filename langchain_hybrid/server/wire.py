"""The wire format: OpenAI chat-completions requests in, ``openai`` package types out.

A request body is validated into :class:`ChatCompletionRequest`, turned into LangChain
messages and call options (:meth:`ChatCompletionRequest.call`), and the model's answer
is turned back into ``openai.types.chat.ChatCompletion`` / ``ChatCompletionChunk``
objects, so any OpenAI client reads them. The routing decision rides along as the
extension field ``hybrid`` (standard clients keep unknown fields and ignore them).

Example:
    >>> from langchain_core.messages import AIMessage
    >>> req = ChatCompletionRequest.model_validate(
    ...     {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
    >>> call = req.call()
    >>> [m.type for m in call.messages], call.kwargs
    (['human'], {'max_tokens': 8})
    >>> answer = AIMessage("Hello", response_metadata={"finish_reason": "stop"})
    >>> completion(answer, req, completion_id="chatcmpl-1", created=0).choices[0].message.content
    'Hello'
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChatCompletionRequest",
    "ModelCall",
    "chunk",
    "completion",
    "decision_of",
    "error_body",
    "finish_reason_of",
    "new_completion_id",
    "usage_of",
]

_FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "function_call"}


class StreamOptions(BaseModel):
    """``stream_options``: only ``include_usage`` is read."""

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (the fields this server honours).

    Other OpenAI fields (``presence_penalty``, ``logit_bias``, ...) are accepted and
    ignored, as most OpenAI-compatible servers do.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    n: int = 1

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError(f"only n=1 is supported, got {n}: send n requests instead")
        return n

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def call(self) -> ModelCall:
        """Return the LangChain messages, tools and call options of this request."""
        try:
            messages = convert_to_messages(self.messages)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"messages: {e}") from e
        kwargs: dict[str, Any] = {}
        limit = self.max_completion_tokens or self.max_tokens
        if limit is not None:
            kwargs["max_tokens"] = limit
        for name in ("temperature", "top_p", "seed", "response_format"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        if self.top_logprobs:
            kwargs["top_logprobs"] = self.top_logprobs
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return ModelCall(
            messages=messages,
            stop=stop or None,
            kwargs=kwargs,
            tools=self.tools,
            tool_choice=self.tool_choice,
            metadata={"user": self.user} if self.user else {},
        )


@dataclass
class ModelCall:
    """What the chat model is called with."""

    messages: list[BaseMessage]
    stop: list[str] | None
    kwargs: dict[str, Any]
    tools: list[dict[str, Any]] | None
    tool_choice: str | dict[str, Any] | None
    metadata: dict[str, Any]


def new_completion_id() -> str:
    """Return a fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def decision_of(message: BaseMessage) -> dict[str, Any] | None:
    """Return the routing decision the answer carries (``None`` for an unrouted model)."""
    routing = message.response_metadata.get("routing")
    return routing if isinstance(routing, dict) else None


def _finish_reason(message: BaseMessage) -> str:
    if getattr(message, "tool_calls", None):
        return "tool_calls"
    reason = message.response_metadata.get("finish_reason")
    # Local reasons outside OpenAI's set (timeout, cancelled) read as a cut-off answer.
    return reason if reason in _FINISH_REASONS else ("stop" if reason is None else "length")


def _logprobs(message: BaseMessage, request: ChatCompletionRequest) -> dict[str, Any] | None:
    """Return a choice's ``logprobs`` as asked (``None`` unless asked; top-k cut to k)."""
    if not request.logprobs:
        return None
    raw = message.response_metadata.get("logprobs")
    content = raw.get("content") if isinstance(raw, dict) else None
    if content is None:
        return {"content": None}
    k = request.top_logprobs or 0
    return {
        "content": [
            {**entry, "top_logprobs": list(entry.get("top_logprobs") or [])[:k]}
            for entry in content
        ]
    }


def _usage(message: BaseMessage) -> CompletionUsage | None:
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    return CompletionUsage(
        prompt_tokens=usage["input_tokens"],
        completion_tokens=usage["output_tokens"],
        total_tokens=usage["total_tokens"],
    )


def _tool_calls(message: BaseMessage) -> list[dict[str, Any]] | None:
    calls = getattr(message, "tool_calls", None)
    if not calls:
        return None
    return [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
        }
        for call in calls
    ]


def completion(
    message: AIMessage,
    request: ChatCompletionRequest,
    *,
    completion_id: str | None = None,
    created: int | None = None,
) -> ChatCompletion:
    """Build the ``ChatCompletion`` of a whole answer (with ``hybrid`` when routed)."""
    text = message.text
    tool_calls = _tool_calls(message)
    extra: dict[str, Any] = {}
    decision = decision_of(message)
    if decision is not None:
        extra["hybrid"] = decision
    return ChatCompletion.model_validate(
        {
            "id": completion_id or new_completion_id(),
            "object": "chat.completion",
            "created": int(time.time()) if created is None else created,
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": _finish_reason(message),
                    "logprobs": _logprobs(message, request),
                    "message": {
                        "role": "assistant",
                        "content": text if text or not tool_calls else None,
                        "tool_calls": tool_calls,
                    },
                }
            ],
            "usage": _usage(message),
            **extra,
        }
    )


def chunk(
    piece: AIMessageChunk | None,
    request: ChatCompletionRequest,
    *,
    completion_id: str,
    created: int,
    role: bool = False,
    finish_reason: str | None = None,
    decision: dict[str, Any] | None = None,
    usage: CompletionUsage | None = None,
    tool_index: dict[int, int] | None = None,
) -> ChatCompletionChunk:
    """Build one ``ChatCompletionChunk``: a piece of the answer, or the closing chunk.

    ``tool_index`` maps a LangChain tool-call-chunk index to OpenAI's (kept across the
    chunks of one stream). The usage-only chunk (``stream_options.include_usage``) has
    no choices.
    """
    choices: list[dict[str, Any]] = []
    if piece is not None or finish_reason is not None or role:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if piece is not None:
            if piece.text:
                delta["content"] = piece.text
            calls = []
            for call in piece.tool_call_chunks or []:
                index = call.get("index")
                index = len(tool_index or {}) if index is None else index
                if tool_index is not None:
                    index = tool_index.setdefault(index, len(tool_index))
                entry: dict[str, Any] = {"index": index, "function": {}}
                if call.get("id"):
                    entry["id"] = call["id"]
                    entry["type"] = "function"
                if call.get("name"):
                    entry["function"]["name"] = call["name"]
                if call.get("args"):
                    entry["function"]["arguments"] = call["args"]
                calls.append(entry)
            if calls:
                delta["tool_calls"] = calls
        logprobs = _logprobs(piece, request) if piece is not None else None
        choices.append(
            {
                "index": 0,
                "delta": delta,
                "finish_reason": finish_reason,
                "logprobs": logprobs if logprobs and logprobs["content"] else None,
            }
        )
    extra: dict[str, Any] = {"hybrid": decision} if decision is not None else {}
    return ChatCompletionChunk.model_validate(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": choices,
            "usage": usage,
            **extra,
        }
    )


def finish_reason_of(message: BaseMessage) -> str:
    """OpenAI's finish reason of a (streamed, accumulated) answer."""
    return _finish_reason(message)


def usage_of(message: BaseMessage) -> CompletionUsage | None:
    """OpenAI's usage of an answer, when the model reported one."""
    return _usage(message)


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
    "service_unavailable",
]


def error_body(
    message: str, type: ErrorType, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error format: ``{"error": {"message", "type", "param", "code"}}``.

    Example:
        >>> error_body("bad n", "invalid_request_error", param="n")["error"]["param"]
        'n'
    """
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
