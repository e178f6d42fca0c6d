"""pytest setup shared by the whole repository.

The doctests of the ``langchain_hybrid`` package (``--doctest-modules``) belong to
the unit lane: they run without network sockets and without model weights, like
``tests/unit_tests`` (see ``tests/support/lanes.py``). Examples that need weights
or an API key are marked ``# doctest: +SKIP``.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lanes import unit_lane

_PACKAGE = Path(__file__).parent / "langchain_hybrid"


@pytest.fixture(autouse=True)
def _doctests_in_the_unit_lane(request: pytest.FixtureRequest) -> Iterator[None]:
    if isinstance(request.node, pytest.Item) and _PACKAGE in request.node.path.parents:
        with unit_lane():
            yield
    else:
        yield
