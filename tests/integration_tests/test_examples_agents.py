"""The agent and conversation examples: the real embedded local model, a cloud on 127.0.0.1."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from langchain_hybrid import ChatTransformers

EXAMPLES = Path(__file__).parents[2] / "examples"


def module(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def test_agent_example_finishes_the_task_with_a_decision_per_step(
    local_llm: ChatTransformers,
) -> None:
    record = module("agent").main(local=local_llm)
    assert len(record) >= 3  # look up, add, answer
    assert all(step["tier"] in ("local", "cloud") and step["reason"] for step in record)
    assert "2.65" in record[-1]["did"]


def test_conversation_example_sticky_thread_stays_on_the_cloud(
    local_llm: ChatTransformers,
) -> None:
    runs = module("conversation").main(local=local_llm)
    assert all(reason != "sticky_escalation" for _, reason in runs[False])
    sticky = runs[True]
    first_cloud = next((i for i, (tier, _) in enumerate(sticky) if tier == "cloud"), None)
    if first_cloud is not None:
        assert all(reason == "sticky_escalation" for _, reason in sticky[first_cloud + 1 :])
