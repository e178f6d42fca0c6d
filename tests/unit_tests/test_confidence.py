from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from langchain_hybrid.logprobs import LOGPROB_FLOOR, logprob_entries
from langchain_hybrid.routing.confidence import (
    DEFAULT_HEDGE_PHRASES,
    FEATURE_NAMES,
    CombinedScorer,
    Confidence,
    ConfidenceScorer,
    EarlyEscalation,
    HedgeDetector,
    MarginScorer,
    MeanLogprobScorer,
    MinLogprobScorer,
    QuantileLogprobScorer,
    available_scorers,
    compute_features,
    scorer_from_config,
)


def entry(token: str, logprob: float, tops: list[float] | None = None) -> dict[str, Any]:
    top_logprobs = [
        {"token": f"alt{i}", "logprob": v, "bytes": None} for i, v in enumerate(tops or [])
    ]
    return {"token": token, "logprob": logprob, "bytes": None, "top_logprobs": top_logprobs}


def chat_logprobs(values: list[float], tops: bool = False) -> dict[str, Any]:
    """OpenAI-shaped logprobs; with tops, confident tokens get a wide top-1/top-2 gap."""
    content = []
    for i, v in enumerate(values):
        alts = None
        if tops:
            alts = [v, -5.0] if v > -0.5 else [v, v - 0.05]
        content.append(entry(f"t{i} ", v, alts))
    return {"content": content, "refusal": None}


CONFIDENT = [-0.01, -0.05, -0.02, -0.1, -0.03, -0.04, -0.02, -0.01, -0.06, -0.02]
UNSURE = [-0.9, -2.5, -0.4, -3.1, -1.2, -0.7, -2.2, -0.3, -1.9, -4.0]

ALL_SCORERS: list[ConfidenceScorer] = [
    MeanLogprobScorer(),
    MinLogprobScorer(),
    QuantileLogprobScorer(),
    QuantileLogprobScorer(q=0.5),
    MarginScorer(),
    CombinedScorer({"mean_logprob": 1.0, "min_logprob": 0.3, "margin": 0.1}, bias=0.2),
]


# --- log-prob parsing -------------------------------------------------------------------


def test_logprob_entries_accepts_all_shapes() -> None:
    lp = chat_logprobs([-0.5, -1.0])
    from_mapping = logprob_entries(lp)
    assert [e["logprob"] for e in from_mapping] == [-0.5, -1.0]
    assert logprob_entries(lp["content"]) == from_mapping
    assert logprob_entries(None) == []
    assert logprob_entries({"content": None, "refusal": None}) == []
    minimal = logprob_entries([{"token": "a", "logprob": -0.2}])
    assert minimal == [{"token": "a", "logprob": -0.2, "bytes": None, "top_logprobs": []}]


def test_logprob_entries_clamps_non_finite_values() -> None:
    entries = logprob_entries(
        [
            {"token": "a", "logprob": float("-inf")},
            {"token": "b", "logprob": float("nan")},
            {"token": "c", "logprob": 1e-9},
        ]
    )
    assert [e["logprob"] for e in entries] == [LOGPROB_FLOOR, LOGPROB_FLOOR, 0.0]


def test_logprob_entries_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="entry 1"):
        logprob_entries([{"token": "a", "logprob": -1.0}, {"token": "b"}])
    with pytest.raises(ValueError, match="number"):
        logprob_entries([{"token": "a", "logprob": "high"}])
    with pytest.raises(TypeError):
        logprob_entries("not logprobs")


# --- features -----------------------------------------------------------------------------


def test_compute_features_values() -> None:
    values = [-0.1, -0.2, -0.3, -0.4, -2.0]
    f = compute_features(chat_logprobs(values), "some answer")
    assert f["mean_logprob"] == pytest.approx(-0.6)
    assert f["min_logprob"] == -2.0
    # 10% quantile with linear interpolation over sorted [-2.0, -0.4, -0.3, -0.2, -0.1]
    assert f["p10_logprob"] == pytest.approx(-2.0 + 0.4 * (-0.4 + 2.0))
    assert f["n_tokens"] == 5.0
    assert f["perplexity"] == pytest.approx(math.exp(0.6))
    assert f["n_unknown"] == 0.0
    assert f["hedge"] == 0.0
    assert "margin" not in f  # no top_logprobs
    assert set(f) <= set(FEATURE_NAMES)


