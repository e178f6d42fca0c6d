"""quantization="dynamic-int8" on the embedded model: torch's dynamic int8 layers in the engine."""

import math
import warnings

import pytest
import torch
from langchain_core.messages import AIMessage

from langchain_hybrid import ChatTransformers

# The same length in tokens: with left padding, torch's one activation scale per tensor
# takes in the pad rows and answers can change (docs/scale-out.md).
QUESTIONS = ["What is the capital of France?", "What is the capital of Spain?"]


@pytest.fixture(scope="module")
def dynamic_llm() -> ChatTransformers:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        llm = ChatTransformers(quantization="dynamic-int8", max_tokens=24, top_logprobs=2)
        ChatTransformers(quantization="dynamic-int8", max_tokens=8)  # the same weights again
    # torch's own deprecation warnings are caught; ours says it once, if this process
    # had not quantised before.
    assert not [w for w in caught if "torch.ao.quantization is deprecated" in str(w.message)]
    assert len([w for w in caught if issubclass(w.category, FutureWarning)]) <= 1
    return llm


def _check_openai_logprobs(message: AIMessage) -> None:
    entries = message.response_metadata["logprobs"]["content"]
    assert entries
    assert "".join(e["token"] for e in entries) == message.content
    for entry in entries:
        assert isinstance(entry["logprob"], float)
        assert math.isfinite(entry["logprob"]) and entry["logprob"] <= 0.0
        assert bytes(entry["bytes"]).decode("utf-8", "replace")
        top = entry["top_logprobs"]
        assert len(top) == 2
        assert top[0]["bytes"] == entry["bytes"]  # greedy picks the most likely token
        assert top[0]["logprob"] >= top[1]["logprob"]


def test_linear_layers_are_dynamic_int8(dynamic_llm: ChatTransformers) -> None:
    model = dynamic_llm._loaded.model
    quantized = torch.ao.nn.quantized.dynamic.Linear
    assert isinstance(model.lm_head, quantized)
    assert all(
        not isinstance(m, torch.nn.Linear) or isinstance(m, quantized) for m in model.modules()
    )
    assert model.model.embed_tokens.weight.dtype == torch.float32


def test_batch_of_two_answers_with_openai_logprobs(dynamic_llm: ChatTransformers) -> None:
    answers = dynamic_llm.batch(QUESTIONS)
    assert "Paris" in answers[0].content and "Madrid" in answers[1].content
    for message in answers:
        assert isinstance(message, AIMessage)
        _check_openai_logprobs(message)
        assert message.usage_metadata is not None
        assert message.usage_metadata["output_tokens"] >= len(
            message.response_metadata["logprobs"]["content"]
        )


def test_stream_matches_invoke(dynamic_llm: ChatTransformers) -> None:
    invoked = dynamic_llm.invoke(QUESTIONS[0])
    chunks = list(dynamic_llm.stream(QUESTIONS[0]))
    assert len(chunks) > 2
    assert "".join(str(c.content) for c in chunks) == invoked.content
    _check_openai_logprobs(invoked)
