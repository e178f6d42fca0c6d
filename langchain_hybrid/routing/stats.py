"""RoutingStatsHandler: aggregate ``hybrid_route`` callback events into routing statistics.

Every routed call (``ChatHybrid`` and the ``ConfidenceGate`` runnable) dispatches a
LangChain custom callback event named ``"hybrid_route"`` whose data is
:meth:`RouteDecision.as_dict() <langchain_hybrid.routing.decision.RouteDecision.as_dict>`.
Attach a :class:`RoutingStatsHandler` as a callback and it counts calls by tier and by reason,
the escalation rate, degraded and early-abort calls, cost spent and avoided, latency
percentiles and the mean confidence of kept and escalated answers. It is thread-safe and
works for sync, async and batched runs; :meth:`RoutingStatsHandler.snapshot` returns a
frozen :class:`RoutingStats` whose ``as_dict()`` is JSON-safe.

Usage with a chat model::

    stats = RoutingStatsHandler()
    llm.invoke("...", config={"callbacks": [stats]})
    print(stats.report())

Example (any runnable that dispatches the event works the same way):
    >>> from langchain_core.callbacks import dispatch_custom_event
    >>> from langchain_core.runnables import RunnableLambda
    >>> from langchain_hybrid.routing.decision import RouteDecision
    >>> def route(question: str) -> str:
    ...     escalate = "hard" in question
    ...     decision = RouteDecision(
    ...         tier="cloud" if escalate else "local",
    ...         reason="low_confidence" if escalate else "confident",
    ...         confidence=-1.5 if escalate else -0.2, threshold=-0.6, escalated=escalate,
    ...         local_latency_s=0.5, cloud_latency_s=1.0 if escalate else None,
    ...         cost_usd=0.002 if escalate else 0.0,
    ...         cost_avoided_usd=0.0 if escalate else 0.002)
    ...     dispatch_custom_event("hybrid_route", decision.as_dict())
    ...     return question
    >>> stats = RoutingStatsHandler()
    >>> _ = RunnableLambda(route).batch(["easy", "easy", "easy", "hard"],
    ...                                 config={"callbacks": [stats]})
    >>> s = stats.snapshot()
    >>> s.calls, s.by_tier["local"], s.by_reason["low_confidence"], s.escalation_rate
    (4, 3, 1, 0.25)
    >>> print(stats.report())  # doctest: +NORMALIZE_WHITESPACE
    calls 4 | local 3 (75.0%) | cloud 1 (25.0%) | escalation rate 25.0% | cost $0.0020
      | avoided $0.0060 | p50 0.50s p90 1.20s p99 1.47s
    local p50 0.50s p90 0.50s p99 0.50s | cloud p50 1.00s p90 1.00s p99 1.00s
      | degraded 0 | failed 0 | early aborts 0 | cached 0
      | mean confidence local -0.200 escalated -1.500
    reasons: confident 3 | low_confidence 1
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from langchain_hybrid.routing.decision import ROUTE_REASONS, TIERS, RouteDecision
from langchain_hybrid.routing.surfaces import ROUTE_EVENT

__all__ = [
    "ROUTE_EVENT",
    "LatencyStats",
    "RoutingStats",
    "RoutingStatsHandler",
    "percentile",
]

#: Name of the LangChain custom callback event that carries a routing decision.

_MAX = 1e300


def _finite(x: float) -> float:
    """Clamp a sum that could have overflowed so that ``json.dumps`` always works."""
    if math.isnan(x):
        return 0.0
    return max(-_MAX, min(_MAX, x))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the ``q``-th percentile (0-100) of ``values`` by linear interpolation.

    This is the "linear" method (Hyndman & Fan type 7, numpy's default): the sorted values
    sit at ranks ``0 .. n-1`` and the percentile is read at rank ``(n - 1) * q / 100``,
    interpolating linearly between the two neighbouring values. It is exact (no sketching
    or binning). Returns None for an empty sequence.

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
        2.5
        >>> percentile([1.0, 2.0, 3.0, 4.0, 14.0], 90)
        10.0
        >>> percentile([5.0, 1.0, 3.0], 100)
        5.0
        >>> percentile([], 50) is None
        True
    """
    if not 0.0 <= q <= 100.0:  # also rejects NaN
        raise ValueError(f"q must be within [0, 100], got {q!r}")
    return _percentile_sorted(sorted(values), q)


