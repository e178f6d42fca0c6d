"""The loopback test servers work with the real ChatOpenAI and langsmith clients."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import langsmith
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tracers.langchain import wait_for_all_tracers
from langsmith.run_helpers import traceable, tracing_context

from tests.support.fixtures import flush_traces, make_chat_openai
from tests.support.langsmith_capture import LangSmithCaptureServer, zstd_available
from tests.support.openai_server import (
    FakeOpenAIServer,
    Fault,
    ScriptedReply,
    last_user_text,
    split_tokens,
)

CONTENT = "The capital of France is Paris."
TOKENS = ["The", " capital", " of", " France", " is", " Paris", "."]
LOGPROBS = [-0.01, -0.2, -0.03, -0.5, -0.04, -1.5, -0.001]


def _sum_chunks(chunks: Sequence[AIMessageChunk]) -> AIMessageChunk:
    assert chunks, "stream yielded nothing"
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def _tokens_of(logprobs: dict[str, Any]) -> list[str]:
    return [entry["token"] for entry in logprobs["content"]]


# --------------------------------------------------------------------------- OpenAI


def test_split_tokens_round_trips() -> None:
    assert split_tokens(CONTENT) == TOKENS
    for text in ["", "  leading", "trailing  ", "a,b;; c\n\nd!", "naïve café"]:
        assert "".join(split_tokens(text)) == text


def test_scripted_reply_validates() -> None:
    with pytest.raises(ValueError, match="concatenate"):
        ScriptedReply("abc", tokens=["a", "c"])
    with pytest.raises(ValueError, match="logprobs"):
        ScriptedReply("a b", logprobs=[-0.1])
    assert ScriptedReply("a b", logprobs=-0.5).logprob_list() == [-0.5, -0.5]


def test_invoke_returns_content_logprobs_and_usage(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(ScriptedReply(CONTENT, logprobs=LOGPROBS, prompt_tokens=11))
    llm = make_chat_openai(openai_server, logprobs=True)

    msg = llm.invoke("What is the capital of France?")

    assert isinstance(msg, AIMessage)
    assert msg.content == CONTENT
    logprobs = msg.response_metadata["logprobs"]
    assert _tokens_of(logprobs) == TOKENS
    assert [e["logprob"] for e in logprobs["content"]] == LOGPROBS
    assert logprobs["content"][1]["bytes"] == list(b" capital")
    assert all(e["top_logprobs"] == [] for e in logprobs["content"])
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 11
    assert msg.usage_metadata["output_tokens"] == len(TOKENS)
    assert msg.usage_metadata["total_tokens"] == 11 + len(TOKENS)
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "gpt-4o"

    (body,) = openai_server.chat_requests
    assert body["logprobs"] is True
    assert body["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}
    assert openai_server.requests[0].headers["authorization"] == "Bearer test-key"


def test_no_logprobs_unless_requested(openai_server: FakeOpenAIServer) -> None:
    msg = make_chat_openai(openai_server).invoke("hi")
    assert msg.content == openai_server.default_reply.content
    assert msg.response_metadata.get("logprobs") is None


def test_top_logprobs(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(ScriptedReply(CONTENT, logprobs=LOGPROBS))
    llm = make_chat_openai(openai_server, logprobs=True, top_logprobs=2)

    msg = llm.invoke("capital?")

    entries = msg.response_metadata["logprobs"]["content"]
    assert len(entries) == len(TOKENS)
    for entry, token, lp in zip(entries, TOKENS, LOGPROBS, strict=True):
        top = entry["top_logprobs"]
        assert len(top) == 2
        assert token in [t["token"] for t in top]
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        # The alternatives never claim more than the remaining probability mass.
        assert sum(math.exp(t["logprob"]) for t in top) <= 1.0 + 1e-9
        assert entry["logprob"] == lp
    assert openai_server.chat_requests[0]["top_logprobs"] == 2


def test_stream_chunks_add_up_to_invoke(openai_server: FakeOpenAIServer) -> None:
    reply = ScriptedReply(CONTENT, logprobs=LOGPROBS)
    openai_server.enqueue(reply, reply)
    llm = make_chat_openai(openai_server, logprobs=True, stream_usage=True)

    invoked = llm.invoke("capital?")
    chunks = list(llm.stream("capital?"))

    content_chunks = [c for c in chunks if c.content]
    assert [c.content for c in content_chunks] == TOKENS
    for chunk, token in zip(content_chunks, TOKENS, strict=True):
        assert _tokens_of(chunk.response_metadata["logprobs"]) == [token]
    total = _sum_chunks(chunks)
    assert isinstance(total, AIMessageChunk)
    assert total.content == invoked.content == CONTENT
    assert total.response_metadata["logprobs"] == invoked.response_metadata["logprobs"]
    assert total.response_metadata["finish_reason"] == "stop"
    assert total.usage_metadata is not None and invoked.usage_metadata is not None
    assert total.usage_metadata["output_tokens"] == invoked.usage_metadata["output_tokens"]
    assert total.usage_metadata["input_tokens"] == invoked.usage_metadata["input_tokens"]

    stream_body = openai_server.chat_requests[1]
    assert stream_body["stream"] is True
    assert stream_body["stream_options"] == {"include_usage": True}


def test_stream_without_usage_option_has_no_usage(openai_server: FakeOpenAIServer) -> None:
    chunks = list(make_chat_openai(openai_server).stream("hi"))
    total = _sum_chunks(chunks)
    assert total.content == openai_server.default_reply.content
    assert isinstance(total, AIMessageChunk) and total.usage_metadata is None


TOOL_CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"name": "get_time", "arguments": {"tz": "Europe/Paris"}, "id": "call_fixed"},
]


def test_tool_calls_invoke(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(ScriptedReply("", tool_calls=TOOL_CALLS))

    msg = make_chat_openai(openai_server).invoke("weather and time in Paris?")

    assert isinstance(msg, AIMessage)
    assert msg.content == ""
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        (t["name"], t["arguments"]) for t in TOOL_CALLS
    ]
    assert msg.tool_calls[1]["id"] == "call_fixed"
    assert msg.tool_calls[0]["id"]
    assert msg.response_metadata["finish_reason"] == "tool_calls"


def test_tool_calls_stream(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(ScriptedReply("Let me check.", tool_calls=TOOL_CALLS))

    total = _sum_chunks(list(make_chat_openai(openai_server).stream("weather?")))

    assert isinstance(total, AIMessageChunk)
    assert total.content == "Let me check."
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [
        (t["name"], t["arguments"]) for t in TOOL_CALLS
    ]
    assert total.tool_calls[1]["id"] == "call_fixed"
    assert total.response_metadata["finish_reason"] == "tool_calls"


def test_responder_answers_by_prompt(openai_server: FakeOpenAIServer) -> None:
    def responder(body: dict[str, Any]) -> ScriptedReply | str:
        text = last_user_text(body)
        if "2+2" in text:
            return ScriptedReply("4", logprobs=-0.001)
        return f"echo: {text}"

    openai_server.responder = responder
    openai_server.enqueue("queued first")
    llm = make_chat_openai(openai_server)

    assert llm.invoke("anything").content == "queued first"
    assert llm.invoke("what is 2+2?").content == "4"
    assert llm.invoke("hello").content == "echo: hello"
    assert openai_server.pending == 0


def test_rate_limit_then_success_retries(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Fault(status=429), "recovered")
    llm = make_chat_openai(openai_server, max_retries=1)

    start = time.monotonic()
    assert llm.invoke("hi").content == "recovered"
    assert time.monotonic() - start < 2.0  # Retry-After (10 ms) was honoured
    assert len(openai_server.chat_requests) == 2


def test_rate_limit_without_retries_raises(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Fault(status=429, retry_after_s=3))
    with pytest.raises(openai.RateLimitError) as info:
        make_chat_openai(openai_server).invoke("hi")
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.code == "rate_limit_exceeded"


def test_server_error_raises_internal_server_error(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Fault(status=500, error_message="boom"))
    with pytest.raises(openai.InternalServerError, match="boom"):
        make_chat_openai(openai_server).invoke("hi")
    assert len(openai_server.chat_requests) == 1


def test_dropped_connection_raises_connection_error(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Fault(drop=True))
    with pytest.raises(openai.APIConnectionError):
        make_chat_openai(openai_server).invoke("hi")
    # The server keeps serving after a drop.
    assert make_chat_openai(openai_server).invoke("hi").content


def test_drop_mid_stream_raises_after_partial_output(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(ScriptedReply(CONTENT, fault=Fault(drop_after_chunks=3)))
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in make_chat_openai(openai_server).stream("hi"):
            received.append(str(chunk.content))
    # Role chunk + two content chunks got through before the connection died.
    assert "".join(received) == "".join(TOKENS[:2])


def test_delay_beyond_timeout_raises_timeout(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Fault(delay_s=3.0))
    llm = make_chat_openai(openai_server, timeout=0.2)

    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        llm.invoke("hi")
    assert time.monotonic() - start < 1.5


def test_delay_within_timeout_succeeds(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(ScriptedReply("slow but fine", fault=Fault(delay_s=0.1)))
    assert make_chat_openai(openai_server, timeout=5).invoke("hi").content == "slow but fine"


def test_models_endpoint(openai_server: FakeOpenAIServer) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


async def test_ainvoke_and_astream(openai_server: FakeOpenAIServer) -> None:
    reply = ScriptedReply(CONTENT, logprobs=LOGPROBS)
    openai_server.enqueue(reply, reply, ScriptedReply("", tool_calls=TOOL_CALLS[:1]))
    llm = make_chat_openai(openai_server, logprobs=True, stream_usage=True)

    msg = await llm.ainvoke("capital?")
    chunks = [chunk async for chunk in llm.astream("capital?")]
    tool_msg = await llm.ainvoke("weather?")

    assert msg.content == CONTENT
    total = _sum_chunks(chunks)
    assert total.content == CONTENT
    assert total.response_metadata["logprobs"] == msg.response_metadata["logprobs"]
    assert isinstance(tool_msg, AIMessage)
    assert tool_msg.tool_calls[0]["args"] == TOOL_CALLS[0]["arguments"]


async def test_async_faults(openai_server: FakeOpenAIServer) -> None:
    openai_server.enqueue(Fault(status=500), Fault(delay_s=3.0))
    with pytest.raises(openai.InternalServerError):
        await make_chat_openai(openai_server).ainvoke("hi")
    with pytest.raises(openai.APITimeoutError):
        await make_chat_openai(openai_server, timeout=0.2).ainvoke("hi")


def test_close_cuts_pending_delay_short() -> None:
    server = FakeOpenAIServer().start()
    server.enqueue(Fault(delay_s=30))
    llm = make_chat_openai(server, timeout=10)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            llm.invoke("hi")
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 2
    while not server.chat_requests and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    server.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - start < 2
    assert errors and isinstance(errors[0], openai.APIConnectionError)


# --------------------------------------------------------------------------- LangSmith


def test_runnable_chain_traced_with_parents_and_metadata(
    langsmith_capture: LangSmithCaptureServer,
) -> None:
    def add_one(x: int) -> int:
        return x + 1

    def double_plus_one(x: int, config: RunnableConfig) -> int:
        return RunnableLambda(add_one).invoke(x * 2, config)

    chain = RunnableLambda(double_plus_one, name="outer")

    result = chain.invoke(
        3, config={"metadata": {"route": "cloud", "confidence": 0.25}, "tags": ["t1"]}
    )
    wait_for_all_tracers()
    runs = langsmith_capture.wait_for_runs(["outer", "add_one"])

    assert result == 7
    assert len(runs) == 2
    outer = langsmith_capture.run_named("outer")
    inner = langsmith_capture.run_named("add_one")
    assert outer["run_type"] == inner["run_type"] == "chain"
    assert outer["parent_run_id"] is None
    assert inner["parent_run_id"] == outer["id"]
    assert inner["trace_id"] == outer["trace_id"] == outer["id"]
    assert inner["dotted_order"].startswith(outer["dotted_order"])
    assert outer["inputs"] == {"input": 3} and outer["outputs"] == {"output": 7}
    assert inner["inputs"] == {"input": 6} and inner["outputs"] == {"output": 7}
    for run in (outer, inner):
        assert run["extra"]["metadata"]["route"] == "cloud"
        assert run["extra"]["metadata"]["confidence"] == 0.25
        assert run["session_name"] == "test-project"
        assert run["error"] is None
        assert run["end_time"] is not None
    assert "t1" in outer["tags"]
    assert langsmith_capture.children(outer["id"]) == [inner]
    assert langsmith_capture.errors == []
    # Talked to the capture server only, the way it talks to the hosted service.
    paths = {r.path for r in langsmith_capture.requests}
    assert "/info" in paths
    assert paths & {"/runs/multipart", "/runs/batch"}


def test_traceable_error_is_captured(langsmith_capture: LangSmithCaptureServer) -> None:
    @traceable(name="failing_step")
    def failing(x: int) -> int:
        raise ValueError(f"bad input {x}")

    @traceable(name="pipeline", metadata={"stage": "test"})
    def pipeline(x: int) -> int:
        try:
            return failing(x)
        except ValueError:
            return -1

    assert pipeline(5) == -1
    runs = flush_traces(
        langsmith_capture, lambda rs: sum(r["end_time"] is not None for r in rs.values()) == 2
    )

    by_name = {r["name"]: r for r in runs.values()}
    assert by_name["failing_step"]["parent_run_id"] == by_name["pipeline"]["id"]
    assert "bad input 5" in by_name["failing_step"]["error"]
    assert by_name["pipeline"]["error"] is None
    assert by_name["pipeline"]["outputs"] == {"output": -1}
    assert by_name["pipeline"]["extra"]["metadata"]["stage"] == "test"


def test_chat_openai_call_traced_as_llm_run(
    openai_server: FakeOpenAIServer, langsmith_capture: LangSmithCaptureServer
) -> None:
    openai_server.enqueue(ScriptedReply(CONTENT, logprobs=LOGPROBS))
    llm = make_chat_openai(openai_server, logprobs=True)
    chain: RunnableLambda[str, Any] = RunnableLambda(
        lambda q: llm.invoke(q).content, name="ask_cloud"
    )

    assert chain.invoke("capital?", config={"metadata": {"tier": "cloud"}}) == CONTENT
    runs = flush_traces(langsmith_capture)

    (llm_run,) = [r for r in runs.values() if r["run_type"] == "llm"]
    parent = langsmith_capture.run_named("ask_cloud")
    assert llm_run["name"] == "ChatOpenAI"
    assert llm_run["parent_run_id"] == parent["id"]
    assert llm_run["extra"]["metadata"]["tier"] == "cloud"
    assert llm_run["extra"]["metadata"]["ls_provider"] == "openai"
    generation = llm_run["outputs"]["generations"][0][0]
    assert generation["text"] == CONTENT
    assert _tokens_of(generation["generation_info"]["logprobs"]) == TOKENS


def test_tracing_is_off_without_the_fixture(openai_server: FakeOpenAIServer) -> None:
    # The capture fixture restores the environment and drops its client.
    import langsmith.run_trees as rt

    assert rt._CLIENT is None or "127.0.0.1" not in rt._CLIENT.api_url
    assert make_chat_openai(openai_server).invoke("hi").content


@pytest.fixture(
    params=[
        pytest.param(
            {"use_multipart": True, "compression": True},
            id="multipart-zstd",
            marks=pytest.mark.skipif(not zstd_available(), reason="zstandard not installed"),
        ),
        pytest.param({"use_multipart": True, "compression": False}, id="multipart"),
        pytest.param({"use_multipart": False, "compression": False}, id="batch"),
        pytest.param({"use_multipart": True, "compression": False, "plain": True}, id="plain"),
    ]
)
def ingestion_mode(request: pytest.FixtureRequest) -> Iterator[tuple[LangSmithCaptureServer, Any]]:
    params = dict(request.param)
    plain = params.pop("plain", False)
    with LangSmithCaptureServer(**params) as server:
        client = langsmith.Client(api_url=server.url, api_key="test", auto_batch_tracing=not plain)
        try:
            yield server, client
        finally:
            client.close(timeout=2.0)


def test_every_ingestion_path_is_captured(
    ingestion_mode: tuple[LangSmithCaptureServer, langsmith.Client],
) -> None:
    server, client = ingestion_mode

    @traceable(name="child", run_type="tool")
    def child(x: str) -> str:
        return x.upper()

    @traceable(name="root")
    def root(x: str) -> str:
        return child(x) + "!"

    with tracing_context(client=client, enabled=True, project_name="modes"):
        assert root("hey", langsmith_extra={"metadata": {"mode": "x"}}) == "HEY!"
    client.flush(timeout=5)
    runs = server.wait_for_runs(["root", "child"], count=2)

    by_name = {r["name"]: r for r in runs.values()}
    assert by_name["child"]["parent_run_id"] == by_name["root"]["id"]
    assert by_name["child"]["run_type"] == "tool"
    assert by_name["root"]["inputs"] == {"x": "hey"}
    assert by_name["root"]["outputs"] == {"output": "HEY!"}
    assert by_name["child"]["outputs"] == {"output": "HEY"}
    assert by_name["root"]["extra"]["metadata"]["mode"] == "x"
    assert by_name["root"]["session_name"] == "modes"
    assert server.errors == []


def test_wait_for_times_out_with_summary() -> None:
    with LangSmithCaptureServer() as server:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="captured 0 run"):
            server.wait_for(lambda runs: bool(runs), timeout=0.1)
        assert time.monotonic() - start < 1.0
