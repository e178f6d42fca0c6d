"""Fitting probes on the local model's hidden states: the probe scorer and the state gates.

Both are logistic regressions on standardised inputs, the hidden-state vectors reduced
by PCA (a few components per ten answers of the rarer class, at most
:data:`MAX_COMPONENTS`) with fixed L2 regularisation (nothing is tuned on the figures
calibration reports), folded back into raw-space weights so the policy file holds plain
numbers and the live route scores them without numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.errors import require_sklearn
from langchain_hybrid.routing.policy import RoutingPolicy
from langchain_hybrid.routing.running import EarlyEscalation
from langchain_hybrid.routing.scorers import ProbeScorer
from langchain_hybrid.routing.state_gate import StateGate

if TYPE_CHECKING:
    import numpy as np

    from langchain_hybrid.calibration.features import _Data

__all__ = [
    "MAX_COMPONENTS",
    "MIN_CLASS_FOR_PROBE",
    "SCORER_PARTS",
    "fit_before_generation",
    "fit_gate",
    "fit_probe",
    "passing_answers",
    "probe_scores",
]

#: The hidden-state parts the probe scorer reads: the prompt's, and the whole answer's.
SCORER_PARTS = ("prompt", "answer_mean")
#: At most this many principal components of the hidden states enter a probe.
MAX_COMPONENTS = 16
#: A probe is fitted only on at least this many right and this many wrong answers.
MIN_CLASS_FOR_PROBE = 20
#: A gate's threshold is set on log-odds scored in this many folds of groups.
GATE_FOLDS = 3
#: The inverse strength of the probes' L2 regularisation (scikit-learn's ``C``).
PROBE_C = 0.1


class _Linear:
    """Standardise, reduce the hidden parts by PCA, fit a logistic regression; fold it back."""

    def __init__(self, scalar: np.ndarray, hidden: Sequence[np.ndarray], y: np.ndarray) -> None:
        import numpy as np

        sk = require_sklearn()
        minority = int(min(y.sum(), len(y) - y.sum()))
        self.sizes = [h.shape[1] for h in hidden]
        stacked = np.hstack(hidden) if hidden else np.zeros((len(y), 0))
        self.h_mean = stacked.mean(axis=0)
        self.h_scale = np.maximum(stacked.std(axis=0), 1e-6)
        z = (stacked - self.h_mean) / self.h_scale
        k = max(1, min(MAX_COMPONENTS, minority // 10, z.shape[1], len(y) - 1))
        self.pca = sk.decomposition.PCA(n_components=k, random_state=0).fit(z)
        self.s_mean = scalar.mean(axis=0)
        self.s_scale = np.maximum(scalar.std(axis=0), 1e-9)
        features = np.hstack([(scalar - self.s_mean) / self.s_scale, self.pca.transform(z)])
        self.model = sk.linear_model.LogisticRegression(C=PROBE_C, max_iter=4000)
        self.model.fit(features, y)

    def weights(self) -> tuple[np.ndarray, list[np.ndarray], float]:
        """Return the raw-space weights: (scalar weights, one array per hidden part, intercept)."""
        import numpy as np

        coef = self.model.coef_[0]
        n_scalar = len(self.s_mean)
        scalar_w = coef[:n_scalar] / self.s_scale
        pca_w = coef[n_scalar:]
        # comp = P (z - m), z = (h - mu) / sigma: the weight on h is (P^T w) / sigma.
        h_w = (self.pca.components_.T @ pca_w) / self.h_scale
        intercept = float(
            self.model.intercept_[0]
            - np.sum(scalar_w * self.s_mean)
            - float(pca_w @ (self.pca.components_ @ (self.h_mean / self.h_scale + self.pca.mean_)))
        )
        parts, start = [], 0
        for size in self.sizes:
            parts.append(h_w[start : start + size])
            start += size
        return scalar_w, parts, intercept


def fit_probe(data: _Data, idx: np.ndarray | None = None) -> ProbeScorer:
    """Fit the probe scorer on ``data`` (rows ``idx``; all by default)."""
    import numpy as np

    rows = np.arange(len(data.y)) if idx is None else idx
    parts = [p for p in SCORER_PARTS if p in data.hidden]
    linear = _Linear(data.x[rows], [data.hidden[p][rows] for p in parts], data.y[rows])
    scalar_w, hidden_w, intercept = linear.weights()
    return ProbeScorer(
        {n: float(w) for n, w in zip(data.names, scalar_w, strict=True)},
        hidden={p: [float(v) for v in w] for p, w in zip(parts, hidden_w, strict=True)},
        intercept=intercept,
        layer=data.hidden_layer,
    )


def probe_scores(scorer: ProbeScorer, data: _Data) -> np.ndarray:
    """Score every record with the probe, as the live route does (same features, same sums)."""
    import numpy as np

    cols = [data.names.index(n) for n in scorer.coefficients]
    w = np.array(list(scorer.coefficients.values()))
    score = scorer.intercept + data.x[:, cols] @ w
    for part, weights in scorer.hidden.items():
        score = score + data.hidden[part] @ np.array(weights)
    return np.asarray(score)


def fit_gate(
    states: Mapping[str, np.ndarray],
    useful: np.ndarray,
    groups: np.ndarray,
    after_tokens: int,
    max_stops: float,
    layer: int | None,
) -> StateGate | None:
    """Fit a state gate: a probe of whether the answer will be useful, and its threshold.

    ``states`` holds one matrix per part the gate reads (a row per answer), ``useful``
    which of those answers the policy would serve right (kept local when judged whole,
    and correct: what the gate predicts) and ``groups`` their groups. The threshold is set
    on log-odds scored without the answer's own group (:data:`GATE_FOLDS` folds of
    groups; in-sample with fewer groups), so that it stops at most ``max_stops`` of the
    useful answers on groups the probe did not see, not merely on those it was fitted on.
    None when too few answers of a class (:data:`MIN_CLASS_FOR_PROBE` halved) leave
    nothing to learn from.
    """
    import numpy as np

    y = useful.astype(float)
    if min(y.sum(), len(y) - y.sum()) < MIN_CLASS_FOR_PROBE // 2:
        return None
    parts = list(states)
    matrices = [states[p] for p in parts]

    def fitted(rows: np.ndarray) -> tuple[list[np.ndarray], float]:
        _, weights, intercept = _Linear(
            np.zeros((len(rows), 0)), [m[rows] for m in matrices], y[rows]
        ).weights()
        return weights, intercept

    def odds(rows: np.ndarray, weights: list[np.ndarray], intercept: float) -> np.ndarray:
        total = sum(m[rows] @ w for m, w in zip(matrices, weights, strict=True))
        return np.asarray(intercept + total, dtype=float)

    everything = np.arange(len(y))
    weights, intercept = fitted(everything)
    held_out = odds(everything, weights, intercept)
    if len(np.unique(groups)) >= GATE_FOLDS:
        sk = require_sklearn()
        for train, test in sk.model_selection.GroupKFold(GATE_FOLDS).split(y, y, groups):
            if min(y[train].sum(), len(train) - y[train].sum()) >= 2:
                held_out[test] = odds(test, *fitted(train))
    kept = np.sort(held_out[useful])
    allowed = int(np.floor(max_stops * len(kept)))
    threshold = float(kept[allowed]) if len(kept) > allowed else float(np.max(held_out)) + 1.0
    return StateGate(
        {p: [float(v) for v in w] for p, w in zip(parts, weights, strict=True)},
        intercept,
        threshold,
        after_tokens=after_tokens,
        layer=layer,
    )


def passing_answers(policy: RoutingPolicy, data: _Data) -> np.ndarray:
    """Return which answers ``policy`` keeps local when it judges them whole."""
    import numpy as np

    whole = dataclasses.replace(
        policy, early_escalation=EarlyEscalation(enabled=False), before_generation=None
    )
    return np.array(
        [
            not whole.judge(r.answer, max_tokens=r.max_tokens, context=list(r.prompt)).escalate
            for r in data.records
        ]  # fmt: skip
    )


def fit_before_generation(
    policy: RoutingPolicy,
    data: _Data,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    max_stops: float,
) -> tuple[RoutingPolicy, dict[str, Any]]:
    """Fit the policy's gate before generation; measure it on held-out groups.

    Each fold's gate is fitted on the other folds and judged on it: how many requests it
    sends to the cloud before generation, how many of those the policy escalates anyway
    (generation saved), how many answers it stops that the policy would have served
    right (the cost: local answers lost) and how many it would have kept although wrong
    (accuracy gained). The gate is kept only when it stops something and stops at most
    ``max_stops`` of the answers served right on held-out groups.
    """
    import numpy as np

    if "prompt" not in data.hidden or len(splits) < 2:
        return policy, {}
    passing = passing_answers(policy, data)
    useful = passing & (data.y == 1)
    stopped = np.zeros(len(data.y), dtype=bool)
    prompt = data.hidden["prompt"]
    for train, test in splits:
        gate = fit_gate(
            {"prompt": prompt[train]}, useful[train], data.groups[train], 0, max_stops, None
        )
        if gate is not None:
            stopped[test] = [gate.stops({"prompt": list(s)}, 0) for s in prompt[test]]
    escalated = ~passing
    figures: dict[str, Any] = {
        "stopped": int(stopped.sum()),
        "share_of_escalations_skipped": _share(stopped, escalated),
        "kept_right_stopped": _share(stopped, useful),
        "kept_wrong_stopped": int((stopped & passing & (data.y == 0)).sum()),
        "how": f"fitted without each of {len(splits)} folds of groups, measured on it",
    }
    final = fit_gate({"prompt": prompt}, useful, data.groups, 0, max_stops, data.hidden_layer)
    figures["used"] = bool(
        final is not None and stopped.any() and figures["kept_right_stopped"] <= max_stops
    )
    if not figures["used"]:
        return policy, figures
    return dataclasses.replace(policy, before_generation=final), figures


def _share(stopped: np.ndarray, among: np.ndarray) -> float:
    """Return the share of the ``among`` rows that were stopped (0 when there are none)."""
    return float(stopped[among].mean()) if among.any() else 0.0
