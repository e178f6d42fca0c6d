"""The ``eval`` and ``calibrate`` commands: measure routing on labelled data, fit a policy."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_hybrid.cli.base import PROG, Command, CommandAdder, CommandError
from langchain_hybrid.cli.options import (
    add_data_options,
    add_generation_options,
    add_model_options,
    add_progress_option,
    build_from_factory,
    build_local_model,
    load_examples,
    non_negative,
    positive_int,
    probability,
    progress,
    seconds,
)

#: Default local token limits: short and RAG answers, maths (step-by-step) answers.
SHORT_MAX_TOKENS = 32
MATH_MAX_TOKENS = 160


def _add_local_options(
    parser: argparse.ArgumentParser, *, factory_help: str, max_tokens_note: str = ""
) -> None:
    """Add the local-model options (which model, how it runs, saved answers)."""
    local = parser.add_argument_group("local model")
    add_model_options(local)
    local.add_argument("--local-factory", metavar="MODULE:CALLABLE", help=factory_help)
    add_generation_options(
        local,
        max_tokens=None,
        max_tokens_help=f"local token limit (default: {SHORT_MAX_TOKENS} for short and RAG "
        f"answers, {MATH_MAX_TOKENS} when every example is maths)" + max_tokens_note,
        top_logprobs=5,
        top_logprobs_help="alternatives per token the local model reports, for margin features "
        "(default 5)",
    )
    local.add_argument(
        "--batch-size", type=positive_int, default=8, metavar="N", help="prompts per batch"
    )
    local.add_argument(
        "--records",
        metavar="FILE",
        help="reuse local answers saved with --save-records (examples without one are run)",
    )
    local.add_argument(
        "--save-records", metavar="FILE", help="save the local answers as JSON Lines records"
    )


def _add_cloud_sources(
    parser: argparse.ArgumentParser,
    *,
    replay_help: str,
    accuracy_help: str,
    model_help: str,
    live: bool = False,
) -> argparse._ArgumentGroup:
    """Add the ``cloud`` group: where the cloud's answers come from; returns the group."""
    cloud = parser.add_argument_group("cloud (choose one source)")
    source = cloud.add_mutually_exclusive_group(required=True)
    if live:
        source.add_argument(
            "--cloud-base-url",
            metavar="URL",
            help="a live OpenAI-compatible endpoint (needs --cloud-model; the key is read from "
            "OPENAI_API_KEY)",
        )
    source.add_argument("--cloud-replay", metavar="MODEL", help=replay_help)
    source.add_argument("--cloud-accuracy", type=probability, metavar="P", help=accuracy_help)
    cloud.add_argument("--cloud-model", metavar="M", help=model_help)
    return cloud


def _add_prices_option(group: argparse._ArgumentGroup, *, help: str) -> None:
    """Add ``--prices``: the price table the costs are computed with."""
    group.add_argument("--prices", default="default", metavar="TABLE", help=help)


def _prices(spec: str, cloud_model: str) -> Any:
    """Return the price table ``--prices`` names, with ``cloud_model``'s for ``paper-gpt4``."""
    from langchain_hybrid.costs import PriceTable

    if spec == "default":
        return PriceTable.default()
    if spec == "paper-gpt4":
        return PriceTable.paper_gpt4(cloud_model)
    path = Path(spec)
    if not path.is_file():
        raise CommandError(
            f"--prices must be 'default', 'paper-gpt4' or a JSON price file; {spec!r} is none"
        )
    try:
        return PriceTable.default().merged(PriceTable.from_dict(json.loads(path.read_text())))
    except (json.JSONDecodeError, ValueError) as e:
        raise CommandError(f"{spec}: not a price table ({e})") from e


def _local_model(args: argparse.Namespace) -> Any:
    """Return the local tier the command runs: ``--local-factory`` or ``ChatTransformers``."""
    if args.local_factory:
        return build_from_factory(args, "--local-factory")
    return build_local_model(args, top_logprobs=args.top_logprobs)


def _default_max_tokens(args: argparse.Namespace, examples: Sequence[Any]) -> int:
    """Return ``--max-tokens``, else the default limit for the examples' task."""
    if args.max_tokens:
        return int(args.max_tokens)
    return MATH_MAX_TOKENS if all(ex.task == "math" for ex in examples) else SHORT_MAX_TOKENS


