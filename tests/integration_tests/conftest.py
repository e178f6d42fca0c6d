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


@pytest.fixture
def engine_batch_sizes(local_llm: ChatTransformers, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the embedded model's engine runs during the test, in order."""
    engine = local_llm._engine
    sizes: list[int] = []
    run_batch = engine._run_batch

    def recording(batch: list[Any]) -> None:
        sizes.append(len(batch))
        run_batch(batch)

    monkeypatch.setattr(engine, "_run_batch", recording)
    return sizes
