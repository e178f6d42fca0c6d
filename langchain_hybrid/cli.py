"""The ``langchain-hybrid`` command line.

Each command is one function that adds its sub-parser and sets ``handler`` (a function of
the parsed arguments returning the exit status); :data:`COMMANDS` lists them, so a new
command (``calibrate``, ``chat``, ``serve``, ``models``) is one more function appended
there. Errors print one line on stderr and exit non-zero, never a stack trace.

Example:
    >>> parser = build_parser()
    >>> args = parser.parse_args(["eval", "--data", "qa.jsonl", "--cloud-accuracy", "0.9"])
    >>> args.command, args.cloud_accuracy, args.prices
    ('eval', 0.9, 'default')
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_hybrid.errors import LangChainHybridError

__all__ = [
    "COMMANDS",
    "add_calibrate_command",
    "add_chat_command",
    "add_eval_command",
    "add_models_command",
    "add_serve_command",
    "build_parser",
    "describe_decision",
    "main",
]

PROG = "langchain-hybrid"

#: Adds one command's sub-parser to the sub-parsers action it is given.
CommandAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

#: Default local token limits: short and RAG answers, maths (step-by-step) answers.
SHORT_MAX_TOKENS = 32
MATH_MAX_TOKENS = 160


class CommandError(LangChainHybridError):
    """A command cannot run as asked; the message says what to change."""


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number within [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number within [0, 1], got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


# --------------------------------------------------------------------------- eval


def _add_data_arguments(
    p: argparse.ArgumentParser, *, data_help: str, limit_help: str, seed_note: str = ""
) -> None:
    """Add the dataset options every command that reads labelled data takes."""
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="FILE", help=data_help)
    data.add_argument("--limit", type=_positive_int, metavar="N", help=limit_help)
    data.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="with --limit, a random sample of N rows drawn with seed S (default: first N)"
        + seed_note,
    )


def _add_engine_arguments(group: Any) -> None:
    """Add the local engine's precision options (``dtype``, ``quantization``)."""
    from langchain_hybrid._models import QUANTIZATIONS

    group.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights dtype of the local model (default: float32 on the CPU)",
    )
    group.add_argument(
        "--quantization",
        choices=list(QUANTIZATIONS),
        help="lower-precision weights: int8 (CPU or GPU; the fast CPU setting), dynamic-int8 "
        "(CPU), 4bit (CUDA). Recalibrate the threshold for the setting you deploy",
    )


def _engine_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``ChatTransformers`` precision settings given on the command line."""
    return {"dtype": args.dtype, "quantization": args.quantization}


def _refuse_local_options_with(factory_flag: str, args: argparse.Namespace) -> None:
    """Refuse options of the built-in local model next to a factory, which would ignore them."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("local_model", "dtype", "quantization")
        if getattr(args, name) is not None
    ]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise CommandError(
            f"{', '.join(given)} {verb} to the built-in local model, but {factory_flag} "
            f"builds its own: set it in the factory, or drop {factory_flag}"
        )


def _add_local_arguments(
    p: argparse.ArgumentParser, *, factory_help: str, max_tokens_note: str = ""
) -> None:
    """Add the local-model options (which model, how it runs, saved answers)."""
    local = p.add_argument_group("local model")
    local.add_argument(
        "--local-model",
        metavar="ID",
        help="Hugging Face model id or local path (default: the embedded SmolLM2-135M-Instruct)",
    )
    local.add_argument("--local-factory", metavar="MODULE:CALLABLE", help=factory_help)
    local.add_argument(
        "--device", default="cpu", help="device of the local model: cpu, cuda, mps, auto"
    )
    _add_engine_arguments(local)
    local.add_argument(
        "--max-tokens",
        type=_positive_int,
        metavar="T",
        help=f"local token limit (default: {SHORT_MAX_TOKENS} for short and RAG answers, "
        f"{MATH_MAX_TOKENS} when every example is maths)" + max_tokens_note,
    )
    local.add_argument(
        "--top-logprobs",
        type=int,
        default=5,
        metavar="K",
        help="alternatives per token the local model reports, for margin features (default 5)",
    )
    local.add_argument(
        "--batch-size", type=_positive_int, default=8, metavar="N", help="prompts per batch"
    )
    local.add_argument(
        "--records",
        metavar="FILE",
        help="reuse local answers saved with --save-records (examples without one are run)",
    )
    local.add_argument(
        "--save-records", metavar="FILE", help="save the local answers as JSON Lines records"
    )


