"""The ``langchain-hybrid`` command line, run in-process with a fake local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_hybrid.cli import build_parser, main

DATA = Path(__file__).parents[2] / "examples" / "data"
GSM8K = str(DATA / "gsm8k_recorded_sample.jsonl")
FAKE = ["--local-factory", "tests.support.eval_fakes:sample_local", "--no-progress"]


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--data",
        "--limit",
        "--seed",
        "--policy",
        "--max-tokens",
        "--cloud-base-url",
        "--cloud-model",
        "--cloud-replay",
        "--cloud-accuracy",
        "--prices",
        "--output",
        "--local-model",
        "--dtype",
        "--quantization",
        "--records",
        "--save-records",
    ):
        assert option in out
    assert "paper-gpt4" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "eval" in capsys.readouterr().out


def test_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "report.json"
    records = tmp_path / "records.jsonl"
    argv = ["eval", "--data", GSM8K, "--cloud-replay", "gpt-4-1106-preview"]
    argv += ["--prices", "paper-gpt4", "--output", str(output), "--save-records", str(records)]
    assert main([*argv, *FAKE]) == 0
    out = capsys.readouterr().out
    for text in ("Cloud-only", "Local-only", "Hybrid", "AUROC", f"Report written to {output}"):
        assert text in out
    report = json.loads(output.read_text())
    assert report["n"] == 40 and report["dataset"] == "gsm8k_recorded_sample.jsonl"
    rows = {row["system"]: row for row in report["rows"]}
    assert rows["cloud-only"]["accuracy"] == 90.0  # GPT-4's recorded 36 of 40
    assert rows["local-only"]["accuracy"] == 2.5  # the fake's one right answer
    assert rows["hybrid"]["cloud_share"] == 95.0  # it kept its two confident answers
    assert report["settings"]["max_tokens"] == 160  # maths default
    assert "The local model is not good enough" in report["verdict"]
    assert len(records.read_text().splitlines()) == 40

    # The saved records replay without a local model and give the same report.
    assert main([*argv[:-2], "--records", str(records), "--no-progress"]) == 0
    again = json.loads(output.read_text())
    assert again["rows"] == report["rows"]


def test_eval_sample_with_assumed_cloud(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "report.json"
    argv = ["eval", "--data", str(DATA / "squad2_rag_sample.jsonl"), "--limit", "10"]
    argv += ["--seed", "2", "--cloud-accuracy", "0.85", "--output", str(output)]
    assert main([*argv, *FAKE]) == 0
    report = json.loads(output.read_text())
    assert report["n"] == 10 and report["settings"]["max_tokens"] == 32
    assert report["rows"][0]["accuracy"] == 85.0
    assert "assumed accuracy 85.0%" in report["cloud_source"]
    assert "assumption" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cloud-replay", "gpt-5"], "no recorded answer from 'gpt-5'"),
        (["--cloud-accuracy", "0.9", "--policy", "{missing}"], "No such file or directory"),
        (["--cloud-accuracy", "0.9", "--prices", "cheap"], "--prices must be 'default'"),
        (["--cloud-base-url", "http://127.0.0.1:9/v1"], "needs --cloud-model"),
        (["--cloud-accuracy", "0.9", "--seed", "1"], "--seed samples rows, so it needs --limit"),
    ],
)
def test_errors_are_one_line_and_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    extra = [e.replace("{missing}", str(tmp_path / "missing.json")) for e in extra]
    assert main(["eval", "--data", GSM8K, *extra, *FAKE]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("langchain-hybrid eval: error: ")
    assert message in err
    assert "Traceback" not in err


def test_a_bad_data_file_names_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "Q?", "answer": ["a"]}\n{"question": "Q2?"}\n')
    assert main(["eval", "--data", str(path), "--cloud-accuracy", "0.9", *FAKE]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: missing field 'answer'" in err and err.count("\n") == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "--data", GSM8K])  # no cloud source
    assert info.value.code == 2
    assert "one of the arguments --cloud-base-url --cloud-replay --cloud-accuracy" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["eval", "--data", GSM8K, "--cloud-accuracy", "1.5"])
    assert "expected a number within [0, 1]" in capsys.readouterr().err


def test_commands_are_one_function_each() -> None:
    parser = build_parser()
    args = parser.parse_args(["eval", "--data", "x.jsonl", "--cloud-replay", "m"])
    assert args.command == "eval" and callable(args.handler)


def test_engine_options_with_a_local_factory_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "eval",
                "--data",
                GSM8K,
                "--cloud-replay",
                "gpt-4-1106-preview",
                *FAKE,
                "--dtype",
                "bfloat16",
                "--quantization",
                "int8",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "--dtype, --quantization apply to the built-in local model" in err
    assert "--local-factory" in err
