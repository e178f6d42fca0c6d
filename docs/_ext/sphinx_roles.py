"""A griffe extension for the API pages: Sphinx cross-reference roles render as links.

The package's docstrings name other objects with Sphinx roles (``:class:`~pkg.Name```,
``:meth:`to_dict```), which the IDE and ``help()`` read well and mkdocstrings would print
literally. After the package is loaded, each role becomes an mkdocs-autorefs reference
(``<autoref identifier="full.path" optional>``) resolved in the scope of the object whose
docstring holds it: a link where the target is on the site, plain code where it is not
(``optional``), never the role's markup.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<kind>class|func|meth|attr|data|mod|exc|obj|const):"
    r"`(?P<tilde>~?)(?P<text>[^`<]+?)(?:\s*<(?P<target>[^`>]+)>)?`"
)


def _resolved(obj: griffe.Object, path: str) -> str:
    """Return the full path ``path`` names in the scope of ``obj`` (as written if unknown)."""
    head, _, rest = path.partition(".")
    try:
        full = obj.resolve(head)
    except (griffe.NameResolutionError, AttributeError):
        return path
    return f"{full}.{rest}" if rest else full


def rewrite(text: str, obj: griffe.Object) -> str:
    """Replace every Sphinx role in ``text`` by an optional autorefs reference."""

    def link(match: re.Match[str]) -> str:
        written = (match["target"] or match["text"]).strip().removesuffix("()")
        if match["target"]:
            title = match["text"].strip()
        else:
            title = written.rsplit(".", 1)[-1] if match["tilde"] else written
            if match["kind"] in ("func", "meth"):
                title += "()"
        identifier = _resolved(obj, written)
        return (
            f'<autoref identifier="{html.escape(identifier)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>"
        )

    return _ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)  # type: ignore[arg-type]
