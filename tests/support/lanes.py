"""The guards of the unit lane: no network sockets, no model weights.

``tests/unit_tests`` and the doctests of ``langchain_hybrid`` run inside
:func:`unit_lane` (autouse fixtures in ``tests/unit_tests/conftest.py`` and the
repository's ``conftest.py``); ``tests/integration_tests`` does not.

* Sockets: pytest-socket's ``disable_socket(allow_unix_socket=True)``, as
  ``pytest --disable-socket --allow-unix-socket`` does (Unix sockets stay allowed
  for asyncio's event loop). A test that opens one fails with
  ``pytest_socket.SocketBlockedError``.
* Weights: every ``load_model`` of the package (the one way ``ChatTransformers``
  gets a model) and ``convert_gguf`` raise :class:`ModelWeightsInUnitLaneError`;
  the test also fails at teardown, so the error cannot be swallowed by code that
  catches exceptions (a hybrid router falling back to its cloud tier, say).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pytest_socket import disable_socket, enable_socket

from langchain_hybrid import _models

__all__ = ["ModelWeightsInUnitLaneError", "no_model_weights", "no_sockets", "unit_lane"]

_HOW_TO_FIX = (
    "Unit tests run without model weights. Use a fake local tier "
    "(tests.support.fake_chat.FakeLocalChatModel, or ChatOpenAI with "
    "tests.support.openai_mock.MockOpenAI), or move the test to tests/integration_tests, "
    "where the `local_llm` fixture holds the embedded model, loaded once per session; "
    "mark a docstring example that needs the model `# doctest: +SKIP`."
)


class ModelWeightsInUnitLaneError(RuntimeError):
    """A unit test (or doctest) tried to load model weights."""


@contextmanager
def no_sockets() -> Iterator[None]:
    """Block network sockets (Unix sockets stay allowed) until the block ends."""
    disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        enable_socket()


@contextmanager
def no_model_weights() -> Iterator[list[str]]:
    """Make every way into model weights raise; yields the list of attempts."""
    attempts: list[str] = []
    originals = {"load_model": _models.load_model, "convert_gguf": _models.convert_gguf}

    def guard(name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            call = f"langchain_hybrid._models.{name}({', '.join(map(repr, args))})"
            attempts.append(call)
            raise ModelWeightsInUnitLaneError(f"{call} in the unit lane. {_HOW_TO_FIX}")

        return refuse

    with pytest.MonkeyPatch.context() as mp:
        # Every module of the package that imported these functions by name.
        for module_name, module in list(sys.modules.items()):
            if module is None or not module_name.startswith("langchain_hybrid"):
                continue
            for name, original in originals.items():
                if getattr(module, name, None) is original:
                    mp.setattr(module, name, guard(name))
        yield attempts


@contextmanager
def unit_lane() -> Iterator[None]:
    """Run the block as a unit test: no sockets, no weights (fails loudly on an attempt)."""
    with no_sockets(), no_model_weights() as attempts:
        yield
    if attempts:
        pytest.fail(
            f"loaded model weights in the unit lane: {'; '.join(attempts)}. {_HOW_TO_FIX}",
            pytrace=False,
        )
