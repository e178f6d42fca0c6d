"""Records and local collection: the data evaluation and calibration share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_hybrid import RoutingPolicy
from langchain_hybrid.errors import DatasetError
from langchain_hybrid.evaluation import (
    CloudRecord,
    Example,
    LocalRecord,
    collect_local,
    load_records,
    prompt_for,
    save_records,
)
from tests.support.eval_fakes import KeyedLocalChatModel

EXAMPLES = [
    Example(id="nq-1", question="capital of France", answers=("Paris",)),
    Example(id="nq-2", question="largest planet", answers=("Jupiter",)),
    Example(
        id="sq-1",
        question="When was it built?",
        answers=(),
        context="The tower stands in Paris.",
        answerable=False,
    ),
    Example(
        id="gsm-1",
        question="Ducks lay 16 eggs",
        answers=("18",),
        task="math",
        recorded={"gpt-4": CloudRecord("gpt-4", "So 18.", True)},
    ),
    Example(id="nq-3", question="author of Hamlet", answers=("Shakespeare",)),
]

LOCAL = {
    "capital of France": ("Paris.", -0.05),
    "largest planet": ("Saturn is the largest.", -1.4),
    "When was it built?": ("The passage does not say.", -0.3),
    "Ducks lay 16 eggs": ("16 - 3 - 4 = 9, 9 * 2 = 18. Answer: 18", -0.2),
}


def local_model() -> KeyedLocalChatModel:
    return KeyedLocalChatModel(answers=LOCAL, default=("I'm not sure.", -0.1))


def test_collect_grades_times_and_keeps_the_real_answers() -> None:
    records = collect_local(EXAMPLES, local_model(), max_tokens=24, batch_size=2, progress=False)
    assert [r.example_id for r in records] == [ex.id for ex in EXAMPLES]
    assert [r.correct for r in records] == [True, False, True, True, False]
    assert all(r.max_tokens == 24 and r.latency_s >= 0 for r in records)
    first = records[0]
    assert first.answer.text == "Paris."
    assert first.answer.response_metadata["logprobs"]["content"][0]["logprob"] == -0.05
    assert first.prompt == prompt_for(EXAMPLES[0])


def test_collect_passes_the_token_limit_to_the_local_model() -> None:
    local = local_model()
    collect_local(EXAMPLES[:3], local, max_tokens=7, batch_size=8, progress=False)
    assert [c.get("max_tokens") for c in local.calls] == [7, 7, 7]


def test_a_failing_local_call_is_a_wrong_empty_answer_that_escalates() -> None:
    class Broken(KeyedLocalChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("prompt too long")

    [record] = collect_local(EXAMPLES[:1], Broken(), max_tokens=8, progress=False)
    assert not record.correct
    assert record.answer.response_metadata["finish_reason"] == "error"
    assert "prompt too long" in record.answer.response_metadata["error"]
    assert RoutingPolicy().judge(record.answer, max_tokens=8).escalate


def test_prompts_by_workload() -> None:
    rag, short, math = EXAMPLES[2], EXAMPLES[0], EXAMPLES[3]
    system, user = prompt_for(rag)
    assert isinstance(system, SystemMessage) and "does not say" in system.text
    assert "The tower stands in Paris." in user.text and rag.question in user.text
    assert prompt_for(short)[1] == HumanMessage(short.question)
    assert "step by step" in prompt_for(math)[0].text


def test_records_round_trip_through_jsonl_with_identical_decisions(tmp_path: Path) -> None:
    records = collect_local(EXAMPLES, local_model(), max_tokens=24, progress=False)
    path = tmp_path / "records.jsonl"
    save_records(path, records)
    loaded = load_records(path)
    assert loaded == records
    for threshold in (-0.1, -0.6, -1.5):
        policy = RoutingPolicy(threshold=threshold)
        before = [policy.judge(r.answer, max_tokens=r.max_tokens) for r in records]
        after = [policy.judge(r.answer, max_tokens=r.max_tokens) for r in loaded]
        assert after == before
    assert len({v.reason for v in before}) > 1


def test_examples_round_trip() -> None:
    for ex in EXAMPLES:
        assert Example.from_dict(json.loads(json.dumps(ex.to_dict()))) == ex


def test_bad_records_file_names_the_line(tmp_path: Path) -> None:
    good = LocalRecord("q", (HumanMessage("hi"),), AIMessage("x"), False, 0.1, 8)
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(good.to_dict()) + "\n{broken\n")
    with pytest.raises(DatasetError, match=r"r\.jsonl:2: not valid JSON"):
        load_records(path)
    path.write_text("")
    with pytest.raises(DatasetError, match="holds no records"):
        load_records(path)
    bad = good.to_dict() | {"correct": "yes"}
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(DatasetError, match=r":1: correct must be true or false"):
        load_records(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"answers": "Paris"},
        {"task": "essay"},
        {"answerable": "no"},
        {"question": ""},
        {"answers": ()},
    ],
)
def test_invalid_examples_are_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"id": "1", "question": "Who?", "answers": ("Ada",)} | kwargs
    with pytest.raises(ValueError):
        Example(**fields)  # type: ignore[arg-type]