def _percentile_sorted(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles (seconds, linear interpolation) over ``count`` latency samples.

    The percentiles are None when there are no samples.
    """

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> LatencyStats:
        """Compute the percentiles of ``samples`` (any order).

        Example:
            >>> LatencyStats.from_samples([3.0, 1.0, 2.0])
            LatencyStats(count=3, p50=2.0, p90=2.8, p99=2.98)
        """
        ordered = sorted(samples)
        return cls(
            count=len(ordered),
            p50=_percentile_sorted(ordered, 50),
            p90=_percentile_sorted(ordered, 90),
            p99=_percentile_sorted(ordered, 99),
        )


@dataclass(frozen=True)
class RoutingStats:
    """A point-in-time summary of routed calls (frozen; ``as_dict()`` is JSON-safe).

    Attributes:
        calls: routed calls seen (valid ``hybrid_route`` events).
        by_tier: calls by answering tier; every tier in ``TIERS`` is present.
        by_reason: calls by reason; every reason in ``ROUTE_REASONS`` is present, in order.
        escalated: calls where the cloud tier was asked after a local attempt.
        escalation_rate: ``escalated / calls`` (0.0 when there are no calls).
        degraded: calls where the cloud failed or was skipped (circuit open, budget
            spent) and the local answer was returned.
        failed: calls that returned no answer but raised an error carrying their
            decision (a broken cloud stream, both tiers failing, ``raise_on_cloud_errors``);
            they count under their tier and reason too.
        early_aborts: calls whose local generation was stopped early.
        cached: calls answered from LangChain's cache (counted by their original tier
            and reason; nothing was called, so they add no cost and no latency sample).
        cost_usd: total cost spent.
        cost_avoided_usd: total cost avoided by answering locally.
        latency: end-to-end latency per call, ``local_latency_s + cloud_latency_s`` with a
            missing side counted as 0; calls with neither latency are not sampled.
        local_latency: latency of the local tier, over the calls that report one.
        cloud_latency: latency of the cloud tier, over the calls that report one.
        mean_confidence_local: mean confidence of answers kept locally (``tier == "local"``
            and not escalated), over those with a confidence; None when there are none.
        mean_confidence_escalated: mean confidence of escalated calls (including degraded
            ones), over those with a confidence; None when there are none.
        malformed: ``hybrid_route`` events whose data was not a valid route decision
            (ignored otherwise).
        adaptive_threshold: the threshold of the latest decision of a policy with an
            adaptive threshold (its ``features["adaptive_threshold"]``); None otherwise.
    """

    calls: int = 0
    by_tier: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    by_reason: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTE_REASONS, 0))
    escalated: int = 0
    escalation_rate: float = 0.0
    degraded: int = 0
    failed: int = 0
    early_aborts: int = 0
    cached: int = 0
    cost_usd: float = 0.0
    cost_avoided_usd: float = 0.0
    latency: LatencyStats = field(default_factory=LatencyStats)
    local_latency: LatencyStats = field(default_factory=LatencyStats)
    cloud_latency: LatencyStats = field(default_factory=LatencyStats)
    mean_confidence_local: float | None = None
    mean_confidence_escalated: float | None = None
    malformed: int = 0
    adaptive_threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (nested dicts for the latency stats).

        Example:
            >>> import json
            >>> json.loads(json.dumps(RoutingStats().as_dict()))["latency"]["p50"] is None
            True
        """
        return asdict(self)

    def report(self) -> str:
        """Return a small human-readable table (three lines).

        Example:
            >>> print(RoutingStats().report().splitlines()[0].split(" | ")[:4])
            ['calls 0', 'local 0 (0.0%)', 'cloud 0 (0.0%)', 'escalation rate 0.0%']
        """
        total = self.calls

        def pct(n: int) -> str:
            return f"{(100.0 * n / total) if total else 0.0:.1f}%"

        tiers = " | ".join(f"{t} {n} ({pct(n)})" for t, n in self.by_tier.items())
        first = (
            f"calls {total} | {tiers} | escalation rate {100.0 * self.escalation_rate:.1f}%"
            f" | cost ${self.cost_usd:.4f} | avoided ${self.cost_avoided_usd:.4f}"
            f" | {_latency_text(self.latency)}"
        )
        conf_local = _fmt(self.mean_confidence_local, "{:.3f}")
        conf_escalated = _fmt(self.mean_confidence_escalated, "{:.3f}")
        second = (
            f"local {_latency_text(self.local_latency)}"
            f" | cloud {_latency_text(self.cloud_latency)}"
            f" | degraded {self.degraded} | failed {self.failed}"
            f" | early aborts {self.early_aborts}"
            f" | cached {self.cached}"
            f" | mean confidence local {conf_local} escalated {conf_escalated}"
        )
        if self.malformed:
            second += f" | malformed events {self.malformed}"
        if self.adaptive_threshold is not None:
            second += f" | adaptive threshold {self.adaptive_threshold:.3f}"
        reasons = " | ".join(f"{r} {n}" for r, n in self.by_reason.items() if n)
        third = f"reasons: {reasons or 'none'}"
        return "\n".join((first, second, third))

    def __str__(self) -> str:
        return self.report()


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def _latency_text(stats: LatencyStats) -> str:
    return " ".join(
        f"{name} {_fmt(value, '{:.2f}s')}"
        for name, value in (("p50", stats.p50), ("p90", stats.p90), ("p99", stats.p99))
    )


