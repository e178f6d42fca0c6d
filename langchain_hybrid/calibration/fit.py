"""Fitting scorer and threshold: folds, candidates, the choice, held-out figures, the policy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.curve import CurvePoint, TradeoffCurve, _curve_arrays, _escalating
from langchain_hybrid.calibration.errors import require_sklearn
from langchain_hybrid.calibration.probe import MIN_CLASS_FOR_PROBE, fit_probe, probe_scores
from langchain_hybrid.evaluation.statistics import grouped_auroc_interval, wilson_interval
from langchain_hybrid.routing.confidence import (
    DEFAULT_HEDGE_PHRASES,
    ConfidenceScorer,
    EarlyEscalation,
    HedgeDetector,
    LogisticScorer,
    MarginScorer,
    MeanLogprobScorer,
    MinLogprobScorer,
    QuantileLogprobScorer,
)
from langchain_hybrid.routing.policy import DEFAULT_ESCALATE_FINISH_REASONS, RoutingPolicy
from langchain_hybrid.routing.rules import ForceCloudRule
from langchain_hybrid.routing.scorers import ProbeScorer

if TYPE_CHECKING:
    import numpy as np

    from langchain_hybrid.calibration.features import _Data
    from langchain_hybrid.calibration.targets import _Target

    #: Cross-validation folds: (train indices, test indices) each.
    _Splits = list[tuple[np.ndarray, np.ndarray]]

__all__ = ["MIN_CLASS_FOR_LEARNED", "MIN_CLASS_PER_WEIGHT", "MIN_GROUPS_FOR_LEARNED"]

#: The single-feature scorers calibration compares, by the feature that is their score.
_SINGLE: dict[str, Callable[[], ConfidenceScorer]] = {
    "mean_logprob": MeanLogprobScorer,
    "min_logprob": MinLogprobScorer,
    "p10_logprob": lambda: QuantileLogprobScorer(q=0.1),
    "margin": MarginScorer,
}
_CLOUD_ONLY_RULE = "calibration_cloud_only"
#: The learned scorer is fitted only on at least this many right and this many wrong answers.
MIN_CLASS_FOR_LEARNED = 10
#: ... and on at least this many of each class per weight it fits (one in ten is the usual
#: rule for logistic regression; fewer overfit the groups it sees).
MIN_CLASS_PER_WEIGHT = 5
#: ... and on at least this many groups, so that held-out folds hold unseen groups.
MIN_GROUPS_FOR_LEARNED = 2


def _sklearn() -> Any:
    """Return scikit-learn with the parts calibration uses (see :func:`require_sklearn`)."""
    return require_sklearn()


# ---------------------------------------------------------------------------- candidates


@dataclass
class _Candidate:
    """One scorer configuration: how it scores, and whether ``length`` stays a hard rule."""

    name: str
    finish_reasons: frozenset[str]
    oof: np.ndarray  # out-of-fold scores (raw feature values for single scorers)
    auroc: float | None
    auroc_ci: tuple[float, float] | None = None


def _auroc(y: np.ndarray, scores: np.ndarray) -> float | None:
    sk = _sklearn()
    if len(set(y.tolist())) < 2:
        return None
    return float(sk.metrics.roc_auc_score(y, scores))


def _folds(data: _Data, folds: int, seed: int) -> tuple[_Splits, str]:
    """Folds that hold out whole groups (``StratifiedGroupKFold``), and how they were made.

    Rows of one group (an article, a passage) are never split between fitting and
    measuring: a figure measured on a fold is a figure on groups the fit did not see.
    """
    import numpy as np

    sk = _sklearn()
    minority = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    k = min(folds, data.n_groups, max(minority, 0))
    if k < 2:
        idx = np.arange(len(data.y))
        why = "one group" if data.n_groups < 2 else "too few examples of one class"
        return [(idx, idx)], f"in-sample ({why}: nothing can be held out)"
    splitter = sk.model_selection.StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(data.y)), data.y, data.groups))
    return splits, f"{k}-fold cross-validation by group ({data.n_groups} groups)"


def _learnable(data: _Data) -> str | None:
    """Say why the learned scorer cannot be fitted on ``data`` (None: it can)."""
    minority = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    needed = max(MIN_CLASS_FOR_LEARNED, MIN_CLASS_PER_WEIGHT * len(data.names))
    if data.n_groups < MIN_GROUPS_FOR_LEARNED:
        return (
            f"only {data.n_groups} group(s) of related examples: a learned scorer needs "
            f"{MIN_GROUPS_FOR_LEARNED} to be measured on groups it was not fitted on"
        )
    if minority < needed:
        return (
            f"only {minority} answers of the rarer class (right or wrong): a learned scorer "
            f"of {len(data.names)} weights needs {needed}"
        )
    return None


def _auroc_ci(data: _Data, scores: np.ndarray) -> tuple[float, float] | None:
    """Return a 95% interval for the AUROC of ``scores``: a bootstrap over whole groups."""
    return grouped_auroc_interval(data.y, scores, data.groups.tolist())


def _fit_logistic(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> LogisticScorer:
    import numpy as np

    sk = _sklearn()
    keep = [i for i in range(x.shape[1]) if np.ptp(x[:, i]) > 0]
    if not keep or len(set(y.tolist())) < 2:
        p = min(max(float(y.mean()) if len(y) else 0.5, 1e-6), 1 - 1e-6)
        return LogisticScorer({names[0]: 0.0}, intercept=math.log(p / (1 - p)))
    model = sk.pipeline.make_pipeline(
        sk.preprocessing.StandardScaler(),
        sk.linear_model.LogisticRegression(C=1.0, max_iter=2000),
    )
    model.fit(x[:, keep], y)
    scaler, lr = model[0], model[1]
    coef = lr.coef_[0] / scaler.scale_
    intercept = float(lr.intercept_[0] - np.sum(coef * scaler.mean_))
    return LogisticScorer(
        {names[i]: float(c) for i, c in zip(keep, coef, strict=True)}, intercept=intercept
    )


def _logistic_scores(scorer: LogisticScorer, data: _Data) -> np.ndarray:
    import numpy as np

    cols = [data.names.index(n) for n in scorer.coefficients]
    w = np.array(list(scorer.coefficients.values()))
    return np.asarray(scorer.intercept + data.x[:, cols] @ w)


def _candidates(data: _Data, splits: _Splits) -> list[_Candidate]:
    """Return the scorers to choose among, with out-of-fold scores and AUROCs (and CIs).

    The learned scorer is left out when :func:`_learnable` says it cannot be fitted.
    """
    import numpy as np

    with_length = frozenset(DEFAULT_ESCALATE_FINISH_REASONS)
    without_length = with_length - {"length"}
    out: list[_Candidate] = []
    for name in _SINGLE:
        if name in data.names:
            scores = data.column(name)
            auroc, ci = _auroc(data.y, scores), _auroc_ci(data, scores)
            out.append(_Candidate(name, with_length, scores, auroc, ci))
            out.append(_Candidate(name, without_length, scores, auroc, ci))
    if len(splits) < 2:
        return out
    learned = ["logistic"] if _learnable(data) is None else []
    if _probe_learnable(data) is None:
        learned.append("probe")
    for name in learned:
        oof = np.zeros(len(data.y))
        for train, test in splits:
            oof[test] = _fold_scores(name, data.subset(train), data.subset(test))[1]
        ci = _auroc_ci(data, oof)
        out.append(_Candidate(name, without_length, oof, _auroc(data.y, oof), ci))
    return out


def _probe_learnable(data: _Data) -> str | None:
    """Say why no probe can be fitted on ``data`` (None: it can)."""
    minority = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    if not data.hidden:
        return "the records carry no hidden states (collect them with an in-process local tier)"
    if data.n_groups < MIN_GROUPS_FOR_LEARNED:
        return f"only {data.n_groups} group(s) of related examples"
    if minority < MIN_CLASS_FOR_PROBE:
        return f"only {minority} answers of the rarer class: a probe needs {MIN_CLASS_FOR_PROBE}"
    return None


def _scorer_of(name: str, data: _Data, hedge: HedgeDetector) -> ConfidenceScorer:
    if name == "logistic":
        return dataclasses.replace(_fit_logistic(data.x, data.y, data.names), hedge=hedge)
    if name == "probe":
        return dataclasses.replace(fit_probe(data), hedge=hedge)
    return dataclasses.replace(_SINGLE[name](), hedge=hedge)


def _fold_scores(name: str, train: _Data, test: _Data) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a scorer fitted on ``train``: (train scores, test scores)."""
    if name == "logistic":
        scorer = _fit_logistic(train.x, train.y, train.names)
        return _logistic_scores(scorer, train), _logistic_scores(scorer, test)
    if name == "probe":
        probe = fit_probe(train)
        return probe_scores(probe, train), probe_scores(probe, test)
    return train.column(name), test.column(name)


