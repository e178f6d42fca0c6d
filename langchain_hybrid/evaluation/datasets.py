r"""Load labelled examples from JSON Lines files.

One example per line, in any of these shapes (extra keys are ignored):

- Short answers (NQ-Open): ``{"question": str, "answer": [accepted answers]}``.
- RAG over a passage (SQuAD 2.0): ``{"question": str, "answers": [accepted spans],
  "context": str, "answerable": bool}`` (``context``, ``answerable`` and ``id`` optional;
  an unanswerable row may have no answers).
- Maths (GSM8K): ``{"question": str, "answer": final number, "recorded": {model:
  {"response": str, "correct": bool}}}`` (``recorded`` optional; task ``"math"``).

A row may name its ``task`` (``"short"`` or ``"math"``) and its ``id``; without an id it
is ``"<file stem>-<line>"``. Its ``group`` (what it is not independent of, held out together
when routing figures are validated) is the row's ``group`` field, else, for a row over a
passage, the passage's article (``title``) if the row names one and the passage itself
otherwise; ``load_dataset(path, group_by="field")`` takes any other field instead.
Recorded cloud answers may also give ``prompt_tokens``, ``completion_tokens`` and
``latency_s``. Files written with ``Example.to_dict`` load too.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "qa.jsonl")
    >>> _ = open(path, "w").write(
    ...     '{"question": "Capital of France?", "answer": ["Paris"]}\n'
    ...     '{"question": "6*7?", "answer": "42", "recorded": {"gpt-4": '
    ...     '{"response": "42", "correct": true}}}\n')
    >>> [(ex.id, ex.task, ex.answers) for ex in load_dataset(path)]
    [('qa-1', 'short', ('Paris',)), ('qa-2', 'math', ('42',))]
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from langchain_hybrid.errors import DatasetError
from langchain_hybrid.evaluation.records import TASKS, CloudRecord, Example, Task

__all__ = ["example_from_row", "load_dataset"]

_FIX = (
    "each line must be a JSON object with 'question' and 'answer' (a list of accepted "
    "answers, or a number for maths) or 'answers' (a list)"
)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            Decimal(value.replace(",", "").strip())
        except InvalidOperation:
            return False
        return True
    return False


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValueError(f"'{name}' must be a list of strings, got {json.dumps(value)[:60]}")
    return tuple(value)


def _recorded(value: Any) -> dict[str, CloudRecord]:
    if not isinstance(value, Mapping):
        raise ValueError("'recorded' must be an object of model name -> {response, correct}")
    out: dict[str, CloudRecord] = {}
    for model, entry in value.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"recorded[{model!r}] must be an object with 'response' and 'correct'")
        text = entry.get("response", entry.get("text"))
        if not isinstance(text, str):
            raise ValueError(f"recorded[{model!r}] needs a 'response' string")
        try:
            out[model] = CloudRecord(
                model=model,
                text=text,
                correct=entry.get("correct"),
                prompt_tokens=entry.get("prompt_tokens"),
                completion_tokens=entry.get("completion_tokens"),
                latency_s=entry.get("latency_s"),
            )
        except ValueError as e:
            raise ValueError(f"recorded[{model!r}]: {e}") from e
    return out


def example_from_row(row: Any, default_id: str, group_by: str | None = None) -> Example:
    """Turn one parsed row into an :class:`Example`; ``ValueError`` says what is wrong.

    ``group_by`` names the field that gives the example's group (see the module docstring).

    Example:
        >>> ex = example_from_row({"question": "Who?", "answers": [], "context": "x",
        ...                        "answerable": False, "title": "Normans"}, "r1")
        >>> ex.answerable, ex.group
        (False, 'title:Normans')
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing field 'question' (a non-empty string)")
    task: Task | None = row.get("task")
    if task is not None and task not in TASKS:
        raise ValueError(f"'task' must be one of {', '.join(TASKS)}, got {task!r}")
    if "answers" in row:
        answers = _string_list("answers", row["answers"])
    elif "answer" not in row:
        raise ValueError("missing field 'answer' (or 'answers')")
    elif isinstance(row["answer"], list):
        answers = _string_list("answer", row["answer"])
    elif _is_number(row["answer"]):
        answers = (str(row["answer"]).strip(),)
        task = task or "math"
    else:
        raise ValueError(
            f"'answer' must be a list of accepted answers or a number, got {row['answer']!r}"
        )
    row_id = row.get("id", default_id)
    if not isinstance(row_id, (str, int)) or isinstance(row_id, bool):
        raise ValueError(f"'id' must be a string, got {row_id!r}")
    return Example(
        id=str(row_id),
        question=question,
        answers=answers,
        context=row.get("context"),
        answerable=row.get("answerable", True),
        task=task or "short",
        recorded=_recorded(row.get("recorded") or {}),
        group=_group(row, group_by),
    )


def _group(row: Mapping[str, Any], group_by: str | None) -> str | None:
    """Return the row's group: the ``group_by`` field, else its group, article or passage."""
    if group_by is not None:
        if row.get(group_by) is None:
            raise ValueError(f"missing field {group_by!r} (the --group-by field)")
        return f"{group_by}:{_as_key(row[group_by])}"
    for key in ("group", "title"):
        if row.get(key) is not None:
            return f"{key}:{_as_key(row[key])}"
    context = row.get("context")
    if isinstance(context, str):  # the passage itself, by a short digest of its text
        return f"passage:{hashlib.sha256(context.encode()).hexdigest()[:12]}"
    return None


def _as_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def load_dataset(
    path: str | Path,
    *,
    limit: int | None = None,
    seed: int | None = None,
    group_by: str | None = None,
) -> list[Example]:
    r"""Load the examples of a JSON Lines file (shapes in the module docstring).

    Args:
        path: the file.
        limit: keep at most this many examples: the first ``limit`` rows, or with ``seed`` a
            random sample of ``limit`` rows (the same for the same seed), in file order.
        seed: the seed of the sample (only with ``limit``).
        group_by: the field that names each row's group (default: ``group``, else the
            article ``title``, else the passage ``context``; rows without one are groups
            of their own).

    Raises :class:`~langchain_hybrid.errors.DatasetError` naming the file and line for a
    malformed line, a missing field, a value of the wrong type, a repeated id or an empty
    file; ``OSError`` when the file cannot be read.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "qa.jsonl")
        >>> _ = open(path, "w").write("".join(
        ...     f'{{"question": "q{i}?", "answer": ["{i}"]}}\n' for i in range(10)))
        >>> [ex.id for ex in load_dataset(path, limit=3, seed=1)] == [
        ...     ex.id for ex in load_dataset(path, limit=3, seed=1)]
        True
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    path = Path(path)
    examples: list[Example] = []
    lines: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg}); {_FIX}") from e
            try:
                example = example_from_row(row, f"{path.stem}-{number}", group_by)
            except ValueError as e:
                raise DatasetError(f"{path}:{number}: {e}; {_FIX}") from e
            if example.id in lines:
                raise DatasetError(
                    f"{path}:{number}: id {example.id!r} repeats line {lines[example.id]}; "
                    "give every row its own 'id'"
                )
            lines[example.id] = number
            examples.append(example)
    if not examples:
        raise DatasetError(f"{path}:1: the file holds no examples; {_FIX}")
    if limit is None or limit >= len(examples):
        return examples
    if seed is None:
        return examples[:limit]
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]
