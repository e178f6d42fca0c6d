"""N-tier cascades: ``ChatHybrid.cascade(tiers, thresholds)``, nested ChatHybrid steps.

small -> medium -> large, each step with its own threshold and guards; every step's
decision is recorded (``routing`` for the first step, ``tier_routing`` for the steps
below, innermost first; ``routing_steps`` reads them in the order they ran), through
invoke, stream, ainvoke and astream alike.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from langchain_hybrid import Budget, ChatHybrid, RoutingPolicy, routing_steps
from langchain_hybrid.routing.guards import CloudOutcome
from tests.support.fake_chat import FakeLocalChatModel


def _tier(name: str, logprob: float) -> FakeLocalChatModel:
    return FakeLocalChatModel(
        messages=itertools.repeat(f"{name} answer"), logprob=logprob, model_name=name
    )


def cascade(small: float, medium: float, budget: Budget | None = None) -> ChatHybrid:
    return ChatHybrid.cascade(
        [_tier("small", small), _tier("medium", medium), _tier("large", -0.1)],
        thresholds=[-1.5, -0.5],
        steps=[{}, {"budget": budget}],
        privacy=False,
    )


async def _answer(llm: ChatHybrid, how: str) -> BaseMessage:
    if how == "invoke":
        return llm.invoke("q")
    if how == "ainvoke":
        return await llm.ainvoke("q")
    full: Any = None
    if how == "stream":
        for chunk in llm.stream("q"):
            full = chunk if full is None else full + chunk
    else:
        async for chunk in llm.astream("q"):
            full = chunk if full is None else full + chunk
    return full


PATHS = ["invoke", "stream", "ainvoke", "astream"]


@pytest.mark.parametrize("how", PATHS)
async def test_unsure_steps_escalate_to_the_last_tier(how: str) -> None:
    msg = await _answer(cascade(small=-2.0, medium=-1.0), how)
    assert msg.content == "large answer"
    first = msg.response_metadata["routing"]
    [second] = msg.response_metadata["tier_routing"]
    assert (first["tier"], first["reason"], first["threshold"]) == ("cloud", "low_confidence", -1.5)
    assert (second["tier"], second["reason"], second["threshold"]) == (
        "cloud",
        "low_confidence",
        -0.5,
    )


@pytest.mark.parametrize("how", PATHS)
async def test_a_confident_middle_tier_ends_the_cascade(how: str) -> None:
    msg = await _answer(cascade(small=-2.0, medium=-0.2), how)
    assert msg.content == "medium answer"
    [second] = msg.response_metadata["tier_routing"]
    assert msg.response_metadata["routing"]["tier"] == "cloud"
    assert (second["tier"], second["reason"]) == ("local", "confident")


@pytest.mark.parametrize("how", PATHS)
async def test_a_confident_first_tier_asks_no_other(how: str) -> None:
    msg = await _answer(cascade(small=-0.1, medium=-1.0), how)
    assert msg.content == "small answer"
    assert msg.response_metadata["routing"]["reason"] == "confident"
    assert "tier_routing" not in msg.response_metadata


async def test_each_step_has_its_own_guards() -> None:
    spent = Budget(max_cloud_tokens=10)
    spent.acquire().release(CloudOutcome(tokens=10))  # the large tier's budget is spent
    msg = await _answer(cascade(small=-2.0, medium=-1.0, budget=spent), "invoke")
    assert msg.content == "medium answer"  # the medium tier answers in its place
    [second] = msg.response_metadata["tier_routing"]
    assert (second["tier"], second["reason"]) == ("local", "budget_exhausted")


@pytest.mark.parametrize("how", PATHS)
async def test_routing_steps_lists_every_step_of_a_four_tier_cascade_in_order(how: str) -> None:
    llm = ChatHybrid.cascade(
        [_tier("a", -3.0), _tier("b", -2.0), _tier("c", -0.1), _tier("d", -0.1)],
        thresholds=[-1.0, -1.0, -1.0],
        privacy=False,
    )
    msg = await _answer(llm, how)
    assert msg.content == "c answer"
    steps = routing_steps(msg)
    assert [(s["tier"], s["reason"]) for s in steps] == [
        ("cloud", "low_confidence"),  # a was unsure
        ("cloud", "low_confidence"),  # b was unsure
        ("local", "confident"),  # c answered; d never ran
    ]
    assert [s["confidence"] for s in steps] == pytest.approx([-3.0, -2.0, -0.1])


def test_a_step_can_take_its_own_policy_and_shared_settings_reach_every_step() -> None:
    llm = ChatHybrid.cascade(
        [_tier("a", -0.1), _tier("b", -0.1), _tier("c", -0.1)],
        steps=[{"policy": RoutingPolicy(threshold=-0.2)}, {}],
        thresholds=[None, -0.7],
        privacy=False,
    )
    inner = llm.cloud
    assert isinstance(inner, ChatHybrid)
    assert (llm.routing_policy.threshold, inner.routing_policy.threshold) == (-0.2, -0.7)
    assert llm.privacy is False and inner.privacy is False
    assert llm.circuit_breaker is not inner.circuit_breaker  # each step guards its own cloud


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tiers": [_tier("a", -0.1)]}, "at least two tiers"),
        ({"thresholds": [-1.0]}, "thresholds needs one entry per step, 2 for 3 tiers"),
        ({"steps": [{}]}, "steps needs one entry per step"),
        ({"budget": Budget(max_usd=1.0)}, "budget cannot be shared by all steps"),
        ({"steps": [{"cloud": _tier("x", 0.0)}, {}]}, "steps\\[0\\] names cloud"),
        (
            {"thresholds": [-1.0, None], "steps": [{"threshold": -2.0}, {}]},
            "step 0 has a threshold in thresholds= and in steps",
        ),
    ],
)
def test_a_malformed_cascade_says_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    tiers = kwargs.pop("tiers", [_tier("a", -0.1), _tier("b", -0.1), _tier("c", -0.1)])
    with pytest.raises(ValueError, match=message):
        ChatHybrid.cascade(tiers, **kwargs)


@pytest.mark.parametrize("how", PATHS)
async def test_each_step_names_the_model_that_answered(how: str) -> None:
    # small -> medium -> large: the medium model answers; every step's decision says so,
    # whatever the tier is called in that step ("cloud" for the first, "local" below).
    msg = await _answer(cascade(small=-2.0, medium=-0.2), how)
    steps = routing_steps(msg)
    assert [(s["tier"], s["model"]) for s in steps] == [("cloud", "medium"), ("local", "medium")]
    msg = await _answer(cascade(small=-0.1, medium=-1.0), how)
    assert [(s["tier"], s["model"]) for s in routing_steps(msg)] == [("local", "small")]
