"""Fitting probes on the local model's hidden states: the probe scorer and the prompt gate.

Both are logistic regressions on standardised inputs, the hidden-state vectors reduced
by PCA (a few components per ten answers of the rarer class, at most
:data:`MAX_COMPONENTS`) with fixed L2 regularisation (nothing is tuned on the figures
calibration reports), folded back into raw-space weights so the policy file holds plain
numbers and the live route scores them without numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.errors import require_sklearn
from langchain_hybrid.hidden_states import HIDDEN_PARTS
from langchain_hybrid.routing.policy import RoutingPolicy
from langchain_hybrid.routing.prompt_gate import PromptGate
from langchain_hybrid.routing.scorers import ProbeScorer

if TYPE_CHECKING:
    import numpy as np

    from langchain_hybrid.calibration.features import _Data

__all__ = ["MAX_COMPONENTS", "MIN_CLASS_FOR_PROBE", "fit_before_generation"]

#: At most this many principal components of the hidden states enter a probe.
MAX_COMPONENTS = 16
#: A probe is fitted only on at least this many right and this many wrong answers.
MIN_CLASS_FOR_PROBE = 20
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
    parts = [p for p in HIDDEN_PARTS if p in data.hidden]
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


def fit_gate(data: _Data, passing: np.ndarray, idx: np.ndarray, max_stops: float) -> PromptGate:
    """Fit the gate before generation on rows ``idx``: a prompt-state probe and its threshold.

    The threshold stops as many answers as it can while stopping at most ``max_stops`` of
    the answers the policy would keep (``passing``) among those rows.
    """
    import numpy as np

    y = data.y[idx]
    linear = _Linear(np.zeros((len(idx), 0)), [data.hidden["prompt"][idx]], y)
    _, (weights,), intercept = linear.weights()
    odds = intercept + data.hidden["prompt"][idx] @ weights
    kept = np.sort(odds[passing[idx]])
    allowed = int(np.floor(max_stops * len(kept)))
    threshold = float(kept[allowed]) if len(kept) > allowed else float(np.max(odds)) + 1.0
    return PromptGate([float(w) for w in weights], intercept, threshold, data.hidden_layer)


def fit_before_generation(
    policy: RoutingPolicy,
    data: _Data,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    max_stops: float,
) -> tuple[RoutingPolicy, dict[str, Any]]:
    """Fit the policy's gate before generation; measure it on held-out groups.

    Each fold's gate is fitted on the other folds and judged on it: how many requests it
    sends to the cloud before generation, how many of those the policy escalates anyway
    (generation saved), how many it would have kept (answers lost to the cloud) and how
    many the local model would have answered right. The gate is kept only when it stops
    something and stops at most ``max_stops`` of the kept answers on held-out groups.
    """
    import numpy as np

    if "prompt" not in data.hidden or len(splits) < 2:
        return policy, {}
    verdicts = [policy.judge(r.answer, max_tokens=r.max_tokens, context=list(r.prompt))
                for r in data.records]  # fmt: skip
    passing = np.array([not v.escalate for v in verdicts])
    stopped = np.zeros(len(data.y), dtype=bool)
    for train, test in splits:
        gate = fit_gate(data, passing, train, max_stops)
        stopped[test] = [gate.stops(list(s)) for s in data.hidden["prompt"][test]]
    escalated = ~passing
    figures: dict[str, Any] = {
        "stopped": int(stopped.sum()),
        "share_of_escalations_skipped": float(stopped[escalated].mean())
        if escalated.any()
        else 0.0,
        "kept_answers_stopped": float(stopped[passing].mean()) if passing.any() else 0.0,
        "stopped_right": int((stopped & (data.y == 1)).sum()),
        "how": f"fitted without each of {len(splits)} folds of groups, measured on it",
    }
    if not stopped.any() or figures["kept_answers_stopped"] > max_stops:
        figures["used"] = False
        return policy, figures
    all_rows = np.arange(len(data.y))
    figures["used"] = True
    return dataclasses.replace(
        policy, before_generation=fit_gate(data, passing, all_rows, max_stops)
    ), figures