def _batching(args: argparse.Namespace) -> dict[str, Any]:
    """Return how the local model runs over the examples: batch size and progress bars."""
    return {"batch_size": args.batch_size, "progress": progress(args)}


def _add_eval_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``eval``."""
    add_data_options(
        p,
        data_help="JSON Lines dataset: rows with 'question' and 'answer' (list) or 'answers' "
        "(list, optional 'context' and 'answerable'), or maths rows with 'answer' a number "
        "and 'recorded' cloud responses",
        limit_help="evaluate N examples",
    )
    _add_local_options(
        p,
        factory_help="a Python callable returning the local chat model instead (e.g. a served "
        "model through ChatOpenAI with logprobs=True)",
    )
    cloud = _add_cloud_sources(
        p,
        live=True,
        replay_help="replay the responses recorded in the dataset for MODEL (e.g. "
        "gpt-4-1106-preview)",
        accuracy_help="assume the cloud answers correctly with probability P (labelled an "
        "assumption)",
        model_help="the live cloud model; with --cloud-accuracy, the name prices use (default "
        "gpt-4)",
    )
    cloud.add_argument(
        "--cloud-latency",
        type=seconds,
        metavar="S",
        help="assumed seconds per cloud call when latency was not recorded",
    )
    out = p.add_argument_group("routing, prices and output")
    out.add_argument(
        "--policy", metavar="FILE", help="routing policy JSON (default: the default policy)"
    )
    _add_prices_option(
        out,
        help="'default' (OpenAI list prices), 'paper-gpt4' (the paper's GPT-4 prices, $0.03 "
        "/ $0.06 per 1k prompt / completion tokens, for the cloud model) or a JSON file of "
        "{model: {input_per_1m, output_per_1m}}",
    )
    out.add_argument("--output", metavar="FILE", help="write the report as JSON")
    out.add_argument(
        "--base-row",
        action="store_true",
        help="with --adapter: also run the local model without it, as its own row "
        "('Local-only (base)'), to see what tuning changed",
    )
    add_progress_option(out)


def _cloud_source(args: argparse.Namespace) -> Any:
    """Return where ``eval`` gets the cloud's answers: replayed, assumed or a live endpoint."""
    from langchain_hybrid.evaluation.harness import AssumedCloud, LiveCloud, ReplayCloud

    if args.cloud_replay:
        return ReplayCloud(args.cloud_replay, latency_s=args.cloud_latency)
    if args.cloud_accuracy is not None:
        return AssumedCloud(
            args.cloud_accuracy, model=args.cloud_model or "gpt-4", latency_s=args.cloud_latency
        )
    if not args.cloud_model:
        raise CommandError("--cloud-base-url needs --cloud-model (the endpoint's model name)")
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=args.cloud_base_url,
        model=args.cloud_model,
        api_key=os.environ.get("OPENAI_API_KEY") or "not-set",  # type: ignore[arg-type]
        temperature=0,
    )
    return LiveCloud(chat, model=args.cloud_model, batch_size=args.batch_size)


def run_eval(args: argparse.Namespace) -> int:
    """Run ``eval`` with parsed arguments; returns the exit status."""
    from langchain_hybrid.evaluation.harness import evaluate
    from langchain_hybrid.evaluation.records import load_records, save_records
    from langchain_hybrid.routing.policy import RoutingPolicy

    examples = load_examples(args)
    policy = RoutingPolicy.load(args.policy) if args.policy else RoutingPolicy()
    source = _cloud_source(args)
    prices = _prices(args.prices, source.model)
    max_tokens = _default_max_tokens(args, examples)
    records = load_records(args.records) if args.records else None
    known = {r.example_id for r in records or ()}
    local = _local_model(args) if any(ex.id not in known for ex in examples) else None
    if args.base_row and not args.adapter:
        raise CommandError("--base-row compares the model with its --adapter: give --adapter")
    base = None
    if args.base_row:
        base = build_local_model(args, top_logprobs=args.top_logprobs, adapter=None)
    report = evaluate(
        examples,
        local=local,
        policy=policy,
        cloud_source=source,
        prices=prices,
        max_tokens=max_tokens,
        records=records,
        dataset=Path(args.data).name,
        base=base,
        **_batching(args),
    )
    if args.save_records:
        save_records(args.save_records, report.records)
    print(report.table())
    if args.output:
        report.save(args.output)
        print(f"Report written to {args.output}")
    return 0


