"""ChatHybrid with the real embedded local model and a loopback OpenAI-compatible cloud.

The local tier is the real ``ChatTransformers`` (SmolLM2-135M, greedy): it answers
"What is the capital of France?" confidently (mean log-prob about -0.37) and is unsure
about "Who wrote the novel Middlemarch?" (early escalation after a few tokens). The
cloud tier is a real ``ChatOpenAI`` talking to a :class:`FakeOpenAIServer`.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI

from langchain_hybrid import (
    ChatHybrid,
    ChatTransformers,
    EarlyEscalation,
    RouteDecision,
    RoutingPolicy,
)
from tests.support.fixtures import flush_traces, make_chat_openai
from tests.support.langsmith_capture import LangSmithCaptureServer
from tests.support.openai_server import FakeOpenAIServer, ScriptedReply, last_user_text

CONFIDENT_Q = "What is the capital of France?"
LOCAL_ANSWER = "The capital of France is Paris."
UNSURE_Q = "Who wrote the novel Middlemarch?"
CLOUD_ANSWER = "Middlemarch was written by George Eliot."
MAX_TOKENS = 48  # the local_llm fixture's


@pytest.fixture
def cloud_server(openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    openai_server.responder = lambda body: ScriptedReply(CLOUD_ANSWER, logprobs=-0.01)
    return openai_server


def cloud_model(server: FakeOpenAIServer) -> ChatOpenAI:
    # stream_usage=True is what ChatOpenAI defaults to against api.openai.com.
    return make_chat_openai(server, model="gpt-4o", stream_usage=True)


@pytest.fixture
def llm(local_llm: ChatTransformers, cloud_server: FakeOpenAIServer) -> ChatHybrid:
    return ChatHybrid(local=local_llm, cloud=cloud_model(cloud_server), threshold=-0.6)


def routing(message: BaseMessage) -> dict[str, Any]:
    value = message.response_metadata["routing"]
    RouteDecision.from_dict(value)
    return dict(value)


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert chunks
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def test_confident_answer_stays_local(
    llm: ChatHybrid, local_llm: ChatTransformers, cloud_server: FakeOpenAIServer
) -> None:
    msg = llm.invoke(CONFIDENT_Q)

    assert isinstance(msg, AIMessage)
    assert msg.content == LOCAL_ANSWER
    r = routing(msg)
    assert (r["tier"], r["reason"]) == ("local", "confident")
    assert -0.6 <= r["confidence"] < 0
    assert r["confidence"] == pytest.approx(-0.37, abs=0.1)
    assert not r["escalated"] and not r["early_abort"]
    entries = msg.response_metadata["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == LOCAL_ANSWER
    assert r["confidence"] == pytest.approx(sum(e["logprob"] for e in entries) / len(entries))
    assert msg.response_metadata["model_name"] == local_llm.model_name
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == r["local_output_tokens"] >= len(entries)
    assert r["cost_usd"] == 0.0 and r["cost_avoided_usd"] > 0
    assert cloud_server.chat_requests == []


def test_unsure_answer_escalates_early(llm: ChatHybrid, cloud_server: FakeOpenAIServer) -> None:
    msg = llm.invoke(UNSURE_Q)

    assert msg.content == CLOUD_ANSWER
    r = routing(msg)
    assert r["tier"] == "cloud" and r["escalated"]
    assert r["early_abort"] and r["reason"] in ("early_abort", "hedge")
    assert r["confidence"] < -0.6
    assert 1 <= r["local_output_tokens"] <= MAX_TOKENS // 2
    assert r["cost_usd"] > 0
    assert msg.response_metadata["model_name"] == "gpt-4o"
    (body,) = cloud_server.chat_requests
    assert last_user_text(body) == UNSURE_Q
    assert body["logprobs"] is True


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
async def test_an_early_stopped_local_attempt_counts_its_tokens(
    llm: ChatHybrid, local_llm: ChatTransformers, mode: str
) -> None:
    usage = UsageMetadataCallbackHandler()
    config: RunnableConfig = {"callbacks": [usage]}
    if mode == "invoke":
        msg: BaseMessage = llm.invoke(UNSURE_Q, config)
    elif mode == "ainvoke":
        msg = await llm.ainvoke(UNSURE_Q, config)
    elif mode == "stream":
        msg = merge(list(llm.stream(UNSURE_Q, config)))
    else:
        msg = merge([c async for c in llm.astream(UNSURE_Q, config)])
    r = routing(msg)
    assert r["early_abort"] and r["tier"] == "cloud"
    local = usage.usage_metadata[local_llm.model_name]
    assert local["input_tokens"] > 0
    # Every token computed: those the route saw, and one more when the model had
    # already begun the next token as it was told to stop.
    assert r["local_output_tokens"] <= local["output_tokens"] <= r["local_output_tokens"] + 1
    # Counted once: the cloud's tokens under its own name, nothing for ChatHybrid itself.
    assert set(usage.usage_metadata) == {local_llm.model_name, "gpt-4o"}


def test_without_early_escalation_the_local_answer_is_finished(
    cloud_server: FakeOpenAIServer,
) -> None:
    short = ChatTransformers(max_tokens=24)  # shares the loaded weights; a shorter answer
    finish = RoutingPolicy(threshold=-0.6, early_escalation=EarlyEscalation(enabled=False))
    llm = ChatHybrid(local=short, cloud=cloud_model(cloud_server), policy=finish)
    early = ChatHybrid(local=short, cloud=cloud_model(cloud_server), threshold=-0.6)

    late = routing(llm.invoke(UNSURE_Q))
    aborted = routing(early.invoke(UNSURE_Q))

    assert late["tier"] == "cloud" and not late["early_abort"]
    assert late["local_output_tokens"] > aborted["local_output_tokens"]


def test_a_local_answer_cut_short_by_timeout_is_not_kept(
    cloud_server: FakeOpenAIServer,
) -> None:
    hasty = ChatTransformers(max_tokens=MAX_TOKENS, timeout=0.01)
    msg = ChatHybrid(local=hasty, cloud=cloud_model(cloud_server), threshold=-2.0).invoke(
        CONFIDENT_Q
    )
    r = routing(msg)
    assert msg.content == CLOUD_ANSWER
    assert (r["tier"], r["reason"], r["finish_reason"]) == ("cloud", "unfinished", "timeout")


@pytest.mark.parametrize("question", [CONFIDENT_Q, UNSURE_Q], ids=["local", "escalated"])
def test_judge_replays_the_live_decision_of_the_real_model(
    llm: ChatHybrid, local_llm: ChatTransformers, question: str
) -> None:
    live = routing(llm.invoke(question))
    recorded = local_llm.invoke(question)  # greedy: the same tokens, generated whole

    verdict = llm.routing_policy.judge(recorded, max_tokens=MAX_TOKENS)

    assert (verdict.tier, verdict.reason, verdict.early_abort) == (
        live["tier"],
        live["reason"],
        live["early_abort"],
    )
    assert verdict.features == pytest.approx(live["features"], abs=1e-4)
    assert verdict.confidence.score == pytest.approx(live["confidence"], abs=1e-4)
    if question == UNSURE_Q:  # stopped early: the replay stops after the same token
        assert verdict.n_tokens == live["local_output_tokens"] < MAX_TOKENS


@pytest.mark.parametrize("question", [CONFIDENT_Q, UNSURE_Q], ids=["local", "cloud"])
def test_stream_equals_invoke(llm: ChatHybrid, question: str) -> None:
    invoked = llm.invoke(question)
    chunks = list(llm.stream(question))

    assert [c.chunk_position for c in chunks].count("last") == 1
    assert chunks[-1].chunk_position == "last"
    assert len([c for c in chunks if c.content]) > 1
    merged = merge(chunks)
    assert merged.content == invoked.content
    streamed, direct = routing(merged), routing(invoked)
    for key in ("tier", "reason", "escalated", "early_abort", "local_output_tokens"):
        assert streamed[key] == direct[key], key
    assert streamed["confidence"] == pytest.approx(direct["confidence"], abs=1e-4)


async def test_async_equals_sync(llm: ChatHybrid) -> None:
    local, cloud = await llm.abatch([CONFIDENT_Q, UNSURE_Q])
    assert local.content == LOCAL_ANSWER and routing(local)["tier"] == "local"
    assert cloud.content == CLOUD_ANSWER and routing(cloud)["tier"] == "cloud"
    chunks = [c async for c in llm.astream(CONFIDENT_Q)]
    assert merge(chunks).content == LOCAL_ANSWER


# --------------------------------------------------------------------------- LangSmith


def _find_routing(value: Any) -> dict[str, Any] | None:
    """The first dict stored under a "routing" key anywhere in ``value``."""
    if isinstance(value, dict):
        found = value.get("routing")
        if isinstance(found, dict) and "tier" in found:
            return found
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        hit = _find_routing(child)
        if hit is not None:
            return hit
    return None


def _hybrid_tree_ended(runs: dict[str, dict[str, Any]]) -> bool:
    ended = {r["name"] for r in runs.values() if r.get("end_time") is not None}
    return {"ChatHybrid", "local", "cloud"} <= ended


def _check_trace(capture: LangSmithCaptureServer, answer: BaseMessage) -> None:
    flush_traces(capture, _hybrid_tree_ended, timeout=10)
    hybrid = capture.run_named("ChatHybrid")
    assert hybrid["run_type"] == "llm" and hybrid["parent_run_id"] is None
    children = capture.children(hybrid["id"])
    assert [c["name"] for c in children] == ["local", "cloud"]
    assert all(c["trace_id"] == hybrid["trace_id"] for c in children)
    assert all(c["run_type"] == "llm" for c in children)

    decision = routing(answer)
    metadata = hybrid["extra"]["metadata"]
    assert metadata["routing_tier"] == decision["tier"] == "cloud"
    assert metadata["routing_reason"] == decision["reason"]
    assert metadata["routing_confidence"] == pytest.approx(decision["confidence"])
    assert metadata["routing_cost_usd"] == pytest.approx(decision["cost_usd"])
    assert metadata["routing_cost_usd"] > 0
    assert metadata["routing_escalated"] is True
    assert metadata["routing_early_abort"] is True
    assert metadata["routing_escalation_reason"] == decision["escalation_reason"]
    assert (metadata["routing_failed"], metadata["routing_privacy"]) == (False, None)
    traced = _find_routing(hybrid["outputs"])
    assert traced is not None, hybrid["outputs"]
    assert traced["tier"] == "cloud" and traced["reason"] == decision["reason"]
    assert traced["local_output_tokens"] == decision["local_output_tokens"]
    # The tier runs carry their own outputs, not the decision.
    assert _find_routing(children[1]["outputs"]) is None
    # Tokens are counted once: the cloud run reports its usage, the routed run none.
    assert "usage_metadata" not in metadata
    cloud_usage = children[1]["extra"]["metadata"]["usage_metadata"]
    assert cloud_usage["output_tokens"] == decision["usage"]["output_tokens"] > 0
    # The local attempt stopped early still reports the tokens it computed, and ends
    # as a finished run (not an error).
    assert children[0].get("error") is None
    local_usage = children[0]["extra"]["metadata"]["usage_metadata"]
    assert local_usage["input_tokens"] > 0
    assert 0 < decision["local_output_tokens"] <= local_usage["output_tokens"]
    assert capture.errors == []


def test_langsmith_trace_of_invoke(
    llm: ChatHybrid, langsmith_capture: LangSmithCaptureServer
) -> None:
    answer = llm.invoke(UNSURE_Q)
    _check_trace(langsmith_capture, answer)


def test_langsmith_trace_of_stream(
    llm: ChatHybrid, langsmith_capture: LangSmithCaptureServer
) -> None:
    answer = merge(list(llm.stream(UNSURE_Q)))
    _check_trace(langsmith_capture, answer)


def test_langsmith_trace_of_local_answer(
    llm: ChatHybrid, langsmith_capture: LangSmithCaptureServer
) -> None:
    answer = llm.invoke(CONFIDENT_Q)

    def ended(runs: dict[str, dict[str, Any]]) -> bool:
        names = {r["name"] for r in runs.values() if r.get("end_time") is not None}
        return {"ChatHybrid", "local"} <= names

    flush_traces(langsmith_capture, ended, timeout=10)
    hybrid = langsmith_capture.run_named("ChatHybrid")
    assert [c["name"] for c in langsmith_capture.children(hybrid["id"])] == ["local"]
    metadata = hybrid["extra"]["metadata"]
    assert (metadata["routing_tier"], metadata["routing_reason"]) == ("local", "confident")
    (local,) = langsmith_capture.children(hybrid["id"])
    assert "usage_metadata" not in metadata
    assert local["extra"]["metadata"]["usage_metadata"] == answer.usage_metadata
    assert metadata["routing_cost_avoided_usd"] == pytest.approx(
        routing(answer)["cost_avoided_usd"]
    )


def test_local_defaults_to_the_embedded_model_and_takes_a_model_id(
    local_llm: ChatTransformers, cloud_server: FakeOpenAIServer
) -> None:
    from langchain_hybrid._models import DEFAULT_MODEL_NAME, convert_gguf, embedded_gguf_path

    default = ChatHybrid(cloud=cloud_model(cloud_server), threshold=-0.6)
    assert isinstance(default.local, ChatTransformers)
    assert default.local.model_name == local_llm.model_name == DEFAULT_MODEL_NAME
    # A model id or folder becomes ChatTransformers(model=...): here the embedded model's
    # converted folder, as a user with a hub would pass "HuggingFaceTB/SmolLM2-135M-Instruct".
    folder = str(convert_gguf(embedded_gguf_path(), DEFAULT_MODEL_NAME))
    by_id = ChatHybrid(local=folder, cloud=cloud_model(cloud_server), threshold=-0.6)
    assert isinstance(by_id.local, ChatTransformers) and by_id.local.model == folder
    msg = by_id.invoke(CONFIDENT_Q, max_tokens=MAX_TOKENS)
    assert (msg.content, routing(msg)["tier"]) == (LOCAL_ANSWER, "local")
