"""Calibration figures on collected local records (no model run): AUROC, transfer, tables.

Usage:
    python benchmarks/bench_calibration.py \
        --workload nq=DATA/nq_open_dev.jsonl:RECORDS1.jsonl,RECORDS2.jsonl \
        --workload squad=DATA/squad2_rag_dev.jsonl:RECORDS.jsonl \
        --workload gsm8k=DATA/gsm8k_recorded.jsonl:RECORDS.jsonl \
        [--cloud-replay gpt-4-1106-preview] [--cloud-accuracy nq=0.8 squad=0.85] \
        [--plots DIR] [--demo-policy examples/hybrid_policy.json --demo-exclude FILE ...]

Per workload (records of one workload may come from several files; they are deduplicated
by example id, the first kept):

- each scorer's AUROC at predicting a right local answer, with n (the learned one
  out-of-fold, 5-fold);
- transfer: fitted for ``target_cloud_rate=0.5`` on a random half, the share achieved on
  the other half; likewise for ``target_accuracy`` = cloud-only accuracy of the fitting
  half minus one point;
- the Cloud-only / Local-only / Hybrid table of the policy fitted for that accuracy
  target on one half, evaluated (``evaluate``) on the other half only;
- early escalation of the policy fitted for ``target_cloud_rate=0.5`` on all records:
  fraction of a full generation spent before escalating, wrong-stop rate (fitted on one
  half, measured on the other by replay);
- with ``--plots``: the trade-off curve (PNG and JSON) and ``summary.json``.

The cloud: the recorded answers of ``--cloud-replay`` where the dataset has them (GSM8K),
else the assumed accuracy given for the workload (labelled as an assumption).
``--demo-policy`` pools every workload's records, leaves out the questions of the
``--demo-exclude`` files (the demo's own questions), fits ``target_accuracy`` = pooled
cloud-only accuracy minus ``--demo-loss`` and saves the policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import warnings
from pathlib import Path
from typing import Any

from langchain_hybrid.calibration import CloudOutcomes, calibrate, replay_early
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.evaluation.datasets import load_dataset
from langchain_hybrid.evaluation.harness import AssumedCloud, ReplayCloud, evaluate
from langchain_hybrid.evaluation.records import Example, LocalRecord, load_records


@dataclasses.dataclass
class Workload:
    name: str
    examples: dict[str, Example]
    records: list[LocalRecord]
    cloud: CloudOutcomes
    replay: bool


def _workload(spec: str, accuracies: dict[str, float], replay_model: str) -> Workload:
    name, _, rest = spec.partition("=")
    data, _, files = rest.partition(":")
    examples = {ex.id: ex for ex in load_dataset(data)}
    records: dict[str, LocalRecord] = {}
    for path in files.split(","):
        for r in load_records(path):
            records.setdefault(r.example_id, r)
    unknown = [i for i in records if i not in examples]
    if unknown:
        raise SystemExit(f"{name}: {len(unknown)} records are not rows of {data}: {unknown[:3]}")
    ordered = sorted(records.values(), key=lambda r: r.example_id)
    chosen = [examples[r.example_id] for r in ordered]
    replay = all(replay_model in ex.recorded for ex in chosen)
    if replay:
        cloud = CloudOutcomes.replayed(chosen, replay_model)
    elif name in accuracies:
        cloud = CloudOutcomes.assumed(accuracies[name])
    else:
        raise SystemExit(f"{name}: no recorded cloud answers; give --cloud-accuracy {name}=P")
    return Workload(name, examples, ordered, cloud, replay)


def _split(records: list[LocalRecord], seed: int) -> tuple[list[LocalRecord], list[LocalRecord]]:
    idx = list(range(len(records)))
    random.Random(seed).shuffle(idx)
    half = len(idx) // 2
    return [records[i] for i in idx[:half]], [records[i] for i in idx[half:]]


def _apply(policy, records, cloud) -> tuple[float, float]:
    """(cloud share, expected accuracy) of ``policy`` replayed on ``records``."""
    cloud_n, correct = 0, 0.0
    for r in records:
        ctx = list(r.prompt)
        pre = policy.pre_route(ctx)
        esc = (
            pre is not None or policy.judge(r.answer, max_tokens=r.max_tokens, context=ctx).escalate
        )
        cloud_n += esc
        correct += cloud.p_correct(r.example_id) if esc else float(r.correct)
    return cloud_n / len(records), correct / len(records)


def _cloud_only(records: list[LocalRecord], cloud: CloudOutcomes) -> float:
    return sum(cloud.p_correct(r.example_id) for r in records) / len(records)


def _measure(w: Workload, args: argparse.Namespace) -> dict[str, Any]:
    records, cloud = w.records, w.cloud
    local_acc = sum(r.correct for r in records) / len(records)
    full = calibrate(
        records,
        target_cloud_rate=0.5,
        cloud=cloud,
        dataset=w.name,
        seed=args.seed,
        min_local_accuracy=0.0,
    )
    print(
        f"\n== {w.name}: n={len(records)}, local model right {local_acc:.3f} "
        f"({sum(r.correct for r in records)}), cloud: {cloud.source}"
    )
    for scorer, auc in sorted(full.auroc.items(), key=lambda kv: -(kv[1] or 0)):
        print(f"  AUROC {scorer:<13} {'-' if auc is None else f'{auc:.3f}'}")
    row: dict[str, Any] = {
        "n": len(records),
        "local_accuracy": local_acc,
        "cloud": cloud.source,
        "auroc": full.auroc,
    }
    a, b = _split(records, args.seed)
    targets = (
        ("target_cloud_rate=0.5", {"target_cloud_rate": 0.5, "min_local_accuracy": 0.0}),
        (
            "target_accuracy=cloud-only-0.01",
            {"target_accuracy": max(0.0, _cloud_only(a, cloud) - 0.01)},
        ),
    )
    accuracy_policy = None
    for label, kw in targets:
        fit = calibrate(a, cloud=cloud, seed=args.seed, fit_early=False, **kw)
        share, acc = _apply(fit.policy, b, cloud)
        point = fit.curve.points[fit.curve.chosen] if fit.curve.chosen is not None else None
        goal = kw.get("target_accuracy", kw.get("target_cloud_rate"))
        print(
            f"  transfer {label} ({goal:.3f}): met={fit.met}, scorer {fit.curve.scorer}; fitted "
            f"half share {point.cloud_share if point else 1.0:.3f} acc "
            f"{point.accuracy if point else _cloud_only(a, cloud):.3f} -> other half share "
            f"{share:.3f} acc {acc:.3f} (cloud-only there {_cloud_only(b, cloud):.3f})"
        )
        row[f"transfer {label}"] = {
            "target": goal,
            "met": fit.met,
            "scorer": fit.curve.scorer,
            "fitted_half_share": point.cloud_share if point else 1.0,
            "other_half_share": share,
            "other_half_accuracy": acc,
            "other_half_cloud_only_accuracy": _cloud_only(b, cloud),
        }
        if "target_accuracy" in kw:
            accuracy_policy = fit.policy
    assert accuracy_policy is not None
    held_out = [w.examples[r.example_id] for r in b]
    source = ReplayCloud(args.cloud_replay) if w.replay else AssumedCloud(cloud.accuracy or 0.0)
    report = evaluate(
        held_out,
        local=None,
        policy=accuracy_policy,
        cloud_source=source,
        prices=PriceTable.paper_gpt4(source.model),
        max_tokens=b[0].max_tokens or 32,
        records=b,
        progress=False,
        dataset=f"{w.name} (held-out half, policy fitted on the other half)",
    )
    print(report.table())
    row["table"] = report.as_dict()["rows"]
    if full.early:
        e = full.early
        print(
            f"  early escalation (target_cloud_rate=0.5 policy, {full.curve.scorer}): "
            f"min_tokens={e['min_tokens']} margin={e['margin']}: {e['token_fraction']:.2f} of a "
            f"full generation ({e['max_tokens_fraction']:.2f} of max_tokens), wrong stops "
            f"{100 * e['wrong_stop_rate']:.1f}% ({e['how']})"
        )
        default = replay_early(
            dataclasses.replace(full.policy, early_escalation=type(full.policy.early_escalation)()),
            records,
        )
        print(
            "  early escalation with the default EarlyEscalation(): "
            f"{default['token_fraction']:.2f} of a full generation, wrong stops "
            f"{100 * default['wrong_stop_rate']:.1f}%"
        )
        row["early"] = e
        row["early_default"] = default
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        full.curve.plot(args.plots / f"{w.name}.png", title=f"{w.name}: {full.curve.scorer}")
        full.curve.save(args.plots / f"{w.name}.json")
    return row


def _demo_policy(workloads: list[Workload], args: argparse.Namespace) -> None:
    excluded = {ex.question for path in args.demo_exclude for ex in load_dataset(path)}
    pooled: list[LocalRecord] = []
    correct: dict[str, bool] = {}
    assumed: dict[str, float] = {}
    for w in workloads:
        for r in w.records:
            if w.examples[r.example_id].question in excluded:
                continue
            key = f"{w.name}:{r.example_id}"
            pooled.append(dataclasses.replace(r, example_id=key))
            if r.example_id in w.cloud.correct:
                correct[key] = w.cloud.correct[r.example_id]
            else:
                assumed[key] = w.cloud.p_correct(r.example_id)
    # CloudOutcomes takes one assumed accuracy: per-workload assumptions enter as expected
    # correctness, which calibration reads through p_correct.
    cloud = _PerExampleCloud(
        correct=correct,
        accuracy=0.0,
        source="replayed "
        + args.cloud_replay
        + " where recorded, else the assumed accuracy per workload ("
        + ", ".join(f"{k} {v}" for k, v in args.cloud_accuracy.items())
        + ")",
        expected=assumed,
    )
    target = _cloud_only(pooled, cloud) - args.demo_loss
    result = calibrate(
        pooled,
        target_accuracy=target,
        cloud=cloud,
        dataset="mixed: " + ", ".join(w.name for w in workloads) + " (demo questions left out)",
        seed=args.seed,
    )
    print("\n== demo policy (mixed workload)\n" + result.report())
    result.policy.save(args.demo_policy)
    print(f"saved {args.demo_policy}")
    if args.plots:
        result.curve.plot(args.plots / "mixed.png", title="mixed workload (demo policy)")
        result.curve.save(args.plots / "mixed.json")


@dataclasses.dataclass(frozen=True)
class _PerExampleCloud(CloudOutcomes):
    """Cloud outcomes with a per-example expected correctness where none was recorded."""

    expected: dict[str, float] = dataclasses.field(default_factory=dict)

    def p_correct(self, example_id: str) -> float:
        if example_id in self.expected:
            return self.expected[example_id]
        return super().p_correct(example_id)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", action="append", required=True, help="NAME=DATA:REC[,REC]")
    ap.add_argument("--cloud-replay", default="gpt-4-1106-preview")
    ap.add_argument("--cloud-accuracy", nargs="*", default=[], help="NAME=P (assumed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plots", type=Path)
    ap.add_argument("--demo-policy", type=Path)
    ap.add_argument("--demo-exclude", nargs="*", default=[])
    ap.add_argument("--demo-loss", type=float, default=0.01)
    args = ap.parse_args()
    args.cloud_accuracy = {
        k: float(v) for k, _, v in (s.partition("=") for s in args.cloud_accuracy)
    }
    warnings.simplefilter("ignore")
    workloads = [_workload(s, args.cloud_accuracy, args.cloud_replay) for s in args.workload]
    summary = {w.name: _measure(w, args) for w in workloads}
    if args.demo_policy:
        _demo_policy(workloads, args)
    if args.plots:
        (args.plots / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
