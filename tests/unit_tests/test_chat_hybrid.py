"""ChatHybrid routing, surfaces and LangChain integration, with scripted tiers.

Both tiers are real ``ChatOpenAI`` clients answered, without a socket, by two
:class:`MockOpenAI` fakes of the OpenAI API: the *local* one answers with chosen
log-probs (confident: -0.05, unsure: -2.0, hedge: "I don't know."), so every
routing path is reachable quickly and deterministically. Tool tests use a local
tier that cannot call tools (:class:`FakeLocalChatModel`, as ``ChatTransformers``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableBinding, RunnableLambda
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from langchain_hybrid import (
    BothTiersFailedError,
    ChatHybrid,
    CombinedScorer,
    EarlyEscalation,
    ForceCloudRule,
    ForceLocalRule,
    MarginScorer,
    MaxLocalContextRule,
    MeanLogprobScorer,
    PriceTable,
    RouteDecision,
    RoutingPolicy,
    RoutingStatsHandler,
)
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply, last_user_text
from tests.support.openai_mock import MockOpenAI

LOCAL_MODEL = "local-small"  # not in the price table: local answers cost nothing
CLOUD_MODEL = "gpt-4o"

CONFIDENT_Q = "What is the capital of France?"
UNSURE_Q = "Who wrote the novel Middlemarch?"
HEDGE_Q = "What will the weather be in 2090?"
RAMBLE_Q = "Tell me a long story."

LOCAL_CONFIDENT = "The capital of France is Paris."
LOCAL_UNSURE = "It was written by Charles Dickens."
LOCAL_HEDGE = "I don't know."
RAMBLE_TOKENS = 100
LOCAL_RAMBLE = " word" * RAMBLE_TOKENS
CLOUD_ANSWER = "Middlemarch was written by George Eliot."


def local_responder(body: dict[str, Any]) -> ScriptedReply:
    """The scripted local model: confident, unsure, hedging or rambling by prompt."""
    text = last_user_text(body)
    if UNSURE_Q in text:
        return ScriptedReply(LOCAL_UNSURE, logprobs=-2.0)
    if HEDGE_Q in text:
        return ScriptedReply(LOCAL_HEDGE, logprobs=-0.05)
    if RAMBLE_Q in text:
        return ScriptedReply(LOCAL_RAMBLE, logprobs=-2.0)
    return ScriptedReply(LOCAL_CONFIDENT, logprobs=-0.05)


def cloud_responder(body: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(CLOUD_ANSWER, logprobs=-0.01)


@pytest.fixture
def cloud_server(openai_mock: MockOpenAI) -> MockOpenAI:
    openai_mock.responder = cloud_responder
    return openai_mock


@pytest.fixture
def local_server() -> MockOpenAI:
    return MockOpenAI(responder=local_responder)


@pytest.fixture
def local_without_tools() -> FakeLocalChatModel:
    """A local tier that cannot call tools (its bind_tools raises NotImplementedError)."""
    return FakeLocalChatModel()


def local_model(server: MockOpenAI, **kw: Any) -> ChatOpenAI:
    return make_chat_openai(server, model=LOCAL_MODEL, logprobs=True, stream_usage=True, **kw)


def cloud_model(server: MockOpenAI, **kw: Any) -> ChatOpenAI:
    # stream_usage=True is what ChatOpenAI defaults to against api.openai.com.
    return make_chat_openai(server, model=CLOUD_MODEL, stream_usage=True, **kw)


@pytest.fixture
def llm(local_server: MockOpenAI, cloud_server: MockOpenAI) -> ChatHybrid:
    return ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), threshold=-0.6
    )


def routing(message: BaseMessage) -> dict[str, Any]:
    value = message.response_metadata["routing"]
    assert isinstance(value, dict)
    RouteDecision.from_dict(value)  # a valid decision
    return value


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert chunks, "the stream yielded nothing"
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


class Recorder(BaseCallbackHandler):
    """Records chat-model runs and custom events."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append(
            {"run_id": run_id, "parent_run_id": parent_run_id, "name": kwargs.get("name")}
        )

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append({"name": name, "data": data, "run_id": run_id})

    @property
    def hybrid_run_ids(self) -> list[UUID]:
        return [s["run_id"] for s in self.starts if s["parent_run_id"] is None]

    def route_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["name"] == "hybrid_route"]

    def child(self, name: str) -> dict[str, Any]:
        found = [s for s in self.starts if s["name"] == name]
        assert len(found) == 1, f"expected one {name!r} run, got {self.starts}"
        return found[0]


# --------------------------------------------------------------------------- routing


def test_confident_answer_stays_local(
    llm: ChatHybrid, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    msg = llm.invoke(CONFIDENT_Q)

    assert isinstance(msg, AIMessage)
    assert msg.content == LOCAL_CONFIDENT
    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("local", "confident")
    assert r["confidence"] == pytest.approx(-0.05)
    assert r["threshold"] == -0.6
    assert r["features"]["n_tokens"] == 7
    assert not r["escalated"] and not r["degraded"] and not r["early_abort"]
    assert r["cloud_latency_s"] is None
    assert r["local_latency_s"] is not None and r["local_latency_s"] >= 0
    assert r["scorer"] == "mean_logprob"
    assert r["local_output_tokens"] == 7
    # The answer is the local tier's: its log-probs, model and usage.
    assert [e["logprob"] for e in msg.response_metadata["logprobs"]["content"]] == [-0.05] * 7
    assert msg.response_metadata["model_name"] == LOCAL_MODEL
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] == 7
    # What gpt-4o would have charged for this prompt and answer; the local model is free.
    assert r["cost_usd"] == 0.0
    expected = PriceTable.default().cost_of(
        CLOUD_MODEL, msg.usage_metadata["input_tokens"], msg.usage_metadata["output_tokens"]
    )
    assert r["cost_avoided_usd"] == pytest.approx(expected) and expected > 0
    assert len(local_server.chat_requests) == 1
    assert cloud_server.chat_requests == []


