"""Dataset loading: the three shapes, reproducible samples, bad files named by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_hybrid.errors import DatasetError
from langchain_hybrid.evaluation import load_dataset

DATA = Path(__file__).parents[2] / "examples" / "data"


def test_nq_open_shape() -> None:
    examples = load_dataset(DATA / "nq_open_sample.jsonl")
    assert len(examples) == 40
    first = examples[0]
    row = json.loads((DATA / "nq_open_sample.jsonl").read_text().splitlines()[0])
    assert first.question == row["question"] and first.answers == tuple(row["answer"])
    assert first.task == "short" and first.context is None and first.answerable
    assert first.id == "nq_open_sample-1"


def test_squad_rag_shape() -> None:
    examples = load_dataset(DATA / "squad2_rag_sample.jsonl")
    assert len(examples) == 40
    assert sum(not ex.answerable for ex in examples) == 20
    assert all(ex.context for ex in examples)
    assert all(ex.answers for ex in examples if ex.answerable)
    assert all(ex.task == "short" for ex in examples)
    assert len({ex.id for ex in examples}) == 40  # the rows' own ids


def test_gsm8k_recorded_shape() -> None:
    examples = load_dataset(DATA / "gsm8k_recorded_sample.jsonl")
    rows = [json.loads(line) for line in (DATA / "gsm8k_recorded_sample.jsonl").open()]
    assert all(ex.task == "math" for ex in examples)
    for ex, row in zip(examples, rows, strict=True):
        assert ex.answers == (row["answer"],)
        gpt4 = ex.recorded["gpt-4-1106-preview"]
        assert gpt4.text == row["recorded"]["gpt-4-1106-preview"]["response"]
        assert gpt4.correct is row["recorded"]["gpt-4-1106-preview"]["correct"]
        assert gpt4.prompt_tokens is None


def test_own_rows_with_numbers_ids_and_tasks(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"id": "a", "question": "6*7?", "answer": 42},
        {"id": "b", "question": "Who?", "answers": ["Ada"], "task": "short"},
        {"id": "c", "question": "Cost?", "answer": "1,250.50"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b, c = load_dataset(path)
    assert (a.task, a.answers) == ("math", ("42",))
    assert (b.id, b.task) == ("b", "short")
    assert c.answers == ("1,250.50",)


def test_limit_and_seed_sample_reproducibly(tmp_path: Path) -> None:
    path = DATA / "nq_open_sample.jsonl"
    ids = [ex.id for ex in load_dataset(path)]
    first = [ex.id for ex in load_dataset(path, limit=10)]
    assert first == ids[:10]
    one = [ex.id for ex in load_dataset(path, limit=10, seed=3)]
    assert one == [ex.id for ex in load_dataset(path, limit=10, seed=3)]
    assert one != [ex.id for ex in load_dataset(path, limit=10, seed=4)]
    assert one == sorted(one, key=ids.index)  # kept in file order
    assert len(load_dataset(path, limit=100, seed=3)) == 40


GOOD = '{"question": "Capital of France?", "answer": ["Paris"]}'


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"answer": ["Paris"]}', "missing field 'question'"),
        ('{"question": "Capital?"}', "missing field 'answer'"),
        ('{"question": "Capital?", "answer": "Paris"}', "'answer' must be a list"),
        ('{"question": "Capital?", "answers": "Paris"}', "'answers' must be a list of strings"),
        ('{"question": "Q?", "answers": ["x"], "answerable": "yes"}', "answerable must be"),
        ('{"question": "Q?", "answers": ["x"], "context": 5}', "context must be a string"),
        ('{"question": "Q?", "answers": []}', "needs at least one accepted answer"),
        ('["Capital?", "Paris"]', "expected a JSON object"),
        ('{"question": "Q?", "answers": ["x"], "task": "essay"}', "'task' must be one of"),
        (
            '{"question": "6*7?", "answer": "42", "recorded": {"gpt-4": {"response": "42", '
            '"correct": "True"}}}',
            "recorded['gpt-4']: correct must be true, false or null",
        ),
        ('{"question": "6*7?", "answer": "42", "recorded": {"gpt-4": {}}}', "'response' string"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD}\n\n{bad_line}\n{GOOD}\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_empty_file_and_repeated_ids(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(DatasetError, match=r"empty\.jsonl:1: the file holds no examples"):
        load_dataset(path)
    path.write_text('{"id": "x", "question": "Q?", "answers": ["a"]}\n' * 2)
    with pytest.raises(DatasetError, match=r":2: id 'x' repeats line 1"):
        load_dataset(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.jsonl")
