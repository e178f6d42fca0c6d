"""What a quiet model load means: the lines a process must not print on stderr."""

from __future__ import annotations

import importlib.util

#: Import-time noise of torchao (imported by transformers whenever it is installed) and
#: torch's note on torchao's enums; none of it concerns a user who did not ask for torchao.
IMPORT_NOISE = ("Failed to load", "torchao", "_pytree.py", "is an Enum subclass")


def assert_quiet(stderr: str) -> None:
    """Fail if ``stderr`` holds loading noise; torchao must be installed for this to mean much."""
    assert importlib.util.find_spec("torchao") is not None, (
        "torchao is not installed: the quiet-load check needs it (the test extra installs it)"
    )
    noisy = [line for line in stderr.splitlines() if any(n in line for n in IMPORT_NOISE)]
    assert noisy == [], noisy
    assert "Loading weights" not in stderr  # no library progress bars either
