"""The ``langchain-hybrid`` command line: the parser of every command and :func:`main`.

Each command is a :class:`~langchain_hybrid.cli.base.Command` (its name, help text, options
and runner) that adds its sub-parser and sets ``handler``, the function of the parsed
arguments returning the exit status. The commands live in one module per group, which lists
them in its ``COMMANDS`` (:mod:`~langchain_hybrid.cli.serving`: ``chat``, ``serve``,
``models``; :mod:`~langchain_hybrid.cli.evaluation`: ``eval``, ``calibrate``;
:mod:`~langchain_hybrid.cli.tuning`: ``tune``), and the
options several commands share are in :mod:`~langchain_hybrid.cli.options`. A new group is
one more such module, imported and named in :data:`GROUPS` below. Errors print one line on
stderr and exit non-zero, never a stack trace.

Example:
    >>> parser = build_parser()
    >>> args = parser.parse_args(["eval", "--data", "qa.jsonl", "--cloud-accuracy", "0.9"])
    >>> args.command, args.cloud_accuracy, args.prices
    ('eval', 0.9, 'default')
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from langchain_hybrid.cli import evaluation, serving, tuning
from langchain_hybrid.cli.base import PROG, Command, CommandAdder, CommandError
from langchain_hybrid.cli.evaluation import (
    MATH_MAX_TOKENS,
    SHORT_MAX_TOKENS,
    add_calibrate_command,
    add_eval_command,
    run_calibrate,
    run_eval,
)
from langchain_hybrid.cli.serving import (
    add_chat_command,
    add_models_command,
    add_serve_command,
    describe_decision,
    run_chat,
    run_models,
    run_serve,
)
from langchain_hybrid.cli.tuning import add_tune_command, run_tune
from langchain_hybrid.errors import LangChainHybridError

__all__ = [
    "COMMANDS",
    "GROUPS",
    "MATH_MAX_TOKENS",
    "PROG",
    "SHORT_MAX_TOKENS",
    "Command",
    "CommandAdder",
    "CommandError",
    "add_calibrate_command",
    "add_chat_command",
    "add_eval_command",
    "add_models_command",
    "add_serve_command",
    "add_tune_command",
    "build_parser",
    "describe_decision",
    "main",
    "run_calibrate",
    "run_chat",
    "run_eval",
    "run_models",
    "run_serve",
    "run_tune",
]

#: The command groups, one module each, in the order ``--help`` lists their commands.
GROUPS: tuple[ModuleType, ...] = (serving, evaluation, tuning)

#: Every command, one adder each (see the module docstring), in the order of :data:`GROUPS`.
COMMANDS: list[CommandAdder] = [add for group in GROUPS for add in group.COMMANDS]


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
