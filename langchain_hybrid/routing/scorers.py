"""Confidence scorers: an answer's log-probs and text -> a :class:`Confidence`; their registry.

A :class:`ConfidenceScorer` turns log-probs in OpenAI's chat-completions shape (what
``ChatOpenAI(logprobs=True)`` puts in ``response_metadata["logprobs"]``, and what
``ChatTransformers`` emits) into a :class:`Confidence`: a score (higher means more
confident), JSON-safe features, and possibly a ``forced_low`` reason (hedging phrase,
unknown token, empty answer, missing log-probs) that forces escalation whatever the score.
Each built-in scorer is a few lines over the shared base; :data:`BUILT_IN_SCORERS` lists
them and registers them, in one place, under their ``name`` for policy files.

Example:
    >>> lp = {"content": [{"token": "Paris", "logprob": -0.05, "bytes": None,
    ...                    "top_logprobs": []}]}
    >>> c = MeanLogprobScorer().score(lp, "Paris")
    >>> c.score, c.forced_low, c.scorer
    (-0.05, None, 'mean_logprob')
    >>> MeanLogprobScorer().score(lp, "I don't know.").forced_low
    'hedge'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from langchain_hybrid._registry import Registry
from langchain_hybrid.hidden_states import HIDDEN_PARTS
from langchain_hybrid.logprobs import LOGPROB_FLOOR, LogprobsLike, logprob_entries
from langchain_hybrid.routing.features import (
    ANSWER_FEATURE_NAMES,
    DEFAULT_UNKNOWN_TOKENS,
    FEATURE_NAMES,
    TokenStats,
    answer_features,
    finite,
    quantile,
)
from langchain_hybrid.routing.hedges import HedgeDetector
from langchain_hybrid.routing.running import (
    EarlyEscalation,
    HopelessReason,
    PartialAnswer,
    RunningConfidence,
)
from langchain_hybrid.routing.scores import Confidence, ForcedLowReason

__all__ = [
    "BUILT_IN_SCORERS",
    "CombinedScorer",
    "ConfidenceScorer",
    "LogisticScorer",
    "MarginScorer",
    "MeanLogprobScorer",
    "MinLogprobScorer",
    "ProbeScorer",
    "QuantileLogprobScorer",
    "available_scorers",
    "register_scorer",
    "scorer_from_config",
]

_S = TypeVar("_S", bound="ConfidenceScorer")


@dataclass(frozen=True)
class ConfidenceScorer(ABC):
    """Base class of confidence scorers: log-probs + text -> :class:`Confidence`.

    Every scorer shares ``hedge`` (a :class:`HedgeDetector`) and ``unknown_tokens`` options,
    treats an empty answer as ``forced_low="empty"`` and missing log-probs as
    ``forced_low="no_logprobs"``. Forced reasons have the priority empty > unknown_token >
    hedge > no_logprobs. Subclasses set ``name`` and implement :meth:`_raw_score`; they may
    give early escalation an exact bound with :meth:`_bound_hopeless`. The prediction rule
    of early escalation is the same for every scorer (see :class:`EarlyEscalation`).

    Example:
        >>> s = MinLogprobScorer()
        >>> s.score([{"token": "<unk>", "logprob": -0.1}], "x").forced_low
        'unknown_token'
    """

    name: ClassVar[str]
    #: Whether the scorer reads the answer features beyond log-probs (``ANSWER_FEATURE_NAMES``).
    uses_answer_features: ClassVar[bool] = False
    hedge: HedgeDetector = field(default_factory=HedgeDetector, kw_only=True)
    unknown_tokens: Collection[str] = field(default=DEFAULT_UNKNOWN_TOKENS, kw_only=True)

    @property
    def needs_hidden_states(self) -> bool:
        """Whether the scorer reads the local model's hidden states (a probe).

        Example:
            >>> MeanLogprobScorer().needs_hidden_states
            False
        """
        return False

    @property
    def needs_top_logprobs(self) -> bool:
        """Whether the scorer reads the top-1/top-2 margin, so needs ``top_logprobs`` >= 2.

        Example:
            >>> MeanLogprobScorer().needs_top_logprobs, MarginScorer().needs_top_logprobs
            (False, True)
        """
        return "margin" in self._weighted_features()

    def _weighted_features(self) -> frozenset[str]:
        """Return the features the score is computed from (by default: its own name)."""
        return frozenset({self.name})

    def __post_init__(self) -> None:
        if not isinstance(self.hedge, HedgeDetector):
            raise TypeError(f"hedge must be a HedgeDetector, got {type(self.hedge).__name__}")
        if isinstance(self.unknown_tokens, str):
            raise TypeError("unknown_tokens takes a collection of tokens, not one string")
        object.__setattr__(self, "unknown_tokens", frozenset(self.unknown_tokens))

    @abstractmethod
    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        """Return the score, or None when it cannot be computed (-> ``no_logprobs``)."""

    def _bound_hopeless(self, stats: TokenStats, threshold: float, max_tokens: int | None) -> bool:
        """Return True only if no continuation can end at or above ``threshold``."""
        return False

    def _evidence(self, stats: TokenStats) -> int:
        """How many tokens informed the score so far (tokens with alternatives for margins)."""
        return stats.n

    def _predict_hopeless(
        self,
        stats: TokenStats,
        threshold: float,
        early: EarlyEscalation,
        text: str = "",
        prompt: str | None = None,
    ) -> bool:
        """Predict (not prove) that the answer ends below ``threshold``.

        True once ``early.min_tokens`` tokens informed the score and the running score is
        below ``threshold - early.margin``.
        """
        if self._evidence(stats) < early.min_tokens:
            return False
        features = self._features(stats, text, False, None, prompt)
        value = self._raw_score(stats, features)
        return value is not None and value < threshold - early.margin

    def hopeless(self, answer: PartialAnswer) -> HopelessReason | None:
        """Return why a partial answer cannot pass, or None (see :class:`RunningConfidence`).

        Exact reasons first (an unknown token, a hedging phrase, the scorer's bound), then
        the early-escalation prediction.

        Example:
            >>> from langchain_hybrid.routing.features import TokenStats
            >>> stats = TokenStats({"<unk>"})
            >>> stats.add({"token": "x", "logprob": -3.0, "top_logprobs": []})
            >>> answer = PartialAnswer(stats, "x", -1.0, None, EarlyEscalation())
            >>> MinLogprobScorer().hopeless(answer)
            'below_threshold'
        """
        stats = answer.stats
        if stats.n_unknown:
            return "unknown_token"
        if self.hedge.find(answer.text, max(0, answer.checked - self.hedge.window)) is not None:
            return "hedge"
        if self._bound_hopeless(stats, answer.threshold, answer.max_tokens):
            return "below_threshold"
        if answer.early.probe is None and self._predict_hopeless(
            stats, answer.threshold, answer.early, answer.text, answer.prompt
        ):  # a learned probe, when the policy has one, replaces this prediction
            return "predicted_below_threshold"
        return None

    def confidence_so_far(self, answer: PartialAnswer) -> Confidence:
        """Score what has been generated of a partial answer (an early-stopped one, say)."""
        text = answer.text or "".join(answer.stats.tokens)
        return self._confidence(answer.stats, text, None, answer.prompt)

    def _features(
        self,
        stats: TokenStats,
        text: str,
        hedge: bool,
        finish_reason: str | None,
        prompt: str | None,
    ) -> dict[str, float]:
        features = stats.features(hedge=hedge)
        if self.uses_answer_features:
            extra = answer_features(text, finish_reason=finish_reason, prompt=prompt)
            features.update({k: finite(v) for k, v in extra.items()})
        return features

    def _confidence(
        self,
        stats: TokenStats,
        text: str,
        finish_reason: str | None = None,
        prompt: str | None = None,
    ) -> Confidence:
        phrase = self.hedge.find(text)
        features = self._features(stats, text, phrase is not None, finish_reason, prompt)
        raw = self._raw_score(stats, features) if stats.n else None
        forced: ForcedLowReason | None = None
        if not text.strip():
            forced = "empty"
        elif stats.n_unknown:
            forced = "unknown_token"
        elif phrase is not None:
            forced = "hedge"
        elif raw is None:
            forced = "no_logprobs"
        score = LOGPROB_FLOOR if raw is None else raw
        return Confidence(score=score, features=features, forced_low=forced, scorer=self.name)

    def score(
        self,
        logprobs: LogprobsLike,
        text: str = "",
        *,
        finish_reason: str | None = None,
        prompt: str | None = None,
        hidden: Mapping[str, Sequence[float]] | None = None,
    ) -> Confidence:
        """Score one answer.

        ``text`` is the answer text (used for hedge detection and to tell an empty answer);
        when it is empty the concatenated tokens are used instead. ``finish_reason`` and
        ``prompt`` (the request's text) feed the answer features of scorers that use them,
        ``hidden`` (the local model's hidden-state vectors) the probe's.

        Example:
            >>> MeanLogprobScorer().score(None, "Paris").forced_low
            'no_logprobs'
            >>> MeanLogprobScorer().score(None, "").forced_low
            'empty'
        """
        stats = TokenStats(self.unknown_tokens)
        for entry in logprob_entries(logprobs):
            stats.add(entry)
        stats.hidden.update({k: list(v) for k, v in (hidden or {}).items()})
        return self._confidence(stats, text or "".join(stats.tokens), finish_reason, prompt)

    def running(
        self,
        threshold: float,
        max_tokens: int | None = None,
        early: EarlyEscalation | None = None,
        *,
        prompt: str | None = None,
    ) -> RunningConfidence:
        """Start incremental scoring for early escalation; see :class:`RunningConfidence`.

        Example:
            >>> r = MinLogprobScorer().running(threshold=-1.0)
            >>> r.update([{"token": "x", "logprob": -3.0}], "x")
            >>> r.hopeless, r.hopeless_reason
            (True, 'below_threshold')
        """
        return RunningConfidence(self, threshold, max_tokens, early, prompt=prompt)

    def to_config(self) -> dict[str, Any]:
        """Return ``{"name": ..., "params": {...}}`` (JSON-safe); see :func:`scorer_from_config`.

        Example:
            >>> cfg = MinLogprobScorer(hedge=HedgeDetector(phrases=["no idea"])).to_config()
            >>> cfg["name"], cfg["params"]
            ('min_logprob', {'hedge_phrases': ['no idea'], 'unknown_tokens': ['<unk>']})
        """
        params: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, HedgeDetector):
                params["hedge_phrases"] = list(value.phrases)
            elif isinstance(value, frozenset):
                params[f.name] = sorted(value)
            elif isinstance(value, Mapping):
                params[f.name] = dict(value)
            else:
                params[f.name] = value
        return {"name": self.name, "params": params}

    @classmethod
    def from_params(cls: type[_S], params: Mapping[str, Any]) -> _S:
        """Build this scorer from the ``params`` of :meth:`to_config`.

        Example:
            >>> QuantileLogprobScorer.from_params({"q": 0.25}).q
            0.25
        """
        kwargs = dict(params)
        if "hedge_phrases" in kwargs:
            phrases = kwargs.pop("hedge_phrases")
            if isinstance(phrases, str) or not isinstance(phrases, Sequence):
                raise ValueError(f"scorer {cls.name!r}: 'hedge_phrases' must be a list of strings")
            kwargs["hedge"] = HedgeDetector(phrases=tuple(phrases))
        if "unknown_tokens" in kwargs:
            tokens = kwargs["unknown_tokens"]
            if isinstance(tokens, str) or not isinstance(tokens, Sequence):
                raise ValueError(f"scorer {cls.name!r}: 'unknown_tokens' must be a list of strings")
            kwargs["unknown_tokens"] = frozenset(str(t) for t in tokens)
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ValueError(f"bad parameters for scorer {cls.name!r}: {e}") from e


@dataclass(frozen=True)
class MeanLogprobScorer(ConfidenceScorer):
    """Mean token log-prob of the answer: the paper's confidence signal.

    Early escalation: with ``max_tokens`` M the best final mean is ``sum/M`` (pad with
    log-prob-0 tokens), an exact but loose bound that is always checked; the policy's
    :class:`EarlyEscalation` prediction comes on top of it.

    Example:
        >>> MeanLogprobScorer().score([{"token": "a", "logprob": -1.0},
        ...                            {"token": "b", "logprob": -3.0}], "ab").score
        -2.0
    """

    name: ClassVar[str] = "mean_logprob"

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        return stats.mean

    def _bound_hopeless(self, stats: TokenStats, threshold: float, max_tokens: int | None) -> bool:
        if max_tokens is None or stats.n == 0:
            return False
        return stats.total / max(max_tokens, stats.n) < threshold


@dataclass(frozen=True)
class MinLogprobScorer(ConfidenceScorer):
    """Lowest token log-prob: one very unlikely token makes the whole answer suspect.

    Early escalation is exact: once the minimum is below the threshold it cannot recover.

    Example:
        >>> MinLogprobScorer().score([{"token": "a", "logprob": -0.1},
        ...                           {"token": "b", "logprob": -2.5}], "ab").score
        -2.5
    """

    name: ClassVar[str] = "min_logprob"

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        return stats.min if stats.n else None

    def _bound_hopeless(self, stats: TokenStats, threshold: float, max_tokens: int | None) -> bool:
        return stats.n > 0 and stats.min < threshold


@dataclass(frozen=True)
class QuantileLogprobScorer(ConfidenceScorer):
    """The ``q``-quantile of token log-probs (linear interpolation; q=0 is the minimum).

    Early escalation: with ``max_tokens`` the exact bound pads the answer with log-prob-0
    tokens; without it only ``q == 0`` is exact.

    Example:
        >>> lps = [{"token": str(i), "logprob": -float(i)} for i in range(11)]
        >>> QuantileLogprobScorer(q=0.1).score(lps, "answer").score
        -9.0
    """

    name: ClassVar[str] = "quantile_logprob"
    q: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.q, bool) or not isinstance(self.q, (int, float)) or not 0 <= self.q <= 1:
            raise ValueError(f"q must be a number in [0, 1], got {self.q!r}")

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        return quantile(stats.sorted, self.q)

    def _bound_hopeless(self, stats: TokenStats, threshold: float, max_tokens: int | None) -> bool:
        if stats.n == 0:
            return False
        if max_tokens is None:
            return self.q == 0 and stats.min < threshold
        best = quantile(stats.sorted, self.q, extra_zeros=max(0, max_tokens - stats.n))
        return best is not None and best < threshold


@dataclass(frozen=True)
class MarginScorer(ConfidenceScorer):
    """Mean gap between the top-1 and top-2 alternatives (needs ``top_logprobs`` >= 2).

    Without such alternatives the confidence is ``forced_low="no_logprobs"``. Early
    escalation has no exact bound; its prediction counts only tokens with alternatives.

    Example:
        >>> e = {"token": "a", "logprob": -0.1,
        ...      "top_logprobs": [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -2.1}]}
        >>> MarginScorer().score([e], "a").score
        2.0
        >>> MarginScorer().score([{"token": "a", "logprob": -0.1}], "a").forced_low
        'no_logprobs'
    """

    name: ClassVar[str] = "margin"

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        return stats.margin

    def _evidence(self, stats: TokenStats) -> int:
        return stats.margin_n


@dataclass(frozen=True)
class CombinedScorer(ConfidenceScorer):
    """Linear combination ``bias + sum(weights[f] * features[f])`` (weights from calibration).

    Weight keys must be names from ``FEATURE_NAMES``; if a weighted feature is missing
    (e.g. ``margin`` without ``top_logprobs``) the confidence is ``forced_low="no_logprobs"``.
    Early escalation has no exact bound, only the policy's prediction.

    Example:
        >>> s = CombinedScorer({"mean_logprob": 1.0, "min_logprob": 0.5}, bias=0.1)
        >>> s.score([{"token": "a", "logprob": -1.0}, {"token": "b", "logprob": -3.0}], "ab").score
        -3.4
    """

    name: ClassVar[str] = "combined"
    weights: dict[str, float]
    bias: float = 0.0

    def _weighted_features(self) -> frozenset[str]:
        return frozenset(self.weights)

    def __post_init__(self) -> None:
        super().__post_init__()
        weights, bias = _linear_terms(self, "weights", "bias", FEATURE_NAMES)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        return _linear(self.weights, self.bias, features)


@dataclass(frozen=True)
class LogisticScorer(ConfidenceScorer):
    """Learned log-odds that the answer is right: ``intercept + sum(coef[f] * features[f])``.

    Calibration (:func:`langchain_hybrid.calibration.calibrate`) fits it by logistic
    regression; the score is the log-odds of a correct local answer, so a threshold of 0
    keeps answers that are more likely right than wrong. Feature names come from
    ``FEATURE_NAMES`` (log-probs) and ``ANSWER_FEATURE_NAMES`` (the answer's text, finish
    reason and prompt, which the policy passes in live and in replay alike). A missing
    feature (``margin`` without ``top_logprobs``) gives ``forced_low="no_logprobs"``.
    Early escalation has no exact bound; the policy's prediction applies to the running
    features (the answer so far, not yet truncated).

    Example:
        >>> s = LogisticScorer({"mean_logprob": 2.0, "truncated": -1.0}, intercept=0.5)
        >>> lp = [{"token": "Paris", "logprob": -0.25}]
        >>> s.score(lp, "Paris").score, s.score(lp, "Paris", finish_reason="length").score
        (0.0, -1.0)
        >>> scorer_from_config(s.to_config()) == s
        True
    """

    name: ClassVar[str] = "logistic"
    uses_answer_features: ClassVar[bool] = True
    coefficients: dict[str, float]
    intercept: float = 0.0

    def _weighted_features(self) -> frozenset[str]:
        return frozenset(self.coefficients)

    def __post_init__(self) -> None:
        super().__post_init__()
        known = (*FEATURE_NAMES, *ANSWER_FEATURE_NAMES)
        coefficients, intercept = _linear_terms(self, "coefficients", "intercept", known)
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "intercept", intercept)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features the scorer reads, in its coefficients' order.

        Example:
            >>> LogisticScorer({"min_logprob": 1.0}).feature_names
            ('min_logprob',)
        """
        return tuple(self.coefficients)

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        return _linear(self.coefficients, self.intercept, features)


@dataclass(frozen=True)
class ProbeScorer(ConfidenceScorer):
    """Learned log-odds that the answer is right, read from the local model's hidden states.

    ``intercept + sum(coefficients[f] * features[f]) + sum(hidden[part] . state[part])``:
    a linear probe (Kadavath et al. 2022) on the hidden-state vectors the local tier
    reports (``ChatTransformers(hidden_states=True)``: ``prompt``, the state at the last
    prompt token, and ``answer_mean``, the mean over the answer's tokens), beside the
    learned scorer's features. Calibration fits it (standardised, reduced and regularised
    logistic regression, folded into these raw-space weights, so no pickle and no numpy
    are needed to score it: well under a millisecond). ``layer`` is the decoder layer it
    was fitted on. An answer without the vectors it reads (a served or cloud tier) scores
    ``forced_low="no_logprobs"``; ``ChatHybrid`` asks an in-process local tier for them.

    Example:
        >>> s = ProbeScorer({"mean_logprob": 1.0}, hidden={"prompt": [2.0, -1.0]})
        >>> lp = [{"token": "Paris", "logprob": -0.5}]
        >>> s.score(lp, "Paris", hidden={"prompt": [0.5, 0.25]}).score
        0.25
        >>> s.score(lp, "Paris").forced_low
        'no_logprobs'
    """

    name: ClassVar[str] = "probe"
    uses_answer_features: ClassVar[bool] = True
    coefficients: dict[str, float] = field(default_factory=dict)
    hidden: dict[str, list[float]] = field(default_factory=dict)
    intercept: float = 0.0
    layer: int | None = None

    @property
    def needs_hidden_states(self) -> bool:
        """Always True: the probe reads hidden states."""
        return True

    def _weighted_features(self) -> frozenset[str]:
        return frozenset(self.coefficients)

    def __post_init__(self) -> None:
        super().__post_init__()
        known = (*FEATURE_NAMES, *ANSWER_FEATURE_NAMES)
        unknown = sorted(set(self.coefficients) - set(known))
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known features: {', '.join(known)}")
        if not isinstance(self.hidden, Mapping) or not self.hidden:
            raise ValueError("ProbeScorer needs hidden-state weights, e.g. {'prompt': [...]}")
        parts = sorted(set(self.hidden) - set(HIDDEN_PARTS))
        if parts:
            raise ValueError(f"unknown hidden-state part(s) {parts}; known: {HIDDEN_PARTS}")
        hidden = {str(k): [float(w) for w in v] for k, v in self.hidden.items()}
        values = [*self.coefficients.values(), *(w for v in hidden.values() for w in v)]
        if not all(math.isfinite(float(v)) for v in [*values, float(self.intercept)]):
            raise ValueError("probe weights and intercept must be finite numbers")
        object.__setattr__(
            self, "coefficients", {k: float(v) for k, v in self.coefficients.items()}
        )
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "intercept", float(self.intercept))

    def _raw_score(self, stats: TokenStats, features: Mapping[str, float]) -> float | None:
        value = _linear(self.coefficients, self.intercept, features)
        for part, weights in self.hidden.items():
            state = stats.hidden.get(part)
            if value is None or state is None or len(state) != len(weights):
                return None
            value += sum(w * x for w, x in zip(weights, state, strict=True))
        return value


def _linear_terms(
    scorer: ConfidenceScorer, terms: str, offset: str, known: Sequence[str]
) -> tuple[dict[str, float], float]:
    """Check a linear scorer's weights (attribute ``terms``) and constant (``offset``).

    Raises ``ValueError`` for no weights, a feature outside ``known`` or a number that
    is not finite.
    """
    weights, constant = getattr(scorer, terms), getattr(scorer, offset)
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"{type(scorer).__name__} needs a non-empty mapping of feature {terms}")
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(
            f"unknown feature(s) {unknown} in {terms}; known features: {', '.join(known)}"
        )
    checked = {str(k): float(v) for k, v in weights.items()}
    if not all(math.isfinite(v) for v in [*checked.values(), float(constant)]):
        raise ValueError(f"{terms} and {offset} must be finite numbers")
    return checked, float(constant)