def test_low_confidence_escalates_to_cloud(
    llm: ChatHybrid, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    msg = llm.invoke(UNSURE_Q)

    assert msg.content == CLOUD_ANSWER
    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("cloud", "low_confidence")
    assert r["confidence"] == pytest.approx(-2.0)
    assert r["escalated"] and not r["degraded"]
    assert not r["early_abort"]  # 7 tokens: fewer than the scorer needs to predict early
    assert r["local_output_tokens"] == 7
    assert r["cloud_latency_s"] is not None and r["cloud_latency_s"] > 0
    assert r["cost_avoided_usd"] == 0.0
    # The cloud's log-probs, model name and usage, and its price.
    assert [e["logprob"] for e in msg.response_metadata["logprobs"]["content"]] == [-0.01] * 7
    assert msg.response_metadata["model_name"] == CLOUD_MODEL
    usage = msg.usage_metadata
    assert usage is not None and usage["output_tokens"] == 7
    assert r["cost_usd"] == pytest.approx(
        PriceTable.default().cost_of(CLOUD_MODEL, usage["input_tokens"], usage["output_tokens"])
    )
    assert r["cost_usd"] > 0
    assert len(local_server.chat_requests) == 1
    assert len(cloud_server.chat_requests) == 1
    assert last_user_text(cloud_server.chat_requests[0]) == UNSURE_Q


def test_hedge_escalates_with_reason_hedge(llm: ChatHybrid, cloud_server: MockOpenAI) -> None:
    msg = llm.invoke(HEDGE_Q)

    assert msg.content == CLOUD_ANSWER
    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("cloud", "hedge")
    assert r["escalated"]
    assert r["confidence"] == pytest.approx(-0.05)  # high log-probs do not save a hedge
    assert len(cloud_server.chat_requests) == 1


def test_hedge_escalates_without_early_escalation(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        policy=RoutingPolicy(threshold=-0.6, early_escalation=EarlyEscalation(enabled=False)),
    )
    r = routing(llm.invoke(HEDGE_Q))
    assert (r["tier"], r["reason"], r["early_abort"]) == ("cloud", "hedge", False)


def test_early_escalation_stops_the_local_stream(llm: ChatHybrid, local_server: MockOpenAI) -> None:
    # 100 tokens at -2.0, 20 ms apart: reading them all would take 2 s.
    local_server.enqueue(
        ScriptedReply(LOCAL_RAMBLE, logprobs=-2.0, fault=Fault(chunk_delay_s=0.02))
    )
    msg = llm.invoke(RAMBLE_Q)

    assert msg.content == CLOUD_ANSWER
    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("cloud", "early_abort")
    assert r["early_abort"] and r["escalated"]
    assert 1 <= r["local_output_tokens"] <= 20  # far below the 100 scripted tokens
    assert r["features"]["n_tokens"] == r["local_output_tokens"]
    assert r["local_latency_s"] < 1.0


def test_early_escalation_off_reads_the_whole_local_answer(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        policy=RoutingPolicy(threshold=-0.6, early_escalation=EarlyEscalation(enabled=False)),
    )
    msg = llm.invoke(RAMBLE_Q)

    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("cloud", "low_confidence")
    assert not r["early_abort"]
    assert r["local_output_tokens"] == RAMBLE_TOKENS
    assert r["features"]["n_tokens"] == RAMBLE_TOKENS


def test_threshold_decides(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    local_server.enqueue(ScriptedReply(LOCAL_UNSURE, logprobs=-2.0))
    lenient = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), threshold=-3.0
    )
    r = routing(lenient.invoke(UNSURE_Q))
    assert (r["tier"], r["reason"], r["threshold"]) == ("local", "confident", -3.0)
    assert cloud_server.chat_requests == []


def test_truncated_local_answer_escalates(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    cut = ScriptedReply("The capital of France is", logprobs=-0.05, finish_reason="length")
    local_server.enqueue(cut)
    llm = ChatHybrid(local=local_model(local_server), cloud=cloud_model(cloud_server))
    r = routing(llm.invoke(CONFIDENT_Q))
    assert (r["tier"], r["reason"]) == ("cloud", "truncated")
    assert r["confidence"] == pytest.approx(-0.05)  # confident, but cut off

    assert r["finish_reason"] == "length"

    local_server.enqueue(cut)
    keep = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        policy=RoutingPolicy(escalate_finish_reasons=[]),
    )
    msg = keep.invoke(CONFIDENT_Q)
    assert msg.content == "The capital of France is"
    assert (routing(msg)["tier"], routing(msg)["reason"]) == ("local", "confident")


