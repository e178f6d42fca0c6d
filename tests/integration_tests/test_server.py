"""The server over real HTTP on 127.0.0.1: uvicorn, the real ``openai`` client and
``ChatOpenAI(base_url=...)`` as clients, the embedded model as the local tier, and the
fake OpenAI server as the cloud."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from statistics import fmean
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from langchain_hybrid import ChatHybrid, ChatTransformers, RouteDecision
from langchain_hybrid.server import ServerSettings, create_app, serve_in_thread
from tests.support.fixtures import make_chat_openai
from tests.support.openai_server import FakeOpenAIServer, ScriptedReply

ROOT = Path(__file__).parents[2]
QUESTION = "What is the capital of France?"
CLOUD_ANSWER = "Paris is the capital of France."


@pytest.fixture
def cloud(openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    openai_server.default_reply = ScriptedReply(CLOUD_ANSWER, logprobs=-0.01)
    return openai_server


def hybrid(local: Any, cloud: FakeOpenAIServer, **kw: Any) -> ChatHybrid:
    return ChatHybrid(local=local, cloud=make_chat_openai(cloud, stream_usage=True), **kw)


def client(base_url: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=kw.pop("api_key", "none"), max_retries=0, **kw)


def test_openai_client_json_and_streaming(
    local_llm: ChatTransformers, cloud: FakeOpenAIServer
) -> None:
    app = create_app(hybrid(local_llm.model_copy(update={"max_tokens": 8}), cloud))
    with serve_in_thread(app) as server:
        api = client(server.base_url)
        raw = api.chat.completions.with_raw_response.create(
            model="langchain-hybrid",
            messages=[{"role": "user", "content": QUESTION}],
            logprobs=True,
            top_logprobs=2,
        )
        answer = raw.parse()
        stream = api.chat.completions.create(
            model="langchain-hybrid",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert isinstance(answer, ChatCompletion) and answer.choices[0].message.content
    decision = RouteDecision.from_dict(answer.model_extra["hybrid"])  # type: ignore[index]
    assert raw.headers["x-hybrid-tier"] == decision.tier
    assert raw.headers["x-hybrid-reason"] == decision.reason
    if decision.tier == "local":
        entries = answer.choices[0].logprobs.content  # type: ignore[union-attr]
        assert entries and all(len(e.top_logprobs) == 2 for e in entries)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert last.model_extra["hybrid"]["tier"] in ("local", "cloud")  # type: ignore[index]
    assert chunks[-1].usage is not None


def test_concurrent_requests_are_batched_by_the_engine(
    local_llm: ChatTransformers, engine_batch_sizes: list[int], cloud: FakeOpenAIServer
) -> None:
    app = create_app(local_llm.model_copy(update={"max_tokens": 8}), ServerSettings(model_name="m"))

    async def send_all(base_url: str) -> list[ChatCompletion]:
        api = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0)
        questions = [f"Name a colour, number {i}." for i in range(6)]
        return await asyncio.gather(
            *(
                api.chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
                for q in questions
            )
        )

    with serve_in_thread(app) as server:
        answers = asyncio.run(send_all(server.base_url))
    assert all(a.choices[0].message.content for a in answers)
    assert sum(engine_batch_sizes) == 6
    # Concurrent requests shared generate calls.
    assert max(engine_batch_sizes) >= 2 and len(engine_batch_sizes) < 6


def test_served_local_tier_routes_on_the_served_logprobs(
    local_llm: ChatTransformers, cloud: FakeOpenAIServer
) -> None:
    """Our server running ChatTransformers is the local tier of another ChatHybrid."""
    app = create_app(
        local_llm.model_copy(update={"max_tokens": 12}), ServerSettings(model_name="smollm2")
    )
    with serve_in_thread(app) as server:
        served = ChatOpenAI(
            base_url=server.base_url,
            api_key="none",
            model="smollm2",
            logprobs=True,
            max_retries=0,  # type: ignore[arg-type]
        )
        kept = hybrid(served, cloud, threshold=-100.0).invoke(QUESTION)
        escalated = hybrid(served, cloud, threshold=0.0).invoke(QUESTION)
    decision = RouteDecision.from_dict(kept.response_metadata["routing"])
    assert (decision.tier, decision.reason) == ("local", "confident")
    entries = kept.response_metadata["logprobs"]["content"]
    assert entries and decision.confidence == pytest.approx(
        fmean(e["logprob"] for e in entries), abs=1e-6
    )
    assert escalated.response_metadata["routing"]["reason"] == "low_confidence"
    assert escalated.content == CLOUD_ANSWER


def test_auth_over_http(cloud: FakeOpenAIServer) -> None:
    model = GenericFakeChatModel(messages=iter(["Hello."] * 3))
    app = create_app(model, ServerSettings(api_keys=frozenset({"k"})))
    with serve_in_thread(app) as server:
        with pytest.raises(openai.AuthenticationError):
            client(server.base_url).chat.completions.create(
                model="langchain-hybrid", messages=[{"role": "user", "content": "Hi"}]
            )
        answer = client(server.base_url, api_key="k").chat.completions.create(
            model="langchain-hybrid", messages=[{"role": "user", "content": "Hi"}]
        )
        llm = ChatOpenAI(base_url=server.base_url, api_key="k", model="langchain-hybrid")  # type: ignore[arg-type]
        assert llm.invoke("Hi").content == "Hello."
    assert answer.choices[0].message.content == "Hello."


class Held(GenericFakeChatModel):
    """Answers once ``release`` is set (holds requests in flight)."""

    release: Any = None

    async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return await super()._agenerate(*args, **kwargs)


def test_overload_is_429_with_retry_after_for_the_openai_client(cloud: FakeOpenAIServer) -> None:
    release = threading.Event()
    app = create_app(
        Held(messages=iter(["ok"] * 5), release=release),
        ServerSettings(max_concurrency=1, max_queue=0, retry_after_s=2),
    )
    with serve_in_thread(app) as server:
        api = client(server.base_url)
        body = {"model": "langchain-hybrid", "messages": [{"role": "user", "content": "Hi"}]}
        first = threading.Thread(target=lambda: api.chat.completions.create(**body))
        first.start()
        while app.state.admission.admitted < 1:
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as info:
            api.chat.completions.create(**body)
        release.set()
        first.join(10)
    assert info.value.response.headers["retry-after"] == "2"


class Endless(GenericFakeChatModel):
    """Streams until closed; sets ``closed`` when its stream is closed."""

    closed: Any = None

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        try:
            while True:
                yield ChatGenerationChunk(message=AIMessageChunk(content="tick "))
                await asyncio.sleep(0.01)
        finally:
            self.closed.set()


def test_client_disconnect_cancels_the_stream(cloud: FakeOpenAIServer) -> None:
    closed = threading.Event()
    app = create_app(Endless(messages=iter([]), closed=closed))
    with serve_in_thread(app) as server:
        body = {
            "model": "langchain-hybrid",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
        }
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if "tick" in line:
                    break
        assert closed.wait(10)
        deadline = time.monotonic() + 5
        while app.state.admission.admitted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.state.admission.admitted == 0


def test_local_generation_stops_when_the_client_goes_away(
    local_llm: ChatTransformers, cloud: FakeOpenAIServer
) -> None:
    engine = local_llm._engine
    app = create_app(
        local_llm.model_copy(update={"max_tokens": 400}), ServerSettings(model_name="m")
    )
    with serve_in_thread(app) as server:
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "Write a long story."}],
            "stream": True,
        }
        with httpx.stream(
            "POST", f"{server.base_url}/chat/completions", json=body, timeout=60
        ) as r:
            for line in r.iter_lines():
                if '"content"' in line:
                    break
        deadline = time.monotonic() + 20
        while (engine._running or engine._queue) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not engine._running and not engine._queue  # cancelled, not 400 tokens later


# --------------------------------------------------------------------------- the CLI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cli_env(cloud: FakeOpenAIServer) -> dict[str, str]:
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": cloud.base_url}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def served_cli(cli_env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "langchain_hybrid", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--max-tokens", "8", "--model-name", "m", "--log-level", "warning"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def test_serve_command_answers_the_openai_client(served_cli: str) -> None:
    answer = client(served_cli).chat.completions.create(
        model="m", messages=[{"role": "user", "content": QUESTION}]
    )
    assert answer.choices[0].message.content
    assert answer.model_extra["hybrid"]["tier"] in ("local", "cloud")  # type: ignore[index]
    metrics = httpx.get(served_cli.removesuffix("/v1") + "/metrics").text
    assert "langchain_hybrid_tier_requests_total" in metrics


def test_chat_command_answers_piped_questions(cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "langchain_hybrid", "chat", "--max-tokens", "8"],
        input=f"{QUESTION}\n/quit\n",
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 2 and lines[-1].startswith(("[local | ", "[cloud | "))
    assert "confidence" in lines[-1]
