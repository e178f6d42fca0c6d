"""Early escalation: replaying answers token by token through a policy, and fitting when to stop."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_hybrid.routing.confidence import EarlyEscalation
from langchain_hybrid.routing.policy import RoutingPolicy, Verdict

if TYPE_CHECKING:
    from langchain_hybrid.calibration.features import _Data
    from langchain_hybrid.evaluation.records import LocalRecord

__all__ = ["replay_early"]

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
        >>> from langchain_hybrid.routing.confidence import MinLogprobScorer
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
    groups = rng.permutation(np.unique(data.groups))
    fit_groups = groups[: len(groups) // 2]
    in_fit = np.isin(data.groups, fit_groups)
    fit_records = [r for r, f in zip(data.records, in_fit, strict=True) if f] or data.records
    check_records = [r for r, f in zip(data.records, in_fit, strict=True) if not f]
    check_records = check_records or data.records
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
        "how": f"fitted on half of the groups ({len(fit_records)} answers), measured on the "
        f"other half ({len(check_records)})",
    }