def _learned_scores(scorer: ConfidenceScorer, data: _Data) -> np.ndarray | None:
    """Return the scores a refitted learned scorer gives ``data`` (None: not a learned one)."""
    if isinstance(scorer, LogisticScorer):
        return _logistic_scores(scorer, data)
    if isinstance(scorer, ProbeScorer):
        return probe_scores(scorer, data)
    return None


# ---------------------------------------------------------------------------- the choice


@dataclass(frozen=True)
class _Choice:
    """The configuration that meets the target best on out-of-fold scores, and its curve."""

    candidate: _Candidate
    points: list[CurvePoint]
    index: int | None  # the chosen point; None: no point meets the target
    why: str  # why no point meets it
    auroc: dict[str, float | None]  # of every candidate it was chosen among
    auroc_ci: dict[str, tuple[float, float] | None]  # their 95% intervals (group bootstrap)

    @property
    def point(self) -> CurvePoint | None:
        return None if self.index is None else self.points[self.index]

    def curve(self, n: int, source: str) -> TradeoffCurve:
        return TradeoffCurve(tuple(self.points), self.index, self.candidate.name, n, source)


def _choose(candidates: Sequence[_Candidate], data: _Data, target: _Target) -> _Choice:
    """Choose the configuration that meets the target best on out-of-fold scores."""
    auroc = {c.name: c.auroc for c in candidates}
    auroc_ci = {c.name: c.auroc_ci for c in candidates}
    best: tuple[tuple[float, float], _Choice] | None = None
    for c in candidates:
        points = _curve_arrays(c.oof, data, c.finish_reasons)
        idx, why = target.choose(points)
        score = target.rank(points, idx)
        if best is None or score > best[0] or (score == best[0] and c.name == "logistic"):
            best = (score, _Choice(c, points, idx, why, auroc, auroc_ci))
    assert best is not None
    return best[1]


