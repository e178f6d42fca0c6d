r"""Fit a routing policy on labelled data: scorer, threshold, early escalation; trade-off curve.

:func:`calibrate` takes what the local tier answered on labelled examples (collected
:class:`~langchain_hybrid.evaluation.records.LocalRecord`\\ s, or the examples and the local
tier, which it then runs once through ``collect_local``) and what the cloud scores on them
(:class:`CloudOutcomes`: per-example correctness replayed from recorded answers, or an
assumed accuracy, labelled as such). For one target, ``target_cloud_rate``,
``target_accuracy`` (the hybrid's expected accuracy) or ``max_cost`` (expected USD per
query, from the price table), it

1. computes every answer's features the way the live route does (log-probs, answer
   length, whether it hit the token cap, how much of it the prompt supports, whether it
   declines) and measures how well each scorer predicts a correct local answer
   (``roc_auc_score``, with 95% intervals from a bootstrap over groups; the learned
   :class:`~langchain_hybrid.routing.confidence.LogisticScorer` out-of-fold). Folds hold
   out whole groups (``StratifiedGroupKFold`` over each record's group: its article or
   passage), since questions on one passage are not independent; with too few groups or
   too few right answers there is no learned scorer, and the report says why;
2. chooses the scorer (and whether ``finish_reason="length"`` stays a hard escalation
   rule: the learned scorer reads truncation as a feature instead) and the threshold
   that best meets the target;
3. measures the chosen operating point on groups not used to fit it (the scorer and the
   threshold are refitted without each fold, which is then scored), with 95% intervals;
4. fits the early-escalation prediction by replaying answers through ``policy.judge``
   (fitted on half of the groups, measured on the other half).

When no operating point meets the target (the local model is never right enough), the
result says so plainly, warns, and returns a cloud-only policy: everything escalates.

scikit-learn and matplotlib are the optional extra ``langchain-hybrid[calibration]``.

The modules, one job each: ``outcomes`` (what the cloud scores), ``features`` (each record's
features, and the records as arrays), ``curve`` (the trade-off curve) and ``display`` (its
drawing), ``targets`` (the targets, and how a point is chosen to meet one), ``fit`` (folds,
candidate scorers, the choice among them, its held-out figures and policy), ``early`` (early
escalation) and ``report`` (the result, in plain words and in the policy's ``fitted_on``).

Example:
    >>> import random
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> from langchain_hybrid.evaluation.records import LocalRecord
    >>> rng = random.Random(0)
    >>> def record(i):
    ...     right = rng.random() < 0.5
    ...     lp = rng.gauss(-0.2 if right else -2.0, 0.3)
    ...     answer = AIMessage("Paris", response_metadata={"finish_reason": "stop",
    ...         "logprobs": {"content": [{"token": "Paris", "logprob": lp}]}})
    ...     return LocalRecord(example_id=str(i), prompt=(HumanMessage("Capital?"),),
    ...                        answer=answer, correct=right, latency_s=0.1, max_tokens=8)
    >>> result = calibrate([record(i) for i in range(200)], target_cloud_rate=0.5,
    ...                    cloud=CloudOutcomes.assumed(0.9), fit_early=False)
    >>> result.met, abs(result.achieved["cloud_share"] - 0.5) < 0.1
    (True, True)
    >>> result.auroc["mean_logprob"] > 0.9
    True
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.curve import CurvePoint, TradeoffCurve
from langchain_hybrid.calibration.display import TradeoffCurveDisplay
from langchain_hybrid.calibration.early import _fit_early, replay_early
from langchain_hybrid.calibration.errors import CalibrationError
from langchain_hybrid.calibration.features import (
    LEARNED_FEATURES,
    _collected,
    _prepare,
    record_features,
)
from langchain_hybrid.calibration.fit import (
    MIN_CLASS_FOR_LEARNED,
    _candidates,
    _choose,
    _fitted_policy,
    _folds,
    _held_out,
    _learnable,
    _probe_learnable,
    _sklearn,
)
from langchain_hybrid.calibration.outcomes import CloudOutcomes
from langchain_hybrid.calibration.probe import fit_before_generation
from langchain_hybrid.calibration.report import CalibrationResult, _message, _with_fitted_on
from langchain_hybrid.calibration.targets import Target, _Target
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.evaluation.report import wilson_interval
from langchain_hybrid.routing.policy import RoutingPolicy

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from langchain_hybrid.evaluation.records import Example, LocalRecord

__all__ = [
    "LEARNED_FEATURES",
    "MIN_CLASS_FOR_LEARNED",
    "CalibrationError",
    "CalibrationResult",
    "CloudOutcomes",
    "CurvePoint",
    "Target",
    "TradeoffCurve",
    "TradeoffCurveDisplay",
    "calibrate",
    "record_features",
    "replay_early",
    "wilson_interval",
]

logger = logging.getLogger(__name__)


def calibrate(
    records: Sequence[LocalRecord] | None = None,
    *,
    examples: Sequence[Example] | None = None,
    local: BaseChatModel | None = None,
    max_tokens: int = 32,
    target_cloud_rate: float | None = None,
    target_accuracy: float | None = None,
    max_cost: float | None = None,
    cloud: CloudOutcomes | None = None,
    min_local_accuracy: float = 0.5,
    folds: int = 5,
    seed: int = 0,
    dataset: str = "",
    base: RoutingPolicy | None = None,
    prices: PriceTable | None = None,
    fit_early: bool = True,
    max_wrong_stops: float = 0.05,
    progress: bool | None = None,
) -> CalibrationResult:
    """Fit a :class:`RoutingPolicy` for one target on labelled local answers.

    Args:
        records: the local tier's answers (:class:`LocalRecord`); or give ``examples``
            and ``local`` and they are collected with ``collect_local``.
        examples: labelled examples to collect records on (with ``local``).
        local: the local tier to collect with.
        max_tokens: the local token limit when collecting.
        target_cloud_rate: the share of requests sent to the cloud (one target only).
        target_accuracy: the hybrid's expected accuracy (one target only).
        max_cost: the expected USD cost per query (one target only).
        cloud: the cloud's outcomes (replayed correctness or an assumed accuracy).
        min_local_accuracy: for the cloud-rate and cost targets, the answers kept local
            must be right at least this often, else the target is not met.
        folds: folds of the cross-validation; each holds out whole groups (a record's
            ``group``: its article or passage; ``StratifiedGroupKFold``).
        seed: its shuffling seed.
        dataset: the data's name, recorded in ``fitted_on``.
        base: the policy to start from (its rules and hedge phrases are kept).
        prices: the price table (default: ``PriceTable.default()``).
        fit_early: also fit early escalation.
        max_wrong_stops: the share of answers that would pass that stopping early may stop
            (the gate before generation, fitted first, takes at most half of it; early
            escalation the rest, gate included).
        progress: show a progress bar while collecting (None: when on a terminal).

    Returns a :class:`CalibrationResult`. When no threshold meets the target, its message
    says so, a warning is issued, and the policy escalates everything.
    """
    target = _Target.given(target_cloud_rate, target_accuracy, max_cost, min_local_accuracy)
    records = _collected(records, examples, local, max_tokens, progress)
    if cloud is None:
        raise CalibrationError(
            "say what the cloud scores: cloud=CloudOutcomes.replayed(examples, model) or "
            "CloudOutcomes.assumed(accuracy)"
        )
    _sklearn()
    data = _prepare(records, cloud, prices or PriceTable.default())
    splits, how = _folds(data, folds, seed)
    choice = _choose(_candidates(data, splits), data, target)
    achieved = _held_out(choice.candidate, data, splits, how, target)
    base = base or RoutingPolicy()
    policy = _fitted_policy(base, choice, data)
    before: dict[str, Any] = {}
    early: dict[str, Any] = {}
    if choice.point is not None:  # half the stops allowed to each way of stopping early
        policy, before = fit_before_generation(policy, data, splits, max_wrong_stops / 2)
        if fit_early:
            policy, early = _fit_early(policy, data, max_wrong_stops)
    message = _message(choice, policy)
    if choice.point is None:
        warnings.warn(message, stacklevel=2)
        logger.warning(message)
    n, source = len(records), f"{cloud.source}; out-of-fold scores, {how}"
    curve, met = choice.curve(n, source), choice.point is not None
    result = CalibrationResult(
        policy,
        curve,
        choice.auroc,
        achieved,
        early,
        met,
        message,
        target.describe(),
        n,
        source,
        auroc_ci=choice.auroc_ci,
        no_learned=_learnable(data),
        no_probe=_probe_learnable(data),
        before_generation=before,
    )
    return _with_fitted_on(result, dataset, cloud.source, records)
