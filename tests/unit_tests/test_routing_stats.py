from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import statistics
import threading
from typing import Any

import pytest
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_hybrid.routing.decision import ROUTE_REASONS, TIERS, RouteDecision, Tier
from langchain_hybrid.routing.stats import (
    ROUTE_EVENT,
    LatencyStats,
    RoutingStats,
    RoutingStatsHandler,
    percentile,
)

# --------------------------------------------------------------------------- helpers


def local_ok(
    confidence: float = -0.2, latency: float | None = 0.4, avoided: float = 0.001
) -> RouteDecision:
    return RouteDecision(
        tier="local",
        reason="confident",
        confidence=confidence,
        threshold=-0.6,
        local_latency_s=latency,
        cost_avoided_usd=avoided,
    )


def escalated(
    reason: Any = "low_confidence",
    confidence: float | None = -1.5,
    local: float | None = 0.5,
    cloud: float | None = 1.0,
    cost: float = 0.002,
) -> RouteDecision:
    return RouteDecision(
        tier="cloud",
        reason=reason,
        confidence=confidence,
        threshold=-0.6,
        escalated=True,
        local_latency_s=local,
        cloud_latency_s=cloud,
        cost_usd=cost,
    )


def _emit(decision: RouteDecision) -> RouteDecision:
    dispatch_custom_event(ROUTE_EVENT, decision.as_dict())
    return decision


async def _aemit(decision: RouteDecision) -> RouteDecision:
    await adispatch_custom_event(ROUTE_EVENT, decision.as_dict())
    return decision


# Sync and async implementations: invoke/batch use the first, ainvoke/abatch the second.
emitter = RunnableLambda(_emit, afunc=_aemit)


def cfg(handler: RoutingStatsHandler, max_concurrency: int | None = None) -> RunnableConfig:
    return RunnableConfig(callbacks=[handler], max_concurrency=max_concurrency)


# --------------------------------------------------------------------------- sync


def test_event_name_is_hybrid_route() -> None:
    assert ROUTE_EVENT == "hybrid_route"


def test_sync_invoke_counts_tiers_reasons_costs() -> None:
    stats = RoutingStatsHandler()
    decisions = [
        local_ok(),
        local_ok(),
        local_ok(),
        escalated("low_confidence"),
        escalated("hedge", cost=0.003),
        RouteDecision(tier="cloud", reason="rule_force_cloud", cloud_latency_s=0.8, cost_usd=0.01),
    ]
    for d in decisions:
        assert emitter.invoke(d, config=cfg(stats)) == d

    s = stats.snapshot()
    assert s.calls == 6
    assert s.by_tier == {"local": 3, "cloud": 3}
    assert s.by_reason["confident"] == 3
    assert s.by_reason["low_confidence"] == 1
    assert s.by_reason["hedge"] == 1
    assert s.by_reason["rule_force_cloud"] == 1
    assert sum(s.by_reason.values()) == 6
    assert s.escalated == 2
    assert s.escalation_rate == pytest.approx(2 / 6)
    assert s.cost_usd == pytest.approx(0.002 + 0.003 + 0.01)
    assert s.cost_avoided_usd == pytest.approx(0.003)
    assert s.degraded == 0
    assert s.early_aborts == 0
    assert s.malformed == 0


def test_every_tier_and_reason_is_reported_in_order() -> None:
    s = RoutingStatsHandler().snapshot()
    assert list(s.by_tier) == list(TIERS)
    assert list(s.by_reason) == list(ROUTE_REASONS)
    assert all(v == 0 for v in s.by_reason.values())
    assert s.calls == 0
    assert s.escalation_rate == 0.0
    assert s.mean_confidence_local is None
    assert s.mean_confidence_escalated is None
    assert s.latency == LatencyStats()
    assert s == RoutingStats()


def test_every_reason_can_be_counted() -> None:
    stats = RoutingStatsHandler()
    for i, reason in enumerate(ROUTE_REASONS):
        tier: Tier = "local" if reason in ("confident", "rule_force_local") else "cloud"
        for _ in range(i + 1):
            emitter.invoke(RouteDecision(tier=tier, reason=reason), config=cfg(stats))
    s = stats.snapshot()
    assert s.by_reason == {r: i + 1 for i, r in enumerate(ROUTE_REASONS)}
    assert s.calls == sum(range(1, len(ROUTE_REASONS) + 1))


