"""AdaptiveThreshold: holds its target cloud share as traffic drifts; safe under threads."""

from __future__ import annotations

import random
import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables.config import set_config_context

from langchain_hybrid.routing.adaptive import AdaptiveThreshold
from langchain_hybrid.routing.policy import RoutingPolicy
from langchain_hybrid.routing.stats import RoutingStatsHandler


def _answer(lp: float) -> AIMessage:
    return AIMessage(
        "Paris",
        response_metadata={
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": "Paris", "logprob": lp}]},
        },
    )


def _route(policy: RoutingPolicy, lp: float) -> bool:
    """One live judgement through the policy's watch (what the route does); True = cloud."""
    watch = policy.watch(max_tokens=8, context=[HumanMessage("q")])
    stopped = watch.add([{"token": "Paris", "logprob": lp}], "Paris")
    return (stopped or watch.finish(_answer(lp))).escalate


def test_holds_the_target_share_as_traffic_drifts() -> None:
    adaptive = AdaptiveThreshold(target_cloud_rate=0.3, window=200)
    policy = RoutingPolicy(threshold=-0.6, adaptive=adaptive)
    rng = random.Random(0)
    easy = [_route(policy, rng.gauss(-0.3, 0.2)) for _ in range(600)]
    hard = [_route(policy, rng.gauss(-2.0, 0.5)) for _ in range(600)]
    # A fixed -0.6 would send ~7% of the easy traffic and ~100% of the hard one.
    assert sum(easy[-400:]) / 400 == pytest.approx(0.3, abs=0.06)
    assert sum(hard[-400:]) / 400 == pytest.approx(0.3, abs=0.06)


def test_threshold_shows_in_the_verdict_and_the_stats() -> None:
    adaptive = AdaptiveThreshold(target_cloud_rate=0.5, window=10, min_samples=10)
    policy = RoutingPolicy(threshold=-0.6, adaptive=adaptive)
    for i in range(10):
        _route(policy, -1.0 - i)
    verdict = policy.judge(_answer(-0.1))
    assert verdict.threshold == pytest.approx(-5.5)
    assert verdict.features["adaptive_threshold"] == pytest.approx(-5.5)
    # A replay does not feed the window.
    assert adaptive.snapshot() == {"": {"n": 10, "forced": 0}}
    from langchain_hybrid.routing.decision import RouteDecision

    stats = RoutingStatsHandler()
    stats.record(
        RouteDecision("local", "confident", threshold=-5.5, features=dict(verdict.features))
    )
    assert stats.snapshot().adaptive_threshold == pytest.approx(-5.5)
    assert "adaptive threshold -5.500" in stats.report()


def test_keys_have_their_own_windows() -> None:
    adaptive = AdaptiveThreshold(target_cloud_rate=0.5, window=4, min_samples=4, key="user")
    policy = RoutingPolicy(threshold=-0.6, adaptive=adaptive)
    for user, base in (("a", -0.1), ("b", -3.0)):
        with set_config_context({"metadata": {"user": user}}) as ctx:
            for i in range(4):
                ctx.run(_route, policy, base - 0.1 * i)
    assert set(adaptive.snapshot()) == {"a", "b"}
    assert adaptive.threshold("a", -0.6) > -0.3 > -2.0 > adaptive.threshold("b", -0.6)


def test_policy_json_keeps_the_setting() -> None:
    policy = RoutingPolicy(adaptive=AdaptiveThreshold(target_cloud_rate=0.2, window=50))
    again = RoutingPolicy.from_dict(policy.to_dict())
    assert again == policy and again.adaptive is not None
    assert "adaptive" not in RoutingPolicy().to_dict()  # older readers still read the rest


def test_safe_under_threads() -> None:
    adaptive = AdaptiveThreshold(target_cloud_rate=0.3, window=100, min_samples=10)
    policy = RoutingPolicy(adaptive=adaptive)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                _route(policy, rng.gauss(-1.0, 0.5))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert adaptive.snapshot() == {"": {"n": 100, "forced": 0}}
    window_share = sum(_route(policy, random.gauss(-1.0, 0.5)) for _ in range(400)) / 400
    assert window_share == pytest.approx(0.3, abs=0.08)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="target_cloud_rate"):
        AdaptiveThreshold(target_cloud_rate=1.5)
    with pytest.raises(ValueError, match="min_samples"):
        AdaptiveThreshold(target_cloud_rate=0.3, window=5, min_samples=10)


def test_chat_hybrid_keys_adaptive_windows_by_the_run_metadata() -> None:
    from langchain_core.language_models import GenericFakeChatModel

    from langchain_hybrid import ChatHybrid
    from tests.support.fake_chat import FakeLocalChatModel

    adaptive = AdaptiveThreshold(target_cloud_rate=0.5, window=20, key="user_id")
    llm = ChatHybrid(
        local=FakeLocalChatModel(logprob=-0.1),
        cloud=GenericFakeChatModel(messages=iter(["cloud"] * 10)),
        policy=RoutingPolicy(threshold=-0.6, adaptive=adaptive),
    )
    llm.invoke("q", config={"metadata": {"user_id": "ada"}})
    llm.invoke("q", config={"metadata": {"user_id": "ada"}})
    llm.invoke("q", config={"metadata": {"user_id": "bob"}})
    llm.invoke("q")
    assert {k: v["n"] for k, v in adaptive.snapshot().items()} == {"ada": 2, "bob": 1, "": 1}
