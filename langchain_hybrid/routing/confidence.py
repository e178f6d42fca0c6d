"""Confidence of a model answer, computed from its per-token log-probs.

Log-probs arrive in OpenAI's chat-completions shape (what ``ChatOpenAI(logprobs=True)``
puts in ``response_metadata["logprobs"]``, and what ``ChatTransformers`` emits)::

    {"content": [{"token": str, "logprob": float, "bytes": [int] | None,
                  "top_logprobs": [{"token": str, "logprob": float, "bytes": [int] | None}]}]}

A :class:`ConfidenceScorer` turns them into a :class:`Confidence`: a score (higher means more
confident), JSON-safe features, and possibly a ``forced_low`` reason (hedging phrase, unknown
token, empty answer, missing log-probs) that forces escalation whatever the score.
Scorers also score incrementally (:meth:`ConfidenceScorer.running`) so that local generation
can stop as soon as the answer can no longer reach the threshold.

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

import bisect
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar, cast

from langchain_hybrid._registry import Registry
from langchain_hybrid.logprobs import LOGPROB_FLOOR, LogprobsLike, TokenLogprob, logprob_entries

__all__ = [
    "DEFAULT_HEDGE_PHRASES",
    "DEFAULT_UNKNOWN_TOKENS",
    "EarlyEscalation",
    "ANSWER_FEATURE_NAMES",
    "DEFAULT_DECLINE_PHRASES",
    "FEATURE_NAMES",
    "FORCED_LOW_REASONS",
    "CombinedScorer",
    "Confidence",
    "ConfidenceScorer",
    "ForcedLowReason",
    "HedgeDetector",
    "HopelessReason",
    "LogisticScorer",
    "MarginScorer",
    "MeanLogprobScorer",
    "MinLogprobScorer",
    "QuantileLogprobScorer",
    "RunningConfidence",
    "answer_features",
    "available_scorers",
    "compute_features",
    "register_scorer",
    "scorer_from_config",
]

_MAX_FLOAT = 1e300

#: Names of the features :func:`compute_features` may return (``margin`` and the log-prob
#: statistics are left out when they cannot be computed).
FEATURE_NAMES: tuple[str, ...] = (
    "mean_logprob",
    "min_logprob",
    "p10_logprob",
    "margin",
    "n_tokens",
    "perplexity",
    "n_unknown",
    "hedge",
)

#: Features of the answer beyond its log-probs, computed by scorers that ask for them
#: (:class:`LogisticScorer`): ``truncated`` (1.0 when the answer hit its token limit,
#: ``finish_reason == "length"``), ``answer_words`` (words in the answer),
#: ``context_overlap`` (share of the answer's content words found in the prompt: how much
#: of the answer the passage supports), ``declines`` (1.0 when the answer declines, e.g.
#: "the context does not say") and ``prompt_words`` (log of 1 + words in the prompt).
ANSWER_FEATURE_NAMES: tuple[str, ...] = (
    "truncated",
    "answer_words",
    "context_overlap",
    "declines",
    "prompt_words",
)

ForcedLowReason = Literal["hedge", "unknown_token", "empty", "no_logprobs"]
#: Reasons that force escalation regardless of the score, in priority order.
FORCED_LOW_REASONS: tuple[ForcedLowReason, ...] = ("empty", "unknown_token", "hedge", "no_logprobs")

HopelessReason = Literal["hedge", "unknown_token", "below_threshold", "predicted_below_threshold"]
_EXACT_HOPELESS = frozenset({"hedge", "unknown_token", "below_threshold"})

#: Tokens counted as "unknown" by default.
DEFAULT_UNKNOWN_TOKENS: frozenset[str] = frozenset({"<unk>"})

#: Phrases that mark a hedged answer by default (matched case-insensitively, whole words).
DEFAULT_HEDGE_PHRASES: tuple[str, ...] = (
    "I don't know",
    "I do not know",
    "I'm not sure",
    "I am not sure",
    "I'm not certain",
    "I am not certain",
    "I cannot answer",
    "I can't answer",
    "I'm unable to",
    "I am unable to",
    "not enough information",
    "I don't have",
    "I do not have",
    "as an AI",
)


#: Phrases of an answer that declines (the ``declines`` feature), beyond the hedges.
DEFAULT_DECLINE_PHRASES: tuple[str, ...] = (
    *DEFAULT_HEDGE_PHRASES,
    "does not say",
    "doesn't say",
    "does not mention",
    "doesn't mention",
    "not mentioned",
    "does not provide",
    "doesn't provide",
    "not provided",
    "not stated",
    "not specified",
    "no information",
    "cannot be determined",
    "can't be determined",
    "unanswerable",
    "cannot be answered",
    "can't be answered",
)

_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "for",
        "by",
        "with",
        "as",
        "from",
        "his",
        "her",
        "their",
        "he",
        "she",
        "they",
        "i",
        "you",
        "we",
    ]
)


def _finite(x: float) -> float:
    """Map NaN and -inf to the floor and +inf to a large finite number."""
    if math.isnan(x) or x == -math.inf:
        return LOGPROB_FLOOR
    return min(_MAX_FLOAT, x)


def _quantile(sorted_values: Sequence[float], q: float, extra_zeros: int = 0) -> float | None:
    """Linear-interpolated quantile of ``sorted_values`` plus ``extra_zeros`` trailing zeros."""
    n_real = len(sorted_values)
    n = n_real + extra_zeros
    if n == 0:
        return None

    def at(i: int) -> float:
        return sorted_values[i] if i < n_real else 0.0

    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return at(lo) + (at(hi) - at(lo)) * (pos - lo)


class _Stats:
    """Running statistics over token entries; shared by one-shot and incremental scoring."""

    def __init__(self, unknown_tokens: Collection[str]) -> None:
        self.unknown_tokens = frozenset(unknown_tokens)
        self.n = 0
        self.total = 0.0
        self.min = 0.0
        self.sorted: list[float] = []
        self.margin_sum = 0.0
        self.margin_n = 0
        self.n_unknown = 0
        self.tokens: list[str] = []

    def add(self, entry: TokenLogprob) -> None:
        lp = entry["logprob"]
        self.n += 1
        self.total += lp
        self.min = lp if self.n == 1 else min(self.min, lp)
        bisect.insort(self.sorted, lp)
        tops = sorted((t["logprob"] for t in entry["top_logprobs"]), reverse=True)
        if len(tops) >= 2:
            self.margin_sum += tops[0] - tops[1]
            self.margin_n += 1
        if entry["token"] in self.unknown_tokens:
            self.n_unknown += 1
        self.tokens.append(entry["token"])

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def margin(self) -> float | None:
        return self.margin_sum / self.margin_n if self.margin_n else None

    def features(self, hedge: bool) -> dict[str, float]:
        f: dict[str, float] = {}
        mean = self.mean
        if mean is not None:
            f["mean_logprob"] = mean
            f["min_logprob"] = self.min
            f["p10_logprob"] = cast(float, _quantile(self.sorted, 0.1))
        margin = self.margin
        if margin is not None:
            f["margin"] = margin
        f["n_tokens"] = float(self.n)
        if mean is not None:
            f["perplexity"] = math.exp(-mean)
        f["n_unknown"] = float(self.n_unknown)
        f["hedge"] = 1.0 if hedge else 0.0
        return {k: _finite(v) for k, v in f.items()}


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})


@dataclass(frozen=True)
class HedgeDetector:
    """Finds hedging phrases ("I don't know", "I'm not sure", ...) in an answer.

    Matching is case-insensitive, on whole words, tolerant of runs of whitespace, and treats
    typographic apostrophes (’ ‘ ʼ) like ``'``. ``HedgeDetector(phrases=())`` disables it.

    Example:
        >>> HedgeDetector().find("Honestly, I DON’T know.")
        "I don't know"
        >>> HedgeDetector(phrases=["no idea"]).find("The capital is Paris.") is None
        True
    """

    phrases: Sequence[str] = DEFAULT_HEDGE_PHRASES
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)
    _window: int = field(init=False, repr=False, compare=False, default=16)

    def __post_init__(self) -> None:
        if isinstance(self.phrases, str):
            raise TypeError("HedgeDetector(phrases=...) takes a list of phrases, not one string")
        phrases = tuple(str(p) for p in self.phrases if str(p).strip())
        object.__setattr__(self, "phrases", phrases)
        object.__setattr__(self, "_window", 2 * max((len(p) for p in phrases), default=0) + 16)
        if phrases:
            parts = []
            for i, phrase in enumerate(phrases):
                words = phrase.translate(_APOSTROPHES).split()
                body = r"\s+".join(re.escape(w) for w in words)
                parts.append(f"(?P<p{i}>{body})")
            pattern = r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)"
            object.__setattr__(self, "_regex", re.compile(pattern, re.IGNORECASE))

    @property
    def window(self) -> int:
        """Characters to look back when searching only the new tail of a growing text.

        Covers matches with up to ``longest phrase + 16`` characters of extra whitespace.

        Example:
            >>> HedgeDetector(phrases=["abc"]).window
            22
        """
        return self._window

    def find(self, text: str, start: int = 0) -> str | None:
        """Return the first hedging phrase (as configured) found in ``text[start:]``, or None.

        Example:
            >>> HedgeDetector().find("I am  not sure it is 4")
            'I am not sure'
        """
        if self._regex is None or not text:
            return None
        offset = max(0, start - 1)  # keep one character for the word-boundary look-behind
        m = self._regex.search(text[offset:].translate(_APOSTROPHES), max(0, start) - offset)
        if m is None or m.lastgroup is None:
            return None
        return self.phrases[int(m.lastgroup[1:])]


_DECLINES = HedgeDetector(phrases=DEFAULT_DECLINE_PHRASES)


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
        object.__setattr__(self, "score", _finite(float(self.score)))
        object.__setattr__(
            self, "features", {str(k): _finite(float(v)) for k, v in self.features.items()}
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


def compute_features(
    entries: LogprobsLike,
    text: str = "",
    *,
    hedge: HedgeDetector | None = None,
    unknown_tokens: Iterable[str] = DEFAULT_UNKNOWN_TOKENS,
) -> dict[str, float]:
    """Compute the confidence features of an answer (all finite floats).

    ``mean_logprob``, ``min_logprob``, ``p10_logprob`` (10% quantile) and ``perplexity`` are
    present when there is at least one token; ``margin`` (mean top-1 minus top-2 log-prob)
    only when some tokens carry two or more ``top_logprobs``. ``n_tokens``, ``n_unknown``
    (tokens in ``unknown_tokens``) and ``hedge`` (1.0 if a hedging phrase occurs in ``text``,
    or in the joined tokens when ``text`` is empty) are always present.

    Example:
        >>> f = compute_features([{"token": "4", "logprob": -0.5}, {"token": ".", "logprob": -1.5}])
        >>> f["mean_logprob"], f["min_logprob"], f["n_tokens"], f["hedge"]
        (-1.0, -1.5, 2.0, 0.0)
    """
    stats = _Stats(frozenset(unknown_tokens))
    for entry in logprob_entries(entries):
        stats.add(entry)
    detector = hedge if hedge is not None else HedgeDetector()
    found = detector.find(text or "".join(stats.tokens))
    return stats.features(hedge=found is not None)


def answer_features(
    text: str,
    *,
    finish_reason: str | None = None,
    prompt: str | None = None,
    declines: HedgeDetector | None = None,
) -> dict[str, float]:
    """Compute the answer features beyond log-probs (see ``ANSWER_FEATURE_NAMES``).

    ``prompt`` is the text of the request's messages (what the answer may draw on); without
    it ``context_overlap`` and ``prompt_words`` are 0. ``declines`` finds declining phrases
    (default: ``DEFAULT_DECLINE_PHRASES``).

    Example:
        >>> f = answer_features("Paris, in France", finish_reason="length",
        ...                     prompt="Paris is the capital of France. Capital of France?")
        >>> f["truncated"], f["answer_words"], f["context_overlap"], f["declines"]
        (1.0, 3.0, 1.0, 0.0)
        >>> answer_features("The passage does not say.")["declines"]
        1.0
    """
    detector = declines if declines is not None else _DECLINES
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in _STOPWORDS]
    prompt_words = [w.lower() for w in _WORD.findall(prompt or "")]
    overlap = 0.0
    if content and prompt_words:
        known = set(prompt_words)
        overlap = sum(w in known for w in content) / len(content)
    return {
        "truncated": 1.0 if finish_reason == "length" else 0.0,
        "answer_words": float(len(words)),
        "context_overlap": overlap,
        "declines": 1.0 if detector.find(text) is not None else 0.0,
        "prompt_words": math.log1p(len(prompt_words)),
    }


_S = TypeVar("_S", bound="ConfidenceScorer")
_SCORERS: Registry[ConfidenceScorer] = Registry("name", "scorer")


def register_scorer(cls: type[_S]) -> type[_S]:
    """Register a scorer class under its ``name`` so configs can refer to it.

    Use it as a class decorator on a frozen dataclass subclass of :class:`ConfidenceScorer`;
    registering the same class twice is a no-op.

    Example:
        >>> register_scorer(MinLogprobScorer) is MinLogprobScorer
        True
    """
    return _SCORERS.register(cls)


def available_scorers() -> tuple[str, ...]:
    """Return the names of the registered scorers, sorted.

    Example:
        >>> "mean_logprob" in available_scorers()
        True
    """
    return _SCORERS.names()


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
    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        """Return the score, or None when it cannot be computed (-> ``no_logprobs``)."""

    def _bound_hopeless(self, stats: _Stats, threshold: float, max_tokens: int | None) -> bool:
        """Return True only if no continuation can end at or above ``threshold``."""
        return False

    def _evidence(self, stats: _Stats) -> int:
        """How many tokens informed the score so far (tokens with alternatives for margins)."""
        return stats.n

    def _predict_hopeless(
        self,
        stats: _Stats,
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

    def _features(
        self, stats: _Stats, text: str, hedge: bool, finish_reason: str | None, prompt: str | None
    ) -> dict[str, float]:
        features = stats.features(hedge=hedge)
        if self.uses_answer_features:
            extra = answer_features(text, finish_reason=finish_reason, prompt=prompt)
            features.update({k: _finite(v) for k, v in extra.items()})
        return features

    def _confidence(
        self,
        stats: _Stats,
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
    ) -> Confidence:
        """Score one answer.

        ``text`` is the answer text (used for hedge detection and to tell an empty answer);
        when it is empty the concatenated tokens are used instead. ``finish_reason`` and
        ``prompt`` (the request's text) feed the answer features of scorers that use them.

        Example:
            >>> MeanLogprobScorer().score(None, "Paris").forced_low
            'no_logprobs'
            >>> MeanLogprobScorer().score(None, "").forced_low
            'empty'
        """
        stats = _Stats(self.unknown_tokens)
        for entry in logprob_entries(logprobs):
            stats.add(entry)
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


@register_scorer
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

    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        return stats.mean

    def _bound_hopeless(self, stats: _Stats, threshold: float, max_tokens: int | None) -> bool:
        if max_tokens is None or stats.n == 0:
            return False
        return stats.total / max(max_tokens, stats.n) < threshold


@register_scorer
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

    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        return stats.min if stats.n else None

    def _bound_hopeless(self, stats: _Stats, threshold: float, max_tokens: int | None) -> bool:
        return stats.n > 0 and stats.min < threshold


@register_scorer
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

    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        return _quantile(stats.sorted, self.q)

    def _bound_hopeless(self, stats: _Stats, threshold: float, max_tokens: int | None) -> bool:
        if stats.n == 0:
            return False
        if max_tokens is None:
            return self.q == 0 and stats.min < threshold
        best = _quantile(stats.sorted, self.q, extra_zeros=max(0, max_tokens - stats.n))
        return best is not None and best < threshold


@register_scorer
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

    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        return stats.margin

    def _evidence(self, stats: _Stats) -> int:
        return stats.margin_n


@register_scorer
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
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise ValueError("CombinedScorer needs a non-empty mapping of feature weights")
        unknown = sorted(set(self.weights) - set(FEATURE_NAMES))
        if unknown:
            known = ", ".join(FEATURE_NAMES)
            raise ValueError(f"unknown feature(s) {unknown} in weights; known features: {known}")
        weights = {str(k): float(v) for k, v in self.weights.items()}
        if not all(math.isfinite(v) for v in [*weights.values(), float(self.bias)]):
            raise ValueError("weights and bias must be finite numbers")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", float(self.bias))

    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        if any(k not in features for k in self.weights):
            return None
        return self.bias + sum(w * features[k] for k, w in self.weights.items())


@register_scorer
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
        if not isinstance(self.coefficients, Mapping) or not self.coefficients:
            raise ValueError("LogisticScorer needs a non-empty mapping of feature coefficients")
        known = (*FEATURE_NAMES, *ANSWER_FEATURE_NAMES)
        unknown = sorted(set(self.coefficients) - set(known))
        if unknown:
            raise ValueError(
                f"unknown feature(s) {unknown} in coefficients; known features: {', '.join(known)}"
            )
        coefficients = {str(k): float(v) for k, v in self.coefficients.items()}
        if not all(math.isfinite(v) for v in [*coefficients.values(), float(self.intercept)]):
            raise ValueError("coefficients and intercept must be finite numbers")
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "intercept", float(self.intercept))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features the scorer reads, in its coefficients' order.

        Example:
            >>> LogisticScorer({"min_logprob": 1.0}).feature_names
            ('min_logprob',)
        """
        return tuple(self.coefficients)

    def _raw_score(self, stats: _Stats, features: Mapping[str, float]) -> float | None:
        if any(k not in features for k in self.coefficients):
            return None
        return self.intercept + sum(c * features[k] for k, c in self.coefficients.items())


@dataclass(frozen=True)
class EarlyEscalation:
    """When local generation may stop before the answer is finished (a policy setting).

    While the local answer streams, it stops as soon as it cannot pass: an unknown token or
    a hedging phrase appears, the scorer's exact bound says the threshold is out of reach,
    or, a *prediction*, ``min_tokens`` tokens informed the score and the running score is
    below ``threshold - margin``. ``enabled=False`` lets every local answer finish.

    Example:
        >>> EarlyEscalation(min_tokens=4).to_dict()
        {'enabled': True, 'min_tokens': 4, 'margin': 0.5}
        >>> EarlyEscalation.from_dict({"enabled": False}).enabled
        False
    """

    enabled: bool = True
    min_tokens: int = 8
    margin: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"enabled must be True or False, got {self.enabled!r}")
        n = self.min_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"min_tokens must be an int >= 1, got {n!r}")
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
            raise ValueError(f"margin must be a finite number >= 0, got {m!r}")
        object.__setattr__(self, "margin", float(m))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict written to policy files."""
        return {"enabled": self.enabled, "min_tokens": self.min_tokens, "margin": self.margin}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EarlyEscalation:
        """Build from :meth:`to_dict` output (missing keys take their defaults)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"early escalation must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"enabled", "min_tokens", "margin"})
        if unknown:
            raise ValueError(
                f"unknown early-escalation key(s) {unknown}; allowed: enabled, min_tokens, margin"
            )
        return cls(**data)


