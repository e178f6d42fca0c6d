"""Stateful guards around the cloud tier: a circuit breaker and a spending budget.

A guard is asked before each cloud call (:meth:`CloudGuard.acquire`) and told how it went
afterwards (:meth:`Permit.release`). When a guard refuses, the route answers locally and
the decision's reason says why (``cloud_circuit_open``, ``budget_exhausted``). Guards hold
state, so they live on the model (``ChatHybrid(circuit_breaker=..., budget=...)``), not in
the saved :class:`~langchain_hybrid.routing.policy.RoutingPolicy`; pass the same object to
several models to share it. Every guard is thread- and async-safe (a lock held for a few
arithmetic steps, never across a call).

A guard keeps its state in a :class:`~langchain_hybrid.routing.state.GuardStore`: by
default in this process; with ``store=RedisStore(...)`` in Redis, so router replicas
behind a load balancer share one budget and one circuit state.

Example:
    >>> breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60)
    >>> for _ in range(2):
    ...     breaker.acquire().release(CloudOutcome(failure="unavailable"))
    >>> breaker.state, breaker.acquire() is None
    ('open', True)
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from langchain_hybrid.routing.decision import RouteReason
from langchain_hybrid.routing.failures import FAILURE_KINDS, FailureKind
from langchain_hybrid.routing.state import GuardState, GuardStore, InMemoryStore

__all__ = [
    "Budget",
    "CircuitBreaker",
    "CircuitState",
    "CloudGuard",
    "CloudOutcome",
    "Permit",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class CloudOutcome:
    """How one cloud call went: ``failure`` is None on success; what it cost.

    Example:
        >>> CloudOutcome(cost_usd=0.01, tokens=500).ok
        True
    """

    failure: FailureKind | None = None
    cost_usd: float = 0.0
    tokens: int = 0

    @property
    def ok(self) -> bool:
        """Whether the cloud answered."""
        return self.failure is None


class Permit:
    """Leave to make one cloud call; release it exactly once with the call's outcome."""

    def __init__(self, on_release: Callable[[CloudOutcome | None], None]) -> None:
        self._on_release: Callable[[CloudOutcome | None], None] | None = on_release

    def release(self, outcome: CloudOutcome | None = None) -> None:
        """Report the call's outcome (None: the call was not made after all).

        Example:
            >>> Permit(lambda outcome: None).release()
        """
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release(outcome)


class CloudGuard(ABC):
    """A stateful check before each cloud call, told each call's outcome."""

    #: The decision reason when this guard refuses a call.
    reason: ClassVar[RouteReason]

    @abstractmethod
    def available(self) -> bool:
        """Whether a call would be allowed now (no reservation is made)."""

    @abstractmethod
    def acquire(self) -> Permit | None:
        """Return a permit for one cloud call, or None to refuse it."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """Return the guard's state and figures as a JSON-safe dict."""


CircuitState = Literal["closed", "open", "half_open"]

#: Seconds after which a permit never released (a replica that died mid-call) is forgotten,
#: when the guard's store is shared; in process, permits are always released.
SHARED_LEASE_S = 300.0


def _store_and_clock(
    store: GuardStore | None, clock: Clock | None, lease_s: float | None
) -> tuple[GuardStore, Clock, float | None]:
    if lease_s is not None and not lease_s > 0:
        raise ValueError(f"lease_s must be a number > 0 or None, got {lease_s!r}")
    if store is None:
        return InMemoryStore(), clock or time.monotonic, lease_s
    if not isinstance(store, GuardStore):
        raise TypeError(
            f"store must be a GuardStore (InMemoryStore, RedisStore, ...), got {store!r}"
        )
    shared = not isinstance(store, InMemoryStore)
    lease = lease_s if lease_s is not None else (SHARED_LEASE_S if shared else None)
    return store, clock or store.clock, lease


