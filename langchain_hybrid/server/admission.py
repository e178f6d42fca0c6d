"""Admission control: at most ``max_concurrency`` chat requests run, ``max_queue`` wait.

A request past both bounds is refused at once with 429 and ``Retry-After`` (never left
hanging); an admitted one waits for a slot in arrival order.

Example:
    >>> import asyncio
    >>> from langchain_hybrid.server.settings import ServerSettings
    >>> gate = Admission(ServerSettings(max_concurrency=1, max_queue=0))
    >>> async def demo():
    ...     first = gate.admit()
    ...     await first.acquire()
    ...     try:
    ...         gate.admit()
    ...     except HTTPError as e:
    ...         print(e.status, e.headers["Retry-After"])
    ...     first.release()
    ...     return gate.admitted
    >>> asyncio.run(demo())
    429 1
    0
"""

from __future__ import annotations

import asyncio

from langchain_hybrid.server.errors import HTTPError
from langchain_hybrid.server.settings import ServerSettings

__all__ = ["Admission", "Ticket"]


class Ticket:
    """One admitted request: wait for a slot with :meth:`acquire`; :meth:`release` once done."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._holding = False
        self._released = False

    async def acquire(self) -> None:
        """Wait for a free slot (the request counts as queued until then)."""
        await self._admission._semaphore().acquire()
        self._holding = True

    def release(self) -> None:
        """Give the slot (or the place in the queue) back; later calls do nothing."""
        if self._released:
            return
        self._released = True
        if self._holding:
            self._admission._semaphore().release()
        self._admission.admitted -= 1


class Admission:
    """Counts admitted requests and hands out slots; see the module docstring."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.admitted = 0
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:
            self._sem, self._loop = asyncio.Semaphore(self.settings.max_concurrency), loop
        return self._sem

    def admit(self) -> Ticket:
        """Admit one request, or raise the 429 ``HTTPError`` when the server is full."""
        if self.admitted >= self.settings.max_admitted:
            raise HTTPError(
                429,
                f"The server is busy: {self.settings.max_concurrency} requests are running "
                f"and {self.settings.max_queue} waiting. Retry after "
                f"{self.settings.retry_after_s} s.",
                "rate_limit_error",
                code="server_busy",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        self.admitted += 1
        return Ticket(self)