def test_compute_features_margin_and_flags() -> None:
    lp = [
        entry("<unk>", -0.1, [-0.1, -2.1]),
        entry(" know", -0.5, [-0.5, -1.5]),
        entry(".", -0.2, [-0.2]),  # a single alternative gives no margin
    ]
    f = compute_features(lp, "I don't know.")
    assert f["margin"] == pytest.approx(1.5)
    assert f["n_unknown"] == 1.0
    assert f["hedge"] == 1.0


def test_features_are_json_safe_with_infinite_logprobs() -> None:
    f = compute_features([{"token": "x", "logprob": float("-inf")}], "x")
    json.dumps(f, allow_nan=False)
    assert f["min_logprob"] == LOGPROB_FLOOR
    conf = MeanLogprobScorer().score([{"token": "x", "logprob": float("-inf")}], "x")
    json.dumps(conf.as_dict(), allow_nan=False)


def test_compute_features_without_tokens() -> None:
    f = compute_features(None, "")
    assert f == {"n_tokens": 0.0, "n_unknown": 0.0, "hedge": 0.0}


# --- scorers ------------------------------------------------------------------------------


@pytest.mark.parametrize("scorer", ALL_SCORERS, ids=lambda s: s.to_config()["name"])
def test_scorers_rank_confident_above_unsure(scorer: ConfidenceScorer) -> None:
    confident = scorer.score(chat_logprobs(CONFIDENT, tops=True), "Paris is the capital.")
    unsure = scorer.score(chat_logprobs(UNSURE, tops=True), "Lyon, maybe Marseille.")
    assert confident.forced_low is None and unsure.forced_low is None
    assert confident.score > unsure.score
    assert confident.scorer == unsure.scorer == scorer.name


def test_scorer_values() -> None:
    lp = chat_logprobs([-1.0, -3.0, -2.0])
    assert MeanLogprobScorer().score(lp, "abc").score == pytest.approx(-2.0)
    assert MinLogprobScorer().score(lp, "abc").score == -3.0
    assert QuantileLogprobScorer(q=0.5).score(lp, "abc").score == -2.0
    assert QuantileLogprobScorer(q=0.0).score(lp, "abc").score == -3.0
    combined = CombinedScorer({"mean_logprob": 2.0, "n_tokens": -0.1}, bias=1.0)
    assert combined.score(lp, "abc").score == pytest.approx(1.0 + 2.0 * -2.0 - 0.1 * 3)


@pytest.mark.parametrize("scorer", ALL_SCORERS, ids=lambda s: s.to_config()["name"])
@pytest.mark.parametrize(
    "text",
    [
        "I don't know the answer.",
        "Honestly, I DON’T KNOW.",
        "I'm  not sure, but it could be 42.",
        "As an AI language model, I cannot browse.",
        "There is not enough information to answer.",
    ],
)
def test_hedge_phrase_forces_low_despite_high_score(scorer: ConfidenceScorer, text: str) -> None:
    conf = scorer.score(chat_logprobs(CONFIDENT, tops=True), text)
    assert conf.forced_low == "hedge"
    assert conf.features["hedge"] == 1.0


def test_every_default_hedge_phrase_is_detected() -> None:
    detector = HedgeDetector()
    for phrase in DEFAULT_HEDGE_PHRASES:
        assert detector.find(f"Well... {phrase.upper()} here.") == phrase


def test_hedge_detector_matches_whole_words_only() -> None:
    detector = HedgeDetector()
    assert detector.find("I don't knowingly lie.") is None
    assert detector.find("The capital of France is Paris.") is None
    assert detector.find("I dont know") is None  # no apostrophe: not the configured phrase


