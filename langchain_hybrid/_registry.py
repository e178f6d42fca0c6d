"""A registry of classes by a string class attribute: what lets JSON policy files name them.

Scorers register under their ``name`` and pre-routing rules under their ``type``; both
use one :class:`Registry`, so registration, lookup and the "unknown name" error work
the same way for both.

Example:
    >>> from typing import ClassVar
    >>> class Base:
    ...     kind: ClassVar[str]
    >>> shapes = Registry[Base]("kind", "shape")
    >>> @shapes.register
    ... class Square(Base):
    ...     kind = "square"
    >>> shapes.get("square") is Square, shapes.names()
    (True, ('square',))
    >>> shapes.get("circle")
    Traceback (most recent call last):
    ...
    KeyError: "unknown shape 'circle'; known shapes: square"
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

__all__ = ["Registry"]

_T = TypeVar("_T")
_C = TypeVar("_C", bound=type)


class Registry(Generic[_T]):
    """Classes keyed by the value of one class attribute (``key``)."""

    def __init__(self, key: str, what: str, classes: Iterable[type[_T]] = ()) -> None:
        """Create a registry of ``what`` (for messages), keyed by attribute ``key``.

        ``classes`` are registered at once.
        """
        self.key = key
        self.what = what
        self._classes: dict[str, type[_T]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: _C) -> _C:
        """Register ``cls`` under its ``key`` attribute (a class decorator; idempotent).

        Raises ``ValueError`` when the attribute is missing or empty, or when another class
        already holds the name.
        """
        name = getattr(cls, self.key, None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{cls.__name__} needs a non-empty class attribute {self.key!r}")
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"a {self.what} {self.key} {name!r} is already registered ({existing.__name__})"
            )
        self._classes[name] = cls
        return cls

    def get(self, name: object) -> type[_T]:
        """Return the class registered as ``name``; ``KeyError`` listing the known names."""
        cls = self._classes.get(name) if isinstance(name, str) else None
        if cls is None:
            raise KeyError(f"unknown {self.what} {name!r}; known {self.what}s: {self.listing()}")
        return cls

    def names(self) -> tuple[str, ...]:
        """Return the registered names, sorted."""
        return tuple(sorted(self._classes))

    def listing(self) -> str:
        """Return the registered names as one comma-separated string."""
        return ", ".join(self.names())
