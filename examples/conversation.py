"""A multi-turn thread with a LangGraph checkpointer, with and without sticky escalation.

The graph is the smallest chat loop: one node that answers the thread's messages with
ChatHybrid; ``InMemorySaver`` keeps each thread's history between turns
(``config={"configurable": {"thread_id": ...}}``). Without ``sticky_escalation`` every
turn is routed on its own; with it, once the cloud answered a turn of a thread, the
later turns of that thread stay on the cloud (reason ``sticky_escalation``), so that two
models do not answer (and contradict each other) in one conversation.

Run: ``python examples/conversation.py`` (the local tier is the embedded SmolLM2-135M;
the cloud is scripted on 127.0.0.1, see ``scripted_cloud.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from langchain_hybrid import ChatHybrid, RoutingPolicy

sys.path.insert(0, str(Path(__file__).parent))
from scripted_cloud import ScriptedCloud  # noqa: E402

TURNS = [
    "What is the capital of France?",
    "Explain in one sentence why the Treaty of Westphalia mattered.",
    "And what is the capital of Italy?",
]


def build(llm: ChatHybrid) -> Any:
    """A one-node chat graph with an in-memory checkpointer."""

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    return graph.compile(checkpointer=InMemorySaver())


def run(
    local: BaseChatModel, cloud: BaseChatModel, *, sticky: bool, threshold: float = -0.6
) -> list[tuple[str, str]]:
    """Hold one thread of :data:`TURNS`; print and return each turn's (tier, reason)."""
    policy = RoutingPolicy(threshold=threshold, sticky_escalation=sticky)
    app = build(ChatHybrid(local=local, cloud=cloud, policy=policy))
    config = {"configurable": {"thread_id": "conversation-1"}}
    decisions = []
    print(f"sticky_escalation={sticky}")
    for turn in TURNS:
        state = app.invoke({"messages": [("human", turn)]}, config)
        reply = state["messages"][-1]
        routing = reply.response_metadata["routing"]
        decisions.append((routing["tier"], routing["reason"]))
        print(f"  {turn!r} -> {routing['tier']} ({routing['reason']}): {reply.text[:60]!r}")
    print(f"  the thread holds {len(state['messages'])} messages")
    return decisions


def main(local: BaseChatModel | None = None) -> dict[bool, list[tuple[str, str]]]:
    """Run the thread without and with sticky escalation."""
    if local is None:
        from langchain_hybrid import ChatTransformers

        local = ChatTransformers(max_tokens=48)
    with ScriptedCloud(lambda body: "Here is a careful answer from the cloud.") as scripted:
        cloud = ChatOpenAI(model="gpt-4o", base_url=scripted.base_url, api_key="none")
        return {sticky: run(local, cloud, sticky=sticky) for sticky in (False, True)}


if __name__ == "__main__":
    main()