def test_degraded_early_abort_and_mean_confidence() -> None:
    stats = RoutingStatsHandler()
    decisions = [
        local_ok(confidence=-0.1),
        local_ok(confidence=-0.3),
        # forced local by a rule, no confidence: not part of the mean
        RouteDecision(tier="local", reason="rule_force_local", rule="greeting"),
        escalated("low_confidence", confidence=-1.0),
        # the cloud failed: local answer returned, still an escalated call
        RouteDecision(
            tier="local",
            reason="low_confidence",
            confidence=-2.0,
            escalated=True,
            degraded=True,
            local_latency_s=0.3,
            error="APIConnectionError",
        ),
        RouteDecision(
            tier="cloud",
            reason="early_abort",
            confidence=-3.0,
            escalated=True,
            early_abort=True,
            local_latency_s=0.1,
            cloud_latency_s=0.9,
        ),
    ]
    for d in decisions:
        emitter.invoke(d, config=cfg(stats))
    s = stats.snapshot()
    assert s.calls == 6
    assert s.by_tier == {"local": 4, "cloud": 2}
    assert s.escalated == 3
    assert s.escalation_rate == pytest.approx(0.5)
    assert s.degraded == 1
    assert s.early_aborts == 1
    assert s.mean_confidence_local == pytest.approx(-0.2)
    assert s.mean_confidence_escalated == pytest.approx(-2.0)


def test_percentiles_on_known_latencies() -> None:
    stats = RoutingStatsHandler()
    # local latencies 1..100 (shuffled), cloud latency 10 on every tenth call
    order = list(range(1, 101))
    random.Random(7).shuffle(order)
    for i in order:
        cloud = 10.0 if i % 10 == 0 else None
        d = RouteDecision(
            tier="cloud" if cloud else "local",
            reason="low_confidence" if cloud else "confident",
            escalated=cloud is not None,
            local_latency_s=float(i),
            cloud_latency_s=cloud,
        )
        emitter.invoke(d, config=cfg(stats))
    s = stats.snapshot()

    # linear interpolation: rank (n - 1) * q / 100 over the sorted samples
    assert (s.local_latency.count, s.local_latency.p50) == (100, 50.5)
    assert s.local_latency.p90 == pytest.approx(90.1)
    assert s.local_latency.p99 == pytest.approx(99.01)
    assert s.cloud_latency == LatencyStats(count=10, p50=10.0, p90=10.0, p99=10.0)
    e2e = sorted(float(i) + (10.0 if i % 10 == 0 else 0.0) for i in range(1, 101))
    assert s.latency.count == 100
    for q, got in ((50, s.latency.p50), (90, s.latency.p90), (99, s.latency.p99)):
        assert got == pytest.approx(statistics.quantiles(e2e, n=100, method="inclusive")[q - 1])
    assert s.latency.p99 == pytest.approx(100.1)  # 100 + 0.01 * (110 - 100)


def test_end_to_end_latency_treats_missing_side_as_zero() -> None:
    stats = RoutingStatsHandler()
    emitter.invoke(local_ok(latency=0.25), config=cfg(stats))  # local only
    emitter.invoke(
        RouteDecision(tier="cloud", reason="context_too_long", cloud_latency_s=2.0),
        config=cfg(stats),
    )  # cloud only
    emitter.invoke(escalated(local=0.5, cloud=1.5), config=cfg(stats))  # both: 2.0
    emitter.invoke(RouteDecision(tier="local", reason="confident"), config=cfg(stats))  # none
    s = stats.snapshot()
    assert s.calls == 4
    assert s.latency.count == 3  # the call with no latency at all is not sampled
    assert s.latency.p50 == pytest.approx(2.0)
    assert s.latency.p99 == pytest.approx(2.0)
    assert s.local_latency.count == 2
    assert s.cloud_latency.count == 2
    assert s.local_latency.p50 == pytest.approx(0.375)


def test_other_custom_events_and_callbacks_are_ignored() -> None:
    stats = RoutingStatsHandler()

    def noisy(x: int) -> int:
        dispatch_custom_event("progress", {"tier": "cloud", "reason": "hedge"})
        dispatch_custom_event("hybrid_route_debug", local_ok().as_dict())
        dispatch_custom_event("HYBRID_ROUTE", local_ok().as_dict())
        return x + 1

    chain = RunnableLambda(noisy) | RunnableLambda(lambda x: x * 2)
    assert chain.invoke(1, config=cfg(stats)) == 4
    assert stats.snapshot() == RoutingStats()


