"""The data that evaluation and calibration share: examples, cloud and local records.

An :class:`Example` is one labelled question (from :func:`~langchain_hybrid.evaluation.
datasets.load_dataset`); a :class:`CloudRecord` is one recorded cloud answer to it; a
:class:`LocalRecord` is what the local tier really answered (the ``AIMessage`` with its
log-probs and finish reason), whether that was correct, and how long it took. A saved
policy replays the live decision on a record with
``policy.judge(record.answer, max_tokens=record.max_tokens)``, so the local model runs once
per example and every policy is judged on the same answers.

Records are saved as JSON Lines (:func:`save_records`, :func:`load_records`); messages go
through langchain-core's ``messages_to_dict`` / ``messages_from_dict``.

Example:
    >>> import os, tempfile
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> record = LocalRecord(
    ...     example_id="q1",
    ...     prompt=(HumanMessage("Capital of France?"),),
    ...     answer=AIMessage("Paris", response_metadata={"finish_reason": "stop",
    ...         "logprobs": {"content": [{"token": "Paris", "logprob": -0.05}]}}),
    ...     correct=True, latency_s=0.2, max_tokens=32)
    >>> path = os.path.join(tempfile.mkdtemp(), "records.jsonl")
    >>> save_records(path, [record])
    >>> load_records(path) == [record]
    True
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict, messages_to_dict

from langchain_hybrid.errors import DatasetError

__all__ = [
    "TASKS",
    "CloudRecord",
    "Example",
    "LocalRecord",
    "Task",
    "load_records",
    "prompt_digest",
    "save_records",
]


def prompt_digest(prompt: Iterable[BaseMessage]) -> str:
    """Return a short fingerprint of a prompt: 12 hex digits of the SHA-256 of its messages.

    A policy's ``fitted_on`` lists the digests of the prompts it was fitted on
    (``prompt_digests``), which lets evaluation say when it measures on the same rows
    without the policy file holding any of their text.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> prompt_digest([HumanMessage("Capital of France?")])
        '55c744abb1b8'
    """
    digest = hashlib.sha256()
    for message in prompt:
        digest.update(f"{message.type}\x00{message.text}\x00".encode())
    return digest.hexdigest()[:12]


#: What an example asks for: a short factual answer, or a final number.
Task = Literal["short", "math"]
TASKS: tuple[Task, ...] = get_args(Task)


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
    return value


def _seconds(name: str, value: Any, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CloudRecord:
    """One recorded cloud answer: the model, its text and whether it was graded correct.

    ``correct`` is None when the recording was not graded. Token counts and latency are
    None when they were not recorded.

    Example:
        >>> r = CloudRecord(model="gpt-4-1106-preview", text="... #### 18", correct=True)
        >>> CloudRecord.from_dict(r.to_dict()) == r
        True
    """

    model: str
    text: str
    correct: bool | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty string, got {self.model!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"text must be a string, got {type(self.text).__name__}")
        if self.correct is not None and not isinstance(self.correct, bool):
            raise ValueError(f"correct must be true, false or null, got {self.correct!r}")
        _optional_count("prompt_tokens", self.prompt_tokens)
        _optional_count("completion_tokens", self.completion_tokens)
        object.__setattr__(self, "latency_s", _seconds("latency_s", self.latency_s, optional=True))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of every field.

        Example:
            >>> CloudRecord("m", "42", True).to_dict()["text"]
            '42'
        """
        return {
            "model": self.model,
            "text": self.text,
            "correct": self.correct,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CloudRecord:
        """Build a record from :meth:`to_dict` output; ``ValueError`` on bad content.

        Example:
            >>> CloudRecord.from_dict({"model": "m", "text": "42", "correct": None}).correct is None
            True
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a cloud record must be an object, got {type(data).__name__}")
        missing = [k for k in ("model", "text", "correct") if k not in data]
        if missing:
            raise ValueError(f"a cloud record needs {', '.join(repr(k) for k in missing)}")
        return cls(
            model=data["model"],
            text=data["text"],
            correct=data["correct"],
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            latency_s=data.get("latency_s"),
        )


@dataclass(frozen=True)
class Example:
    """One labelled question of an evaluation or calibration set.

    Args:
        id: a stable identifier (records refer to it).
        question: what is asked.
        answers: the accepted answers (for ``math``, one final number as text).
        context: the passage a RAG prompt answers from, or None.
        answerable: False when the passage does not hold the answer (the right answer
            declines).
        task: ``"short"`` (a short factual answer) or ``"math"`` (a final number).
        recorded: recorded cloud answers by model name.
        group: what the example is not independent of (its article or passage): rows of
            one group are held out together when routing figures are validated. None: the
            example is a group of its own (see :attr:`group_key`).

    Example:
        >>> ex = Example(id="1", question="2+2?", answers=("4",), task="math")
        >>> Example.from_dict(ex.to_dict()) == ex
        True
    """

    id: str
    question: str
    answers: tuple[str, ...]
    context: str | None = None
    answerable: bool = True
    task: Task = "short"
    recorded: Mapping[str, CloudRecord] = field(default_factory=dict)
    group: str | None = None

    @property
    def group_key(self) -> str:
        """The group validation holds out together: ``group``, else the example itself.

        Example:
            >>> Example(id="1", question="Who?", answers=("Ada",)).group_key
            'example:1'
        """
        return self.group if self.group is not None else f"example:{self.id}"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError("question must be a non-empty string")
        if not isinstance(self.answers, (list, tuple)) or not all(
            isinstance(a, str) for a in self.answers
        ):
            raise ValueError(f"answers must be a list of strings, got {self.answers!r}")
        object.__setattr__(self, "answers", tuple(self.answers))
        if self.context is not None and not isinstance(self.context, str):
            raise ValueError(f"context must be a string or None, got {type(self.context).__name__}")
        if not isinstance(self.answerable, bool):
            raise ValueError(f"answerable must be true or false, got {self.answerable!r}")
        if self.answerable and not self.answers:
            raise ValueError("an answerable example needs at least one accepted answer")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not isinstance(self.recorded, Mapping) or not all(
            isinstance(r, CloudRecord) for r in self.recorded.values()
        ):
            raise ValueError("recorded must map model names to CloudRecord")
        object.__setattr__(self, "recorded", dict(self.recorded))
        if self.group is not None and not isinstance(self.group, str):
            raise ValueError(f"group must be a string or None, got {type(self.group).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of every field.

        Example:
            >>> Example(id="1", question="Who?", answers=("Ada",)).to_dict()["answers"]
            ['Ada']
        """
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "context": self.context,
            "answerable": self.answerable,
            "task": self.task,
            "recorded": {name: r.to_dict() for name, r in self.recorded.items()},
            "group": self.group,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Example:
        """Build an example from :meth:`to_dict` output; ``ValueError`` on bad content.

        Example:
            >>> Example.from_dict({"id": "1", "question": "Who?", "answers": ["Ada"]}).task
            'short'
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"an example must be an object, got {type(data).__name__}")
        missing = [k for k in ("id", "question", "answers") if k not in data]
        if missing:
            raise ValueError(f"an example needs {', '.join(repr(k) for k in missing)}")
        recorded = data.get("recorded") or {}
        if not isinstance(recorded, Mapping):
            raise ValueError("recorded must be an object of model name -> cloud record")
        return cls(
            id=data["id"],
            question=data["question"],
            answers=data["answers"],
            context=data.get("context"),
            answerable=data.get("answerable", True),
            task=data.get("task", "short"),
            recorded={name: CloudRecord.from_dict(r) for name, r in recorded.items()},
            group=data.get("group"),
        )


@dataclass(frozen=True)
class LocalRecord:
    """What the local tier answered to one example, graded and timed.

    ``answer`` is the local model's real ``AIMessage``: ``response_metadata`` carries
    ``logprobs`` (OpenAI's shape) and ``finish_reason``, ``usage_metadata`` the tokens.
    ``prompt`` is what the local model was sent; ``max_tokens`` its token limit, which
    :meth:`~langchain_hybrid.routing.policy.RoutingPolicy.judge` needs to replay the live
    decision exactly. ``group`` is the example's (:attr:`Example.group_key`): calibration
    holds records of one group out together.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid import RoutingPolicy
        >>> r = LocalRecord("q1", (HumanMessage("2+2?"),), AIMessage("I don't know."),
        ...                 correct=False, latency_s=0.1, max_tokens=16)
        >>> RoutingPolicy().judge(r.answer, max_tokens=r.max_tokens).reason
        'hedge'
    """

    example_id: str
    prompt: tuple[BaseMessage, ...]
    answer: AIMessage
    correct: bool
    latency_s: float
    max_tokens: int
    group: str | None = None

    @property
    def group_key(self) -> str:
        """The group validation holds out together: ``group``, else the record itself."""
        return self.group if self.group is not None else f"example:{self.example_id}"

    def __post_init__(self) -> None:
        if not isinstance(self.example_id, str) or not self.example_id:
            raise ValueError(f"example_id must be a non-empty string, got {self.example_id!r}")
        if not all(isinstance(m, BaseMessage) for m in self.prompt):
            raise ValueError("prompt must be a sequence of messages")
        object.__setattr__(self, "prompt", tuple(self.prompt))
        if not isinstance(self.answer, AIMessage):
            raise ValueError(f"answer must be an AIMessage, got {type(self.answer).__name__}")
        if not isinstance(self.correct, bool):
            raise ValueError(f"correct must be true or false, got {self.correct!r}")
        object.__setattr__(self, "latency_s", _seconds("latency_s", self.latency_s, optional=False))
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"max_tokens must be an integer, got {self.max_tokens!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict; messages in langchain-core's ``messages_to_dict`` form.

        Example:
            >>> from langchain_core.messages import AIMessage
            >>> LocalRecord("q", (), AIMessage("x"), False, 0.0, 8).to_dict()["answer"]["type"]
            'ai'
        """
        return {
            "example_id": self.example_id,
            "prompt": messages_to_dict(list(self.prompt)),
            "answer": messages_to_dict([self.answer])[0],
            "correct": self.correct,
            "latency_s": self.latency_s,
            "max_tokens": self.max_tokens,
            "group": self.group,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocalRecord:
        """Build a record from :meth:`to_dict` output; ``ValueError`` on bad content.

        Example:
            >>> from langchain_core.messages import AIMessage
            >>> r = LocalRecord("q", (), AIMessage("x"), False, 0.5, 8)
            >>> LocalRecord.from_dict(r.to_dict()) == r
            True
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a local record must be an object, got {type(data).__name__}")
        missing = [k for k in ("example_id", "prompt", "answer", "correct", "latency_s",
                               "max_tokens") if k not in data]  # fmt: skip
        if missing:
            raise ValueError(f"a local record needs {', '.join(repr(k) for k in missing)}")
        try:
            prompt = messages_from_dict(data["prompt"])
            (answer,) = messages_from_dict([data["answer"]])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"messages not in messages_to_dict form ({e})") from e
        if not isinstance(answer, AIMessage):
            raise ValueError(f"answer must be an AI message, got {type(answer).__name__}")
        return cls(
            example_id=data["example_id"],
            prompt=tuple(prompt),
            answer=answer,
            correct=data["correct"],
            latency_s=data["latency_s"],
            max_tokens=data["max_tokens"],
            group=data.get("group"),
        )


def save_records(path: str | Path, records: Iterable[LocalRecord]) -> None:
    r"""Write local records to ``path`` as JSON Lines (one record per line).

    Example:
        >>> import os, tempfile
        >>> from langchain_core.messages import AIMessage
        >>> p = os.path.join(tempfile.mkdtemp(), "r.jsonl")
        >>> save_records(p, [LocalRecord("q", (), AIMessage("x"), False, 0.5, 8)])
        >>> open(p).read().count("\n")
        1
    """
    lines = [json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False) for r in records]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def load_records(path: str | Path) -> list[LocalRecord]:
    r"""Read local records written by :func:`save_records`.

    Raises :class:`~langchain_hybrid.errors.DatasetError` naming the file and line for a
    malformed line, and ``OSError`` when the file cannot be read.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "r.jsonl")
        >>> _ = open(p, "w").write('{"example_id": "q"}\n')
        >>> try:
        ...     load_records(p)
        ... except DatasetError as e:
        ...     print(str(e).split(": ", 1)[1].split(";")[0])
        a local record needs 'prompt', 'answer', 'correct', 'latency_s', 'max_tokens'
    """
    records: list[LocalRecord] = []
    fix = "write records with save_records() (or collect them again with collect_local())"
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(LocalRecord.from_dict(json.loads(line)))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg}); {fix}") from e
            except ValueError as e:
                raise DatasetError(f"{path}:{number}: {e}; {fix}") from e
    if not records:
        raise DatasetError(f"{path}:1: the file holds no records; {fix}")
    return records
