"""The running confidence of an answer being generated, and when early escalation stops it."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from langchain_hybrid.logprobs import LogprobsLike, logprob_entries
from langchain_hybrid.routing.features import TokenStats
from langchain_hybrid.routing.scores import Confidence
from langchain_hybrid.routing.state_gate import StateGate

__all__ = ["EarlyEscalation", "HopelessReason", "RunningConfidence", "RunningScorer"]

HopelessReason = Literal["hedge", "unknown_token", "below_threshold", "predicted_below_threshold"]
_EXACT_HOPELESS = frozenset({"hedge", "unknown_token", "below_threshold"})


@dataclass(frozen=True)
class EarlyEscalation:
    """When local generation may stop before the answer is finished (a policy setting).

    While the local answer streams, it stops as soon as it cannot pass: an unknown token or
    a hedging phrase appears, the scorer's exact bound says the threshold is out of reach,
    or, a *prediction*, ``min_tokens`` tokens informed the score and the running score is
    below ``threshold - margin``. A learned ``probe`` (a
    :class:`~langchain_hybrid.routing.state_gate.StateGate` on the local model's hidden
    states a few tokens in, fitted by calibration) replaces that prediction: it judges once
    its tokens are written. ``enabled=False`` lets every local answer finish.

    Example:
        >>> EarlyEscalation(min_tokens=4).to_dict()
        {'enabled': True, 'min_tokens': 4, 'margin': 0.5}
        >>> EarlyEscalation.from_dict({"enabled": False}).enabled
        False
    """

    enabled: bool = True
    min_tokens: int = 8
    margin: float = 0.5
    probe: StateGate | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be True or False, got {self.enabled!r}")
        if self.probe is not None and not isinstance(self.probe, StateGate):
            raise ValueError(f"probe must be a StateGate or None, got {self.probe!r}")
        n = self.min_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"min_tokens must be an int >= 1, got {n!r}")
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
            raise ValueError(f"margin must be a finite number >= 0, got {m!r}")
        object.__setattr__(self, "margin", float(m))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict written to policy files (``probe`` only when set)."""
        data: dict[str, Any] = {
            "enabled": self.enabled,
            "min_tokens": self.min_tokens,
            "margin": self.margin,
        }
        if self.probe is not None:
            data["probe"] = self.probe.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EarlyEscalation:
        """Build from :meth:`to_dict` output (missing keys take their defaults)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"early escalation must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"enabled", "min_tokens", "margin", "probe"})
        if unknown:
            raise ValueError(
                f"unknown early-escalation key(s) {unknown}; allowed: enabled, min_tokens, "
                "margin, probe"
            )
        values = dict(data)
        if values.get("probe") is not None:
            values["probe"] = StateGate.from_dict(values["probe"])
        return cls(**values)


@dataclass
class PartialAnswer:
    """An answer still being generated, as a scorer judges it.

    ``checked`` is how much of ``text`` was already searched for hedging phrases (the
    search resumes a phrase's length before it).
    """

    stats: TokenStats
    text: str
    threshold: float
    max_tokens: int | None
    early: EarlyEscalation
    prompt: str | None = None
    checked: int = 0


class RunningScorer(Protocol):
    """What :class:`RunningConfidence` asks of a scorer (every ``ConfidenceScorer`` has it)."""

    @property
    def unknown_tokens(self) -> Collection[str]:
        """The tokens that count as unknown."""

    def hopeless(self, answer: PartialAnswer) -> HopelessReason | None:
        """Return why ``answer`` cannot pass (exact or predicted), or None."""

    def confidence_so_far(self, answer: PartialAnswer) -> Confidence:
        """Score what has been generated of ``answer``."""


class RunningConfidence:
    """Incremental confidence of an answer that is still being generated.

    Feed it the *new* token entries and the *cumulative* text after each step; ``hopeless``
    becomes True (and stays True) as soon as the answer should be escalated without
    finishing it. ``hopeless_reason`` says why: ``"unknown_token"``, ``"hedge"`` and
    ``"below_threshold"`` are exact (the finished answer would be escalated anyway);
    ``"predicted_below_threshold"`` is the prediction of ``early`` (see ``exact``). Whether
    generation really stops is the policy's call (``early.enabled``).

    Example:
        >>> from langchain_hybrid.routing.scorers import MeanLogprobScorer
        >>> r = MeanLogprobScorer().running(threshold=-0.6, max_tokens=64)
        >>> r.update([{"token": "I", "logprob": -0.1}], "I")
        >>> r.hopeless
        False
        >>> r.update([{"token": " don't know", "logprob": -0.1}], "I don't know")
        >>> r.hopeless, r.hopeless_reason, r.n_tokens
        (True, 'hedge', 2)
    """

    def __init__(
        self,
        scorer: RunningScorer,
        threshold: float,
        max_tokens: int | None = None,
        early: EarlyEscalation | None = None,
        *,
        prompt: str | None = None,
    ) -> None:
        if isinstance(threshold, bool) or not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise ValueError(f"max_tokens must be None or an int >= 1, got {max_tokens!r}")
        self.scorer = scorer
        self.threshold = float(threshold)
        self.max_tokens = max_tokens
        self.early = early if early is not None else EarlyEscalation()
        self.prompt = prompt
        self._answer = PartialAnswer(
            TokenStats(scorer.unknown_tokens), "", self.threshold, max_tokens, self.early, prompt
        )
        self._reason: HopelessReason | None = None

    @property
    def n_tokens(self) -> int:
        """Tokens seen so far.

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> MinLogprobScorer().running(-1.0).n_tokens
            0
        """
        return self._answer.stats.n

    @property
    def text(self) -> str:
        """The answer text so far (the joined tokens if no text was given).

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> r = MinLogprobScorer().running(-1.0)
            >>> r.update([{"token": "Hi", "logprob": 0.0}])
            >>> r.text
            'Hi'
        """
        return self._answer.text

    @property
    def hopeless(self) -> bool:
        """True once the answer should be escalated without finishing it.

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> MinLogprobScorer().running(-1.0).hopeless
            False
        """
        return self._reason is not None

    @property
    def hopeless_reason(self) -> HopelessReason | None:
        """Why the answer is hopeless, or None.

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> MinLogprobScorer().running(-1.0).hopeless_reason is None
            True
        """
        return self._reason

    @property
    def exact(self) -> bool:
        """True if hopelessness is certain (not a prediction).

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> r = MinLogprobScorer().running(-1.0)
            >>> r.update([{"token": "x", "logprob": -2.0}], "x")
            >>> r.exact
            True
        """
        return self._reason in _EXACT_HOPELESS

    def update(self, entries: LogprobsLike, text_so_far: str | None = None) -> None:
        """Add the new token ``entries`` and the cumulative ``text_so_far``.

        ``text_so_far`` is expected to grow by appending; when None the joined tokens are used.

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> r = MinLogprobScorer().running(-1.0)
            >>> r.update({"content": [{"token": "a", "logprob": -0.5}]}, "a")
            >>> r.n_tokens, r.hopeless
            (1, False)
        """
        answer = self._answer
        for entry in logprob_entries(entries):
            answer.stats.add(entry)
        answer.text = text_so_far if text_so_far is not None else "".join(answer.stats.tokens)
        if self._reason is None:
            self._reason = self.scorer.hopeless(answer)
            answer.checked = len(answer.text)

    def add_hidden(self, vectors: Mapping[str, Sequence[float]]) -> None:
        """Add the local model's hidden-state vectors as they arrive (``prompt`` first).

        Example:
            >>> from langchain_hybrid.routing.scorers import MinLogprobScorer
            >>> r = MinLogprobScorer().running(-1.0)
            >>> r.add_hidden({"prompt": [0.5]}); r.hidden
            {'prompt': [0.5]}
        """
        self._answer.stats.hidden.update({k: list(v) for k, v in vectors.items()})

    @property
    def hidden(self) -> dict[str, list[float]]:
        """The hidden-state vectors seen so far."""
        return self._answer.stats.hidden

    def confidence(self) -> Confidence:
        """Score what has been generated so far (e.g. to record an early-aborted answer).

        Example:
            >>> from langchain_hybrid.routing.scorers import MeanLogprobScorer
            >>> r = MeanLogprobScorer().running(-1.0)
            >>> r.update([{"token": "a", "logprob": -0.5}], "a")
            >>> r.confidence().score
            -0.5
        """
        return self.scorer.confidence_so_far(self._answer)
