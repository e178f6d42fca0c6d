"""The embedded default model is converted once to the cache and reused by later processes.

Converting loads the weights, so this lives in the integration lane.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_hybrid import _models


def test_conversion_happens_once_and_is_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(_models.CACHE_ENV_VAR, str(tmp_path))
    gguf = _models.embedded_gguf_path()
    folder = _models.convert_gguf(gguf, _models.DEFAULT_MODEL_NAME)
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
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
