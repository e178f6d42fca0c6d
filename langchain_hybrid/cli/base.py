"""What every command module of the command line shares: its name, errors and :class:`Command`."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from langchain_hybrid.errors import LangChainHybridError

PROG = "langchain-hybrid"

#: The sub-parsers action of the ``langchain-hybrid`` parser, which each command is added to.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Adds one command's sub-parser to the sub-parsers action it is given.
CommandAdder = Callable[[Subparsers], None]


class CommandError(LangChainHybridError):
    """A command cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Command:
    r"""One command: its name, its help text, its options and its runner.

    Calling it with the sub-parsers action adds the command's sub-parser (it is a
    :data:`CommandAdder`); the parsed arguments' ``handler`` is then :attr:`run`.

    :attr:`text` is written as the help shows it: the one line ``langchain-hybrid --help``
    shows, a blank line, the description (refilled to 78 columns, so its line breaks do not
    matter), and optionally a last paragraph ``examples:`` of whole command lines indented by
    two spaces, each shown on one line (a line indented further continues the one above).

    Example:
        >>> hello = Command(
        ...     "hello",
        ...     "greet someone\n\nSay hello to\nsomeone.\n\nexamples:\n  hello --name you",
        ...     lambda p: p.add_argument("--name", default="world"),
        ...     lambda args: print(f"hello {args.name}") or 0,
        ... )
        >>> hello.help, hello.description, hello.epilog
        ('greet someone', 'Say hello to someone.', 'examples:\n  hello --name you')
        >>> parser = argparse.ArgumentParser(prog=PROG)
        >>> hello(parser.add_subparsers())
        >>> args = parser.parse_args(["hello"])
        >>> args.handler(args)
        hello world
        0
    """

    name: str
    """The command (``eval``, ``serve``...)."""

    text: str
    """Its help: the one-line summary, the description and the examples (see above)."""

    add_options: Callable[[argparse.ArgumentParser], object]
    """Adds the command's options to its sub-parser."""

    run: Callable[[argparse.Namespace], int]
    """Runs the command with the parsed arguments; returns the exit status."""

    @property
    def _paragraphs(self) -> list[str]:
        return textwrap.dedent(self.text).strip().split("\n\n")

    @property
    def help(self) -> str:
        """The one line ``langchain-hybrid --help`` shows for the command."""
        return " ".join(self._paragraphs[0].split())

    @property
    def description(self) -> str:
        """What the command does, filled to 78 columns (the top of its ``--help``)."""
        paragraphs = [p for p in self._paragraphs[1:] if not p.startswith("examples:")]
        return "\n\n".join(textwrap.fill(" ".join(p.split()), width=78) for p in paragraphs)

    @property
    def epilog(self) -> str | None:
        """The ``examples:`` paragraph, one command line each (the end of its ``--help``)."""
        found = [p for p in self._paragraphs[1:] if p.startswith("examples:")]
        if not found:
            return None
        lines: list[str] = []
        for line in found[0].splitlines():
            if line.startswith("   "):  # continues the example above
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        return "\n".join(lines)

    def __call__(self, subparsers: Subparsers) -> None:
        """Add the command's sub-parser, with its options, to ``subparsers``."""
        parser = subparsers.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            epilog=self.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_options(parser)
        parser.set_defaults(handler=self.run)
