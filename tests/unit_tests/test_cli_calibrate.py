"""``langchain-hybrid calibrate`` in-process with a fake local model: the policy it writes
routes in ChatHybrid; an unmet target writes the cloud-only policy and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage

from langchain_hybrid import ChatHybrid
from langchain_hybrid.cli import main
from langchain_hybrid.evaluation.collect import prompt_for
from langchain_hybrid.evaluation.datasets import load_dataset
from langchain_hybrid.routing.policy import RoutingPolicy
from tests.support.eval_fakes import rag_local
from tests.support.fixtures import make_chat_openai
from tests.support.openai_mock import MockOpenAI

DATA = Path(__file__).parents[2] / "examples" / "data"
SQUAD = str(DATA / "squad2_rag_sample.jsonl")
GSM8K = str(DATA / "gsm8k_recorded_sample.jsonl")
RAG = ["--local-factory", "tests.support.eval_fakes:rag_local", "--no-progress"]
MATH = ["--local-factory", "tests.support.eval_fakes:sample_local", "--no-progress"]


def test_help_lists_targets_and_sources(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--target-cloud-rate",
        "--target-accuracy",
        "--max-cost",
        "--cloud-replay",
        "--cloud-accuracy",
        "--records",
        "--save-records",
        "--max-tokens",
        "--local-model",
        "--output",
        "--plot",
        "--curve",
    ):
        assert option in out


def test_calibrated_policy_loads_and_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], openai_mock: MockOpenAI
) -> None:
    policy_path, curve, plot = tmp_path / "policy.json", tmp_path / "c.json", tmp_path / "c.png"
    records = tmp_path / "records.jsonl"
    argv = ["calibrate", "--data", SQUAD, "--target-cloud-rate", "0.5"]
    argv += ["--cloud-accuracy", "0.85", "--output", str(policy_path), "--curve", str(curve)]
    argv += ["--plot", str(plot), "--save-records", str(records)]
    assert main([*argv, *RAG]) == 0
    out = capsys.readouterr().out
    assert "n=40" in out and "AUROC" in out and "mean_logprob" in out
    assert "held-out (5-fold cross-validation by group (8 groups)" in out
    assert "not good enough" not in out
    assert f"Policy written to {policy_path}\n" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(curve.read_text())["chosen"] is not None
    assert len(records.read_text().splitlines()) == 40

    policy = RoutingPolicy.load(policy_path)
    assert policy.fitted_on is not None
    assert policy.fitted_on["dataset"] == "squad2_rag_sample.jsonl"
    assert policy.fitted_on["met"] is True
    assert policy.fitted_on["cloud"] == "assumed accuracy 0.85"
    # Measured on held-out articles (8 in this sample): near the target, not on it.
    assert policy.fitted_on["achieved"]["cloud_share"] == pytest.approx(0.5, abs=0.2)
    assert policy.fitted_on["groups"] == 8

    # The written policy routes live: the confident right answers stay local, the unsure
    # guesses on unanswerable questions go to the cloud.
    examples = load_dataset(SQUAD)
    llm = ChatHybrid(local=rag_local(), cloud=make_chat_openai(openai_mock), policy=policy)
    tiers = {}
    for ex in examples[:8]:
        messages: list[BaseMessage] = list(prompt_for(ex))
        tiers[ex.id] = (llm.invoke(messages).response_metadata["routing"]["tier"], ex.answerable)
    assert all((tier == "local") == answerable for tier, answerable in tiers.values()), tiers

    # The saved records replay without the local model and fit the same policy.
    again = tmp_path / "again.json"
    argv2 = [a if a != str(policy_path) else str(again) for a in argv[:-4]]
    assert main([*argv2, "--records", str(records), "--no-progress"]) == 0
    assert "reused 40 saved local answers" in capsys.readouterr().out
    assert RoutingPolicy.load(again) == policy


def test_unmet_target_writes_cloud_only_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_path = tmp_path / "policy.json"
    argv = ["calibrate", "--data", GSM8K, "--cloud-replay", "gpt-4-1106-preview"]
    argv += ["--target-cloud-rate", "0.5", "--output", str(policy_path)]
    assert main([*argv, *MATH]) == 0
    captured = capsys.readouterr()
    assert "target not met" in captured.out
    assert "The local model is not good enough for target_cloud_rate=0.5" in captured.out
    assert "(cloud-only)" in captured.out
    assert captured.err == ""
    policy = RoutingPolicy.load(policy_path)
    assert policy.fitted_on is not None and policy.fitted_on["met"] is False
    assert "replayed gpt-4-1106-preview" in policy.fitted_on["cloud"]
    examples = load_dataset(GSM8K)
    # Even the fake's one confident right answer goes to the cloud now.
    outcome = policy.pre_route(list(prompt_for(examples[0])))
    assert outcome is not None and outcome.tier == "cloud"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cloud-replay", "gpt-5", "--target-cloud-rate", "0.5"], "'gpt-5'"),
        (["--cloud-accuracy", "0.9", "--target-cloud-rate", "0.5", "--seed", "1"], "--limit"),
        (
            ["--cloud-replay", "gpt-4-1106-preview", "--cloud-model", "x", "--max-cost", "1"],
            "--cloud-model goes with --cloud-accuracy",
        ),
    ],
)
def test_errors_are_one_line_and_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = str(tmp_path / "policy.json")
    assert main(["calibrate", "--data", GSM8K, *extra, "--output", out, *MATH]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("langchain-hybrid calibrate: error: ")
    assert message in err and "Traceback" not in err
    assert not Path(out).exists()


def test_a_target_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "--data", GSM8K, "--cloud-accuracy", "0.9", "--output", "p.json"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--target-cloud-rate --target-accuracy --max-cost" in err