def test_event_from_nested_runnable_counts_once_and_extra_keys_are_ignored() -> None:
    stats = RoutingStatsHandler()

    def inner(x: str) -> str:
        data = escalated().as_dict()
        data["local_logprobs"] = {"content": [{"token": "a", "logprob": -0.1}]}
        dispatch_custom_event(ROUTE_EVENT, data)
        return x

    chain = RunnableLambda(lambda x: x) | RunnableLambda(inner) | RunnableLambda(lambda x: x)
    chain.invoke("q", config=cfg(stats))
    s = stats.snapshot()
    assert s.calls == 1
    assert s.by_reason["low_confidence"] == 1


def test_route_decision_object_as_event_data() -> None:
    stats = RoutingStatsHandler()

    def emit_object(d: RouteDecision) -> None:
        dispatch_custom_event(ROUTE_EVENT, d)

    RunnableLambda(emit_object).invoke(escalated(), config=cfg(stats))
    assert stats.snapshot().by_tier["cloud"] == 1


def test_malformed_event_is_counted_not_raised() -> None:
    stats = RoutingStatsHandler()
    stats.raise_error = True  # a raise inside the handler would surface here

    def bad(x: Any) -> Any:
        dispatch_custom_event(ROUTE_EVENT, x)
        return x

    for data in ({"tier": "edge", "reason": "confident"}, {"reason": "hedge"}, "oops", None):
        RunnableLambda(bad).invoke(data, config=cfg(stats))
    emitter.invoke(local_ok(), config=cfg(stats))
    s = stats.snapshot()
    assert s.malformed == 4
    assert s.calls == 1
    assert "malformed events 4" in stats.report()


def test_handler_via_with_config() -> None:
    stats = RoutingStatsHandler()
    bound = emitter.with_config(callbacks=[stats])
    bound.invoke(local_ok())
    bound.invoke(escalated())
    assert stats.snapshot().calls == 2


def test_custom_event_name() -> None:
    stats = RoutingStatsHandler(event_name="my_route")

    def emit_mine(d: RouteDecision) -> None:
        dispatch_custom_event("my_route", d.as_dict())

    RunnableLambda(emit_mine).invoke(local_ok(), config=cfg(stats))
    emitter.invoke(local_ok(), config=cfg(stats))  # hybrid_route: not this handler's event
    assert stats.snapshot().calls == 1


# --------------------------------------------------------------------------- async


async def test_async_ainvoke_and_abatch() -> None:
    stats = RoutingStatsHandler()
    await emitter.ainvoke(local_ok(), config=cfg(stats))
    await emitter.ainvoke(escalated("hedge"), config=cfg(stats))
    # recorded before ainvoke returns (the sync handler runs in an executor thread)
    assert stats.snapshot().calls == 2

    inputs = [local_ok() if i % 4 else escalated("unknown_token") for i in range(40)]
    await emitter.abatch(inputs, config=cfg(stats, max_concurrency=8))
    await asyncio.gather(*(emitter.ainvoke(local_ok(), config=cfg(stats)) for _ in range(20)))

    s = stats.snapshot()
    assert s.calls == 62
    assert s.by_reason["unknown_token"] == 10
    assert s.by_reason["hedge"] == 1
    assert s.by_reason["confident"] == 51
    assert s.by_tier == {"local": 51, "cloud": 11}
    assert s.escalation_rate == pytest.approx(11 / 62)
    assert s.cost_usd == pytest.approx(11 * 0.002)
    assert s.cost_avoided_usd == pytest.approx(51 * 0.001)


async def test_async_astream_events_path() -> None:
    stats = RoutingStatsHandler()
    seen = []
    async for ev in emitter.astream_events(escalated(), config=cfg(stats), version="v2"):
        if ev["event"] == "on_custom_event":
            seen.append(ev["name"])
    assert seen == [ROUTE_EVENT]
    assert stats.snapshot().calls == 1


# --------------------------------------------------------------------------- threads


def test_batch_with_many_threads() -> None:
    stats = RoutingStatsHandler()
    inputs = [
        escalated("empty_answer", cost=0.001) if i % 5 == 0 else local_ok(latency=i / 100)
        for i in range(500)
    ]
    out = emitter.batch(inputs, config=cfg(stats, max_concurrency=16))
    assert out == inputs
    s = stats.snapshot()
    assert s.calls == 500
    assert s.by_tier == {"local": 400, "cloud": 100}
    assert s.by_reason["empty_answer"] == 100
    assert s.escalation_rate == pytest.approx(0.2)
    assert s.cost_usd == pytest.approx(0.1)
    assert s.cost_avoided_usd == pytest.approx(0.4)
    assert s.local_latency.count == 500
    assert s.cloud_latency.count == 100


