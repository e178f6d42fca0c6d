"""Reliability: cloud failures by kind, broken streams, the circuit breaker, budgets, deadlines.

The cloud tier is the real ``ChatOpenAI`` answering through ``MockOpenAI`` (scripted
replies and injected faults, no socket); the local tier is ``FakeLocalChatModel``.
Every call either answers (with a decision) or raises one typed error carrying its
decision, and the ``hybrid_route`` event counts it either way.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.exceptions import (
    ModelAuthenticationError,
    ModelInvalidRequestError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.messages import AIMessageChunk, BaseMessage

from langchain_hybrid import ChatHybrid, RoutingStatsHandler
from langchain_hybrid.errors import (
    BothTiersFailedError,
    CloudRequestError,
    CloudStreamBrokenError,
    InvalidCallOptionError,
)
from langchain_hybrid.routing import failures
from langchain_hybrid.routing.decision import RouteDecision
from langchain_hybrid.routing.failures import failure_kind
from langchain_hybrid.routing.guards import Budget, CircuitBreaker, CloudOutcome
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply
from tests.support.openai_mock import MockOpenAI

UNSURE = -2.0  # below the -0.6 threshold: every local answer escalates
LOCAL_TEXT = "It was Charles Dickens."
CLOUD_TEXT = "Middlemarch was written by George Eliot, the pen name of Mary Ann Evans."
QUESTION = "Who wrote Middlemarch?"


class Clock:
    """A hand-driven monotonic clock for the guards."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cloud() -> MockOpenAI:
    return MockOpenAI(default_reply=ScriptedReply(CLOUD_TEXT, logprobs=-0.01))


def hybrid(cloud: MockOpenAI, **kw: Any) -> ChatHybrid:
    local = FakeLocalChatModel(messages=iter([LOCAL_TEXT] * 1000), logprob=UNSURE)
    return ChatHybrid(
        local=local, cloud=make_chat_openai(cloud, stream_usage=True), threshold=-0.6, **kw
    )


def routing(message: BaseMessage) -> dict[str, Any]:
    value = message.response_metadata["routing"]
    RouteDecision.from_dict(value)
    return dict(value)


async def answer(llm: ChatHybrid, style: str, **kw: Any) -> BaseMessage:
    """Answer QUESTION in one of the four call styles; the decision is on the result."""
    if style == "invoke":
        return llm.invoke(QUESTION, **kw)
    if style == "ainvoke":
        return await llm.ainvoke(QUESTION, **kw)
    if style == "stream":
        chunks = list(llm.stream(QUESTION, **kw))
    else:
        chunks = [c async for c in llm.astream(QUESTION, **kw)]
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


STYLES = ["invoke", "ainvoke", "stream", "astream"]


# ------------------------------------------------------------------ failure kinds


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ModelAuthenticationError("bad key"), "auth"),
        (ModelInvalidRequestError("bad"), "bad_request"),
        (ModelTimeoutError("slow"), "timeout"),
        (ModelRateLimitError("429"), "unavailable"),
        (TimeoutError(), "timeout"),
        (ConnectionResetError(), "unavailable"),
        (ValueError("malformed JSON"), "unavailable"),
    ],
)
def test_failure_kinds(error: Exception, kind: str) -> None:
    assert failure_kind(error) == kind


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(status=500), "cloud_error"),
        (Fault(status=429, retry_after_s=None), "cloud_error"),
        (Fault(drop=True), "cloud_error"),
        (Fault(status=401), "cloud_auth_error"),
        (Fault(status=400), "cloud_bad_request"),
    ],
    ids=["500", "429", "dropped", "401", "400"],
)
async def test_cloud_failures_degrade_with_a_reason_of_their_kind(
    cloud: MockOpenAI, style: str, fault: Fault, reason: str
) -> None:
    cloud.enqueue(fault)
    msg = await answer(hybrid(cloud), style)

    assert msg.content == LOCAL_TEXT
    r = routing(msg)
    assert (r["tier"], r["reason"], r["escalation_reason"]) == ("local", reason, "low_confidence")
    assert r["degraded"] and r["escalated"] and not r["failed"]
    assert r["error"].startswith("cloud: ")
    assert len(cloud.chat_requests) == 1  # the client's retries only (max_retries=0 here)


def test_auth_and_bad_request_failures_warn_once_per_model(
    cloud: MockOpenAI, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failures, "_warned", set())
    llm = hybrid(cloud)
    for fault in (Fault(status=401), Fault(status=401), Fault(status=500), Fault(status=400)):
        cloud.enqueue(fault)
        with caplog.at_level(logging.WARNING, logger="langchain_hybrid.routing"):
            llm.invoke(QUESTION)

    warned = [r.getMessage() for r in caplog.records if r.name == "langchain_hybrid.routing"]
    assert len(warned) == 2
    assert "check the API key" in warned[0] and "raise_on_cloud_errors" in warned[0]
    assert "rejected the request" in warned[1]


