"""Behaviour of ChatTransformers on the real embedded model."""

import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from langchain_hybrid import ChatTransformers
from langchain_hybrid.chat_models._generation import GenerationRequest, SamplingSettings

PROMPTS = [
    "What is the capital of France?",
    "Name three colours.",
    "What is 12 times 12?",
    "Write one sentence about the sea.",
]


def _inputs(prompts: list[str]) -> list[LanguageModelInput]:
    """The prompts as ``batch`` inputs (``list`` is invariant, so ``list[str]`` is not one)."""
    return list(prompts)


def _stream_sum(llm: ChatTransformers, prompt: str, **kw: Any) -> AIMessageChunk:
    full = None
    for chunk in llm.stream(prompt, **kw):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None
    return full


def test_logprobs_match_a_separate_forward_pass(local_llm: ChatTransformers) -> None:
    message = local_llm.invoke(PROMPTS[0])
    entries = message.response_metadata["logprobs"]["content"]
    assert entries and "".join(e["token"] for e in entries) == message.content

    tokenizer = local_llm._loaded.tokenizer
    model = local_llm._loaded.model
    prompt_ids = local_llm._prompt_ids([HumanMessage(PROMPTS[0])])
    answer_ids = tokenizer(message.content, add_special_tokens=False)["input_ids"]
    # The re-tokenised answer is the generated sequence (same bytes, token by token).
    assert [bytes(e["bytes"]) for e in entries] == [
        local_llm._engine.token_bytes(i) for i in answer_ids
    ]
    with torch.inference_mode():
        logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids)
    expected = sum(logprobs[start + i - 1, token].item() for i, token in enumerate(answer_ids))
    assert math.isclose(sum(e["logprob"] for e in entries), expected, abs_tol=1e-3)


def test_top_logprobs(local_llm: ChatTransformers) -> None:
    message = local_llm.invoke(PROMPTS[0], top_logprobs=3)
    for entry in message.response_metadata["logprobs"]["content"]:
        top = entry["top_logprobs"]
        assert len(top) == 3
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        # Greedy decoding picks the most likely token.
        assert top[0]["bytes"] == entry["bytes"]
        assert math.isclose(top[0]["logprob"], entry["logprob"], abs_tol=1e-6)


def test_response_and_usage_metadata(local_llm: ChatTransformers) -> None:
    message = local_llm.invoke(PROMPTS[0])
    assert isinstance(message, AIMessage)
    assert message.response_metadata["model_name"] == "SmolLM2-135M-Instruct"
    assert message.response_metadata["finish_reason"] == "stop"
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == len(local_llm._prompt_ids([HumanMessage(PROMPTS[0])]))
    # The end-of-turn token is generated (counted) but not part of the text or log-probs.
    assert usage["output_tokens"] == len(message.response_metadata["logprobs"]["content"]) + 1
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_length_finish_reason(local_llm: ChatTransformers) -> None:
    message = local_llm.invoke(PROMPTS[3], max_tokens=3)
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata and message.usage_metadata["output_tokens"] == 3


def test_stream_equals_invoke(local_llm: ChatTransformers) -> None:
    for prompt in PROMPTS[:2]:
        invoked = local_llm.invoke(prompt, top_logprobs=2)
        streamed = _stream_sum(local_llm, prompt, top_logprobs=2)
        assert streamed.content == invoked.content
        assert streamed.response_metadata["logprobs"] == invoked.response_metadata["logprobs"]
        assert (
            streamed.response_metadata["finish_reason"]
            == invoked.response_metadata["finish_reason"]
        )
        assert streamed.usage_metadata == invoked.usage_metadata
        assert streamed.chunk_position == "last"


def test_stream_yields_token_by_token(local_llm: ChatTransformers) -> None:
    chunks = list(local_llm.stream(PROMPTS[3]))
    assert len(chunks) > 5
    assert chunks[-1].chunk_position == "last"
    assert all(c.chunk_position is None for c in chunks[:-1])
    # Each content chunk carries the log-probs of exactly its own tokens.
    for chunk in chunks[:-1]:
        entries = chunk.response_metadata["logprobs"]["content"]
        assert "".join(e["token"] for e in entries) == chunk.content


def test_batch_equals_one_by_one(local_llm: ChatTransformers) -> None:
    sequential = [local_llm.invoke(p) for p in PROMPTS]
    batched = local_llm.batch(_inputs(PROMPTS))
    assert [m.content for m in batched] == [m.content for m in sequential]
    for b, s in zip(batched, sequential, strict=True):
        b_lp = [e["logprob"] for e in b.response_metadata["logprobs"]["content"]]
        s_lp = [e["logprob"] for e in s.response_metadata["logprobs"]["content"]]
        assert b_lp == pytest.approx(s_lp, abs=1e-3)
        assert b.usage_metadata == s.usage_metadata


def test_batch_runs_one_generate(
    local_llm: ChatTransformers, engine_batch_sizes: list[int]
) -> None:
    local_llm.batch(_inputs(PROMPTS * 2), max_tokens=4)
    assert engine_batch_sizes == [8]


async def test_abatch_equals_batch(local_llm: ChatTransformers) -> None:
    batched = local_llm.batch(_inputs(PROMPTS[:3]))
    abatched = await local_llm.abatch(_inputs(PROMPTS[:3]))
    assert [m.content for m in abatched] == [m.content for m in batched]


