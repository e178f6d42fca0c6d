"""Calibration targets (cloud share, accuracy or cost per query) and how a point is chosen."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from langchain_hybrid.calibration.curve import CurvePoint
from langchain_hybrid.calibration.errors import CalibrationError

__all__ = ["Target"]

Target = Literal["cloud_rate", "accuracy", "max_cost"]

#: How far the cloud share of the chosen point may be from ``target_cloud_rate``.
_SHARE_TOLERANCE = 0.05


@dataclass(frozen=True)
class _Target:
    """One target, and the floor on how often the answers kept local must be right."""

    kind: Target
    value: float
    min_local_accuracy: float

    @classmethod
    def given(
        cls,
        cloud_rate: float | None,
        accuracy: float | None,
        max_cost: float | None,
        min_local_accuracy: float,
    ) -> _Target:
        """Return the one target given (the others None); :class:`CalibrationError` if not one."""
        targets: dict[Target, float | None] = {
            "cloud_rate": cloud_rate,
            "accuracy": accuracy,
            "max_cost": max_cost,
        }
        given = [(k, v) for k, v in targets.items() if v is not None]
        if len(given) != 1:
            raise CalibrationError(
                "give exactly one target: target_cloud_rate, target_accuracy or max_cost"
            )
        kind, value = given[0]
        if kind != "max_cost" and not 0.0 <= float(value) <= 1.0:
            raise CalibrationError(f"{kind} must be in [0, 1], got {value!r}")
        return cls(kind, float(value), min_local_accuracy)

    def describe(self) -> str:
        name = {"cloud_rate": "target_cloud_rate", "accuracy": "target_accuracy"}
        return f"{name.get(self.kind, self.kind)}={self.value:g}"

    def rank(self, points: Sequence[CurvePoint], idx: int | None) -> tuple[float, float]:
        """How well the chosen point ``idx`` of a curve meets the target (higher is better)."""
        if idx is None:
            return (-math.inf, 0.0)
        p = points[idx]
        if self.kind == "accuracy":
            return (-p.cloud_share, p.accuracy)
        return (p.accuracy, -p.cloud_share)

    def choose(self, points: Sequence[CurvePoint]) -> tuple[int | None, str]:
        """Index of the point that meets the target best, or (None, why not)."""
        if self.kind == "accuracy":
            ok = [i for i, p in enumerate(points) if p.accuracy >= self.value - 1e-12]
            if not ok:
                best = max(p.accuracy for p in points)
                return None, (
                    f"no threshold reaches an expected accuracy of {self.value:.3f} "
                    f"(the best is {best:.3f})"
                )
            return max(ok, key=lambda i: (points[i].n_local, -i)), ""
        if self.kind == "cloud_rate":
            idx = min(
                range(len(points)),
                key=lambda i: (abs(points[i].cloud_share - self.value), -points[i].cloud_share),
            )
        else:
            ok = [i for i, p in enumerate(points) if p.cost_per_query <= self.value + 1e-15]
            if not ok:
                cheapest = min(p.cost_per_query for p in points)
                return None, (
                    f"no threshold keeps the expected cost under ${self.value:g} per query "
                    f"(the cheapest is ${cheapest:.6f})"
                )
            idx = max(ok, key=lambda i: (points[i].accuracy, -points[i].n_local))
        p = points[idx]
        if self.kind == "cloud_rate" and abs(p.cloud_share - self.value) > _SHARE_TOLERANCE:
            return None, (
                f"no threshold sends {self.value:.3f} of requests to the cloud (the closest "
                f"is {p.cloud_share:.3f}): the scores do not separate the answers"
            )
        if p.n_local and (p.kept_accuracy or 0.0) < self.min_local_accuracy:
            return None, (
                f"at {self.describe()} the answers kept local would be right only "
                f"{100 * (p.kept_accuracy or 0.0):.1f}% of the time (below the "
                f"{100 * self.min_local_accuracy:.0f}% floor, min_local_accuracy): the local "
                "model is not right often enough to keep its answers"
            )
        return idx, ""
