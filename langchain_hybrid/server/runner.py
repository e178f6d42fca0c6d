"""Running the app: uvicorn in the foreground (``langchain-hybrid serve``) or in a thread.

:func:`serve_in_thread` starts the server on 127.0.0.1 (a free port by default) in a
background thread of this process and returns once it accepts connections: handy in
tests, notebooks and docs, and to serve a local tier next to the code that uses it.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_hybrid.server import create_app
    >>> app = create_app(GenericFakeChatModel(messages=iter(["Hi"])))
    >>> with serve_in_thread(app) as server:  # doctest: +SKIP
    ...     print(server.base_url)
    http://127.0.0.1:40123/v1
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["RunningServer", "serve", "serve_in_thread"]


class RunningServer:
    """A server running in a background thread; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._server.config.host)

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when asked for port 0)."""
        sockets = [s for server in self._server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL OpenAI clients take as ``base_url`` (ends in ``/v1``)."""
        return f"{self.url}/v1"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0
) -> RunningServer:
    """Start ``app`` with uvicorn in a daemon thread; return when it accepts connections."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="langchain-hybrid-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    return RunningServer(server, thread)


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")