class RunningConfidence:
    """Incremental confidence of an answer that is still being generated.

    Feed it the *new* token entries and the *cumulative* text after each step; ``hopeless``
    becomes True (and stays True) as soon as the answer should be escalated without
    finishing it. ``hopeless_reason`` says why: ``"unknown_token"``, ``"hedge"`` and
    ``"below_threshold"`` are exact (the finished answer would be escalated anyway);
    ``"predicted_below_threshold"`` is the prediction of ``early`` (see ``exact``). Whether
    generation really stops is the policy's call (``early.enabled``).

    Example:
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
        scorer: ConfidenceScorer,
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
        self._stats = _Stats(scorer.unknown_tokens)
        self._text = ""
        self._hedge_checked = 0
        self._reason: HopelessReason | None = None

    @property
    def n_tokens(self) -> int:
        """Tokens seen so far.

        Example:
            >>> MinLogprobScorer().running(-1.0).n_tokens
            0
        """
        return self._stats.n

    @property
    def text(self) -> str:
        """The answer text so far (the joined tokens if no text was given).

        Example:
            >>> r = MinLogprobScorer().running(-1.0)
            >>> r.update([{"token": "Hi", "logprob": 0.0}])
            >>> r.text
            'Hi'
        """
        return self._text

    @property
    def hopeless(self) -> bool:
        """True once the answer should be escalated without finishing it.

        Example:
            >>> MinLogprobScorer().running(-1.0).hopeless
            False
        """
        return self._reason is not None

    @property
    def hopeless_reason(self) -> HopelessReason | None:
        """Why the answer is hopeless, or None.

        Example:
            >>> MinLogprobScorer().running(-1.0).hopeless_reason is None
            True
        """
        return self._reason

    @property
    def exact(self) -> bool:
        """True if hopelessness is certain (not a prediction).

        Example:
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
            >>> r = MinLogprobScorer().running(-1.0)
            >>> r.update({"content": [{"token": "a", "logprob": -0.5}]}, "a")
            >>> r.n_tokens, r.hopeless
            (1, False)
        """
        for entry in logprob_entries(entries):
            self._stats.add(entry)
        self._text = text_so_far if text_so_far is not None else "".join(self._stats.tokens)
        if self._reason is not None:
            return
        start = max(0, self._hedge_checked - self.scorer.hedge.window)
        self._hedge_checked = len(self._text)
        if self._stats.n_unknown:
            self._reason = "unknown_token"
        elif self.scorer.hedge.find(self._text, start) is not None:
            self._reason = "hedge"
        elif self.scorer._bound_hopeless(self._stats, self.threshold, self.max_tokens):
            self._reason = "below_threshold"
        elif self.scorer._predict_hopeless(
            self._stats, self.threshold, self.early, self._text, self.prompt
        ):
            self._reason = "predicted_below_threshold"

    def confidence(self) -> Confidence:
        """Score what has been generated so far (e.g. to record an early-aborted answer).

        Example:
            >>> r = MeanLogprobScorer().running(-1.0)
            >>> r.update([{"token": "a", "logprob": -0.5}], "a")
            >>> r.confidence().score
            -0.5
        """
        text = self._text or "".join(self._stats.tokens)
        return self.scorer._confidence(self._stats, text, None, self.prompt)
