"""N-tier cascades: ``ChatHybrid.cascade([small, medium, large], thresholds=[...])``.

A cascade (FrugalGPT-style: the cheapest model first, the next one only when it is
unsure) is built as nested :class:`~langchain_hybrid.ChatHybrid` steps: step ``i`` has
``tiers[i]`` as its local tier and the rest of the cascade as its cloud tier. Each step
keeps its own policy and guards, and every step's decision is recorded;
:func:`~langchain_hybrid.routing.surfaces.routing_steps` reads them back from an answer
in order, first step first.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from langchain_hybrid import ChatHybrid
    >>> tiers = [FakeListChatModel(responses=[n]) for n in ("small", "medium", "large")]
    >>> llm = build_cascade(ChatHybrid, tiers, [-0.6, -0.3], None, {})
    >>> type(llm.cloud).__name__, llm.cloud.routing_policy.threshold
    ('ChatHybrid', -0.3)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel

__all__ = ["build_cascade"]

#: The router class a cascade is made of (ChatHybrid), taking ``local=`` and ``cloud=``.
_Step = TypeVar("_Step", bound=BaseChatModel)

#: Settings that name a step's tiers or hold its own state: never shared by all steps.
_PER_STEP_ONLY = frozenset({"local", "cloud", "threshold", "budget", "circuit_breaker", "threads"})


def build_cascade(
    cls: type[_Step],
    tiers: Sequence[Any],
    thresholds: Sequence[float | None] | None,
    steps: Sequence[Mapping[str, Any]] | None,
    shared: Mapping[str, Any],
) -> _Step:
    """Build the nested steps of ``cls.cascade(...)``; see :meth:`ChatHybrid.cascade`."""
    tiers = list(tiers)
    if len(tiers) < 2:
        raise ValueError(
            f"A cascade needs at least two tiers (got {len(tiers)}): the first answers "
            "first, the last answers whatever no earlier tier was sure of."
        )
    n_steps = len(tiers) - 1
    thresholds = list(thresholds) if thresholds is not None else [None] * n_steps
    steps = [dict(s) for s in steps] if steps is not None else [{} for _ in range(n_steps)]
    for name, values in (("thresholds", thresholds), ("steps", steps)):
        if len(values) != n_steps:
            raise ValueError(
                f"{name} needs one entry per step, {n_steps} for {len(tiers)} tiers "
                f"(the last tier has no threshold: nothing comes after it); got {len(values)}."
            )
    clash = sorted(_PER_STEP_ONLY & set(shared))
    if clash:
        raise ValueError(
            f"{', '.join(clash)} cannot be shared by all steps of a cascade: give each step "
            "its own, e.g. steps=[{}, {'budget': Budget(max_usd=10)}], and the tiers and "
            "thresholds as the tiers= and thresholds= lists."
        )
    for i, step in enumerate(steps):
        named = sorted({"local", "cloud"} & set(step))
        if named:
            raise ValueError(
                f"steps[{i}] names {', '.join(named)}: a step's tiers come from tiers= "
                f"(step {i} answers with tiers[{i}] and escalates to the steps after it)."
            )
        if "threshold" in step and thresholds[i] is not None:
            raise ValueError(
                f"step {i} has a threshold in thresholds= and in steps[{i}]: give one."
            )
    router: Callable[..., _Step] = cls  # takes local= and cloud=
    cascade: Any = tiers[-1]
    for i in reversed(range(n_steps)):
        settings = {**shared, **steps[i]}
        if thresholds[i] is not None:
            settings["threshold"] = thresholds[i]
        cascade = router(local=tiers[i], cloud=cascade, **settings)
    result: _Step = cascade
    return result
