"""Calibration: known optimum, honest cloud-only fallback, monotone curves, JSON round trip,
the learned scorer live (ChatHybrid) as in replay."""

from __future__ import annotations

import dataclasses
import json
import random
import warnings
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from langchain_hybrid import ChatHybrid
from langchain_hybrid.calibration import (
    CloudOutcomes,
    TradeoffCurve,
    calibrate,
    record_features,
    replay_early,
)
from langchain_hybrid.evaluation.records import LocalRecord
from langchain_hybrid.routing.confidence import LogisticScorer
from langchain_hybrid.routing.policy import RoutingPolicy
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_mock import MockOpenAI


def _record(i: int, right: bool, lp: float, *, n: int = 3, finish: str = "stop") -> LocalRecord:
    text = " ".join(["Paris"] * n)
    content = [{"token": ("" if k == 0 else " ") + "Paris", "logprob": lp} for k in range(n)]
    answer = AIMessage(
        text, response_metadata={"finish_reason": finish, "logprobs": {"content": content}}
    )
    prompt = (SystemMessage("Answer briefly."), HumanMessage(f"Question {i}: capital of France?"))
    return LocalRecord(str(i), prompt, answer, correct=right, latency_s=0.1, max_tokens=8)


def _two_populations(n: int = 200, seed: int = 0) -> list[LocalRecord]:
    """60% right answers near log-prob -0.1, 40% wrong ones near -3: the optimum is between."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        right = i % 5 < 3
        lp = rng.uniform(-0.3, -0.05) if right else rng.uniform(-3.5, -2.5)
        out.append(_record(i, right, lp))
    return out


def test_finds_the_known_optimum() -> None:
    records = _two_populations()
    result = calibrate(records, target_cloud_rate=0.4, cloud=CloudOutcomes.assumed(0.8))
    assert result.met, result.message
    # Every right answer kept, every wrong one escalated: the threshold lies between.
    verdicts = [
        result.policy.judge(r.answer, max_tokens=r.max_tokens, context=list(r.prompt))
        for r in records
    ]
    assert all(v.escalate != r.correct for v, r in zip(verdicts, records, strict=True))
    assert result.achieved["cloud_share"] == pytest.approx(0.4, abs=0.02)
    assert result.achieved["kept_accuracy"] == pytest.approx(1.0)
    assert result.auroc["mean_logprob"] == pytest.approx(1.0)
    assert result.policy.fitted_on is not None and result.policy.fitted_on["n"] == 200


def test_accuracy_target_keeps_as_much_local_as_it_allows() -> None:
    records = _two_populations()
    result = calibrate(records, target_accuracy=0.8, cloud=CloudOutcomes.assumed(0.8))
    assert result.met
    chosen = result.curve.points[result.curve.chosen or 0]
    # Right answers (60%) stay local; wrong ones may stay only while accuracy holds 0.8.
    assert chosen.accuracy >= 0.8 - 1e-9
    assert chosen.cloud_share == pytest.approx(0.25, abs=0.03)


def test_unmet_target_returns_cloud_only_and_says_so() -> None:
    records = [_record(i, False, -0.1 * (i % 7)) for i in range(60)]
    with pytest.warns(UserWarning, match="target not met"):
        result = calibrate(records, target_cloud_rate=0.5, cloud=CloudOutcomes.assumed(0.7))
    assert not result.met
    assert "not met" in result.message and "not met" in result.report()
    policy = result.policy
    assert policy.fitted_on is not None and policy.fitted_on["met"] is False
    outcome = policy.pre_route([HumanMessage("anything")])
    assert outcome is not None and outcome.tier == "cloud"
    # The saved file still routes everything to the cloud.
    again = RoutingPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again.pre_route([HumanMessage("other")]) is not None


def test_unreachable_accuracy_is_not_met() -> None:
    records = _two_populations(100)
    with pytest.warns(UserWarning):
        result = calibrate(records, target_accuracy=0.95, cloud=CloudOutcomes.assumed(0.6))
    assert not result.met and "0.950" in result.message


def test_curve_is_monotone(tmp_path: Path) -> None:
    rng = random.Random(1)
    records = [
        _record(
            i,
            rng.random() < 0.4,
            rng.gauss(-1.0, 0.6),
            n=rng.randint(1, 8),
            finish=rng.choice(["stop", "length"]),
        )
        for i in range(150)
    ]
    result = calibrate(
        records,
        max_cost=1e-3,
        cloud=CloudOutcomes.assumed(0.8),
        min_local_accuracy=0.0,
        fit_early=False,
    )
    pts = result.curve.points
    assert pts[0].cloud_share == 1.0 and pts[0].n_local == 0
    for a, b in zip(pts, pts[1:], strict=False):
        assert b.threshold < a.threshold
        assert b.cloud_share <= a.cloud_share
        assert b.cost_per_query <= a.cost_per_query + 1e-15
        assert b.n_local > a.n_local
    path = tmp_path / "curve.json"
    result.curve.save(path)
    assert TradeoffCurve.from_dict(json.loads(path.read_text())) == result.curve
    png = tmp_path / "curve.png"
    result.curve.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _learned_records(n: int = 240, seed: int = 2) -> list[LocalRecord]:
    """Right answers are short and finish; wrong ones ramble to the token cap."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        right = rng.random() < 0.5
        lp = rng.gauss(-0.8, 0.5)
        words = rng.randint(1, 3) if right else rng.randint(5, 8)
        out.append(_record(i, right, lp, n=words, finish="stop" if right else "length"))
    return out


