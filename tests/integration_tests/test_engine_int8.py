"""quantization="int8" on the embedded model: int8 weights through torch's CPU kernel."""

import math

import pytest
import torch
from langchain_core.messages import AIMessage

from langchain_hybrid import ChatTransformers
from langchain_hybrid._int8 import Int8WeightLinear
from langchain_hybrid.routing import compute_features

QUESTION = "What is the capital of France?"
LONGER = "Write one long sentence about the history of the city of Madrid in Spain."


@pytest.fixture(scope="module")
def int8_llm() -> ChatTransformers:
    return ChatTransformers(quantization="int8", max_tokens=24, top_logprobs=2)


def _mean_logprob(message: AIMessage) -> float:
    """The gate's default confidence feature of ``message``."""
    return compute_features(message.response_metadata["logprobs"])["mean_logprob"]


def test_every_linear_layer_holds_int8_weights(int8_llm: ChatTransformers) -> None:
    model = int8_llm._loaded.model
    assert isinstance(model.lm_head, Int8WeightLinear)
    assert not [m for m in model.modules() if type(m) is torch.nn.Linear]
    # Activations run in bfloat16 (what makes the kernel fast); the embedding table
    # keeps its bfloat16 weights.
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16


def test_answers_with_openai_logprobs(int8_llm: ChatTransformers) -> None:
    message = int8_llm.invoke(QUESTION)
    assert "Paris" in message.content
    entries = message.response_metadata["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == message.content
    for entry in entries:
        assert math.isfinite(entry["logprob"]) and entry["logprob"] <= 0.0
        top = entry["top_logprobs"]
        assert len(top) == 2 and top[0]["bytes"] == entry["bytes"]


def test_an_answer_does_not_depend_on_its_batch_mates(int8_llm: ChatTransformers) -> None:
    # Weights only are quantised, so unlike dynamic-int8 a batch-mate of another length
    # leaves the answer as it is.
    alone = int8_llm.invoke(QUESTION)
    in_batch = int8_llm.batch([QUESTION, LONGER])[0]
    assert in_batch.content == alone.content


def test_confidence_stays_close_to_float32(
    int8_llm: ChatTransformers, local_llm: ChatTransformers
) -> None:
    # The gate's threshold was calibrated on float32 log-probs: int8 weights move the
    # mean log-prob of the same answer by little (0.06 here).
    int8_answer = int8_llm.invoke(QUESTION)
    float_answer = local_llm.invoke(QUESTION, max_tokens=24)
    assert int8_answer.content == float_answer.content
    assert abs(_mean_logprob(int8_answer) - _mean_logprob(float_answer)) < 0.15
