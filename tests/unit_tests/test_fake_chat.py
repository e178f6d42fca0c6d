"""The fake local tier answers like a local chat model: log-probs per token, no tools."""

from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from tests.support.fake_chat import FakeLocalChatModel


def _tokens_and_logprobs(metadata: dict[str, Any]) -> list[tuple[str, float]]:
    return [(e["token"], e["logprob"]) for e in metadata["logprobs"]["content"]]


def test_invoke_carries_openai_shaped_logprobs() -> None:
    llm = FakeLocalChatModel(messages=iter(["Paris.", "Lyon"]), logprob=-0.2)

    first, second = llm.invoke("Capital of France?"), llm.invoke("And the second city?")

    assert (first.content, second.content) == ("Paris.", "Lyon")
    assert _tokens_and_logprobs(first.response_metadata) == [("Paris", -0.2), (".", -0.2)]
    entry = first.response_metadata["logprobs"]["content"][0]
    assert entry["bytes"] == list(b"Paris") and entry["top_logprobs"] == []
    assert first.response_metadata["model_name"] == "fake-local"
    assert first.usage_metadata is not None and first.usage_metadata["output_tokens"] == 2


def test_stream_adds_up_to_the_answer() -> None:
    chunks = list(FakeLocalChatModel(messages=iter(["The capital is Paris."])).stream("q"))

    assert [c.content for c in chunks if c.content] == ["The", " capital", " is", " Paris", "."]
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk) and total.content == "The capital is Paris."
    assert [t for t, _ in _tokens_and_logprobs(total.response_metadata)] == [
        "The",
        " capital",
        " is",
        " Paris",
        ".",
    ]
    assert total.response_metadata["model_name"] == "fake-local"
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 5
    assert chunks[-1].chunk_position == "last"


def test_cannot_call_tools() -> None:
    def get_weather(city: str) -> str:
        """Get the weather of a city."""
        return "sunny"

    with pytest.raises(NotImplementedError, match="cannot call tools"):
        FakeLocalChatModel().bind_tools([get_weather])