@pytest.mark.parametrize("finish", ["timeout", "cancelled"])
def test_unfinished_local_answer_escalates(cloud_server: MockOpenAI, finish: str) -> None:
    # ChatTransformers ends an answer with "timeout" (its deadline) or "cancelled".
    local = FakeLocalChatModel(messages=iter(["The"]), logprob=-0.01, finish_reason=finish)
    llm = ChatHybrid(local=local, cloud=cloud_model(cloud_server))
    msg = llm.invoke(CONFIDENT_Q)
    r = routing(msg)
    assert msg.content == CLOUD_ANSWER
    assert (r["tier"], r["reason"], r["finish_reason"]) == ("cloud", "unfinished", finish)


def test_local_error_goes_to_cloud(llm: ChatHybrid, local_server: MockOpenAI) -> None:
    local_server.enqueue(Fault(status=500))
    msg = llm.invoke(CONFIDENT_Q)

    assert msg.content == CLOUD_ANSWER
    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("cloud", "local_error")
    assert r["escalated"] and not r["degraded"] and r["confidence"] is None
    assert r["error"] is not None and "500" in r["error"]  # what the local tier said


def test_both_tiers_failing_raises_one_error_naming_both(
    llm: ChatHybrid, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    local_server.enqueue(Fault(status=500, error_message="local GPU on fire"))
    cloud_server.enqueue(Fault(status=429, retry_after_s=None))

    with pytest.raises(BothTiersFailedError) as info:
        llm.invoke(CONFIDENT_Q)

    text = str(info.value)
    assert "local GPU on fire" in text and "Error code: 429" in text
    assert text.index("local GPU on fire") < text.index("Cloud:") < text.index("429")
    assert "500" in str(info.value.local_error) and "429" in str(info.value.cloud_error)


async def test_both_tiers_failing_async(
    llm: ChatHybrid, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    local_server.enqueue(Fault(status=500))
    cloud_server.enqueue(Fault(drop=True))
    with pytest.raises(BothTiersFailedError, match="Connection error"):
        await llm.ainvoke(CONFIDENT_Q)


def test_cloud_is_asked_for_logprobs(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    cloud = cloud_model(cloud_server)
    assert cloud.logprobs is None
    llm = ChatHybrid(local=local_model(local_server), cloud=cloud)
    assert llm.cloud.logprobs is True
    assert cloud.logprobs is None  # the user's object is left alone

    llm.invoke(UNSURE_Q)
    list(llm.stream(UNSURE_Q))

    bodies = cloud_server.chat_requests
    assert len(bodies) == 2
    assert all(body.get("logprobs") is True for body in bodies)


def test_cloud_logprobs_false_is_respected(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    llm = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server, logprobs=False)
    )
    msg = llm.invoke(UNSURE_Q)

    assert routing(msg)["tier"] == "cloud"
    assert not cloud_server.chat_requests[0].get("logprobs")
    assert msg.response_metadata.get("logprobs") is None


# --------------------------------------------------------------------------- policy rules


def test_force_local_rule(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    policy = RoutingPolicy(
        threshold=-0.6, rules=[ForceLocalRule(pattern="(?i)confidential", name="nda")]
    )
    llm = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), policy=policy
    )
    local_server.enqueue(ScriptedReply("A guess.", logprobs=-3.0))

    msg = llm.invoke("CONFIDENTIAL: who wrote the novel Middlemarch?")

    assert msg.content == "A guess."  # kept although the local tier is unsure
    r = routing(msg)
    assert (r["tier"], r["reason"], r["rule"]) == ("local", "rule_force_local", "nda")
    assert not r["escalated"] and r["confidence"] is None
    assert r["local_output_tokens"] == 3  # "A", " guess", "."
    assert cloud_server.chat_requests == []
    assert len(local_server.chat_requests) == 1


def test_force_cloud_rule(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    policy = RoutingPolicy(threshold=-0.6, rules=[ForceCloudRule(pattern="(?i)legal")])
    llm = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), policy=policy
    )
    msg = llm.invoke(f"A legal question. {CONFIDENT_Q}")

    assert msg.content == CLOUD_ANSWER
    r = routing(msg)
    assert (r["tier"], r["reason"], r["rule"]) == ("cloud", "rule_force_cloud", "force_cloud")
    assert not r["escalated"]  # the local tier was never tried
    assert r["local_output_tokens"] == 0 and r["local_latency_s"] is None
    assert local_server.chat_requests == []
    # A prompt the rule does not match is routed as usual.
    assert routing(llm.invoke(CONFIDENT_Q))["reason"] == "confident"


def test_max_local_context_rule(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    policy = RoutingPolicy(threshold=-0.6, rules=[MaxLocalContextRule(max_tokens=50)])
    llm = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), policy=policy
    )
    long_prompt = CONFIDENT_Q + " Please explain at length." * 20

    r = routing(llm.invoke(long_prompt))
    assert (r["tier"], r["reason"], r["rule"]) == (
        "cloud",
        "context_too_long",
        "max_local_context",
    )
    assert local_server.chat_requests == []
    assert routing(llm.invoke(CONFIDENT_Q))["tier"] == "local"


