from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from langchain_hybrid.routing.confidence import (
    CombinedScorer,
    Confidence,
    HedgeDetector,
    MinLogprobScorer,
)
from langchain_hybrid.routing.policy import (
    FORMAT_VERSION,
    ForceCloudRule,
    ForceLocalRule,
    MaxLocalContextRule,
    PolicyError,
    RoutingContext,
    RoutingPolicy,
    RuleOutcome,
    message_text,
    rule_from_dict,
)


def conf(score: float, forced_low: Any = None) -> Confidence:
    return Confidence(score=score, features={}, forced_low=forced_low, scorer="mean_logprob")


def ctx(*texts: str, count: int | None = None) -> RoutingContext:
    messages: list[BaseMessage] = [HumanMessage(t) for t in texts]
    return RoutingContext(messages, None if count is None else (lambda ms: count))


def sample_policy() -> RoutingPolicy:
    return RoutingPolicy(
        threshold=-0.75,
        scorer=CombinedScorer({"mean_logprob": 1.0, "min_logprob": 0.2}, bias=0.1),
        rules=[
            ForceLocalRule(pattern=r"\b\d{3}-\d{2}-\d{4}\b", name="ssn"),
            MaxLocalContextRule(max_tokens=2048),
            ForceCloudRule(pattern="(?i)contract law"),
        ],
        version="2025-06-01",
        fitted_on={"n": 500, "target": {"accuracy": 0.9}, "achieved": {"local_share": 0.61}},
    )


# --- decide ---------------------------------------------------------------------------------


def test_decide_threshold() -> None:
    policy = RoutingPolicy(threshold=-0.6)
    assert policy.decide(conf(-0.1)) == ("local", "confident")
    assert policy.decide(conf(-0.6)) == ("local", "confident")  # at the threshold: local
    assert policy.decide(conf(-0.61)) == ("cloud", "low_confidence")


@pytest.mark.parametrize(
    ("forced", "reason"),
    [
        ("hedge", "hedge"),
        ("unknown_token", "unknown_token"),
        ("empty", "empty_answer"),
        ("no_logprobs", "no_logprobs"),
    ],
)
def test_forced_low_escalates_regardless_of_score(forced: str, reason: str) -> None:
    assert RoutingPolicy(threshold=-50.0).decide(conf(0.0, forced)) == ("cloud", reason)


def test_decide_with_real_scorer_output() -> None:
    policy = RoutingPolicy(threshold=-0.6)
    lp = {"content": [{"token": "Paris", "logprob": -0.02, "bytes": None, "top_logprobs": []}]}
    assert policy.decide(policy.scorer.score(lp, "Paris")) == ("local", "confident")
    assert policy.decide(policy.scorer.score(lp, "I'm not sure")) == ("cloud", "hedge")


def test_running_uses_policy_threshold_and_scorer() -> None:
    policy = RoutingPolicy(threshold=-1.0, scorer=MinLogprobScorer())
    r = policy.running(max_tokens=16)
    assert r.threshold == -1.0 and r.max_tokens == 16 and r.scorer is policy.scorer
    r.update([{"token": "x", "logprob": -1.5}], "x")
    assert r.hopeless


# --- rules ------------------------------------------------------------------------------------


def test_message_text_handles_list_content() -> None:
    msg = HumanMessage(
        content=[
            {"type": "text", "text": "first"},
            {"type": "image_url", "image_url": {"url": "data:..."}},
            "second",
        ]
    )
    assert message_text(msg) == "first\nsecond"
    assert message_text(AIMessage("plain")) == "plain"


def test_pattern_rules_match_any_message() -> None:
    rule = ForceLocalRule(pattern="(?i)secret", name="secrets")
    messages: list[BaseMessage] = [SystemMessage("Top SECRET project"), HumanMessage("hello")]
    assert rule.apply(RoutingContext(messages)) == RuleOutcome(
        "local", "rule_force_local", "secrets"
    )
    assert rule.apply(ctx("nothing here")) is None
    cloud = ForceCloudRule(pattern="tax")
    list_msg = HumanMessage(content=[{"type": "text", "text": "my tax return"}])
    outcome = cloud.apply(RoutingContext([list_msg]))
    assert outcome is not None and (outcome.tier, outcome.reason) == ("cloud", "rule_force_cloud")
    assert outcome.rule_name == "force_cloud"


def test_max_local_context_rule() -> None:
    rule = MaxLocalContextRule(max_tokens=100)
    assert rule.apply(ctx("hi", count=100)) is None  # equal: still fits
    outcome = rule.apply(ctx("hi", count=101))
    assert outcome == RuleOutcome("cloud", "context_too_long", "max_local_context")
    # without a counter: about 4 characters per token
    assert rule.apply(ctx("x" * 400)) is None
    assert rule.apply(ctx("x" * 401)) is not None
    with pytest.raises(PolicyError):
        rule_from_dict({"type": "max_local_context", "max_tokens": 0})


def test_rule_order_first_match_wins() -> None:
    local_first = RoutingPolicy(
        threshold=-1.0,
        rules=[ForceLocalRule(pattern="salary", name="hr"), ForceCloudRule(pattern="salary")],
    )
    cloud_first = RoutingPolicy(threshold=-1.0, rules=list(reversed(local_first.rules)))
    c = ctx("What is the salary band?")
    first = local_first.pre_route(c)
    second = cloud_first.pre_route(c)
    assert first is not None and (first.tier, first.rule_name) == ("local", "hr")
    assert second is not None and (second.tier, second.rule_name) == ("cloud", "force_cloud")
    assert local_first.pre_route(ctx("unrelated")) is None