def test_learned_scorer_reads_truncation_and_round_trips(tmp_path: Path) -> None:
    records = _learned_records()
    result = calibrate(records, target_cloud_rate=0.5, cloud=CloudOutcomes.assumed(0.9))
    assert result.met
    assert result.auroc["logistic"] is not None
    assert result.auroc["logistic"] > (result.auroc["mean_logprob"] or 0) + 0.05
    policy = result.policy
    if isinstance(policy.scorer, LogisticScorer):
        # Truncation is a learned feature, not a hard rule.
        assert "length" not in policy.escalate_finish_reasons
        assert "truncated" in policy.scorer.coefficients
    path = tmp_path / "policy.json"
    policy.save(path)
    loaded = RoutingPolicy.load(path)
    assert loaded == policy
    for r in records:
        kw = {"max_tokens": r.max_tokens, "context": list(r.prompt)}
        assert loaded.judge(r.answer, **kw) == policy.judge(r.answer, **kw)


def test_learned_scorer_scores_the_same_live_and_in_replay(openai_mock: MockOpenAI) -> None:
    scorer = LogisticScorer(
        {"mean_logprob": 1.5, "context_overlap": 2.0, "prompt_words": -0.3, "answer_words": -0.1},
        intercept=0.4,
    )
    policy = RoutingPolicy(threshold=-10.0, scorer=scorer)
    local = FakeLocalChatModel(messages=iter(["Paris is the capital."]), logprob=-0.3)
    llm = ChatHybrid(local=local, cloud=make_chat_openai(openai_mock), policy=policy)
    messages: list[BaseMessage] = [
        SystemMessage("Passage: Paris is the capital of France."),
        HumanMessage("What is the capital of France?"),
    ]
    out = llm.invoke(messages)
    routing = out.response_metadata["routing"]
    assert routing["tier"] == "local"
    replay = policy.judge(out, context=messages)
    assert routing["confidence"] == pytest.approx(replay.confidence.score)
    assert routing["features"]["context_overlap"] == pytest.approx(
        replay.features["context_overlap"]
    )
    assert replay.features["context_overlap"] > 0
    # Without the prompt the score differs: the live route did pass it.
    assert policy.judge(out).confidence.score != pytest.approx(routing["confidence"])


def test_early_escalation_fit_keeps_wrong_stops_low() -> None:
    rng = random.Random(3)
    records = []
    for i in range(200):
        right = i % 2 == 0
        lp = rng.uniform(-0.4, -0.1) if right else rng.uniform(-2.5, -1.5)
        records.append(_record(i, right, lp, n=8))
    result = calibrate(records, target_cloud_rate=0.5, cloud=CloudOutcomes.assumed(0.9))
    early = result.early
    assert early["wrong_stop_rate"] <= 0.05
    assert early["token_fraction"] <= 0.3
    figures = replay_early(result.policy, records)
    assert figures["wrong_stop_rate"] <= 0.05


def test_record_features_match_the_live_features() -> None:
    r = _record(0, True, -0.2, n=2, finish="length")
    features, forced, finish = record_features(r)
    verdict = RoutingPolicy(scorer=LogisticScorer({"n_tokens": 0.0})).judge(
        r.answer, context=list(r.prompt)
    )
    assert features == verdict.features and forced is None and finish == "length"


