from typing import Any

import pytest

from langchain_hybrid import ChatTransformers


@pytest.fixture(scope="session")
def local_llm() -> ChatTransformers:
    """The embedded model, loaded once per test session (every instance shares the weights)."""
    return ChatTransformers(max_tokens=48)


@pytest.fixture(scope="session")
def embedded_tokenizer(local_llm: ChatTransformers) -> Any:
    return local_llm._loaded.tokenizer