class CircuitBreaker(CloudGuard):
    """Skip the cloud for a cool-down after ``failure_threshold`` consecutive failures.

    After the cool-down one probe call is let through (``half_open``): if it succeeds the
    circuit closes, if it fails the circuit opens for another cool-down. Failures of the
    kinds in ``counts`` count (by default everything but ``bad_request``, which is the
    request's fault, not the cloud's); a success resets the count.

    Args:
        failure_threshold: consecutive failures that open the circuit.
        cooldown_s: seconds the circuit stays open before a probe.
        counts: the failure kinds that count (see :mod:`~langchain_hybrid.routing.failures`).
        clock: seconds (for tests); default the store's clock (monotonic in process,
            wall-clock for a shared store).
        store: where the state lives (default: this process); a
            :class:`~langchain_hybrid.routing.state.RedisStore` shares it between replicas.
        key: the state's key in the store (give each breaker sharing a store its own).
        lease_s: seconds after which a probe never reported is forgotten (default: never
            in process, 300 s with a shared store, where a replica may die mid-call).

    Example:
        >>> now = [0.0]
        >>> breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=lambda: now[0])
        >>> breaker.acquire().release(CloudOutcome(failure="timeout"))
        >>> breaker.available()
        False
        >>> now[0] = 11.0
        >>> probe = breaker.acquire()
        >>> breaker.state, breaker.acquire() is None  # one probe at a time
        ('half_open', True)
        >>> probe.release(CloudOutcome())
        >>> breaker.state
        'closed'
    """

    reason: ClassVar[RouteReason] = "cloud_circuit_open"

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        *,
        counts: frozenset[FailureKind] | None = None,
        clock: Clock | None = None,
        store: GuardStore | None = None,
        key: str = "circuit",
        lease_s: float | None = None,
    ) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int):
            raise ValueError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        if not cooldown_s >= 0:
            raise ValueError(f"cooldown_s must be a number >= 0, got {cooldown_s!r}")
        counted = (
            frozenset(counts) if counts is not None else frozenset(FAILURE_KINDS) - {"bad_request"}
        )
        unknown = counted - set(FAILURE_KINDS)
        if unknown:
            raise ValueError(
                f"counts has unknown failure kinds {sorted(unknown)}; use {FAILURE_KINDS}"
            )
        self.failure_threshold = failure_threshold
        self.cooldown_s = float(cooldown_s)
        self.counts = counted
        self.store, self._clock, self.lease_s = _store_and_clock(store, clock, lease_s)
        self.key = key

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_threshold={self.failure_threshold}, "
            f"cooldown_s={self.cooldown_s})"
        )

    @staticmethod
    def _fresh(state: GuardState | None) -> GuardState:
        base: GuardState = {
            "failures": 0,
            "opened_at": None,
            "probe_at": None,
            "times_opened": 0,
            "skipped": 0,
        }
        return {**base, **(state or {})}

    def _state_of(self, s: GuardState, now: float) -> CircuitState:
        if s["opened_at"] is None:
            return "closed"
        if now - s["opened_at"] < self.cooldown_s:
            return "open"
        return "half_open"

    def _probing(self, s: GuardState, now: float) -> bool:
        probe_at = s["probe_at"]
        if probe_at is None:
            return False
        return self.lease_s is None or now - probe_at < self.lease_s

    def _read(self) -> tuple[GuardState, float]:
        now = self._clock()
        state = self.store.transact(self.key, lambda s: (self._fresh(s), self._fresh(s)))
        return state, now

    @property
    def state(self) -> CircuitState:
        """``closed`` (calls go through), ``open`` (skipped) or ``half_open`` (probing)."""
        s, now = self._read()
        return self._state_of(s, now)

    def available(self) -> bool:
        """Whether a call would be let through now (closed, or half-open with no probe)."""
        s, now = self._read()
        state = self._state_of(s, now)
        return state == "closed" or (state == "half_open" and not self._probing(s, now))

    def acquire(self) -> Permit | None:
        """Return a permit (the probe, when half-open), or None while the circuit is open."""
        now = self._clock()

        def transition(stored: GuardState | None) -> tuple[GuardState, tuple[bool, bool]]:
            s = self._fresh(stored)
            state = self._state_of(s, now)
            if state == "open" or (state == "half_open" and self._probing(s, now)):
                return {**s, "skipped": s["skipped"] + 1}, (False, False)
            probe = state == "half_open"
            return ({**s, "probe_at": now} if probe else s), (True, probe)

        allowed, probe = self.store.transact(self.key, transition)
        if not allowed:
            return None
        return Permit(lambda outcome: self._release(outcome, probe))

    def _release(self, outcome: CloudOutcome | None, probe: bool) -> None:
        now = self._clock()

        def transition(stored: GuardState | None) -> tuple[GuardState, None]:
            s = self._fresh(stored)
            if probe:
                s["probe_at"] = None
            if outcome is None:
                return s, None
            if outcome.ok:
                s["failures"], s["opened_at"] = 0, None
            elif outcome.failure in self.counts:
                s["failures"] += 1
                if probe or s["failures"] >= self.failure_threshold:
                    if s["opened_at"] is None or probe:
                        s["times_opened"] += 1
                    s["opened_at"] = now
            return s, None

        self.store.transact(self.key, transition)

    def reset(self) -> None:
        """Close the circuit and forget the failures (e.g. after fixing the credentials).

        Example:
            >>> CircuitBreaker().reset()
        """

        def transition(stored: GuardState | None) -> tuple[GuardState, None]:
            s = self._fresh(stored)
            return {**s, "failures": 0, "opened_at": None, "probe_at": None}, None

        self.store.transact(self.key, transition)

    def snapshot(self) -> dict[str, Any]:
        """Return ``state``, ``consecutive_failures``, ``times_opened`` and ``skipped``.

        Example:
            >>> CircuitBreaker().snapshot()["state"]
            'closed'
        """
        s, now = self._read()
        return {
            "state": self._state_of(s, now),
            "consecutive_failures": s["failures"],
            "times_opened": s["times_opened"],
            "skipped": s["skipped"],
        }


