"""``langchain-hybrid tune``: its options, its errors and its summary, with tune() replaced.

No training runs in the unit lane: ``langchain_hybrid.tuning.tune`` is monkeypatched with
a stand-in that records its arguments and returns a :class:`TuneResult`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from langchain_hybrid import tuning
from langchain_hybrid.cli import build_parser, main
from langchain_hybrid.tuning import AdapterCard, TuneResult, TuningRow


def card(method: str = "lora", **validation: Any) -> AdapterCard:
    best = {
        "step": 30,
        "loss": 1.2345,
        "n_answerable": 60.0,
        "n_unanswerable": 40.0,
        "answerable_accuracy": 0.45,
        "unanswerable_declined": 0.7,
        "balanced_accuracy": 0.575,
        "decline_rate": 0.37,
        **validation,
    }
    return AdapterCard(
        base_model={"name": "SmolLM2-135M-Instruct"},
        method=method,
        hyperparameters={},
        data={"train": {"rows": 900}, "validation": {"rows": 100}},
        training={
            "steps": 30,
            "epochs_done": 2.0,
            "stopped": "completed",
            "best_step": 30,
            "wall_seconds": 600.0,
            "train_seconds": 480.0,
        },
        validation={"best": best},
    )


class FakeTune:
    def __init__(self, stopped: str = "completed", method: str = "lora", **best: Any) -> None:
        self.calls: list[dict[str, Any]] = []
        self.stopped, self.method, self.best = stopped, method, best

    def __call__(self, data: Any, **kwargs: Any) -> TuneResult:
        self.calls.append({"data": data, **kwargs})
        return TuneResult(Path(kwargs["output"]), card(self.method, **self.best), self.stopped)


@pytest.fixture
def fake_tune(monkeypatch: pytest.MonkeyPatch) -> FakeTune:
    fake = FakeTune()
    monkeypatch.setattr(tuning, "tune", fake)
    return fake


def write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def data(tmp_path: Path) -> str:
    return write(
        tmp_path / "escalations.jsonl",
        [
            {"id": f"r{i}", "question": f"Q{i}?", "answer": [f"A{i}"], "team": f"t{i % 3}"}
            for i in range(9)
        ],
    )


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tune", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--data",
        "--validation",
        "--validation-split",
        "--output",
        "--method",
        "--epochs",
        "--max-minutes",
        "--seed",
        "--learning-rate",
        "--lora-rank",
        "--batch-size",
        "--group-by",
        "--local-model",
    ):
        assert option in out
    assert "tune" in build_parser().format_help()


def test_options_become_the_tune_call(
    fake_tune: FakeTune, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = str(tmp_path / "adapter")
    argv = ["tune", "--data", data, "--output", out_dir, "--method", "lora", "--epochs", "2.5"]
    argv += ["--max-minutes", "30", "--seed", "3", "--learning-rate", "3e-4", "--lora-rank", "8"]
    argv += ["--batch-size", "16", "--validation-split", "0.2", "--local-model", "HuggingFaceTB/x"]
    argv += ["--no-progress"]
    assert main(argv) == 0
    [call] = fake_tune.calls
    assert call == {
        "data": data,
        "output": out_dir,
        "method": "lora",
        "epochs": 2.5,
        "max_minutes": 30.0,
        "seed": 3,
        "learning_rate": 3e-4,
        "lora_rank": 8,
        "batch_size": 16,
        "validation_split": 0.2,
        "model": "HuggingFaceTB/x",
        "progress": False,
    }
    out = capsys.readouterr().out
    assert "tuned SmolLM2-135M-Instruct (lora) on 900 rows, validated on 100 rows" in out
    assert "30 steps, 2.0 epochs, 10.0 min (8.0 min training); completed" in out
    assert (
        "best validation (step 30): answerable accuracy 0.450 (n=60), unanswerable declined "
        "0.700 (n=40), balanced accuracy 0.575, decline rate 0.370, loss 1.234" in out
    )
    assert f"adapter written to {out_dir}" in out
    assert f"calibrate --data calibration.jsonl --adapter {out_dir}" in out
    assert "not escalations.jsonl" in out
    assert f"ChatTransformers(adapter='{out_dir}')" in out


def test_defaults_are_tunes_own(fake_tune: FakeTune, data: str, tmp_path: Path) -> None:
    validation = write(tmp_path / "val.jsonl", [{"id": "v", "question": "Q?", "answer": ["A"]}])
    argv = ["tune", "--data", data, "--validation", validation, "--output", str(tmp_path / "o")]
    assert main(argv) == 0
    [call] = fake_tune.calls
    assert call == {
        "data": data,
        "validation": validation,
        "output": str(tmp_path / "o"),
        "progress": None,
    }


def test_group_by_regroups_the_rows(fake_tune: FakeTune, data: str, tmp_path: Path) -> None:
    assert (
        main(["tune", "--data", data, "--output", str(tmp_path / "o"), "--group-by", "team"]) == 0
    )
    rows = fake_tune.calls[0]["data"]
    assert all(isinstance(r, TuningRow) for r in rows)
    assert [r.group for r in rows[:4]] == ["team:t0", "team:t1", "team:t2", "team:t0"]
    assert [r.target for r in rows[:2]] == ["A0", "A1"]


def test_a_full_tune_points_the_next_steps_at_the_model_folder(
    monkeypatch: pytest.MonkeyPatch, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tuning, "tune", FakeTune(method="full", n_unanswerable=0.0))
    out_dir = str(tmp_path / "full")
    assert main(["tune", "--data", data, "--output", out_dir, "--method", "full"]) == 0
    out = capsys.readouterr().out
    assert f"--local-model {out_dir}" in out and f"ChatTransformers(model='{out_dir}')" in out
    assert "unanswerable" not in out  # no unanswerable rows validated: not shown


def test_an_interrupted_tune_says_the_best_weights_are_saved(
    monkeypatch: pytest.MonkeyPatch, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tuning, "tune", FakeTune(stopped="interrupted"))
    assert main(["tune", "--data", data, "--output", str(tmp_path / "o")]) == 0
    assert "interrupted (Ctrl-C): the best validated weights so far are saved" in (
        capsys.readouterr().out
    )


# --------------------------------------------------------------------------- errors


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 1) -> str:
    assert main(argv) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def usage_error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_validation_file_and_split_are_refused_together(
    fake_tune: FakeTune, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tune", "--data", data, "--output", str(tmp_path / "o")]
    err = usage_error_of([*argv, "--validation", data, "--validation-split", "0.2"], capsys)
    assert "--validation-split: not allowed with argument --validation" in err
    assert fake_tune.calls == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--validation-split", "1.5"], "expected a number between 0 and 1 (exclusive)"),
        (["--validation-split", "0"], "expected a number between 0 and 1 (exclusive)"),
        (["--epochs", "0"], "--epochs: expected a number > 0, got '0'"),
        (["--learning-rate", "fast"], "--learning-rate: expected a number > 0, got 'fast'"),
        (["--lora-rank", "0"], "--lora-rank: expected a positive integer"),
        (["--batch-size", "-8"], "--batch-size: expected a positive integer"),
        (["--method", "qlora"], "invalid choice: 'qlora'"),
    ],
)
def test_bad_values_are_usage_errors(
    fake_tune: FakeTune,
    data: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    argv = ["tune", "--data", data, "--output", str(tmp_path / "o"), *extra]
    assert message in usage_error_of(argv, capsys)
    assert fake_tune.calls == []


def test_required_options(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error_of(["tune", "--data", "x.jsonl"], capsys)
    assert "the following arguments are required: --output" in err


def test_command_errors_are_one_line(
    fake_tune: FakeTune, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    missing = str(tmp_path / "missing.jsonl")
    assert error_of(["tune", "--data", missing, "--output", out], capsys) == (
        f"langchain-hybrid tune: error: --data {missing}: no such file"
    )
    err = error_of(["tune", "--data", data, "--validation", missing, "--output", out], capsys)
    assert err.endswith(f"--validation {missing}: no such file")
    err = error_of(["tune", "--data", data, "--validation", data, "--output", out], capsys)
    assert err.endswith("--validation is the --data file: validate on other rows")
    err = error_of(["tune", "--data", data, "--output", data], capsys)
    assert err.endswith(f"--output {data} is a file: give a folder")
    err = error_of(
        ["tune", "--data", data, "--output", out, "--method", "full", "--lora-rank", "4"], capsys
    )
    assert err.endswith("--lora-rank applies to --method lora")
    err = error_of(["tune", "--data", data, "--output", out, "--group-by", "title"], capsys)
    assert err.endswith(f"{data}:1: missing field 'title' (the --group-by field)")
    assert fake_tune.calls == []


def test_bad_data_is_reported_with_its_line(
    fake_tune: FakeTune, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.jsonl", [{"question": "Q?", "answer": ["A"]}, {"answer": ["B"]}])
    argv = ["tune", "--data", bad, "--output", str(tmp_path / "o"), "--group-by", "id"]
    err = error_of(argv, capsys)
    assert f"{bad}:2: missing field 'question'" in err


def test_errors_of_tune_itself_are_one_line(
    monkeypatch: pytest.MonkeyPatch, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuses(data: Any, **kwargs: Any) -> TuneResult:
        raise ValueError("2 rows are in both the training and validation data")

    monkeypatch.setattr(tuning, "tune", refuses)
    err = error_of(["tune", "--data", data, "--output", str(tmp_path / "o")], capsys)
    assert err == (
        "langchain-hybrid tune: error: 2 rows are in both the training and validation data"
    )


def test_a_missing_training_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_peft(data: Any, **kwargs: Any) -> TuneResult:
        raise ModuleNotFoundError("No module named 'peft'")

    monkeypatch.setattr(tuning, "tune", no_peft)
    err = error_of(["tune", "--data", data, "--output", str(tmp_path / "o")], capsys)
    assert "No module named 'peft'" in err and "pip install 'langchain-hybrid[tune]'" in err


def test_ctrl_c_outside_training_exits_130_with_one_line(
    monkeypatch: pytest.MonkeyPatch, data: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(data: Any, **kwargs: Any) -> TuneResult:
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning, "tune", interrupted)
    out = str(tmp_path / "o")
    err = error_of(["tune", "--data", data, "--output", out], capsys, status=130)
    assert err == (
        f"langchain-hybrid tune: interrupted outside training; {out} may hold no complete adapter"
    )
