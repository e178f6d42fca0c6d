"""The loopback test servers work with the real ChatOpenAI and langsmith clients.

The fake OpenAI server passes the same :class:`OpenAIContract` as the socket-free
``MockOpenAI`` of the unit lane, and both answer every script with the same
status, headers, body and stream events, faults included.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import langsmith
import openai
import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tracers.langchain import wait_for_all_tracers
from langsmith.run_helpers import traceable, tracing_context

from tests.support.fixtures import flush_traces, make_chat_openai
from tests.support.langsmith_capture import LangSmithCaptureServer, zstd_available
from tests.support.openai_contract import CONTENT, LOGPROBS, TOKENS, TOOL_CALLS, OpenAIContract
from tests.support.openai_fake import Fault, Script, ScriptedReply
from tests.support.openai_mock import MockOpenAI
from tests.support.openai_server import FakeOpenAIServer


def _tokens_of(logprobs: dict[str, Any]) -> list[str]:
    return [entry["token"] for entry in logprobs["content"]]


# --------------------------------------------------------------------------- OpenAI


class TestFakeOpenAIServer(OpenAIContract):
    """The contract the socket-free MockOpenAI passes in the unit lane, over real HTTP."""

    @pytest.fixture
    def fake_openai(self, openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
        return openai_server


# --------------------------------------------------------------------------- server and mock agree

# Every field the wire carries, for one script, through each delivery.
PARITY_CASES = [
    pytest.param(
        ScriptedReply(CONTENT, logprobs=LOGPROBS, prompt_tokens=11),
        {"logprobs": True, "top_logprobs": 2},
        id="logprobs",
    ),
    pytest.param(
        ScriptedReply(CONTENT, logprobs=LOGPROBS),
        {"stream": True, "logprobs": True, "stream_options": {"include_usage": True}},
        id="stream-logprobs-usage",
    ),
    pytest.param(ScriptedReply("Let me check.", tool_calls=TOOL_CALLS), {}, id="tools"),
    pytest.param(
        ScriptedReply("", tool_calls=TOOL_CALLS, finish_reason="length"),
        {"stream": True},
        id="tools-stream",
    ),
    pytest.param(Fault(status=429, retry_after_s=2.5), {}, id="429-retry-after"),
    pytest.param(Fault(status=500, error_message="boom"), {"stream": True}, id="500-stream"),
    pytest.param(Fault(status=503, headers={"x-extra": "1"}), {}, id="503-headers"),
    pytest.param(Fault(drop=True), {}, id="drop"),
    pytest.param(
        ScriptedReply(CONTENT, fault=Fault(drop_after_chunks=3)), {"stream": True}, id="drop-mid"
    ),
    pytest.param(Fault(delay_s=3.0), {}, id="delay-past-read-timeout"),
    pytest.param(
        ScriptedReply(CONTENT, fault=Fault(delay_s=0.05, chunk_delay_s=0.01)),
        {"stream": True},
        id="delays-within-timeout",
    ),
]
_HEADERS = ("content-type", "cache-control", "retry-after", "retry-after-ms", "x-extra")
_TIMEOUT = httpx.Timeout(5.0, read=0.5)


def _normalised(value: Any) -> Any:
    """A wire object with its generated ids and timestamps blanked."""
    if isinstance(value, dict):
        return {
            k: "<generated>" if k in ("id", "created") else _normalised(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _payload(content_type: str, lines: list[str], raw: bytes) -> Any:
    if content_type.startswith("text/event-stream"):
        return [
            line if line == "data: [DONE]" else _normalised(json.loads(line[len("data: ") :]))
            for line in lines
        ]
    return _normalised(json.loads(raw))


def _outcome(head: dict[str, Any], lines: list[str], error: httpx.HTTPError | None) -> Any:
    if error is not None:
        # What was received before the error, and the error's type (httpx's own messages
        # for a read timeout differ between its sync and async clients).
        events = _payload("text/event-stream", lines, b"")
        return {**head, "error": type(error).__name__, "events": events}
    return head


def _exchange(client: httpx.Client, body: dict[str, Any]) -> Any:
    head: dict[str, Any] = {}
    lines: list[str] = []
    try:
        with client.stream("POST", "/chat/completions", json=body, timeout=_TIMEOUT) as r:
            head = {"status": r.status_code, "request_id": "x-request-id" in r.headers}
            head["headers"] = {k: r.headers.get(k) for k in _HEADERS}
            if r.headers["content-type"].startswith("text/event-stream"):
                lines.extend(line for line in r.iter_lines() if line)
                head["payload"] = _payload(r.headers["content-type"], lines, b"")
            else:
                head["payload"] = _payload(r.headers["content-type"], [], r.read())
    except httpx.HTTPError as error:
        return _outcome(head, lines, error)
    return head


async def _aexchange(client: httpx.AsyncClient, body: dict[str, Any]) -> Any:
    head: dict[str, Any] = {}
    lines: list[str] = []
    try:
        async with client.stream("POST", "/chat/completions", json=body, timeout=_TIMEOUT) as r:
            head = {"status": r.status_code, "request_id": "x-request-id" in r.headers}
            head["headers"] = {k: r.headers.get(k) for k in _HEADERS}
            if r.headers["content-type"].startswith("text/event-stream"):
                lines.extend([line async for line in r.aiter_lines() if line])
                head["payload"] = _payload(r.headers["content-type"], lines, b"")
            else:
                head["payload"] = _payload(r.headers["content-type"], [], await r.aread())
    except httpx.HTTPError as error:
        return _outcome(head, lines, error)
    return head


def _request_body(extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "capital?"}], **extra}


@pytest.mark.parametrize(("script", "extra"), PARITY_CASES)
def test_mock_transport_answers_like_the_server(
    openai_server: FakeOpenAIServer, script: Script, extra: dict[str, Any]
) -> None:
    mock = MockOpenAI()
    openai_server.enqueue(script)
    mock.enqueue(script)
    body = _request_body(extra)

    with httpx.Client(base_url=openai_server.base_url) as client:
        over_http = _exchange(client, body)
    with httpx.Client(transport=mock.transport(), base_url=mock.base_url) as client:
        mocked = _exchange(client, body)

    assert mocked == over_http
    assert openai_server.chat_requests == mock.chat_requests == [body]
    assert openai_server.errors == mock.errors == []


@pytest.mark.parametrize(("script", "extra"), PARITY_CASES)
async def test_async_mock_transport_answers_like_the_server(
    openai_server: FakeOpenAIServer, script: Script, extra: dict[str, Any]
) -> None:
    mock = MockOpenAI()
    openai_server.enqueue(script)
    mock.enqueue(script)
    body = _request_body(extra)

    async with httpx.AsyncClient(base_url=openai_server.base_url) as client:
        over_http = await _aexchange(client, body)
    async with httpx.AsyncClient(
        transport=mock.async_transport(), base_url=mock.base_url
    ) as client:
        mocked = await _aexchange(client, body)

    assert mocked == over_http
    assert openai_server.errors == mock.errors == []


def test_mock_answers_models_like_the_server(openai_server: FakeOpenAIServer) -> None:
    mock = MockOpenAI()
    for path in ("/models", "/models/gpt-4o", "/models/nope", "/nowhere"):
        with httpx.Client(base_url=openai_server.base_url) as client:
            over_http = client.get(path)
        with httpx.Client(transport=mock.transport(), base_url=mock.base_url) as client:
            mocked = client.get(path)
        assert (mocked.status_code, mocked.json()) == (over_http.status_code, over_http.json())


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