def _mean(total: float, count: int) -> float | None:
    return _finite(total / count) if count else None


class RoutingStatsHandler(BaseCallbackHandler):
    """Callback handler that aggregates ``hybrid_route`` events into :class:`RoutingStats`.

    Attach it through ``config={"callbacks": [handler]}`` (or a chat model's ``callbacks``).
    Other custom events and every other callback are ignored. Updates take a lock, so one
    handler can be shared by many threads (``batch``) and by async runs (LangChain runs a
    sync handler's callbacks for async runs in an executor thread; they are recorded before
    the awaiting ``adispatch_custom_event`` returns). Latency samples are kept (8 bytes
    each) so that the percentiles are exact; call :meth:`reset` to start over.

    If one request is routed by nested runnables that each dispatch the event (e.g. a
    ``ConfidenceGate`` inside another routed runnable), each dispatch counts as one call.

    Example:
        >>> from langchain_hybrid.routing.decision import RouteDecision
        >>> stats = RoutingStatsHandler()
        >>> stats.record(RouteDecision(tier="local", reason="confident", local_latency_s=0.4))
        >>> stats.snapshot().latency.p50
        0.4
        >>> stats.reset(); stats.snapshot().calls
        0
    """

    def __init__(self, event_name: str = ROUTE_EVENT) -> None:
        """Create an empty aggregator listening for custom events named ``event_name``."""
        super().__init__()
        self.event_name = event_name
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._calls = 0
        self._by_tier: dict[str, int] = dict.fromkeys(TIERS, 0)
        self._by_reason: dict[str, int] = dict.fromkeys(ROUTE_REASONS, 0)
        self._escalated = 0
        self._degraded = 0
        self._failed = 0
        self._early_aborts = 0
        self._cached = 0
        self._cost_usd = 0.0
        self._cost_avoided_usd = 0.0
        self._latency = array("d")
        self._local_latency = array("d")
        self._cloud_latency = array("d")
        self._conf_local_sum = 0.0
        self._conf_local_n = 0
        self._conf_escalated_sum = 0.0
        self._conf_escalated_n = 0
        self._malformed = 0
        self._adaptive_threshold: float | None = None

    # -- callbacks ---------------------------------------------------------------------

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record ``data`` when ``name`` is the route event; ignore any other event."""
        if name != self.event_name:
            return
        try:
            decision = _as_decision(data)
        except (TypeError, ValueError):
            with self._lock:
                self._malformed += 1
            return
        self.record(decision)

    # -- public API --------------------------------------------------------------------

    def record(self, decision: RouteDecision | Mapping[str, Any]) -> None:
        """Add one routed call (a decision or its ``as_dict()``), as the event does.

        Raises:
            ValueError: if ``decision`` is a mapping that is not a valid route decision.
        """
        d = _as_decision(decision)
        local, cloud = d.local_latency_s, d.cloud_latency_s
        with self._lock:
            self._calls += 1
            self._by_tier[d.tier] = self._by_tier.get(d.tier, 0) + 1
            self._by_reason[d.reason] = self._by_reason.get(d.reason, 0) + 1
            self._escalated += d.escalated
            self._degraded += d.degraded
            self._failed += d.failed
            self._early_aborts += d.early_abort
            self._cached += d.cached
            self._cost_usd += d.cost_usd
            self._cost_avoided_usd += d.cost_avoided_usd
            if local is not None or cloud is not None:
                self._latency.append((local or 0.0) + (cloud or 0.0))
            if local is not None:
                self._local_latency.append(local)
            if cloud is not None:
                self._cloud_latency.append(cloud)
            if "adaptive_threshold" in d.features:
                self._adaptive_threshold = d.features["adaptive_threshold"]
            if d.confidence is not None:
                if d.escalated:
                    self._conf_escalated_sum += d.confidence
                    self._conf_escalated_n += 1
                elif d.tier == "local":
                    self._conf_local_sum += d.confidence
                    self._conf_local_n += 1

    def snapshot(self) -> RoutingStats:
        """Return the statistics so far (a consistent, frozen copy)."""
        with self._lock:
            calls = self._calls
            by_tier = dict(self._by_tier)
            by_reason = dict(self._by_reason)
            escalated, degraded, aborts = self._escalated, self._degraded, self._early_aborts
            cached, failed = self._cached, self._failed
            cost, avoided = self._cost_usd, self._cost_avoided_usd
            samples = (
                self._latency.tolist(),
                self._local_latency.tolist(),
                self._cloud_latency.tolist(),
            )
            conf_local = _mean(self._conf_local_sum, self._conf_local_n)
            conf_escalated = _mean(self._conf_escalated_sum, self._conf_escalated_n)
            malformed = self._malformed
            adaptive = self._adaptive_threshold
        latency, local_latency, cloud_latency = (LatencyStats.from_samples(s) for s in samples)
        return RoutingStats(
            calls=calls,
            by_tier=by_tier,
            by_reason=by_reason,
            escalated=escalated,
            escalation_rate=escalated / calls if calls else 0.0,
            degraded=degraded,
            failed=failed,
            early_aborts=aborts,
            cached=cached,
            cost_usd=_finite(cost),
            cost_avoided_usd=_finite(avoided),
            latency=_finite_latency(latency),
            local_latency=_finite_latency(local_latency),
            cloud_latency=_finite_latency(cloud_latency),
            mean_confidence_local=conf_local,
            mean_confidence_escalated=conf_escalated,
            malformed=malformed,
            adaptive_threshold=adaptive,
        )

    def reset(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._clear()

    def report(self) -> str:
        """Return the human-readable table of :meth:`snapshot` (see :meth:`RoutingStats.report`)."""
        return self.snapshot().report()

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        with self._lock:
            calls = self._calls
        return f"{type(self).__name__}(event_name={self.event_name!r}, calls={calls})"


def _as_decision(data: object) -> RouteDecision:
    if isinstance(data, RouteDecision):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"a route decision must be a mapping, got {type(data).__name__}")
    return RouteDecision.from_dict(data)


def _finite_latency(stats: LatencyStats) -> LatencyStats:
    values: Iterable[float | None] = (stats.p50, stats.p90, stats.p99)
    p50, p90, p99 = (None if v is None else _finite(v) for v in values)
    return LatencyStats(count=stats.count, p50=p50, p90=p90, p99=p99)
