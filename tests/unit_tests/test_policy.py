from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from langchain_hybrid.errors import LangChainHybridError
from langchain_hybrid.privacy import RegexDetector
from langchain_hybrid.routing.confidence import (
    CombinedScorer,
    Confidence,
    EarlyEscalation,
    HedgeDetector,
    MeanLogprobScorer,
    MinLogprobScorer,
)
from langchain_hybrid.routing.policy import (
    DEFAULT_THRESHOLD,
    FORMAT_VERSION,
    PolicyError,
    RoutingPolicy,
    answer_text,
)
from langchain_hybrid.routing.rules import (
    ForceCloudRule,
    ForceLocalRule,
    MaxLocalContextRule,
    PrivacyRule,
    RoutingContext,
    RuleOutcome,
    available_rules,
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


def test_running_uses_policy_threshold_scorer_and_early_escalation() -> None:
    early = EarlyEscalation(min_tokens=3, margin=0.1)
    policy = RoutingPolicy(threshold=-1.0, scorer=MinLogprobScorer(), early_escalation=early)
    r = policy.running(max_tokens=16)
    assert r.threshold == -1.0 and r.max_tokens == 16 and r.scorer is policy.scorer
    assert r.early is early
    r.update([{"token": "x", "logprob": -1.5}], "x")
    assert r.hopeless


# --- rules ------------------------------------------------------------------------------------


def test_rules_see_list_content_whole_and_tool_call_arguments() -> None:
    split = HumanMessage(
        content=[
            {"type": "text", "text": "my number is 123-45"},
            {"type": "image_url", "image_url": {"url": "data:..."}},
            "-6789",
        ]
    )
    call = AIMessage(
        "", tool_calls=[{"name": "lookup", "args": {"ssn": "987-65-4321"}, "id": "c1"}]
    )
    assert RoutingContext([split, call]).texts() == [
        "my number is 123-45-6789",
        "",
        '{"ssn": "987-65-4321"}',
    ]
    ssn = ForceLocalRule(pattern=r"\d{3}-\d{2}-\d{4}", name="ssn")
    assert ssn.apply(RoutingContext([split])) is not None
    assert ssn.apply(RoutingContext([HumanMessage("what did I send?"), call])) is not None


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        ("plain question", ["plain question"]),
        ([("system", "be brief"), ("human", "hi")], ["be brief", "hi"]),
        ({"question": "q", "context": [Document(page_content="d1"), "d2"]}, ["q", "d1", "d2"]),
        ({"n": 3, "nested": {"deep": "x"}}, ["3", "x"]),
        (None, []),
    ],
)
def test_context_from_any_runnable_input(value: Any, texts: list[str]) -> None:
    assert RoutingContext.from_input(value).texts() == texts


def test_answer_text_is_the_text_or_the_tool_calls() -> None:
    assert answer_text(AIMessage("plain")) == "plain"
    call = AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "1"}])
    assert json.loads(answer_text(call)) == [{"name": "f", "args": {"x": 1}}]


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


def test_local_only_rules_win_whatever_their_place() -> None:
    rules = [
        ForceCloudRule(pattern="salary"),
        MaxLocalContextRule(max_tokens=2),
        ForceLocalRule(pattern="salary", name="hr"),
    ]
    c = ctx("What is the salary band?")
    for order in (rules, list(reversed(rules))):
        outcome = RoutingPolicy(threshold=-1.0, rules=order).pre_route(c)
        assert outcome is not None and (outcome.tier, outcome.rule_name) == ("local", "hr")
    # ... and over the caller's capability verdict (tools the local tier cannot call)
    tools = RuleOutcome("cloud", "local_unsupported", "local_cannot_call_tools")
    outcome = RoutingPolicy(threshold=-1.0, rules=rules).pre_route(c, capability=tools)
    assert outcome is not None and outcome.reason == "rule_force_local"


