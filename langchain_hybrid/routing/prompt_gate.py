"""Routing before generation: a probe on the local model's state at the end of the prompt.

Before the local model writes a word, its hidden state at the last prompt token already
says much about whether it will know the answer (Kadavath et al. 2022). A
:class:`PromptGate` (fitted by calibration, a policy setting) reads that state, which
``ChatTransformers(hidden_states=True)`` reports from the prefill it runs anyway, and when
the answer is confidently going to fail it sends the request to the cloud without the
local generation (reason ``predicted_unlikely``). Served tiers report no state: the gate
then does nothing.

Example:
    >>> gate = PromptGate(weights=[1.0, -1.0], intercept=0.0, threshold=-1.0)
    >>> gate.log_odds([0.5, 2.0]), gate.stops([0.5, 2.0]), gate.stops([1.0, 0.0])
    (-1.5, True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PromptGate"]


@dataclass(frozen=True)
class PromptGate:
    """A linear probe on the prompt's hidden state, and the log-odds below which it stops.

    ``log_odds(state) = intercept + weights . state`` is the log-odds that the local answer
    will pass; below ``threshold`` the request goes to the cloud before generation.
    ``layer`` is the decoder layer it was fitted on (None: not recorded).
    """

    weights: Sequence[float]
    intercept: float
    threshold: float
    layer: int | None = None

    def __post_init__(self) -> None:
        weights = tuple(float(w) for w in self.weights)
        numbers = [*weights, float(self.intercept), float(self.threshold)]
        if not weights or not all(math.isfinite(v) for v in numbers):
            raise ValueError("a PromptGate needs finite weights, intercept and threshold")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "intercept", float(self.intercept))
        object.__setattr__(self, "threshold", float(self.threshold))

    def log_odds(self, state: Sequence[float]) -> float:
        """Return the log-odds that the answer to a prompt with this state will pass."""
        if len(state) != len(self.weights):
            raise ValueError(
                f"the prompt state has {len(state)} values and the gate {len(self.weights)}: "
                "it was fitted on another model or layer"
            )
        return self.intercept + sum(w * x for w, x in zip(self.weights, state, strict=True))

    def stops(self, state: Sequence[float] | None) -> bool:
        """Whether the request goes to the cloud before generation (no state: never)."""
        return (
            state is not None
            and len(state) == len(self.weights)
            and (self.log_odds(state) < self.threshold)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict written to policy files."""
        return {
            "weights": list(self.weights),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "layer": self.layer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptGate:
        """Build from :meth:`to_dict` output; ``ValueError`` names what is wrong.

        Example:
            >>> PromptGate.from_dict(PromptGate([1.0], 0.0, -2.0).to_dict()).threshold
            -2.0
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"before_generation must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"weights", "intercept", "threshold", "layer"})
        if unknown:
            raise ValueError(f"unknown before_generation key(s) {unknown}")
        weights = data.get("weights")
        if not isinstance(weights, list):
            raise ValueError("before_generation.weights must be a list of numbers")
        return cls(
            weights=weights,
            intercept=data.get("intercept", 0.0),
            threshold=data.get("threshold", 0.0),
            layer=data.get("layer"),
        )
