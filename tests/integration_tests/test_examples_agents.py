"""The agent and conversation examples: the real embedded local model, a cloud on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from langchain_hybrid import ChatTransformers


def test_agent_example_finishes_the_task_with_a_decision_per_step(
    local_llm: ChatTransformers, example: Callable[[str], ModuleType]
) -> None:
    record = example("agent").main(local=local_llm)
    assert len(record) >= 3  # look up, add, answer
    assert all(step["tier"] in ("local", "cloud") and step["reason"] for step in record)
    assert "2.65" in record[-1]["did"]


def test_conversation_example_sticky_thread_stays_on_the_cloud(
    local_llm: ChatTransformers, example: Callable[[str], ModuleType]
) -> None:
    runs = example("conversation").main(local=local_llm)
    assert all(reason != "sticky_escalation" for _, reason in runs[False])
    sticky = runs[True]
    first_cloud = next((i for i, (tier, _) in enumerate(sticky) if tier == "cloud"), None)
    if first_cloud is not None:
        assert all(reason == "sticky_escalation" for _, reason in sticky[first_cloud + 1 :])