def test_policy_file_round_trip(
    tmp_path: Path, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    path = tmp_path / "policy.json"
    RoutingPolicy(
        threshold=-2.5,
        rules=[ForceCloudRule(pattern="(?i)legal", name="legal")],
        version="cal-7",
        fitted_on={"n": 3},
    ).save(path)
    llm = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        policy=RoutingPolicy.load(path),
    )
    assert llm.routing_policy == RoutingPolicy.load(path)

    unsure = routing(llm.invoke(UNSURE_Q))  # -2.0 passes the loaded threshold of -2.5
    assert (unsure["tier"], unsure["reason"]) == ("local", "confident")
    assert unsure["threshold"] == -2.5 and unsure["policy_version"] == "cal-7"
    legal = routing(llm.invoke("A legal question"))
    assert (legal["reason"], legal["rule"]) == ("rule_force_cloud", "legal")

    # An explicit threshold overrides the loaded one but keeps its rules and version.
    stricter = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        policy=RoutingPolicy.load(path),
        threshold=-0.6,
    )
    r = routing(stricter.invoke(UNSURE_Q))
    assert (r["tier"], r["threshold"], r["policy_version"]) == ("cloud", -0.6, "cal-7")
    assert routing(stricter.invoke("legal"))["rule"] == "legal"


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("fault", "error_text"),
    [(Fault(status=500), "500"), (Fault(drop=True), "Connection error")],
    ids=["status-500", "dropped"],
)
def test_cloud_failure_degrades_to_local_answer(
    llm: ChatHybrid, cloud_server: MockOpenAI, fault: Fault, error_text: str
) -> None:
    cloud_server.enqueue(fault)
    msg = llm.invoke(UNSURE_Q)

    assert msg.content == LOCAL_UNSURE
    r = routing(msg)
    assert r["tier"] == "local" and r["degraded"] and r["escalated"]
    assert (r["reason"], r["escalation_reason"]) == ("cloud_error", "low_confidence")
    assert r["error"] and error_text in r["error"]
    assert msg.response_metadata["model_name"] == LOCAL_MODEL
    assert len(cloud_server.chat_requests) == 1


def test_cloud_failure_after_early_abort_finishes_the_local_answer(
    llm: ChatHybrid, local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(Fault(status=500))
    msg = llm.invoke(RAMBLE_Q)

    r = routing(msg)
    assert r["degraded"] and r["early_abort"] and r["tier"] == "local"
    assert msg.content == LOCAL_RAMBLE  # the whole answer, not the aborted prefix
    assert len(local_server.chat_requests) == 2
    # The aborted attempt's tokens plus the full answer's.
    assert RAMBLE_TOKENS < r["local_output_tokens"] <= RAMBLE_TOKENS + 20


def test_force_cloud_with_cloud_failure_degrades(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    policy = RoutingPolicy(threshold=-0.6, rules=[ForceCloudRule(pattern="legal")])
    llm = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), policy=policy
    )
    cloud_server.enqueue(Fault(status=500))

    msg = llm.invoke(f"legal: {CONFIDENT_Q}")

    assert msg.content == LOCAL_CONFIDENT
    r = routing(msg)
    assert (r["tier"], r["reason"], r["degraded"]) == ("local", "cloud_error", True)
    assert r["escalation_reason"] == "rule_force_cloud"
    assert not r["escalated"]
    assert "500" in r["error"]
    assert r["local_output_tokens"] == 7


def test_context_too_long_with_cloud_failure_raises_both_tiers_failed(
    local_server: MockOpenAI, cloud_server: MockOpenAI
) -> None:
    import openai

    policy = RoutingPolicy(threshold=-0.6, rules=[MaxLocalContextRule(max_tokens=5)])
    llm = ChatHybrid(
        local=local_model(local_server), cloud=cloud_model(cloud_server), policy=policy
    )
    cloud_server.enqueue(Fault(status=500))

    with pytest.raises(BothTiersFailedError) as info:
        llm.invoke(CONFIDENT_Q + " and more words to be long")

    err = info.value
    assert isinstance(err.cloud_error, openai.InternalServerError)
    assert "context_too_long" in str(err.local_error)
    text = str(err)
    assert "Local:" in text and "context_too_long" in text
    assert "Cloud:" in text and "Error code: 500" in text
    assert text.index("Local:") < text.index("context_too_long") < text.index("Cloud:")
    assert local_server.chat_requests == []  # a too-long prompt is never sent locally


async def test_async_cloud_failure_degrades(llm: ChatHybrid, cloud_server: MockOpenAI) -> None:
    cloud_server.enqueue(Fault(status=500))
    msg = await llm.ainvoke(UNSURE_Q)
    r = routing(msg)
    assert msg.content == LOCAL_UNSURE and r["degraded"] and "500" in r["error"]


def test_stream_cloud_failure_degrades(llm: ChatHybrid, cloud_server: MockOpenAI) -> None:
    cloud_server.enqueue(Fault(status=500))
    chunks = list(llm.stream(UNSURE_Q))
    merged = merge(chunks)
    assert merged.content == LOCAL_UNSURE
    r = routing(merged)
    assert r["degraded"] and r["tier"] == "local"


def test_stream_cloud_drop_before_any_text_degrades(
    llm: ChatHybrid, cloud_server: MockOpenAI
) -> None:
    # OpenAI sends an empty role chunk first; a drop right after it lost no visible text.
    cloud_server.enqueue(ScriptedReply(CLOUD_ANSWER, fault=Fault(drop_after_chunks=1)))
    chunks = list(llm.stream(UNSURE_Q))

    merged = merge(chunks)
    assert merged.content == LOCAL_UNSURE
    r = routing(merged)
    assert r["degraded"] and r["error"] and "Connection error" in r["error"]