def test_pre_route_accepts_plain_message_list() -> None:
    policy = sample_policy()
    outcome = policy.pre_route([HumanMessage("my ssn is 123-45-6789")])
    assert outcome is not None and outcome.rule_name == "ssn" and outcome.tier == "local"
    long_prompt = [HumanMessage("contract law " * 1000)]
    outcome = policy.pre_route(long_prompt)
    assert outcome is not None and outcome.reason == "context_too_long"  # rule 2 before rule 3


def test_invalid_regex_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        ForceLocalRule(pattern="(unclosed")
    with pytest.raises(PolicyError, match="invalid regular expression"):
        rule_from_dict({"type": "force_cloud", "pattern": "[a-"})


def test_rules_are_immutable_and_strict() -> None:
    rule = ForceLocalRule(pattern="x")
    with pytest.raises(ValueError):
        rule.pattern = "y"
    with pytest.raises(PolicyError, match="unknown rule type 'nope'.*force_cloud"):
        rule_from_dict({"type": "nope"})
    with pytest.raises(PolicyError):
        rule_from_dict({"type": "force_local", "pattern": "x", "typo_field": 1})


# --- JSON round trip --------------------------------------------------------------------------


def test_dict_round_trip() -> None:
    policy = sample_policy()
    data = json.loads(json.dumps(policy.to_dict()))
    assert data["format_version"] == FORMAT_VERSION
    assert [r["type"] for r in data["rules"]] == ["force_local", "max_local_context", "force_cloud"]
    restored = RoutingPolicy.from_dict(data)
    assert restored == policy
    assert restored.pre_route([HumanMessage("123-45-6789")]) == policy.pre_route(
        [HumanMessage("123-45-6789")]
    )


def test_save_and_load(tmp_path: Path) -> None:
    policy = RoutingPolicy(
        threshold=-0.4,
        scorer=MinLogprobScorer(hedge=HedgeDetector(phrases=["no idea"])),
        rules=[ForceCloudRule(pattern="legal", name="legal")],
    )
    path = tmp_path / "policy.json"
    policy.save(path)
    assert json.loads(path.read_text())["scorer"]["name"] == "min_logprob"
    loaded = RoutingPolicy.load(str(path))
    assert loaded == policy
    assert loaded.scorer.score(None, "no idea").forced_low == "hedge"


def test_minimal_hand_written_policy() -> None:
    policy = RoutingPolicy.from_dict({"format_version": 1, "threshold": -1})
    assert policy.threshold == -1.0
    assert policy.scorer.name == "mean_logprob"
    assert policy.rules == [] and policy.version == "1" and policy.fitted_on is None


def test_rules_may_be_given_as_dicts() -> None:
    policy = RoutingPolicy(threshold=-1.0, rules=[{"type": "force_cloud", "pattern": "x"}])  # type: ignore[list-item]
    assert isinstance(policy.rules[0], ForceCloudRule)


# --- bad policies -----------------------------------------------------------------------------


def valid() -> dict[str, Any]:
    return sample_policy().to_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format_version=2), r"format_version 2 is not supported.*upgrade"),
        (lambda d: d.pop("format_version"), "no 'format_version'"),
        (lambda d: d.pop("threshold"), "no 'threshold'"),
        (lambda d: d.update(threshold="high"), "threshold must be a finite number"),
        (lambda d: d.update(threshold=float("inf")), "threshold must be a finite number"),
        (lambda d: d.update(treshold=1), r"unknown key\(s\) \['treshold'\]"),
        (lambda d: d.update(scorer={"name": "vibes"}), "known scorers: .*mean_logprob"),
        (lambda d: d.update(scorer={"name": "mean_logprob", "params": {"x": 1}}), "bad 'scorer'"),
        (lambda d: d.update(rules={"type": "force_local"}), "'rules' must be a list"),
        (lambda d: d["rules"].append({"type": "teleport"}), "bad rule #3.*unknown rule type"),
        (lambda d: d["rules"][0].pop("pattern"), "bad rule #0.*pattern"),
        (lambda d: d.update(version=3), "version must be a string"),
        (lambda d: d.update(fitted_on=[1, 2]), "fitted_on must be a dict"),
    ],
)
def test_bad_policy_content(mutate: Any, message: str) -> None:
    data = valid()
    mutate(data)
    with pytest.raises(PolicyError, match=message):
        RoutingPolicy.from_dict(data)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
    with pytest.raises(PolicyError, match="JSON object"):
        RoutingPolicy.from_dict([1, 2, 3])  # type: ignore[arg-type]


def test_bad_policy_files_name_the_file(tmp_path: Path) -> None:
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{'threshold': -0.5}")
    with pytest.raises(PolicyError, match=r"broken\.json is not valid JSON"):
        RoutingPolicy.load(bad_json)

    future = tmp_path / "future.json"
    future.write_text(json.dumps({**valid(), "format_version": 99}))
    with pytest.raises(PolicyError, match=r"future\.json: policy format_version 99"):
        RoutingPolicy.load(future)

    with pytest.raises(OSError):
        RoutingPolicy.load(tmp_path / "missing.json")


def test_constructor_validation() -> None:
    with pytest.raises(PolicyError, match="threshold"):
        RoutingPolicy(threshold=float("nan"))
    with pytest.raises(PolicyError, match="JSON-serialisable"):
        RoutingPolicy(threshold=-1.0, fitted_on={"when": object()})
    with pytest.raises(PolicyError, match="scorer must be a ConfidenceScorer"):
        RoutingPolicy(threshold=-1.0, scorer="mean_logprob")  # type: ignore[arg-type]