def test_cloud_outcomes_replayed_needs_graded_answers() -> None:
    from langchain_hybrid.calibration import CalibrationError
    from langchain_hybrid.evaluation.records import Example

    with pytest.raises(CalibrationError, match="--cloud-accuracy"):
        CloudOutcomes.replayed([Example(id="1", question="q?", answers=("a",))], "gpt-4")


def test_refitted_learned_scorer_keeps_the_chosen_share() -> None:
    # Noisy features: the refitted scorer's scale differs from the out-of-fold one, yet
    # the saved policy keeps local as many of the fitting answers as the chosen point.
    rng = random.Random(5)
    records = []
    for i in range(300):
        right = rng.random() < 0.4
        lp = rng.gauss(-0.6 if right else -1.2, 0.6)
        records.append(_record(i, right, lp, n=rng.randint(1, 6)))
    for kw in ({"fit_early": False}, {"fit_early": True, "max_wrong_stops": 0.0}):
        result = calibrate(records, target_cloud_rate=0.5, cloud=CloudOutcomes.assumed(0.9), **kw)
        assert result.met and result.curve.chosen is not None
        chosen = result.curve.points[result.curve.chosen]
        escalated = [
            result.policy.judge(r.answer, max_tokens=r.max_tokens, context=list(r.prompt)).escalate
            for r in records
        ]
        assert sum(escalated) / len(records) == pytest.approx(chosen.cloud_share)
    # Without a fitted early escalation, none stops answers the curve would keep.
    assert (
        calibrate(
            records, target_cloud_rate=0.5, cloud=CloudOutcomes.assumed(0.9), fit_early=False
        ).policy.early_escalation.enabled
        is False
    )


def test_too_few_right_answers_fit_no_learned_scorer() -> None:
    # 5 right answers in 200: a logistic regression on them would be noise.
    records = [_record(i, i < 5, -0.1 if i < 5 else -0.1 - 0.01 * i) for i in range(200)]
    result = calibrate(
        records, target_cloud_rate=0.95, cloud=CloudOutcomes.assumed(0.8), min_local_accuracy=0
    )
    assert "logistic" not in result.auroc
    assert "no learned scorer: only 5 answers of the rarer class" in result.report()
    assert result.policy.scorer.name != "logistic"


def test_report_says_a_margin_reading_policy_needs_top_logprobs() -> None:
    from langchain_hybrid.calibration import CalibrationResult

    curve = TradeoffCurve(points=(), chosen=None, scorer="logistic", n=0, source="")
    policy = RoutingPolicy(scorer=LogisticScorer({"margin": 1.0, "mean_logprob": 1.0}))
    result = CalibrationResult(policy, curve, {}, {}, {}, True, "chose", "t", 0, "")
    assert "serve the local model with top_logprobs >= 2" in result.report()
    plain = RoutingPolicy(scorer=LogisticScorer({"mean_logprob": 1.0}))
    assert "top_logprobs" not in dataclasses.replace(result, policy=plain).report()


def test_evaluating_on_the_rows_a_policy_was_fitted_on_warns() -> None:
    from langchain_hybrid.costs import PriceTable
    from langchain_hybrid.evaluation.harness import AssumedCloud, evaluate
    from langchain_hybrid.evaluation.records import Example

    records = _two_populations()
    policy = calibrate(records, target_cloud_rate=0.4, cloud=CloudOutcomes.assumed(0.8)).policy
    assert policy.fitted_on is not None and len(policy.fitted_on["prompt_digests"]) == 200
    # The same prompts, as evaluation sees them: examples whose prompt the records hold.
    seen = [
        Example(id=r.example_id, question="capital of France?", answers=("Paris",))
        for r in records[:50]
    ]
    new_records = [_record(1000 + i, True, -0.1) for i in range(10)]
    new = [
        Example(id=r.example_id, question="capital of France?", answers=("Paris",))
        for r in new_records
    ]

    def run(examples: list[Example], recs: list[LocalRecord]) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = evaluate(
                examples,
                local=None,
                policy=policy,
                cloud_source=AssumedCloud(0.8),
                prices=PriceTable.default(),
                max_tokens=8,
                records=recs,
                progress=False,
            )
        warned = [str(w.message) for w in caught if "fitted on" in str(w.message)]
        assert warned == [n for n in report.notes if "fitted on" in n]
        return warned

    [warning] = run(seen, records[:50])
    assert warning.startswith("50 of 50 examples were among the rows this policy was fitted on")
    assert run(new, new_records) == []
