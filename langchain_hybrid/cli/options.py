"""The options several commands share (the local model, the data, progress) and their values.

One function adds each set of options and one reads it back from the parsed arguments, so
every command that builds the built-in local model or reads labelled data takes the same
options with the same meaning. A new option of the local model (say ``--adapter DIR``) is
one ``add_argument`` in :func:`add_model_options`, its ``ChatTransformers`` setting in
:func:`model_settings` and, when a factory would ignore it, its name in
:data:`BUILT_IN_MODEL_OPTIONS`: every command building the local model then takes it.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_model_options(parser.add_argument_group("local model"))
    >>> model_settings(parser.parse_args(["--dtype", "bfloat16"]))
    {'model': None, 'device': 'cpu', 'dtype': 'bfloat16', 'quantization': None, 'adapter': None}
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from langchain_hybrid.cli.base import CommandError

_T = TypeVar("_T", int, float)


def _checked(
    convert: Callable[[str], _T],
    accept: Callable[[_T], bool],
    expected: str,
    *,
    unreadable: str | None = None,
) -> Callable[[str], _T]:
    """Return an argparse ``type`` that converts a value and refuses those out of range.

    Args:
        convert: Reads the text (``int``, ``float``).
        accept: Whether a converted value is allowed.
        expected: What the message says was expected (``"a positive integer"``).
        unreadable: What it says when ``convert`` fails (default: ``expected``).
    """

    def parse(text: str) -> _T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {unreadable or expected}, got {text!r}"
            ) from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected
    return parse


#: An option value within [0, 1] (a rate, an accuracy).
probability = _checked(float, lambda v: 0.0 <= v <= 1.0, "a number within [0, 1]")
#: An option value of 1 or more (a count, a size).
positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
#: An option value of 0 or more (an amount of money).
non_negative = _checked(float, lambda v: v >= 0, "a number >= 0")
#: An option value in seconds, 0 or more.
seconds = _checked(float, lambda v: v >= 0, "seconds >= 0", unreadable="seconds (a number)")

#: The destinations of the options only the built-in local model reads: a factory that
#: builds its own model would ignore them, so they are refused next to one.
BUILT_IN_MODEL_OPTIONS = ("local_model", "dtype", "quantization", "adapter")


def add_model_options(group: argparse._ArgumentGroup) -> None:
    """Add the options that choose the built-in local model and how it runs.

    ``--local-model``, ``--adapter``, ``--device``, ``--dtype`` and ``--quantization``;
    every command that builds the local model takes them, and :func:`model_settings`
    reads them.
    """
    from langchain_hybrid._models import DEFAULT_MODEL_NAME, QUANTIZATIONS

    group.add_argument(
        "--local-model",
        metavar="ID",
        help=f"Hugging Face model id or local path (default: the embedded {DEFAULT_MODEL_NAME})",
    )
    group.add_argument(
        "--adapter",
        metavar="DIR",
        help="a tuned adapter folder (written by 'tune'), merged into the local model; "
        "deploy it with the policy calibrated on it",
    )
    group.add_argument(
        "--device", default="cpu", help="device of the local model: cpu, cuda, mps, auto"
    )
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


def add_generation_options(
    group: argparse._ArgumentGroup,
    *,
    max_tokens: int | None,
    max_tokens_help: str,
    top_logprobs: int,
    top_logprobs_help: str,
) -> None:
    """Add ``--max-tokens`` and ``--top-logprobs``: how much the local model writes and reports.

    Args:
        group: Where the options go.
        max_tokens: The default token limit (None: the command picks one).
        max_tokens_help: The help of ``--max-tokens``, its default included.
        top_logprobs: The default number of alternatives reported per token.
        top_logprobs_help: The help of ``--top-logprobs``, its default included.
    """
    group.add_argument(
        "--max-tokens", type=positive_int, default=max_tokens, metavar="T", help=max_tokens_help
    )
    group.add_argument(
        "--top-logprobs", type=int, default=top_logprobs, metavar="K", help=top_logprobs_help
    )


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``ChatTransformers`` settings the options of :func:`add_model_options` give."""
    return {
        "model": args.local_model,
        "device": args.device,
        "dtype": args.dtype,
        "quantization": args.quantization,
        "adapter": args.adapter,
    }


def build_local_model(args: argparse.Namespace, **settings: Any) -> Any:
    """Return the built-in local model (``ChatTransformers``) the model options choose.

    Args:
        args: Parsed arguments with the options of :func:`add_model_options`.
        **settings: More ``ChatTransformers`` settings (``max_tokens``, ``top_logprobs``).
    """
    from langchain_hybrid.chat_models.transformers import ChatTransformers

    return ChatTransformers(**{**model_settings(args), **settings})


def build_from_factory(args: argparse.Namespace, flag: str) -> Any:
    """Return what the factory that option ``flag`` names (``MODULE:CALLABLE``) returns.

    The built-in model's options (:data:`BUILT_IN_MODEL_OPTIONS`) are refused next to it,
    since the factory builds its own model and would ignore them.

    Raises:
        CommandError: Such options are given, or the factory cannot be loaded.
    """
    given = [
        f"--{name.replace('_', '-')}"
        for name in BUILT_IN_MODEL_OPTIONS
        if getattr(args, name) is not None
    ]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise CommandError(
            f"{', '.join(given)} {verb} to the built-in local model, but {flag} "
            f"builds its own: set it in the factory, or drop {flag}"
        )
    spec: str = getattr(args, flag.removeprefix("--").replace("-", "_"))
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CommandError(f"{flag} must be MODULE:CALLABLE, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise CommandError(f"cannot load {flag} {spec!r}: {e}") from e
    return factory()


def add_data_options(
    parser: argparse.ArgumentParser, *, data_help: str, limit_help: str, seed_note: str = ""
) -> None:
    """Add the ``data`` options (``--data``, ``--limit``, ``--seed``, ``--group-by``).

    Args:
        parser: The command's parser.
        data_help: The help of ``--data`` (which rows the command reads).
        limit_help: The help of ``--limit`` (what the command does with N rows).
        seed_note: Appended to the help of ``--seed`` (what else the seed drives).
    """
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="FILE", help=data_help)
    data.add_argument("--limit", type=positive_int, metavar="N", help=limit_help)
    data.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="with --limit, a random sample of N rows drawn with seed S (default: first N)"
        + seed_note,
    )
    data.add_argument(
        "--group-by",
        metavar="FIELD",
        help="the field naming what rows are not independent of, held out together when "
        "routing figures are validated (default: the row's 'group', else the passage's "
        "article 'title', else the passage; rows with none are groups of their own)",
    )


def load_examples(args: argparse.Namespace) -> list[Any]:
    """Load the ``--data`` rows, sampled by ``--limit`` and ``--seed``.

    Raises:
        CommandError: ``--seed`` without ``--limit``.
    """
    from langchain_hybrid.evaluation.datasets import load_dataset

    if args.seed is not None and args.limit is None:
        raise CommandError("--seed samples rows, so it needs --limit N")
    return load_dataset(args.data, limit=args.limit, seed=args.seed, group_by=args.group_by)


def add_progress_option(group: argparse._ArgumentGroup) -> None:
    """Add ``--no-progress``, which :func:`progress` reads."""
    group.add_argument(
        "--no-progress", action="store_true", help="no progress bars (off when not a terminal)"
    )


def progress(args: argparse.Namespace) -> bool | None:
    """Return the ``progress`` setting of ``--no-progress``: False, or None (bars on a terminal)."""
    return False if args.no_progress else None