_EVAL_HELP = f"""
compare Cloud-only, Local-only and Hybrid on a labelled dataset

Run the local model once per example, get the cloud's answers (live, replayed from the
dataset, or an assumed accuracy), replay the routing policy on every local answer and print
the Cloud-only / Local-only / Hybrid table: accuracy with 95% confidence interval, cloud
share, API cost, latency, cost avoided, and each confidence scorer's AUROC.

examples:
  {PROG} eval --data gsm8k.jsonl --cloud-replay gpt-4-1106-preview --prices paper-gpt4
  {PROG} eval --data nq.jsonl --limit 200 --seed 1 --cloud-accuracy 0.9 --output report.json
  {PROG} eval --data rag.jsonl --cloud-base-url http://127.0.0.1:8000/v1 --cloud-model my-model
"""

#: ``eval``: the Cloud-only / Local-only / Hybrid table on a labelled dataset.
add_eval_command = Command("eval", _EVAL_HELP, _add_eval_options, run_eval)


def _add_calibrate_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``calibrate``."""
    add_data_options(
        p,
        data_help="JSON Lines dataset (the shapes 'eval' reads)",
        limit_help="calibrate on N examples",
        seed_note="; also the seed of the cross-validation folds",
    )
    _add_target_options(p)
    _add_local_options(
        p,
        factory_help="a Python callable returning the local chat model instead",
        max_tokens_note="; use the limit you will deploy with",
    )
    cloud = _add_cloud_sources(
        p,
        replay_help="the cloud's correctness from the responses recorded in the dataset for MODEL",
        accuracy_help="assume the cloud answers correctly with probability P (written into the "
        "policy's fitted_on as an assumption)",
        model_help="with --cloud-accuracy, the cloud model prices use (default gpt-4o)",
    )
    _add_prices_option(cloud, help="'default', 'paper-gpt4' or a JSON price file (as for 'eval')")
    out = p.add_argument_group("output")
    out.add_argument("--output", required=True, metavar="FILE", help="write the policy as JSON")
    out.add_argument("--plot", metavar="FILE", help="draw the trade-off curve to a PNG")
    out.add_argument("--curve", metavar="FILE", help="write the trade-off curve as JSON")
    add_progress_option(out)


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    """Add the ``target`` group of ``calibrate``: what the fitted policy must achieve."""
    target = parser.add_argument_group("target (choose one)")
    which = target.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--target-cloud-rate",
        type=probability,
        metavar="R",
        help="send this share of requests to the cloud (e.g. 0.5)",
    )
    which.add_argument(
        "--target-accuracy",
        type=probability,
        metavar="A",
        help="the hybrid's expected accuracy (e.g. one point below cloud-only's)",
    )
    which.add_argument(
        "--max-cost",
        type=non_negative,
        metavar="C",
        help="the expected API cost per query in USD (from --prices)",
    )
    target.add_argument(
        "--min-local-accuracy",
        type=probability,
        default=0.5,
        metavar="P",
        help="with --target-cloud-rate or --max-cost, the answers kept local must be right "
        "at least this often, else the target is not met (default 0.5)",
    )
    target.add_argument(
        "--folds",
        type=positive_int,
        default=5,
        metavar="K",
        help="cross-validation folds (default 5)",
    )


def _cloud_outcomes(args: argparse.Namespace, examples: Sequence[Any]) -> Any:
    """Return the cloud's correctness ``calibrate`` fits against: replayed or assumed."""
    from langchain_hybrid.calibration import CloudOutcomes

    if not args.cloud_replay:
        return CloudOutcomes.assumed(args.cloud_accuracy, model=args.cloud_model or "gpt-4o")
    cloud = CloudOutcomes.replayed(examples, args.cloud_replay)
    missing = [ex.id for ex in examples if ex.id not in cloud.correct]
    if missing:
        raise CommandError(
            f"{len(missing)} examples have no graded answer of {args.cloud_replay!r} "
            f"(first: {missing[0]!r}); use --cloud-accuracy, or data with recorded answers"
        )
    return cloud


