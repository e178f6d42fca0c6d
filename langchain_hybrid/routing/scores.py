"""The confidence of one answer: its score, its features, and what forces escalation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langchain_hybrid.routing.features import finite

__all__ = ["FORCED_LOW_REASONS", "Confidence", "ForcedLowReason"]

ForcedLowReason = Literal["hedge", "unknown_token", "empty", "no_logprobs"]
#: Reasons that force escalation regardless of the score, in priority order.
FORCED_LOW_REASONS: tuple[ForcedLowReason, ...] = ("empty", "unknown_token", "hedge", "no_logprobs")


@dataclass(frozen=True)
class Confidence:
    """How confident a model is in one answer.

    ``score`` (higher = more confident) is compared with the policy threshold; ``forced_low``
    (None, ``"hedge"``, ``"unknown_token"``, ``"empty"`` or ``"no_logprobs"``) forces escalation
    regardless of the score. When no score can be computed it is ``LOGPROB_FLOOR``.

    Example:
        >>> c = Confidence(score=-0.2, features={"n_tokens": 3.0}, forced_low=None, scorer="x")
        >>> c.as_dict()["score"]
        -0.2
    """

    score: float
    features: dict[str, float]
    forced_low: ForcedLowReason | None
    scorer: str

    def __post_init__(self) -> None:
        if self.forced_low is not None and self.forced_low not in FORCED_LOW_REASONS:
            raise ValueError(
                f"forced_low must be None or one of {', '.join(FORCED_LOW_REASONS)}; "
                f"got {self.forced_low!r}"
            )
        object.__setattr__(self, "score", finite(float(self.score)))
        object.__setattr__(
            self, "features", {str(k): finite(float(v)) for k, v in self.features.items()}
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of this confidence.

        Example:
            >>> Confidence(-1.0, {}, "hedge", "min_logprob").as_dict()
            {'score': -1.0, 'features': {}, 'forced_low': 'hedge', 'scorer': 'min_logprob'}
        """
        return {
            "score": self.score,
            "features": dict(self.features),
            "forced_low": self.forced_low,
            "scorer": self.scorer,
        }
