"""Prometheus metrics of the server (``GET /metrics``), read from the routing decisions.

Routing figures (requests by tier and reason, escalations, cost, routing latency) are
not counted a second time here: a :class:`RoutingStatsHandler` attached to every call
aggregates the decisions, and :class:`RoutingCollector` reads its snapshot at scrape
time. The HTTP layer adds what only it knows: requests by status, rejected requests
(429), requests in flight, and a latency histogram per answering tier.

Example:
    >>> from langchain_hybrid.routing.decision import RouteDecision
    >>> metrics = ServerMetrics()
    >>> metrics.routing.record(RouteDecision(tier="cloud", reason="low_confidence",
    ...     escalated=True, cost_usd=0.002, local_latency_s=0.1, cloud_latency_s=0.4))
    >>> text = metrics.render().decode()
    >>> 'langchain_hybrid_route_requests_total{reason="low_confidence"} 1.0' in text
    True
    >>> "langchain_hybrid_escalation_rate 1.0" in text
    True
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from langchain_hybrid.routing.stats import RoutingStatsHandler

__all__ = ["CONTENT_TYPE", "RoutingCollector", "ServerMetrics"]

#: The ``Content-Type`` of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_PREFIX = "langchain_hybrid"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))


class RoutingCollector(Collector):
    """Prometheus collector over a :class:`RoutingStatsHandler` (read at scrape time)."""

    def __init__(self, stats: RoutingStatsHandler) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """Yield the routing metrics of the handler's current snapshot."""
        s = self.stats.snapshot()
        requests = CounterMetricFamily(
            f"{_PREFIX}_route_requests", "Routed requests by routing reason.", labels=["reason"]
        )
        for reason, count in s.by_reason.items():
            requests.add_metric([reason], count)
        yield requests
        by_tier = CounterMetricFamily(
            f"{_PREFIX}_tier_requests", "Routed requests by answering tier.", labels=["tier"]
        )
        for tier, count in s.by_tier.items():
            by_tier.add_metric([tier], count)
        yield by_tier
        for name, doc, value in (
            ("escalations", "Requests sent to the cloud after a local attempt.", s.escalated),
            ("degraded", "Requests answered locally because the cloud failed.", s.degraded),
            ("failed", "Routed requests that ended in an error.", s.failed),
            ("early_aborts", "Local generations stopped early (hopeless answers).", s.early_aborts),
            ("cost_usd", "Cloud cost spent, USD.", s.cost_usd),
            ("cost_avoided_usd", "Cloud cost avoided by local answers, USD.", s.cost_avoided_usd),
        ):
            yield CounterMetricFamily(f"{_PREFIX}_{name}", doc, value=value)
        yield GaugeMetricFamily(
            f"{_PREFIX}_escalation_rate",
            "Share of routed requests escalated to the cloud.",
            value=s.escalation_rate,
        )
        samples = CounterMetricFamily(
            f"{_PREFIX}_route_latency_samples",
            "Routed requests with a latency of that part (local, cloud, total).",
            labels=["part"],
        )
        for part, stats in (
            ("total", s.latency),
            ("local", s.local_latency),
            ("cloud", s.cloud_latency),
        ):
            samples.add_metric([part], stats.count)
        yield samples
        quantiles = GaugeMetricFamily(
            f"{_PREFIX}_route_latency_quantile_seconds",
            "Routing latency quantiles per tier.",
            labels=["part", "quantile"],
        )
        for part, stats in (
            ("total", s.latency),
            ("local", s.local_latency),
            ("cloud", s.cloud_latency),
        ):
            for q, quantile in (("0.5", stats.p50), ("0.9", stats.p90), ("0.99", stats.p99)):
                if quantile is not None:
                    quantiles.add_metric([part, q], quantile)
        yield quantiles


class ServerMetrics:
    """The server's metrics registry: routing (from decisions) and HTTP figures."""

    def __init__(self, stats: RoutingStatsHandler | None = None) -> None:
        self.routing = stats or RoutingStatsHandler()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(RoutingCollector(self.routing))
        self.http_requests = Counter(
            f"{_PREFIX}_http_requests",
            "HTTP requests by path and status.",
            ["path", "status"],
            registry=self.registry,
        )
        self.rejected = Counter(
            f"{_PREFIX}_rejected_requests",
            "Chat requests answered 429 because the server was full.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{_PREFIX}_requests_in_flight",
            "Chat requests running or waiting for a slot.",
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{_PREFIX}_request_duration_seconds",
            "Chat request latency by answering tier ('none': unrouted model or an error).",
            ["tier", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the metrics in Prometheus' text format."""
        return generate_latest(self.registry)
