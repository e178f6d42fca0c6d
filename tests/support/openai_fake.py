"""A scripted OpenAI chat-completions API, written once, without any I/O.

This module holds what an OpenAI-compatible test double says, not how it is
delivered: the scripts (:class:`ScriptedReply`, :class:`Fault`), the wire format
(bodies built from the ``openai`` package's own types) and
:meth:`FakeOpenAI.handle`, which turns one HTTP request into a sequence of
:data:`Action` s (sleep, respond, start a stream, send an event, drop the
connection). Two drivers deliver those actions:

* :class:`tests.support.openai_server.FakeOpenAIServer`: a real HTTP server on
  127.0.0.1 (integration tests);
* :class:`tests.support.openai_mock.MockOpenAI`: an ``httpx.MockTransport`` for
  ``ChatOpenAI(http_client=..., http_async_client=...)``, no socket at all
  (unit tests).

Both give the same answers to the same script, so a test written against one
runs against the other.

How a chat request is answered, first match wins:

1. the next item of the queue filled by :meth:`FakeOpenAI.enqueue`;
2. ``fake.responder(request_body)`` when a responder is set;
3. ``fake.default_reply``.

A queue item or a responder's return value may be a :class:`ScriptedReply`, a
plain ``str`` (the reply's content) or a bare :class:`Fault` (the default reply
with that fault applied).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from openai.types import CompletionUsage, ErrorObject, Model
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionTokenLogprob,
)
from openai.types.chat import chat_completion as completion_types
from openai.types.chat import chat_completion_chunk as chunk_types
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.chat.chat_completion_token_logprob import TopLogprob
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

__all__ = [
    "Action",
    "Drop",
    "Event",
    "FakeOpenAI",
    "Fault",
    "RecordedRequest",
    "Respond",
    "Responder",
    "Script",
    "ScriptedReply",
    "Sleep",
    "StartStream",
    "error_body",
    "last_user_text",
    "logprob_content",
    "split_tokens",
]

# A word, a run of punctuation, or trailing whitespace, each with any leading
# whitespace attached: "Hello, world!" -> ["Hello", ",", " world", "!"].
_TOKEN_RE = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")

# What OpenAI reports for alternatives with no probability mass left.
_MIN_LOGPROB = -9999.0


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into word-ish tokens that concatenate back to ``text``."""
    return _TOKEN_RE.findall(text)


def _count_tokens(text: str) -> int:
    return len(split_tokens(text.strip())) if text.strip() else 0


# --------------------------------------------------------------------------- scripts


