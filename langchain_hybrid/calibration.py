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
   (``roc_auc_score``; the learned :class:`~langchain_hybrid.routing.confidence.LogisticScorer`
   out-of-fold, ``StratifiedKFold``);
2. chooses the scorer (and whether ``finish_reason="length"`` stays a hard escalation
   rule: the learned scorer reads truncation as a feature instead) and the threshold
   that best meets the target;
3. measures the chosen operating point on data not used to fit it (the scorer and the
   threshold are refitted without each fold, which is then scored), with 95% intervals;
4. fits the early-escalation prediction by replaying answers through ``policy.judge``.

When no operating point meets the target (the local model is never right enough), the
result says so plainly, warns, and returns a cloud-only policy: everything escalates.

scikit-learn and matplotlib are the optional extra ``langchain-hybrid[calibration]``.

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

import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_hybrid.costs import PriceTable
from langchain_hybrid.errors import LangChainHybridError
from langchain_hybrid.evaluation.records import prompt_digest
from langchain_hybrid.evaluation.report import wilson_interval
from langchain_hybrid.routing.confidence import (
    ANSWER_FEATURE_NAMES,
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
from langchain_hybrid.routing.policy import (
    DEFAULT_ESCALATE_FINISH_REASONS,
    RoutingPolicy,
    Verdict,
    answer_text,
    prompt_text,
)
from langchain_hybrid.routing.rules import ForceCloudRule

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.language_models import BaseChatModel

    from langchain_hybrid.evaluation.records import Example, LocalRecord

__all__ = [
    "CalibrationError",
    "CalibrationResult",
    "CloudOutcomes",
    "CurvePoint",
    "TradeoffCurve",
    "calibrate",
    "record_features",
    "wilson_interval",
]

logger = logging.getLogger(__name__)

Target = Literal["cloud_rate", "accuracy", "max_cost"]

#: Features the learned scorer may use (those every answer has).
LEARNED_FEATURES: tuple[str, ...] = (
    "mean_logprob",
    "min_logprob",
    "p10_logprob",
    "margin",
    "n_tokens",
    "hedge",
    *ANSWER_FEATURE_NAMES,
)
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
#: How far the cloud share of the chosen point may be from ``target_cloud_rate``.
_SHARE_TOLERANCE = 0.05


class CalibrationError(LangChainHybridError):
    """Calibration cannot run on what it was given (no records, a missing extra, bad target)."""


def _sklearn() -> Any:
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


# ---------------------------------------------------------------------------- cloud


@dataclass(frozen=True)
class CloudOutcomes:
    """What the cloud tier scores on each example, and what it costs.

    ``correct`` maps example ids to the cloud's graded correctness (replayed or live
    answers); ids it lacks take ``accuracy``, an *assumed* accuracy. ``source`` says which
    (it is written into the fitted policy). The cost of sending an example to the cloud is
    priced with ``prices`` for ``model`` from the prompt and answer token counts.

    Example:
        >>> CloudOutcomes.assumed(0.8).p_correct("anything"), CloudOutcomes.assumed(0.8).source
        (0.8, 'assumed accuracy 0.8')
        >>> CloudOutcomes(correct={"a": True}, accuracy=0.5).p_correct("a")
        1.0
    """

    correct: Mapping[str, bool] = field(default_factory=dict)
    accuracy: float | None = None
    model: str = "gpt-4o"
    source: str = ""
    completion_tokens: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = self.accuracy
        if a is not None and (isinstance(a, bool) or not 0.0 <= float(a) <= 1.0):
            raise CalibrationError(f"cloud accuracy must be in [0, 1], got {a!r}")
        if not self.source:
            src = f"assumed accuracy {a:g}" if not self.correct else f"replayed {self.model}"
            object.__setattr__(self, "source", src)

    @classmethod
    def assumed(cls, accuracy: float, model: str = "gpt-4o") -> CloudOutcomes:
        """Return an assumed cloud accuracy for every example (labelled as assumed).

        Example:
            >>> CloudOutcomes.assumed(0.9, model="gpt-4o-mini").model
            'gpt-4o-mini'
        """
        return cls(accuracy=accuracy, model=model)

    @classmethod
    def replayed(cls, examples: Iterable[Example], model: str) -> CloudOutcomes:
        """Return the recorded answers of ``model`` on the examples (``Example.recorded``).

        Raises :class:`CalibrationError` when no example has a graded answer of ``model``.

        Example:
            >>> from langchain_hybrid.evaluation.records import CloudRecord, Example
            >>> ex = Example(id="1", question="2+2?", answers=("4",), task="math",
            ...              recorded={"gpt-4": CloudRecord("gpt-4", "4", True)})
            >>> CloudOutcomes.replayed([ex], "gpt-4").p_correct("1")
            1.0
        """
        correct: dict[str, bool] = {}
        tokens: dict[str, int] = {}
        for ex in examples:
            rec = ex.recorded.get(model)
            if rec is not None and rec.correct is not None:
                correct[ex.id] = rec.correct
                if rec.completion_tokens is not None:
                    tokens[ex.id] = rec.completion_tokens
        if not correct:
            raise CalibrationError(
                f"no example has a graded recorded answer of {model!r}; pass the cloud's "
                "accuracy instead (CloudOutcomes.assumed(...), --cloud-accuracy)"
            )
        return cls(
            correct=correct,
            model=model,
            source=f"replayed {model} ({len(correct)} answers)",
            completion_tokens=tokens,
        )

    def p_correct(self, example_id: str) -> float:
        """Return the cloud's correctness on one example (1/0 if known, else the assumed one).

        Raises :class:`CalibrationError` when neither is known.
        """
        if example_id in self.correct:
            return 1.0 if self.correct[example_id] else 0.0
        if self.accuracy is None:
            raise CalibrationError(
                f"the cloud's correctness on example {example_id!r} is unknown; give an "
                "assumed accuracy too (CloudOutcomes(..., accuracy=0.8))"
            )
        return float(self.accuracy)

    @property
    def assumed_only(self) -> bool:
        """True when no per-example outcome is known (the figures rest on an assumption)."""
        return not self.correct


# ---------------------------------------------------------------------------- features

_FEATURE_SCORER = LogisticScorer({"n_tokens": 0.0})


def record_features(record: LocalRecord) -> tuple[dict[str, float], str | None, str | None]:
    """Return ``(features, forced_low, finish_reason)`` of a record, as the live route sees it.

    The features are the learned scorer's (log-prob statistics and ``ANSWER_FEATURE_NAMES``),
    computed from the answer's log-probs, text, finish reason and the record's prompt.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid.evaluation.records import LocalRecord
        >>> r = LocalRecord("1", (HumanMessage("Capital of France?"),), AIMessage("France",
        ...     response_metadata={"finish_reason": "length", "logprobs": {"content": [
        ...     {"token": "France", "logprob": -0.5}]}}), correct=False, latency_s=0.1,
        ...     max_tokens=1)
        >>> f, forced, finish = record_features(r)
        >>> f["truncated"], f["context_overlap"], forced, finish
        (1.0, 1.0, None, 'length')
    """
    from langchain_hybrid.logprobs import message_logprobs

    answer = record.answer
    finish = answer.response_metadata.get("finish_reason")
    finish_reason = None if finish is None else str(finish)
    confidence = _FEATURE_SCORER.score(
        message_logprobs(answer),
        answer_text(answer),
        finish_reason=finish_reason,
        prompt=prompt_text(list(record.prompt)),
    )
    return dict(confidence.features), confidence.forced_low, finish_reason


@dataclass
class _Data:
    """The records as arrays: features, labels, cloud outcomes and costs."""

    records: list[LocalRecord]
    names: list[str]
    x: np.ndarray  # features, one column per name
    y: np.ndarray  # local answer correct (0/1)
    forced: np.ndarray  # escalates whatever the score (hedge, empty, unknown token, ...)
    finish: list[str | None]
    cloud_p: np.ndarray  # cloud correct (0/1, or the assumed accuracy)
    cloud_cost: np.ndarray
    local_cost: np.ndarray

    def subset(self, idx: np.ndarray) -> _Data:
        return _Data(
            [self.records[i] for i in idx],
            self.names,
            self.x[idx],
            self.y[idx],
            self.forced[idx],
            [self.finish[i] for i in idx],
            self.cloud_p[idx],
            self.cloud_cost[idx],
            self.local_cost[idx],
        )

    def column(self, name: str) -> np.ndarray:
        return self.x[:, self.names.index(name)]


def _prepare(records: Sequence[LocalRecord], cloud: CloudOutcomes, prices: PriceTable) -> _Data:
    import numpy as np

    rows, forced, finish, y, cp, cc, lc = [], [], [], [], [], [], []
    for r in records:
        f, low, fin = record_features(r)
        rows.append(f)
        forced.append(low is not None)
        finish.append(fin)
        y.append(1.0 if r.correct else 0.0)
        cp.append(cloud.p_correct(r.example_id))
        usage: Mapping[str, Any] = r.answer.usage_metadata or {}
        n_in = int(
            usage.get("input_tokens") or math.ceil(len(prompt_text(list(r.prompt)) or "") / 4)
        )
        n_out_local = int(usage.get("output_tokens") or f.get("n_tokens", 0))
        n_out = cloud.completion_tokens.get(r.example_id, n_out_local)
        cc.append(prices.cost_of(cloud.model, n_in, n_out))
        model = str(r.answer.response_metadata.get("model_name") or "")
        lc.append(prices.local_cost_of(model, n_in, n_out_local))
    names = [n for n in LEARNED_FEATURES if all(n in row for row in rows)]
    x = np.array([[row[n] for n in names] for row in rows], dtype=float).reshape(len(rows), -1)
    return _Data(
        list(records),
        names,
        x,
        np.array(y),
        np.array(forced, dtype=bool),
        finish,
        np.array(cp),
        np.array(cc),
        np.array(lc),
    )


# ---------------------------------------------------------------------------- curve


@dataclass(frozen=True)
class CurvePoint:
    """One operating point: keep local answers scoring at or above ``threshold``.

    ``accuracy`` is the hybrid's expected accuracy (kept local answers graded, escalated
    ones counted at the cloud's correctness), ``cost_per_query`` its expected USD per
    query, ``kept_accuracy`` the accuracy of the answers kept local (None if none are).
    """

    threshold: float
    cloud_share: float
    accuracy: float
    cost_per_query: float
    kept_accuracy: float | None
    n_local: int


@dataclass(frozen=True)
class TradeoffCurve:
    """Cloud share vs expected accuracy vs expected cost over thresholds (falling).

    Points run from cloud-only (highest threshold) to keeping every answer the scorer can
    keep; ``chosen`` is the index of the chosen point (None: no point met the target).

    Example:
        >>> p = CurvePoint(0.0, 1.0, 0.9, 0.01, None, 0)
        >>> c = TradeoffCurve(points=(p,), chosen=None, scorer="x", n=10, source="test")
        >>> TradeoffCurve.from_dict(c.to_dict()) == c
        True
    """

    points: tuple[CurvePoint, ...]
    chosen: int | None
    scorer: str
    n: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (what :meth:`save` writes)."""
        return {
            "scorer": self.scorer,
            "n": self.n,
            "source": self.source,
            "chosen": self.chosen,
            "points": [dataclasses.asdict(p) for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TradeoffCurve:
        """Rebuild a curve from :meth:`to_dict` output."""
        return cls(
            points=tuple(CurvePoint(**p) for p in data["points"]),
            chosen=data.get("chosen"),
            scorer=str(data["scorer"]),
            n=int(data["n"]),
            source=str(data.get("source", "")),
        )

    def save(self, path: str | Path) -> None:
        """Write the curve as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """Draw accuracy and cost against cloud share to a PNG (matplotlib, Agg backend).

        Raises :class:`CalibrationError` when matplotlib is not installed.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise CalibrationError(
                "plotting needs matplotlib: pip install 'langchain-hybrid[calibration]'"
            ) from e
        share = [p.cloud_share for p in self.points]
        fig = Figure(figsize=(9, 4))
        FigureCanvasAgg(fig)
        ax_acc, ax_cost = fig.subplots(1, 2)
        ax_acc.plot(share, [p.accuracy for p in self.points], "-", label="hybrid (expected)")
        kept = [
            (p.cloud_share, p.kept_accuracy) for p in self.points if p.kept_accuracy is not None
        ]
        if kept:
            ax_acc.plot(*zip(*kept, strict=True), ":", label="answers kept local")
        ax_cost.plot(share, [p.cost_per_query for p in self.points], "-")
        if self.chosen is not None:
            c = self.points[self.chosen]
            ax_acc.plot([c.cloud_share], [c.accuracy], "o", color="red", label="chosen")
            ax_cost.plot([c.cloud_share], [c.cost_per_query], "o", color="red")
        ax_acc.set_xlabel("cloud share")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(0, 1)
        ax_acc.legend(loc="lower right", fontsize=8)
        ax_cost.set_xlabel("cloud share")
        ax_cost.set_ylabel("expected USD per query")
        fig.suptitle(title or f"{self.scorer}, n={self.n} ({self.source})", fontsize=10)
        fig.tight_layout()
        fig.savefig(str(path), dpi=100)


def _escalating(data: _Data, finish_reasons: frozenset[str]) -> np.ndarray:
    import numpy as np

    by_finish = np.array([f in finish_reasons for f in data.finish], dtype=bool)
    return np.asarray(data.forced | by_finish)


def _curve_arrays(
    scores: np.ndarray, data: _Data, finish_reasons: frozenset[str]
) -> list[CurvePoint]:
    """Operating points over thresholds, from cloud-only to keeping every keepable answer."""
    import numpy as np

    n = len(scores)
    always = _escalating(data, finish_reasons)
    keepable = np.flatnonzero(~always)
    order = keepable[np.argsort(-scores[keepable], kind="stable")]
    local_total = float(data.local_cost.sum())
    kept_y = 0.0
    cloud_acc = float(data.cloud_p.sum())
    cloud_cost = float(data.cloud_cost.sum())
    top = float(scores[order[0]]) + 1.0 if len(order) else 0.0
    points = [CurvePoint(top, 1.0, cloud_acc / n, (cloud_cost + local_total) / n, None, 0)]
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in order[i : j + 1]:
            kept_y += float(data.y[k])
            cloud_acc -= float(data.cloud_p[k])
            cloud_cost -= float(data.cloud_cost[k])
        k_n = j + 1
        below = float(scores[order[j + 1]]) if j + 1 < len(order) else float(scores[order[j]]) - 1
        threshold = (float(scores[order[j]]) + below) / 2.0
        points.append(
            CurvePoint(
                threshold=threshold,
                cloud_share=(n - k_n) / n,
                accuracy=(kept_y + cloud_acc) / n,
                cost_per_query=(max(0.0, cloud_cost) + local_total) / n,
                kept_accuracy=kept_y / k_n,
                n_local=k_n,
            )
        )
        i = j + 1
    return points


@dataclass(frozen=True)
class _Target:
    kind: Target
    value: float
    min_local_accuracy: float

    def describe(self) -> str:
        name = {"cloud_rate": "target_cloud_rate", "accuracy": "target_accuracy"}
        return f"{name.get(self.kind, self.kind)}={self.value:g}"

    def choose(self, points: Sequence[CurvePoint]) -> tuple[int | None, str]:
        """Index of the point that meets the target best, or (None, why not)."""
        if self.kind == "accuracy":
            ok = [i for i, p in enumerate(points) if p.accuracy >= self.value - 1e-12]
            if not ok:
                best = max(p.accuracy for p in points)
                return None, (
                    f"no threshold reaches an expected accuracy of {self.value:.3f} "
                    f"(the best is {best:.3f})"
                )
            return max(ok, key=lambda i: (points[i].n_local, -i)), ""
        if self.kind == "cloud_rate":
            idx = min(
                range(len(points)),
                key=lambda i: (abs(points[i].cloud_share - self.value), -points[i].cloud_share),
            )
        else:
            ok = [i for i, p in enumerate(points) if p.cost_per_query <= self.value + 1e-15]
            if not ok:
                cheapest = min(p.cost_per_query for p in points)
                return None, (
                    f"no threshold keeps the expected cost under ${self.value:g} per query "
                    f"(the cheapest is ${cheapest:.6f})"
                )
            idx = max(ok, key=lambda i: (points[i].accuracy, -points[i].n_local))
        p = points[idx]
        if self.kind == "cloud_rate" and abs(p.cloud_share - self.value) > _SHARE_TOLERANCE:
            return None, (
                f"no threshold sends {self.value:.3f} of requests to the cloud (the closest "
                f"is {p.cloud_share:.3f}): the scores do not separate the answers"
            )
        if p.n_local and (p.kept_accuracy or 0.0) < self.min_local_accuracy:
            return None, (
                f"at {self.describe()} the answers kept local would be right only "
                f"{100 * (p.kept_accuracy or 0.0):.1f}% of the time (below the "
                f"{100 * self.min_local_accuracy:.0f}% floor, min_local_accuracy): the local "
                "model is not right often enough to keep its answers"
            )
        return idx, ""


# ---------------------------------------------------------------------------- scorers


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


def _folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
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


def _candidates(data: _Data, splits: list[tuple[np.ndarray, np.ndarray]]) -> list[_Candidate]:
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


# ---------------------------------------------------------------------------- result


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` fitted and measured.

    ``policy`` is the fitted policy (cloud-only when ``met`` is False); ``curve`` the
    trade-off curve of the chosen scorer (out-of-fold scores); ``auroc`` each scorer's
    AUROC at predicting a correct local answer (the learned one out-of-fold);
    ``achieved`` the chosen point's figures on held-out folds; ``early`` the early-
    escalation figures; ``message`` says, in plain words, what was chosen or why not.
    """

    policy: RoutingPolicy
    curve: TradeoffCurve
    auroc: dict[str, float | None]
    achieved: dict[str, Any]
    early: dict[str, Any]
    met: bool
    message: str
    target: str
    n: int
    source: str

    @property
    def verdict(self) -> str | None:
        """One plain line when the local model is not good enough here, else None.

        It is not good enough when no threshold met the target, or when the chosen point
        measured on held-out folds loses more than one accuracy point against cloud-only.

        Example:
            >>> import dataclasses
            >>> curve = TradeoffCurve(points=(), chosen=None, scorer="x", n=0, source="")
            >>> r = CalibrationResult(RoutingPolicy(), curve, {}, {}, {}, False, "why",
            ...                       "target_cloud_rate=0.5", 0, "")
            >>> r.verdict.split(":")[0]
            'The local model is not good enough for target_cloud_rate=0.5'
        """
        if not self.met:
            return (
                f"The local model is not good enough for {self.target}: no threshold meets "
                "it, so the policy sends every request to the cloud."
            )
        a = self.achieved
        if a and a["accuracy"] < a["cloud_only_accuracy"] - 0.01:
            loss = 100 * (a["cloud_only_accuracy"] - a["accuracy"])
            return (
                f"The local model is not good enough to keep accuracy: at {self.target} the "
                f"hybrid is {loss:.1f} points below cloud-only on held-out data. Choose "
                "--target-accuracy to bound the loss, or use a stronger local model."
            )
        return None

    def report(self) -> str:
        """Return a readable multi-line report."""
        a = self.achieved
        right = a.get("local_only_accuracy")
        local = "" if right is None else f", local model right on {100 * right:.1f}%"
        lines = [
            f"calibrated on n={self.n} answers for {self.target} (cloud: {self.source}{local})"
        ]
        lines.append(
            f"AUROC at predicting a right local answer, n={self.n} (single scorers have no "
            "fitted parameters; 'logistic' is learned and scored out-of-fold):"
        )
        for name, value in sorted(self.auroc.items(), key=lambda kv: -(kv[1] or 0)):
            lines.append(f"  {name:<14} {'-' if value is None else f'{value:.3f}'}")
        if "logistic" not in self.auroc:
            lines.append(
                f"  (no learned scorer: it needs at least {MIN_CLASS_FOR_LEARNED} right and "
                f"{MIN_CLASS_FOR_LEARNED} wrong local answers)"
            )
        lines.append(self.message)
        a = self.achieved
        if a:
            lines.append(
                f"held-out ({a['how']}): cloud share {a['cloud_share']:.3f} "
                f"[{a['cloud_share_ci'][0]:.3f}, {a['cloud_share_ci'][1]:.3f}], accuracy "
                f"{a['accuracy']:.3f} [{a['accuracy_ci'][0]:.3f}, {a['accuracy_ci'][1]:.3f}], "
                f"kept-local accuracy {_fmt(a['kept_accuracy'])}, cost/query "
                f"${a['cost_per_query']:.6f}; cloud-only accuracy {a['cloud_only_accuracy']:.3f}"
            )
        if self.early:
            e = self.early
            lines.append(
                f"early escalation min_tokens={e['min_tokens']} margin={e['margin']}: escalated "
                f"answers stop after {e['token_fraction']:.2f} of their tokens; "
                f"{100 * e['wrong_stop_rate']:.1f}% of passing answers stopped ({e['how']})"
            )
        scorer = self.policy.scorer
        if self.met and isinstance(scorer, LogisticScorer) and "margin" in scorer.coefficients:
            lines.append(
                "note: the learned scorer reads the top-1/top-2 margin: serve the local model "
                "with top_logprobs >= 2 (e.g. ChatTransformers(top_logprobs=5)), or every "
                "answer escalates with no_logprobs"
            )
        if self.verdict:
            lines.append(self.verdict)
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _cloud_only(base: RoutingPolicy) -> RoutingPolicy:
    rule = ForceCloudRule(pattern=r"(?s)", name=_CLOUD_ONLY_RULE)
    return dataclasses.replace(base, rules=(*base.rules, rule))


# ---------------------------------------------------------------------------- calibrate


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
        folds: folds of the cross-validation (``StratifiedKFold``).
        seed: its shuffling seed.
        dataset: the data's name, recorded in ``fitted_on``.
        base: the policy to start from (its rules and hedge phrases are kept).
        prices: the price table (default: ``PriceTable.default()``).
        fit_early: also fit early escalation.
        max_wrong_stops: the share of answers that would pass that early escalation may stop.
        progress: show a progress bar while collecting (None: when on a terminal).

    Returns a :class:`CalibrationResult`. When no threshold meets the target, its message
    says so, a warning is issued, and the policy escalates everything.
    """
    targets = {
        "cloud_rate": target_cloud_rate,
        "accuracy": target_accuracy,
        "max_cost": max_cost,
    }
    given = [(k, v) for k, v in targets.items() if v is not None]
    if len(given) != 1:
        raise CalibrationError(
            "give exactly one target: target_cloud_rate, target_accuracy or max_cost"
        )
    kind, value = given[0]
    if kind != "max_cost" and not 0.0 <= float(value) <= 1.0:
        raise CalibrationError(f"{kind} must be in [0, 1], got {value!r}")
    target = _Target(kind, float(value), min_local_accuracy)  # type: ignore[arg-type]
    if records is None:
        if examples is None or local is None:
            raise CalibrationError("give records, or examples and the local tier to collect them")
        from langchain_hybrid.evaluation.collect import collect_local

        records = collect_local(examples, local, max_tokens=max_tokens, progress=progress)
    if not records:
        raise CalibrationError("no records to calibrate on")
    if cloud is None:
        raise CalibrationError(
            "say what the cloud scores: cloud=CloudOutcomes.replayed(examples, model) or "
            "CloudOutcomes.assumed(accuracy)"
        )
    _sklearn()
    prices = prices or PriceTable.default()
    base = base or RoutingPolicy()
    data = _prepare(records, cloud, prices)
    n = len(data.y)
    splits = _folds(data.y, folds, seed)
    candidates = _candidates(data, splits)
    auroc: dict[str, float | None] = {}
    for c in candidates:
        auroc[c.name] = c.auroc

    # Choose the configuration that meets the target best on out-of-fold scores.
    def goodness(points: Sequence[CurvePoint], idx: int | None) -> tuple[float, float]:
        if idx is None:
            return (-math.inf, 0.0)
        p = points[idx]
        if kind == "accuracy":
            return (-p.cloud_share, p.accuracy)
        return (p.accuracy, -p.cloud_share)

    best: tuple[tuple[float, float], _Candidate, list[CurvePoint], int | None, str] | None = None
    for c in candidates:
        points = _curve_arrays(c.oof, data, c.finish_reasons)
        idx, why = target.choose(points)
        score = goodness(points, idx)
        if best is None or score > best[0] or (score == best[0] and c.name == "logistic"):
            best = (score, c, points, idx, why)
    assert best is not None
    _, chosen, points, idx, why = best
    source = f"{cloud.source}; out-of-fold scores, {len(splits)}-fold"
    curve = TradeoffCurve(tuple(points), idx, chosen.name, n, source)
    hedge = getattr(base.scorer, "hedge", HedgeDetector(DEFAULT_HEDGE_PHRASES))
    achieved = _held_out(chosen, data, splits, target)
    achieved["cloud_only_accuracy"] = float(data.cloud_p.mean())
    achieved["local_only_accuracy"] = float(data.y.mean())
    fitted_on: dict[str, Any] = {
        "dataset": dataset,
        "n": n,
        "target": target.describe(),
        "cloud": cloud.source,
        "scorer": chosen.name,
        "auroc": {k: (None if v is None else round(v, 4)) for k, v in auroc.items()},
        "achieved": {k: _round(v) for k, v in achieved.items()},
        # Which rows it was fitted on, without their text: evaluation warns on overlap.
        "prompt_digests": sorted({prompt_digest(r.prompt) for r in records}),
    }
    if idx is None:
        message = f"target not met: {why}. Returning the cloud-only policy (everything escalates)."
        warnings.warn(message, stacklevel=2)
        logger.warning(message)
        fitted_on["met"] = False
        fitted_on["message"] = message
        policy = dataclasses.replace(
            _cloud_only(base), threshold=points[0].threshold, fitted_on=fitted_on
        )
        return CalibrationResult(
            policy, curve, auroc, achieved, {}, False, message, target.describe(), n, source
        )
    p = points[idx]
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
    early: dict[str, Any] = {}
    if fit_early:
        policy, early = _fit_early(policy, data, max_wrong_stops)
    kept = "" if p.kept_accuracy is None else f", kept-local accuracy {p.kept_accuracy:.3f}"
    length_rule = "length" in chosen.finish_reasons
    message = (
        f"chose {chosen.name} (AUROC {_fmt(chosen.auroc)}), threshold {threshold:.4g}: "
        f"cloud share {p.cloud_share:.3f}, expected accuracy {p.accuracy:.3f}{kept}, "
        f"${p.cost_per_query:.6f}/query (out-of-fold); finish_reason 'length' "
        f"{'escalates' if length_rule else 'is judged by the score'}"
    )
    fitted_on["met"] = True
    fitted_on["chosen"] = {k: _round(v) for k, v in dataclasses.asdict(p).items()}
    if early:
        fitted_on["early_escalation"] = {k: _round(v) for k, v in early.items()}
    policy = dataclasses.replace(policy, fitted_on=fitted_on)
    return CalibrationResult(
        policy, curve, auroc, achieved, early, True, message, target.describe(), n, source
    )


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


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, (list, tuple)):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


def _held_out(
    chosen: _Candidate,
    data: _Data,
    splits: list[tuple[np.ndarray, np.ndarray]],
    target: _Target,
) -> dict[str, Any]:
    """Measure the chosen configuration on each fold, fitting scorer and threshold without it."""
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
    }


# ---------------------------------------------------------------------------- early escalation

_EARLY_MIN_TOKENS = (2, 4, 8, 16)
_EARLY_MARGINS = (0.0, 0.5, 1.0, 2.0, 4.0)


def replay_early(
    policy: RoutingPolicy,
    records: Sequence[LocalRecord],
    whole: Sequence[Verdict] | None = None,
) -> dict[str, float | int]:
    """Replay ``policy`` on records: how early escalated answers stop, how many wrong stops.

    ``token_fraction``: over answers the policy escalates (judged whole), the tokens
    generated before escalating divided by the answer's full length; ``max_tokens_fraction``
    the same over the token limit; ``wrong_stop_rate``: the share of answers that would pass
    (kept local when judged whole) that early escalation stops. ``whole`` may give the
    verdicts on the whole answers (without early escalation) when they are known.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid.evaluation.records import LocalRecord
        >>> lp = {"content": [{"token": "x", "logprob": -3.0}] * 10}
        >>> r = LocalRecord("1", (HumanMessage("q"),), AIMessage("x" * 10,
        ...     response_metadata={"finish_reason": "stop", "logprobs": lp}), False, 0.1, 10)
        >>> replay_early(RoutingPolicy(scorer=MinLogprobScorer(), threshold=-1.0), [r])
        {'escalated': 1, 'passing': 0, 'token_fraction': 0.1, 'max_tokens_fraction': 0.1, 'wrong_stop_rate': 0.0}
    """  # noqa: E501
    if whole is None:
        whole = _whole_verdicts(policy, records)
    spent, spent_max, escalated, passing, wrong = 0.0, 0.0, 0, 0, 0
    for r, full in zip(records, whole, strict=True):
        context = list(r.prompt)
        live = policy.judge(r.answer, max_tokens=r.max_tokens, context=context)
        if full.escalate:
            escalated += 1
            n_full = max(1, full.n_tokens)
            used = live.n_tokens if live.early_abort else n_full
            spent += min(1.0, used / n_full)
            spent_max += min(1.0, used / max(1, r.max_tokens or n_full))
        else:
            passing += 1
            wrong += live.early_abort
    return {
        "escalated": escalated,
        "passing": passing,
        "token_fraction": spent / escalated if escalated else 0.0,
        "max_tokens_fraction": spent_max / escalated if escalated else 0.0,
        "wrong_stop_rate": wrong / passing if passing else 0.0,
    }


def _whole_verdicts(policy: RoutingPolicy, records: Sequence[LocalRecord]) -> list[Verdict]:
    off = dataclasses.replace(policy, early_escalation=EarlyEscalation(enabled=False))
    return [off.judge(r.answer, max_tokens=r.max_tokens, context=list(r.prompt)) for r in records]


def _fit_early(
    policy: RoutingPolicy, data: _Data, max_wrong_stops: float
) -> tuple[RoutingPolicy, dict[str, Any]]:
    """Choose min_tokens and margin: fewest tokens on escalated answers, few wrong stops."""
    import numpy as np

    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.records))
    half = len(idx) // 2
    fit_idx, check_idx = idx[:half], idx[half:]
    fit_records = [data.records[i] for i in fit_idx] or data.records
    check_records = [data.records[i] for i in check_idx] or data.records
    whole = _whole_verdicts(policy, fit_records)
    best: tuple[float, EarlyEscalation, dict[str, float | int]] | None = None
    never = EarlyEscalation(min_tokens=10**6)
    for min_tokens in _EARLY_MIN_TOKENS:
        for margin in _EARLY_MARGINS:
            early = EarlyEscalation(min_tokens=min_tokens, margin=margin)
            trial = dataclasses.replace(policy, early_escalation=early)
            figures = replay_early(trial, fit_records, whole)
            if figures["wrong_stop_rate"] <= max_wrong_stops and (
                best is None or figures["token_fraction"] < best[0]
            ):
                best = (float(figures["token_fraction"]), early, figures)
    chosen = best[1] if best is not None else never
    fitted = dataclasses.replace(policy, early_escalation=chosen)
    check = replay_early(fitted, check_records)
    return fitted, {
        "min_tokens": chosen.min_tokens,
        "margin": chosen.margin,
        "token_fraction": float(check["token_fraction"]),
        "max_tokens_fraction": float(check["max_tokens_fraction"]),
        "wrong_stop_rate": float(check["wrong_stop_rate"]),
        "how": f"fitted on a random half ({len(fit_records)}), measured on the other "
        f"({len(check_records)})",
    }
