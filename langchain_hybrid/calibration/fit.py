"""Fitting scorer and threshold: folds, candidates, the choice, held-out figures, the policy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.curve import CurvePoint, TradeoffCurve, _curve_arrays, _escalating
from langchain_hybrid.calibration.early import _fit_early
from langchain_hybrid.calibration.errors import CalibrationError
from langchain_hybrid.evaluation.report import wilson_interval
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

if TYPE_CHECKING:
    import numpy as np

    from langchain_hybrid.calibration.features import _Data
    from langchain_hybrid.calibration.targets import _Target

    #: Cross-validation folds: (train indices, test indices) each.
    _Splits = list[tuple[np.ndarray, np.ndarray]]

__all__ = ["MIN_CLASS_FOR_LEARNED"]

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


def _sklearn() -> Any:
    """Return scikit-learn with the parts calibration uses; :class:`CalibrationError` if absent."""
    try:
        import sklearn  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CalibrationError(
            "calibration needs scikit-learn: pip install 'langchain-hybrid[calibration]'"
        ) from e
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.model_selection
    import sklearn.pipeline
    import sklearn.preprocessing

    return sklearn


# ---------------------------------------------------------------------------- candidates


@dataclass
class _Candidate:
    """One scorer configuration: how it scores, and whether ``length`` stays a hard rule."""

    name: str
    finish_reasons: frozenset[str]
    oof: np.ndarray  # out-of-fold scores (raw feature values for single scorers)
    auroc: float | None


def _auroc(y: np.ndarray, scores: np.ndarray) -> float | None:
    sk = _sklearn()
    if len(set(y.tolist())) < 2:
        return None
    return float(sk.metrics.roc_auc_score(y, scores))


def _folds(y: np.ndarray, folds: int, seed: int) -> _Splits:
    import numpy as np

    sk = _sklearn()
    minority = int(min(y.sum(), len(y) - y.sum()))
    k = min(folds, minority)
    if k < 2:
        idx = np.arange(len(y))
        return [(idx, idx)]
    splitter = sk.model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


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
    import numpy as np

    with_length = frozenset(DEFAULT_ESCALATE_FINISH_REASONS)
    without_length = with_length - {"length"}
    out: list[_Candidate] = []
    for name in _SINGLE:
        if name in data.names:
            scores = data.column(name)
            auroc = _auroc(data.y, scores)
            out.append(_Candidate(name, with_length, scores, auroc))
            out.append(_Candidate(name, without_length, scores, auroc))
    minority = int(min(data.y.sum(), len(data.y) - data.y.sum()))
    if minority < MIN_CLASS_FOR_LEARNED:
        return out  # too few right (or wrong) answers to learn from: single scorers only
    oof = np.zeros(len(data.y))
    for train, test in splits:
        scorer = _fit_logistic(data.x[train], data.y[train], data.names)
        oof[test] = _logistic_scores(scorer, data.subset(test))
    out.append(_Candidate("logistic", without_length, oof, _auroc(data.y, oof)))
    return out


def _scorer_of(name: str, data: _Data, hedge: HedgeDetector) -> ConfidenceScorer:
    if name == "logistic":
        fitted = _fit_logistic(data.x, data.y, data.names)
        return dataclasses.replace(fitted, hedge=hedge)
    return dataclasses.replace(_SINGLE[name](), hedge=hedge)


def _fold_scores(name: str, train: _Data, test: _Data) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a scorer fitted on ``train``: (train scores, test scores)."""
    if name == "logistic":
        scorer = _fit_logistic(train.x, train.y, train.names)
        return _logistic_scores(scorer, train), _logistic_scores(scorer, test)
    return train.column(name), test.column(name)


# ---------------------------------------------------------------------------- the choice


@dataclass(frozen=True)
class _Choice:
    """The configuration that meets the target best on out-of-fold scores, and its curve."""

    candidate: _Candidate
    points: list[CurvePoint]
    index: int | None  # the chosen point; None: no point meets the target
    why: str  # why no point meets it
    auroc: dict[str, float | None]  # of every candidate it was chosen among

    @property
    def point(self) -> CurvePoint | None:
        return None if self.index is None else self.points[self.index]

    def curve(self, n: int, source: str) -> TradeoffCurve:
        return TradeoffCurve(tuple(self.points), self.index, self.candidate.name, n, source)


def _choose(candidates: Sequence[_Candidate], data: _Data, target: _Target) -> _Choice:
    """Choose the configuration that meets the target best on out-of-fold scores."""
    auroc = {c.name: c.auroc for c in candidates}
    best: tuple[tuple[float, float], _Choice] | None = None
    for c in candidates:
        points = _curve_arrays(c.oof, data, c.finish_reasons)
        idx, why = target.choose(points)
        score = target.rank(points, idx)
        if best is None or score > best[0] or (score == best[0] and c.name == "logistic"):
            best = (score, _Choice(c, points, idx, why, auroc))
    assert best is not None
    return best[1]


def _held_out(chosen: _Candidate, data: _Data, splits: _Splits, target: _Target) -> dict[str, Any]:
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
    how = (
        f"{len(splits)}-fold cross-validation: scorer and threshold fitted without the fold "
        "they are measured on"
        if len(splits) > 1
        else "in-sample (too few examples of one class to hold any out)"
    )
    return {
        "how": how,
        "n": n,
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


def _fitted_policy(
    base: RoutingPolicy, choice: _Choice, data: _Data, fit_early: bool, max_wrong_stops: float
) -> tuple[RoutingPolicy, dict[str, Any]]:
    """Return the policy of the choice and its early-escalation figures (empty if not fitted).

    No point met the target: ``base`` sending everything to the cloud. Else ``base`` with the
    chosen scorer (refitted on all the data), threshold and hard finish reasons, and, with
    ``fit_early``, early escalation fitted by replay.
    """
    p = choice.point
    if p is None:
        return _cloud_only(base, choice.points[0].threshold), {}
    chosen = choice.candidate
    hedge = getattr(base.scorer, "hedge", HedgeDetector(DEFAULT_HEDGE_PHRASES))
    scorer = _scorer_of(chosen.name, data, hedge)
    threshold = float(p.threshold)
    if isinstance(scorer, LogisticScorer):
        # The point was chosen on out-of-fold scores; the scorer saved is refitted on all
        # the data, whose scores sit on a slightly different scale. Keep the same answers
        # local: the threshold that keeps the chosen number of answers under the refit.
        threshold = _threshold_keeping(
            _logistic_scores(scorer, data), data, chosen.finish_reasons, p.n_local, threshold
        )
    policy = dataclasses.replace(
        base,
        threshold=threshold,
        scorer=scorer,
        escalate_finish_reasons=chosen.finish_reasons,
        # The curve judged whole answers: early stops are only allowed once fitted.
        early_escalation=EarlyEscalation(enabled=False),
        fitted_on=None,
    )
    return _fit_early(policy, data, max_wrong_stops) if fit_early else (policy, {})


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
