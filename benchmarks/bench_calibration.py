"""Calibration figures on collected local records (no model run): AUROC, transfer, early stop.

Usage:
    python benchmarks/bench_calibration.py --records NAME=records.jsonl [NAME=...] \
        [--data NAME=dataset.jsonl --cloud-replay MODEL] [--cloud-accuracy 0.8] \
        [--plots DIR] [--demo-policy examples/hybrid_policy.json]

For each workload: each scorer's AUROC at predicting a correct local answer (the learned
one out-of-fold) with n; transfer: fitted for target_cloud_rate=0.5 (and for an accuracy
target one point below cloud-only) on one half, the share / accuracy achieved on the other
half; early escalation (fraction of a full generation spent before escalating, wrong-stop
rate). With ``--demo-policy`` the records of every workload are pooled and a policy for
the demo is fitted on them and saved. Records come from ``collect_local`` (the ``eval``
command saves them); ``--data`` gives the dataset a workload's records were collected on
when its cloud answers are recorded (``--cloud-replay``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import warnings
from pathlib import Path

from langchain_hybrid.calibration import CloudOutcomes, calibrate, replay_early
from langchain_hybrid.evaluation.datasets import load_dataset
from langchain_hybrid.evaluation.records import load_records


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, _, path = v.partition("=")
        out[name] = path
    return out


def _split(records: list, seed: int) -> tuple[list, list]:
    idx = list(range(len(records)))
    random.Random(seed).shuffle(idx)
    half = len(idx) // 2
    return [records[i] for i in idx[:half]], [records[i] for i in idx[half:]]


def _apply(policy, records, cloud) -> tuple[float, float]:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", nargs="+", required=True, help="NAME=records.jsonl")
    ap.add_argument("--data", nargs="*", default=[], help="NAME=dataset.jsonl (for replay)")
    ap.add_argument("--cloud-replay", default="gpt-4-1106-preview")
    ap.add_argument("--cloud-accuracy", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plots", type=Path)
    ap.add_argument("--demo-policy", type=Path)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    datas = _pairs(args.data)
    pooled, pooled_cloud = [], {}
    summary = {}
    for name, path in _pairs(args.records).items():
        records = load_records(path)
        cloud = CloudOutcomes.assumed(args.cloud_accuracy)
        if name in datas:
            try:
                replayed = CloudOutcomes.replayed(load_dataset(datas[name]), args.cloud_replay)
                cloud = dataclasses.replace(replayed, accuracy=args.cloud_accuracy)
            except Exception as e:  # noqa: BLE001
                print(f"{name}: no replay ({e}); assumed cloud accuracy")
        pooled += [dataclasses.replace(r, example_id=f"{name}:{r.example_id}") for r in records]
        pooled_cloud.update({f"{name}:{k}": v for k, v in cloud.correct.items()})
        full = calibrate(
            records,
            target_cloud_rate=0.5,
            cloud=cloud,
            dataset=name,
            seed=args.seed,
            min_local_accuracy=0.0,
        )
        local_acc = sum(r.correct for r in records) / len(records)
        print(
            f"\n== {name}: n={len(records)}, local accuracy {local_acc:.3f}, cloud {cloud.source}"
        )
        for scorer, auc in sorted(full.auroc.items(), key=lambda kv: -(kv[1] or 0)):
            print(f"  AUROC {scorer:<13} {'-' if auc is None else f'{auc:.3f}'}")
        a, b = _split(records, args.seed)
        row = {"n": len(records), "local_accuracy": local_acc, "auroc": full.auroc}
        for label, kw in (
            ("cloud_rate=0.5", {"target_cloud_rate": 0.5, "min_local_accuracy": 0.0}),
            ("accuracy=cloud-0.01", {"target_accuracy": None}),
        ):
            if kw.get("target_accuracy", 0) is None:
                cloud_only = sum(cloud.p_correct(r.example_id) for r in a) / len(a)
                kw = {"target_accuracy": max(0.0, cloud_only - 0.01)}
            fit = calibrate(a, cloud=cloud, seed=args.seed, fit_early=False, **kw)
            share, acc = _apply(fit.policy, b, cloud)
            fitted = fit.curve.points[fit.curve.chosen] if fit.curve.chosen is not None else None
            print(
                f"  transfer {label}: met={fit.met} fitted-half share "
                f"{fitted.cloud_share if fitted else 1.0:.3f} "
                f"acc {fitted.accuracy if fitted else 0:.3f}"
                f" -> other half share {share:.3f} acc {acc:.3f} (scorer {fit.curve.scorer})"
            )
            row[f"transfer {label}"] = {
                "met": fit.met,
                "other_half_share": share,
                "other_half_accuracy": acc,
                "fitted_share": fitted.cloud_share if fitted else None,
            }
        if full.early:
            e = full.early
            print(
                f"  early escalation (target_cloud_rate=0.5 policy): min_tokens={e['min_tokens']} "
                f"margin={e['margin']}: {e['token_fraction']:.2f} of a full generation "
                f"({e['max_tokens_fraction']:.2f} of max_tokens), wrong stops "
                f"{100 * e['wrong_stop_rate']:.1f}% ({e['how']})"
            )
            default = replay_early(
                dataclasses.replace(
                    full.policy, early_escalation=type(full.policy.early_escalation)()
                ),
                records,
            )
            print(
                "  early escalation with the default EarlyEscalation(): "
                f"{default['token_fraction']:.2f} "
                f"of a full generation, wrong stops {100 * default['wrong_stop_rate']:.1f}%"
            )
            row["early"] = e
        if args.plots:
            args.plots.mkdir(parents=True, exist_ok=True)
            full.curve.plot(args.plots / f"{name}.png", title=f"{name}: {full.curve.scorer}")
            full.curve.save(args.plots / f"{name}.json")
        summary[name] = row
    if args.demo_policy:
        cloud = CloudOutcomes(
            correct=pooled_cloud,
            accuracy=args.cloud_accuracy,
            source=f"replayed {args.cloud_replay} where recorded, "
            f"else assumed accuracy {args.cloud_accuracy}",
        )
        result = calibrate(
            pooled,
            target_cloud_rate=0.5,
            cloud=cloud,
            dataset="mixed: " + ", ".join(_pairs(args.records)),
            seed=args.seed,
        )
        print("\n== demo policy (mixed workload)\n" + result.report())
        result.policy.save(args.demo_policy)
        if args.plots:
            result.curve.plot(args.plots / "mixed.png", title="mixed workload")
    if args.plots:
        (args.plots / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