@dataclass
class Fault:
    """How a scripted answer misbehaves.

    Attributes:
        delay_s: Wait this long before answering (before the status line). Past
            the request's read timeout the client times out after that timeout.
            The HTTP server cuts the wait short when it closes.
        status: Answer with this HTTP error status (e.g. 429, 500, 503) and an
            OpenAI-style error body instead of a completion.
        drop: Close the connection without sending any response.
        malformed: Answer 200 with a body that is not valid JSON (non-streaming) or a
            ``data:`` event that is not valid JSON (streaming, as the first event).
        drop_after_chunks: Streaming only: close the connection abruptly (no
            terminating chunk, no ``[DONE]``) after this many ``data:`` events.
            Ignored for non-streaming requests.
        end_after_chunks: Streaming only: end the stream cleanly (``[DONE]``, no
            error) after this many ``data:`` events, before the chunk with the finish
            reason: a server that closes the answer early without saying so.
        chunk_delay_s: Streaming only: wait between ``data:`` events.
        retry_after_s: With ``status`` 429 or 503: sent as ``retry-after-ms``
            (milliseconds, which the openai SDK prefers) and ``retry-after``
            (whole seconds, rounded up). ``None`` sends neither header.
        error_message: Message of the error body (a default per status).
        headers: Extra response headers for the error response.
    """

    delay_s: float = 0.0
    status: int | None = None
    drop: bool = False
    malformed: bool = False
    drop_after_chunks: int | None = None
    end_after_chunks: int | None = None
    chunk_delay_s: float = 0.0
    retry_after_s: float | None = 0.01
    error_message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ScriptedReply:
    """One scripted chat completion.

    Attributes:
        content: The assistant's text ("" for a tool-call-only answer).
        tokens: How ``content`` is split into tokens (stream chunks and logprob
            entries). Must concatenate to ``content``. Default:
            :func:`split_tokens`.
        logprobs: Log-probability of each token, or one value for all tokens.
            Only sent when the request asks for ``logprobs``.
        tool_calls: ``[{"name": str, "arguments": dict | str, "id": str?}]``.
        finish_reason: Default ``"tool_calls"`` when there are tool calls,
            else ``"stop"``.
        prompt_tokens: Reported ``usage.prompt_tokens``; default: a rough
            word count of the request's messages.
        model: Reported model name; default: the request's ``model``.
        fault: Optional misbehaviour, see :class:`Fault`.
    """

    content: str = "This is a scripted reply."
    tokens: list[str] | None = None
    logprobs: list[float] | float = -0.01
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    model: str | None = None
    fault: Fault | None = None

    def __post_init__(self) -> None:
        if self.tokens is not None and "".join(self.tokens) != self.content:
            raise ValueError(
                f"tokens {self.tokens!r} do not concatenate to content {self.content!r}"
            )
        if isinstance(self.logprobs, list) and len(self.logprobs) != len(self.token_list()):
            raise ValueError(f"{len(self.logprobs)} logprobs for {len(self.token_list())} tokens")
        for call in self.tool_calls:
            if "name" not in call:
                raise ValueError(f"tool call without a name: {call!r}")

    def token_list(self) -> list[str]:
        """The content's tokens."""
        return list(self.tokens) if self.tokens is not None else split_tokens(self.content)

    def logprob_list(self) -> list[float]:
        """One logprob per token."""
        if isinstance(self.logprobs, list):
            return [float(x) for x in self.logprobs]
        return [float(self.logprobs)] * len(self.token_list())


Script: TypeAlias = ScriptedReply | Fault | str
Responder: TypeAlias = Callable[[dict[str, Any]], Script]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a chat-completions request body.

    Handy inside a responder: ``lambda body: "4" if "2+2" in last_user_text(body) else "?"``.
    """
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return _message_text(message)
    return ""


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# --------------------------------------------------------------------------- wire format


def _wire(obj: Any) -> dict[str, Any]:
    """An ``openai`` model as its JSON object: exactly the fields that were set."""
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def _logprob_entry(token: str, logprob: float, top_n: int) -> ChatCompletionTokenLogprob:
    """An OpenAI ``ChatCompletionTokenLogprob`` for ``token``.

    ``top_logprobs`` holds ``top_n`` entries: the token itself plus synthetic
    alternatives that share the remaining probability mass (halving each time),
    sorted by decreasing logprob.
    """
    top: list[TopLogprob] = []
    if top_n > 0:
        top.append(TopLogprob(token=token, logprob=logprob, bytes=list(token.encode())))
        remaining = 1.0 - math.exp(min(logprob, 0.0))
        for k in range(1, top_n):
            alt = f"{token}\u2020{k}"  # "tok†1", "tok†2", ...
            alt_lp = math.log(remaining) - k * math.log(2.0) if remaining > 0 else _MIN_LOGPROB
            top.append(TopLogprob(token=alt, logprob=alt_lp, bytes=list(alt.encode())))
        top.sort(key=lambda e: e.logprob, reverse=True)
    return ChatCompletionTokenLogprob(
        token=token, logprob=logprob, bytes=list(token.encode()), top_logprobs=top
    )


def logprob_content(
    tokens: Iterable[str], logprobs: Iterable[float], top_n: int = 0
) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs["content"]`` entries for ``tokens``, as a model would send them."""
    return [
        _wire(_logprob_entry(token, logprob, top_n))
        for token, logprob in zip(tokens, logprobs, strict=True)
    ]


def _tool_calls(reply: ScriptedReply) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = []
    for call in reply.tool_calls:
        args = call.get("arguments", {})
        calls.append(
            ChatCompletionMessageFunctionToolCall(
                id=call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                type="function",
                function=Function(
                    name=call["name"],
                    arguments=args if isinstance(args, str) else json.dumps(args),
                ),
            )
        )
    return calls


