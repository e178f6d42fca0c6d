"""LangChain's standard unit tests for ChatHybrid.

The tiers need no weights and no socket: a :class:`FakeLocalChatModel` (log-probs,
no tools, like ``ChatTransformers``) as the local tier and a real ``ChatOpenAI``
answered by a :class:`MockOpenAI` as the cloud tier. ChatHybrid with the real
embedded model passes LangChain's standard integration tests in
``tests/integration_tests``.
"""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_hybrid import ChatHybrid
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_mock import MockOpenAI

_CLOUD = MockOpenAI()


class TestChatHybridStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatHybrid]:
        return ChatHybrid

    @property
    def chat_model_params(self) -> dict[str, Any]:
        cloud = make_chat_openai(_CLOUD, model="gpt-4o")
        return {"local": FakeLocalChatModel(), "cloud": cloud, "threshold": -0.6}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # Generation settings belong to the tiers (ChatHybrid rejects them with an error
        # that says so); per-call settings reach both tiers.
        return {}

    @property
    def has_tool_calling(self) -> bool:
        # Tools are bound on both tiers; a local tier that cannot call them sends the
        # request to the cloud tier (reason "local_unsupported").
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A per-call ``model`` would have to mean a model of one tier; ChatHybrid forwards
        # call kwargs to whichever tier answers, so it only names the model in traces.
        return False


def test_standard_params_describe_both_tiers() -> None:
    params = TestChatHybridStandard().chat_model_params
    llm = ChatHybrid(**params)
    ls = llm._get_ls_params()
    assert ls["ls_provider"] == "langchain-hybrid"
    assert ls["ls_model_name"] == f"{params['local'].model_name}|gpt-4o"
    assert ls["ls_model_type"] == "chat"
    assert llm._llm_type == "hybrid-chat"
