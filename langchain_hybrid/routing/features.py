"""Features of one answer: statistics of its token log-probs, and its text against the prompt.

:class:`TokenStats` accumulates the log-prob statistics token by token (one-shot and
incremental scoring share it); :func:`compute_features` and :func:`answer_features` are
the features scorers and calibration read (``FEATURE_NAMES``, ``ANSWER_FEATURE_NAMES``).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Collection, Iterable, Sequence
from typing import cast

from langchain_hybrid.logprobs import LOGPROB_FLOOR, LogprobsLike, TokenLogprob, logprob_entries
from langchain_hybrid.routing.hedges import DEFAULT_DECLINE_PHRASES, HedgeDetector

__all__ = [
    "ANSWER_FEATURE_NAMES",
    "DEFAULT_UNKNOWN_TOKENS",
    "FEATURE_NAMES",
    "TokenStats",
    "answer_features",
    "compute_features",
    "finite",
    "quantile",
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

#: Tokens counted as "unknown" by default.
DEFAULT_UNKNOWN_TOKENS: frozenset[str] = frozenset({"<unk>"})

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


def finite(x: float) -> float:
    """Map NaN and -inf to the floor and +inf to a large finite number.

    Example:
        >>> finite(float("nan")), finite(float("inf")) > 1e299
        (-100.0, True)
    """
    if math.isnan(x) or x == -math.inf:
        return LOGPROB_FLOOR
    return min(_MAX_FLOAT, x)


def quantile(sorted_values: Sequence[float], q: float, extra_zeros: int = 0) -> float | None:
    """Linear-interpolated quantile of ``sorted_values`` plus ``extra_zeros`` trailing zeros.

    Example:
        >>> quantile([-3.0, -1.0], 0.5), quantile([-3.0, -1.0], 0.5, extra_zeros=2)
        (-2.0, -0.5)
    """
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


class TokenStats:
    """Running statistics over token entries; shared by one-shot and incremental scoring.

    Example:
        >>> stats = TokenStats({"<unk>"})
        >>> stats.add({"token": "a", "logprob": -1.0, "top_logprobs": []})
        >>> stats.add({"token": "b", "logprob": -3.0, "top_logprobs": []})
        >>> stats.mean, stats.min, stats.features(hedge=False)["p10_logprob"]
        (-2.0, -3.0, -2.8)
    """

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
        #: The local model's hidden-state vectors of the answer, when it reported them
        #: (``prompt``, ``answer_mean``; see :mod:`langchain_hybrid.hidden_states`).
        self.hidden: dict[str, list[float]] = {}

    def add(self, entry: TokenLogprob) -> None:
        """Add one token entry (normalised: ``top_logprobs`` present)."""
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
        """The mean log-prob, or None before the first token."""
        return self.total / self.n if self.n else None

    @property
    def margin(self) -> float | None:
        """The mean top-1 minus top-2 log-prob over tokens with alternatives, or None."""
        return self.margin_sum / self.margin_n if self.margin_n else None

    def features(self, hedge: bool) -> dict[str, float]:
        """Return the ``FEATURE_NAMES`` features so far (``hedge``: a phrase was found)."""
        f: dict[str, float] = {}
        mean = self.mean
        if mean is not None:
            f["mean_logprob"] = mean
            f["min_logprob"] = self.min
            f["p10_logprob"] = cast(float, quantile(self.sorted, 0.1))
        margin = self.margin
        if margin is not None:
            f["margin"] = margin
        f["n_tokens"] = float(self.n)
        if mean is not None:
            f["perplexity"] = math.exp(-mean)
        f["n_unknown"] = float(self.n_unknown)
        f["hedge"] = 1.0 if hedge else 0.0
        return {k: finite(v) for k, v in f.items()}


_DECLINES = HedgeDetector(phrases=DEFAULT_DECLINE_PHRASES)


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
    stats = TokenStats(frozenset(unknown_tokens))
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