def test_hedge_detector_custom_and_disabled() -> None:
    custom = HedgeDetector(phrases=["no idea", "beats me"])
    assert custom.find("Beats   me!") == "beats me"
    assert custom.find("I don't know") is None
    scorer = MeanLogprobScorer(hedge=HedgeDetector(phrases=()))
    assert scorer.score(chat_logprobs(CONFIDENT), "I don't know").forced_low is None


def test_unknown_token_forces_low() -> None:
    lp = [entry("Paris", -0.01), entry("<unk>", -0.01)]
    conf = MinLogprobScorer().score(lp, "Paris?")
    assert conf.forced_low == "unknown_token"
    assert conf.features["n_unknown"] == 1.0
    custom = MinLogprobScorer(unknown_tokens={"[UNK]"})
    assert custom.score(lp, "Paris?").forced_low is None
    assert custom.score([entry("[UNK]", -0.01)], "x").forced_low == "unknown_token"


def test_empty_answer_and_missing_logprobs() -> None:
    scorer = MeanLogprobScorer()
    assert scorer.score(None, "").forced_low == "empty"
    assert scorer.score(chat_logprobs([-0.1]), "   \n").forced_low == "empty"
    missing = scorer.score(None, "Paris")
    assert missing.forced_low == "no_logprobs"
    assert missing.score == LOGPROB_FLOOR
    assert scorer.score({"content": None}, "Paris").forced_low == "no_logprobs"


def test_margin_and_combined_need_top_logprobs() -> None:
    no_tops = chat_logprobs(CONFIDENT)
    assert MarginScorer().score(no_tops, "Paris").forced_low == "no_logprobs"
    needs_margin = CombinedScorer({"margin": 1.0})
    assert needs_margin.score(no_tops, "Paris").forced_low == "no_logprobs"
    assert CombinedScorer({"mean_logprob": 1.0}).score(no_tops, "Paris").forced_low is None


def test_forced_low_priority() -> None:
    lp = [entry("<unk>", -0.1)]
    assert MeanLogprobScorer().score(lp, "  ").forced_low == "empty"
    assert MeanLogprobScorer().score(lp, "I don't know").forced_low == "unknown_token"


def test_text_defaults_to_joined_tokens() -> None:
    lp = [entry("I", -0.1), entry(" don't", -0.1), entry(" know", -0.1)]
    assert MeanLogprobScorer().score(lp).forced_low == "hedge"
    assert MeanLogprobScorer().score([entry("Paris", -0.1)]).forced_low is None


def test_confidence_validation_and_dict() -> None:
    with pytest.raises(ValueError, match="forced_low"):
        Confidence(score=0.0, features={}, forced_low="bogus", scorer="x")  # type: ignore[arg-type]
    conf = Confidence(
        score=float("nan"), features={"a": float("-inf")}, forced_low=None, scorer="x"
    )
    assert conf.as_dict() == {
        "score": LOGPROB_FLOOR,
        "features": {"a": LOGPROB_FLOOR},
        "forced_low": None,
        "scorer": "x",
    }
    with pytest.raises(AttributeError):
        conf.score = 1.0  # type: ignore[misc]


def test_scorer_parameter_validation() -> None:
    with pytest.raises(ValueError, match="q must"):
        QuantileLogprobScorer(q=1.5)
    with pytest.raises(ValueError, match="min_tokens"):
        EarlyEscalation(min_tokens=0)
    with pytest.raises(ValueError, match="margin"):
        EarlyEscalation(margin=-1.0)
    with pytest.raises(ValueError, match="unknown early-escalation key"):
        EarlyEscalation.from_dict({"min_token": 4})
    with pytest.raises(ValueError, match="known features"):
        CombinedScorer({"mean_logprob": 1.0, "vibes": 2.0})
    with pytest.raises(ValueError):
        CombinedScorer({})


# --- config round trip --------------------------------------------------------------------