def test_capability_verdict_comes_before_cloud_rules_and_order_holds_within_a_stage() -> None:
    policy = RoutingPolicy(
        threshold=-1.0,
        rules=[ForceCloudRule(pattern="x", name="first"), ForceCloudRule(pattern="x", name="2nd")],
    )
    assert policy.pre_route(ctx("x")) == RuleOutcome("cloud", "rule_force_cloud", "first")
    tools = RuleOutcome("cloud", "local_unsupported", "local_cannot_call_tools")
    assert policy.pre_route(ctx("x"), capability=tools) == tools
    assert policy.pre_route(ctx("unrelated")) is None
    assert available_rules() == ("force_cloud", "force_local", "max_local_context", "privacy")


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
    policy = RoutingPolicy.from_dict({"format_version": 2, "threshold": -1})
    assert policy.threshold == -1.0
    assert policy.scorer.name == "mean_logprob"
    assert policy.rules == () and policy.version == "1" and policy.fitted_on is None
    assert policy == RoutingPolicy(threshold=-1.0)


def test_version_1_files_are_read_with_their_early_escalation_settings() -> None:
    v1 = {
        "format_version": 1,
        "threshold": -0.5,
        "scorer": {"name": "mean_logprob", "params": {"early_min_tokens": 4, "early_margin": 0.2}},
        "rules": [],
    }
    policy = RoutingPolicy.from_dict(v1)
    assert policy.scorer == MeanLogprobScorer()
    assert policy.early_escalation == EarlyEscalation(min_tokens=4, margin=0.2)
    assert RoutingPolicy.from_dict(policy.to_dict()) == policy


def test_rules_may_be_given_as_dicts() -> None:
    policy = RoutingPolicy(threshold=-1.0, rules=[{"type": "force_cloud", "pattern": "x"}])  # type: ignore[list-item]
    assert isinstance(policy.rules[0], ForceCloudRule)


# --- bad policies -----------------------------------------------------------------------------


def valid() -> dict[str, Any]:
    return sample_policy().to_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format_version=3), r"format_version 3 is not supported.*upgrade"),
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
        (lambda d: d.update(escalate_finish_reasons="length"), "'escalate_finish_reasons' must"),
        (lambda d: d.update(early_escalation={"min_tokens": 0}), "bad 'early_escalation'"),
        (lambda d: d.update(early_escalation={"patience": 3}), "unknown early-escalation"),
    ],
)
def test_bad_policy_content(mutate: Any, message: str) -> None:
    data = valid()
    mutate(data)
    with pytest.raises(PolicyError, match=message):
        RoutingPolicy.from_dict(data)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError) and issubclass(PolicyError, LangChainHybridError)
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


# --- the policy holds every setting -----------------------------------------------------------


def test_defaults() -> None:
    policy = RoutingPolicy()
    assert policy.threshold == DEFAULT_THRESHOLD == -0.6
    assert policy.scorer == MeanLogprobScorer()
    assert policy.escalate_finish_reasons == frozenset({"length", "timeout", "cancelled"})
    assert policy.early_escalation == EarlyEscalation()


