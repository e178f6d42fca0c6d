"""The socket-free fake OpenAI API (``MockOpenAI``) works with the real ChatOpenAI and openai.

The tests of :class:`OpenAIContract` run here against :class:`MockOpenAI` and in
``tests/integration_tests/test_support_servers.py`` against the HTTP
:class:`FakeOpenAIServer`, with the same script and the same assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from tests.support.fixtures import make_chat_openai
from tests.support.openai_contract import CONTENT, TOKENS, OpenAIContract
from tests.support.openai_fake import Fault, ScriptedReply, split_tokens
from tests.support.openai_mock import MockOpenAI


class TestMockOpenAI(OpenAIContract):
    @pytest.fixture
    def fake_openai(self) -> MockOpenAI:
        return MockOpenAI()


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


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_transport_read_timeout_comes_from_the_request() -> None:
    mock = MockOpenAI()
    mock.enqueue(Fault(delay_s=30), ScriptedReply("in time", fault=Fault(delay_s=0.01)))
    with httpx.Client(transport=mock.transport(), base_url=mock.base_url) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/chat/completions", json=CHAT, timeout=httpx.Timeout(5, read=0.05))
        answer = client.post("/chat/completions", json=CHAT, timeout=httpx.Timeout(5, read=1))
    assert answer.json()["choices"][0]["message"]["content"] == "in time"


def test_stream_chunk_delay_beyond_read_timeout_times_out_mid_stream() -> None:
    mock = MockOpenAI()
    mock.enqueue(ScriptedReply(CONTENT, fault=Fault(chunk_delay_s=30)))
    with httpx.Client(transport=mock.transport(), base_url=mock.base_url) as client:
        body = {**CHAT, "stream": True}
        with client.stream("POST", "/chat/completions", json=body, timeout=0.05) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")  # the first event comes at once
            with pytest.raises(httpx.ReadTimeout):
                list(lines)


async def test_async_transport_drops_like_a_connection() -> None:
    mock = MockOpenAI()
    mock.enqueue(Fault(drop=True), ScriptedReply(CONTENT, fault=Fault(drop_after_chunks=2)))
    async with httpx.AsyncClient(
        transport=mock.async_transport(), base_url=mock.base_url
    ) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.post("/chat/completions", json=CHAT)
        body = {**CHAT, "stream": True}
        events: list[str] = []
        async with client.stream("POST", "/chat/completions", json=body) as response:
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                async for line in response.aiter_lines():
                    if line:
                        events.append(line)
    assert len(events) == 2


async def test_async_delay_does_not_hold_up_other_calls() -> None:
    mock = MockOpenAI()
    mock.enqueue(ScriptedReply("slow", fault=Fault(delay_s=5)), "quick")
    llm = make_chat_openai(mock)

    slow = asyncio.create_task(llm.ainvoke("first"))
    while not mock.chat_requests:  # the slow request is in and waiting
        await asyncio.sleep(0.001)
    quick = asyncio.create_task(llm.ainvoke("second"))
    done, _ = await asyncio.wait({slow, quick}, return_when=asyncio.FIRST_COMPLETED)
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow

    assert done == {quick}
    assert quick.result().content == "quick"


def test_a_failing_responder_surfaces_in_the_test_and_is_recorded() -> None:
    def responder(body: dict[str, Any]) -> str:
        raise KeyError("oops")

    mock = MockOpenAI(responder=responder)
    with pytest.raises(KeyError, match="oops"):
        make_chat_openai(mock).invoke("hi")
    assert len(mock.errors) == 1 and "KeyError" in mock.errors[0]
