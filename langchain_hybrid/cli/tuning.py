"""The ``tune`` command: train a LoRA adapter (or full weights) of the local model on rows."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_hybrid.cli.base import PROG, Command, CommandAdder, CommandError
from langchain_hybrid.cli.options import _checked, add_progress_option, positive_int, progress

#: An option value strictly between 0 and 1 (a share of the rows).
fraction = _checked(float, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (exclusive)")
#: An option value above 0 (epochs, minutes, a learning rate).
positive = _checked(float, lambda v: v > 0, "a number > 0")

#: ``tune()`` settings the command passes only when given (else tune's defaults hold).
_SETTINGS = {
    "method": "method",
    "epochs": "epochs",
    "max_minutes": "max_minutes",
    "seed": "seed",
    "learning_rate": "learning_rate",
    "lora_rank": "lora_rank",
    "batch_size": "batch_size",
    "validation_split": "validation_split",
    "local_model": "model",
    "device": "device",
}


def _add_tune_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``tune``."""
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="JSON Lines training rows: the shapes 'eval' reads, and rows recorded from "
        "escalations (EscalationRecorder, export_escalations: the cloud's answer is taught)",
    )
    held = data.add_mutually_exclusive_group()
    held.add_argument(
        "--validation",
        metavar="FILE",
        help="JSON Lines validation rows (other rows than --data's)",
    )
    held.add_argument(
        "--validation-split",
        type=fraction,
        metavar="P",
        help="hold out this share of --data's groups for validation (default 0.1)",
    )
    data.add_argument(
        "--group-by",
        metavar="FIELD",
        help="the field naming the group of each row, held out together (default: the "
        "article 'title', else the passage, else the row)",
    )
    from langchain_hybrid._models import DEFAULT_MODEL_NAME

    model = p.add_argument_group("model")
    model.add_argument(
        "--local-model",
        metavar="ID",
        help="the base model: Hugging Face model id or local path (default: the embedded "
        f"{DEFAULT_MODEL_NAME})",
    )
    model.add_argument(
        "--device", metavar="D", help="cpu, cuda... (default: the GPU when torch sees one)"
    )
    train = p.add_argument_group("training")
    train.add_argument(
        "--method",
        choices=["lora", "full"],
        help="a LoRA adapter of a few MB (default) or every weight (small models only)",
    )
    train.add_argument(
        "--epochs", type=positive, metavar="N", help="passes over the rows (default 1)"
    )
    train.add_argument(
        "--max-minutes",
        type=positive,
        metavar="M",
        help="stop after M minutes, keeping the best validated weights (default: no limit)",
    )
    train.add_argument(
        "--seed", type=int, metavar="S", help="seed of weights, order and split (default 0)"
    )
    train.add_argument(
        "--learning-rate",
        type=positive,
        metavar="LR",
        help="peak learning rate (default 5e-4 for LoRA, 3e-5 for full)",
    )
    train.add_argument(
        "--lora-rank", type=positive_int, metavar="R", help="the adapter's rank (default 16)"
    )
    train.add_argument(
        "--batch-size", type=positive_int, metavar="B", help="rows per optimizer step (default 8)"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="the folder for the adapter (or full weights) and tuning_card.json",
    )
    add_progress_option(out)


def _check(args: argparse.Namespace) -> None:
    """Refuse what cannot run before anything heavy is imported."""
    for flag, value in (("--data", args.data), ("--validation", args.validation)):
        if value is not None and not Path(value).is_file():
            raise CommandError(f"{flag} {value}: no such file")
    if args.validation is not None and Path(args.validation).resolve() == Path(args.data).resolve():
        raise CommandError("--validation is the --data file: validate on other rows")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise CommandError(f"--output {args.output} is a file: give a folder")
    if args.method == "full" and args.lora_rank is not None:
        raise CommandError("--lora-rank applies to --method lora")


def _as_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _regrouped(path: str, field: str) -> list[Any]:
    """Load the rows of ``path`` with each row's group read from its ``field``."""
    from langchain_hybrid.tuning import load_rows

    rows = load_rows(path)
    groups: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            raw = json.loads(line)  # load_rows read it: valid JSON objects
            row_id = str(raw.get("id", f"{Path(path).stem}-{number}"))
            if raw.get(field) is None:
                raise CommandError(
                    f"{path}:{number}: missing field {field!r} (the --group-by field)"
                )
            groups[row_id] = f"{field}:{_as_key(raw[field])}"
    return [dataclasses.replace(r, group=groups[r.example.id]) for r in rows]