def _load_examples(args: argparse.Namespace) -> list[Any]:
    """Load the ``--data`` rows, sampled by ``--limit``/``--seed``."""
    from langchain_hybrid.evaluation.datasets import load_dataset

    if args.seed is not None and args.limit is None:
        raise CommandError("--seed samples rows, so it needs --limit N")
    return load_dataset(args.data, limit=args.limit, seed=args.seed)


def add_eval_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval``: the Cloud-only / Local-only / Hybrid table on a labelled dataset."""
    p = subparsers.add_parser(
        "eval",
        help="compare Cloud-only, Local-only and Hybrid on a labelled dataset",
        description=textwrap.fill(
            "Run the local model once per example, get the cloud's answers (live, replayed "
            "from the dataset, or an assumed accuracy), replay the routing policy on every "
            "local answer and print the Cloud-only / Local-only / Hybrid table: accuracy "
            "with 95% confidence interval, cloud share, API cost, latency, cost avoided, "
            "and each confidence scorer's AUROC.",
            width=78,
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} eval --data gsm8k.jsonl --cloud-replay gpt-4-1106-preview "
            "--prices paper-gpt4\n"
            f"  {PROG} eval --data nq.jsonl --limit 200 --seed 1 --cloud-accuracy 0.9 "
            "--output report.json\n"
            f"  {PROG} eval --data rag.jsonl --cloud-base-url http://127.0.0.1:8000/v1 "
            "--cloud-model my-model"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(
        p,
        data_help="JSON Lines dataset: rows with 'question' and 'answer' (list) or 'answers' "
        "(list, optional 'context' and 'answerable'), or maths rows with 'answer' a number "
        "and 'recorded' cloud responses",
        limit_help="evaluate N examples",
    )
    _add_local_arguments(
        p,
        factory_help="a Python callable returning the local chat model instead (e.g. a served "
        "model through ChatOpenAI with logprobs=True)",
    )

    cloud = p.add_argument_group("cloud (choose one source)")
    source = cloud.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--cloud-base-url",
        metavar="URL",
        help="a live OpenAI-compatible endpoint (needs --cloud-model; the key is read from "
        "OPENAI_API_KEY)",
    )
    source.add_argument(
        "--cloud-replay",
        metavar="MODEL",
        help="replay the responses recorded in the dataset for MODEL (e.g. gpt-4-1106-preview)",
    )
    source.add_argument(
        "--cloud-accuracy",
        type=_probability,
        metavar="P",
        help="assume the cloud answers correctly with probability P (labelled an assumption)",
    )
    cloud.add_argument(
        "--cloud-model",
        metavar="M",
        help="the live cloud model; with --cloud-accuracy, the name prices use (default gpt-4)",
    )
    cloud.add_argument(
        "--cloud-latency",
        type=_seconds,
        metavar="S",
        help="assumed seconds per cloud call when latency was not recorded",
    )

    out = p.add_argument_group("routing, prices and output")
    out.add_argument(
        "--policy", metavar="FILE", help="routing policy JSON (default: the default policy)"
    )
    out.add_argument(
        "--prices",
        default="default",
        metavar="TABLE",
        help="'default' (OpenAI list prices), 'paper-gpt4' (the paper's GPT-4 prices, $0.03 "
        "/ $0.06 per 1k prompt / completion tokens, for the cloud model) or a JSON file of "
        "{model: {input_per_1m, output_per_1m}}",
    )
    out.add_argument("--output", metavar="FILE", help="write the report as JSON")
    out.add_argument(
        "--no-progress", action="store_true", help="no progress bars (off when not a terminal)"
    )
    p.set_defaults(handler=run_eval)


def _load_factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CommandError(f"--local-factory must be MODULE:CALLABLE, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise CommandError(f"cannot load --local-factory {spec!r}: {e}") from e
    return factory()


def _prices(spec: str, cloud_model: str) -> Any:
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


def _cloud_source(args: argparse.Namespace) -> Any:
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

    examples = _load_examples(args)
    policy = RoutingPolicy.load(args.policy) if args.policy else RoutingPolicy()
    source = _cloud_source(args)
    prices = _prices(args.prices, source.model)
    max_tokens = _default_max_tokens(args, examples)
    records = load_records(args.records) if args.records else None
    known = {r.example_id for r in records or ()}
    local: Any = None
    if any(ex.id not in known for ex in examples):
        local = _local_model(args)
    progress = False if args.no_progress else None
    report = evaluate(
        examples,
        local=local,
        policy=policy,
        cloud_source=source,
        prices=prices,
        max_tokens=max_tokens,
        records=records,
        batch_size=args.batch_size,
        progress=progress,
        dataset=Path(args.data).name,
    )
    if args.save_records:
        save_records(args.save_records, report.records)
    print(report.table())
    if args.output:
        report.save(args.output)
        print(f"Report written to {args.output}")
    return 0


# --------------------------------------------------------------------------- calibrate


def add_calibrate_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``calibrate``: fit a routing policy for one target on a labelled dataset."""
    p = subparsers.add_parser(
        "calibrate",
        help="fit a routing policy (scorer, threshold, early escalation) for one target",
        description=textwrap.fill(
            "Run the local model once per example (or reuse saved records), measure how "
            "well each confidence scorer predicts a right local answer (AUROC, the learned "
            "scorer out-of-fold), choose the scorer and threshold that meet the target, "
            "measure the chosen point on folds not used to fit it, fit early escalation, "
            "and write the policy as JSON (it loads with RoutingPolicy.load and routes in "
            "ChatHybrid). When no threshold meets the target, the policy written sends "
            "everything to the cloud, and the report says why.",
            width=78,
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} calibrate --data rag.jsonl --limit 300 --seed 1 --target-cloud-rate 0.5 "
            "--cloud-accuracy 0.85 --output policy.json --plot curve.png\n"
            f"  {PROG} calibrate --data gsm8k.jsonl --cloud-replay gpt-4-1106-preview "
            "--target-accuracy 0.9 --records answers.jsonl --output policy.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_arguments(
        p,
        data_help="JSON Lines dataset (the shapes 'eval' reads)",
        limit_help="calibrate on N examples",
        seed_note="; also the seed of the cross-validation folds",
    )

    target = p.add_argument_group("target (choose one)")
    which = target.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--target-cloud-rate",
        type=_probability,
        metavar="R",
        help="send this share of requests to the cloud (e.g. 0.5)",
    )
    which.add_argument(
        "--target-accuracy",
        type=_probability,
        metavar="A",
        help="the hybrid's expected accuracy (e.g. one point below cloud-only's)",
    )
    which.add_argument(
        "--max-cost",
        type=_non_negative,
        metavar="C",
        help="the expected API cost per query in USD (from --prices)",
    )
    target.add_argument(
        "--min-local-accuracy",
        type=_probability,
        default=0.5,
        metavar="P",
        help="with --target-cloud-rate or --max-cost, the answers kept local must be right "
        "at least this often, else the target is not met (default 0.5)",
    )
    target.add_argument(
        "--folds",
        type=_positive_int,
        default=5,
        metavar="K",
        help="cross-validation folds (default 5)",
    )

    _add_local_arguments(
        p,
        factory_help="a Python callable returning the local chat model instead",
        max_tokens_note="; use the limit you will deploy with",
    )

    cloud = p.add_argument_group("cloud (choose one source)")
    source = cloud.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--cloud-replay",
        metavar="MODEL",
        help="the cloud's correctness from the responses recorded in the dataset for MODEL",
    )
    source.add_argument(
        "--cloud-accuracy",
        type=_probability,
        metavar="P",
        help="assume the cloud answers correctly with probability P (written into the "
        "policy's fitted_on as an assumption)",
    )
    cloud.add_argument(
        "--cloud-model",
        metavar="M",
        help="with --cloud-accuracy, the cloud model prices use (default gpt-4o)",
    )
    cloud.add_argument(
        "--prices",
        default="default",
        metavar="TABLE",
        help="'default', 'paper-gpt4' or a JSON price file (as for 'eval')",
    )

    out = p.add_argument_group("output")
    out.add_argument("--output", required=True, metavar="FILE", help="write the policy as JSON")
    out.add_argument("--plot", metavar="FILE", help="draw the trade-off curve to a PNG")
    out.add_argument("--curve", metavar="FILE", help="write the trade-off curve as JSON")
    out.add_argument(
        "--no-progress", action="store_true", help="no progress bars (off when not a terminal)"
    )
    p.set_defaults(handler=run_calibrate)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _local_model(args: argparse.Namespace) -> Any:
    """Return the local tier the command runs: ``--local-factory`` or ``ChatTransformers``."""
    if args.local_factory:
        _refuse_local_options_with("--local-factory", args)
        return _load_factory(args.local_factory)
    from langchain_hybrid.chat_models.transformers import ChatTransformers

    return ChatTransformers(
        model=args.local_model,
        device=args.device,
        top_logprobs=args.top_logprobs,
        **_engine_settings(args),
    )