@pytest.mark.parametrize(
    "scorer",
    [
        *ALL_SCORERS,
        QuantileLogprobScorer(q=0.25),
        MinLogprobScorer(hedge=HedgeDetector(phrases=["no idea"]), unknown_tokens={"<unk>", "?"}),
    ],
    ids=lambda s: s.to_config()["name"],
)
def test_scorer_config_round_trip(scorer: ConfidenceScorer) -> None:
    cfg = scorer.to_config()
    assert set(cfg) == {"name", "params"}
    restored = scorer_from_config(json.loads(json.dumps(cfg)))
    assert restored == scorer
    assert type(restored) is type(scorer)


def test_scorer_from_config_name_only_and_errors() -> None:
    assert scorer_from_config("min_logprob") == MinLogprobScorer()
    assert scorer_from_config({"name": "mean_logprob"}) == MeanLogprobScorer()
    assert {"mean_logprob", "min_logprob", "quantile_logprob", "margin", "combined"} <= set(
        available_scorers()
    )
    with pytest.raises(ValueError, match="known scorers: .*mean_logprob"):
        scorer_from_config({"name": "entropy_magic"})
    with pytest.raises(ValueError, match="bad parameters for scorer 'mean_logprob'"):
        scorer_from_config({"name": "mean_logprob", "params": {"treshold": 1}})
    with pytest.raises(ValueError, match="unknown key"):
        scorer_from_config({"name": "mean_logprob", "extra": 1})


# --- running / early escalation -----------------------------------------------------------


def test_min_running_is_exact() -> None:
    r = MinLogprobScorer().running(threshold=-1.0)
    r.update([entry("a", -0.5)], "a")
    r.update([entry("b", -1.0)], "ab")  # equal to the threshold: still acceptable
    assert not r.hopeless
    r.update([entry("c", -1.01)], "abc")
    assert r.hopeless and r.hopeless_reason == "below_threshold" and r.exact
    r.update([entry("d", 0.0)], "abcd")  # sticky: cannot recover
    assert r.hopeless and r.n_tokens == 4


@pytest.mark.parametrize("seed", range(20))
def test_min_running_agrees_with_final_decision(seed: int) -> None:
    rng = random.Random(seed)
    values = [-rng.expovariate(3.0) for _ in range(30)]
    threshold = -rng.uniform(0.2, 1.5)
    scorer = MinLogprobScorer()
    r = scorer.running(threshold)
    for i, v in enumerate(values):
        r.update([entry(f"t{i}", v)], "x" * (i + 1))
        prefix_min = min(values[: i + 1])
        assert r.hopeless == (prefix_min < threshold)
    final = scorer.score(chat_logprobs(values), "answer")
    assert r.hopeless == (final.score < threshold)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(
    "scorer", [MeanLogprobScorer(), QuantileLogprobScorer(q=0.2)], ids=["mean", "quantile"]
)
def test_exact_bound_with_max_tokens_is_sound(seed: int, scorer: ConfidenceScorer) -> None:
    """Once 'below_threshold' fires, no completion within max_tokens can reach the threshold."""
    rng = random.Random(seed)
    max_tokens = 20
    threshold = -rng.uniform(0.1, 0.8)
    values = [-rng.expovariate(1.0) for _ in range(max_tokens)]
    no_prediction = EarlyEscalation(min_tokens=10_000)
    r = scorer.running(threshold, max_tokens=max_tokens, early=no_prediction)
    for i, v in enumerate(values):
        r.update([entry("t", v)], "t" * (i + 1))
        if r.hopeless:
            assert r.hopeless_reason == "below_threshold"
            seen = values[: i + 1]
            # best case: pad with log-prob 0 tokens up to any length <= max_tokens
            for extra in range(max_tokens - len(seen) + 1):
                best = scorer.score(chat_logprobs(seen + [0.0] * extra), "answer").score
                assert best < threshold
            return