@pytest.mark.parametrize("style", STYLES)
async def test_raise_on_cloud_errors_raises_a_typed_error_carrying_the_decision(
    cloud: MockOpenAI, style: str
) -> None:
    stats = RoutingStatsHandler()
    llm = hybrid(cloud, raise_on_cloud_errors=frozenset({"auth"}))
    cloud.enqueue(Fault(status=401))
    with pytest.raises(CloudRequestError, match="auth") as info:
        await answer(llm, style, config={"callbacks": [stats]})

    decision = info.value.decision
    assert (decision.reason, decision.failed, decision.degraded) == (
        "cloud_auth_error",
        True,
        False,
    )
    assert info.value.local_answer.content == LOCAL_TEXT
    assert isinstance(info.value.__cause__, ModelAuthenticationError)
    snapshot = stats.snapshot()
    assert snapshot.calls == 1 and snapshot.by_reason["cloud_auth_error"] == 1

    cloud.enqueue(Fault(status=500))  # other kinds still degrade
    assert routing(await answer(llm, style))["degraded"]


def test_raise_on_cloud_errors_rejects_unknown_kinds(cloud: MockOpenAI) -> None:
    with pytest.raises(ValueError, match="raise_on_cloud_errors"):
        hybrid(cloud, raise_on_cloud_errors=frozenset({"outage"}))


