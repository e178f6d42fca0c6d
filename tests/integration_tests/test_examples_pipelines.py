"""The LCEL, RAG and tracing examples run end to end on the embedded model, offline."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from langchain_hybrid import ChatTransformers
from tests.support.fixtures import flush_traces, make_chat_openai
from tests.support.langsmith_capture import LangSmithCaptureServer
from tests.support.openai_server import FakeOpenAIServer
from tests.support.sensible_responder import sensible_reply


@pytest.fixture
def cloud_server(openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    openai_server.responder = sensible_reply
    return openai_server


def test_lcel_chain_prints_every_decision(
    example: Callable[[str], ModuleType],
    local_llm: ChatTransformers,
    cloud_server: FakeOpenAIServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lcel = example("lcel_chain")
    decisions = lcel.main(local=local_llm, cloud=make_chat_openai(cloud_server))
    out = capsys.readouterr().out
    assert len(decisions) == len(lcel.QUESTIONS)
    for decision in decisions:
        assert f"-> {decision['tier']} ({decision['reason']}" in out
    # Escalated questions reached the cloud, the others did not.
    escalated = sum(d["tier"] == "cloud" for d in decisions)
    assert len(cloud_server.chat_requests) == escalated
    assert "A: " in out


def test_rag_example_answers_and_gates_the_chain(
    example: Callable[[str], ModuleType],
    cloud_server: FakeOpenAIServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rag = example("rag")
    local = ChatTransformers(max_tokens=48, top_logprobs=2)
    result = rag.main(4, local=local, cloud=make_chat_openai(cloud_server))
    out = capsys.readouterr().out
    assert result["n"] == 4 and 0 <= result["kept_local"] <= 4
    assert f"kept local: {result['kept_local']} / 4" in out
    # The gate judged the local RAG chain on its log-probs (top-2 for the learned scorer).
    assert result["gate_reason"] != "no_logprobs"
    assert "gated RAG chain:" in out
    # The retriever found the passage of the first question.
    first = rag.load_dataset(rag.DATA)[0]
    docs = rag.build_retriever(rag.load_dataset(rag.DATA), rag.local_embeddings()).invoke(
        first.question
    )
    assert docs and docs[0].page_content[:80] in first.context


def test_tracing_example_sends_the_run_tree(
    example: Callable[[str], ModuleType],
    local_llm: ChatTransformers,
    cloud_server: FakeOpenAIServer,
    langsmith_capture: LangSmithCaptureServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tracing = example("tracing")
    result = tracing.main(local=local_llm, cloud=make_chat_openai(cloud_server))
    out = capsys.readouterr().out
    assert "ChatHybrid" in result["run_names"] and "local" in result["run_names"]
    assert "routing_tier" in out
    runs = flush_traces(
        langsmith_capture,
        lambda rs: any(r["name"] == "local" and r.get("end_time") for r in rs.values()),
        timeout=10,
    )
    hybrid = langsmith_capture.run_named("ChatHybrid")
    assert hybrid["trace_id"] == result["trace_id"]
    assert hybrid["extra"]["metadata"]["routing_tier"] in ("local", "cloud")
    children = [c["name"] for c in langsmith_capture.children(hybrid["id"])]
    assert children[0] == "local"
    assert {r["session_name"] for r in runs.values()} == {tracing.PROJECT}
