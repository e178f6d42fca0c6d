"""``langchain-hybrid chat``, ``serve`` and ``models``, in-process with fake models."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from langchain_hybrid.cli import main

FACTORY = ["--factory", "tests.support.server_fakes:fake_hybrid"]


def test_help_explains_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command, options in (
        ("chat", ["--policy", "--local-only", "--cloud-model", "/quit"]),
        ("serve", ["--host", "--port", "--api-key", "--max-concurrency", "--max-queue", "429"]),
        ("models", ["--json", "LANGCHAIN_HYBRID_CACHE"]),
    ):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        for option in options:
            assert option in out, (command, option)


def test_chat_streams_answers_and_shows_how_each_was_routed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Capital of France?\nA hard one?\n/quit\nnever\n"))
    assert main(["chat", *FACTORY]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Paris is the capital of France."
    assert re.fullmatch(
        r"\[local \| confident \| confidence -0\.05 >= threshold -0\.60\]", lines[1]
    )
    assert lines[2] == "George Eliot wrote Middlemarch."
    assert lines[3].startswith("[cloud | low_confidence | confidence -3.00 < threshold -0.60")
    assert len(lines) == 4  # /quit ended the session before "never"


def test_chat_and_serve_refuse_to_start_without_a_cloud_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for command in ("chat", "serve"):
        assert main([command]) == 1
        err = capsys.readouterr().err
        assert "OPENAI_API_KEY is not set" in err and "--local-only" in err


def test_models_lists_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LANGCHAIN_HYBRID_CACHE", str(tmp_path))
    assert main(["models"]) == 0
    assert "no models cached yet" in capsys.readouterr().out
    folder = tmp_path / "models" / "SmolLM2-135M-Instruct-0123456789ab"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 2_000_000)
    (folder / ".complete").write_text("/somewhere/SmolLM2.gguf")
    (tmp_path / "models" / ".SmolLM2-half-written").mkdir()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct  2 MB" in out and str(folder) in out
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["models"]
    assert [m["name"] for m in listed] == ["SmolLM2-135M-Instruct"]
    assert listed[0]["size_bytes"] >= 2_000_000


def test_engine_options_reach_the_local_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[dict[str, object]] = []

    class Recorder:
        model_name = "recorded"

        def __init__(self, **kwargs: object) -> None:
            built.append(kwargs)
            raise SystemExit(0)  # built: the command need not go on

    monkeypatch.setattr("langchain_hybrid.chat_models.transformers.ChatTransformers", Recorder)
    for command in ("chat", "serve"):
        with pytest.raises(SystemExit):
            main([command, "--local-only", "--quantization", "int8", "--dtype", "bfloat16"])
    assert [(b["quantization"], b["dtype"]) for b in built] == [("int8", "bfloat16")] * 2
    with pytest.raises(SystemExit):
        main(["chat", "--local-only"])
    assert (built[-1]["quantization"], built[-1]["dtype"]) == (None, None)  # the defaults


def test_engine_options_with_a_factory_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", *FACTORY, "--quantization", "int8"]) == 1
    err = capsys.readouterr().err
    assert "--quantization applies to the built-in local model" in err and "--factory" in err
