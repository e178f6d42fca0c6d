r"""Training rows for tuning: what the model is asked, what it should answer, and its group.

A :class:`TuningRow` pairs an :class:`~langchain_hybrid.evaluation.records.Example` with
the answer the model is taught (its *target*) and the *group* it belongs to (rows of
one group are never split between training and validation):

- An answerable row's target is an accepted answer: the first one (``answer="first"``,
  the default) or the shortest (``answer="shortest"``).
- An unanswerable RAG row's target is exactly
  :data:`~langchain_hybrid.evaluation.collect.DECLINE_SENTENCE`.
- A row with no labelled answer but a recorded cloud answer is taught the cloud answer
  (one graded correct first, else the first recorded); a cloud answer that declines on a
  RAG row becomes the decline sentence and the row counts as unanswerable.
- A maths row is taught a recorded cloud answer graded correct (its steps end in the
  number, as the maths prompt asks), else ``"Answer: <number>"``.

The group is the row's article ``title`` when it has one, else its passage, else the row
itself. :func:`load_rows` reads the JSON Lines shapes of
:func:`~langchain_hybrid.evaluation.load_dataset` (plus cloud-only rows);
:func:`split_by_group` holds out whole groups; :func:`class_weights` weighs answerable
and unanswerable rows so that each class carries the same share of the loss.

Example:
    >>> from langchain_hybrid.evaluation.records import Example
    >>> rows = rows_from_examples([
    ...     Example(id="1", question="Who?", answers=("Ada Lovelace", "Ada"), context="Ada."),
    ...     Example(id="2", question="When?", answers=(), context="Ada.", answerable=False),
    ... ], answer="shortest")
    >>> [(r.target, r.answerable) for r in rows]
    [('Ada', True), ('The passage does not say.', False)]
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_hybrid.errors import DatasetError
from langchain_hybrid.evaluation.collect import DECLINE_SENTENCE
from langchain_hybrid.evaluation.datasets import example_from_row
from langchain_hybrid.evaluation.graders import declines
from langchain_hybrid.evaluation.records import CloudRecord, Example

__all__ = [
    "AnswerChoice",
    "Balance",
    "TuningRow",
    "class_counts",
    "class_weights",
    "data_fingerprint",
    "load_rows",
    "oversample",
    "rows_from_examples",
    "split_by_group",
    "target_for",
]

#: Which accepted answer an answerable row is taught: the first listed or the shortest.
AnswerChoice = Literal["first", "shortest"]
#: How the answerable and unanswerable classes are balanced: loss weights, oversampling
#: of the smaller class, or not at all.
Balance = Literal["weight", "oversample", "none"]

_BALANCES: tuple[str, ...] = ("weight", "oversample", "none")
_CHOICES: tuple[str, ...] = ("first", "shortest")


@dataclass(frozen=True)
class TuningRow:
    """One training or validation row.

    Attributes:
        example: the labelled question (its prompt is
            :func:`~langchain_hybrid.evaluation.collect.prompt_for` of it).
        target: the answer the model is taught (without the end-of-turn token).
        group: rows sharing a group are held out together (article, passage or row).
        source: ``"label"`` when the target comes from the labels, ``"cloud"`` when from
            a recorded cloud answer.
    """

    example: Example
    target: str
    group: str
    source: Literal["label", "cloud"] = "label"

    @property
    def answerable(self) -> bool:
        """Whether the row's right answer is an answer (False: it declines)."""
        return self.example.answerable


def _check_choice(answer: str) -> None:
    if answer not in _CHOICES:
        raise ValueError(f"answer must be one of {', '.join(_CHOICES)}, got {answer!r}")


def _cloud_pick(recorded: Mapping[str, CloudRecord], model: str | None) -> CloudRecord | None:
    """Return the cloud answer to teach: ``model``'s, else a correct one, else the first."""
    if model is not None:
        return recorded.get(model)
    correct = [r for r in recorded.values() if r.correct is True and r.text.strip()]
    if correct:
        return correct[0]
    usable = [r for r in recorded.values() if r.correct is not False and r.text.strip()]
    return usable[0] if usable else None


def target_for(
    example: Example, *, answer: AnswerChoice = "first", cloud_model: str | None = None
) -> str:
    """Return the answer ``example`` teaches (rules in the module docstring).

    Example:
        >>> target_for(Example(id="1", question="6*7?", answers=("42",), task="math"))
        'Answer: 42'
        >>> target_for(Example(id="2", question="Who?", answers=("Ada Lovelace", "Ada")),
        ...            answer="shortest")
        'Ada'
    """
    _check_choice(answer)
    if example.task == "math":
        cloud = _cloud_pick(
            {k: r for k, r in example.recorded.items() if r.correct is True}, cloud_model
        )
        return cloud.text.strip() if cloud else f"Answer: {example.answers[0]}"
    if not example.answerable:
        return DECLINE_SENTENCE
    answers = [a.strip() for a in example.answers if a.strip()]
    if not answers:
        raise ValueError(f"example {example.id!r} has no non-empty accepted answer")
    return min(answers, key=len) if answer == "shortest" else answers[0]


