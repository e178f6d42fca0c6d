"""The evaluation report: the Cloud-only / Local-only / Hybrid table, AUROCs, and notes.

:class:`SystemRow` is one row of the table (accuracy with its 95% Wilson interval, cloud
share, estimated API cost, mean and p95 latency, cost avoided); :class:`EvaluationReport`
holds the three rows, each scorer's AUROC for predicting local correctness, and plain-text
notes (what was assumed or estimated, and whether the local model is good enough for the
workload). :meth:`EvaluationReport.table` renders it with rich.

Example:
    >>> row = SystemRow("hybrid", n=100, accuracy=0.82, cloud_share=0.3, cost_usd=0.12,
    ...                 cost_avoided_usd=0.28, latency_mean_s=0.9, latency_p95_s=2.1)
    >>> [round(x, 3) for x in row.accuracy_ci]
    [0.733, 0.883]
    >>> report = EvaluationReport(dataset="qa.jsonl", n=100, cloud_source="replay gpt-4",
    ...                           rows=(row,), auroc={"policy": 0.7})
    >>> report.as_dict()["rows"][0]["accuracy"]
    82.0
    >>> "Hybrid" in report.table()
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_hybrid.evaluation.records import LocalRecord
from langchain_hybrid.evaluation.statistics import wilson_interval

__all__ = [
    "SYSTEMS",
    "EvaluationReport",
    "System",
    "SystemRow",
    "wilson_interval",
]

#: The systems a report compares, in table order.
System = Literal["cloud-only", "local-only", "base-local-only", "hybrid"]
#: The systems a report computes by default (``base-local-only`` needs a second model).
SYSTEMS: tuple[System, ...] = ("cloud-only", "local-only", "hybrid")
_TITLES: dict[str, str] = {
    "cloud-only": "Cloud-only",
    "local-only": "Local-only",
    "base-local-only": "Local-only (base)",
    "hybrid": "Hybrid",
}


@dataclass(frozen=True)
class SystemRow:
    """One system's figures over the evaluation set (fractions and seconds; USD).

    ``latency_mean_s`` and ``latency_p95_s`` are None when some latency is unknown (e.g. a
    replayed cloud without recorded latencies); ``accuracy_ci`` is the 95% Wilson interval.
    ``by_class`` (questions over a passage only): ``answerable`` and ``unanswerable``, each
    ``{"n", "accuracy"}``, and ``decline_rate``, the share of answers that decline (None
    when some answer's text is unknown, as with an assumed cloud accuracy).

    Example:
        >>> SystemRow("local-only", 10, 0.5, 0.0, 0.0, 1.0, 0.2, 0.3).as_dict()["accuracy_ci"]
        [23.66, 76.34]
    """

    system: System
    n: int
    accuracy: float
    cloud_share: float
    cost_usd: float
    cost_avoided_usd: float
    latency_mean_s: float | None
    latency_p95_s: float | None
    by_class: Mapping[str, Any] | None = None

    @property
    def accuracy_ci(self) -> tuple[float, float]:
        """The 95% Wilson interval of the accuracy (fractions)."""
        return wilson_interval(self.accuracy * self.n, self.n)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict; accuracy, its interval and cloud share in percent."""
        lo, hi = self.accuracy_ci
        return {
            "system": self.system,
            "n": self.n,
            "accuracy": round(100 * self.accuracy, 2),
            "accuracy_ci": [round(100 * lo, 2), round(100 * hi, 2)],
            "cloud_share": round(100 * self.cloud_share, 2),
            "cost_usd": round(self.cost_usd, 6),
            "cost_avoided_usd": round(self.cost_avoided_usd, 6),
            "latency_mean_s": _round(self.latency_mean_s),
            "latency_p95_s": _round(self.latency_p95_s),
            "by_class": _rounded(self.by_class),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, Mapping):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


@dataclass(frozen=True)
class EvaluationReport:
    """The result of :func:`~langchain_hybrid.evaluation.harness.evaluate`.

    Args:
        dataset: what was evaluated (a file name or a label).
        n: the number of examples.
        cloud_source: how the cloud answered (``live <model>``, ``replay <model>`` or
            ``assumed accuracy <p>``).
        rows: one :class:`SystemRow` per system, in :data:`SYSTEMS` order.
        auroc: AUROC of each scorer (and ``"policy"``, the policy's own scorer) for
            predicting that the local answer is correct; None when undefined (one class).
        reasons: how many hybrid decisions had each routing reason.
        notes: assumptions, estimates and warnings, one line each.
        settings: what produced the report (policy, max_tokens, models, prices).
        records: the local records the report was computed on, in example order (not part
            of :meth:`as_dict`; save them with ``save_records(path, report.records)``).
        auroc_ci: 95% intervals of the AUROCs, from a bootstrap over groups (None where
            undefined).

    Example:
        >>> r = EvaluationReport("d", 0, "replay m", rows=(), auroc={})
        >>> r.verdict is None
        True
    """

    dataset: str
    n: int
    cloud_source: str
    rows: Sequence[SystemRow]
    auroc: Mapping[str, float | None]
    reasons: Mapping[str, int] = field(default_factory=dict)
    notes: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    records: Sequence[LocalRecord] = field(default=(), repr=False, compare=False)
    auroc_ci: Mapping[str, tuple[float, float] | None] = field(default_factory=dict)

    def row(self, system: System) -> SystemRow | None:
        """Return the row of ``system``, or None when it was not evaluated.

        Example:
            >>> EvaluationReport("d", 0, "x", rows=(), auroc={}).row("hybrid") is None
            True
        """
        return next((r for r in self.rows if r.system == system), None)

    @property
    def verdict(self) -> str | None:
        """One plain line when the local model is not good enough for this workload, else None.

        It is not good enough when the hybrid loses more than one accuracy point against
        cloud-only, or when local-only accuracy is below half of cloud-only accuracy.

        Example:
            >>> rows = (SystemRow("cloud-only", 100, 0.9, 1.0, 1.0, 0.0, None, None),
            ...         SystemRow("local-only", 100, 0.2, 0.0, 0.0, 1.0, None, None))
            >>> EvaluationReport("d", 100, "x", rows=rows, auroc={}).verdict.split(":")[0]
            'The local model is not good enough for this workload'
        """
        cloud, local, hybrid = (self.row(s) for s in SYSTEMS)
        if cloud is None:
            return None
        problems: list[str] = []
        if hybrid is not None and hybrid.accuracy < cloud.accuracy - 0.01:
            problems.append(
                f"the hybrid is {100 * (cloud.accuracy - hybrid.accuracy):.1f} points below "
                f"cloud-only ({100 * hybrid.accuracy:.1f}% vs {100 * cloud.accuracy:.1f}%)"
            )
        if local is not None and local.accuracy < cloud.accuracy / 2:
            problems.append(
                f"local-only accuracy is {100 * local.accuracy:.1f}% against "
                f"{100 * cloud.accuracy:.1f}% for cloud-only"
            )
        if not problems:
            return None
        return (
            "The local model is not good enough for this workload: "
            + "; ".join(problems)
            + ". Calibrate a stricter threshold or use a stronger local model."
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict: dataset, n, cloud_source, rows, auroc, reasons, notes.

        Example:
            >>> sorted(EvaluationReport("d", 0, "x", rows=(), auroc={}).as_dict())[:4]
            ['auroc', 'auroc_ci', 'cloud_source', 'dataset']
        """
        return {
            "dataset": self.dataset,
            "n": self.n,
            "cloud_source": self.cloud_source,
            "rows": [r.as_dict() for r in self.rows],
            "auroc": {k: _round(v) for k, v in self.auroc.items()},
            "auroc_ci": {k: _rounded(v) for k, v in self.auroc_ci.items()},
            "reasons": dict(self.reasons),
            "verdict": self.verdict,
            "notes": list(self.notes),
            "settings": dict(self.settings),
        }

    def save(self, path: str | Path) -> None:
        """Write :meth:`as_dict` as indented JSON to ``path``.

        Example:
            >>> import os, tempfile
            >>> p = os.path.join(tempfile.mkdtemp(), "report.json")
            >>> EvaluationReport("d", 0, "x", rows=(), auroc={}).save(p)
            >>> json.load(open(p))["dataset"]
            'd'
        """
        text = json.dumps(self.as_dict(), indent=2, allow_nan=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    def table(self, width: int = 120) -> str:
        """Return the report as readable text: the table, the AUROCs and the notes.

        Example:
            >>> EvaluationReport("d", 0, "x", rows=(), auroc={}).table().splitlines()[0].strip()
            'Evaluation of d (n=0, cloud: x)'
        """
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"Evaluation of {self.dataset} (n={self.n}, cloud: {self.cloud_source})"
        )
        for name in (
            "System",
            "Accuracy",
            "95% CI",
            "Cloud share",
            "API cost",
            "Cost avoided",
            "Latency mean",
            "Latency p95",
        ):
            table.add_column(name, justify="left" if name == "System" else "right")
        for row in self.rows:
            lo, hi = row.accuracy_ci
            table.add_row(
                _TITLES[row.system],
                f"{100 * row.accuracy:.1f}%",
                f"{100 * lo:.1f}-{100 * hi:.1f}",
                f"{100 * row.cloud_share:.1f}%",
                f"${row.cost_usd:.4f}",
                f"${row.cost_avoided_usd:.4f}",
                _seconds(row.latency_mean_s),
                _seconds(row.latency_p95_s),
            )
        console = Console(width=width, record=True, color_system=None, force_terminal=False)
        with console.capture() as capture:
            console.print(table)
        lines = [capture.get().rstrip()]
        lines.extend(self._class_lines())
        if self.auroc:
            parts = [
                f"{name} {_auroc(v)}{_interval(self.auroc_ci.get(name))}"
                for name, v in self.auroc.items()
            ]
            lines.append(
                "AUROC for local correctness (95% interval, a bootstrap over groups): "
                + ", ".join(parts)
            )
        if self.reasons:
            parts = [f"{reason} {count}" for reason, count in sorted(self.reasons.items())]
            lines.append("Hybrid routing reasons: " + ", ".join(parts))
        lines.extend(f"Note: {note}" for note in self.notes)
        if self.verdict:
            lines.append(self.verdict)
        return "\n".join(lines)

    def _class_lines(self) -> list[str]:
        """One line per row with its answerable / unanswerable accuracy and decline rate."""
        lines = []
        for row in self.rows:
            c = row.by_class
            if not c:
                continue
            parts = [
                f"{name} {_percent(c[name]['accuracy'])} (n={c[name]['n']})"
                for name in ("answerable", "unanswerable")
            ]
            parts.append(f"declines {_percent(c['decline_rate'])} of its answers")
            lines.append(f"{_TITLES[row.system]}: " + ", ".join(parts))
        return lines

    def __str__(self) -> str:
        return self.table()


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _auroc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
