from __future__ import annotations

import dataclasses
import json
from typing import get_args

import pytest

from langchain_hybrid.routing.decision import (
    ROUTE_REASONS,
    TIERS,
    RouteDecision,
    RouteReason,
    Tier,
)

DESIGN_FIELDS = {
    "tier",
    "reason",
    "confidence",
    "threshold",
    "features",
    "escalated",
    "degraded",
    "early_abort",
    "local_latency_s",
    "cloud_latency_s",
    "cost_usd",
    "cost_avoided_usd",
    "policy_version",
}


def full_decision() -> RouteDecision:
    return RouteDecision(
        tier="local",
        reason="low_confidence",
        confidence=-1.25,
        threshold=-0.6,
        features={"mean_logprob": -1.25, "min_logprob": -4.0, "n_tokens": 17.0},
        escalated=True,
        degraded=True,
        early_abort=False,
        local_latency_s=0.42,
        cloud_latency_s=None,
        cost_usd=0.0,
        cost_avoided_usd=0.0012,
        policy_version="3",
        scorer="mean_logprob",
        local_output_tokens=17,
        rule=None,
        error="APIConnectionError: Connection error.",
    )


def test_reason_set_is_closed_and_documented() -> None:
    assert set(ROUTE_REASONS) == set(get_args(RouteReason))
    assert len(ROUTE_REASONS) == len(set(ROUTE_REASONS))
    assert set(TIERS) == set(get_args(Tier)) == {"local", "cloud"}
    assert "cached" not in ROUTE_REASONS
    doc = RouteDecision.__doc__ or ""
    for reason in ROUTE_REASONS:
        assert f"``{reason}``" in doc


def test_has_every_design_field() -> None:
    names = {f.name for f in dataclasses.fields(RouteDecision)}
    assert names >= DESIGN_FIELDS
    assert {"scorer", "local_output_tokens", "rule", "error"} <= names


def test_minimal_decision_defaults() -> None:
    d = RouteDecision(tier="cloud", reason="rule_force_cloud", rule="legal")
    assert d.confidence is None and d.threshold is None
    assert d.features == {}
    assert not (d.escalated or d.degraded or d.early_abort)
    assert d.cost_usd == 0.0 and d.local_output_tokens == 0
    assert d.rule == "legal"


def test_json_round_trip() -> None:
    d = full_decision()
    as_json = json.dumps(d.as_dict(), allow_nan=False)
    restored = RouteDecision.from_dict(json.loads(as_json))
    assert restored == d
    assert set(d.as_dict()) == {f.name for f in dataclasses.fields(RouteDecision)}


def test_as_dict_is_a_copy() -> None:
    d = full_decision()
    data = d.as_dict()
    data["features"]["mean_logprob"] = 0.0
    assert d.features["mean_logprob"] == -1.25


def test_non_finite_numbers_are_made_json_safe() -> None:
    d = RouteDecision(
        tier="cloud",
        reason="low_confidence",
        confidence=float("-inf"),
        features={"min_logprob": float("-inf"), "perplexity": float("inf"), "x": float("nan")},
    )
    data = json.loads(json.dumps(d.as_dict(), allow_nan=False))
    assert data["confidence"] == -100.0
    assert data["features"]["min_logprob"] == -100.0
    assert data["features"]["x"] == -100.0
    assert data["features"]["perplexity"] > 1e100


def test_error_text_is_coerced_to_string() -> None:
    exc = TimeoutError("slow")
    d = RouteDecision(tier="local", reason="low_confidence", error=exc)  # type: ignore[arg-type]
    assert d.error == "slow"
    json.dumps(d.as_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tier": "edge", "reason": "confident"}, "tier must be one of local, cloud"),
        ({"tier": "local", "reason": "cached"}, "reason must be one of confident, "),
        (
            {"tier": "local", "reason": "confident", "local_output_tokens": -1},
            "local_output_tokens",
        ),
        ({"tier": "local", "reason": "confident", "confidence": "high"}, "confidence"),
        ({"tier": "local", "reason": "confident", "features": {"a": None}}, "features"),
    ],
)
def test_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RouteDecision(**kwargs)  # type: ignore[arg-type]


def test_frozen() -> None:
    d = full_decision()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.tier = "cloud"  # type: ignore[misc]
    assert dataclasses.replace(d, tier="cloud").tier == "cloud"


def test_from_dict_ignores_unknown_keys_and_requires_tier_and_reason() -> None:
    d = RouteDecision.from_dict({"tier": "local", "reason": "confident", "added_later": 1})
    assert d == RouteDecision(tier="local", reason="confident")
    with pytest.raises(ValueError, match="missing reason"):
        RouteDecision.from_dict({"tier": "local"})
    with pytest.raises(ValueError, match="reason must be one of"):
        RouteDecision.from_dict({"tier": "local", "reason": "because"})
