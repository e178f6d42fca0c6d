"""The confidence API in one import: answer features, scorers and the running confidence.

The parts live in their own modules: :mod:`~langchain_hybrid.routing.hedges` (hedging and
declining phrases), :mod:`~langchain_hybrid.routing.features` (log-prob statistics and
answer features), :mod:`~langchain_hybrid.routing.scores` (the :class:`Confidence`
record), :mod:`~langchain_hybrid.routing.scorers` (the scorers and their registry) and
:mod:`~langchain_hybrid.routing.running` (the running confidence behind early
escalation). Log-probs arrive in OpenAI's chat-completions shape::

    {"content": [{"token": str, "logprob": float, "bytes": [int] | None,
                  "top_logprobs": [{"token": str, "logprob": float, "bytes": [int] | None}]}]}

Example:
    >>> lp = {"content": [{"token": "Paris", "logprob": -0.05}]}
    >>> MeanLogprobScorer().score(lp, "Paris").score
    -0.05
"""

from __future__ import annotations

from langchain_hybrid.routing.features import (
    ANSWER_FEATURE_NAMES,
    DEFAULT_UNKNOWN_TOKENS,
    FEATURE_NAMES,
    answer_features,
    compute_features,
)
from langchain_hybrid.routing.hedges import (
    DEFAULT_DECLINE_PHRASES,
    DEFAULT_HEDGE_PHRASES,
    HedgeDetector,
)
from langchain_hybrid.routing.running import EarlyEscalation, HopelessReason, RunningConfidence
from langchain_hybrid.routing.scorers import (
    CombinedScorer,
    ConfidenceScorer,
    LogisticScorer,
    MarginScorer,
    MeanLogprobScorer,
    MinLogprobScorer,
    QuantileLogprobScorer,
    available_scorers,
    register_scorer,
    scorer_from_config,
)
from langchain_hybrid.routing.scores import FORCED_LOW_REASONS, Confidence, ForcedLowReason

__all__ = [
    "ANSWER_FEATURE_NAMES",
    "DEFAULT_DECLINE_PHRASES",
    "DEFAULT_HEDGE_PHRASES",
    "DEFAULT_UNKNOWN_TOKENS",
    "FEATURE_NAMES",
    "FORCED_LOW_REASONS",
    "CombinedScorer",
    "Confidence",
    "ConfidenceScorer",
    "EarlyEscalation",
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
