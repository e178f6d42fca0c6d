"""pytest setup shared by the whole repository.

The doctests of the ``langchain_hybrid`` package (``--doctest-modules``) belong to
the unit lane: they run without network sockets and without model weights, like
``tests/unit_tests`` (see ``tests/support/lanes.py``). Examples that need weights
or an API key are marked ``# doctest: +SKIP``.
"""

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.lanes import unit_lane

_PACKAGE = Path(__file__).parent / "langchain_hybrid"
_EXAMPLES = Path(__file__).parent / "examples"


@pytest.fixture(autouse=True)
def _doctests_in_the_unit_lane(request: pytest.FixtureRequest) -> Iterator[None]:
    if isinstance(request.node, pytest.Item) and _PACKAGE in request.node.path.parents:
        with unit_lane():
            yield
    else:
        yield


@pytest.fixture
def example() -> Iterator[Callable[[str], ModuleType]]:
    """Import an example script by name: ``example("agent").main(...)``.

    ``examples/`` is on ``sys.path`` while the test runs, so the examples' imports of
    each other (``offline_cloud``, ``scripted_cloud``) work as when they are run.
    """
    sys.path.insert(0, str(_EXAMPLES))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(_EXAMPLES))