async def test_async_twins(local_llm: ChatTransformers) -> None:
    invoked = local_llm.invoke(PROMPTS[0])
    ainvoked = await local_llm.ainvoke(PROMPTS[0])
    assert ainvoked.content == invoked.content
    full = None
    async for chunk in local_llm.astream(PROMPTS[0]):
        full = chunk if full is None else full + chunk
    assert full is not None and full.content == invoked.content
    assert full.response_metadata["logprobs"] == invoked.response_metadata["logprobs"]


async def test_ainvoke_does_not_block_the_event_loop(local_llm: ChatTransformers) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await local_llm.ainvoke(PROMPTS[3], max_tokens=24)
    task.cancel()
    assert ticks > 5


def test_stop_sequences(local_llm: ChatTransformers) -> None:
    full = local_llm.invoke(PROMPTS[0]).content
    assert full == "The capital of France is Paris."
    stopped = local_llm.invoke(PROMPTS[0], stop=[" is"])
    assert stopped.content == "The capital of France"
    assert stopped.response_metadata["finish_reason"] == "stop"
    entries = stopped.response_metadata["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == stopped.content
    # Streaming honours the same stop, holding back text that might start it.
    streamed = _stream_sum(local_llm, PROMPTS[0], stop=[" is"])
    assert streamed.content == stopped.content
    assert streamed.response_metadata["logprobs"] == stopped.response_metadata["logprobs"]
    # A stop sequence inside a token cuts that token's text.
    mid = local_llm.invoke(PROMPTS[0], stop=["apit"])
    assert mid.content == "The c"
    # Constructor-level stop applies too.
    # (populate_by_name accepts the field name; type checkers only see its alias stop_sequences)
    constructed = ChatTransformers(stop=[" is"])  # type: ignore[call-arg]
    assert constructed.invoke(PROMPTS[0]).content == "The capital of France"


def test_concurrent_threads_do_not_corrupt_each_other(local_llm: ChatTransformers) -> None:
    expected = {p: local_llm.invoke(p).content for p in PROMPTS}
    barrier = threading.Barrier(len(PROMPTS) * 2)

    def call(prompt: str) -> tuple[str, str]:
        barrier.wait()
        return prompt, str(local_llm.invoke(prompt).content)

    with ThreadPoolExecutor(len(PROMPTS) * 2) as pool:
        results = list(pool.map(call, PROMPTS * 2))
    for prompt, content in results:
        assert content == expected[prompt]


async def test_concurrent_tasks(local_llm: ChatTransformers) -> None:
    expected = [local_llm.invoke(p).content for p in PROMPTS]
    results = await asyncio.gather(*(local_llm.ainvoke(p) for p in PROMPTS))
    assert [r.content for r in results] == expected


def test_closing_a_stream_stops_generation(local_llm: ChatTransformers) -> None:
    engine = local_llm._engine
    request = GenerationRequest(
        prompt_ids=local_llm._prompt_ids([HumanMessage("Write a long story about a dragon.")]),
        settings=SamplingSettings(max_new_tokens=200),
        streaming=True,
    )
    deltas = engine.submit(request).iter_deltas()
    next(deltas)
    deltas.close()
    result = request.wait()
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 10


def test_timeout_keeps_partial_answer(local_llm: ChatTransformers) -> None:
    message = local_llm.invoke("Write a long story about a dragon.", max_tokens=200, timeout=0.3)
    assert message.response_metadata["finish_reason"] == "timeout"
    assert message.usage_metadata and message.usage_metadata["output_tokens"] < 200


def test_sampling_with_seed_is_reproducible(local_llm: ChatTransformers) -> None:
    kw: dict[str, Any] = {"temperature": 1.0, "top_p": 0.95, "seed": 7, "max_tokens": 16}
    first = local_llm.invoke(PROMPTS[3], **kw).content
    assert local_llm.invoke(PROMPTS[3], **kw).content == first


def test_llm_cache(local_llm: ChatTransformers) -> None:
    set_llm_cache(InMemoryCache())
    try:
        llm = ChatTransformers(max_tokens=16, cache=True)
        first = llm.invoke(PROMPTS[1])
        second = llm.invoke(PROMPTS[1])
        assert second.content == first.content
        assert second.response_metadata["logprobs"] == first.response_metadata["logprobs"]
    finally:
        set_llm_cache(None)


def test_unicode_output_is_whole_characters(local_llm: ChatTransformers) -> None:
    message = local_llm.invoke("Write the word café and a snowman emoji.", max_tokens=32)
    # Only a character cut off by max_tokens may be incomplete (it is then shown as U+FFFD).
    assert "\ufffd" not in str(message.content).rstrip("\ufffd")
    assert "café" in str(message.content).lower()
    streamed = _stream_sum(local_llm, "Write the word café and a snowman emoji.", max_tokens=32)
    assert streamed.content == message.content


def test_streaming_flag_invoke_equals_invoke(local_llm: ChatTransformers) -> None:
    plain = local_llm.invoke(PROMPTS[0])
    streamed = ChatTransformers(max_tokens=48, streaming=True).invoke(PROMPTS[0])
    assert isinstance(streamed, AIMessage)
    assert streamed.content == plain.content
    assert streamed.response_metadata["logprobs"] == plain.response_metadata["logprobs"]
    assert streamed.response_metadata["finish_reason"] == "stop"
    assert streamed.usage_metadata == plain.usage_metadata