def _tune_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``tune()`` call of the options: data, output and the settings given."""
    kwargs: dict[str, Any] = {
        name: getattr(args, dest)
        for dest, name in _SETTINGS.items()
        if getattr(args, dest) is not None
    }
    kwargs["output"] = args.output
    kwargs["progress"] = progress(args)
    if args.group_by:
        kwargs["data"] = _regrouped(args.data, args.group_by)
        if args.validation:
            kwargs["validation"] = _regrouped(args.validation, args.group_by)
    else:
        kwargs["data"] = args.data
        if args.validation:
            kwargs["validation"] = args.validation
    return kwargs


def _rate(metrics: Mapping[str, Any], key: str) -> str:
    value = metrics.get(key)
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def summary(result: Any, *, data: str) -> list[str]:
    """Return the lines ``tune`` prints about a :class:`~langchain_hybrid.tuning.TuneResult`.

    Example:
        >>> from pathlib import Path
        >>> from langchain_hybrid.tuning import AdapterCard, TuneResult
        >>> card = AdapterCard(
        ...     base_model={"name": "SmolLM2-135M-Instruct"}, method="lora",
        ...     hyperparameters={}, data={"train": {"rows": 90}, "validation": {"rows": 10}},
        ...     training={"steps": 12, "epochs_done": 1.0, "stopped": "completed",
        ...               "best_step": 12, "wall_seconds": 95.0, "train_seconds": 80.0},
        ...     validation={"best": {"step": 12, "n_answerable": 10.0, "n_unanswerable": 0.0,
        ...                          "answerable_accuracy": 0.4, "decline_rate": 0.1,
        ...                          "loss": 1.25}})
        >>> result = TuneResult(Path("adapter"), card, "completed")
        >>> for line in summary(result, data="escalations.jsonl")[:4]:
        ...     print(line)
        tuned SmolLM2-135M-Instruct (lora) on 90 rows, validated on 10 rows
        12 steps, 1.0 epochs, 1.6 min (1.3 min training); completed
        best validation (step 12): answerable accuracy 0.400 (n=10), decline rate 0.100, loss 1.250
        adapter written to adapter (tuning_card.json beside it)
    """
    card = result.card
    training: Mapping[str, Any] = card.training or {}
    rows = (card.data or {}).get("train", {}).get("rows")
    val_rows = (card.data or {}).get("validation", {}).get("rows")
    minutes = (training.get("wall_seconds") or 0) / 60
    train_minutes = (training.get("train_seconds") or 0) / 60
    stopped = {
        "completed": "completed",
        "early_stopping": "stopped early (no better validation)",
        "time_limit": "stopped at --max-minutes",
        "interrupted": "interrupted (Ctrl-C): the best validated weights so far are saved",
    }.get(result.stopped, result.stopped)
    lines = [
        f"tuned {card.base_model.get('name', 'the model')} ({card.method}) on {rows} rows, "
        f"validated on {val_rows} rows",
        f"{training.get('steps')} steps, {training.get('epochs_done')} epochs, "
        f"{minutes:.1f} min ({train_minutes:.1f} min training); {stopped}",
    ]
    best = result.best
    if best is None:
        lines.append("no validation figures (no validation ran)")
    else:
        parts = []
        if best.get("n_answerable"):
            parts.append(
                f"answerable accuracy {_rate(best, 'answerable_accuracy')} "
                f"(n={int(best['n_answerable'])})"
            )
        if best.get("n_unanswerable"):
            parts.append(
                f"unanswerable declined {_rate(best, 'unanswerable_declined')} "
                f"(n={int(best['n_unanswerable'])})"
            )
            parts.append(f"balanced accuracy {_rate(best, 'balanced_accuracy')}")
        parts.append(f"decline rate {_rate(best, 'decline_rate')}")
        if best.get("loss") is not None:
            parts.append(f"loss {_rate(best, 'loss')}")
        lines.append(f"best validation (step {best.get('step')}): " + ", ".join(parts))
    output = result.output
    lines.append(f"adapter written to {output} (tuning_card.json beside it)")
    use = f"--adapter {output}" if card.method == "lora" else f"--local-model {output}"
    lines += [
        "next:",
        f"  1. calibrate on rows not used for tuning (not {Path(data).name}):",
        f"     {PROG} calibrate --data calibration.jsonl {use} --target-accuracy A "
        "--cloud-accuracy P --output policy.json",
        "  2. evaluate on rows used for neither:",
        f"     {PROG} eval --data held_out.jsonl {use} --policy policy.json --cloud-accuracy P",
        "  3. deploy ChatTransformers("
        + (f"adapter={str(output)!r}" if card.method == "lora" else f"model={str(output)!r}")
        + ") with RoutingPolicy.load('policy.json')",
    ]
    return lines


def run_tune(args: argparse.Namespace) -> int:
    """Run ``tune`` with parsed arguments; returns the exit status.

    130 when Ctrl-C interrupts it outside training (within training, ``tune()`` keeps
    the best validated weights and returns).
    """
    from langchain_hybrid import tuning

    _check(args)
    try:
        kwargs = _tune_arguments(args)
        result = tuning.tune(**kwargs)
    except KeyboardInterrupt:
        print(
            f"{PROG} tune: interrupted outside training; {args.output} may hold no "
            "complete adapter",
            file=sys.stderr,
        )
        return 130
    except ImportError as e:
        raise CommandError(
            f"{e}; tuning needs torch, transformers and peft: pip install 'langchain-hybrid[tune]'"
        ) from e
    for line in summary(result, data=args.data):
        print(line)
    return 0


_TUNE_HELP = f"""
tune the local model on labelled rows or recorded escalations (a LoRA adapter)

Train a LoRA adapter (or, with --method full, every weight of a small model) of the local
model on JSON Lines rows: the shapes 'eval' reads, or escalations recorded with
EscalationRecorder or exported from LangSmith (the cloud's answer is taught). Rows of one
group are never split between training and validation. The best validated weights are
saved with tuning_card.json (data, settings, validation figures), also when training
stops at --max-minutes or on Ctrl-C. Then calibrate a policy with --adapter DIR on rows
not used for tuning, and evaluate on rows used for neither.

examples:
  {PROG} tune --data escalations.jsonl --output adapter/ --epochs 2 --max-minutes 60
  {PROG} tune --data train.jsonl --validation val.jsonl --output adapter/ --lora-rank 8
      --learning-rate 3e-4 --batch-size 16 --seed 1
"""

#: ``tune``: train an adapter of the local model on labelled rows or recorded escalations.
add_tune_command = Command("tune", _TUNE_HELP, _add_tune_options, run_tune)


#: This group's commands, in the order ``langchain-hybrid --help`` lists them.
COMMANDS: list[CommandAdder] = [add_tune_command]
