"""What calibration hands back: the result, told in plain words and recorded in the policy."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.curve import TradeoffCurve
from langchain_hybrid.evaluation.records import prompt_digest
from langchain_hybrid.routing.confidence import LogisticScorer
from langchain_hybrid.routing.policy import RoutingPolicy

if TYPE_CHECKING:
    from langchain_hybrid.calibration.fit import _Choice
    from langchain_hybrid.evaluation.records import LocalRecord

__all__ = ["CalibrationResult"]


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` fitted and measured.

    ``policy`` is the fitted policy (cloud-only when ``met`` is False); ``curve`` the
    trade-off curve of the chosen scorer (out-of-fold scores); ``auroc`` each scorer's
    AUROC at predicting a correct local answer (the learned one out-of-fold);
    ``achieved`` the chosen point's figures on held-out folds (whole groups held out);
    ``early`` the early-escalation figures; ``message`` says, in plain words, what was
    chosen or why not. ``auroc_ci`` holds 95% intervals of the AUROCs (a bootstrap over
    groups); ``no_learned`` and ``no_probe`` say why no learned scorer or no hidden-state
    probe was fitted, when none was; ``before_generation`` holds the held-out figures of
    the gate before generation (``used``: whether the policy has one).
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
    auroc_ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    no_learned: str | None = None
    no_probe: str | None = None
    before_generation: dict[str, Any] = field(default_factory=dict)

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
            f"AUROC at predicting a right local answer, n={self.n}, with 95% intervals "
            "(a bootstrap over groups); single scorers have no fitted parameters, learned "
            "ones are scored out-of-fold on groups they were not fitted on:"
        )
        for name, value in sorted(self.auroc.items(), key=lambda kv: -(kv[1] or 0)):
            ci = self.auroc_ci.get(name)
            interval = "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
            lines.append(f"  {name:<14} {'-' if value is None else f'{value:.3f}'}{interval}")
        if self.no_learned is not None:
            lines.append(f"  (no learned scorer: {self.no_learned}; single scorers only)")
        if self.no_probe is not None:
            lines.append(f"  (no hidden-state probe: {self.no_probe})")
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
            rule = (
                f"a learned probe {e['after_tokens']} tokens in"
                if e.get("way") == "probe"
                else f"min_tokens={e['min_tokens']} margin={e['margin']}"
            )
            lines.append(
                f"early escalation, {rule}: escalated answers stop after "
                f"{e['token_fraction']:.2f} of their tokens; {100 * e['wrong_stop_rate']:.1f}% "
                f"of the answers served right locally stopped ({e['how']})"
            )
            others = {k: f for k, f in e.get("compared", {}).items() if k != e.get("way")}
            for way, f in others.items():
                lines.append(
                    f"  not chosen, the {way} way: {f['token_fraction']:.2f} of the tokens, "
                    f"{100 * f['wrong_stop_rate']:.1f}% of the answers served right stopped"
                )
        if self.before_generation:
            b = self.before_generation
            use = "used" if b["used"] else "not used (it would stop right answers, or nothing)"
            lines.append(
                f"routing before generation ({b['how']}): {b['stopped']} requests sent to the "
                f"cloud before the local answer was written, "
                f"{100 * b['share_of_escalations_skipped']:.1f}% of escalations skipped it, "
                f"{100 * b['kept_right_stopped']:.1f}% of the answers served right locally "
                f"lost to the cloud, {b['kept_wrong_stopped']} wrong answers it would have "
                f"kept sent to the cloud; {use}"
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


def _message(choice: _Choice, policy: RoutingPolicy) -> str:
    """Say, in plain words, what was chosen (and what it achieved out-of-fold) or why not."""
    p = choice.point
    if p is None:
        return (
            f"target not met: {choice.why}. Returning the cloud-only policy (everything escalates)."
        )
    chosen = choice.candidate
    kept = "" if p.kept_accuracy is None else f", kept-local accuracy {p.kept_accuracy:.3f}"
    length_rule = "length" in chosen.finish_reasons
    return (
        f"chose {chosen.name} (AUROC {_fmt(chosen.auroc)}), threshold {policy.threshold:.4g}: "
        f"cloud share {p.cloud_share:.3f}, expected accuracy {p.accuracy:.3f}{kept}, "
        f"${p.cost_per_query:.6f}/query (out-of-fold); finish_reason 'length' "
        f"{'escalates' if length_rule else 'is judged by the score'}"
    )


def _with_fitted_on(
    result: CalibrationResult, dataset: str, cloud: str, records: Sequence[LocalRecord]
) -> CalibrationResult:
    """Return the result whose policy records what it was fitted on (its ``fitted_on``)."""
    fitted_on: dict[str, Any] = {
        "dataset": dataset,
        "n": result.n,
        "target": result.target,
        "cloud": cloud,
        "scorer": result.curve.scorer,
        "auroc": {k: (None if v is None else round(v, 4)) for k, v in result.auroc.items()},
        "auroc_ci": {k: _round(v) for k, v in result.auroc_ci.items()},
        "groups": result.achieved.get("groups"),
        "achieved": {k: _round(v) for k, v in result.achieved.items()},
        # Which rows it was fitted on, without their text: evaluation warns on overlap.
        "prompt_digests": sorted({prompt_digest(r.prompt) for r in records}),
        # The local model (and adapter) the records came from: ChatHybrid warns on another.
        "model": _model_of(records),
        "met": result.met,
    }
    if not result.met:
        fitted_on["message"] = result.message
    else:
        assert result.curve.chosen is not None
        chosen = result.curve.points[result.curve.chosen]
        fitted_on["chosen"] = {k: _round(v) for k, v in dataclasses.asdict(chosen).items()}
    if result.early:
        fitted_on["early_escalation"] = {k: _round(v) for k, v in result.early.items()}
    if result.before_generation:
        fitted_on["before_generation"] = {k: _round(v) for k, v in result.before_generation.items()}
    policy = dataclasses.replace(result.policy, fitted_on=fitted_on)
    return dataclasses.replace(result, policy=policy)


def _model_of(records: Sequence[LocalRecord]) -> str | None:
    """Return the local model that answered the records (None: unnamed, or several)."""
    names = {r.answer.response_metadata.get("model_name") for r in records} - {None}
    return str(names.pop()) if len(names) == 1 else None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, (list, tuple)):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v