def test_mean_running_bound_and_prediction() -> None:
    scorer = MeanLogprobScorer()
    early = EarlyEscalation(min_tokens=4, margin=0.5)
    # exact bound: sum/max_tokens < threshold
    r = scorer.running(threshold=-0.5, max_tokens=4, early=early)
    r.update([entry("a", -2.5)], "a")  # best possible final mean: -2.5 / 4 < -0.5
    assert r.hopeless_reason == "below_threshold" and r.exact
    # without max_tokens there is no exact bound; the prediction needs min_tokens
    r = scorer.running(threshold=-0.5, early=early)
    for i in range(3):
        r.update([entry("a", -1.2)], "a" * (i + 1))
        assert not r.hopeless
    r.update([entry("a", -1.2)], "aaaa")
    assert r.hopeless_reason == "predicted_below_threshold"
    assert not r.exact
    # a mean within the margin is not declared hopeless
    r = scorer.running(threshold=-0.5, early=early)
    r.update([entry("a", -0.8)] * 10, "a" * 10)
    assert not r.hopeless


@pytest.mark.parametrize(
    "scorer",
    [MeanLogprobScorer(), QuantileLogprobScorer(q=0.5), CombinedScorer({"mean_logprob": 1.0})],
    ids=["mean", "quantile", "combined"],
)
def test_prediction_rule_is_the_same_for_every_scorer(scorer: ConfidenceScorer) -> None:
    early = EarlyEscalation(min_tokens=3, margin=0.25)
    r = scorer.running(threshold=-1.0, early=early)
    r.update([entry("a", -1.3), entry("b", -1.3)], "ab")
    assert not r.hopeless  # two tokens: not enough evidence yet
    r.update([entry("c", -1.3)], "abc")
    assert r.hopeless_reason == "predicted_below_threshold"  # -1.3 < -1.0 - 0.25


def test_margin_prediction_counts_only_tokens_with_alternatives() -> None:
    early = EarlyEscalation(min_tokens=2, margin=0.0)
    r = MarginScorer().running(threshold=1.0, early=early)
    r.update([entry("a", -0.1), entry("b", -0.1)], "ab")  # no alternatives: no evidence
    assert not r.hopeless
    r.update([entry("c", -0.5, [-0.5, -0.9]), entry("d", -0.5, [-0.5, -0.9])], "abcd")
    assert r.hopeless_reason == "predicted_below_threshold"  # margin 0.4 < 1.0


def test_running_hedge_across_updates_and_unknown() -> None:
    r = MeanLogprobScorer().running(threshold=-5.0)
    pieces = ["Well, ", "I ", "don’t ", "know", " really"]
    text = ""
    for p in pieces[:3]:
        text += p
        r.update([entry(p, -0.01)], text)
        assert not r.hopeless
    text += pieces[3]
    r.update([entry(pieces[3], -0.01)], text)
    assert r.hopeless and r.hopeless_reason == "hedge" and r.exact

    r = MeanLogprobScorer().running(threshold=-5.0)
    r.update([entry("<unk>", -0.01)], "?")
    assert r.hopeless_reason == "unknown_token"


def test_running_hedge_found_in_long_text() -> None:
    r = MeanLogprobScorer().running(threshold=-5.0)
    text = ""
    for i in range(300):
        piece = f"word{i} "
        text += piece
        r.update([entry(piece, -0.01)], text)
    assert not r.hopeless
    for piece in ["I am ", "not ", "sure"]:
        text += piece
        r.update([entry(piece, -0.01)], text)
    assert r.hopeless_reason == "hedge"


def test_running_confidence_matches_one_shot_score() -> None:
    scorer = QuantileLogprobScorer(q=0.3)
    lp = chat_logprobs(UNSURE)
    r = scorer.running(threshold=-100.0)
    text = ""
    for e in lp["content"]:
        text += e["token"]
        r.update([e], text)
    assert not r.hopeless
    assert r.confidence() == scorer.score(lp, text)
    assert r.text == text


def test_running_accepts_chat_logprobs_and_validates() -> None:
    r = MinLogprobScorer().running(threshold=-1.0, max_tokens=10)
    r.update(chat_logprobs([-0.1, -0.2]))
    assert r.n_tokens == 2 and r.text == "t0 t1 "
    with pytest.raises(ValueError):
        MinLogprobScorer().running(threshold=float("nan"))
    with pytest.raises(ValueError):
        MinLogprobScorer().running(threshold=-1.0, max_tokens=0)
