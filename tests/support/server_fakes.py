"""Chat models for ``--factory`` in CLI and server tests: routed, no weights, no sockets."""

from __future__ import annotations

from typing import Any

from langchain_hybrid import ChatHybrid
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import ScriptedReply, last_user_text
from tests.support.openai_mock import MockOpenAI

HARD = "hard"
LOCAL_ANSWER = "Paris is the capital of France."
CLOUD_ANSWER = "George Eliot wrote Middlemarch."


class KeyedLocal(FakeLocalChatModel):
    """Confident answers, except to questions holding ``HARD`` (very unsure ones)."""

    def _answer(self, messages: Any, kwargs: dict[str, Any]) -> tuple[str, float]:
        if HARD in messages[-1].text:
            return "Charles Dickens, I think.", -3.0
        return LOCAL_ANSWER, -0.05


def fake_hybrid() -> ChatHybrid:
    """A ChatHybrid that keeps easy questions local and escalates ``HARD`` ones."""
    cloud = MockOpenAI(responder=lambda body: ScriptedReply(CLOUD_ANSWER, logprobs=-0.01))
    return ChatHybrid(
        local=KeyedLocal(), cloud=make_chat_openai(cloud, stream_usage=True), threshold=-0.6
    )


def cloud_text(body: dict[str, Any]) -> str:
    """What the cloud was asked (for tests that read it)."""
    return last_user_text(body)