def test_concurrent_record_snapshot_reset_from_threads() -> None:
    stats = RoutingStatsHandler()
    n_threads, per_thread = 8, 300
    barrier = threading.Barrier(n_threads + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                emitter.invoke(escalated() if i % 3 == 0 else local_ok(), config=cfg(stats))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    while any(t.is_alive() for t in threads):
        s = stats.snapshot()  # consistent while writers run
        assert sum(s.by_tier.values()) == s.calls == sum(s.by_reason.values())
        assert s.latency.count == s.calls
    for t in threads:
        t.join()
    assert not errors
    s = stats.snapshot()
    assert s.calls == n_threads * per_thread
    assert s.escalated == n_threads * 100
    assert s.by_tier == {"local": n_threads * 200, "cloud": n_threads * 100}


# --------------------------------------------------------------------------- reset / output


def test_reset() -> None:
    stats = RoutingStatsHandler()
    emitter.batch([local_ok(), escalated()], config=cfg(stats))
    assert stats.snapshot().calls == 2
    stats.reset()
    assert stats.snapshot() == RoutingStats()
    emitter.invoke(escalated(), config=cfg(stats))
    s = stats.snapshot()
    assert s.calls == 1
    assert s.by_tier == {"local": 0, "cloud": 1}
    assert s.latency.count == 1


def test_snapshot_is_frozen_and_detached() -> None:
    stats = RoutingStatsHandler()
    emitter.invoke(local_ok(), config=cfg(stats))
    s = stats.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.calls = 5  # type: ignore[misc]
    emitter.invoke(local_ok(), config=cfg(stats))
    assert s.calls == 1
    assert s.by_tier["local"] == 1
    assert stats.snapshot().calls == 2


def test_as_dict_is_json_safe() -> None:
    stats = RoutingStatsHandler()
    for _ in range(3):
        stats.record(
            RouteDecision(
                tier="cloud",
                reason="low_confidence",
                confidence=float("nan"),
                escalated=True,
                local_latency_s=float("inf"),
                cloud_latency_s=float("inf"),
                cost_usd=float("inf"),
                cost_avoided_usd=float("inf"),
            )
        )
    emitter.invoke(local_ok(), config=cfg(stats))
    d = stats.snapshot().as_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["calls"] == 4
    assert back["by_tier"] == {"local": 1, "cloud": 3}
    assert set(back["latency"]) == {"count", "p50", "p90", "p99"}
    assert set(back) >= {
        "calls",
        "by_tier",
        "by_reason",
        "escalated",
        "escalation_rate",
        "degraded",
        "early_aborts",
        "cost_usd",
        "cost_avoided_usd",
        "latency",
        "local_latency",
        "cloud_latency",
        "mean_confidence_local",
        "mean_confidence_escalated",
    }
    assert json.loads(json.dumps(RoutingStats().as_dict(), allow_nan=False))["latency"] == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
    }


def test_report_table() -> None:
    stats = RoutingStatsHandler()
    for _ in range(4):
        emitter.invoke(local_ok(latency=0.4, avoided=0.01), config=cfg(stats))
    emitter.invoke(escalated("hedge", local=0.5, cloud=1.5, cost=0.0123), config=cfg(stats))
    text = stats.report()
    assert text == str(stats) == str(stats.snapshot())
    first, second, third = text.splitlines()
    assert first.startswith(
        "calls 5 | local 4 (80.0%) | cloud 1 (20.0%) | escalation rate 20.0% "
        "| cost $0.0123 | avoided $0.0400 | p50 0.40s p90 1.36s p99 1.94s"
    )
    assert "cloud p50 1.50s" in second
    assert "mean confidence local -0.200 escalated -1.500" in second
    assert third == "reasons: confident 4 | hedge 1"
    assert RoutingStatsHandler().report().splitlines()[-1] == "reasons: none"
    assert "calls=5" in repr(stats)


# --------------------------------------------------------------------------- percentile


def test_percentile_function_matches_inclusive_quantiles() -> None:
    rng = random.Random(0)
    for n in (1, 2, 3, 10, 101):
        data = [rng.uniform(0, 5) for _ in range(n)]
        ref = statistics.quantiles(data, n=100, method="inclusive") if n > 1 else data * 99
        for q in range(1, 100):
            assert percentile(data, q) == pytest.approx(ref[q - 1])
        assert percentile(data, 0) == min(data)
        assert percentile(data, 100) == max(data)
    assert percentile([], 50) is None
    for bad in (-1, 101, float("nan")):
        with pytest.raises(ValueError):
            percentile([1.0], bad)