async def test_astream_cloud_drop_before_any_text_degrades(
    llm: ChatHybrid, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(ScriptedReply(CLOUD_ANSWER, fault=Fault(drop_after_chunks=1)))
    chunks = [c async for c in llm.astream(UNSURE_Q)]
    assert merge(chunks).content == LOCAL_UNSURE
    assert routing(merge(chunks))["degraded"]


def test_stream_cloud_drop_mid_answer_raises(llm: ChatHybrid, cloud_server: MockOpenAI) -> None:
    # Part of the cloud answer is already out: a local answer cannot replace it.
    cloud_server.enqueue(ScriptedReply(CLOUD_ANSWER, fault=Fault(drop_after_chunks=3)))
    received: list[str] = []
    with pytest.raises(Exception, match="Connection error"):
        for chunk in llm.stream(UNSURE_Q):
            received.append(str(chunk.content))
    assert "".join(received) == "Middlemarch was"


# --------------------------------------------------------------------------- streaming


def test_stream_local_decision(llm: ChatHybrid) -> None:
    chunks = list(llm.stream(CONFIDENT_Q))

    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len(chunks) > 2
    assert [c.chunk_position for c in chunks].count("last") == 1
    assert chunks[-1].chunk_position == "last"
    # Only the last chunk carries the decision; the ones before are the local chunks.
    assert all("routing" not in c.response_metadata for c in chunks[:-1])
    assert "".join(str(c.content) for c in chunks[:-1]) == LOCAL_CONFIDENT
    assert chunks[-1].content == ""
    merged = merge(chunks)
    assert merged.content == LOCAL_CONFIDENT
    r = routing(merged)
    assert (r["tier"], r["reason"]) == ("local", "confident")
    assert r == routing(chunks[-1])
    assert merged.usage_metadata is not None and merged.usage_metadata["output_tokens"] == 7


def test_stream_holds_local_tokens_until_decided(llm: ChatHybrid, local_server: MockOpenAI) -> None:
    # 7 local tokens 50 ms apart: nothing may come out before the local answer is complete.
    local_server.enqueue(
        ScriptedReply(LOCAL_CONFIDENT, logprobs=-0.05, fault=Fault(chunk_delay_s=0.05))
    )
    started = time.perf_counter()
    stream = llm.stream(CONFIDENT_Q)
    first = next(stream)
    waited = time.perf_counter() - started
    rest = list(stream)

    assert waited >= 0.3
    assert merge([first, *rest]).content == LOCAL_CONFIDENT


def test_stream_escalated_streams_cloud_chunks(llm: ChatHybrid) -> None:
    invoked = llm.invoke(UNSURE_Q)
    chunks = list(llm.stream(UNSURE_Q))

    content_chunks = [c for c in chunks if c.content]
    assert len(content_chunks) > 1  # token by token, not one block
    assert [str(c.content) for c in content_chunks][:2] == ["Middlemarch", " was"]
    # No held local token leaks into an escalated stream.
    assert "Dickens" not in "".join(str(c.content) for c in chunks)
    assert [c.chunk_position for c in chunks].count("last") == 1
    merged = merge(chunks)
    assert merged.content == invoked.content == CLOUD_ANSWER
    r = routing(merged)
    assert (r["tier"], r["reason"]) == ("cloud", "low_confidence")
    assert r["cost_usd"] > 0
    assert merged.response_metadata["model_name"] == CLOUD_MODEL
    assert len(merged.response_metadata["logprobs"]["content"]) == 7


def test_stream_escalated_arrives_token_by_token(llm: ChatHybrid, cloud_server: MockOpenAI) -> None:
    # The cloud streams 7 tokens 100 ms apart; the first must arrive long before the last.
    cloud_server.enqueue(
        ScriptedReply(CLOUD_ANSWER, logprobs=-0.01, fault=Fault(chunk_delay_s=0.1))
    )
    arrivals: list[tuple[float, str]] = []
    for chunk in llm.stream(UNSURE_Q):
        if chunk.content:
            arrivals.append((time.perf_counter(), str(chunk.content)))
    assert "".join(t for _, t in arrivals) == CLOUD_ANSWER
    assert arrivals[-1][0] - arrivals[0][0] >= 0.4


async def test_astream_local_and_escalated(llm: ChatHybrid) -> None:
    local_chunks = [c async for c in llm.astream(CONFIDENT_Q)]
    cloud_chunks = [c async for c in llm.astream(UNSURE_Q)]

    for chunks in (local_chunks, cloud_chunks):
        assert [c.chunk_position for c in chunks].count("last") == 1
        assert chunks[-1].chunk_position == "last"
    assert merge(local_chunks).content == LOCAL_CONFIDENT
    assert routing(merge(local_chunks))["tier"] == "local"
    assert len([c for c in cloud_chunks if c.content]) > 1
    assert merge(cloud_chunks).content == CLOUD_ANSWER
    assert routing(merge(cloud_chunks))["reason"] == "low_confidence"


async def test_astream_early_abort(llm: ChatHybrid) -> None:
    chunks = [c async for c in llm.astream(RAMBLE_Q)]
    r = routing(merge(chunks))
    assert r["early_abort"] and r["reason"] == "early_abort"
    assert r["local_output_tokens"] <= 20
    assert merge(chunks).content == CLOUD_ANSWER


# --------------------------------------------------------------------------- async, batch


async def test_ainvoke_matches_invoke(llm: ChatHybrid) -> None:
    local = await llm.ainvoke(CONFIDENT_Q)
    cloud = await llm.ainvoke(UNSURE_Q)
    hedge = await llm.ainvoke(HEDGE_Q)

    assert local.content == LOCAL_CONFIDENT
    assert (routing(local)["tier"], routing(local)["reason"]) == ("local", "confident")
    assert routing(local)["cost_avoided_usd"] > 0
    assert cloud.content == CLOUD_ANSWER
    assert (routing(cloud)["tier"], routing(cloud)["reason"]) == ("cloud", "low_confidence")
    assert routing(cloud)["cost_usd"] > 0
    assert routing(hedge)["reason"] == "hedge"


def test_batch_mixed_outcomes(llm: ChatHybrid, cloud_server: MockOpenAI) -> None:
    answers = llm.batch([CONFIDENT_Q, UNSURE_Q, HEDGE_Q, CONFIDENT_Q])

    assert [a.content for a in answers] == [
        LOCAL_CONFIDENT,
        CLOUD_ANSWER,
        CLOUD_ANSWER,
        LOCAL_CONFIDENT,
    ]
    assert [routing(a)["reason"] for a in answers] == [
        "confident",
        "low_confidence",
        "hedge",
        "confident",
    ]
    assert sorted(last_user_text(b) for b in cloud_server.chat_requests) == sorted(
        [UNSURE_Q, HEDGE_Q]
    )


async def test_abatch_mixed_outcomes(llm: ChatHybrid) -> None:
    answers = await llm.abatch([UNSURE_Q, CONFIDENT_Q])
    assert [routing(a)["tier"] for a in answers] == ["cloud", "local"]
    assert [a.content for a in answers] == [CLOUD_ANSWER, LOCAL_CONFIDENT]


# --------------------------------------------------------------------------- callbacks


def _check_route_event(recorder: Recorder, answer: BaseMessage) -> dict[str, Any]:
    assert len(recorder.hybrid_run_ids) == 1, recorder.starts
    (hybrid_run,) = recorder.hybrid_run_ids
    events = recorder.route_events()
    assert len(events) == 1, recorder.events
    assert events[0]["run_id"] == hybrid_run
    data = events[0]["data"]
    assert data == routing(answer)  # the same record as the message metadata
    return data


def test_route_event_on_invoke(llm: ChatHybrid) -> None:
    recorder = Recorder()
    msg = llm.invoke(UNSURE_Q, config={"callbacks": [recorder]})

    data = _check_route_event(recorder, msg)
    assert data["tier"] == "cloud"
    assert "local_logprobs" not in data
    (hybrid_run,) = recorder.hybrid_run_ids
    assert recorder.child("local")["parent_run_id"] == hybrid_run
    assert recorder.child("cloud")["parent_run_id"] == hybrid_run
    assert len(recorder.starts) == 3


def test_route_event_on_stream(llm: ChatHybrid) -> None:
    recorder = Recorder()
    chunks = list(llm.stream(UNSURE_Q, config={"callbacks": [recorder]}))

    data = _check_route_event(recorder, merge(chunks))
    assert data["reason"] == "low_confidence"
    (hybrid_run,) = recorder.hybrid_run_ids
    assert recorder.child("local")["parent_run_id"] == hybrid_run
    assert recorder.child("cloud")["parent_run_id"] == hybrid_run


def test_local_decision_has_only_a_local_child_run(llm: ChatHybrid) -> None:
    recorder = Recorder()
    msg = llm.invoke(CONFIDENT_Q, config={"callbacks": [recorder]})

    _check_route_event(recorder, msg)
    assert [s["name"] for s in recorder.starts if s["parent_run_id"] is not None] == ["local"]


async def test_route_event_on_ainvoke(llm: ChatHybrid) -> None:
    recorder = Recorder()
    msg = await llm.ainvoke(UNSURE_Q, config={"callbacks": [recorder]})

    _check_route_event(recorder, msg)
    (hybrid_run,) = recorder.hybrid_run_ids
    assert recorder.child("local")["parent_run_id"] == hybrid_run
    assert recorder.child("cloud")["parent_run_id"] == hybrid_run


async def test_route_event_on_astream(llm: ChatHybrid) -> None:
    recorder = Recorder()
    chunks = [c async for c in llm.astream(CONFIDENT_Q, config={"callbacks": [recorder]})]

    data = _check_route_event(recorder, merge(chunks))
    assert data["tier"] == "local"
    (hybrid_run,) = recorder.hybrid_run_ids
    assert recorder.child("local")["parent_run_id"] == hybrid_run


def test_route_event_once_per_call_in_batch(llm: ChatHybrid) -> None:
    recorder = Recorder()
    answers = llm.batch([CONFIDENT_Q, UNSURE_Q], config={"callbacks": [recorder]})

    events = recorder.route_events()
    assert len(events) == 2
    assert {e["run_id"] for e in events} == set(recorder.hybrid_run_ids)
    assert sorted(e["data"]["tier"] for e in events) == sorted(routing(a)["tier"] for a in answers)


async def test_route_event_in_astream_events(llm: ChatHybrid) -> None:
    events = [e async for e in llm.astream_events(UNSURE_Q, version="v2")]

    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    hybrid = [e for e in starts if e["name"] == "ChatHybrid"]
    assert len(hybrid) == 1
    hybrid_run = hybrid[0]["run_id"]
    route = [e for e in events if e["event"] == "on_custom_event" and e["name"] == "hybrid_route"]
    assert len(route) == 1
    assert route[0]["run_id"] == hybrid_run
    assert (route[0]["data"]["tier"], route[0]["data"]["reason"]) == ("cloud", "low_confidence")
    children = {e["name"]: e for e in starts if e["name"] in ("local", "cloud")}
    assert set(children) == {"local", "cloud"}
    assert all(e["parent_ids"][-1] == hybrid_run for e in children.values())
    end = [e for e in events if e["event"] == "on_chat_model_end" and e["run_id"] == hybrid_run]
    assert len(end) == 1
    assert end[0]["data"]["output"].content == CLOUD_ANSWER


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
async def test_tier_runs_nest_under_the_hybrid_run_inside_a_chain(
    llm: ChatHybrid, mode: str
) -> None:
    # Tiers with tools bound are RunnableBindings; inside a chain they must still be
    # children of the ChatHybrid run, not of the chain step.
    chain = RunnableLambda(lambda text: text) | llm.bind_tools([get_weather])
    recorder = Recorder()
    config: Any = {"callbacks": [recorder]}
    if mode == "invoke":
        answer = chain.invoke(UNSURE_Q, config=config)
    elif mode == "ainvoke":
        answer = await chain.ainvoke(UNSURE_Q, config=config)
    elif mode == "stream":
        answer = merge(list(chain.stream(UNSURE_Q, config=config)))
    else:
        answer = merge([c async for c in chain.astream(UNSURE_Q, config=config)])

    assert routing(answer)["tier"] == "cloud"
    hybrid = [s for s in recorder.starts if s["name"] not in ("local", "cloud")]
    assert len(hybrid) == 1
    assert hybrid[0]["parent_run_id"] is not None  # the chain's run
    assert recorder.child("local")["parent_run_id"] == hybrid[0]["run_id"]
    assert recorder.child("cloud")["parent_run_id"] == hybrid[0]["run_id"]
    (event,) = recorder.route_events()
    assert event["run_id"] == hybrid[0]["run_id"]


def test_event_local_logprobs(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    llm = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        threshold=-0.6,
        event_local_logprobs=True,
    )
    recorder = Recorder()
    msg = llm.invoke(UNSURE_Q, config={"callbacks": [recorder]})

    (event,) = recorder.route_events()
    local_lp = event["data"]["local_logprobs"]
    tokens = [e["token"] for e in local_lp["content"]]
    assert "".join(tokens) == LOCAL_UNSURE
    assert all(e["logprob"] == -2.0 for e in local_lp["content"])
    # Only the event gets them; the answer carries the cloud's log-probs.
    assert "local_logprobs" not in routing(msg)
    assert msg.response_metadata["logprobs"]["content"][0]["token"] == "Middlemarch"


# --------------------------------------------------------------------------- cache


@pytest.mark.parametrize("question", [CONFIDENT_Q, UNSURE_Q], ids=["local", "cloud"])
def test_langchain_cache(
    local_server: MockOpenAI,
    cloud_server: MockOpenAI,
    question: str,
) -> None:
    llm = ChatHybrid(
        local=local_model(local_server),
        cloud=cloud_model(cloud_server),
        threshold=-0.6,
        cache=InMemoryCache(),
    )
    first = llm.invoke(question)
    requests = (len(local_server.chat_requests), len(cloud_server.chat_requests))
    assert requests == ((1, 0) if question == CONFIDENT_Q else (1, 1))

    stats, recorder = RoutingStatsHandler(), Recorder()
    second = llm.invoke(question, config={"callbacks": [stats, recorder]})

    assert second.content == first.content
    assert second.usage_metadata == first.usage_metadata  # the cached answer's usage
    before, after = routing(first), routing(second)
    assert not before["cached"] and after["cached"]
    # The same route, but nothing was called and nothing spent this time.
    same = ("tier", "reason", "confidence", "threshold", "escalated", "usage")
    assert {k: after[k] for k in same} == {k: before[k] for k in same}
    assert after["cost_usd"] == 0.0 and after["local_latency_s"] is None
    assert after["cloud_latency_s"] is None
    assert after["cost_avoided_usd"] == max(before["cost_usd"], before["cost_avoided_usd"])
    assert (len(local_server.chat_requests), len(cloud_server.chat_requests)) == requests
    # The cache hit still reports its decision: the event fires and the stats count it.
    assert [e["data"] for e in recorder.route_events()] == [after]
    snap = stats.snapshot()
    assert (snap.calls, snap.cached, snap.cost_usd) == (1, 1, 0.0)
    # Another question is not served from the cache.
    llm.invoke(HEDGE_Q)
    assert len(local_server.chat_requests) == requests[0] + 1


# --------------------------------------------------------------------------- tools


def get_weather(city: str) -> str:
    """Get the current weather of a city."""
    return "sunny"


class Answer(BaseModel):
    """An answer with a confidence."""

    answer: str = Field(description="The answer")
    score: int = Field(description="Confidence from 1 to 10")


def test_bind_tools_local_cannot_call_tools_goes_to_cloud(
    local_without_tools: FakeLocalChatModel, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(
        ScriptedReply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    )
    llm = ChatHybrid(local=local_without_tools, cloud=cloud_model(cloud_server), threshold=-0.6)
    bound = llm.bind_tools([get_weather])
    assert isinstance(bound, RunnableBinding)

    msg = bound.invoke("What's the weather in Paris?")

    assert isinstance(msg, AIMessage)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Paris"})]
    r = routing(msg)
    assert (r["tier"], r["reason"], r["rule"]) == (
        "cloud",
        "local_unsupported",
        "local_cannot_call_tools",
    )
    assert not r["escalated"] and r["local_output_tokens"] == 0
    (body,) = cloud_server.chat_requests
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    # The unbound model still answers without tools (and is not changed by bind_tools).
    assert llm._tools.local_serves_tools is True


def test_bind_tools_stream_through_cloud(
    local_without_tools: FakeLocalChatModel, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(
        ScriptedReply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    )
    llm = ChatHybrid(local=local_without_tools, cloud=cloud_model(cloud_server))
    chunks = list(llm.bind_tools([get_weather]).stream("Weather in Oslo?"))

    merged = merge(chunks)
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("get_weather", {"city": "Oslo"})
    ]
    assert routing(merged)["reason"] == "local_unsupported"


def test_bind_tools_binds_both_tiers(local_server: MockOpenAI, cloud_server: MockOpenAI) -> None:
    llm = ChatHybrid(local=local_model(local_server), cloud=cloud_model(cloud_server))
    bound = llm.bind_tools([get_weather], tool_choice="auto")

    msg = bound.invoke(CONFIDENT_Q)  # a local model that can call tools answers itself
    assert routing(msg)["tier"] == "local"
    (local_body,) = local_server.chat_requests
    assert [t["function"]["name"] for t in local_body["tools"]] == ["get_weather"]
    assert local_body["tool_choice"] == "auto"

    bound.invoke(UNSURE_Q)
    (cloud_body,) = cloud_server.chat_requests
    assert [t["function"]["name"] for t in cloud_body["tools"]] == ["get_weather"]


def test_with_structured_output_through_cloud(
    local_without_tools: FakeLocalChatModel, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(
        ScriptedReply(
            "", tool_calls=[{"name": "Answer", "arguments": {"answer": "George Eliot", "score": 9}}]
        )
    )
    llm = ChatHybrid(local=local_without_tools, cloud=cloud_model(cloud_server))

    result = llm.with_structured_output(Answer, method="function_calling").invoke(UNSURE_Q)

    assert result == Answer(answer="George Eliot", score=9)
    (body,) = cloud_server.chat_requests
    assert body["tools"][0]["function"]["name"] == "Answer"
    assert body["tool_choice"] in ("required", {"type": "function", "function": {"name": "Answer"}})


def test_with_structured_output_include_raw_has_routing(
    local_without_tools: FakeLocalChatModel, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(
        ScriptedReply(
            "", tool_calls=[{"name": "Answer", "arguments": {"answer": "Paris", "score": 10}}]
        )
    )
    llm = ChatHybrid(local=local_without_tools, cloud=cloud_model(cloud_server))

    out = llm.with_structured_output(Answer, method="function_calling", include_raw=True).invoke(
        CONFIDENT_Q
    )

    assert isinstance(out, dict)
    assert out["parsed"] == Answer(answer="Paris", score=10)
    assert routing(out["raw"])["reason"] == "local_unsupported"


def test_cache_tells_tool_calls_from_plain_calls(
    local_without_tools: FakeLocalChatModel, cloud_server: MockOpenAI
) -> None:
    cloud_server.enqueue(
        ScriptedReply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}]),
        ScriptedReply(
            "", tool_calls=[{"name": "Answer", "arguments": {"answer": "x", "score": 1}}]
        ),
    )
    llm = ChatHybrid(
        local=local_without_tools, cloud=cloud_model(cloud_server), cache=InMemoryCache()
    )
    question = "Weather in Rome?"

    weather = llm.bind_tools([get_weather]).invoke(question)
    again = llm.bind_tools([get_weather]).invoke(question)
    other_tool = llm.bind_tools([Answer]).invoke(question)

    assert weather.tool_calls[0]["name"] == again.tool_calls[0]["name"] == "get_weather"
    assert other_tool.tool_calls[0]["name"] == "Answer"  # not the cached get_weather call
    assert len(cloud_server.chat_requests) == 2


# --------------------------------------------------------------------------- alternatives


@pytest.mark.parametrize(
    ("scorer", "asked"),
    [
        (MarginScorer(), 2),
        (CombinedScorer({"mean_logprob": 1.0, "margin": 0.5}), 2),
        (MeanLogprobScorer(), None),
    ],
    ids=["margin", "combined-with-margin", "mean"],
)
def test_a_margin_reading_scorer_gets_the_alternatives_it_needs(
    cloud_server: MockOpenAI, scorer: Any, asked: int | None
) -> None:
    seen: list[dict[str, Any]] = []

    class LocalWithAlternatives(FakeLocalChatModel):
        top_logprobs: int = 0

        def _stream(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            seen.append(kw)
            yield from super()._stream(messages, stop, run_manager, **kw)

    llm = ChatHybrid(local=LocalWithAlternatives(), cloud=cloud_model(cloud_server), scorer=scorer)
    llm.invoke(CONFIDENT_Q)
    assert seen[0].get("top_logprobs") == asked
    # A caller's own value wins.
    llm.invoke(CONFIDENT_Q, top_logprobs=5)
    assert seen[1]["top_logprobs"] == 5
