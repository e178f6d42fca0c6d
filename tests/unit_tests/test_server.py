"""The OpenAI-compatible server, in-process (no sockets): the real ``openai`` client over
``httpx.ASGITransport``, a ``ChatHybrid`` whose tiers are scripted ``MockOpenAI`` fakes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from langchain_hybrid import ChatHybrid, RouteDecision
from langchain_hybrid.server import ServerSettings, create_app
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply, last_user_text
from tests.support.openai_mock import MockOpenAI

MODEL = "langchain-hybrid"
EASY = "What is the capital of France?"
HARD = "Who wrote the novel Middlemarch?"
LOCAL_ANSWER = "The capital of France is Paris."
CLOUD_ANSWER = "Middlemarch was written by George Eliot."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def local_responder(body: dict[str, Any]) -> ScriptedReply:
    if HARD in last_user_text(body):
        return ScriptedReply("It was Charles Dickens.", logprobs=-2.0)
    if body.get("tools"):
        return ScriptedReply(
            "", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
        )
    return ScriptedReply(LOCAL_ANSWER, logprobs=-0.05)


def cloud_responder(body: dict[str, Any]) -> ScriptedReply:
    if body.get("tools"):
        return ScriptedReply(
            "", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]
        )
    return ScriptedReply(CLOUD_ANSWER, logprobs=-0.01)


@pytest.fixture
def cloud() -> MockOpenAI:
    return MockOpenAI(responder=cloud_responder)


@pytest.fixture
def hybrid(cloud: MockOpenAI) -> ChatHybrid:
    local = make_chat_openai(
        MockOpenAI(responder=local_responder), model="local-small", logprobs=True, stream_usage=True
    )
    return ChatHybrid(local=local, cloud=make_chat_openai(cloud, stream_usage=True), threshold=-0.6)


def asgi_client(app: Any, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://server", headers=headers
    )


def openai_client(app: Any, api_key: str = "none") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://server/v1",
        api_key=api_key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
    )


def ask(text: str, **kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **kw}


async def test_local_answer_with_decision_field_and_headers(hybrid: ChatHybrid) -> None:
    app = create_app(hybrid)
    client = openai_client(app)
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": EASY}], logprobs=True, top_logprobs=2
    )
    answer = raw.parse()
    assert isinstance(answer, ChatCompletion)
    assert answer.choices[0].message.content == LOCAL_ANSWER
    assert answer.choices[0].finish_reason == "stop"
    decision = RouteDecision.from_dict(answer.model_extra["hybrid"])  # type: ignore[index]
    assert (decision.tier, decision.reason) == ("local", "confident")
    assert raw.headers["x-hybrid-tier"] == "local"
    assert raw.headers["x-hybrid-reason"] == "confident"
    assert float(raw.headers["x-hybrid-confidence"]) == pytest.approx(decision.confidence)
    content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(e.logprob == pytest.approx(-0.05) for e in content)
    assert "".join(e.token for e in content) == LOCAL_ANSWER
    assert all(len(e.top_logprobs) <= 2 for e in content)
    assert answer.usage is not None and answer.usage.completion_tokens > 0


async def test_escalated_answer_comes_from_the_cloud(hybrid: ChatHybrid, cloud: MockOpenAI) -> None:
    app = create_app(hybrid)
    answer = await openai_client(app).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": HARD}], max_tokens=20, temperature=0
    )
    assert answer.choices[0].message.content == CLOUD_ANSWER
    assert answer.model_extra["hybrid"]["tier"] == "cloud"  # type: ignore[index]
    assert answer.model_extra["hybrid"]["reason"] == "low_confidence"  # type: ignore[index]
    assert answer.choices[0].logprobs is None  # not asked for
    sent = cloud.chat_requests[-1]
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 20
    assert sent["temperature"] == 0


async def test_streaming_sends_chunks_then_the_decision(hybrid: ChatHybrid) -> None:
    app = create_app(hybrid)
    stream = await openai_client(app).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": HARD}],
        stream=True,
        logprobs=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == CLOUD_ANSWER
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].choices[0].finish_reason == "stop"
    assert finished[0].model_extra["hybrid"]["tier"] == "cloud"  # type: ignore[index]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert any(c.choices and c.choices[0].logprobs for c in chunks)
    assert len({c.id for c in chunks}) == 1


async def test_tools_reach_the_model_and_come_back_as_tool_calls(hybrid: ChatHybrid) -> None:
    app = create_app(hybrid)
    answer = await openai_client(app).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="auto",
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


async def test_streamed_tool_calls_arrive_as_openai_deltas(hybrid: ChatHybrid) -> None:
    stream = await openai_client(create_app(hybrid)).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    chunks = [c async for c in stream]
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert calls and calls[0].id and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    arguments = "".join(t.function.arguments or "" for t in calls if t.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert {t.index for t in calls} == {0}
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["tool_calls"]


async def test_tools_on_a_model_without_tool_calling_is_422() -> None:
    app = create_app(FakeLocalChatModel())
    async with asgi_client(app) as client:
        r = await client.post("/v1/chat/completions", json=ask("Hi", tools=[WEATHER_TOOL]))
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "tools"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (ask("Hi", n=2), 400, "n"),
        (ask("Hi", temperature=5), 400, "temperature"),
        (ask("Hi", max_tokens=0), 400, "max_tokens"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages"),
        (ask("Hi", model="gpt-5"), 404, "model"),
        (ask("Hi", tool_choice="required"), 400, "tool_choice"),
    ],
)
async def test_bad_requests_get_openai_errors(
    hybrid: ChatHybrid, body: dict[str, Any], status: int, param: str
) -> None:
    async with asgi_client(create_app(hybrid)) as client:
        r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]
    assert "Traceback" not in r.text


async def test_malformed_json_and_unknown_paths() -> None:
    async with asgi_client(create_app(FakeLocalChatModel())) as client:
        bad = await client.post("/v1/chat/completions", content=b"{not json")
        missing = await client.get("/v1/nothing")
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


async def test_openai_client_raises_its_typed_errors(hybrid: ChatHybrid) -> None:
    client = openai_client(create_app(hybrid))
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], n=3
        )
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="other", messages=[{"role": "user", "content": "Hi"}]
        )


async def test_body_over_the_limit_is_413() -> None:
    app = create_app(FakeLocalChatModel(), ServerSettings(max_body_bytes=200))
    async with asgi_client(app) as client:
        r = await client.post("/v1/chat/completions", json=ask("x" * 500))
        ok = await client.post("/v1/chat/completions", json=ask("Hi"))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert ok.status_code == 200


async def test_api_key_auth() -> None:
    app = create_app(FakeLocalChatModel(), ServerSettings(api_keys=frozenset({"secret"})))
    async with asgi_client(app) as client:
        anonymous = await client.post("/v1/chat/completions", json=ask("Hi"))
        wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        health = await client.get("/healthz")
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert health.status_code == 200  # load balancers probe without a key
    with pytest.raises(openai.AuthenticationError):
        await openai_client(app, api_key="nope").models.list()
    models = await openai_client(app, api_key="secret").models.list()
    assert [m.id for m in models.data] == [MODEL]


async def test_api_keys_from_the_environment() -> None:
    settings = ServerSettings.from_env({"LANGCHAIN_HYBRID_API_KEYS": "k1,k2"})
    app = create_app(FakeLocalChatModel(), settings)
    async with asgi_client(app, Authorization="Bearer k2") as client:
        assert (await client.post("/v1/chat/completions", json=ask("Hi"))).status_code == 200


class GatedModel(GenericFakeChatModel):
    """Answers only once the test opens the gate (to hold requests in flight)."""

    gate: Any = None

    async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
        await self.gate.wait()
        return await super()._agenerate(*args, **kwargs)


async def test_overload_answers_429_with_retry_after_and_never_hangs() -> None:
    gate = asyncio.Event()
    model = GatedModel(messages=iter(["ok"] * 10), gate=gate)
    app = create_app(model, ServerSettings(max_concurrency=1, max_queue=1, retry_after_s=3))
    async with asgi_client(app) as client:
        held = [asyncio.create_task(client.post("/v1/chat/completions", json=ask("Hi")))]
        held.append(asyncio.create_task(client.post("/v1/chat/completions", json=ask("Hi"))))
        while app.state.admission.admitted < 2:
            await asyncio.sleep(0.01)
        rejected = await asyncio.wait_for(
            client.post("/v1/chat/completions", json=ask("Hi")), timeout=5
        )
        gate.set()
        answered = await asyncio.gather(*held)
        after = await client.post("/v1/chat/completions", json=ask("Hi"))
        metrics = (await client.get("/metrics")).text
    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "3"
    assert rejected.json()["error"]["type"] == "rate_limit_error"
    assert [r.status_code for r in answered] == [200, 200] and after.status_code == 200
    assert "langchain_hybrid_rejected_requests_total 1.0" in metrics


async def test_metrics_reflect_the_requests_sent(hybrid: ChatHybrid) -> None:
    app = create_app(hybrid)
    client = openai_client(app)
    for text in (EASY, EASY, HARD):
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )
    async with asgi_client(app) as http:
        text = (await http.get("/metrics")).text
    assert 'langchain_hybrid_tier_requests_total{tier="local"} 2.0' in text
    assert 'langchain_hybrid_tier_requests_total{tier="cloud"} 1.0' in text
    assert 'langchain_hybrid_route_requests_total{reason="confident"} 2.0' in text
    assert 'langchain_hybrid_route_requests_total{reason="low_confidence"} 1.0' in text
    assert "langchain_hybrid_escalations_total 1.0" in text
    assert "langchain_hybrid_escalation_rate 0.3333" in text
    assert (
        'langchain_hybrid_request_duration_seconds_count{stream="false",tier="local"} 2.0' in text
    )
    assert (
        'langchain_hybrid_http_requests_total{path="/v1/chat/completions",status="200"} 3.0' in text
    )


async def test_both_tiers_failing_is_503_with_both_causes(cloud: MockOpenAI) -> None:
    cloud.responder = lambda body: Fault(status=500)
    local = make_chat_openai(
        MockOpenAI(responder=lambda body: Fault(status=500)), model="local-small", logprobs=True
    )
    app = create_app(ChatHybrid(local=local, cloud=make_chat_openai(cloud)))
    async with asgi_client(app) as client:
        r = await client.post("/v1/chat/completions", json=ask(EASY))
        s = await client.post("/v1/chat/completions", json=ask(EASY, stream=True))
    for response in (r, s):
        assert response.status_code == 503
        assert "Both tiers failed" in response.json()["error"]["message"]


async def test_cloud_fault_degrades_to_the_local_answer(
    hybrid: ChatHybrid, cloud: MockOpenAI
) -> None:
    cloud.responder = lambda body: Fault(status=503)
    answer = await openai_client(create_app(hybrid)).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": HARD}]
    )
    assert answer.choices[0].message.content == "It was Charles Dickens."
    assert answer.model_extra["hybrid"]["degraded"] is True  # type: ignore[index]


async def test_a_plain_model_is_served_without_a_decision() -> None:
    app = create_app(FakeLocalChatModel(messages=iter(["Hello there."])))
    async with asgi_client(app) as client:
        r = await client.post("/v1/chat/completions", json=ask("Hi", logprobs=True))
    body = ChatCompletion.model_validate(r.json())
    assert body.choices[0].message.content == "Hello there."
    assert body.choices[0].logprobs and body.choices[0].logprobs.content
    assert "hybrid" not in r.json() and "x-hybrid-tier" not in r.headers


def test_served_tier_through_chat_openai(hybrid: ChatHybrid) -> None:
    """ChatOpenAI against the server (the served tier of another router), with log-probs."""
    app = create_app(hybrid)
    llm = ChatOpenAI(
        model=MODEL,
        api_key="none",  # type: ignore[arg-type]
        base_url="http://server/v1",
        logprobs=True,
        max_retries=0,
        http_async_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
        http_socket_options=(),
    )
    message = asyncio.run(llm.ainvoke(EASY))
    assert message.content == LOCAL_ANSWER
    assert message.response_metadata["logprobs"]["content"][0]["logprob"] == pytest.approx(-0.05)