class Completion:
    """One scripted reply rendered for one request, as ``openai`` types."""

    def __init__(self, reply: ScriptedReply, body: dict[str, Any]) -> None:
        self.reply = reply
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = reply.model or str(body.get("model") or "gpt-4o")
        self.want_logprobs = bool(body.get("logprobs"))
        self.top_n = int(body.get("top_logprobs") or 0) if self.want_logprobs else 0
        stream_options = body.get("stream_options") or {}
        self.include_usage = bool(stream_options.get("include_usage"))
        self.tokens = reply.token_list()
        self.logprobs = reply.logprob_list()
        self.tool_calls = _tool_calls(reply)
        self.finish_reason: Any = reply.finish_reason or (
            "tool_calls" if self.tool_calls else "stop"
        )
        if reply.prompt_tokens is not None:
            prompt_tokens = reply.prompt_tokens
        else:
            messages = body.get("messages") or []
            prompt_tokens = sum(3 + _count_tokens(_message_text(m)) for m in messages) + 3
        completion_tokens = len(self.tokens) + sum(
            1 + _count_tokens(c.function.arguments) for c in self.tool_calls
        )
        self.usage = CompletionUsage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=0, audio_tokens=0),
            completion_tokens_details=CompletionTokensDetails(
                reasoning_tokens=0,
                audio_tokens=0,
                accepted_prediction_tokens=0,
                rejected_prediction_tokens=0,
            ),
        )

    def _entries(self, tokens: Iterable[tuple[str, float]]) -> list[ChatCompletionTokenLogprob]:
        return [_logprob_entry(tok, lp, self.top_n) for tok, lp in tokens]

    def response(self) -> ChatCompletion:
        """The non-streaming ``chat.completion`` object."""
        message = ChatCompletionMessage(
            role="assistant",
            content=self.reply.content if (self.reply.content or not self.tool_calls) else None,
            refusal=None,
            annotations=[],
        )
        if self.tool_calls:
            message.tool_calls = list(self.tool_calls)  # set, hence sent
        logprobs = (
            completion_types.ChoiceLogprobs(
                content=self._entries(zip(self.tokens, self.logprobs, strict=True)),
                refusal=None,
            )
            if self.want_logprobs
            else None
        )
        return ChatCompletion(
            id=self.id,
            object="chat.completion",
            created=self.created,
            model=self.model,
            system_fingerprint="fp_fake",
            service_tier="default",
            choices=[
                completion_types.Choice(
                    index=0,
                    message=message,
                    logprobs=logprobs,
                    finish_reason=self.finish_reason,
                )
            ],
            usage=self.usage,
        )

    def _chunk(
        self,
        delta: chunk_types.ChoiceDelta,
        *,
        logprobs: chunk_types.ChoiceLogprobs | None = None,
        finish_reason: Any = None,
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            system_fingerprint="fp_fake",
            service_tier="default",
            choices=[
                chunk_types.Choice(
                    index=0, delta=delta, logprobs=logprobs, finish_reason=finish_reason
                )
            ],
            # With include_usage, every chunk but the last says "usage": null.
            **({"usage": None} if self.include_usage else {}),
        )

    def chunks(self) -> Iterator[ChatCompletionChunk]:
        """The streaming ``chat.completion.chunk`` objects, in order."""
        yield self._chunk(chunk_types.ChoiceDelta(role="assistant", content="", refusal=None))
        for tok, lp in zip(self.tokens, self.logprobs, strict=True):
            logprobs = (
                chunk_types.ChoiceLogprobs(content=self._entries([(tok, lp)]), refusal=None)
                if self.want_logprobs
                else None
            )
            yield self._chunk(chunk_types.ChoiceDelta(content=tok), logprobs=logprobs)
        for index, call in enumerate(self.tool_calls):
            head = chunk_types.ChoiceDeltaToolCall(
                index=index,
                id=call.id,
                type="function",
                function=chunk_types.ChoiceDeltaToolCallFunction(
                    name=call.function.name, arguments=""
                ),
            )
            yield self._chunk(chunk_types.ChoiceDelta(tool_calls=[head]))
            args = call.function.arguments
            step = max(1, math.ceil(len(args) / 3))
            for start in range(0, len(args), step):
                piece = chunk_types.ChoiceDeltaToolCall(
                    index=index,
                    function=chunk_types.ChoiceDeltaToolCallFunction(
                        arguments=args[start : start + step]
                    ),
                )
                yield self._chunk(chunk_types.ChoiceDelta(tool_calls=[piece]))
        yield self._chunk(chunk_types.ChoiceDelta(), finish_reason=self.finish_reason)
        if self.include_usage:
            yield ChatCompletionChunk(
                id=self.id,
                object="chat.completion.chunk",
                created=self.created,
                model=self.model,
                system_fingerprint="fp_fake",
                service_tier="default",
                choices=[],
                usage=self.usage,
            )


_ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_denied", None, "Permission denied."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout", None, "Request timed out."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for gpt-4o. Please try again shortly.",
    ),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error body for an HTTP ``status``: ``{"error": {message, type, param, code}}``."""
    err_type, code, default = _ERROR_DEFAULTS.get(status, ("server_error", None, "Error."))
    error = ErrorObject(message=message or default, type=err_type, param=None, code=code)
    return {"error": _wire(error)}


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (before the response, or between two stream events)."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection abruptly: no (further) response bytes."""


@dataclass(frozen=True)
class Respond:
    """Send a whole response: ``status``, ``headers`` (Content-Type among them), ``body``."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class StartStream:
    """Send a 200 status line and ``headers`` of an event stream; events follow."""

    headers: dict[str, str]


@dataclass(frozen=True)
class Event:
    """Send one piece of the streamed body (one ``data: ...`` server-sent event)."""

    data: bytes


Action: TypeAlias = Sleep | Drop | Respond | StartStream | Event


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Respond:
    return Respond(
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def _sse(payload: dict[str, Any] | str) -> Event:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return Event(f"data: {data}\n\n".encode())


# --------------------------------------------------------------------------- the fake


@dataclass
class RecordedRequest:
    """One HTTP request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body, or ``None`` when empty / not JSON."""
    raw: bytes = b""

    @property
    def json(self) -> dict[str, Any]:
        """The body as a dict (``{}`` when it is not a JSON object)."""
        return self.body if isinstance(self.body, dict) else {}


class FakeOpenAI:
    """The scripting and the protocol of a fake OpenAI API, without any transport.

    Args:
        responder: Optional ``Callable[[request_body], ScriptedReply | Fault | str]``
            used when the queue is empty.
        default_reply: Used when neither the queue nor a responder answers.
        model_ids: Models listed by ``GET /v1/models``.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        default_reply: ScriptedReply | None = None,
        model_ids: Iterable[str] = ("gpt-4o", "gpt-4o-mini"),
    ) -> None:
        self.responder: Responder | None = responder
        self.default_reply: ScriptedReply = default_reply or ScriptedReply()
        self.model_ids: list[str] = list(model_ids)
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        """Unexpected errors while answering (should stay empty)."""
        self.lock = threading.Lock()
        self._queue: deque[Script] = deque()

    @property
    def base_url(self) -> str:
        """The URL to pass as ``ChatOpenAI(base_url=...)`` (ends in ``/v1``)."""
        raise NotImplementedError

    # -- scripting

    def enqueue(self, *replies: Script) -> None:
        """Queue answers for the next chat requests, consumed in order."""
        with self.lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many queued answers are still unused."""
        with self.lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget queued answers and recorded requests."""
        with self.lock:
            self._queue.clear()
            self.requests.clear()

    def _coerce(self, script: Script) -> ScriptedReply:
        if isinstance(script, ScriptedReply):
            return script
        if isinstance(script, Fault):
            return replace(self.default_reply, fault=script)
        if isinstance(script, str):
            return ScriptedReply(content=script)
        raise TypeError(f"expected ScriptedReply, Fault or str, got {type(script).__name__}")

    def next_reply(self, body: dict[str, Any]) -> ScriptedReply:
        """Pick the answer for a chat request (queue, then responder, then default)."""
        with self.lock:
            script: Script | None = self._queue.popleft() if self._queue else None
        if script is None and self.responder is not None:
            script = self.responder(body)
        return self._coerce(script if script is not None else self.default_reply)

    # -- inspection

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completions requests received so far."""
        with self.lock:
            return [
                r.json
                for r in self.requests
                if r.method == "POST" and r.path.split("?")[0].endswith("/chat/completions")
            ]

    def model_object(self, model_id: str) -> dict[str, Any]:
        """A ``model`` object as ``GET /v1/models`` returns it."""
        return _wire(Model(id=model_id, object="model", created=1700000000, owned_by="fake"))

    # -- the protocol

    def record(
        self, method: str, path: str, headers: Iterable[tuple[str, str]], raw: bytes
    ) -> RecordedRequest:
        """Record a received request (headers lower-cased, a JSON body parsed)."""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        rec = RecordedRequest(
            method=method,
            path=path,
            headers={k.lower(): v for k, v in headers},
            body=body,
            raw=raw,
        )
        with self.lock:
            self.requests.append(rec)
        return rec

    def handle(
        self, method: str, path: str, headers: Iterable[tuple[str, str]], raw: bytes
    ) -> Generator[Action, None, None]:
        """Record a request and return the actions that answer it, in order.

        The request is recorded at once; the script is chosen when the first
        action is taken. A driver performs the actions as they come: sleeps
        and drops before a :class:`Respond` or :class:`StartStream`, events and
        sleeps (and perhaps a drop) after a :class:`StartStream`. The stream's
        body ends when the iterator does.
        """
        rec = self.record(method, path, headers, raw)
        return self._answer(rec)

    def _answer(self, rec: RecordedRequest) -> Generator[Action, None, None]:
        route = rec.path.split("?", 1)[0].rstrip("/")
        route = route[3:] if route.startswith("/v1") else route
        if rec.method == "GET" and route == "/models":
            yield _json_response(
                200, {"object": "list", "data": [self.model_object(m) for m in self.model_ids]}
            )
        elif rec.method == "GET" and route.startswith("/models/"):
            model_id = route[len("/models/") :]
            if model_id in self.model_ids:
                yield _json_response(200, self.model_object(model_id))
            else:
                yield _json_response(404, error_body(404))
        elif rec.method != "POST" or route != "/chat/completions":
            yield _json_response(404, error_body(404, f"Unknown path {rec.path}"))
        elif not isinstance(rec.body, dict):
            yield _json_response(400, error_body(400, "Request body is not a JSON object."))
        else:
            yield from self._chat(rec.body)

    def _chat(self, body: dict[str, Any]) -> Generator[Action, None, None]:
        reply = self.next_reply(body)
        fault = reply.fault or Fault()
        if fault.delay_s > 0:
            yield Sleep(fault.delay_s)
        if fault.drop:
            yield Drop()
            return
        if fault.status is not None:
            headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}", **fault.headers}
            if fault.retry_after_s is not None and fault.status in (429, 503):
                headers.setdefault("retry-after-ms", str(max(0, round(fault.retry_after_s * 1000))))
                headers.setdefault("retry-after", str(max(0, math.ceil(fault.retry_after_s))))
            yield _json_response(
                fault.status, error_body(fault.status, fault.error_message), headers
            )
            return
        completion = Completion(reply, body)
        if fault.malformed and not body.get("stream"):
            yield Respond(200, {"Content-Type": "application/json"}, b'{"id": "chatcmpl-x", "cho')
            return
        if not body.get("stream"):
            yield _json_response(200, _wire(completion.response()), {"x-request-id": completion.id})
            return
        yield StartStream(
            {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": completion.id,
            }
        )
        if fault.malformed:
            yield Event(b'data: {"id": "chatcmpl-x", "cho\n\n')
        for sent, chunk in enumerate(completion.chunks()):
            if fault.drop_after_chunks is not None and sent >= fault.drop_after_chunks:
                yield Drop()
                return
            if fault.end_after_chunks is not None and sent >= fault.end_after_chunks:
                break
            if sent and fault.chunk_delay_s > 0:
                yield Sleep(fault.chunk_delay_s)
            yield _sse(_wire(chunk))
        yield _sse("[DONE]")
