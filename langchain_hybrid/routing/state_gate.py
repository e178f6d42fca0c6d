"""Stopping on the local model's own states: a linear probe that sends a request on early.

Before the local model writes a word, its hidden state at the last prompt token already
says much about whether it will answer well (Kadavath et al. 2022); a few tokens in, its
state at the latest token says more. A :class:`StateGate` (fitted by calibration, a policy
setting) reads those states, which ``ChatTransformers(hidden_states=True)`` reports from
the passes it runs anyway: as soon as ``after_tokens`` tokens are written and the states
it reads have arrived, it predicts whether the answer will pass, and when it confidently
will not, the request goes to the cloud at once. A gate at 0 tokens is the policy's
``before_generation`` (reason ``predicted_unlikely``, no answer written); one after a few
tokens is learned early escalation (``EarlyEscalation.probe``, reason ``early_abort``).
Served tiers report no states: a gate then does nothing.

Example:
    >>> gate = StateGate({"prompt": [1.0, -1.0]}, intercept=0.0, threshold=-1.0)
    >>> gate.log_odds({"prompt": [0.5, 2.0]}), gate.stops({"prompt": [0.5, 2.0]}, 0)
    (-1.5, True)
    >>> gate.stops({"prompt": [1.0, 0.0]}, 0), gate.stops({}, 0)
    (False, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["StateGate"]

_KEYS = {"weights", "intercept", "threshold", "after_tokens", "layer"}


@dataclass(frozen=True)
class StateGate:
    """A linear probe on hidden-state vectors, the log-odds below which it stops, and when.

    ``log_odds(states) = intercept + sum(weights[part] . states[part])`` is the log-odds
    that the local answer will pass; below ``threshold`` the request goes to the cloud.
    The gate judges once, when ``after_tokens`` tokens are written and every part it
    reads (``prompt``: the last prompt token's state; ``answer_prefix``: the state of the
    answer's latest token at that point) has arrived. ``layer`` is the decoder layer it
    was fitted on (None: not recorded).
    """

    weights: Mapping[str, Sequence[float]]
    intercept: float
    threshold: float
    after_tokens: int = 0
    layer: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise ValueError("a StateGate needs weights for at least one hidden-state part")
        weights = {str(k): tuple(float(w) for w in v) for k, v in self.weights.items()}
        numbers = [w for v in weights.values() for w in v]
        numbers += [float(self.intercept), float(self.threshold)]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("a StateGate needs finite weights, intercept and threshold")
        n = self.after_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"after_tokens must be an int >= 0, got {n!r}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "intercept", float(self.intercept))
        object.__setattr__(self, "threshold", float(self.threshold))

    def ready(self, states: Mapping[str, Sequence[float]], n_tokens: int) -> bool:
        """Whether the gate can judge now: enough tokens, and every state it reads, sized right."""
        return n_tokens >= self.after_tokens and all(
            len(states.get(part) or ()) == len(w) for part, w in self.weights.items()
        )

    def log_odds(self, states: Mapping[str, Sequence[float]]) -> float:
        """Return the log-odds that the answer will pass, from the states it reads."""
        total = self.intercept
        for part, weights in self.weights.items():
            state = states[part]
            if len(state) != len(weights):
                raise ValueError(
                    f"the {part} state has {len(state)} values and the gate {len(weights)}: "
                    "it was fitted on another model or layer"
                )
            total += sum(w * x for w, x in zip(weights, state, strict=True))
        return total

    def stops(self, states: Mapping[str, Sequence[float]], n_tokens: int) -> bool:
        """Whether the request goes to the cloud now (never before the gate is ready)."""
        return self.ready(states, n_tokens) and self.log_odds(states) < self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict written to policy files."""
        return {
            "weights": {k: list(v) for k, v in self.weights.items()},
            "intercept": self.intercept,
            "threshold": self.threshold,
            "after_tokens": self.after_tokens,
            "layer": self.layer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateGate:
        """Build from :meth:`to_dict` output; ``ValueError`` names what is wrong.

        Example:
            >>> g = StateGate({"prompt": [1.0]}, 0.0, -2.0)
            >>> StateGate.from_dict(g.to_dict()) == g
            True
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a state gate must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ValueError(f"unknown state gate key(s) {unknown}; allowed: {sorted(_KEYS)}")
        weights = data.get("weights")
        if not isinstance(weights, Mapping) or not all(
            isinstance(v, list) for v in weights.values()
        ):
            raise ValueError("a state gate's weights must map parts to lists of numbers")
        return cls(
            weights=weights,
            intercept=data.get("intercept", 0.0),
            threshold=data.get("threshold", 0.0),
            after_tokens=data.get("after_tokens", 0),
            layer=data.get("layer"),
        )