def test_local_failure_is_recorded_when_the_cloud_answers(cloud: MockOpenAI) -> None:
    class Broken(FakeLocalChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise MemoryError("out of memory")

        def _stream(self, *args: Any, **kwargs: Any) -> Any:
            raise MemoryError("out of memory")

    llm = ChatHybrid(local=Broken(), cloud=make_chat_openai(cloud))
    r = routing(llm.invoke(QUESTION))
    assert (r["tier"], r["reason"]) == ("cloud", "local_error")
    assert r["error"] == "local: MemoryError: out of memory"


@pytest.mark.parametrize("style", STYLES)
async def test_both_tiers_failing_raise_one_error_with_a_decision(
    cloud: MockOpenAI, style: str
) -> None:
    class Broken(FakeLocalChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("local crashed")

        def _stream(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("local crashed")

    stats = RoutingStatsHandler()
    llm = ChatHybrid(local=Broken(), cloud=make_chat_openai(cloud))
    cloud.enqueue(Fault(status=503))
    with pytest.raises(BothTiersFailedError, match="local crashed") as info:
        await answer(llm, style, config={"callbacks": [stats]})
    assert info.value.decision.failed and info.value.decision.reason == "cloud_error"
    assert stats.snapshot().calls == 1


# ------------------------------------------------------------------ broken streams


@pytest.mark.parametrize("style", ["stream", "astream"])
@pytest.mark.parametrize(
    "fault", [Fault(drop_after_chunks=4), Fault(end_after_chunks=4)], ids=["dropped", "ended"]
)
async def test_a_cloud_stream_broken_midway_ends_in_one_typed_error(
    cloud: MockOpenAI, style: str, fault: Fault
) -> None:
    stats = RoutingStatsHandler()
    llm = hybrid(cloud)
    cloud.enqueue(fault)
    received: list[AIMessageChunk] = []
    config = {"callbacks": [stats]}
    with pytest.raises(CloudStreamBrokenError) as info:
        if style == "stream":
            for chunk in llm.stream(QUESTION, config=config):
                received.append(chunk)
        else:
            async for chunk in llm.astream(QUESTION, config=config):
                received.append(chunk)

    error = info.value
    shown = "".join(str(c.content) for c in received)
    assert shown and CLOUD_TEXT.startswith(shown)
    assert error.partial_text == shown
    assert error.local_answer is not None and error.local_answer.content == LOCAL_TEXT
    d = error.decision
    assert (d.tier, d.reason, d.escalation_reason) == (
        "cloud",
        "cloud_stream_broken",
        "low_confidence",
    )
    assert d.failed and not d.degraded
    s = stats.snapshot()
    assert s.calls == 1 and s.failed == 1 and s.by_reason["cloud_stream_broken"] == 1


@pytest.mark.parametrize("style", ["stream", "astream"])
async def test_a_cloud_stream_that_ends_before_any_text_degrades(
    cloud: MockOpenAI, style: str
) -> None:
    cloud.enqueue(Fault(end_after_chunks=1))  # only the role chunk, then [DONE]
    msg = await answer(hybrid(cloud), style)
    r = routing(msg)
    assert msg.content == LOCAL_TEXT
    assert (r["reason"], r["degraded"]) == ("cloud_stream_broken", True)


async def test_invoke_with_streaming_on_also_ends_a_broken_stream_in_the_typed_error(
    cloud: MockOpenAI,
) -> None:
    # streaming=True streams the cloud: its tokens already reached the callbacks.
    cloud.enqueue(Fault(drop_after_chunks=4))
    with pytest.raises(CloudStreamBrokenError) as info:
        await hybrid(cloud, streaming=True).ainvoke(QUESTION)
    assert info.value.partial_text and CLOUD_TEXT.startswith(info.value.partial_text)


# ------------------------------------------------------------------ circuit breaker


def test_circuit_breaker_skips_the_cloud_then_probes(cloud: MockOpenAI) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30, clock=clock)
    llm = hybrid(cloud, circuit_breaker=breaker)
    stats = RoutingStatsHandler()
    config = {"callbacks": [stats]}
    for _ in range(2):
        cloud.enqueue(Fault(status=503, retry_after_s=None))
        assert routing(llm.invoke(QUESTION, config=config))["reason"] == "cloud_error"

    skipped = routing(llm.invoke(QUESTION, config=config))
    assert (skipped["tier"], skipped["reason"], skipped["degraded"]) == (
        "local",
        "cloud_circuit_open",
        True,
    )
    assert not skipped["escalated"] and skipped["escalation_reason"] == "low_confidence"
    assert len(cloud.chat_requests) == 2  # the third call never reached the cloud
    assert breaker.snapshot()["state"] == "open" and breaker.snapshot()["skipped"] == 1

    clock.now = 31.0  # after the cool-down one probe goes through and closes the circuit
    probe = llm.invoke(QUESTION, config=config)
    assert probe.content == CLOUD_TEXT and breaker.state == "closed"
    assert stats.snapshot().by_reason["cloud_circuit_open"] == 1


def test_an_open_circuit_lets_the_local_answer_finish(cloud: MockOpenAI) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60)
    breaker.acquire().release(CloudOutcome(failure="unavailable"))
    ramble = " word" * 60
    local = FakeLocalChatModel(messages=iter([ramble]), logprob=UNSURE)
    llm = ChatHybrid(local=local, cloud=make_chat_openai(cloud), circuit_breaker=breaker)

    msg = llm.invoke(QUESTION)
    r = routing(msg)
    assert msg.content == ramble  # not stopped early: the cloud was not going to answer
    assert (r["reason"], r["early_abort"]) == ("cloud_circuit_open", False)


def test_circuit_breaker_is_thread_safe() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=1000)
    barrier = threading.Barrier(8)

    def fail() -> None:
        barrier.wait()
        for _ in range(50):
            permit = breaker.acquire()
            if permit is not None:
                permit.release(CloudOutcome(failure="timeout"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: fail(), range(8)))
    snap = breaker.snapshot()
    assert snap["state"] == "open" and snap["times_opened"] == 1
    assert snap["skipped"] >= 8 * 50 - 3 - 8  # at most the in-flight ones got through


def test_half_open_allows_one_probe_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5, clock=clock)
    breaker.acquire().release(CloudOutcome(failure="unavailable"))
    clock.now = 6
    probe = breaker.acquire()
    assert probe is not None and breaker.acquire() is None
    probe.release(CloudOutcome(failure="unavailable"))  # a failed probe reopens
    assert breaker.state == "open" and breaker.snapshot()["times_opened"] == 2
    clock.now = 20
    breaker.acquire().release(None)  # a probe that was not made frees the slot
    assert breaker.acquire() is not None


def test_bad_requests_do_not_open_the_circuit() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.acquire().release(CloudOutcome(failure="bad_request"))
    assert breaker.state == "closed"


def test_circuit_breaker_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="unknown failure kinds"):
        CircuitBreaker(counts=frozenset({"outage"}))  # type: ignore[arg-type]


# ------------------------------------------------------------------ budgets


def test_budget_answers_locally_once_spent(cloud: MockOpenAI) -> None:
    budget = Budget(max_cloud_tokens=1)
    llm = hybrid(cloud, budget=budget)
    first = llm.invoke(QUESTION)
    assert first.content == CLOUD_TEXT
    second = routing(llm.invoke(QUESTION))
    assert (second["tier"], second["reason"], second["degraded"]) == (
        "local",
        "budget_exhausted",
        True,
    )
    assert len(cloud.chat_requests) == 1
    assert budget.snapshot()["spent_tokens"] > 0 and budget.snapshot()["refused"] == 1


