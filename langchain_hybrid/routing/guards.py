"""Stateful guards around the cloud tier: a circuit breaker and a spending budget.

A guard is asked before each cloud call (:meth:`CloudGuard.acquire`) and told how it went
afterwards (:meth:`Permit.release`). When a guard refuses, the route answers locally and
the decision's reason says why (``cloud_circuit_open``, ``budget_exhausted``). Guards hold
state, so they live on the model (``ChatHybrid(circuit_breaker=..., budget=...)``), not in
the saved :class:`~langchain_hybrid.routing.policy.RoutingPolicy`; pass the same object to
several models to share it. Every guard is thread- and async-safe (a lock held for a few
arithmetic steps, never across a call).

Example:
    >>> breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60)
    >>> for _ in range(2):
    ...     breaker.acquire().release(CloudOutcome(failure="unavailable"))
    >>> breaker.state, breaker.acquire() is None
    ('open', True)
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from langchain_hybrid.routing.decision import RouteReason
from langchain_hybrid.routing.failures import FAILURE_KINDS, FailureKind

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
        clock: monotonic seconds (for tests).

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
        clock: Clock = time.monotonic,
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
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._times_opened = 0
        self._skipped = 0

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_threshold={self.failure_threshold}, "
            f"cooldown_s={self.cooldown_s})"
        )

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    @property
    def state(self) -> CircuitState:
        """``closed`` (calls go through), ``open`` (skipped) or ``half_open`` (probing)."""
        with self._lock:
            return self._state()

    def available(self) -> bool:
        """Whether a call would be let through now (closed, or half-open with no probe)."""
        with self._lock:
            state = self._state()
            return state == "closed" or (state == "half_open" and not self._probing)

    def acquire(self) -> Permit | None:
        """Return a permit (the probe, when half-open), or None while the circuit is open."""
        with self._lock:
            state = self._state()
            if state == "open" or (state == "half_open" and self._probing):
                self._skipped += 1
                return None
            probe = state == "half_open"
            self._probing = self._probing or probe
        return Permit(lambda outcome: self._release(outcome, probe))

    def _release(self, outcome: CloudOutcome | None, probe: bool) -> None:
        with self._lock:
            if probe:
                self._probing = False
            if outcome is None:
                return
            if outcome.ok:
                self._failures, self._opened_at = 0, None
            elif outcome.failure in self.counts:
                self._failures += 1
                if probe or self._failures >= self.failure_threshold:
                    if self._opened_at is None or probe:
                        self._times_opened += 1
                    self._opened_at = self._clock()

    def reset(self) -> None:
        """Close the circuit and forget the failures (e.g. after fixing the credentials).

        Example:
            >>> CircuitBreaker().reset()
        """
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False

    def snapshot(self) -> dict[str, Any]:
        """Return ``state``, ``consecutive_failures``, ``times_opened`` and ``skipped``.

        Example:
            >>> CircuitBreaker().snapshot()["state"]
            'closed'
        """
        with self._lock:
            return {
                "state": self._state(),
                "consecutive_failures": self._failures,
                "times_opened": self._times_opened,
                "skipped": self._skipped,
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
        clock: monotonic seconds (for tests).

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
        clock: Clock = time.monotonic,
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
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, float, int]] = deque()  # (time, usd, tokens)
        self._usd = 0.0
        self._tokens = 0
        self._in_flight = 0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._largest: tuple[float, int] | None = None
        self._refused = 0

    def __repr__(self) -> str:
        return (
            f"Budget(max_usd={self.max_usd}, max_cloud_tokens={self.max_cloud_tokens}, "
            f"window_s={self.window_s})"
        )

    def _prune(self) -> None:
        if self.window_s is None:
            return
        horizon = self._clock() - self.window_s
        while self._spent and self._spent[0][0] < horizon:
            _, usd, tokens = self._spent.popleft()
            self._usd -= usd
            self._tokens -= tokens

    def _spent_out(self) -> bool:
        return (self.max_usd is not None and self._usd >= self.max_usd) or (
            self.max_cloud_tokens is not None and self._tokens >= self.max_cloud_tokens
        )

    def _fits(self, usd: float, tokens: int) -> bool:
        return (self.max_usd is None or self._usd + self._reserved_usd + usd <= self.max_usd) and (
            self.max_cloud_tokens is None
            or self._tokens + self._reserved_tokens + tokens <= self.max_cloud_tokens
        )

    def available(self) -> bool:
        """Whether anything is left to spend (in the window)."""
        with self._lock:
            self._prune()
            return not self._spent_out()

    def acquire(self) -> Permit | None:
        """Reserve one call's likely cost; None when spent, or when it could go over."""
        with self._lock:
            self._prune()
            estimate = self._largest
            allowed = not self._spent_out() and (
                self._in_flight == 0 or (estimate is not None and self._fits(*estimate))
            )
            if not allowed:
                self._refused += 1
                return None
            usd, tokens = estimate or (0.0, 0)
            self._in_flight += 1
            self._reserved_usd += usd
            self._reserved_tokens += tokens
        return Permit(lambda outcome: self._release(outcome, usd, tokens))

    def _release(self, outcome: CloudOutcome | None, usd: float, tokens: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._reserved_usd -= usd
            self._reserved_tokens -= tokens
            if outcome is None or (outcome.cost_usd <= 0 and outcome.tokens <= 0):
                return
            self._spent.append((self._clock(), outcome.cost_usd, outcome.tokens))
            self._usd += outcome.cost_usd
            self._tokens += outcome.tokens
            largest = self._largest or (0.0, 0)
            self._largest = (max(largest[0], outcome.cost_usd), max(largest[1], outcome.tokens))

    def snapshot(self) -> dict[str, Any]:
        """Return what was spent (in the window), the caps, calls in flight and refusals.

        Example:
            >>> Budget(max_cloud_tokens=1000).snapshot()["spent_tokens"]
            0
        """
        with self._lock:
            self._prune()
            return {
                "spent_usd": self._usd,
                "spent_tokens": self._tokens,
                "max_usd": self.max_usd,
                "max_cloud_tokens": self.max_cloud_tokens,
                "window_s": self.window_s,
                "in_flight": self._in_flight,
                "refused": self._refused,
                "exhausted": self._spent_out(),
            }
