"""Privacy, integration lane: the real ChatOpenAI against FakeOpenAIServer on 127.0.0.1.

The server records every request's raw bytes; no planted value (as written, without
spaces, digits only, JSON-escaped) may be among them. ``threshold=0.0`` escalates every
local answer, so whatever privacy does not hold back reaches the server. The local tier is
``FakeLocalChatModel`` for the whole corpus and the embedded ``ChatTransformers`` in a few
cases; LangSmith traces go to the capture server on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import langsmith
import pytest
from langchain_core.messages import BaseMessage
from langchain_core.tracers.langchain import LangChainTracer
from pydantic import BaseModel

from langchain_hybrid import (
    ChatHybrid,
    ChatTransformers,
    ConfidenceGate,
    LocalToolCallUnavailableError,
    PrivacyRule,
)
from langchain_hybrid.privacy import redact_inputs
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.langsmith_capture import LangSmithCaptureServer
from tests.support.openai_server import FakeOpenAIServer
from tests.support.privacy_corpus import PLACEHOLDERS, PLANTED, corpus, leaks

PROMPTS = corpus()


def raw(server: FakeOpenAIServer) -> bytes:
    return b"".join(r.raw for r in server.requests)


def lookup(query: str) -> str:
    """Look an account up."""
    return "none"


class Reply(BaseModel):
    """A structured reply."""

    text: str


def last(out: Any) -> Any:
    return out[-1] if isinstance(out, list) else out


async def every_entry_point(llm: ChatHybrid, messages: list[BaseMessage]) -> list[Any]:
    """Call ``llm`` through every entry point; return each answer (or the error raised)."""
    outs: list[Any] = [
        llm.invoke(messages),
        list(llm.stream(messages)),
        await llm.ainvoke(messages),
        [c async for c in llm.astream(messages)],
        llm.bind_tools([lookup]).invoke(messages),
    ]
    try:
        # include_raw: the fake cloud replies in plain text, which does not parse into
        # Reply (parsing_error); the raw answer still carries the routing decision.
        structured = llm.with_structured_output(Reply, include_raw=True).invoke(messages)
        outs.append(structured["raw"])
    except LocalToolCallUnavailableError as e:
        outs.append(e)
    gate = ConfidenceGate(llm.local, llm.cloud, policy=llm.routing_policy)
    outs += [gate.invoke(messages), list(gate.stream(messages)), await gate.ainvoke(messages)]
    outs.append([c async for c in gate.astream(messages)])
    return outs


async def test_no_byte_of_a_planted_value_reaches_the_server(
    openai_server: FakeOpenAIServer,
) -> None:
    llm = ChatHybrid(
        local=FakeLocalChatModel(), cloud=make_chat_openai(openai_server), threshold=0.0
    )
    for prompt in PROMPTS:
        outs = await every_entry_point(llm, prompt.messages)
        for out in outs:
            if isinstance(out, Exception):
                assert isinstance(out, LocalToolCallUnavailableError)
                continue
            routing = last(out).response_metadata["routing"]
            assert (routing["tier"], routing["reason"]) == ("local", "privacy_forced_local")
    assert openai_server.requests == []
    assert leaks(raw(openai_server), PLANTED.values()) == {}


async def test_redaction_sends_placeholders_only(openai_server: FakeOpenAIServer) -> None:
    llm = ChatHybrid(
        local=FakeLocalChatModel(),
        cloud=make_chat_openai(openai_server),
        threshold=0.0,
        privacy=PrivacyRule(action="redact"),
    )
    for prompt in PROMPTS:
        sent_before = len(openai_server.requests)
        for out in await every_entry_point(llm, prompt.messages):
            assert last(out).response_metadata["routing"]["privacy"]["action"] == "redact"
        new = openai_server.requests[sent_before:]
        assert len(new) == 10
        assert all(PLACEHOLDERS[prompt.kind].encode() in r.raw for r in new)
    assert leaks(raw(openai_server), PLANTED.values()) == {}


def test_with_privacy_off_the_server_receives_the_values(openai_server: FakeOpenAIServer) -> None:
    llm = ChatHybrid(
        local=FakeLocalChatModel(),
        cloud=make_chat_openai(openai_server),
        threshold=0.0,
        privacy=False,
    )
    for prompt in PROMPTS:
        llm.invoke(prompt.messages)
    assert set(leaks(raw(openai_server), PLANTED.values())) == set(PLANTED.values())


# ---------------------------------------------------------------------------- the real model


@pytest.fixture
def real_hybrid(local_llm: ChatTransformers, openai_server: FakeOpenAIServer) -> ChatHybrid:
    return ChatHybrid(
        local=local_llm, cloud=make_chat_openai(openai_server), threshold=0.0, max_tokens=8
    )


async def test_the_embedded_model_answers_sensitive_requests_alone(
    real_hybrid: ChatHybrid, openai_server: FakeOpenAIServer
) -> None:
    cases = {p.id: p for p in PROMPTS}
    email, card, iban = (
        cases["email-plain"],
        cases["credit_card-tool_result"],
        cases["iban-system_prompt"],
    )
    answers = [
        real_hybrid.invoke(email.messages),
        last(list(real_hybrid.stream(card.messages))),
        last([c async for c in real_hybrid.astream(iban.messages)]),
        real_hybrid.bind_tools([lookup]).invoke(cases["ipv6-split_blocks"].messages),
    ]
    for answer in answers:
        routing = answer.response_metadata["routing"]
        assert (routing["tier"], routing["reason"]) == ("local", "privacy_forced_local")
        assert routing["local_output_tokens"] > 0
    assert openai_server.requests == []
    # Not sensitive: the same model's answer escalates (threshold 0.0), so the test can fail.
    assert real_hybrid.invoke("Name a colour.").response_metadata["routing"]["tier"] == "cloud"


async def test_the_embedded_model_with_redaction(
    real_hybrid: ChatHybrid, openai_server: FakeOpenAIServer
) -> None:
    llm = real_hybrid.model_copy(update={"privacy": PrivacyRule(action="redact")})
    prompt = next(p for p in PROMPTS if p.id == "us_ssn-tool_call_args")
    answer = await llm.ainvoke(prompt.messages)
    assert answer.response_metadata["routing"]["tier"] == "cloud"
    assert b"[US_SSN]" in openai_server.requests[-1].raw
    assert leaks(raw(openai_server), PLANTED.values()) == {}


# ---------------------------------------------------------------------------- LangSmith


def traced_run(capture: LangSmithCaptureServer, server: FakeOpenAIServer, **client_kw: Any) -> str:
    """Trace one redacting ChatHybrid call per planted value; return every captured byte."""
    client = langsmith.Client(api_url=capture.url, api_key="test", **client_kw)
    tracer = LangChainTracer(client=client, project_name="privacy")
    llm = ChatHybrid(
        local=FakeLocalChatModel(),
        cloud=make_chat_openai(server),
        threshold=0.0,
        privacy=PrivacyRule(action="redact"),
    )
    for prompt in corpus(["plain", "split_blocks", "tool_call_args"]):
        llm.invoke(prompt.messages, config={"callbacks": [tracer]})
    tracer.wait_for_futures()
    client.flush(timeout=5.0)
    runs = capture.wait_for_runs(["ChatHybrid", "local", "cloud"], count=3 * 3 * len(PLANTED))
    client.close(timeout=2.0)
    return json.dumps(runs) + json.dumps(capture.operations, default=str)


def test_langsmith_traces_carry_no_planted_value_with_redact_inputs(
    langsmith_capture: LangSmithCaptureServer,
    openai_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "false")  # only the tracer given below
    monkeypatch.setenv("LANGSMITH_TRACING_V2", "false")
    captured = traced_run(
        langsmith_capture, openai_server, hide_inputs=redact_inputs, hide_outputs=redact_inputs
    )
    assert "[EMAIL]" in captured
    assert leaks(captured.encode(), PLANTED.values()) == {}


def test_langsmith_traces_do_carry_them_without_it(
    langsmith_capture: LangSmithCaptureServer,
    openai_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGSMITH_TRACING_V2", "false")
    captured = traced_run(langsmith_capture, openai_server)
    assert set(leaks(captured.encode(), PLANTED.values())) == set(PLANTED.values())
