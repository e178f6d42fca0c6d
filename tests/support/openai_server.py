"""An OpenAI-compatible chat-completions server on 127.0.0.1, for integration tests.

The real ``openai`` SDK (and therefore ``langchain_openai.ChatOpenAI``) talks to
it over HTTP exactly as it would talk to api.openai.com, so tests exercise the
real request building, response parsing, streaming (SSE), retry, timeout and
connection-handling code paths without any network access or API key.

What it answers comes from :class:`tests.support.openai_fake.FakeOpenAI` (the
scripts and the wire format, shared with the socket-free
:class:`tests.support.openai_mock.MockOpenAI` of the unit tests); this module
only delivers those answers over HTTP/1.1. Only the standard library is used.
The server binds to 127.0.0.1 on an ephemeral port and serves from a daemon
thread.

Typical use::

    with FakeOpenAIServer() as server:
        server.enqueue(ScriptedReply("Paris is the capital of France."))
        server.enqueue(Fault(status=429))
        llm = ChatOpenAI(base_url=server.base_url, api_key="test-key", model="gpt-4o")
        ...
        assert server.chat_requests[0]["messages"][-1]["content"] == "..."
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.openai_fake import (
    Drop,
    Event,
    FakeOpenAI,
    Fault,
    RecordedRequest,
    Respond,
    Script,
    ScriptedReply,
    Sleep,
    StartStream,
    last_user_text,
    split_tokens,
)

__all__ = [
    "LOOPBACK_HOST",
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


# --------------------------------------------------------------------------- HTTP plumbing


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
        self.send_bytes(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        """Send a whole response with ``headers`` and a Content-Length."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
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
    """Performs the actions of :meth:`FakeOpenAI.handle` on the connection."""

    server: _OpenAIHTTPServer

    def _dispatch(self) -> None:
        actions = self.server.owner.handle(
            self.command, self.path, self.headers.items(), read_request_body(self)
        )
        streaming = False
        try:
            for action in actions:
                if isinstance(action, Sleep):
                    if self.server.closing.wait(action.seconds):
                        self.drop_connection()
                        return
                elif isinstance(action, Drop):
                    self.drop_connection()
                    return
                elif isinstance(action, Respond):
                    self.send_bytes(action.status, action.body, action.headers)
                elif isinstance(action, StartStream):
                    self.send_response(200)
                    for key, value in action.headers.items():
                        self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    streaming = True
                elif isinstance(action, Event):
                    self.wfile.write(f"{len(action.data):x}\r\n".encode() + action.data + b"\r\n")
            if streaming:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            actions.close()

    do_GET = _dispatch  # noqa: N815
    do_POST = _dispatch  # noqa: N815


class _OpenAIHTTPServer(LoopbackHTTPServer):
    def __init__(self, owner: FakeOpenAIServer) -> None:
        self.owner = owner
        super().__init__(_OpenAIHandler, owner.errors)


class FakeOpenAIServer(FakeOpenAI):
    """An OpenAI-compatible server on 127.0.0.1 (see the module docstring).

    Takes :class:`FakeOpenAI`'s arguments (``responder``, ``default_reply``, ``model_ids``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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
