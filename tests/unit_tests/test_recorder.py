"""EscalationRecorder: the requests the cloud answered, as rows load_dataset and tune read.

The local tier is a scripted :class:`FakeLocalChatModel` (sure of questions that say
"easy", unsure of the others); the cloud is a real ``ChatOpenAI`` answered by the
socket-free :class:`MockOpenAI`. Every recording case runs through invoke, stream,
ainvoke and astream.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_messages,
    messages_from_dict,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_hybrid import ChatHybrid, PrivacyRule
from langchain_hybrid.evaluation import load_dataset
from langchain_hybrid.tuning import EscalationRecorder, escalation_row, load_rows
from langchain_hybrid.tuning.recorder import skip_reason
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply, last_user_text
from tests.support.openai_mock import MockOpenAI

SURE, UNSURE = -0.05, -2.5
MODES = ["invoke", "stream", "ainvoke", "astream"]


class Local(FakeLocalChatModel):
    """Sure of questions that say 'easy', unsure of the others (thread-safe: no script)."""

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, float]:
        question = str(messages[-1].text)
        return f"Local guess for {question}", SURE if "easy" in question else UNSURE


def cloud_mock() -> MockOpenAI:
    return MockOpenAI(responder=lambda body: ScriptedReply(f"Cloud: {last_user_text(body)}"))


def hybrid(cloud: MockOpenAI, **kw: Any) -> ChatHybrid:
    return ChatHybrid(local=Local(), cloud=make_chat_openai(cloud), threshold=-0.6, **kw)


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


async def answer(runnable: Any, mode: str, value: Any, config: Any = None) -> BaseMessage:
    if mode == "invoke":
        return runnable.invoke(value, config)  # type: ignore[no-any-return]
    if mode == "ainvoke":
        return await runnable.ainvoke(value, config)  # type: ignore[no-any-return]
    if mode == "stream":
        return merge(list(runnable.stream(value, config)))
    return merge([c async for c in runnable.astream(value, config)])


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "recorded" / "escalations.jsonl"


# --------------------------------------------------------------------------- what is written


@pytest.mark.parametrize("mode", MODES)
async def test_escalated_requests_are_written_in_the_dataset_shape(path: Path, mode: str) -> None:
    recorder = EscalationRecorder(path)
    llm = hybrid(cloud_mock())
    config = {"callbacks": [recorder]}
    prompt = [("system", "Answer briefly."), ("human", "Who wrote Middlemarch?")]
    msg = await answer(llm, mode, prompt, config)
    assert msg.text == "Cloud: Who wrote Middlemarch?"
    local = await answer(llm, mode, "An easy one: capital of France?", config)
    assert local.response_metadata["routing"]["tier"] == "local"

    [row] = rows(path)
    assert recorder.rows_written == 1
    assert row["question"] == "Who wrote Middlemarch?"
    assert row["answer"] == ["Cloud: Who wrote Middlemarch?"]
    assert list(row["recorded"]) == ["gpt-4o"]
    recorded = row["recorded"]["gpt-4o"]
    assert recorded["response"] == "Cloud: Who wrote Middlemarch?"
    if msg.response_metadata["routing"]["usage"]:  # (a stream reports no usage here)
        assert recorded["prompt_tokens"] > 0 and recorded["completion_tokens"] > 0
    assert recorded["latency_s"] >= 0
    decision = row["decision"]
    assert (decision["tier"], decision["reason"], decision["escalated"]) == (
        "cloud",
        "low_confidence",
        True,
    )
    assert decision == msg.response_metadata["routing"]
    prompt_messages = messages_from_dict(row["messages"])
    assert [(m.type, m.text) for m in prompt_messages] == [
        ("system", "Answer briefly."),
        ("human", "Who wrote Middlemarch?"),
    ]
    # The shape load_dataset reads (the cloud's answer is the accepted one)...
    [example] = load_dataset(path)
    assert example.id == row["id"] and example.answers == ("Cloud: Who wrote Middlemarch?",)
    assert example.recorded["gpt-4o"].text == "Cloud: Who wrote Middlemarch?"
    # ... and tune trains on: the cloud's answer is the target.
    [tuning_row] = load_rows(path)
    assert tuning_row.target == "Cloud: Who wrote Middlemarch?"


def test_rows_append_across_recorders_and_ids_are_run_ids(path: Path) -> None:
    llm = hybrid(cloud_mock())
    llm.invoke("First question?", {"callbacks": [EscalationRecorder(path)]})
    second = EscalationRecorder(path)
    llm.with_config(callbacks=[second]).invoke("Second question?")
    written = rows(path)
    assert [r["question"] for r in written] == ["First question?", "Second question?"]
    assert len({r["id"] for r in written}) == 2
    assert [ex.question for ex in load_dataset(path)] == ["First question?", "Second question?"]
    assert second.rows_written == 1


@pytest.mark.parametrize("mode", MODES)
async def test_requests_kept_local_by_the_privacy_rule_are_never_written(
    path: Path, mode: str
) -> None:
    cloud = cloud_mock()
    for redact in (False, True):
        recorder = EscalationRecorder(path, redact=redact)
        msg = await answer(
            hybrid(cloud), mode, "Mail ada@example.com the minutes?", {"callbacks": [recorder]}
        )
        routing = msg.response_metadata["routing"]
        assert (routing["tier"], routing["reason"]) == ("local", "privacy_forced_local")
    assert cloud.chat_requests == []
    assert rows(path) == []


@pytest.mark.parametrize("mode", MODES)
async def test_redact_replaces_what_the_detectors_find_in_everything_written(
    path: Path, mode: str
) -> None:
    cloud = MockOpenAI(responder=lambda body: ScriptedReply("Sent; copy to bob@example.org."))
    llm = hybrid(cloud, privacy=PrivacyRule(action="redact"))
    recorder = EscalationRecorder(path, redact=True)
    prompt = [("system", "Our desk: +44 20 7946 0958."), ("human", "Write to ada@example.com?")]
    msg = await answer(llm, mode, prompt, {"callbacks": [recorder]})
    routing = msg.response_metadata["routing"]
    assert routing["tier"] == "cloud" and routing["privacy"]["action"] == "redact"
    # The cloud received placeholders (the privacy rule), and so does the file (redact=True).
    assert "[EMAIL]" in last_user_text(cloud.chat_requests[0])
    [row] = rows(path)
    text = path.read_text()
    assert "ada@example.com" not in text and "bob@example.org" not in text
    assert "7946" not in text
    assert row["question"] == "Write to [EMAIL]?"
    assert row["answer"] == ["Sent; copy to [EMAIL]."]
    assert row["recorded"]["gpt-4o"]["response"] == "Sent; copy to [EMAIL]."
    assert [m["data"]["content"] for m in row["messages"]] == [
        "Our desk: [PHONE].",
        "Write to [EMAIL]?",
    ]
    assert load_dataset(path)[0].answers == ("Sent; copy to [EMAIL].",)


def test_without_redact_rows_hold_the_prompt_as_sent(path: Path) -> None:
    llm = hybrid(cloud_mock(), privacy=PrivacyRule(action="redact"))
    llm.invoke("Write to ada@example.com?", {"callbacks": [EscalationRecorder(path)]})
    [row] = rows(path)
    assert row["question"] == "Write to ada@example.com?"
    assert row["answer"] == ["Cloud: Write to [EMAIL]?"]  # what the cloud saw


def test_custom_detectors_redact(path: Path) -> None:
    recorder = EscalationRecorder(
        path, redact=True, detectors=[{"type": "regex", "name": "ticket", "pattern": r"T-\d+"}]
    )
    hybrid(cloud_mock(), privacy=False).invoke("Status of T-1234?", {"callbacks": [recorder]})
    [row] = rows(path)
    assert row["question"] == "Status of [TICKET]?"
    assert row["answer"] == ["Cloud: Status of [TICKET]?"]


def test_degraded_answers_and_tool_calls_are_not_written(path: Path) -> None:
    cloud = cloud_mock()
    cloud.enqueue(
        Fault(status=500),
        ScriptedReply("", tool_calls=[{"name": "add", "arguments": {"a": 1, "b": 2}}]),
    )
    recorder = EscalationRecorder(path)
    llm = hybrid(cloud)
    degraded = llm.invoke("Hard question?", {"callbacks": [recorder]})
    assert degraded.response_metadata["routing"]["degraded"] is True

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    tools = ChatHybrid(
        local=Local(can_call_tools=True), cloud=make_chat_openai(cloud), threshold=-0.6
    ).bind_tools([add])
    called = tools.invoke("What is 1 + 2?", {"callbacks": [recorder]})
    assert called.tool_calls and called.response_metadata["routing"]["tier"] == "cloud"
    assert rows(path) == [] and recorder.rows_written == 0


# --------------------------------------------------------------------------- concurrency


def test_concurrent_batch_records_each_request_once(path: Path) -> None:
    recorder = EscalationRecorder(path)
    questions = [f"Question {i}?" for i in range(12)] + ["An easy one?"]
    answers = hybrid(cloud_mock()).batch(questions, {"callbacks": [recorder], "max_concurrency": 6})
    assert sum(a.response_metadata["routing"]["tier"] == "cloud" for a in answers) == 12
    written = rows(path)
    assert sorted(r["question"] for r in written) == sorted(questions[:12])
    assert all(r["answer"] == [f"Cloud: {r['question']}"] for r in written)
    assert len({r["id"] for r in written}) == 12 == recorder.rows_written
    assert len(load_dataset(path)) == 12


async def test_concurrent_async_requests_record_each_once(path: Path) -> None:
    recorder = EscalationRecorder(path)
    llm = hybrid(cloud_mock()).with_config(callbacks=[recorder])
    questions = [f"Async question {i}?" for i in range(8)]
    streamed = [f"Streamed question {i}?" for i in range(4)]

    async def stream(question: str) -> BaseMessage:
        return merge([c async for c in llm.astream(question)])

    await asyncio.gather(llm.abatch(questions), *(stream(q) for q in streamed))
    written = rows(path)
    assert sorted(r["question"] for r in written) == sorted(questions + streamed)
    assert len({r["id"] for r in written}) == 12


# --------------------------------------------------------------------------- nesting


def test_a_chain_around_the_router_records_the_routed_run(path: Path) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), ("human", "Question: {question}")]
    )
    chain = prompt | hybrid(cloud_mock()) | StrOutputParser()
    recorder = EscalationRecorder(path)
    assert chain.invoke({"question": "Who?"}, {"callbacks": [recorder]}) == "Cloud: Question: Who?"
    [row] = rows(path)
    assert row["question"] == "Question: Who?"
    assert [m["type"] for m in row["messages"]] == ["system", "human"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_cascade_records_the_outer_routed_run_once(path: Path, mode: str) -> None:
    cloud = cloud_mock()
    medium = ChatHybrid(local=Local(), cloud=make_chat_openai(cloud), threshold=-0.6)
    cascade = ChatHybrid(local=Local(), cloud=medium, threshold=-0.6)
    recorder = EscalationRecorder(path)
    msg = await answer(cascade, mode, "A hard one?", {"callbacks": [recorder]})
    assert msg.text == "Cloud: A hard one?"
    [row] = rows(path)
    assert row["question"] == "A hard one?" and row["decision"] == msg.response_metadata["routing"]
    assert len(cloud.chat_requests) == 1
    # An answer the small tier kept is not written.
    await answer(cascade, mode, "An easy one?", {"callbacks": [recorder]})
    assert len(rows(path)) == 1


def test_a_cascade_answered_by_its_middle_tier_is_not_written(path: Path) -> None:
    class Medium(FakeLocalChatModel):
        def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, float]:
            return "Medium knows.", SURE

    medium = ChatHybrid(local=Medium(), cloud=make_chat_openai(cloud_mock()), threshold=-0.6)
    cascade = ChatHybrid(local=Local(), cloud=medium, threshold=-0.6)
    recorder = EscalationRecorder(path)
    msg = cascade.invoke("Hard for the small one?", {"callbacks": [recorder]})
    assert msg.text == "Medium knows."
    assert msg.response_metadata["routing"]["tier"] == "cloud"  # the outer step's tier
    assert rows(path) == []


def test_a_recorder_given_to_the_model_itself_records_from_the_answer(path: Path) -> None:
    # Callbacks of the model are not inherited by its tiers or its event: the answer's
    # routing metadata is the decision.
    recorder = EscalationRecorder(path)
    cloud = cloud_mock()
    llm = ChatHybrid(
        local=Local(), cloud=make_chat_openai(cloud), threshold=-0.6, callbacks=[recorder]
    )
    llm.invoke("Who?")
    assert [r["question"] for r in rows(path)] == ["Who?"]


def test_a_failed_request_is_not_written(path: Path) -> None:
    cloud = cloud_mock()
    cloud.enqueue(Fault(status=401))
    llm = hybrid(cloud, raise_on_cloud_errors=frozenset({"auth"}))
    recorder = EscalationRecorder(path)
    with pytest.raises(Exception, match="401|auth|Authentication"):
        llm.invoke("Who?", {"callbacks": [recorder]})
    assert rows(path) == []


# --------------------------------------------------------------------------- the row itself


def test_escalation_row_and_skip_reason() -> None:
    prompt = convert_to_messages([("human", "Who?")])
    cloud = {"tier": "cloud", "reason": "hedge", "escalated": True, "model": "m"}
    plain = AIMessage("Ada.")
    row = escalation_row(prompt, plain, row_id="x", decision=cloud)
    assert row is not None and row["recorded"] == {"m": {"response": "Ada."}}
    assert escalation_row(prompt, plain, row_id="x") is None  # not routed
    assert escalation_row(prompt, AIMessage(""), row_id="x", decision=cloud) is None
    assert skip_reason([{**cloud, "cached": True}]) == "a cache hit"
    assert skip_reason([{**cloud, "failed": True}]) == "failed"
    assert skip_reason([cloud, {"tier": "local", "reason": "confident"}]) == "answered locally"
    redacted = {**cloud, "privacy": {"rule": "privacy", "action": "redact", "detectors": []}}
    assert skip_reason([redacted]) is None


def test_the_learning_loop_example_records_and_prints_the_tune_command(
    example: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = example("learning_loop")
    cloud = MockOpenAI(responder=lambda body: ScriptedReply(loop.cloud_reply(body)))
    out = tmp_path / "escalations.jsonl"
    written = loop.main(local=Local(), cloud=make_chat_openai(cloud), path=out)
    printed = capsys.readouterr().out
    assert written == rows(out) and written
    assert all(r["decision"]["tier"] == "cloud" for r in written)
    # The e-mail question stayed local, so it is not in the file.
    assert all("@" not in r["question"] for r in written)
    assert f"langchain-hybrid tune --data {out}" in printed
    assert len(load_dataset(out)) == len(written)