def _held_out(
    chosen: _Candidate, data: _Data, splits: _Splits, how: str, target: _Target
) -> dict[str, Any]:
    """Measure the chosen configuration on each fold, fitting scorer and threshold without it.

    Beside the held-out figures: the accuracies of cloud-only and local-only on all the data.
    """
    import numpy as np

    n = len(data.y)
    cloud_n = 0
    correct = 0.0
    cost = 0.0
    kept_n = 0
    kept_right = 0.0
    for train_idx, test_idx in splits:
        train, test = data.subset(train_idx), data.subset(test_idx)
        train_scores, test_scores = _fold_scores(chosen.name, train, test)
        points = _curve_arrays(train_scores, train, chosen.finish_reasons)
        idx, _ = target.choose(points)
        always = _escalating(test, chosen.finish_reasons)
        if idx is None:
            keep = np.zeros(len(test.y), dtype=bool)
        else:
            keep = ~always & (test_scores >= points[idx].threshold)
        kept_n += int(keep.sum())
        kept_right += float(test.y[keep].sum())
        cloud_n += int((~keep).sum())
        correct += float(test.y[keep].sum() + test.cloud_p[~keep].sum())
        cost += float(test.cloud_cost[~keep].sum() + test.local_cost.sum())
    if len(splits) > 1:
        how += ": scorer and threshold fitted without the groups they are measured on"
    return {
        "how": how,
        "n": n,
        "groups": data.n_groups,
        "cloud_share": cloud_n / n,
        "cloud_share_ci": list(wilson_interval(cloud_n, n)),
        "accuracy": correct / n,
        "accuracy_ci": list(wilson_interval(correct, n)),
        "kept_accuracy": kept_right / kept_n if kept_n else None,
        "kept_accuracy_ci": list(wilson_interval(kept_right, kept_n)) if kept_n else None,
        "cost_per_query": cost / n,
        "cloud_only_accuracy": float(data.cloud_p.mean()),
        "local_only_accuracy": float(data.y.mean()),
    }


# ---------------------------------------------------------------------------- the policy


def _fitted_policy(base: RoutingPolicy, choice: _Choice, data: _Data) -> RoutingPolicy:
    """Return the policy of the choice, early escalation off (it is fitted next, by replay).

    No point met the target: ``base`` sending everything to the cloud. Else ``base`` with the
    chosen scorer (refitted on all the data), threshold and hard finish reasons.
    """
    p = choice.point
    if p is None:
        return _cloud_only(base, choice.points[0].threshold)
    chosen = choice.candidate
    hedge = getattr(base.scorer, "hedge", HedgeDetector(DEFAULT_HEDGE_PHRASES))
    scorer = _scorer_of(chosen.name, data, hedge)
    threshold = float(p.threshold)
    refit = _learned_scores(scorer, data)
    if refit is not None:
        # The point was chosen on out-of-fold scores; the scorer saved is refitted on all
        # the data, whose scores sit on a slightly different scale. Keep the same answers
        # local: the threshold that keeps the chosen number of answers under the refit.
        threshold = _threshold_keeping(refit, data, chosen.finish_reasons, p.n_local, threshold)
    policy = dataclasses.replace(
        base,
        threshold=threshold,
        scorer=scorer,
        escalate_finish_reasons=chosen.finish_reasons,
        # The curve judged whole answers: early stops are only allowed once fitted.
        early_escalation=EarlyEscalation(enabled=False),
        fitted_on=None,
    )
    return policy


def _threshold_keeping(
    scores: np.ndarray,
    data: _Data,
    finish_reasons: frozenset[str],
    n_local: int,
    default: float,
) -> float:
    """Return the threshold that keeps the ``n_local`` best-scoring keepable answers local."""
    import numpy as np

    keepable = np.sort(scores[~_escalating(data, finish_reasons)])[::-1]
    if len(keepable) == 0:
        return default
    if n_local <= 0:
        return float(keepable[0]) + 1.0
    if n_local >= len(keepable):
        return float(keepable[-1]) - 1.0
    return float(keepable[n_local - 1] + keepable[n_local]) / 2.0


def _cloud_only(base: RoutingPolicy, threshold: float) -> RoutingPolicy:
    """Return ``base`` with a rule that sends every request to the cloud."""
    rule = ForceCloudRule(pattern=r"(?s)", name=_CLOUD_ONLY_RULE)
    return dataclasses.replace(base, rules=(*base.rules, rule), threshold=threshold)