def test_budget_in_usd_uses_the_price_table(cloud: MockOpenAI) -> None:
    budget = Budget(max_usd=1e-9)
    llm = hybrid(cloud, budget=budget)  # gpt-4o is in the default price table
    llm.invoke(QUESTION)
    assert budget.snapshot()["spent_usd"] > 0
    assert routing(llm.invoke(QUESTION))["reason"] == "budget_exhausted"


def test_budget_window_forgets_old_spending() -> None:
    clock = Clock()
    budget = Budget(max_cloud_tokens=100, window_s=60, clock=clock)
    budget.acquire().release(CloudOutcome(tokens=150))
    assert not budget.available()
    clock.now = 61
    assert budget.available()


def test_budget_shared_between_models(cloud: MockOpenAI) -> None:
    budget = Budget(max_cloud_tokens=1)
    hybrid(cloud, budget=budget).invoke(QUESTION)
    assert routing(hybrid(cloud, budget=budget).invoke(QUESTION))["reason"] == "budget_exhausted"


@pytest.mark.parametrize("call_tokens", [10, 35])
def test_budget_goes_over_by_at_most_one_call_under_concurrency(call_tokens: int) -> None:
    budget = Budget(max_cloud_tokens=1000)
    spent: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for _ in range(40):
            permit = budget.acquire()
            if permit is None:
                continue
            with lock:
                spent.append(call_tokens)
            permit.release(CloudOutcome(tokens=call_tokens))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: worker(), range(16)))
    assert 1000 <= sum(spent) <= 1000 + call_tokens
    assert budget.snapshot()["in_flight"] == 0


def test_budget_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_usd, max_cloud_tokens"):
        Budget()
    with pytest.raises(ValueError, match="max_usd"):
        Budget(max_usd=-1)


# ------------------------------------------------------------------ one deadline


class SlowLocal(FakeLocalChatModel):
    """A local tier that takes ``delay_s`` per answer (no timeout option of its own)."""

    delay_s: float = 0.3

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay_s)
        yield from super()._stream(*args, **kwargs)


def test_no_time_left_for_the_cloud_returns_the_local_answer(cloud: MockOpenAI) -> None:
    llm = ChatHybrid(
        local=SlowLocal(messages=iter([LOCAL_TEXT]), logprob=UNSURE),
        cloud=make_chat_openai(cloud),
        timeout=0.1,
    )
    msg = llm.invoke(QUESTION)
    r = routing(msg)
    assert msg.content == LOCAL_TEXT
    assert (r["reason"], r["degraded"], r["escalation_reason"]) == (
        "cloud_timeout",
        True,
        "low_confidence",
    )
    assert not cloud.chat_requests


def test_the_deadline_reaches_tiers_that_take_a_timeout(cloud: MockOpenAI) -> None:
    seen: list[dict[str, Any]] = []

    class Spy(FakeLocalChatModel):
        def _stream(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            seen.append(kw)
            yield from super()._stream(messages, stop, run_manager, **kw)

    class SpyWithTimeout(Spy):
        timeout: float | None = None

    ChatHybrid(local=SpyWithTimeout(logprob=-0.01), cloud=make_chat_openai(cloud)).invoke(
        QUESTION, timeout=30
    )
    ChatHybrid(local=Spy(logprob=-0.01), cloud=make_chat_openai(cloud), timeout=30).invoke(QUESTION)
    assert 29 < seen[0]["timeout"] <= 30  # what is left of the call's 30 s
    assert "timeout" not in seen[1]  # a tier without a timeout option is not sent one


@pytest.mark.parametrize("bad", [0, -1, "soon", True])
def test_a_bad_call_timeout_is_a_typed_error(cloud: MockOpenAI, bad: Any) -> None:
    with pytest.raises(InvalidCallOptionError, match="timeout"):
        hybrid(cloud).invoke(QUESTION, timeout=bad)
    assert not cloud.chat_requests


# ------------------------------------------------------------------ the cache


@pytest.mark.parametrize("style", ["invoke", "ainvoke"])
async def test_a_cached_degraded_answer_is_routed_again(cloud: MockOpenAI, style: str) -> None:
    from langchain_core.caches import InMemoryCache

    llm = hybrid(cloud, cache=InMemoryCache())
    cloud.enqueue(Fault(status=503))
    outage = await answer(llm, style)
    assert routing(outage)["degraded"]

    recovered = await answer(llm, style)  # the cloud is back: not the outage's fallback
    assert recovered.content == CLOUD_TEXT and not routing(recovered)["cached"]
    cached = await answer(llm, style)  # the good answer is what the cache now holds
    assert cached.content == CLOUD_TEXT and routing(cached)["cached"]
    assert len(cloud.chat_requests) == 2
