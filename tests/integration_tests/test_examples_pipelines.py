"""The LCEL, RAG, structured-output and tracing examples run end to end, offline."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from langchain_openai import ChatOpenAI

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


def test_structured_example_routes_each_extraction_and_parses_every_answer(
    example: Callable[[str], ModuleType],
    local_llm: ChatTransformers,
    capsys: pytest.CaptureFixture[str],
) -> None:
    structured = example("structured")
    with structured.ScriptedCloud(structured.scripted_answer) as scripted:
        cloud = ChatOpenAI(model="gpt-4o", base_url=scripted.base_url, api_key="none")
        record = structured.run(local_llm, cloud)
    out = capsys.readouterr().out
    assert len(record) == len(structured.TEXTS)
    assert all(r["tier"] in ("local", "cloud") and r["reason"] for r in record)
    # Every escalated call, and only those, reached the cloud, asking for the schema.
    escalated = [r for r in record if r["tier"] == "cloud"]
    assert len(scripted.requests) == len(escalated)
    for body in scripted.requests:
        assert body["response_format"]["json_schema"]["name"] == "Person"
    # Every answer, local or cloud, parsed into a Person; the scripted cloud's are right.
    assert all(r["parsed"] for r in record)
    assert all(r["right"] for r in escalated)
    local = sum(r["tier"] == "local" for r in record)
    assert f"{local} of {len(record)} calls answered locally" in out
