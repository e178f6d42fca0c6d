"""The fake OpenAI API as an ``httpx.MockTransport``: the same answers, no socket.

:class:`MockOpenAI` performs the actions of :meth:`FakeOpenAI.handle` (the
scripts and wire format shared with the HTTP :class:`FakeOpenAIServer`) inside
httpx, for ``ChatOpenAI(http_client=..., http_async_client=...)`` and
``openai.OpenAI(http_client=...)``. What a real connection would do, it does:

* ``Fault(drop=True)``: ``httpx.RemoteProtocolError`` ("Server disconnected
  without sending a response."), which the openai SDK reports as
  ``APIConnectionError``;
* ``Fault(drop_after_chunks=N)``: the streamed body raises
  ``httpx.RemoteProtocolError`` after N events (an incomplete chunked read);
* ``Fault(delay_s=...)`` and ``Fault(chunk_delay_s=...)``: a wait longer than
  the request's read timeout (``request.extensions["timeout"]["read"]``) raises
  ``httpx.ReadTimeout`` after that timeout, as httpx does; shorter waits sleep
  (``asyncio.sleep`` in the async transport).

An exception inside the fake itself (say, a responder with a bug) is recorded
in ``errors`` and raised into the test as it is, with its own traceback.

Typical use::

    mock = MockOpenAI()
    mock.enqueue(ScriptedReply("Paris."), Fault(status=429))
    llm = ChatOpenAI(
        base_url=mock.base_url, api_key="test-key", model="gpt-4o",
        http_client=mock.http_client(), http_async_client=mock.http_async_client(),
    )

(``tests.support.fixtures.make_chat_openai(mock)`` does exactly that.)
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import httpx

from tests.support.openai_fake import (
    Action,
    Drop,
    Event,
    FakeOpenAI,
    Respond,
    Sleep,
    StartStream,
)

__all__ = ["MockOpenAI"]

_NO_RESPONSE = "Server disconnected without sending a response."
_INCOMPLETE_BODY = (
    "peer closed connection without sending complete message body (incomplete chunked read)"
)

Actions = Generator[Action, None, None]


def _read_timeout(request: httpx.Request) -> float | None:
    timeout: dict[str, Any] = request.extensions.get("timeout") or {}
    value = timeout.get("read")
    return None if value is None else float(value)


def _sleep(wait: Sleep, request: httpx.Request) -> None:
    """Wait like a client reading from a silent server: at most the read timeout."""
    limit = _read_timeout(request)
    if limit is not None and wait.seconds > limit:
        time.sleep(limit)
        raise httpx.ReadTimeout("The read operation timed out", request=request)
    time.sleep(wait.seconds)


async def _asleep(wait: Sleep, request: httpx.Request) -> None:
    """:func:`_sleep` for the event loop."""
    limit = _read_timeout(request)
    if limit is not None and wait.seconds > limit:
        await asyncio.sleep(limit)
        raise httpx.ReadTimeout("The read operation timed out", request=request)
    await asyncio.sleep(wait.seconds)


class _SyncEvents(httpx.SyncByteStream):
    """The rest of a streamed answer, produced as the client reads it."""

    def __init__(self, actions: Actions, request: httpx.Request) -> None:
        self._actions = actions
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        for action in self._actions:
            if isinstance(action, Event):
                yield action.data
            elif isinstance(action, Sleep):
                _sleep(action, self._request)
            elif isinstance(action, Drop):
                raise httpx.RemoteProtocolError(_INCOMPLETE_BODY, request=self._request)

    def close(self) -> None:
        self._actions.close()


class _AsyncEvents(httpx.AsyncByteStream):
    """The rest of a streamed answer, produced as the async client reads it."""

    def __init__(self, actions: Actions, request: httpx.Request) -> None:
        self._actions = actions
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for action in self._actions:
            if isinstance(action, Event):
                yield action.data
            elif isinstance(action, Sleep):
                await _asleep(action, self._request)
            elif isinstance(action, Drop):
                raise httpx.RemoteProtocolError(_INCOMPLETE_BODY, request=self._request)

    async def aclose(self) -> None:
        self._actions.close()


class MockOpenAI(FakeOpenAI):
    """The fake OpenAI API behind an ``httpx.MockTransport`` (see the module docstring).

    Args:
        responder: Optional ``Callable[[request_body], ScriptedReply | Fault | str]``
            used when the queue is empty.
        default_reply: Used when neither the queue nor a responder answers.
        model_ids: Models listed by ``GET /v1/models``.
    """

    base_url = "http://fake-openai.test/v1"
    """What to pass as ``base_url``; never resolved, no request leaves the process."""

    # -- clients

    def transport(self) -> httpx.MockTransport:
        """A transport for ``httpx.Client``."""
        return httpx.MockTransport(self._handle_sync)

    def async_transport(self) -> httpx.MockTransport:
        """A transport for ``httpx.AsyncClient``."""
        return httpx.MockTransport(self._handle_async)

    def http_client(self) -> httpx.Client:
        """A new ``httpx.Client`` answered by this fake."""
        return httpx.Client(transport=self.transport())

    def http_async_client(self) -> httpx.AsyncClient:
        """A new ``httpx.AsyncClient`` answered by this fake."""
        return httpx.AsyncClient(transport=self.async_transport())

    # -- the handlers: the actions until the response, then the body as a stream

    def _actions(self, request: httpx.Request) -> Actions:
        return self.handle(
            request.method,
            request.url.raw_path.decode("ascii"),
            request.headers.multi_items(),
            request.content,
        )

    def _respond(self, action: Respond, actions: Actions, request: httpx.Request) -> httpx.Response:
        actions.close()
        return httpx.Response(
            action.status, headers=action.headers, content=action.body, request=request
        )

    def _failed(self, actions: Actions) -> None:
        """Clean up after an exception; record it when it is not a scripted transport error."""
        actions.close()
        error = sys.exc_info()[1]
        if isinstance(error, Exception) and not isinstance(error, httpx.TransportError):
            self.errors.append(traceback.format_exc())

    def _handle_sync(self, request: httpx.Request) -> httpx.Response:
        actions = self._actions(request)
        try:
            for action in actions:
                if isinstance(action, Sleep):
                    _sleep(action, request)
                elif isinstance(action, Drop):
                    raise httpx.RemoteProtocolError(_NO_RESPONSE, request=request)
                elif isinstance(action, Respond):
                    return self._respond(action, actions, request)
                elif isinstance(action, StartStream):
                    stream = _SyncEvents(actions, request)
                    return httpx.Response(200, headers=action.headers, stream=stream)
        except BaseException:
            self._failed(actions)
            raise
        raise RuntimeError(f"no response to {request.method} {request.url}")

    async def _handle_async(self, request: httpx.Request) -> httpx.Response:
        actions = self._actions(request)
        try:
            for action in actions:
                if isinstance(action, Sleep):
                    await _asleep(action, request)
                elif isinstance(action, Drop):
                    raise httpx.RemoteProtocolError(_NO_RESPONSE, request=request)
                elif isinstance(action, Respond):
                    return self._respond(action, actions, request)
                elif isinstance(action, StartStream):
                    stream = _AsyncEvents(actions, request)
                    return httpx.Response(200, headers=action.headers, stream=stream)
        except BaseException:
            self._failed(actions)
            raise
        raise RuntimeError(f"no response to {request.method} {request.url}")
