"""The calibration example script and the demo's routing loop, with fake local models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from langchain_hybrid import ChatHybrid, RoutingPolicy
from tests.support.eval_fakes import rag_local


def test_calibration_example_saves_a_policy_that_routes(
    example: Callable[[str], ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calibrate_sample = example("calibrate_sample")
    result = calibrate_sample.main(local=rag_local(), out_dir=tmp_path)
    out = capsys.readouterr().out
    assert "the local model is right on 20 of 40" in out
    assert "AUROC" in out and "held-out (5-fold cross-validation" in out
    assert result.met
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    policy = RoutingPolicy.load(tmp_path / "policy.json")
    assert policy == result.policy
    assert policy.fitted_on is not None and policy.fitted_on["cloud"] == "assumed accuracy 0.85"
    # The fake's first answer is a confident right span: kept local.
    assert "first question: local (confident)" in out


def test_demo_prints_attempt_confidence_reason_tier_and_the_table(
    example: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    demo = example("demo")
    questions = [q for q in demo.demo_questions() if q[0] == "passage"]
    assert [ex.answerable for _, ex in questions] == [True, True, True, False]
    cloud = example("offline_cloud").OfflineCloud.for_examples(ex for _, ex in questions)
    # The demo's loop with a plain policy (the shipped one is fitted to the real model).
    llm = ChatHybrid(
        local=rag_local(),
        cloud=cloud,
        policy=RoutingPolicy(threshold=-0.5),
        prices=demo.demo_prices(),
    )
    outcomes = demo.run(llm, questions, "offline stand-in", lambda ex: cloud.replies[ex.question])
    demo.complete_local(llm.local, outcomes)
    out = capsys.readouterr().out
    # The fake is confidently right on answerable questions and unsure on the other.
    assert [o.tier for o in outcomes] == ["local", "local", "local", "cloud"]
    assert out.count("local attempt: ") == 4
    assert "confidence -0.05 >= threshold -0.50; confident enough: kept local" in out
    assert "confidence -2.50 < threshold -0.50; not confident enough: sent to the cloud" in out
    assert "answer from cloud (offline stand-in): 'The passage does not say.' -> right" in out
    table = demo.table(outcomes)
    assert "Hybrid" in table and "Cloud-only" in table and "Local-only" in table
    assert "  4 / 4" in table.splitlines()[3]  # the hybrid is right on all four
    assert "  3 / 4" in table.splitlines()[2]  # the local model alone on three


def test_the_demo_shows_progress_while_it_completes_local_answers(
    example: Callable[[str], ModuleType],
) -> None:
    demo = example("demo")
    questions = demo.demo_questions()[:3]
    outcomes = [
        demo.Outcome(kind, ex, "cloud", True, "", None, True, 0.0, 0.0) for kind, ex in questions
    ]
    lines: list[str] = []
    demo.complete_local(rag_local(), outcomes, out=lines.append)
    assert lines[0].startswith("Local-only row: generating in full the 3 local answers")
    assert [line.split(" (")[0] for line in lines[1:4]] == [
        "  1/3 done",
        "  2/3 done",
        "  3/3 done",
    ]
    assert all(o.local_right is not None for o in outcomes)


def test_the_shipped_demo_policy_says_what_it_was_fitted_on() -> None:
    policy = RoutingPolicy.load(Path(__file__).parents[2] / "examples" / "hybrid_policy.json")
    fitted = policy.fitted_on
    assert fitted is not None and fitted["met"] is True
    assert fitted["n"] >= 500 and "demo questions left out" in fitted["dataset"]
    assert (
        "assumed accuracy" in fitted["cloud"] and "replayed gpt-4-1106-preview" in fitted["cloud"]
    )
    assert 0 < fitted["achieved"]["cloud_share"] < 1
    assert policy.scorer.name == fitted["scorer"]