def _default_max_tokens(args: argparse.Namespace, examples: Sequence[Any]) -> int:
    if args.max_tokens:
        return int(args.max_tokens)
    return MATH_MAX_TOKENS if all(ex.task == "math" for ex in examples) else SHORT_MAX_TOKENS


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``calibrate`` with parsed arguments; returns the exit status.

    A target that cannot be met is not an error: the cloud-only policy is written, the
    report says why, and the status is 0.
    """
    import warnings

    from langchain_hybrid.calibration import CloudOutcomes, calibrate
    from langchain_hybrid.evaluation.collect import collect_local
    from langchain_hybrid.evaluation.records import load_records, save_records

    if args.cloud_model and args.cloud_replay:
        raise CommandError("--cloud-model goes with --cloud-accuracy (replay names its model)")
    examples = _load_examples(args)
    if args.cloud_replay:
        cloud = CloudOutcomes.replayed(examples, args.cloud_replay)
        missing = [ex.id for ex in examples if ex.id not in cloud.correct]
        if missing:
            raise CommandError(
                f"{len(missing)} examples have no graded answer of {args.cloud_replay!r} "
                f"(first: {missing[0]!r}); use --cloud-accuracy, or data with recorded answers"
            )
    else:
        cloud = CloudOutcomes.assumed(args.cloud_accuracy, model=args.cloud_model or "gpt-4o")
    prices = _prices(args.prices, cloud.model)
    max_tokens = _default_max_tokens(args, examples)
    by_id = {r.example_id: r for r in (load_records(args.records) if args.records else ())}
    missing_examples = [ex for ex in examples if ex.id not in by_id]
    progress = False if args.no_progress else None
    if args.records:
        print(f"reused {len(examples) - len(missing_examples)} saved local answers")
        limits = {by_id[ex.id].max_tokens for ex in examples if ex.id in by_id} - {max_tokens}
        if limits:
            print(f"note: saved records were collected with max_tokens {sorted(limits)}")
    if missing_examples:
        collected = collect_local(
            missing_examples,
            _local_model(args),
            max_tokens=max_tokens,
            batch_size=args.batch_size,
            progress=progress,
        )
        by_id.update((r.example_id, r) for r in collected)
    records = [by_id[ex.id] for ex in examples]
    if args.save_records:
        save_records(args.save_records, records)
    quiet = logging.getLogger("langchain_hybrid.calibration")
    was_disabled, quiet.disabled = quiet.disabled, True  # the report says it in full
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = calibrate(
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
    print(result.report())
    result.policy.save(args.output)
    print(f"Policy written to {args.output}" + ("" if result.met else " (cloud-only)"))
    if args.curve:
        result.curve.save(args.curve)
        print(f"Curve written to {args.curve}")
    if args.plot:
        result.curve.plot(args.plot, title=f"{Path(args.data).name}: {result.target}")
        print(f"Plot written to {args.plot}")
    return 0


# --------------------------------------------------------------------------- chat, serve


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options that choose the model a command answers with (``chat``, ``serve``)."""
    g = p.add_argument_group("model (default: ChatHybrid of the embedded model and gpt-4o)")
    g.add_argument(
        "--local-model",
        metavar="ID",
        help="Hugging Face model id or local path (default: the embedded SmolLM2-135M-Instruct)",
    )
    g.add_argument("--device", default="cpu", help="device of the local model: cpu, cuda, auto")
    _add_engine_arguments(g)
    g.add_argument(
        "--max-tokens",
        type=_positive_int,
        default=256,
        metavar="T",
        help="local token limit per answer (default 256)",
    )
    g.add_argument(
        "--top-logprobs",
        type=int,
        default=0,
        metavar="K",
        help="alternatives per token the local model reports (default 0; a policy that reads "
        "the top-1/top-2 margin asks for what it needs)",
    )
    g.add_argument("--policy", metavar="FILE", help="routing policy JSON (from calibrate)")
    g.add_argument(
        "--cloud-model",
        default="gpt-4o",
        metavar="M",
        help="the cloud model (default gpt-4o); the key is OPENAI_API_KEY and the endpoint "
        "OPENAI_BASE_URL (any OpenAI-compatible one)",
    )
    g.add_argument(
        "--local-only",
        action="store_true",
        help="answer with the local model alone: no routing, nothing leaves the machine "
        "(with serve: a local tier for other routers). Needed when OPENAI_API_KEY is unset",
    )
    g.add_argument(
        "--factory",
        metavar="MODULE:CALLABLE",
        help="a Python callable returning the chat model to use instead (any BaseChatModel)",
    )


