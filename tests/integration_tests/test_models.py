"""Loading local models: the embedded default converted once and cached, clear errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_hybrid import _models
from langchain_hybrid.errors import ModelNotAvailableError


def test_unknown_model_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="Could not load local model"):
        _models.load_model(_models.ModelSpec(model=str(tmp_path / "no-such-model")))
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        _models.load_model(_models.ModelSpec(model=str(tmp_path / "missing.gguf")))


def test_conversion_happens_once_and_is_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(_models.CACHE_ENV_VAR, str(tmp_path))
    gguf = _models.embedded_gguf_path()
    folder = _models.convert_gguf(gguf, _models.DEFAULT_MODEL_NAME)
    # The first run says what it is doing in one line; no library progress bars.
    err = capfd.readouterr().err
    assert err.startswith("langchain-hybrid: converting SmolLM2-135M-Instruct to safetensors")
    assert err.count("\n") == 1 and " done in " in err, err
    assert "Loading weights" not in err and "Writing model shards" not in err
    assert folder.parent == tmp_path / "models"
    assert (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    # No half-written staging folders are left behind.
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]

    # A new process loads from the cache without converting again.
    code = (
        "from langchain_hybrid._models import ModelSpec, load_model;"
        "print(load_model(ModelSpec()).source)"
    )
    env = {**os.environ, _models.CACHE_ENV_VAR: str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == str(folder)
    assert "converting" not in out.stderr
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp

    # The same GGUF file in another virtual environment (or clone) reuses the conversion.
    elsewhere = tmp_path / "other-clone" / ".venv" / gguf.name
    elsewhere.parent.mkdir(parents=True)
    shutil.copyfile(gguf, elsewhere)
    capfd.readouterr()
    assert _models.convert_gguf(elsewhere, _models.DEFAULT_MODEL_NAME) == folder
    assert "converting" not in capfd.readouterr().err
    [entry] = _models.cached_models()
    assert entry.path == folder and entry.name == _models.DEFAULT_MODEL_NAME
    assert entry.source == str(gguf) and entry.size_bytes > 100 * 2**20
