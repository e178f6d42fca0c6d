"""ConfidenceGate around whole chains: judged by the chat model called inside the primary.

The chains end in parsers (a string, a dict, a parsed object), so the answer message is
not in their output: the gate captures it through callbacks.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from langchain_hybrid import ConfidenceGate

PROMPT = ChatPromptTemplate.from_messages([("human", "Q: {question}")])
SURE, UNSURE = -0.05, -2.0


def reply(text: str, logprob: float | None) -> AIMessage:
    meta: dict[str, Any] = {"finish_reason": "stop"}
    if logprob is not None:
        meta["logprobs"] = {"content": [{"token": text, "logprob": logprob}]}
    return AIMessage(text, response_metadata=meta)


def model(*messages: AIMessage) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(messages))


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.decisions: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name == "hybrid_route":
            self.decisions.append(data)


def cloud_chain() -> Any:
    return PROMPT | model(*[AIMessage("Paris (cloud)")] * 4) | StrOutputParser()


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_str_output_chain_is_judged_by_its_chat_model(mode: str) -> None:
    events = Events()
    for logprob, expected, reason in (
        (SURE, "Paris", "confident"),
        (UNSURE, "Paris (cloud)", "low_confidence"),
    ):
        local = PROMPT | model(reply("Paris", logprob)) | StrOutputParser()
        gate = ConfidenceGate(local, cloud_chain(), threshold=-0.6)
        config = {"callbacks": [events]}
        question = {"question": "Capital of France?"}
        if mode == "invoke":
            out = gate.invoke(question, config)
        elif mode == "ainvoke":
            out = await gate.ainvoke(question, config)
        elif mode == "stream":
            out = "".join(gate.stream(question, config))
        else:
            out = "".join([c async for c in gate.astream(question, config)])
        assert out == expected
        assert events.decisions[-1]["reason"] == reason
        assert events.decisions[-1]["confidence"] is not None


def test_no_chat_model_means_no_logprobs_not_empty_answer() -> None:
    events = Events()
    gate = ConfidenceGate(RunnableLambda(lambda q: "Paris"), cloud_chain(), threshold=-0.6)
    assert gate.invoke({"question": "Capital?"}, {"callbacks": [events]}) == "Paris (cloud)"
    assert events.decisions[0]["reason"] == "no_logprobs"


def test_chat_model_without_logprobs_means_no_logprobs() -> None:
    events = Events()
    local = PROMPT | model(reply("Paris", None)) | StrOutputParser()
    ConfidenceGate(local, cloud_chain(), threshold=-0.6).invoke(
        {"question": "Capital?"}, {"callbacks": [events]}
    )
    assert events.decisions[0]["reason"] == "no_logprobs"


def test_of_several_chat_models_the_last_to_end_is_judged() -> None:
    events = Events()
    rewrite = PROMPT | model(reply("capital france", UNSURE)) | StrOutputParser()
    answer = model(reply("Paris", SURE)) | StrOutputParser()
    local = rewrite | (lambda q: f"Answer: {q}") | answer
    gate = ConfidenceGate(local, cloud_chain(), threshold=-0.6)
    assert gate.invoke({"question": "Capital?"}, {"callbacks": [events]}) == "Paris"
    assert events.decisions[0]["reason"] == "confident"

    events = Events()
    rewrite = PROMPT | model(reply("capital france", SURE)) | StrOutputParser()
    answer = model(reply("Lyon", UNSURE)) | StrOutputParser()
    gate = ConfidenceGate(rewrite | answer, cloud_chain(), threshold=-0.6)
    assert gate.invoke({"question": "Capital?"}, {"callbacks": [events]}) == "Paris (cloud)"
    assert events.decisions[0]["reason"] == "low_confidence"


def test_parsed_dict_output_is_judged_and_returned_unchanged() -> None:
    events = Events()
    local = PROMPT | model(reply('{"city": "Paris"}', SURE)) | JsonOutputParser()
    cloud = PROMPT | model(AIMessage('{"city": "Paris, cloud"}')) | JsonOutputParser()
    gate = ConfidenceGate(local, cloud, threshold=-0.6)
    out = gate.invoke({"question": "Capital?"}, {"callbacks": [events]})
    assert out == {"city": "Paris", "routing": events.decisions[0]}
    assert events.decisions[0]["tier"] == "local"
