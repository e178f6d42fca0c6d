"""A griffe extension for the API pages: ``Example:`` sections render as examples.

The package's docstrings are Google style with singular ``Example:`` headings (doctests run
in the unit lane); griffe's Google parser only knows ``Examples:`` and would render the
doctest as Markdown text. This rewrites the heading before the docstring is parsed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