def _local_records(args: argparse.Namespace, examples: Sequence[Any], max_tokens: int) -> list[Any]:
    """Return one local record per example: saved with ``--records``, else run now."""
    from langchain_hybrid.evaluation.collect import collect_local
    from langchain_hybrid.evaluation.records import load_records

    by_id = {r.example_id: r for r in (load_records(args.records) if args.records else ())}
    missing = [ex for ex in examples if ex.id not in by_id]
    if args.records:
        print(f"reused {len(examples) - len(missing)} saved local answers")
        limits = {by_id[ex.id].max_tokens for ex in examples if ex.id in by_id} - {max_tokens}
        if limits:
            print(f"note: saved records were collected with max_tokens {sorted(limits)}")
    if missing:
        collected = collect_local(
            missing, _local_model(args), max_tokens=max_tokens, **_batching(args)
        )
        by_id.update((r.example_id, r) for r in collected)
    # The data's groups (--group-by) hold, whatever saved records say.
    return [dataclasses.replace(by_id[ex.id], group=ex.group_key) for ex in examples]


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``calibrate`` with parsed arguments; returns the exit status.

    A target that cannot be met is not an error: the cloud-only policy is written, the
    report says why, and the status is 0.
    """
    from langchain_hybrid.evaluation.records import save_records

    if args.cloud_model and args.cloud_replay:
        raise CommandError("--cloud-model goes with --cloud-accuracy (replay names its model)")
    examples = load_examples(args)
    cloud = _cloud_outcomes(args, examples)
    prices = _prices(args.prices, cloud.model)
    records = _local_records(args, examples, _default_max_tokens(args, examples))
    if args.save_records:
        save_records(args.save_records, records)
    result = _fit_quietly(args, records, cloud=cloud, prices=prices)
    _write_calibration(args, result)
    return 0


def _fit_quietly(args: argparse.Namespace, records: list[Any], *, cloud: Any, prices: Any) -> Any:
    """Return the calibration of ``records`` for the target asked, its warnings silenced.

    The report printed afterwards says in full what the logs and warnings would.
    """
    from langchain_hybrid.calibration import calibrate

    quiet = logging.getLogger("langchain_hybrid.calibration")
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return calibrate(
                records,
                target_cloud_rate=args.target_cloud_rate,
                target_accuracy=args.target_accuracy,
                max_cost=args.max_cost,
                cloud=cloud,
                min_local_accuracy=args.min_local_accuracy,
                folds=args.folds,
                seed=args.seed or 0,
                dataset=Path(args.data).name,
                prices=prices,
            )
    finally:
        quiet.disabled = was_disabled


def _write_calibration(args: argparse.Namespace, result: Any) -> None:
    """Print the calibration report and write the policy, curve and plot asked for."""
    print(result.report())
    result.policy.save(args.output)
    print(f"Policy written to {args.output}" + ("" if result.met else " (cloud-only)"))
    if args.curve:
        result.curve.save(args.curve)
        print(f"Curve written to {args.curve}")
    if args.plot:
        result.curve.plot(args.plot, title=f"{Path(args.data).name}: {result.target}")
        print(f"Plot written to {args.plot}")


_CALIBRATE_HELP = f"""
fit a routing policy (scorer, threshold, early escalation) for one target

Run the local model once per example (or reuse saved records), measure how well each
confidence scorer predicts a right local answer (AUROC, the learned scorer out-of-fold),
choose the scorer and threshold that meet the target, measure the chosen point on folds not
used to fit it, fit early escalation, and write the policy as JSON (it loads with
RoutingPolicy.load and routes in ChatHybrid). When no threshold meets the target, the
policy written sends everything to the cloud, and the report says why.

examples:
  {PROG} calibrate --data rag.jsonl --limit 300 --seed 1 --target-cloud-rate 0.5
      --cloud-accuracy 0.85 --output policy.json --plot curve.png
  {PROG} calibrate --data gsm8k.jsonl --cloud-replay gpt-4-1106-preview --target-accuracy 0.9
      --records answers.jsonl --output policy.json
"""

#: ``calibrate``: fit a routing policy for one target on a labelled dataset.
add_calibrate_command = Command("calibrate", _CALIBRATE_HELP, _add_calibrate_options, run_calibrate)


#: This group's commands, in the order ``langchain-hybrid --help`` lists them.
COMMANDS: list[CommandAdder] = [add_eval_command, add_calibrate_command]
