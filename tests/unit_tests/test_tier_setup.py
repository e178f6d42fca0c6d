"""What ChatHybrid accepts as local= and cloud=, and the one-sentence errors for the rest."""

from __future__ import annotations

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_openai import ChatOpenAI

from langchain_hybrid import ChatHybrid
from langchain_hybrid.errors import TierSettingError

FAKE = FakeListChatModel(responses=["x"])


@pytest.fixture(autouse=True)
def _offline_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LANGCHAIN_OPENAI_TCP_KEEPALIVE", "0")  # no probe socket


@pytest.mark.parametrize("name", ["gpt-4o", "openai:gpt-4o-mini"])
def test_a_cloud_model_name_goes_through_init_chat_model(name: str) -> None:
    llm = ChatHybrid(local=FAKE, cloud=name)
    assert isinstance(llm.cloud, ChatOpenAI)
    assert llm.cloud.model_name == name.removeprefix("openai:")
    assert llm.cloud.logprobs is True  # asked for log-probs like any ChatOpenAI tier


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"local": FAKE}, "ChatHybrid needs cloud=: the model it escalates to"),
        ({"local": FAKE, "cloud": None}, "ChatHybrid needs cloud=: the model it escalates to"),
        ({"local": 42, "cloud": FAKE}, "local= must be a chat model or a model name, got int"),
        ({"local": FAKE, "cloud": 3.5}, "cloud= must be a chat model or a model name, got float"),
        ({"local": FAKE, "cloud": "  "}, "cloud= is an empty model name"),
        ({"local": "", "cloud": FAKE}, "local= is an empty model name"),
        ({"local": FAKE, "cloud": "nosuch:model"}, "is not a model init_chat_model can build"),
    ],
)
def test_tier_mistakes_are_one_typed_sentence(settings: dict[str, object], message: str) -> None:
    with pytest.raises(TierSettingError, match=message) as caught:
        ChatHybrid(**settings)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
    assert "\n" not in str(caught.value)
