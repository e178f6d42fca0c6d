"""Tuning: train a LoRA adapter (or full weights) of a local model on labelled questions.

Names load lazily, so ``import langchain_hybrid.tuning`` stays light; torch, transformers
and peft load when :func:`tune` runs.

Example:
    >>> from langchain_hybrid.tuning import tune, AdapterCard
    >>> result = tune("train.jsonl", output="adapter/", epochs=2)  # doctest: +SKIP
    >>> AdapterCard.load("adapter/").validation["best"]["answerable_accuracy"]  # doctest: +SKIP
    0.48
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_hybrid.tuning.card import CARD_FILE, AdapterCard
    from langchain_hybrid.tuning.data import (
        TuningRow,
        class_counts,
        class_weights,
        load_rows,
        oversample,
        rows_from_examples,
        split_by_group,
        target_for,
    )
    from langchain_hybrid.tuning.encoding import AnswerCollator, encode_rows
    from langchain_hybrid.tuning.langsmith_export import ExportSummary, export_escalations
    from langchain_hybrid.tuning.loading import (
        AdapterMismatchError,
        apply_adapter,
        embedded_fingerprint,
        folder_fingerprint,
    )
    from langchain_hybrid.tuning.recorder import EscalationRecorder, escalation_row
    from langchain_hybrid.tuning.training import TuneResult, cpu_supports_bf16, tune
    from langchain_hybrid.tuning.validation import ValidationScores, score_answers

_EXPORTS: dict[str, str] = {
    "CARD_FILE": "card",
    "AdapterCard": "card",
    "TuningRow": "data",
    "class_counts": "data",
    "class_weights": "data",
    "load_rows": "data",
    "oversample": "data",
    "rows_from_examples": "data",
    "split_by_group": "data",
    "target_for": "data",
    "AnswerCollator": "encoding",
    "encode_rows": "encoding",
    "ExportSummary": "langsmith_export",
    "export_escalations": "langsmith_export",
    "AdapterMismatchError": "loading",
    "apply_adapter": "loading",
    "embedded_fingerprint": "loading",
    "folder_fingerprint": "loading",
    "EscalationRecorder": "recorder",
    "escalation_row": "recorder",
    "TuneResult": "training",
    "cpu_supports_bf16": "training",
    "tune": "training",
    "ValidationScores": "validation",
    "score_answers": "validation",
}

__all__ = [
    "CARD_FILE",
    "AdapterCard",
    "AdapterMismatchError",
    "AnswerCollator",
    "EscalationRecorder",
    "ExportSummary",
    "TuneResult",
    "TuningRow",
    "ValidationScores",
    "class_counts",
    "apply_adapter",
    "class_weights",
    "cpu_supports_bf16",
    "embedded_fingerprint",
    "encode_rows",
    "escalation_row",
    "export_escalations",
    "folder_fingerprint",
    "load_rows",
    "oversample",
    "rows_from_examples",
    "score_answers",
    "split_by_group",
    "target_for",
    "tune",
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
