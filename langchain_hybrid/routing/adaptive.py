"""An adaptive threshold: hold a target cloud share over a sliding window as traffic drifts.

A calibrated threshold keeps, say, 30% of requests in the cloud on the data it was fitted
on; when the traffic drifts (harder questions, another language, a new prompt) the same
threshold sends a different share. :class:`AdaptiveThreshold`, set on the policy
(``RoutingPolicy(adaptive=AdaptiveThreshold(target_cloud_rate=0.3))``), moves the
threshold so that, over the last ``window`` local answers, the share escalated is the
target: the threshold is the score quantile that leaves ``target_cloud_rate`` of the
window below it, counting answers that escalate whatever their score (hedges, unknown
tokens, finish reasons) as already escalated. Until ``min_samples`` answers were seen,
the policy's own threshold applies.

The state (the windows) lives with the :class:`AdaptiveThreshold` object, not in the
frozen policy: copies of a policy (``override``, ``dataclasses.replace``) share it, and
each ``AdaptiveThreshold(...)`` you build starts empty. With ``key`` set, each value of
that metadata key (e.g. a user id) has its own window; the key is read from the routing
context's ``metadata`` when it has one, else from the metadata of the LangChain run config
in force (as LangChain sets it for each step of a chain). Updates take a lock: one
instance is safe under threads and asyncio alike.

Example:
    >>> a = AdaptiveThreshold(target_cloud_rate=0.5, window=4, min_samples=4)
    >>> for score in (-0.1, -0.2, -1.0, -2.0):
    ...     a.record(None, score, forced=False)
    >>> a.threshold(None, default=-0.6)
    -0.6
    >>> a.record(None, -3.0, forced=True)  # the window now holds -0.2, -1.0, -2.0, forced
    >>> a.threshold(None, default=-0.6)  # 2 of 4 below: the forced one and -2.0
    -1.5
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdaptiveThreshold"]

_DEFAULT_KEY = ""


@dataclass
class _Window:
    scores: deque[float]
    forced: deque[bool]


@dataclass(frozen=True)
class AdaptiveThreshold:
    """A threshold that holds ``target_cloud_rate`` over the last ``window`` local answers.

    Args:
        target_cloud_rate: the share of local answers to escalate, in (0, 1).
        window: how many recent answers (per key) the share is held over.
        min_samples: answers needed in a window before the threshold adapts; until then
            the policy's threshold applies.
        key: a metadata key (e.g. ``"user_id"``) whose values get their own windows;
            None holds one window for every request.
        max_keys: how many keys are kept (the least recently used are forgotten).

    Example:
        >>> a = AdaptiveThreshold(target_cloud_rate=0.3, window=200, key="user_id")
        >>> AdaptiveThreshold.from_dict(a.to_dict()) == a
        True
    """

    target_cloud_rate: float
    window: int = 200
    min_samples: int = 20
    key: str | None = None
    max_keys: int = 10_000
    _lock: Any = field(init=False, repr=False, compare=False, default_factory=threading.Lock)
    _windows: OrderedDict[str, _Window] = field(
        init=False, repr=False, compare=False, default_factory=OrderedDict
    )

    def __post_init__(self) -> None:
        r = self.target_cloud_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 < r < 1.0:
            raise ValueError(f"target_cloud_rate must be a number in (0, 1), got {r!r}")
        object.__setattr__(self, "target_cloud_rate", float(r))
        for name in ("window", "min_samples", "max_keys"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be an int >= 1, got {n!r}")
        if self.min_samples > self.window:
            raise ValueError(
                f"min_samples ({self.min_samples}) must not exceed window ({self.window})"
            )
        if self.key is not None and not isinstance(self.key, str):
            raise ValueError(f"key must be a metadata key (a string) or None, got {self.key!r}")

    # ------------------------------------------------------------------ keys

    def key_of(self, context: Any = None) -> str | None:
        """Return the window key of a request: the ``key`` metadata value, or None.

        Looks in ``context.metadata`` (when the routing context carries metadata), then in
        the metadata of the LangChain run config in force.

        Example:
            >>> from types import SimpleNamespace
            >>> AdaptiveThreshold(0.3, key="user").key_of(SimpleNamespace(metadata={"user": 7}))
            '7'
        """
        if self.key is None:
            return None
        metadata = getattr(context, "metadata", None)
        if not isinstance(metadata, Mapping) or self.key not in metadata:
            metadata = _config_metadata()
        value = metadata.get(self.key) if isinstance(metadata, Mapping) else None
        return None if value is None else str(value)

    # ------------------------------------------------------------------ state

    def threshold(self, key: str | None, default: float) -> float:
        """Return the threshold for ``key`` now (``default`` until the window has enough).

        Example:
            >>> AdaptiveThreshold(0.3).threshold(None, default=-0.6)
            -0.6
        """
        with self._lock:
            win = self._windows.get(_DEFAULT_KEY if key is None else key)
            if win is None or len(win.scores) < self.min_samples:
                return default
            scores = sorted(s for s, f in zip(win.scores, win.forced, strict=True) if not f)
            n = len(win.scores)
            forced = n - len(scores)
        k = round(self.target_cloud_rate * n) - forced  # scores that must fall below
        if not scores:
            return default
        if k <= 0:
            return scores[0]
        if k >= len(scores):
            return _above(scores[-1])
        return (scores[k - 1] + scores[k]) / 2.0

    def record(self, key: str | None, score: float, *, forced: bool) -> None:
        """Add one judged local answer: its score, and whether it escalated whatever the score.

        Example:
            >>> a = AdaptiveThreshold(0.3, window=2, min_samples=1)
            >>> a.record("u1", -0.5, forced=False); a.snapshot()
            {'u1': {'n': 1, 'forced': 0}}
        """
        name = _DEFAULT_KEY if key is None else key
        with self._lock:
            win = self._windows.get(name)
            if win is None:
                win = _Window(deque(maxlen=self.window), deque(maxlen=self.window))
                self._windows[name] = win
                while len(self._windows) > self.max_keys:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(name)
            win.scores.append(float(score))
            win.forced.append(bool(forced))

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Return, per key, how many answers its window holds and how many were forced.

        Example:
            >>> AdaptiveThreshold(0.3).snapshot()
            {}
        """
        with self._lock:
            return {
                k: {"n": len(w.scores), "forced": sum(w.forced)} for k, w in self._windows.items()
            }

    def reset(self) -> None:
        """Forget every window.

        Example:
            >>> a = AdaptiveThreshold(0.3); a.record(None, -1.0, forced=False); a.reset()
            >>> a.snapshot()
            {}
        """
        with self._lock:
            self._windows.clear()

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe settings (not the state) written to policy files.

        Example:
            >>> AdaptiveThreshold(0.3).to_dict()["window"]
            200
        """
        return {
            "target_cloud_rate": self.target_cloud_rate,
            "window": self.window,
            "min_samples": self.min_samples,
            "key": self.key,
            "max_keys": self.max_keys,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptiveThreshold:
        """Build from :meth:`to_dict` output; ``ValueError`` for unknown keys or bad values.

        Example:
            >>> AdaptiveThreshold.from_dict({"target_cloud_rate": 0.2}).target_cloud_rate
            0.2
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"adaptive must be a mapping, got {type(data).__name__}")
        allowed = ("target_cloud_rate", "window", "min_samples", "key", "max_keys")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"unknown adaptive key(s) {unknown}; allowed: {', '.join(allowed)}")
        if "target_cloud_rate" not in data:
            raise ValueError("adaptive needs 'target_cloud_rate', e.g. 0.3")
        return cls(**data)


def _above(x: float) -> float:
    """Return a threshold just above ``x`` (so that ``x`` falls below it)."""
    return math.nextafter(x, math.inf) if abs(x) < 1e300 else x


def _config_metadata() -> Mapping[str, Any] | None:
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get()
    return config.get("metadata") if config else None
