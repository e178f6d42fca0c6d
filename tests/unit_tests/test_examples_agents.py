"""The agent and conversation examples, with a scripted local tier and a socket-free cloud."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import ScriptedReply
from tests.support.openai_mock import MockOpenAI


def scripted(answer: str | dict[str, Any]) -> ScriptedReply:
    if isinstance(answer, str):
        return ScriptedReply(answer)
    return ScriptedReply("", tool_calls=answer["tool_calls"])


def test_agent_example_routes_each_step_on_its_own(
    example: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    agent = example("agent")
    local = FakeLocalChatModel(
        can_call_tools=True,
        messages=iter(
            [
                AIMessage(  # parallel tool calls, confident: kept local
                    "",
                    tool_calls=[
                        {"name": "population", "args": {"city": "Paris"}, "id": "p1"},
                        {"name": "population", "args": {"city": "Lyon"}, "id": "p2"},
                    ],
                ),
                AIMessage("", tool_calls=[{"name": "add", "args": {"x": 2}, "id": "a1"}]),
                "I don't know.",  # a hedge: escalated
            ]
        ),
    )
    cloud = MockOpenAI(responder=lambda body: scripted(agent.plan(body)))
    record = agent.run(local, make_chat_openai(cloud))
    assert [(s["tier"], s["reason"]) for s in record] == [
        ("local", "confident"),
        ("cloud", "invalid_tool_call"),
        ("cloud", "hedge"),
    ]
    assert "calculator" in record[1]["did"] and "2.65" in record[2]["did"]
    out = capsys.readouterr().out
    assert "1 of 3 steps answered locally; 0 tool errors" in out
    # The tool results the local tier produced reached the cloud unchanged, in order.
    tool_messages = [m for m in cloud.chat_requests[0]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["2.13", "0.52"]


def test_agent_tools_are_real(example: Callable[[str], ModuleType]) -> None:
    agent = example("agent")
    assert agent.calculator.invoke({"expression": "2.13 + 0.52"}) == "2.65"
    assert agent.population.invoke({"city": "Lyon"}) == "0.52"
    with pytest.raises(ValueError, match="only"):
        agent.calculator.invoke({"expression": "__import__('os')"})


class Historian(FakeLocalChatModel):
    """Confident on capitals, unsure on history (the checkpointed thread grows each turn)."""

    def _next(self, messages: list[Any], kwargs: dict[str, Any]) -> tuple[str, list[Any], float]:
        self.received.append(list(messages))
        question = str(messages[-1].text)
        return (
            "Rome." if "capital" in question else "It ended a war.",
            [],
            (-0.05 if "capital" in question else -2.5),
        )


def test_conversation_example_with_and_without_sticky_escalation(
    example: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = example("conversation")
    cloud = make_chat_openai(MockOpenAI(responder=lambda body: ScriptedReply("Cloud answer.")))
    local = Historian()
    assert conversation.run(local, cloud, sticky=False) == [
        ("local", "confident"),
        ("cloud", "low_confidence"),
        ("local", "confident"),
    ]
    assert [len(m) for m in local.received] == [1, 3, 5]  # the checkpointer kept the thread
    assert conversation.run(Historian(), cloud, sticky=True) == [
        ("local", "confident"),
        ("cloud", "low_confidence"),
        ("cloud", "sticky_escalation"),
    ]
    assert "the thread holds 6 messages" in capsys.readouterr().out
