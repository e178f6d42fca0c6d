"""The LCEL chain's runs, traced to LangSmith, and the trace a user would see there.

Sends the run of ``prompt | ChatHybrid | StrOutputParser`` to LangSmith with the real
``langsmith`` client (the endpoint and key come from ``LANGSMITH_ENDPOINT`` and
``LANGSMITH_API_KEY``, as for any LangChain app), then prints the same run tree as the
LangSmith UI shows it: the chain, the ``ChatHybrid`` run with the routing decision in its
metadata (``routing_tier``, ``routing_reason``, ``routing_confidence``, ...), and the tier
calls as child runs ``local`` and ``cloud``.

    LANGSMITH_API_KEY=... python examples/tracing.py
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers.langchain import LangChainTracer
from langchain_core.tracers.schemas import Run
from langsmith import Client

from langchain_hybrid import ChatHybrid, ChatTransformers

PROJECT = "langchain-hybrid-example"
SHOWN_METADATA = ("routing_tier", "routing_reason", "routing_confidence", "routing_cost_usd")


class KeepingTracer(LangChainTracer):
    """The LangSmith tracer, also keeping each finished run to print the tree afterwards.

    LangChain hands copies of the tracer to nested runs (ChatHybrid's tier calls among
    them); the copies share this one list.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.finished: list[Run] = []

    def copy_with_metadata_defaults(self, *args: Any, **kwargs: Any) -> LangChainTracer:
        copy = super().copy_with_metadata_defaults(*args, **kwargs)
        if isinstance(copy, KeepingTracer):
            copy.finished = self.finished
        return copy

    def _end_trace(self, run: Run) -> None:
        super()._end_trace(run)
        self.finished.append(run)


def print_tree(runs: list[Run], parent: str | None = None, depth: int = 0) -> list[str]:
    """Print the runs under ``parent`` as LangSmith lists them; return the names in order."""
    names: list[str] = []
    children = [r for r in runs if (r.parent_run_id and str(r.parent_run_id)) == parent]
    for run in sorted(children, key=lambda r: r.dotted_order or ""):
        metadata = (run.extra or {}).get("metadata", {})
        shown = {key: metadata[key] for key in SHOWN_METADATA if key in metadata}
        print(f"{'  ' * depth}- {run.name} [{run.run_type}] {shown or ''}".rstrip())
        names += [run.name, *print_tree(runs, str(run.id), depth + 1)]
    return names


def main(
    question: str = "What is the capital of France?",
    *,
    local: BaseChatModel | None = None,
    cloud: BaseChatModel | None = None,
) -> dict[str, Any]:
    if cloud is None:
        from lcel_chain import cloud_tier

        cloud = cloud_tier()
    llm = ChatHybrid(local=local or ChatTransformers(max_tokens=48), cloud=cloud, threshold=-0.6)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer in one short sentence."), ("human", "{question}")]
    )
    chain = prompt | llm | StrOutputParser()

    client = Client()  # LANGSMITH_ENDPOINT / LANGSMITH_API_KEY from the environment
    tracer = KeepingTracer(client=client, project_name=PROJECT)
    answer = chain.invoke({"question": question}, config={"callbacks": [tracer]})
    tracer.wait_for_futures()
    client.flush()

    print(f"answer: {answer}")
    print(f"trace sent to {client.api_url}, project {PROJECT!r}:")
    names = print_tree(tracer.finished)
    trace_id = str(tracer.finished[-1].trace_id)
    return {"answer": answer, "run_names": names, "trace_id": trace_id}


if __name__ == "__main__":
    if not os.environ.get("LANGSMITH_API_KEY"):
        print("Set LANGSMITH_API_KEY (and LANGSMITH_ENDPOINT for a self-hosted LangSmith).")
    main()