def test_every_setting_survives_json() -> None:
    policy = RoutingPolicy(
        threshold=-1.25,
        scorer=MinLogprobScorer(hedge=HedgeDetector(phrases=["no idea"])),
        rules=[ForceLocalRule(pattern="secret")],
        privacy=PrivacyRule(
            detectors=["email", RegexDetector("ticket", "T-[0-9]+", "[T]")], action="redact"
        ),
        escalate_finish_reasons=["length"],
        early_escalation=EarlyEscalation(enabled=False, min_tokens=5, margin=0.3),
        version="v9",
        fitted_on={"n": 10},
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert set(data) == {
        "format_version",
        "version",
        "threshold",
        "scorer",
        "rules",
        "privacy",
        "escalate_finish_reasons",
        "early_escalation",
        "fitted_on",
    }
    assert RoutingPolicy.from_dict(data) == policy


def test_policy_is_immutable_and_override_makes_a_new_one() -> None:
    policy = RoutingPolicy(threshold=-0.6, rules=[ForceLocalRule(pattern="x")])
    with pytest.raises(AttributeError):
        policy.threshold = -1.0  # type: ignore[misc]
    stricter = policy.override(threshold=-0.2, scorer=MinLogprobScorer())
    assert (stricter.threshold, stricter.scorer) == (-0.2, MinLogprobScorer())
    assert stricter.rules == policy.rules and policy.threshold == -0.6
    assert policy.override() is policy
    with pytest.raises(PolicyError, match="threshold"):
        policy.override(threshold=float("inf"))


# --- judge ----------------------------------------------------------------------------------


def answer(
    tokens: list[tuple[str, float]], finish: str | None = "stop", content: str | None = None
) -> AIMessage:
    metadata: dict[str, Any] = {
        "logprobs": {"content": [{"token": t, "logprob": lp} for t, lp in tokens]}
    }
    if finish is not None:
        metadata["finish_reason"] = finish
    return AIMessage(
        content if content is not None else "".join(t for t, _ in tokens),
        response_metadata=metadata,
    )


def test_judge_keeps_a_confident_finished_answer() -> None:
    verdict = RoutingPolicy().judge(answer([("Paris", -0.1), (".", -0.05)]))
    assert (verdict.escalate, verdict.reason, verdict.tier) == (False, "confident", "local")
    assert verdict.confidence.score == pytest.approx(-0.075)
    assert verdict.features["n_tokens"] == 2 and verdict.n_tokens == 2
    assert verdict.finish_reason == "stop" and not verdict.early_abort


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("length", "truncated"), ("timeout", "unfinished"), ("cancelled", "unfinished")],
)
def test_answers_that_did_not_finish_naturally_escalate(finish: str, reason: str) -> None:
    confident = answer([("The", -0.01)], finish=finish)
    verdict = RoutingPolicy(threshold=-2.0).judge(confident)
    assert (verdict.escalate, verdict.reason, verdict.finish_reason) == (True, reason, finish)
    # the policy says which finish reasons escalate
    keep = RoutingPolicy(threshold=-2.0, escalate_finish_reasons=["length"]).judge(confident)
    assert keep.escalate is (finish == "length")


def test_low_confidence_is_the_reason_even_when_truncated() -> None:
    verdict = RoutingPolicy().judge(answer([("x", -3.0)], finish="length"))
    assert verdict.reason == "low_confidence"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (AIMessage(""), "empty_answer"),
        (AIMessage("no log-probs here"), "no_logprobs"),
        (None, "no_logprobs"),
        (answer([("I", -0.01), (" don't", -0.01), (" know", -0.01)]), "hedge"),
    ],
)
def test_judge_forced_reasons(message: AIMessage | None, reason: str) -> None:
    verdict = RoutingPolicy(threshold=-50.0).judge(message)
    assert verdict.escalate and verdict.reason == reason


def test_judge_replays_early_escalation() -> None:
    early = EarlyEscalation(min_tokens=3, margin=0.5)
    policy = RoutingPolicy(threshold=-0.6, early_escalation=early)
    tokens = [(f" w{i}", -1.5) for i in range(20)]
    verdict = policy.judge(answer(tokens))
    assert verdict.early_abort and verdict.reason == "early_abort" and verdict.n_tokens == 3
    # the exact bound fires at once with the token limit
    assert policy.judge(answer(tokens), max_tokens=4).n_tokens == 2
    # hedges stop early with their own reason
    hedge = answer([("I", -0.01), (" don't", -0.01), (" know", -0.01), (" sorry", -0.01)])
    stopped = policy.judge(hedge)
    assert (stopped.reason, stopped.early_abort, stopped.n_tokens) == ("hedge", True, 3)
    # off: every answer is judged whole
    whole = RoutingPolicy(threshold=-0.6, early_escalation=EarlyEscalation(enabled=False))
    verdict = whole.judge(answer(tokens))
    assert (verdict.reason, verdict.early_abort, verdict.n_tokens) == ("low_confidence", False, 20)


def test_watch_and_judge_agree() -> None:
    policy = RoutingPolicy(threshold=-0.8, early_escalation=EarlyEscalation(min_tokens=2))
    message = answer([("a", -0.2), ("b", -2.0), ("c", -2.0), ("d", -0.1)])
    watch = policy.watch()
    stopped = None
    for entry in message.response_metadata["logprobs"]["content"]:
        stopped = watch.add([entry], entry["token"])
        if stopped is not None:
            break
    assert stopped == policy.judge(message)
    assert stopped is not None and stopped.n_tokens == 3