def _group_of(example: Example, title: Any) -> str:
    if isinstance(title, str) and title.strip():
        return f"title:{title.strip()}"
    if example.context is not None:
        return "passage:" + hashlib.sha256(example.context.encode()).hexdigest()[:16]
    return f"row:{example.id}"


def rows_from_examples(
    examples: Iterable[Example],
    *,
    answer: AnswerChoice = "first",
    titles: Mapping[str, str] | None = None,
    cloud_model: str | None = None,
) -> list[TuningRow]:
    """Turn examples into rows; ``titles`` maps example ids to their article (the group).

    Without a title an example is grouped by its passage, else by itself.

    Example:
        >>> ex = Example(id="1", question="Who?", answers=("Ada",), context="Ada wrote it.")
        >>> rows_from_examples([ex], titles={"1": "Computing"})[0].group
        'title:Computing'
    """
    titles = titles or {}
    return [
        TuningRow(
            example=ex,
            target=target_for(ex, answer=answer, cloud_model=cloud_model),
            group=_group_of(ex, titles.get(ex.id)),
        )
        for ex in examples
    ]


def _has_label(row: Mapping[str, Any]) -> bool:
    if row.get("answerable") is False:
        return True
    for key in ("answers", "answer"):
        value = row.get(key)
        if isinstance(value, list) and any(isinstance(v, str) and v.strip() for v in value):
            return True
        if value is not None and not isinstance(value, list) and str(value).strip():
            return True
    return False


def _row(raw: Any, default_id: str, *, answer: AnswerChoice, cloud_model: str | None) -> TuningRow:
    """Parse one JSON row into a :class:`TuningRow`; ``ValueError`` says what is wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    if _has_label(raw):
        example = example_from_row(raw, default_id)
        return TuningRow(
            example=example,
            target=target_for(example, answer=answer, cloud_model=cloud_model),
            group=_group_of(example, raw.get("title")),
        )
    # No labelled answer: teach the recorded cloud answer.
    probe = example_from_row({**raw, "answers": [], "answerable": False}, default_id)
    cloud = _cloud_pick(probe.recorded, cloud_model)
    if cloud is None:
        wanted = f"of {cloud_model!r} " if cloud_model else ""
        raise ValueError(
            f"the row has no labelled answer and no usable recorded cloud answer {wanted}"
            "(give 'answers', or 'recorded': {model: {'response': ...}})"
        )
    text = cloud.text.strip()
    if probe.context is not None and declines(text):
        example = example_from_row({**raw, "answers": [], "answerable": False}, default_id)
        target = DECLINE_SENTENCE
    else:
        example = example_from_row({**raw, "answers": [text], "answerable": True}, default_id)
        target = text
    return TuningRow(
        example=example, target=target, group=_group_of(example, raw.get("title")), source="cloud"
    )


def load_rows(
    path: str | Path,
    *,
    answer: AnswerChoice = "first",
    cloud_model: str | None = None,
    exclude_ids: Iterable[str] = (),
) -> list[TuningRow]:
    r"""Load the rows of a JSON Lines file, skipping those whose id is in ``exclude_ids``.

    Reads every shape :func:`~langchain_hybrid.evaluation.load_dataset` reads, and rows with
    no labelled answer but ``recorded`` cloud answers (the cloud answer is the target; see
    the module docstring). Raises :class:`~langchain_hybrid.errors.DatasetError` naming the
    file and line of a bad row, a repeated id, or a file without rows.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "rag.jsonl")
        >>> _ = open(path, "w").write(
        ...     '{"id": "a", "title": "T", "context": "Ada wrote it.", "question": "Who?", '
        ...     '"answers": ["Ada"], "answerable": true}\n'
        ...     '{"id": "b", "context": "Ada wrote it.", "question": "When?", '
        ...     '"recorded": {"gpt": {"response": "The passage does not say when."}}}\n')
        >>> [(r.example.id, r.target, r.source, r.group[:6]) for r in load_rows(path)]
        [('a', 'Ada', 'label', 'title:'), ('b', 'The passage does not say.', 'cloud', 'passag')]
    """
    _check_choice(answer)
    path = Path(path)
    excluded = set(exclude_ids)
    rows: list[TuningRow] = []
    lines: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg})") from e
            try:
                row = _row(raw, f"{path.stem}-{number}", answer=answer, cloud_model=cloud_model)
            except ValueError as e:
                raise DatasetError(f"{path}:{number}: {e}") from e
            row_id = row.example.id
            if row_id in lines:
                raise DatasetError(
                    f"{path}:{number}: id {row_id!r} repeats line {lines[row_id]}; "
                    "give every row its own 'id'"
                )
            lines[row_id] = number
            if row_id not in excluded:
                rows.append(row)
    if not rows:
        raise DatasetError(f"{path}:1: the file holds no rows to tune on")
    return rows


def data_fingerprint(path: str | Path | None, rows: Sequence[TuningRow]) -> str:
    """Return the SHA-256 of the file, or of the rows' content when they came from memory.

    Example:
        >>> ex = Example(id="1", question="Who?", answers=("Ada",))
        >>> len(data_fingerprint(None, rows_from_examples([ex])))
        64
    """
    digest = hashlib.sha256()
    if path is not None:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    for row in rows:
        record = {"example": row.example.to_dict(), "target": row.target, "group": row.group}
        digest.update(json.dumps(record, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def class_counts(rows: Iterable[TuningRow]) -> dict[str, int]:
    """Count rows per class (``"answerable"``, ``"unanswerable"``).

    Example:
        >>> ex = Example(id="1", question="Who?", answers=("Ada",))
        >>> class_counts(rows_from_examples([ex]))
        {'answerable': 1, 'unanswerable': 0}
    """
    counts = Counter("answerable" if r.answerable else "unanswerable" for r in rows)
    return {"answerable": counts["answerable"], "unanswerable": counts["unanswerable"]}


def split_by_group(
    rows: Sequence[TuningRow], fraction: float, *, seed: int = 0
) -> tuple[list[TuningRow], list[TuningRow]]:
    """Hold out whole groups, about ``fraction`` of the rows, as validation.

    Groups are shuffled with ``seed`` and taken until they hold ``fraction`` of the rows
    (at least one group; at least one group stays for training). Returns
    ``(train, validation)`` in the original order.

    Example:
        >>> exs = [Example(id=str(i), question="q?", answers=("a",), context=f"p{i % 5}")
        ...        for i in range(20)]
        >>> train, val = split_by_group(rows_from_examples(exs), 0.2)
        >>> len(train), len(val), {r.group for r in train} & {r.group for r in val}
        (16, 4, set())
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}")
    sizes = Counter(r.group for r in rows)
    if len(sizes) < 2:
        raise ValueError(
            "cannot hold out a validation split: all rows share one group "
            f"({next(iter(sizes), 'none')}); pass a validation file instead"
        )
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    held: set[str] = set()
    total = 0
    for group in order[:-1]:
        if held and total >= fraction * len(rows):
            break
        held.add(group)
        total += sizes[group]
    train = [r for r in rows if r.group not in held]
    validation = [r for r in rows if r.group in held]
    return train, validation


