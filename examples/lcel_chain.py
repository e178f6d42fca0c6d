"""prompt | ChatHybrid | StrOutputParser, printing each routing decision from a callback.

The decisions come from the ``hybrid_route`` custom callback event that every ChatHybrid
call sends (the same dict as ``response_metadata["routing"]``), so they are seen even
though the chain's output is a plain string. Runs offline: the cloud tier is GPT-4o when
``OPENAI_API_KEY`` is set, else a stand-in that says it is one.

    python examples/lcel_chain.py
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_hybrid import ChatHybrid, ChatTransformers

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote the novel Middlemarch?",
    "What is 17 times 23?",
]


class PrintDecisions(BaseCallbackHandler):
    """Collects and prints the ``hybrid_route`` event of every routed call."""

    def __init__(self) -> None:
        self.decisions: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name != "hybrid_route":
            return
        self.decisions.append(data)
        confidence = data["confidence"]
        shown = "n/a" if confidence is None else f"{confidence:.2f}"
        print(f"  -> {data['tier']} ({data['reason']}, confidence {shown} vs {data['threshold']})")


def cloud_tier() -> BaseChatModel:
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model="gpt-4o", max_tokens=64)
    stand_in = AIMessage("[offline stand-in for the cloud: set OPENAI_API_KEY for GPT-4o]")
    return GenericFakeChatModel(messages=iter([stand_in] * len(QUESTIONS)))


def main(
    local: BaseChatModel | None = None, cloud: BaseChatModel | None = None
) -> list[dict[str, Any]]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer in one short sentence."), ("human", "{question}")]
    )
    llm = ChatHybrid(
        local=local or ChatTransformers(max_tokens=48),
        cloud=cloud or cloud_tier(),
        threshold=-0.6,
    )
    chain = prompt | llm | StrOutputParser()
    handler = PrintDecisions()
    for question in QUESTIONS:
        print(f"Q: {question}")
        answer = chain.invoke({"question": question}, config={"callbacks": [handler]})
        print(f"  A: {answer}")
    return handler.decisions


if __name__ == "__main__":
    main()
