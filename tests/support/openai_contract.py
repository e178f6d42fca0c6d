"""What the fake OpenAI API does for the real clients, checked for every way it is delivered.

:class:`OpenAIContract` holds tests written once against a ``fake_openai``
fixture; each lane subclasses it with its own delivery: the unit lane with the
socket-free :class:`~tests.support.openai_mock.MockOpenAI`, the integration lane
with the HTTP :class:`~tests.support.openai_server.FakeOpenAIServer`. Both
lanes passing the same tests is what makes the mock a faithful stand-in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk

from tests.support.fixtures import make_chat_openai, make_openai_client
from tests.support.openai_fake import FakeOpenAI, Fault, ScriptedReply, last_user_text

__all__ = ["CONTENT", "LOGPROBS", "TOKENS", "TOOL_CALLS", "OpenAIContract"]

CONTENT = "The capital of France is Paris."
TOKENS = ["The", " capital", " of", " France", " is", " Paris", "."]
LOGPROBS = [-0.01, -0.2, -0.03, -0.5, -0.04, -1.5, -0.001]
TOOL_CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"name": "get_time", "arguments": {"tz": "Europe/Paris"}, "id": "call_fixed"},
]


def _sum_chunks(chunks: Sequence[AIMessageChunk]) -> AIMessageChunk:
    assert chunks, "stream yielded nothing"
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def _tokens_of(logprobs: dict[str, Any]) -> list[str]:
    return [entry["token"] for entry in logprobs["content"]]


class OpenAIContract:
    """Tests of the fake OpenAI API through ``ChatOpenAI`` and ``openai.OpenAI``.

    Subclasses provide the ``fake_openai`` fixture (a fresh fake per test).
    """

    @pytest.fixture
    def fake_openai(self) -> FakeOpenAI:
        raise NotImplementedError("subclasses provide the fake_openai fixture")

    def test_invoke_returns_content_logprobs_and_usage(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(ScriptedReply(CONTENT, logprobs=LOGPROBS, prompt_tokens=11))
        llm = make_chat_openai(fake_openai, logprobs=True)

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

        (body,) = fake_openai.chat_requests
        assert body["logprobs"] is True
        assert body["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}
        assert fake_openai.requests[0].headers["authorization"] == "Bearer test-key"

    def test_no_logprobs_unless_requested(self, fake_openai: FakeOpenAI) -> None:
        msg = make_chat_openai(fake_openai).invoke("hi")
        assert msg.content == fake_openai.default_reply.content
        assert msg.response_metadata.get("logprobs") is None

    def test_top_logprobs(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(ScriptedReply(CONTENT, logprobs=LOGPROBS))
        llm = make_chat_openai(fake_openai, logprobs=True, top_logprobs=2)

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
        assert fake_openai.chat_requests[0]["top_logprobs"] == 2

    def test_stream_chunks_add_up_to_invoke(self, fake_openai: FakeOpenAI) -> None:
        reply = ScriptedReply(CONTENT, logprobs=LOGPROBS)
        fake_openai.enqueue(reply, reply)
        llm = make_chat_openai(fake_openai, logprobs=True, stream_usage=True)

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

        stream_body = fake_openai.chat_requests[1]
        assert stream_body["stream"] is True
        assert stream_body["stream_options"] == {"include_usage": True}

    def test_stream_without_usage_option_has_no_usage(self, fake_openai: FakeOpenAI) -> None:
        chunks = list(make_chat_openai(fake_openai).stream("hi"))
        total = _sum_chunks(chunks)
        assert total.content == fake_openai.default_reply.content
        assert isinstance(total, AIMessageChunk) and total.usage_metadata is None

    def test_tool_calls_invoke(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(ScriptedReply("", tool_calls=TOOL_CALLS))

        msg = make_chat_openai(fake_openai).invoke("weather and time in Paris?")

        assert isinstance(msg, AIMessage)
        assert msg.content == ""
        assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
            (t["name"], t["arguments"]) for t in TOOL_CALLS
        ]
        assert msg.tool_calls[1]["id"] == "call_fixed"
        assert msg.tool_calls[0]["id"]
        assert msg.response_metadata["finish_reason"] == "tool_calls"

    def test_tool_calls_stream(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(ScriptedReply("Let me check.", tool_calls=TOOL_CALLS))

        total = _sum_chunks(list(make_chat_openai(fake_openai).stream("weather?")))

        assert isinstance(total, AIMessageChunk)
        assert total.content == "Let me check."
        assert [(c["name"], c["args"]) for c in total.tool_calls] == [
            (t["name"], t["arguments"]) for t in TOOL_CALLS
        ]
        assert total.tool_calls[1]["id"] == "call_fixed"
        assert total.response_metadata["finish_reason"] == "tool_calls"

    def test_responder_answers_by_prompt(self, fake_openai: FakeOpenAI) -> None:
        def responder(body: dict[str, Any]) -> ScriptedReply | str:
            text = last_user_text(body)
            if "2+2" in text:
                return ScriptedReply("4", logprobs=-0.001)
            return f"echo: {text}"

        fake_openai.responder = responder
        fake_openai.enqueue("queued first")
        llm = make_chat_openai(fake_openai)

        assert llm.invoke("anything").content == "queued first"
        assert llm.invoke("what is 2+2?").content == "4"
        assert llm.invoke("hello").content == "echo: hello"
        assert fake_openai.pending == 0

    def test_rate_limit_then_success_retries(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(Fault(status=429), "recovered")
        llm = make_chat_openai(fake_openai, max_retries=1)

        start = time.monotonic()
        assert llm.invoke("hi").content == "recovered"
        assert time.monotonic() - start < 2.0  # Retry-After (10 ms) was honoured
        assert len(fake_openai.chat_requests) == 2

    def test_rate_limit_without_retries_raises(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(Fault(status=429, retry_after_s=3))
        with pytest.raises(openai.RateLimitError) as info:
            make_chat_openai(fake_openai).invoke("hi")
        assert info.value.status_code == 429
        assert info.value.response.headers["retry-after"] == "3"
        assert info.value.code == "rate_limit_exceeded"

    def test_server_error_raises_internal_server_error(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(Fault(status=500, error_message="boom"))
        with pytest.raises(openai.InternalServerError, match="boom"):
            make_chat_openai(fake_openai).invoke("hi")
        assert len(fake_openai.chat_requests) == 1

    def test_dropped_connection_raises_connection_error(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(Fault(drop=True))
        with pytest.raises(openai.APIConnectionError):
            make_chat_openai(fake_openai).invoke("hi")
        # The server keeps serving after a drop.
        assert make_chat_openai(fake_openai).invoke("hi").content

    def test_drop_mid_stream_raises_after_partial_output(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(ScriptedReply(CONTENT, fault=Fault(drop_after_chunks=3)))
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in make_chat_openai(fake_openai).stream("hi"):
                received.append(str(chunk.content))
        # Role chunk + two content chunks got through before the connection died.
        assert "".join(received) == "".join(TOKENS[:2])

    def test_delay_beyond_timeout_raises_timeout(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(Fault(delay_s=3.0))
        llm = make_chat_openai(fake_openai, timeout=0.2)

        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            llm.invoke("hi")
        assert time.monotonic() - start < 1.5

    def test_delay_within_timeout_succeeds(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(ScriptedReply("slow but fine", fault=Fault(delay_s=0.1)))
        assert make_chat_openai(fake_openai, timeout=5).invoke("hi").content == "slow but fine"

    def test_models_endpoint(self, fake_openai: FakeOpenAI) -> None:
        client = make_openai_client(fake_openai)
        assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]
        assert client.models.retrieve("gpt-4o").id == "gpt-4o"

    async def test_ainvoke_and_astream(self, fake_openai: FakeOpenAI) -> None:
        reply = ScriptedReply(CONTENT, logprobs=LOGPROBS)
        fake_openai.enqueue(reply, reply, ScriptedReply("", tool_calls=TOOL_CALLS[:1]))
        llm = make_chat_openai(fake_openai, logprobs=True, stream_usage=True)

        msg = await llm.ainvoke("capital?")
        chunks = [chunk async for chunk in llm.astream("capital?")]
        tool_msg = await llm.ainvoke("weather?")

        assert msg.content == CONTENT
        total = _sum_chunks(chunks)
        assert total.content == CONTENT
        assert total.response_metadata["logprobs"] == msg.response_metadata["logprobs"]
        assert isinstance(tool_msg, AIMessage)
        assert tool_msg.tool_calls[0]["args"] == TOOL_CALLS[0]["arguments"]

    async def test_async_faults(self, fake_openai: FakeOpenAI) -> None:
        fake_openai.enqueue(Fault(status=500), Fault(delay_s=3.0))
        with pytest.raises(openai.InternalServerError):
            await make_chat_openai(fake_openai).ainvoke("hi")
        with pytest.raises(openai.APITimeoutError):
            await make_chat_openai(fake_openai, timeout=0.2).ainvoke("hi")
