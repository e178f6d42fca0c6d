"""The harness: Cloud-only / Local-only / Hybrid rows computed by hand, replay, AUROC."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from langchain_hybrid import ForceCloudRule, ModelPrice, PriceTable, RoutingPolicy
from langchain_hybrid.errors import DatasetError
from langchain_hybrid.evaluation import (
    CloudRecord,
    Example,
    LocalRecord,
    collect_local,
    load_dataset,
    load_records,
    save_records,
)
from langchain_hybrid.evaluation.harness import (
    AssumedCloud,
    LiveCloud,
    ReplayCloud,
    estimate_tokens,
    evaluate,
)
from langchain_hybrid.routing.stats import percentile
from tests.support.eval_fakes import KeyedLocalChatModel, sample_local

DATA = Path(__file__).parents[2] / "examples" / "data"
PRICES = PriceTable({"cloud-x": ModelPrice(10.0, 20.0)})


def cloud(correct: bool, prompt: int, completion: int, latency: float) -> dict[str, CloudRecord]:
    return {"cloud-x": CloudRecord("cloud-x", "recorded", correct, prompt, completion, latency)}


EXAMPLES = [
    Example("e1", "capital of France", ("Paris",), recorded=cloud(True, 100, 10, 2.0)),
    Example("e2", "largest planet", ("Jupiter",), recorded=cloud(True, 200, 20, 3.0)),
    Example(
        "e3",
        "When was it built?",
        (),
        context="The tower stands in Paris.",
        answerable=False,
        recorded=cloud(False, 300, 30, 1.0),
    ),
    Example("e4", "Ducks lay 16 eggs", ("18",), task="math", recorded=cloud(True, 100, 50, 2.0)),
    Example("e5", "author of Hamlet", ("Shakespeare",), recorded=cloud(True, 50, 5, 4.0)),
]
LOCAL = {
    "capital of France": ("Paris.", -0.05),  # confident, right
    "largest planet": ("Saturn is the largest.", -1.4),  # low confidence, wrong
    "When was it built?": ("The passage does not say.", -0.3),  # confident, right (declines)
    "Ducks lay 16 eggs": ("16 - 3 - 4 = 9, 9 * 2 = 18. Answer: 18", -0.2),  # confident, right
}  # "author of Hamlet" gets the default hedge: "I'm not sure." (wrong, escalates early)
LOCAL_LATENCY = [0.5, 0.6, 0.7, 0.8, 0.9]


def local_model() -> KeyedLocalChatModel:
    return KeyedLocalChatModel(answers=LOCAL, default=("I'm not sure.", -0.1))


@pytest.fixture
def records() -> list[LocalRecord]:
    collected = collect_local(EXAMPLES, local_model(), max_tokens=24, progress=False)
    pairs = zip(collected, LOCAL_LATENCY, strict=True)
    return [dataclasses.replace(r, latency_s=s) for r, s in pairs]


def cost(prompt: int, completion: int) -> float:
    return (prompt * 10.0 + completion * 20.0) / 1e6


def test_rows_match_a_hand_computation(records: list[LocalRecord]) -> None:
    policy = RoutingPolicy(threshold=-0.6)
    report = evaluate(
        EXAMPLES,
        local=None,
        records=records,
        policy=policy,
        cloud_source=ReplayCloud("cloud-x"),
        prices=PRICES,
        max_tokens=24,
        dataset="toy",
    )
    cloud_row, local_row, hybrid_row = report.rows
    assert [r.system for r in report.rows] == ["cloud-only", "local-only", "hybrid"]

    all_cloud = cost(100, 10) + cost(200, 20) + cost(300, 30) + cost(100, 50) + cost(50, 5)
    assert cloud_row.accuracy == pytest.approx(4 / 5)
    assert cloud_row.cloud_share == 1.0
    assert cloud_row.cost_usd == pytest.approx(all_cloud)
    assert cloud_row.cost_avoided_usd == 0.0
    assert cloud_row.latency_mean_s == pytest.approx(12.0 / 5)
    assert cloud_row.latency_p95_s == pytest.approx(percentile([2.0, 3.0, 1.0, 2.0, 4.0], 95))

    assert local_row.accuracy == pytest.approx(3 / 5)
    assert (local_row.cloud_share, local_row.cost_usd) == (0.0, 0.0)
    assert local_row.cost_avoided_usd == pytest.approx(all_cloud)
    assert local_row.latency_mean_s == pytest.approx(sum(LOCAL_LATENCY) / 5)

    # e1, e3, e4 stay local (right); e2 (low confidence) and e5 (hedge) go to the cloud.
    hedge = policy.judge(records[4].answer, max_tokens=24)
    assert (hedge.reason, hedge.early_abort) == ("hedge", True)
    produced = records[4].answer.usage_metadata["output_tokens"]  # type: ignore[index]
    e5_latency = 0.9 * hedge.n_tokens / produced + 4.0
    latencies = [0.5, 0.6 + 3.0, 0.7, 0.8, e5_latency]
    assert hybrid_row.accuracy == 1.0
    assert hybrid_row.cloud_share == pytest.approx(2 / 5)
    assert hybrid_row.cost_usd == pytest.approx(cost(200, 20) + cost(50, 5))
    assert hybrid_row.cost_avoided_usd == pytest.approx(all_cloud - hybrid_row.cost_usd)
    assert hybrid_row.latency_mean_s == pytest.approx(sum(latencies) / 5)
    assert hybrid_row.latency_p95_s == pytest.approx(percentile(latencies, 95))
    assert report.reasons == {"confident": 3, "low_confidence": 1, "hedge": 1}

    # correct = [1, 0, 1, 1, 0]; mean log-probs [-0.05, -1.4, -0.3, -0.2, -0.1]: 4 of 6
    # (right, wrong) pairs are ordered.
    assert report.auroc["mean_logprob"] == pytest.approx(4 / 6)
    assert report.auroc["policy"] == pytest.approx(4 / 6)
    assert report.auroc["margin"] is None  # no top_logprobs to rank by
    assert report.verdict is None


def test_as_dict_and_save(records: list[LocalRecord], tmp_path: Path) -> None:
    report = evaluate(
        EXAMPLES,
        local=None,
        records=records,
        policy=RoutingPolicy(),
        cloud_source=ReplayCloud("cloud-x"),
        prices=PRICES,
        max_tokens=24,
        dataset="toy",
    )
    path = tmp_path / "report.json"
    report.save(path)
    data = json.loads(path.read_text())
    assert {"dataset", "n", "cloud_source", "rows", "auroc"} <= set(data)
    assert (data["dataset"], data["n"]) == ("toy", 5)
    assert data["rows"][0] == {
        "system": "cloud-only",
        "n": 5,
        "accuracy": 80.0,
        "accuracy_ci": data["rows"][0]["accuracy_ci"],
        "cloud_share": 100.0,
        "cost_usd": round(report.rows[0].cost_usd, 6),
        "cost_avoided_usd": 0.0,
        "latency_mean_s": 2.4,
        "latency_p95_s": round(percentile([2.0, 3.0, 1.0, 2.0, 4.0], 95), 4),
        "by_class": data["rows"][0]["by_class"],  # see test_rag_rows_report_by_class
    }
    lo, hi = data["rows"][0]["accuracy_ci"]
    assert 30 < lo < 80 < hi < 100
    assert data["auroc"]["policy"] == pytest.approx(4 / 6, abs=1e-4)
    table = report.table()
    for text in ("Cloud-only", "Local-only", "Hybrid", "80.0%", "AUROC"):
        assert text in table


def test_replayed_gsm8k_reproduces_recorded_correctness() -> None:
    examples = load_dataset(DATA / "gsm8k_recorded_sample.jsonl")
    source = ReplayCloud("gpt-4-1106-preview")
    prompts = {ex.id: () for ex in examples}
    answers = source.answers(examples, prompts, {})
    for ex in examples:
        recorded = ex.recorded["gpt-4-1106-preview"]
        assert answers[ex.id].text == recorded.text
        assert answers[ex.id].correct == float(recorded.correct is True)
        assert answers[ex.id].completion_tokens == estimate_tokens(recorded.text)
        assert answers[ex.id].estimated

    report = evaluate(
        examples,
        local=sample_local(),
        policy=RoutingPolicy(),
        cloud_source=source,
        prices=PriceTable.paper_gpt4(),
        max_tokens=160,
        progress=False,
    )
    recorded_right = sum(ex.recorded["gpt-4-1106-preview"].correct is True for ex in examples)
    assert report.rows[0].accuracy == recorded_right / len(examples)
    assert any("estimated" in note for note in report.notes)
    assert any("latency is unknown" in note for note in report.notes)
    assert report.rows[0].latency_mean_s is None  # no recorded cloud latency
    assert report.rows[1].latency_mean_s is not None
    # Paper prices: $0.03 / 1k prompt and $0.06 / 1k completion tokens.
    assert report.rows[0].cost_usd > 0
    assert report.settings["prices"] == {
        "gpt-4-1106-preview": {"input_per_1m": 30.0, "output_per_1m": 60.0}
    }


def test_replay_of_a_model_that_was_not_recorded(records: list[LocalRecord]) -> None:
    with pytest.raises(DatasetError, match="no recorded answer from 'gpt-5'.*cloud-x"):
        evaluate(
            EXAMPLES,
            local=None,
            records=records,
            policy=RoutingPolicy(),
            cloud_source=ReplayCloud("gpt-5"),
            prices=PRICES,
            max_tokens=24,
        )


def test_assumed_cloud_accuracy(records: list[LocalRecord]) -> None:
    report = evaluate(
        EXAMPLES,
        local=None,
        records=records,
        policy=RoutingPolicy(threshold=-0.6),
        cloud_source=AssumedCloud(0.9, model="cloud-x"),
        prices=PRICES,
        max_tokens=24,
    )
    cloud_row, _, hybrid_row = report.rows
    assert cloud_row.accuracy == pytest.approx(0.9)
    assert hybrid_row.accuracy == pytest.approx((3 + 2 * 0.9) / 5)
    assert any("assumption" in note for note in report.notes)
    assert "assumed accuracy 90.0%" in report.cloud_source
    assert cloud_row.latency_mean_s is None


def test_live_cloud_is_asked_only_what_the_systems_need(records: list[LocalRecord]) -> None:
    live = KeyedLocalChatModel(
        answers={"largest planet": ("Jupiter.", -0.01), "author of Hamlet": ("Marlowe", -0.01)}
    )
    report = evaluate(
        EXAMPLES,
        local=None,
        records=records,
        policy=RoutingPolicy(threshold=-0.6),
        cloud_source=LiveCloud(live, model="cloud-x"),
        prices=PRICES,
        max_tokens=24,
        systems=["local-only", "hybrid"],
        progress=False,
    )
    assert len(live.calls) == 2  # the two escalated examples, not all five
    hybrid_row = report.row("hybrid")
    assert hybrid_row is not None and hybrid_row.accuracy == pytest.approx(4 / 5)
    assert report.row("cloud-only") is None
    assert hybrid_row.latency_mean_s is not None


def test_pre_routing_rules_send_to_the_cloud_before_generation(
    records: list[LocalRecord],
) -> None:
    policy = RoutingPolicy(threshold=-0.6, rules=[ForceCloudRule(pattern="capital of France")])
    report = evaluate(
        EXAMPLES,
        local=None,
        records=records,
        policy=policy,
        cloud_source=ReplayCloud("cloud-x"),
        prices=PRICES,
        max_tokens=24,
    )
    assert report.reasons["rule_force_cloud"] == 1
    hybrid_row = report.rows[2]
    assert hybrid_row.cloud_share == pytest.approx(3 / 5)
    # e1 costs only its cloud call and takes only the cloud's 2.0 s (no local attempt).
    assert hybrid_row.cost_usd == pytest.approx(cost(100, 10) + cost(200, 20) + cost(50, 5))


def test_the_report_says_when_the_local_model_is_not_good_enough(
    records: list[LocalRecord],
) -> None:
    report = evaluate(
        EXAMPLES,
        local=None,
        records=records,
        policy=RoutingPolicy(threshold=-5.0),  # keeps nearly everything local
        cloud_source=AssumedCloud(1.0, model="cloud-x"),
        prices=PRICES,
        max_tokens=24,
    )
    assert report.verdict is not None
    assert report.verdict.startswith("The local model is not good enough for this workload")
    assert "points below cloud-only" in report.verdict
    assert report.table().splitlines()[-1] == report.verdict


def test_saved_records_are_reused_and_missing_ones_collected(
    records: list[LocalRecord], tmp_path: Path
) -> None:
    path = tmp_path / "records.jsonl"
    save_records(path, records[:3])
    local = local_model()
    report = evaluate(
        EXAMPLES,
        local=local,
        records=load_records(path),
        policy=RoutingPolicy(),
        cloud_source=ReplayCloud("cloud-x"),
        prices=PRICES,
        max_tokens=24,
        progress=False,
    )
    assert len(local.calls) == 2
    assert [r.example_id for r in report.records] == [ex.id for ex in EXAMPLES]
    assert report.records[:3] == tuple(records[:3])
    with pytest.raises(ValueError, match="no saved record"):
        evaluate(
            EXAMPLES,
            local=None,
            records=records[:3],
            policy=RoutingPolicy(),
            cloud_source=ReplayCloud("cloud-x"),
            prices=PRICES,
            max_tokens=24,
        )


def test_hybrid_row_and_policy_auroc_read_the_prompt_like_the_live_route(
    records: list[LocalRecord],
) -> None:
    # A learned scorer that keeps answers whose words appear in the prompt: only the
    # declining RAG answer ("The passage does not say." over "The tower stands in
    # Paris.") overlaps; the replay must pass the prompt, as the live route does.
    from langchain_hybrid.routing.confidence import LogisticScorer

    scorer = LogisticScorer({"context_overlap": 10.0, "mean_logprob": 0.1}, intercept=-1.0)
    policy = RoutingPolicy(threshold=0.0, scorer=scorer)
    report = evaluate(
        EXAMPLES,
        local=None,
        policy=policy,
        cloud_source=ReplayCloud("cloud-x"),
        prices=PRICES,
        max_tokens=24,
        records=records,
        progress=False,
    )
    kept = [
        r.example_id
        for r in records
        if not policy.judge(r.answer, max_tokens=24, context=list(r.prompt)).escalate
    ]
    assert kept  # the replay with the prompt keeps some answers local
    hybrid = report.row("hybrid")
    assert hybrid is not None
    assert hybrid.cloud_share == pytest.approx(1 - len(kept) / len(records))
    assert report.auroc["policy"] is not None


def test_rag_rows_report_by_class_and_a_base_row() -> None:
    rows = [
        Example("a1", "Who built it?", ("Eiffel",), context="Eiffel built it.",
                recorded={"m": CloudRecord("m", "Eiffel", True)}),
        Example("a2", "When?", ("1889",), context="It opened in 1889.",
                recorded={"m": CloudRecord("m", "1889", True)}),
        Example("u1", "How tall?", (), context="It is in Paris.", answerable=False,
                recorded={"m": CloudRecord("m", "The passage does not say.", True)}),
        Example("u2", "Who paid?", (), context="It is in Paris.", answerable=False,
                recorded={"m": CloudRecord("m", "Gustave", False)}),
    ]  # fmt: skip
    tuned = KeyedLocalChatModel(
        answers={
            "Who built it?": ("Eiffel", -0.1),
            "When?": ("The passage does not say.", -0.1),
            "How tall?": ("The passage does not say.", -0.1),
            "Who paid?": ("The passage does not say.", -0.1),
        }
    )
    stock = KeyedLocalChatModel(answers={}, default=("Paris", -0.1))
    report = evaluate(
        rows,
        local=tuned,
        base=stock,
        policy=RoutingPolicy(threshold=-0.6),
        cloud_source=ReplayCloud("m"),
        prices=PRICES,
        max_tokens=16,
        progress=False,
    )
    by_system = {r.system: r.as_dict()["by_class"] for r in report.rows}
    assert [r.system for r in report.rows] == [
        "cloud-only", "local-only", "base-local-only", "hybrid"
    ]  # fmt: skip
    assert by_system["local-only"] == {
        "answerable": {"n": 2, "accuracy": 0.5},
        "unanswerable": {"n": 2, "accuracy": 1.0},
        "decline_rate": 0.75,
    }
    assert by_system["base-local-only"]["answerable"]["accuracy"] == 0.0
    assert by_system["base-local-only"]["decline_rate"] == 0.0
    assert by_system["cloud-only"]["decline_rate"] == 0.25
    text = report.table()
    assert "Local-only (base)" in text
    assert "Local-only: answerable 50.0% (n=2), unanswerable 100.0% (n=2), declines 75.0%" in text
