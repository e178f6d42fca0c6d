"""An OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

The real ``openai`` SDK (and therefore ``langchain_openai.ChatOpenAI``) talks to
it over HTTP exactly as it would talk to api.openai.com, so tests exercise the
real request building, response parsing, streaming (SSE), retry and timeout
code paths without any network access or API key.

Only the standard library is used. The server binds to 127.0.0.1 on an
ephemeral port and serves from a daemon thread.

Typical use::

    with FakeOpenAIServer() as server:
        server.enqueue(ScriptedReply("Paris is the capital of France."))
        server.enqueue(Fault(status=429))
        llm = ChatOpenAI(base_url=server.base_url, api_key="test-key", model="gpt-4o")
        ...
        assert server.chat_requests[0]["messages"][-1]["content"] == "..."

How a chat request is answered, first match wins:

1. the next item of the queue filled by :meth:`FakeOpenAIServer.enqueue`;
2. ``server.responder(request_body)`` when a responder is set;
3. ``server.default_reply``.

A queue item or a responder's return value may be a :class:`ScriptedReply`, a
plain ``str`` (the reply's content) or a bare :class:`Fault` (the default reply
with that fault applied).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias

__all__ = [
    "Fault",
    "FakeOpenAIServer",
    "JSONRequestHandler",
    "LoopbackHTTPServer",
    "RecordedRequest",
    "Script",
    "ScriptedReply",
    "last_user_text",
    "read_request_body",
    "split_tokens",
]

LOOPBACK_HOST = "127.0.0.1"

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
        delay_s: Sleep this long before answering (before the status line).
            Interrupted when the server closes.
        status: Answer with this HTTP error status (e.g. 429, 500, 503) and an
            OpenAI-style error body instead of a completion.
        drop: Close the connection without sending any response.
        drop_after_chunks: Streaming only: close the connection abruptly (no
            terminating chunk, no ``[DONE]``) after this many ``data:`` events.
            Ignored for non-streaming requests.
        chunk_delay_s: Streaming only: sleep between ``data:`` events.
        retry_after_s: With ``status`` 429 or 503: sent as ``retry-after-ms``
            (milliseconds, which the openai SDK prefers) and ``retry-after``
            (whole seconds, rounded up). ``None`` sends neither header.
        error_message: Message of the error body (a default per status).
        headers: Extra response headers for the error response.
    """

    delay_s: float = 0.0
    status: int | None = None
    drop: bool = False
    drop_after_chunks: int | None = None
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


def _logprob_entry(token: str, logprob: float, top_n: int) -> dict[str, Any]:
    """An OpenAI ``ChatCompletionTokenLogprob`` for ``token``.

    ``top_logprobs`` holds ``top_n`` entries: the token itself plus synthetic
    alternatives that share the remaining probability mass (halving each time),
    sorted by decreasing logprob.
    """
    top: list[dict[str, Any]] = []
    if top_n > 0:
        top.append({"token": token, "logprob": logprob, "bytes": list(token.encode())})
        remaining = 1.0 - math.exp(min(logprob, 0.0))
        for k in range(1, top_n):
            alt = f"{token}\u2020{k}"  # "tok†1", "tok†2", ...
            alt_lp = math.log(remaining) - k * math.log(2.0) if remaining > 0 else _MIN_LOGPROB
            top.append({"token": alt, "logprob": alt_lp, "bytes": list(alt.encode())})
        top.sort(key=lambda e: e["logprob"], reverse=True)
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": top,
    }


def _tool_call_payloads(reply: ScriptedReply) -> list[dict[str, Any]]:
    calls = []
    for call in reply.tool_calls:
        args = call.get("arguments", {})
        calls.append(
            {
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return calls


class _Completion:
    """Everything needed to render one scripted reply for one request."""

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
        self.tool_calls = _tool_call_payloads(reply)
        self.finish_reason = reply.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        if reply.prompt_tokens is not None:
            prompt_tokens = reply.prompt_tokens
        else:
            messages = body.get("messages") or []
            prompt_tokens = sum(3 + _count_tokens(_message_text(m)) for m in messages) + 3
        completion_tokens = len(self.tokens) + sum(
            1 + _count_tokens(c["function"]["arguments"]) for c in self.tool_calls
        )
        self.usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _entries(self, tokens: Iterable[tuple[str, float]]) -> list[dict[str, Any]]:
        return [_logprob_entry(tok, lp, self.top_n) for tok, lp in tokens]

    def response(self) -> dict[str, Any]:
        """The non-streaming ``chat.completion`` object."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.reply.content if (self.reply.content or not self.tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        logprobs = (
            {
                "content": self._entries(zip(self.tokens, self.logprobs, strict=True)),
                "refusal": None,
            }
            if self.want_logprobs
            else None
        )
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage,
        }

    def _chunk(
        self,
        delta: dict[str, Any],
        *,
        logprobs: dict[str, Any] | None = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": logprobs,
                    "finish_reason": finish_reason,
                }
            ],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def chunks(self) -> Iterator[dict[str, Any]]:
        """The streaming ``chat.completion.chunk`` objects, in order."""
        yield self._chunk({"role": "assistant", "content": "", "refusal": None})
        for tok, lp in zip(self.tokens, self.logprobs, strict=True):
            logprobs = (
                {"content": self._entries([(tok, lp)]), "refusal": None}
                if self.want_logprobs
                else None
            )
            yield self._chunk({"content": tok}, logprobs=logprobs)
        for index, call in enumerate(self.tool_calls):
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield self._chunk({"tool_calls": [head]})
            args = call["function"]["arguments"]
            step = max(1, math.ceil(len(args) / 3))
            for start in range(0, len(args), step):
                piece = {"index": index, "function": {"arguments": args[start : start + step]}}
                yield self._chunk({"tool_calls": [piece]})
        yield self._chunk({}, finish_reason=self.finish_reason)
        if self.include_usage:
            yield {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "service_tier": "default",
                "choices": [],
                "usage": self.usage,
            }


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


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    err_type, code, default = _ERROR_DEFAULTS.get(status, ("server_error", None, "Error."))
    return {
        "error": {
            "message": message or default,
            "type": err_type,
            "param": None,
            "code": code,
        }
    }


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class RecordedRequest:
    """One HTTP request the server received."""

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


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """Read a request body framed by Content-Length or chunked encoding."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts = []
        while True:
            size_line = handler.rfile.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(parts)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer on 127.0.0.1 that can be shut down promptly.

    Tracks open connections so that :meth:`stop` can cut idle keep-alive
    connections (and sleeping handlers) when the test ends.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], errors: list[str]) -> None:
        self.closing = threading.Event()
        self.errors = errors
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((LOOPBACK_HOST, 0), handler)

    @property
    def port(self) -> int:
        """The bound ephemeral port."""
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record unexpected handler errors in ``errors`` instead of printing them.

        Clients resetting idle keep-alive connections (and anything during
        shutdown) are normal and ignored.
        """
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError) or self.closing.is_set():
            return
        self.errors.append(traceback.format_exc())

    def start(self, name: str) -> None:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut all connections and release the port."""
        self.closing.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()


class JSONRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with JSON, recording and drop helpers; silent."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeServer/1.0"

    def setup(self) -> None:
        super().setup()
        # Small writes (headers, then body; SSE events) must not wait for
        # delayed ACKs: that costs ~40 ms per response on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def drop_connection(self) -> None:
        """Close the socket abruptly, without (the rest of) a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def record(
        self, owner_requests: list[RecordedRequest], lock: threading.Lock
    ) -> RecordedRequest:
        raw = read_request_body(self)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        rec = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
        )
        with lock:
            owner_requests.append(rec)
        return rec


# --------------------------------------------------------------------------- the server


class _OpenAIHandler(JSONRequestHandler):
    server: _OpenAIHTTPServer

    def _route(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[3:] if path.startswith("/v1") else path

    def do_GET(self) -> None:  # noqa: N802
        owner = self.server.owner
        self.record(owner.requests, owner.lock)
        route = self._route()
        if route == "/models":
            self.send_json(
                200, {"object": "list", "data": [owner.model_object(m) for m in owner.model_ids]}
            )
        elif route.startswith("/models/"):
            model_id = route[len("/models/") :]
            if model_id in owner.model_ids:
                self.send_json(200, owner.model_object(model_id))
            else:
                self.send_json(404, _error_body(404))
        else:
            self.send_json(404, _error_body(404, f"Unknown path {self.path}"))

    def do_POST(self) -> None:  # noqa: N802
        owner = self.server.owner
        rec = self.record(owner.requests, owner.lock)
        if self._route() != "/chat/completions":
            self.send_json(404, _error_body(404, f"Unknown path {self.path}"))
            return
        if not isinstance(rec.body, dict):
            self.send_json(400, _error_body(400, "Request body is not a JSON object."))
            return
        body = rec.body
        reply = owner.next_reply(body)
        fault = reply.fault or Fault()
        if fault.delay_s > 0 and self.server.closing.wait(fault.delay_s):
            self.drop_connection()
            return
        if fault.drop:
            self.drop_connection()
            return
        if fault.status is not None:
            headers = {"x-request-id": f"req_{uuid.uuid4().hex[:16]}", **fault.headers}
            if fault.retry_after_s is not None and fault.status in (429, 503):
                headers.setdefault("retry-after-ms", str(max(0, round(fault.retry_after_s * 1000))))
                headers.setdefault("retry-after", str(max(0, math.ceil(fault.retry_after_s))))
            self.send_json(fault.status, _error_body(fault.status, fault.error_message), headers)
            return
        completion = _Completion(reply, body)
        if body.get("stream"):
            self._stream(completion, fault)
        else:
            self.send_json(200, completion.response(), {"x-request-id": completion.id})

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _stream(self, completion: _Completion, fault: Fault) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", completion.id)
        self.end_headers()
        try:
            for sent, chunk in enumerate(completion.chunks()):
                if fault.drop_after_chunks is not None and sent >= fault.drop_after_chunks:
                    self.drop_connection()
                    return
                if (
                    sent
                    and fault.chunk_delay_s > 0
                    and self.server.closing.wait(fault.chunk_delay_s)
                ):
                    self.drop_connection()
                    return
                self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _OpenAIHTTPServer(LoopbackHTTPServer):
    def __init__(self, owner: FakeOpenAIServer) -> None:
        self.owner = owner
        super().__init__(_OpenAIHandler, owner.errors)


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 (see the module docstring).

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
        """Unexpected errors inside request handlers (should stay empty)."""
        self.lock = threading.Lock()
        self._queue: deque[Script] = deque()
        self._httpd: _OpenAIHTTPServer | None = None

    # -- lifecycle

    def start(self) -> FakeOpenAIServer:
        """Bind an ephemeral port on 127.0.0.1 and serve in a daemon thread."""
        if self._httpd is None:
            self._httpd = _OpenAIHTTPServer(self)
            self._httpd.start(name=f"fake-openai-{self._httpd.port}")
        return self

    def close(self) -> None:
        """Stop the server; pending delays are cut short and connections closed."""
        if self._httpd is not None:
            self._httpd.stop()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass as ``ChatOpenAI(base_url=...)``."""
        return f"{self.url}/v1"

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
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "fake"}
