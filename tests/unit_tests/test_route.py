"""The route written once: every driver reaches the same decision, and the policy rules it.

The tiers are the scripted local and cloud ``ChatOpenAI`` clients of ``test_chat_hybrid``:
the local one answers confidently (-0.05 per token), unsure (-2.0), with a hedge, or
rambles for 100 tokens at -2.0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage
from langchain_core.runnables import Runnable

from langchain_hybrid import (
    ChatHybrid,
    ConfidenceGate,
    EarlyEscalation,
    ForceCloudRule,
    ForceLocalRule,
    InvalidMessagesError,
    MinLogprobScorer,
    RoutingPolicy,
)
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.openai_fake import Fault
from tests.support.openai_mock import MockOpenAI
from tests.unit_tests.test_chat_hybrid import (
    CLOUD_ANSWER,
    CLOUD_MODEL,
    CONFIDENT_Q,
    HEDGE_Q,
    LOCAL_CONFIDENT,
    LOCAL_MODEL,
    RAMBLE_Q,
    UNSURE_Q,
    Recorder,
    cloud_model,
    cloud_server,
    get_weather,
    llm,
    local_model,
    local_server,
    merge,
    routing,
)

__all__ = ["cloud_server", "llm", "local_server"]  # fixtures used here

MODES = ["invoke", "ainvoke", "stream", "astream"]
TIMING = ("local_latency_s", "cloud_latency_s")
POLICY = RoutingPolicy(
    threshold=-0.6,
    rules=[ForceLocalRule(pattern="(?i)secret", name="nda"), ForceCloudRule(pattern="(?i)legal")],
    early_escalation=EarlyEscalation(min_tokens=8, margin=0.5),
    version="t-1",
)

# name -> (question, fault for the local tier, fault for the cloud tier)
SCENARIOS: dict[str, tuple[str, Fault | None, Fault | None]] = {
    "confident": (CONFIDENT_Q, None, None),
    "low_confidence": (UNSURE_Q, None, None),
    "hedge": (HEDGE_Q, None, None),
    "early_abort": (RAMBLE_Q, None, None),
    "force_local": (f"secret: {UNSURE_Q}", None, None),
    "force_cloud": (f"legal: {CONFIDENT_Q}", None, None),
    "degraded": (UNSURE_Q, None, Fault(status=500)),
    "local_error": (CONFIDENT_Q, Fault(status=500), None),
}
EXPECTED = {
    "confident": ("local", "confident"),
    "low_confidence": ("cloud", "low_confidence"),
    "hedge": ("cloud", "hedge"),
    "early_abort": ("cloud", "early_abort"),
    "force_local": ("local", "rule_force_local"),
    "force_cloud": ("cloud", "rule_force_cloud"),
    "degraded": ("local", "cloud_error"),
    "local_error": ("cloud", "local_error"),
}


async def answer_in(mode: str, runnable: Runnable[Any, Any], value: Any, **config: Any) -> Any:
    """Run ``runnable`` in one of the four call styles and return its whole answer."""
    cfg: Any = config or None
    if mode == "invoke":
        return runnable.invoke(value, cfg)
    if mode == "ainvoke":
        return await runnable.ainvoke(value, cfg)
    if mode == "stream":
        return merge(list(runnable.stream(value, cfg)))
    return merge([c async for c in runnable.astream(value, cfg)])


def without_timing(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in TIMING}


def script(local: MockOpenAI, cloud: MockOpenAI, scenario: str) -> str:
    question, local_fault, cloud_fault = SCENARIOS[scenario]
    if local_fault is not None:
        local.enqueue(local_fault)
    if cloud_fault is not None:
        cloud.enqueue(cloud_fault)
    return question


def hybrid(local: MockOpenAI, cloud: MockOpenAI, **kw: Any) -> ChatHybrid:
    kw.setdefault("policy", POLICY)
    return ChatHybrid(local=local_model(local), cloud=cloud_model(cloud), **kw)


# --------------------------------------------------------------------------- one decision


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_every_driver_reaches_the_same_decision(
    local_server: MockOpenAI, cloud_server: MockOpenAI, scenario: str
) -> None:
    decisions = {}
    for mode in MODES:
        question = script(local_server, cloud_server, scenario)
        out = await answer_in(mode, hybrid(local_server, cloud_server), question)
        decisions[mode] = routing(out)
        assert (decisions[mode]["tier"], decisions[mode]["reason"]) == EXPECTED[scenario], mode
    reference = without_timing(decisions["invoke"])
    for mode in MODES[1:]:
        assert without_timing(decisions[mode]) == reference, mode


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_the_gate_reaches_the_same_decision_in_every_driver(
    local_server: MockOpenAI, cloud_server: MockOpenAI, scenario: str
) -> None:
    decisions = {}
    for mode in MODES:
        question = script(local_server, cloud_server, scenario)
        gate = ConfidenceGate(local_model(local_server), cloud_model(cloud_server), policy=POLICY)
        decisions[mode] = routing(await answer_in(mode, gate, question))
    tier_reason = (decisions["invoke"]["tier"], decisions["invoke"]["reason"])
    # The gate calls the primary whole, so it never stops a local answer early.
    assert tier_reason == (
        ("cloud", "low_confidence") if scenario == "early_abort" else EXPECTED[scenario]
    )
    reference = without_timing(decisions["invoke"])
    for mode in MODES[1:]:
        assert without_timing(decisions[mode]) == reference, mode


@pytest.mark.parametrize("scenario", ["confident", "low_confidence", "hedge", "early_abort"])
def test_judge_on_a_recorded_local_answer_equals_the_live_decision(
    local_server: MockOpenAI, cloud_server: MockOpenAI, scenario: str
) -> None:
    llm = hybrid(local_server, cloud_server)
    question = script(local_server, cloud_server, scenario)
    live = routing(llm.invoke(question))
    recorded = local_model(local_server).invoke(question)  # the same local answer, whole

    verdict = llm.routing_policy.judge(recorded)

    assert (verdict.tier, verdict.reason, verdict.early_abort) == (
        live["tier"],
        live["reason"],
        live["early_abort"],
    )
    assert verdict.confidence.score == pytest.approx(live["confidence"])
    assert verdict.features == pytest.approx(live["features"])
    assert verdict.n_tokens == live["local_output_tokens"]


def test_a_saved_and_loaded_policy_routes_identically(
    tmp_path: Any, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    path = tmp_path / "policy.json"
    POLICY.save(path)
    original, loaded = (
        hybrid(local_server, cloud_server),
        hybrid(local_server, cloud_server, policy=RoutingPolicy.load(path)),
    )
    assert loaded.routing_policy == original.routing_policy
    for scenario in SCENARIOS:
        first = routing(original.invoke(script(local_server, cloud_server, scenario)))
        second = routing(loaded.invoke(script(local_server, cloud_server, scenario)))
        assert without_timing(first) == without_timing(second), scenario


# --------------------------------------------------------------------------- one home


def test_shorthands_fold_into_the_policy_and_copies_stay_live(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = hybrid(local_server, cloud_server, threshold=-0.6)
    assert routing(llm.invoke(UNSURE_Q))["reason"] == "low_confidence"

    lenient = llm.model_copy(update={"threshold": -5.0})
    decision = routing(lenient.invoke(UNSURE_Q))
    assert (decision["tier"], decision["reason"], decision["threshold"]) == (
        "local",
        "confident",
        -5.0,
    )
    assert decision["policy_version"] == "t-1"  # the rest of the policy is kept
    assert llm.routing_policy.threshold == -0.6  # the original is untouched


def test_a_scorer_shorthand_overrides_the_policy_scorer(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = hybrid(local_server, cloud_server, scorer=MinLogprobScorer())
    assert llm.routing_policy.scorer == MinLogprobScorer()
    assert routing(llm.invoke(CONFIDENT_Q))["scorer"] == "min_logprob"


def test_unknown_settings_are_an_error_not_ignored(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    with pytest.raises(ValueError, match="no setting 'early_escalation'.*RoutingPolicy"):
        hybrid(local_server, cloud_server, early_escalation=False)
    with pytest.raises(ValueError, match="no setting 'max_retries'.*each tier"):
        hybrid(local_server, cloud_server, max_retries=3)


def test_generation_settings_reach_both_tiers(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = hybrid(local_server, cloud_server, temperature=0.0, max_tokens=50, stop=["\n\n"])
    llm.invoke(UNSURE_Q)
    for request in (local_server.chat_requests[-1], cloud_server.chat_requests[-1]):
        assert request["temperature"] == 0.0 and request["stop"] == ["\n\n"]
        assert 50 in (request.get("max_tokens"), request.get("max_completion_tokens"))
    llm.invoke(UNSURE_Q, max_tokens=7)  # a call's own setting wins
    assert 7 in (
        local_server.chat_requests[-1].get("max_tokens"),
        local_server.chat_requests[-1].get("max_completion_tokens"),
    )


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    "messages",
    [[], [ChatMessage(role="narrator", content="Once upon a time")]],
    ids=["empty", "unknown-role"],
)
def test_bad_input_is_a_typed_error_before_any_tier(
    local_server: MockOpenAI,
    cloud_server: MockOpenAI,
    messages: Sequence[BaseMessage],
) -> None:
    llm = hybrid(local_server, cloud_server)
    with pytest.raises(InvalidMessagesError):
        llm.invoke(list(messages))
    assert local_server.chat_requests == [] and cloud_server.chat_requests == []


def test_a_force_local_rule_wins_over_tools_the_local_tier_cannot_call(
    cloud_server: MockOpenAI,
) -> None:
    local = FakeLocalChatModel()  # its bind_tools raises NotImplementedError
    llm = ChatHybrid(local=local, cloud=cloud_model(cloud_server), policy=POLICY)
    bound = llm.bind_tools([get_weather])

    kept = bound.invoke(f"secret: {CONFIDENT_Q}")
    assert (routing(kept)["tier"], routing(kept)["reason"]) == ("local", "rule_force_local")
    assert cloud_server.chat_requests == []
    # Without the rule, the tools send the request to the cloud.
    sent = bound.invoke(CONFIDENT_Q)
    assert (routing(sent)["tier"], routing(sent)["reason"]) == ("cloud", "local_unsupported")


@pytest.mark.parametrize("mode", MODES)
async def test_the_gate_runs_the_pre_routing_rules(
    local_server: MockOpenAI, cloud_server: MockOpenAI, mode: str
) -> None:
    gate = ConfidenceGate(local_model(local_server), cloud_model(cloud_server), policy=POLICY)

    kept = routing(await answer_in(mode, gate, f"secret: {UNSURE_Q}"))
    assert (kept["tier"], kept["reason"], kept["rule"]) == ("local", "rule_force_local", "nda")
    assert cloud_server.chat_requests == []

    sent = await answer_in(mode, gate, f"legal: {CONFIDENT_Q}")
    assert sent.content == CLOUD_ANSWER and routing(sent)["reason"] == "rule_force_cloud"
    assert len(local_server.chat_requests) == 1  # the primary was not asked

    cloud_server.enqueue(Fault(status=500))
    degraded = await answer_in(mode, gate, f"legal: {CONFIDENT_Q}")
    assert degraded.content == LOCAL_CONFIDENT and routing(degraded)["degraded"]


# --------------------------------------------------------------------------- usage, once


def usage_of(calls: Callable[[UsageMetadataCallbackHandler], None]) -> dict[str, Any]:
    handler = UsageMetadataCallbackHandler()
    calls(handler)
    return handler.usage_metadata


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question", [CONFIDENT_Q, UNSURE_Q], ids=["local", "escalated"])
async def test_the_usage_handler_sees_each_models_tokens_once(
    local_server: MockOpenAI, cloud_server: MockOpenAI, mode: str, question: str
) -> None:
    llm = hybrid(local_server, cloud_server)
    handler = UsageMetadataCallbackHandler()
    answer = await answer_in(mode, llm, question, callbacks=[handler])

    # What each tier reports when called on its own, once.
    local, cloud = local_model(local_server), cloud_model(cloud_server)
    expected = UsageMetadataCallbackHandler()
    merge(list(local.stream(question, {"callbacks": [expected]})))
    if question == UNSURE_Q:
        cloud.invoke(question, {"callbacks": [expected]})
    assert handler.usage_metadata == expected.usage_metadata
    assert set(handler.usage_metadata) == (
        {LOCAL_MODEL} if question == CONFIDENT_Q else {LOCAL_MODEL, CLOUD_MODEL}
    )
    # The answer still carries the usage of the tier that answered.
    answered_by = LOCAL_MODEL if question == CONFIDENT_Q else CLOUD_MODEL
    assert answer.usage_metadata is not None
    assert (
        answer.usage_metadata["output_tokens"]
        == (expected.usage_metadata[answered_by]["output_tokens"])
    )
    assert routing(answer)["usage"]["output_tokens"] == answer.usage_metadata["output_tokens"]


def test_the_routed_run_reports_no_usage_of_its_own(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = hybrid(local_server, cloud_server)
    result = llm.generate([[HumanMessage(UNSURE_Q)]])
    message = result.generations[0][0].message  # type: ignore[attr-defined]
    assert isinstance(message, AIMessage) and message.usage_metadata is None
    assert routing(message)["usage"] is not None


@pytest.mark.parametrize("question", [CONFIDENT_Q, UNSURE_Q], ids=["local", "escalated"])
def test_streaming_invoke_routes_alike_and_reports(
    local_server: MockOpenAI, cloud_server: MockOpenAI, question: str
) -> None:
    recorder = Recorder()
    streamed = hybrid(local_server, cloud_server, streaming=True).invoke(
        question, config={"callbacks": [recorder]}
    )
    direct = hybrid(local_server, cloud_server).invoke(question)
    assert streamed.content == direct.content
    assert without_timing(routing(streamed)) == without_timing(routing(direct))
    assert [e["data"] for e in recorder.route_events()] == [routing(streamed)]
    assert {s["name"] for s in recorder.starts} >= {"local"}  # tier runs nest under it