def class_weights(
    rows: Sequence[TuningRow], *, answerable_weight: float = 1.0
) -> dict[bool, float]:
    """Return loss weights by ``answerable`` that give each present class an equal share.

    ``answerable_weight`` then multiplies the answerable class's weight (above 1 favours
    answering over declining). Weights average 1 over ``rows``.

    Example:
        >>> exs = [Example(id=str(i), question="q?", answers=("a",) if i < 3 else (),
        ...                context="p", answerable=i < 3) for i in range(4)]
        >>> class_weights(rows_from_examples(exs))
        {True: 0.6666666666666666, False: 2.0}
    """
    if answerable_weight <= 0:
        raise ValueError(f"answerable_weight must be > 0, got {answerable_weight}")
    counts = class_counts(rows)
    present = {True: counts["answerable"], False: counts["unanswerable"]}
    classes = [c for c, n in present.items() if n]
    raw = {c: (answerable_weight if c else 1.0) / (len(classes) * present[c]) for c in classes}
    mean = sum(raw[c] * present[c] for c in classes) / max(1, len(rows))
    return {c: raw.get(c, 0.0) / mean if c in raw else 1.0 for c in (True, False)}


def oversample(
    rows: Sequence[TuningRow], *, seed: int = 0, answerable_weight: float = 1.0
) -> list[TuningRow]:
    """Repeat rows of the smaller class (randomly, with ``seed``) until the classes match.

    With ``answerable_weight`` w, the answerable class is brought to w times the
    unanswerable one instead (rounded).

    Example:
        >>> exs = [Example(id=str(i), question="q?", answers=("a",) if i < 3 else (),
        ...                context="p", answerable=i < 3) for i in range(4)]
        >>> class_counts(oversample(rows_from_examples(exs)))
        {'answerable': 3, 'unanswerable': 3}
    """
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    if not answerable or not unanswerable:
        return list(rows)
    rng = random.Random(seed)
    if len(answerable) < answerable_weight * len(unanswerable):
        want_answerable, want_unanswerable = round(answerable_weight * len(unanswerable)), 0
    else:
        want_answerable, want_unanswerable = 0, round(len(answerable) / answerable_weight)

    def grow(part: list[TuningRow], size: int) -> list[TuningRow]:
        pool = list(part)
        rng.shuffle(pool)
        return part + [pool[i % len(pool)] for i in range(max(0, size - len(part)))]

    return grow(answerable, want_answerable) + grow(unanswerable, want_unanswerable)
