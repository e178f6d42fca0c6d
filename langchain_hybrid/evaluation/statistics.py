"""The intervals routing figures carry: Wilson for shares, a bootstrap over groups for AUROC.

Rows of one group (an article, a passage) are not independent, so an AUROC's interval
resamples whole groups: a bootstrap over rows would claim more certainty than the data
hold.

Example:
    >>> [round(x, 3) for x in wilson_interval(8, 10)]
    [0.49, 0.943]
    >>> auroc([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3])
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["BOOTSTRAP", "auroc", "grouped_auroc_interval", "wilson_interval"]

#: Bootstrap resamples (of groups) behind an AUROC interval.
BOOTSTRAP = 400


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Return the Wilson score interval (95% by default) of a proportion, as fractions.

    ``successes`` may be fractional (an expected count, when a cloud accuracy is assumed).

    Example:
        >>> wilson_interval(0, 0)
        (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, successes / n))
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc(labels: Any, scores: Any) -> float | None:
    """Return the AUROC of ``scores`` for binary ``labels`` (ties count half); None for one class.

    The Mann-Whitney form: fast enough for thousands of bootstrap resamples.
    """
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=float)
    positives = y.sum()
    if not 0 < positives < len(y):
        return None
    ranks = rankdata(np.asarray(scores, dtype=float))
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * (len(y) - positives)))


def grouped_auroc_interval(
    labels: Any, scores: Any, groups: Sequence[Any], *, seed: int = 0
) -> tuple[float, float] | None:
    """Return a 95% interval for the AUROC: a bootstrap that resamples whole groups.

    None when there are fewer than two groups or too few resamples hold both classes.

    Example:
        >>> labels = [1, 0] * 20
        >>> scores = [0.9, 0.1] * 20
        >>> grouped_auroc_interval(labels, scores, [i // 4 for i in range(40)])
        (1.0, 1.0)
    """
    import numpy as np

    y, s = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    keys = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
    members = [np.flatnonzero(keys == g) for g in range(keys.max() + 1)] if len(keys) else []
    if len(members) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        value = auroc(y[idx], s[idx])
        if value is not None:
            values.append(value)
    if len(values) < BOOTSTRAP // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
