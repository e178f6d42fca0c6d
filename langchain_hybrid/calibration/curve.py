"""The trade-off curve: cloud share, expected accuracy and cost of each threshold on scores."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from langchain_hybrid.calibration.features import _Data

__all__ = ["CurvePoint", "TradeoffCurve"]


@dataclass(frozen=True)
class CurvePoint:
    """One operating point: keep local answers scoring at or above ``threshold``.

    ``accuracy`` is the hybrid's expected accuracy (kept local answers graded, escalated
    ones counted at the cloud's correctness), ``cost_per_query`` its expected USD per
    query, ``kept_accuracy`` the accuracy of the answers kept local (None if none are).
    """

    threshold: float
    cloud_share: float
    accuracy: float
    cost_per_query: float
    kept_accuracy: float | None
    n_local: int


@dataclass(frozen=True)
class TradeoffCurve:
    """Cloud share vs expected accuracy vs expected cost over thresholds (falling).

    Points run from cloud-only (highest threshold) to keeping every answer the scorer can
    keep; ``chosen`` is the index of the chosen point (None: no point met the target).

    Example:
        >>> p = CurvePoint(0.0, 1.0, 0.9, 0.01, None, 0)
        >>> c = TradeoffCurve(points=(p,), chosen=None, scorer="x", n=10, source="test")
        >>> TradeoffCurve.from_dict(c.to_dict()) == c
        True
    """

    points: tuple[CurvePoint, ...]
    chosen: int | None
    scorer: str
    n: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (what :meth:`save` writes)."""
        return {
            "scorer": self.scorer,
            "n": self.n,
            "source": self.source,
            "chosen": self.chosen,
            "points": [dataclasses.asdict(p) for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TradeoffCurve:
        """Rebuild a curve from :meth:`to_dict` output."""
        return cls(
            points=tuple(CurvePoint(**p) for p in data["points"]),
            chosen=data.get("chosen"),
            scorer=str(data["scorer"]),
            n=int(data["n"]),
            source=str(data.get("source", "")),
        )

    def save(self, path: str | Path) -> None:
        """Write the curve as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """Draw accuracy and cost against cloud share to a PNG (matplotlib, Agg backend).

        The drawing is a :class:`~langchain_hybrid.calibration.display.TradeoffCurveDisplay`.
        Raises :class:`CalibrationError` when matplotlib is not installed.
        """
        from langchain_hybrid.calibration.display import TradeoffCurveDisplay

        TradeoffCurveDisplay(self).plot(title).save(path)


def _escalating(data: _Data, finish_reasons: frozenset[str]) -> np.ndarray:
    """Which answers escalate whatever their score (forced low, or a finish reason)."""
    import numpy as np

    by_finish = np.array([f in finish_reasons for f in data.finish], dtype=bool)
    return np.asarray(data.forced | by_finish)


def _curve_arrays(
    scores: np.ndarray, data: _Data, finish_reasons: frozenset[str]
) -> list[CurvePoint]:
    """Operating points over thresholds, from cloud-only to keeping every keepable answer."""
    import numpy as np

    n = len(scores)
    always = _escalating(data, finish_reasons)
    keepable = np.flatnonzero(~always)
    order = keepable[np.argsort(-scores[keepable], kind="stable")]
    local_total = float(data.local_cost.sum())
    kept_y = 0.0
    cloud_acc = float(data.cloud_p.sum())
    cloud_cost = float(data.cloud_cost.sum())
    top = float(scores[order[0]]) + 1.0 if len(order) else 0.0
    points = [CurvePoint(top, 1.0, cloud_acc / n, (cloud_cost + local_total) / n, None, 0)]
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            kept_y += float(data.y[k])
            cloud_acc -= float(data.cloud_p[k])
            cloud_cost -= float(data.cloud_cost[k])
        k_n = j + 1
        below = float(scores[order[j + 1]]) if j + 1 < len(order) else float(scores[order[j]]) - 1
        threshold = (float(scores[order[j]]) + below) / 2.0
        points.append(
            CurvePoint(
                threshold=threshold,
                cloud_share=(n - k_n) / n,
                accuracy=(kept_y + cloud_acc) / n,
                cost_per_query=(max(0.0, cloud_cost) + local_total) / n,
                kept_accuracy=kept_y / k_n,
                n_local=k_n,
            )
        )
        i = j + 1
    return points
