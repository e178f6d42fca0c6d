"""LangChain's standard unit tests for ChatHybrid.

The tiers are real: the embedded ``ChatTransformers`` as the local tier and a
``ChatOpenAI`` talking to a loopback :class:`FakeOpenAIServer` as the cloud tier. The
parameters are read from a class property, so the server is started lazily, once per
module, and closed when the module's tests are done.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_hybrid import ChatHybrid, ChatTransformers
from tests.support.openai_server import FakeOpenAIServer

_SERVER: FakeOpenAIServer | None = None
_LOCAL: ChatTransformers | None = None


def _server() -> FakeOpenAIServer:
    global _SERVER
    if _SERVER is None:
        _SERVER = FakeOpenAIServer().start()
    return _SERVER


def _local() -> ChatTransformers:
    global _LOCAL
    if _LOCAL is None:
        _LOCAL = ChatTransformers(max_tokens=16)
    return _LOCAL


@pytest.fixture(scope="module", autouse=True)
def _cloud_server_for_module() -> Iterator[None]:
    global _SERVER
    with pytest.MonkeyPatch.context() as mp:
        no_proxy = os.environ.get("NO_PROXY", "")
        mp.setenv("NO_PROXY", f"{no_proxy},127.0.0.1" if no_proxy else "127.0.0.1")
        _server()
        yield
        if _SERVER is not None:
            _SERVER.close()
            _SERVER = None


class TestChatHybridStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatHybrid]:
        return ChatHybrid

    @property
    def chat_model_params(self) -> dict[str, Any]:
        cloud = ChatOpenAI(
            base_url=_server().base_url, api_key="test-key", model="gpt-4o", max_retries=0
        )
        return {"local": _local(), "cloud": cloud, "threshold": -0.6}

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
