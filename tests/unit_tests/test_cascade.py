"""N-tier cascades by composition: a ChatHybrid whose cloud tier is another ChatHybrid.

small -> medium -> large, each step with its own threshold and guards; every step's
decision is recorded (``routing`` for the first step, ``tier_routing`` for the steps
below, innermost first), through invoke, stream, ainvoke and astream alike.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from langchain_hybrid import Budget, ChatHybrid
from langchain_hybrid.routing.guards import CloudOutcome
from tests.support.fake_chat import FakeLocalChatModel


def _tier(name: str, logprob: float) -> FakeLocalChatModel:
    return FakeLocalChatModel(
        messages=itertools.repeat(f"{name} answer"), logprob=logprob, model_name=name
    )


def cascade(small: float, medium: float, budget: Budget | None = None) -> ChatHybrid:
    second = ChatHybrid(
        local=_tier("medium", medium),
        cloud=_tier("large", -0.1),
        threshold=-0.5,
        privacy=False,
        budget=budget,
    )
    return ChatHybrid(local=_tier("small", small), cloud=second, threshold=-1.5, privacy=False)


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
