"""Where guards keep their state: in this process, or in a store that router replicas share.

A guard (:class:`~langchain_hybrid.routing.guards.CircuitBreaker`,
:class:`~langchain_hybrid.routing.guards.Budget`) keeps its state as a JSON-safe dict
under one key of a :class:`GuardStore` and changes it only through
:meth:`GuardStore.transact`: read the state, compute the new state and a result with a
pure function, write it back atomically. The default :class:`InMemoryStore` does that
under a lock; :class:`RedisStore` does it with a Redis transaction (``WATCH``/``MULTI``,
retried on conflict), so several replicas behind a load balancer agree on spending and
on whether the cloud's circuit is open.

A shared store needs one clock for all replicas, so its guards use wall-clock time
(``time.time``); the in-memory store keeps the monotonic clock.

Example:
    >>> store = InMemoryStore()
    >>> store.transact("hits", lambda state: ({"n": (state or {"n": 0})["n"] + 1}, "ok"))
    'ok'
    >>> store.transact("hits", lambda state: (state, state["n"]))
    1
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["GuardState", "GuardStore", "InMemoryStore", "RedisStore", "Transition"]

GuardState = dict[str, Any]
_R = TypeVar("_R")
#: A pure function from the stored state (None: nothing stored yet) to (new state, result).
#: A store may call it more than once (a shared store retries on a conflicting write).
Transition = Callable[[GuardState | None], tuple[GuardState, _R]]


@runtime_checkable
class GuardStore(Protocol):
    """Holds guard states by key and changes each one atomically."""

    def clock(self) -> float:
        """Seconds on the clock every user of the store shares."""
        ...

    def transact(self, key: str, transition: Transition[_R]) -> _R:
        """Apply ``transition`` to the state under ``key`` atomically; return its result."""
        ...


class InMemoryStore:
    """Guard state in this process (the default): a dict and a lock, the monotonic clock.

    Example:
        >>> InMemoryStore().transact("k", lambda state: ({"x": 1}, state))
    """

    def __init__(self) -> None:
        self._states: dict[str, GuardState] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "InMemoryStore()"

    def clock(self) -> float:
        """Monotonic seconds (``time.monotonic``)."""
        return time.monotonic()

    def transact(self, key: str, transition: Transition[_R]) -> _R:
        """Apply ``transition`` under the lock (held for a few arithmetic steps, never a call)."""
        with self._lock:
            state, result = transition(self._states.get(key))
            self._states[key] = state
            return result


class RedisStore:
    """Guard state in Redis, shared by every router replica that uses the same keys.

    Each guard's state is one JSON string under ``prefix + key``, changed in a Redis
    transaction (``WATCH`` the key, ``MULTI``/``SET``/``EXEC``, retried when another
    replica wrote in between), so concurrent replicas never lose an update. Guards on
    this store use wall-clock time, which the replicas share. Give each guard its own
    ``key`` (``CircuitBreaker(store=store, key="gpt-4o")``) when several guards of one
    kind share a store.

    Install the client with ``pip install 'langchain-hybrid[redis]'``.

    Args:
        client: a ``redis.Redis`` client (or anything with its ``pipeline``/``transaction``
            API, such as ``fakeredis.FakeRedis``); or pass ``url``.
        url: a Redis URL (``redis://host:6379/0``), used when ``client`` is None.
        prefix: the prefix of every key this store writes.
        ttl_s: seconds after its last change that a state expires (None: never), so the
            state of a guard nobody uses any more does not stay in Redis forever.

    Example:
        >>> import fakeredis
        >>> store = RedisStore(fakeredis.FakeRedis())
        >>> store.transact("spent", lambda state: ({"usd": 0.5}, None))
        >>> store.transact("spent", lambda state: (state, state["usd"]))
        0.5
    """

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        prefix: str = "langchain-hybrid:guard:",
        ttl_s: float | None = 7 * 24 * 3600,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisStore needs a redis client or url='redis://host:6379/0'")
            try:
                import redis
            except ImportError as e:
                raise ImportError(
                    "RedisStore needs the redis client: pip install 'langchain-hybrid[redis]'"
                ) from e
            client = redis.Redis.from_url(url)
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be a number > 0 or None, got {ttl_s!r}")
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"

    def clock(self) -> float:
        """Wall-clock seconds (``time.time``): replicas on several machines share it."""
        return time.time()

    def transact(self, key: str, transition: Transition[_R]) -> _R:
        """Apply ``transition`` in a Redis transaction (retried if another writer came first)."""
        name = self.prefix + key
        outcome: list[_R] = []

        def attempt(pipe: Any) -> None:
            raw = pipe.get(name)
            state, result = transition(json.loads(raw) if raw is not None else None)
            pipe.multi()
            if self.ttl_s is None:
                pipe.set(name, json.dumps(state))
            else:
                pipe.set(name, json.dumps(state), px=int(self.ttl_s * 1000))
            outcome[:] = [result]

        self.client.transaction(attempt, name)
        return outcome[0]
