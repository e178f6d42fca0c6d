"""Evaluation: datasets, graders, local records, and the Cloud-only / Local-only / Hybrid report.

Names load lazily, so ``import langchain_hybrid`` stays light and the optional evaluation
dependencies (scikit-learn, rich) load only when the harness or the report is used.

Example:
    >>> from langchain_hybrid.evaluation import Example, grade
    >>> grade("Paris.", Example(id="1", question="Capital of France?", answers=("Paris",)))
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_hybrid.evaluation.collect import collect_local, prompt_for
    from langchain_hybrid.evaluation.datasets import load_dataset
    from langchain_hybrid.evaluation.graders import (
        Grader,
        declines,
        grade,
        grade_math,
        grade_short,
        normalize_answer,
    )
    from langchain_hybrid.evaluation.records import (
        CloudRecord,
        Example,
        LocalRecord,
        load_records,
        save_records,
    )

_EXPORTS: dict[str, str] = {
    "collect_local": "collect",
    "prompt_for": "collect",
    "load_dataset": "datasets",
    "Grader": "graders",
    "declines": "graders",
    "grade": "graders",
    "grade_math": "graders",
    "grade_short": "graders",
    "normalize_answer": "graders",
    "CloudRecord": "records",
    "Example": "records",
    "LocalRecord": "records",
    "load_records": "records",
    "save_records": "records",
}

__all__ = [
    "CloudRecord",
    "Example",
    "Grader",
    "LocalRecord",
    "collect_local",
    "declines",
    "grade",
    "grade_math",
    "grade_short",
    "load_dataset",
    "load_records",
    "normalize_answer",
    "prompt_for",
    "save_records",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
