"""A cooperative early stop: the route ends a tier's stream early, the tier still reports its usage.

When the route stops a local answer early (early escalation), closing the tier's stream
would end the tier's run as an error (LangChain ends a closed stream with
``on_llm_error``), and the tokens the model computed would reach neither
``UsageMetadataCallbackHandler`` nor LangSmith's token totals. Instead, the route's driver
wraps each tier stream in :class:`StoppableStream` (:class:`AsyncStoppableStream`): while
the tier's code runs, :func:`on_early_stop` lets a tier that can stop cleanly register how
(``ChatTransformers`` registers its request's cancel). Closing the wrapper first asks those
tiers to stop, then drains their stream, which now ends within a token with the usage and
``finish_reason="cancelled"``, so the run ends normally; a tier that registered nothing is
closed as before.

Example:
    >>> def tier():
    ...     stopped = []
    ...     on_early_stop(lambda: stopped.append(True))
    ...     for word in ["a", "b", "c", "d"]:
    ...         if stopped:
    ...             yield "usage: 1 token"
    ...             return
    ...         yield word
    >>> stream = StoppableStream(tier())
    >>> next(stream)
    'a'
    >>> stream.close()  # asks the tier to stop; returns what it still sent
    ['usage: 1 token']
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

__all__ = ["AsyncStoppableStream", "StoppableStream", "on_early_stop"]

_LISTENERS: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "langchain_hybrid_early_stop", default=None
)


def on_early_stop(stop: Callable[[], None]) -> None:
    """Register how the stream being opened stops cleanly (a no-op outside a route)."""
    listeners = _LISTENERS.get()
    if listeners is not None:
        listeners.append(stop)


class _Stoppable:
    """What the sync and async wrappers share: the listeners and the context they run in."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self.drained: list[Any] = []

    @contextlib.contextmanager
    def _listening(self) -> Iterator[None]:
        token = _LISTENERS.set(self._listeners)
        try:
            yield
        finally:
            _LISTENERS.reset(token)

    def _stopping(self, inner: object) -> bool:
        """Ask every registered tier to stop; whether the stream must be drained first."""
        if inner is None:
            return False
        for stop in self._listeners:
            stop()
        return bool(self._listeners)


class StoppableStream(_Stoppable):
    """A tier's stream that closes cooperatively (see the module docstring)."""

    def __init__(self, stream: Iterator[Any]) -> None:
        super().__init__()
        self._inner: Iterator[Any] | None = stream

    def __iter__(self) -> StoppableStream:
        return self

    def __next__(self) -> Any:
        if self._inner is None:
            raise StopIteration
        with self._listening():
            return next(self._inner)

    def close(self) -> list[Any]:
        """Stop the tier cleanly when it can, then close it; return the chunks drained."""
        inner, self._inner = self._inner, None
        try:
            if self._stopping(inner):
                with self._listening():
                    self.drained.extend(cast(Iterator[Any], inner))
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        return self.drained


class AsyncStoppableStream(_Stoppable):
    """Async twin of :class:`StoppableStream`."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        super().__init__()
        self._inner: AsyncIterator[Any] | None = stream

    def __aiter__(self) -> AsyncStoppableStream:
        return self

    async def __anext__(self) -> Any:
        if self._inner is None:
            raise StopAsyncIteration
        with self._listening():
            return await anext(self._inner)

    async def aclose(self) -> list[Any]:
        """Async twin of :meth:`StoppableStream.close`."""
        inner, self._inner = self._inner, None
        try:
            if self._stopping(inner):
                with self._listening():
                    self.drained += [item async for item in cast(AsyncIterator[Any], inner)]
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
        return self.drained