def _linear(
    weights: Mapping[str, float], offset: float, features: Mapping[str, float]
) -> float | None:
    """Return ``offset + sum(weights[f] * features[f])``; None when a feature is missing."""
    if any(k not in features for k in weights):
        return None
    return offset + sum(w * features[k] for k, w in weights.items())


#: The scorers of this module, registered under their ``name`` here, in one place.
BUILT_IN_SCORERS: tuple[type[ConfidenceScorer], ...] = (
    MeanLogprobScorer,
    MinLogprobScorer,
    QuantileLogprobScorer,
    MarginScorer,
    CombinedScorer,
    LogisticScorer,
    ProbeScorer,
)
_SCORERS: Registry[ConfidenceScorer] = Registry("name", "scorer", BUILT_IN_SCORERS)

#: Register a scorer class under its ``name`` so configs can refer to it (a class
#: decorator on a frozen dataclass subclass of :class:`ConfidenceScorer`; idempotent).
register_scorer = _SCORERS.register
#: The names of the registered scorers, sorted.
available_scorers = _SCORERS.names


def scorer_from_config(config: Mapping[str, Any] | str) -> ConfidenceScorer:
    """Build a scorer from ``{"name": ..., "params": {...}}`` (or just its name).

    Inverse of :meth:`ConfidenceScorer.to_config`. Raises ``ValueError`` naming the known
    scorers for an unknown name, and for bad parameters.

    Example:
        >>> s = scorer_from_config({"name": "quantile_logprob", "params": {"q": 0.25}})
        >>> s.q, scorer_from_config(s.to_config()) == s
        (0.25, True)
    """
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, Mapping):
        raise ValueError(f"scorer config must be a mapping, got {type(config).__name__}")
    unknown_keys = set(config) - {"name", "params"}
    if unknown_keys:
        raise ValueError(
            f"scorer config has unknown key(s) {sorted(unknown_keys)}; expected 'name' and 'params'"
        )
    name = config.get("name")
    try:
        cls = _SCORERS.get(name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    params = config.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"scorer {name!r}: 'params' must be a mapping, got {params!r}")
    return cls.from_params(params)
