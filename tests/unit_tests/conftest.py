"""The unit lane: no network sockets and no model weights (see tests/support/lanes.py)."""

from collections.abc import Iterator

import pytest

from tests.support.lanes import unit_lane


@pytest.fixture(autouse=True)
def _unit_lane() -> Iterator[None]:
    with unit_lane():
        yield