def _chat_model(args: argparse.Namespace) -> Any:
    """Return the chat model of ``chat`` and ``serve``: ``--factory``, local-only or hybrid.

    Without ``OPENAI_API_KEY`` the command refuses to start unless ``--local-only`` says
    that answering locally alone is intended.
    """
    if args.factory:
        _refuse_local_options_with("--factory", args)
        return _load_factory(args.factory)
    if not args.local_only and not os.environ.get("OPENAI_API_KEY"):
        raise CommandError(
            "OPENAI_API_KEY is not set, so the cloud tier cannot answer. Set it (and "
            "OPENAI_BASE_URL for another OpenAI-compatible endpoint), or pass --local-only "
            "to answer with the local model alone (nothing escalates)"
        )
    from langchain_hybrid.chat_models.transformers import ChatTransformers

    local = ChatTransformers(
        model=args.local_model,
        device=args.device,
        max_tokens=args.max_tokens,
        top_logprobs=args.top_logprobs,
        **_engine_settings(args),
    )
    if args.local_only:
        print(
            f"{PROG}: WARNING: --local-only: every answer comes from the local model "
            f"{local.model_name}; nothing is routed or escalated.",
            file=sys.stderr,
        )
        return local
    from langchain_openai import ChatOpenAI

    from langchain_hybrid.chat_models.hybrid import ChatHybrid
    from langchain_hybrid.routing.policy import RoutingPolicy

    policy = RoutingPolicy.load(args.policy) if args.policy else RoutingPolicy()
    return ChatHybrid(local=local, cloud=ChatOpenAI(model=args.cloud_model), policy=policy)