class Budget(CloudGuard):
    """Cap cloud spending in USD and/or cloud tokens, in total or per time window.

    When the budget is spent, escalations are answered locally (``budget_exhausted``).
    Calls reserve the cost of the most expensive call seen so far while in flight, and a
    call that could go over is let through only when no other call is in flight: spending
    exceeds the cap by at most one call (assuming no call costs more than the most
    expensive one before it). Until one call has finished, calls go one at a time.
    Costs come from the model's price table (``ChatHybrid(prices=...)``): a cloud model
    missing from it costs 0 and only its tokens count.

    Args:
        max_usd: the most USD to spend on the cloud.
        max_cloud_tokens: the most cloud tokens (prompt + completion) to use.
        window_s: count only spending of the last ``window_s`` seconds (None: ever).
        clock: seconds (for tests); default the store's clock (monotonic in process,
            wall-clock for a shared store).
        store: where the spending lives (default: this process); a
            :class:`~langchain_hybrid.routing.state.RedisStore` shares it between replicas,
            which then spend from one budget.
        key: the state's key in the store (give each budget sharing a store its own).
        lease_s: seconds after which a reservation never released is forgotten (default:
            never in process, 300 s with a shared store, where a replica may die mid-call).

    Example:
        >>> budget = Budget(max_usd=0.02)
        >>> budget.acquire().release(CloudOutcome(cost_usd=0.015, tokens=600))
        >>> budget.acquire().release(CloudOutcome(cost_usd=0.015, tokens=600))
        >>> budget.acquire() is None, round(budget.snapshot()["spent_usd"], 3)
        (True, 0.03)
    """

    reason: ClassVar[RouteReason] = "budget_exhausted"

    def __init__(
        self,
        max_usd: float | None = None,
        max_cloud_tokens: int | None = None,
        *,
        window_s: float | None = None,
        clock: Clock | None = None,
        store: GuardStore | None = None,
        key: str = "budget",
        lease_s: float | None = None,
    ) -> None:
        if max_usd is None and max_cloud_tokens is None:
            raise ValueError("Budget needs max_usd, max_cloud_tokens or both")
        if max_usd is not None and not max_usd >= 0:
            raise ValueError(f"max_usd must be a number >= 0, got {max_usd!r}")
        if max_cloud_tokens is not None and not (
            isinstance(max_cloud_tokens, int) and max_cloud_tokens >= 0
        ):
            raise ValueError(f"max_cloud_tokens must be an int >= 0, got {max_cloud_tokens!r}")
        if window_s is not None and not window_s > 0:
            raise ValueError(f"window_s must be a number > 0 or None, got {window_s!r}")
        self.max_usd = None if max_usd is None else float(max_usd)
        self.max_cloud_tokens = max_cloud_tokens
        self.window_s = window_s
        self.store, self._clock, self.lease_s = _store_and_clock(store, clock, lease_s)
        self.key = key

    def __repr__(self) -> str:
        return (
            f"Budget(max_usd={self.max_usd}, max_cloud_tokens={self.max_cloud_tokens}, "
            f"window_s={self.window_s})"
        )

    def _fresh(self, stored: GuardState | None, now: float) -> GuardState:
        """Copy the stored state, dropping spending outside the window and stale leases."""
        s: GuardState = {
            "spent": [],  # [time, usd, tokens] per call
            "usd": 0.0,
            "tokens": 0,
            "reserved": {},  # permit id -> [time, usd, tokens]
            "largest": None,  # [usd, tokens] of the most expensive call
            "refused": 0,
        }
        if stored:
            s.update(stored)
            s["spent"] = list(s["spent"])
            s["reserved"] = dict(s["reserved"])
        if self.window_s is not None:
            horizon = now - self.window_s
            while s["spent"] and s["spent"][0][0] < horizon:
                _, usd, tokens = s["spent"].pop(0)
                s["usd"] -= usd
                s["tokens"] -= tokens
        if self.lease_s is not None:
            s["reserved"] = {k: v for k, v in s["reserved"].items() if now - v[0] < self.lease_s}
        return s

    def _spent_out(self, s: GuardState) -> bool:
        return (self.max_usd is not None and s["usd"] >= self.max_usd) or (
            self.max_cloud_tokens is not None and s["tokens"] >= self.max_cloud_tokens
        )

    def _fits(self, s: GuardState, usd: float, tokens: int) -> bool:
        reserved = s["reserved"].values()
        reserved_usd = sum(r[1] for r in reserved)
        reserved_tokens = sum(r[2] for r in reserved)
        return (self.max_usd is None or s["usd"] + reserved_usd + usd <= self.max_usd) and (
            self.max_cloud_tokens is None
            or s["tokens"] + reserved_tokens + tokens <= self.max_cloud_tokens
        )

    def available(self) -> bool:
        """Whether anything is left to spend (in the window)."""
        now = self._clock()
        return self.store.transact(
            self.key, lambda stored: (s := self._fresh(stored, now), not self._spent_out(s))
        )

    def acquire(self) -> Permit | None:
        """Reserve one call's likely cost; None when spent, or when it could go over."""
        now = self._clock()
        permit_id = uuid.uuid4().hex

        def transition(stored: GuardState | None) -> tuple[GuardState, bool]:
            s = self._fresh(stored, now)
            estimate = s["largest"]
            allowed = not self._spent_out(s) and (
                not s["reserved"] or (estimate is not None and self._fits(s, *estimate))
            )
            if not allowed:
                s["refused"] += 1
                return s, False
            usd, tokens = estimate or (0.0, 0)
            s["reserved"][permit_id] = [now, usd, tokens]
            return s, True

        if not self.store.transact(self.key, transition):
            return None
        return Permit(lambda outcome: self._release(outcome, permit_id))

    def _release(self, outcome: CloudOutcome | None, permit_id: str) -> None:
        now = self._clock()

        def transition(stored: GuardState | None) -> tuple[GuardState, None]:
            s = self._fresh(stored, now)
            s["reserved"].pop(permit_id, None)
            if outcome is None or (outcome.cost_usd <= 0 and outcome.tokens <= 0):
                return s, None
            s["spent"].append([now, outcome.cost_usd, outcome.tokens])
            s["usd"] += outcome.cost_usd
            s["tokens"] += outcome.tokens
            largest = s["largest"] or (0.0, 0)
            s["largest"] = [max(largest[0], outcome.cost_usd), max(largest[1], outcome.tokens)]
            return s, None

        self.store.transact(self.key, transition)

    def snapshot(self) -> dict[str, Any]:
        """Return what was spent (in the window), the caps, calls in flight and refusals.

        Example:
            >>> Budget(max_cloud_tokens=1000).snapshot()["spent_tokens"]
            0
        """
        now = self._clock()
        s = self.store.transact(self.key, lambda stored: (t := self._fresh(stored, now), t))
        return {
            "spent_usd": s["usd"],
            "spent_tokens": s["tokens"],
            "max_usd": self.max_usd,
            "max_cloud_tokens": self.max_cloud_tokens,
            "window_s": self.window_s,
            "in_flight": len(s["reserved"]),
            "refused": s["refused"],
            "exhausted": self._spent_out(s),
        }
