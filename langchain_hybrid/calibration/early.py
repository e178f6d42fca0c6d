"""Early escalation: replaying answers token by token through a policy, and fitting when to stop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.probe import fit_gate, passing_answers
from langchain_hybrid.hidden_states import PREFIX_TOKENS, hidden_vectors
from langchain_hybrid.routing.confidence import EarlyEscalation
from langchain_hybrid.routing.policy import RoutingPolicy, Verdict
from langchain_hybrid.routing.scorers import ConfidenceScorer, ProbeScorer
from langchain_hybrid.routing.state_gate import StateGate

if TYPE_CHECKING:
    import numpy as np

    from langchain_hybrid.calibration.features import _Data
    from langchain_hybrid.evaluation.records import LocalRecord

__all__ = ["replay_early"]

_EARLY_MIN_TOKENS = (2, 4, 8, 16)
_EARLY_MARGINS = (0.0, 0.5, 1.0, 2.0, 4.0)
_NEVER = 10**6  # min_tokens of a fixed rule that never predicts
_PARTS = ("prompt", "answer_prefix")  # the states the learned probe reads


def replay_early(
    policy: RoutingPolicy,
    records: Sequence[LocalRecord],
    whole: Sequence[Verdict] | None = None,
) -> dict[str, float | int]:
    """Replay ``policy`` on records: how early escalated answers stop, how many wrong stops.

    ``token_fraction``: over answers the policy escalates (judged whole), the tokens
    generated before escalating divided by the answer's full length; ``max_tokens_fraction``
    the same over the token limit; ``wrong_stop_rate``: the share of the answers the policy
    would have served right (kept local when judged whole, and correct) that stopping early
    sends to the cloud, the only stops that cost anything; ``kept_wrong_stopped``: the
    answers it would have kept although wrong that stopping early sends to the cloud (an
    accuracy gain). ``whole`` may give the verdicts on the whole answers (without stopping
    early: no early escalation, no gate before generation) when they are known.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid.evaluation.records import LocalRecord
        >>> from langchain_hybrid.routing.confidence import MinLogprobScorer
        >>> lp = {"content": [{"token": "x", "logprob": -3.0}] * 10}
        >>> r = LocalRecord("1", (HumanMessage("q"),), AIMessage("x" * 10,
        ...     response_metadata={"finish_reason": "stop", "logprobs": lp}), False, 0.1, 10)
        >>> replay_early(RoutingPolicy(scorer=MinLogprobScorer(), threshold=-1.0), [r])
        {'escalated': 1, 'passing': 0, 'token_fraction': 0.1, 'max_tokens_fraction': 0.1, 'wrong_stop_rate': 0.0, 'kept_wrong_stopped': 0}
    """  # noqa: E501
    if whole is None:
        whole = _whole_verdicts(policy, records)
    spent, spent_max, escalated, passing, right, wrong, gained = 0.0, 0.0, 0, 0, 0, 0, 0
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
            right += r.correct
            wrong += live.early_abort and r.correct
            gained += live.early_abort and not r.correct
    return {
        "escalated": escalated,
        "passing": passing,
        "token_fraction": spent / escalated if escalated else 0.0,
        "max_tokens_fraction": spent_max / escalated if escalated else 0.0,
        "wrong_stop_rate": wrong / right if right else 0.0,
        "kept_wrong_stopped": gained,
    }


def _whole_verdicts(policy: RoutingPolicy, records: Sequence[LocalRecord]) -> list[Verdict]:
    off = replace(policy, early_escalation=EarlyEscalation(enabled=False), before_generation=None)
    return [off.judge(r.answer, max_tokens=r.max_tokens, context=list(r.prompt)) for r in records]


def _best_fixed(
    policy: RoutingPolicy, records: Sequence[LocalRecord], max_wrong_stops: float
) -> EarlyEscalation:
    """Return the fixed rule (min_tokens, margin) that spends fewest tokens within the budget."""
    never = EarlyEscalation(min_tokens=_NEVER)
    if not _scores_partial_answers(policy.scorer):
        return never  # no running score to predict from: only the exact stops remain
    whole = _whole_verdicts(policy, records)
    best: tuple[float, EarlyEscalation] | None = None
    for min_tokens in _EARLY_MIN_TOKENS:
        for margin in _EARLY_MARGINS:
            early = EarlyEscalation(min_tokens=min_tokens, margin=margin)
            figures = replay_early(replace(policy, early_escalation=early), records, whole)
            if figures["wrong_stop_rate"] <= max_wrong_stops and (
                best is None or figures["token_fraction"] < best[0]
            ):
                best = (float(figures["token_fraction"]), early)
    return best[1] if best is not None else never


def _scores_partial_answers(scorer: ConfidenceScorer) -> bool:
    """Say whether ``scorer`` has a running score mid-answer.

    A probe reading the answer's mean state has none until the answer ends.
    """
    return not (isinstance(scorer, ProbeScorer) and "answer_mean" in scorer.hidden)


class _LearnedProbe:
    """The learned early-escalation probe: its states, and a gate fitted on some rows."""

    def __init__(self, policy: RoutingPolicy, data: _Data) -> None:
        import numpy as np

        prefixes = [hidden_vectors(r.answer.response_metadata).get(_PARTS[1]) for r in data.records]
        sizes = {len(v) for v in prefixes if v is not None}
        self.usable = "prompt" in data.hidden and len(sizes) == 1
        self.has = np.array([v is not None for v in prefixes])
        if not self.usable:
            return
        dim = sizes.pop()
        self.states = {
            _PARTS[0]: data.hidden["prompt"],
            _PARTS[1]: np.array([v if v is not None else [0.0] * dim for v in prefixes]),
        }
        self.useful = passing_answers(policy, data) & (data.y == 1)
        self.groups = data.groups
        self.layer = data.hidden_layer

    def fit(self, rows: np.ndarray, max_stops: float) -> StateGate | None:
        """Fit the gate on ``rows`` (those whose answers reached the prefix)."""
        rows = rows[self.has[rows]]
        states = {p: m[rows] for p, m in self.states.items()}
        useful, groups = self.useful[rows], self.groups[rows]
        return fit_gate(states, useful, groups, PREFIX_TOKENS, max_stops, self.layer)


def _fit_early(
    policy: RoutingPolicy, data: _Data, max_wrong_stops: float
) -> tuple[RoutingPolicy, dict[str, Any]]:
    """Choose how to stop early: a fixed rule (min_tokens, margin) or a learned probe.

    Both ways are fitted on half of the groups and replayed on the other half; the way
    that spends fewer tokens on escalated answers there, while stopping at most
    ``max_wrong_stops`` of the answers the policy would have served right, is kept (a
    learned probe is then refitted on all the records). The learned probe, a
    :class:`~langchain_hybrid.routing.state_gate.StateGate` on the prompt's state and the
    answer's :data:`PREFIX_TOKENS`-th token's, needs hidden states.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    groups = rng.permutation(np.unique(data.groups))
    in_fit = np.isin(data.groups, groups[: len(groups) // 2])
    held_out = bool(in_fit.any() and (~in_fit).any())
    fit_rows = np.flatnonzero(in_fit) if held_out else np.arange(len(data.y))
    check_rows = np.flatnonzero(~in_fit) if held_out else fit_rows
    fit_records = [data.records[i] for i in fit_rows]
    check_records = [data.records[i] for i in check_rows]
    probe = _LearnedProbe(policy, data)
    ways = {"fixed": _best_fixed(policy, fit_records, max_wrong_stops)}
    gate = probe.fit(fit_rows, max_wrong_stops / 2) if probe.usable else None
    if gate is not None:
        ways["probe"] = EarlyEscalation(probe=gate)
    measured = {
        way: replay_early(replace(policy, early_escalation=early), check_records)
        for way, early in ways.items()
    }
    within = [w for w, f in measured.items() if f["wrong_stop_rate"] <= max_wrong_stops]
    way = min(within, key=lambda w: measured[w]["token_fraction"]) if within else "fixed"
    chosen = ways[way]
    if way == "probe":
        final = probe.fit(np.arange(len(data.y)), max_wrong_stops / 2)
        chosen = EarlyEscalation(probe=final) if final is not None else chosen
    figures = measured[way]
    how = (
        f"fitted on half of the groups ({len(fit_rows)} answers), replayed on the other "
        f"half ({len(check_rows)})"
        if held_out
        else "in-sample (one group: nothing could be held out)"
    )
    return replace(policy, early_escalation=chosen), {
        "way": way,
        "min_tokens": chosen.min_tokens,
        "margin": chosen.margin,
        "after_tokens": chosen.probe.after_tokens if chosen.probe is not None else None,
        "token_fraction": float(figures["token_fraction"]),
        "max_tokens_fraction": float(figures["max_tokens_fraction"]),
        "wrong_stop_rate": float(figures["wrong_stop_rate"]),
        "compared": {
            w: {k: round(float(f[k]), 4) for k in ("token_fraction", "wrong_stop_rate")}
            for w, f in measured.items()
        },
        "how": how,
    }