def describe_decision(decision: Any) -> str:
    """Return the one line ``chat`` prints under each answer.

    Example:
        >>> describe_decision({"tier": "cloud", "reason": "low_confidence",
        ...                    "confidence": -1.234, "threshold": -0.6, "degraded": False})
        '[cloud | low_confidence | confidence -1.23 < threshold -0.60]'
        >>> describe_decision(None)
        '[local model | not routed]'
    """
    if not isinstance(decision, dict):
        return "[local model | not routed]"
    parts = [str(decision.get("tier")), str(decision.get("reason"))]
    confidence, threshold = decision.get("confidence"), decision.get("threshold")
    if confidence is not None and threshold is not None:
        sign = ">=" if confidence >= threshold else "<"
        parts.append(f"confidence {confidence:.2f} {sign} threshold {threshold:.2f}")
    elif confidence is not None:
        parts.append(f"confidence {confidence:.2f}")
    if decision.get("degraded"):
        parts.append("degraded: the cloud failed")
    return "[" + " | ".join(parts) + "]"


def add_chat_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``chat``: an interactive conversation that shows how each answer was routed."""
    p = subparsers.add_parser(
        "chat",
        help="chat in the terminal; each answer shows its tier, reason and confidence",
        description=textwrap.fill(
            "Talk to ChatHybrid in the terminal. Each line you type is sent with the "
            "conversation so far; the answer streams as it arrives, followed by how it was "
            "routed: the tier, the reason and the confidence against the threshold. "
            "Type /reset to start over and /quit (or Ctrl-D) to leave. Lines are read "
            "from standard input, so a file or pipe works too.",
            width=78,
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} chat\n"
            f"  {PROG} chat --policy policy.json --cloud-model gpt-4o-mini\n"
            f"  echo 'What is the capital of France?' | {PROG} chat --local-only"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_arguments(p)
    p.set_defaults(handler=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    """Run ``chat`` with parsed arguments; returns the exit status."""
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

    model = _chat_model(args)
    interactive = sys.stdin.isatty()
    if interactive:
        print("langchain-hybrid chat: /reset starts over, /quit leaves.")
    history: list[BaseMessage] = []
    while True:
        if interactive:
            try:
                line = input("you> ")
            except EOFError:
                print()
                break
        else:
            raw = sys.stdin.readline()
            if not raw:
                break
            line = raw.rstrip("\n")
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history.clear()
            continue
        history.append(HumanMessage(text))
        whole: Any = None
        try:
            for piece in model.stream(history):
                print(piece.text, end="", flush=True)
                whole = piece if whole is None else whole + piece
        except LangChainHybridError as e:
            history.pop()
            print(f"\n{PROG} chat: error: {e}", file=sys.stderr)
            continue
        print()
        answer = whole.text if whole is not None else ""
        print(describe_decision(whole.response_metadata.get("routing") if whole else None))
        history.append(AIMessage(answer))
    return 0


def add_serve_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``: the OpenAI-compatible HTTP server."""
    p = subparsers.add_parser(
        "serve",
        help="serve ChatHybrid (or the local model alone) as an OpenAI-compatible API",
        description=textwrap.fill(
            "Start an OpenAI-compatible HTTP server: POST /v1/chat/completions (JSON and "
            "streaming), GET /v1/models, GET /healthz and GET /metrics (Prometheus). Any "
            "OpenAI client works against it; each answer carries its routing decision in "
            "the 'hybrid' field and the x-hybrid-tier, x-hybrid-reason and "
            "x-hybrid-confidence headers. Concurrent requests are batched on the local "
            "model; past --max-concurrency running and --max-queue waiting requests the "
            "server answers 429 with Retry-After. With --local-only it serves the local "
            "model alone, as a local tier for other routers. Needs the 'server' extra.",
            width=78,
        ),
        epilog=(
            "examples:\n"
            f"  OPENAI_API_KEY=sk-... {PROG} serve --port 8000 --policy policy.json\n"
            f"  {PROG} serve --local-only --model-name smollm2 --port 8001\n"
            f"  LANGCHAIN_HYBRID_API_KEYS=key1,key2 {PROG} serve --host 0.0.0.0"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    net = p.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    net.add_argument(
        "--model-name",
        default="langchain-hybrid",
        metavar="NAME",
        help="the model id clients send and /v1/models lists (default langchain-hybrid)",
    )
    net.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept 'Authorization: Bearer KEY' (repeatable; also LANGCHAIN_HYBRID_API_KEYS, "
        "comma-separated); without any key the server needs none",
    )
    net.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="requests answered at once, the largest local batch (default 16)",
    )
    net.add_argument(
        "--max-queue",
        type=int,
        default=64,
        metavar="N",
        help="requests waiting for a slot before 429 (default 64)",
    )
    net.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=1_000_000,
        metavar="B",
        help="largest request body (default 1000000; 413 beyond)",
    )
    net.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    _add_model_arguments(p)
    p.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Run ``serve`` with parsed arguments until interrupted; returns the exit status."""
    try:
        from langchain_hybrid.server import ServerSettings, create_app, serve
    except ImportError as e:
        raise CommandError(str(e)) from e
    settings = ServerSettings.from_env(
        model_name=args.model_name,
        api_keys=args.api_key,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
    )
    model = _chat_model(args)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.auth_required:
        print(
            f"{PROG}: WARNING: listening on {args.host} without API keys: anyone who can "
            "reach it can spend your cloud budget (set --api-key or LANGCHAIN_HYBRID_API_KEYS)",
            file=sys.stderr,
        )
    print(f"{PROG}: serving {settings.model_name!r} at http://{args.host}:{args.port}/v1")
    sys.stdout.flush()
    serve(create_app(model, settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


# --------------------------------------------------------------------------- models


def add_models_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``models``: the converted local models in the cache."""
    p = subparsers.add_parser(
        "models",
        help="list the local models converted and cached, their sizes and where they are",
        description=textwrap.fill(
            "List the local models in the cache (converted once from their GGUF file to "
            "safetensors on first use), with their size on disk, folder and source. The "
            "cache is $LANGCHAIN_HYBRID_CACHE, else $XDG_CACHE_HOME/langchain-hybrid "
            "(~/.cache/langchain-hybrid).",
            width=78,
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run_models)


def run_models(args: argparse.Namespace) -> int:
    """Run ``models`` with parsed arguments; returns the exit status."""
    from langchain_hybrid._models import cache_dir, cached_models

    models = cached_models()
    if args.json:
        rows = [
            {"name": m.name, "path": str(m.path), "size_bytes": m.size_bytes, "source": m.source}
            for m in models
        ]
        print(json.dumps({"cache": str(cache_dir()), "models": rows}, indent=2))
        return 0
    print(f"cache: {cache_dir()}")
    if not models:
        print("no models cached yet (the first ChatTransformers() converts the embedded model)")
        return 0
    for m in models:
        print(f"{m.name}  {m.size_bytes / 1e6:.0f} MB  {m.path}  (from {m.source})")
    total = sum(m.size_bytes for m in models)
    print(f"{len(models)} model(s), {total / 1e6:.0f} MB in all")
    return 0


# --------------------------------------------------------------------------- entry point

#: The commands, one function each (see the module docstring).
COMMANDS: list[CommandAdder] = [
    add_chat_command,
    add_serve_command,
    add_models_command,
    add_eval_command,
    add_calibrate_command,
]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every command of :data:`COMMANDS`.

    Example:
        >>> "eval" in build_parser().format_help()
        True
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="langchain-hybrid: local-first chat models that escalate to the cloud.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success).

    Example:
        >>> main(["eval", "--data", "missing.jsonl", "--cloud-accuracy", "0.9"])
        1
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except (LangChainHybridError, ValueError) as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"{PROG} {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
    except ImportError as e:
        print(
            f"{PROG} {args.command}: error: {e}; install the extras with "
            "pip install 'langchain-hybrid[eval]'",
            file=sys.stderr,
        )
    except Exception as e:  # the last resort: one line, never a stack trace
        print(f"{PROG} {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
    return 1
