"""An agent whose every step is routed on its own: `create_agent` with ChatHybrid.

The task takes several steps: look up two populations (the ``population`` tool), add
them (the ``calculator`` tool), answer. Each LLM step of the agent goes to the local
model first; steps where it is not confident, or where its tool call is invalid, go to
the cloud. The cloud here is scripted on 127.0.0.1 (``scripted_cloud.py``: it plans the
task step by step), so the example runs offline; with a key, pass
``ChatOpenAI(model="gpt-4o")`` as ``cloud``.

Run: ``python examples/agent.py`` (the local tier is the embedded SmolLM2-135M; a local
model that cannot call tools sends every step to the cloud, reason
``local_unsupported``). It prints each step's tier and reason, as found in each
``AIMessage``'s ``response_metadata["routing"]``.
"""

from __future__ import annotations

import ast
import json
import operator
import sys
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from langchain_hybrid import ChatHybrid

sys.path.insert(0, str(Path(__file__).parent))
from scripted_cloud import ScriptedCloud  # noqa: E402

TASK = "How many people live in Paris and Lyon together, in millions?"

# City populations in millions (INSEE, 2021 census, city proper).
POPULATIONS = {"paris": 2.13, "lyon": 0.52, "marseille": 0.87}


@tool
def population(city: str) -> str:
    """Return the population of a French city, in millions."""
    value = POPULATIONS.get(city.strip().lower())
    if value is None:
        raise ValueError(f"unknown city {city!r}; known: {', '.join(sorted(POPULATIONS))}")
    return str(value)


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("only + - * / on numbers")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / (e.g. "2.13 + 0.52")."""
    return f"{_evaluate(ast.parse(expression, mode='eval')):.2f}"


def plan(body: dict[str, Any]) -> str | dict[str, Any]:
    """The scripted cloud: the next step of the task, from the messages so far."""
    results = [m for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {
            "tool_calls": [
                {"name": "population", "arguments": {"city": c}} for c in ("Paris", "Lyon")
            ]
        }
    if len(results) < 3:
        expression = " + ".join(str(m["content"]) for m in results)
        return {"tool_calls": [{"name": "calculator", "arguments": {"expression": expression}}]}
    return f"About {results[-1]['content']} million people live in Paris and Lyon together."


def steps(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """Each LLM step of the run: what it did and the routing decision."""
    out = []
    for message in messages:
        if isinstance(message, AIMessage):
            routing = message.response_metadata.get("routing", {})
            did = (
                "calls "
                + ", ".join(f"{c['name']}({json.dumps(c['args'])})" for c in message.tool_calls)
                if message.tool_calls
                else f"answers {message.text!r}"
            )
            out.append({"tier": routing.get("tier"), "reason": routing.get("reason"), "did": did})
    return out


def run(local: BaseChatModel, cloud: BaseChatModel) -> list[dict[str, Any]]:
    """Run the agent on the task with these tiers; print and return each step's decision."""
    llm = ChatHybrid(local=local, cloud=cloud, threshold=-0.6)
    agent = create_agent(llm, tools=[population, calculator])
    messages: list[BaseMessage] = []
    record: list[dict[str, Any]] = []
    # Each step is printed as it happens. A bound on the steps: an agent that loops fails
    # in seconds, not at LangGraph's default of 25.
    for state in agent.stream(
        {"messages": [("human", TASK)]}, {"recursion_limit": 12}, stream_mode="values"
    ):
        new, messages = state["messages"][len(messages) :], state["messages"]
        for step in steps(new):
            record.append(step)
            print(f"step {len(record)}: {step['tier']:5} ({step['reason']}) {step['did']}")
    errors = [m for m in messages if isinstance(m, ToolMessage) and m.status == "error"]
    local_steps = sum(step["tier"] == "local" for step in record)
    print(f"{local_steps} of {len(record)} steps answered locally; {len(errors)} tool errors")
    return record


def main(local: BaseChatModel | None = None) -> list[dict[str, Any]]:
    """Run the agent with ``local`` (default: the embedded model) and the scripted cloud."""
    if local is None:
        from langchain_hybrid import ChatTransformers

        local = ChatTransformers(max_tokens=96)
    with ScriptedCloud(plan) as scripted:
        cloud = ChatOpenAI(model="gpt-4o", base_url=scripted.base_url, api_key="none")
        return run(local, cloud)


if __name__ == "__main__":
    main()
