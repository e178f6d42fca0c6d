"""RouteDecision: the one record of how a request was routed and why.

Every surface (``response_metadata["routing"]``, the ``hybrid_route`` callback event,
LangSmith metadata, the server response, the evaluation table) is a view of it.

Example:
    >>> d = RouteDecision(tier="local", reason="confident", confidence=-0.2, threshold=-0.6)
    >>> RouteDecision.from_dict(d.as_dict()) == d
    True
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

__all__ = ["ROUTE_REASONS", "TIERS", "RouteDecision", "RouteReason", "Tier"]

Tier = Literal["local", "cloud"]
#: The tiers that can answer.
TIERS: tuple[Tier, ...] = get_args(Tier)

RouteReason = Literal[
    "confident",
    "low_confidence",
    "hedge",
    "unknown_token",
    "empty_answer",
    "no_logprobs",
    "early_abort",
    "predicted_unlikely",
    "rule_force_local",
    "privacy_forced_local",
    "rule_force_cloud",
    "context_too_long",
    "local_unsupported",
    "local_error",
    "invalid_tool_call",
    "invalid_structured_output",
    "sticky_escalation",
    "truncated",
    "unfinished",
    "cloud_error",
    "cloud_timeout",
    "cloud_auth_error",
    "cloud_bad_request",
    "cloud_stream_broken",
    "cloud_circuit_open",
    "budget_exhausted",
]
#: The closed set of routing reasons (see :class:`RouteDecision` for their meaning).
ROUTE_REASONS: tuple[RouteReason, ...] = get_args(RouteReason)

_FLOOR = -100.0
_MAX = 1e300


def _number(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be a number, got {x!r}")
    v = float(x)
    if math.isnan(v) or v == -math.inf:
        return _FLOOR
    return min(_MAX, v)


def _optional(x: object, name: str) -> float | None:
    return None if x is None else _number(x, name)


def check_route(tier: object, reason: object) -> None:
    """Raise ``ValueError`` unless ``tier`` and ``reason`` are in the closed sets.

    Example:
        >>> check_route("local", "confident")
    """
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}; got {tier!r}")
    if reason not in ROUTE_REASONS:
        raise ValueError(f"reason must be one of {', '.join(ROUTE_REASONS)}; got {reason!r}")


@dataclass(frozen=True)
class RouteDecision:
    """What happened to one request and why (frozen; ``as_dict()`` is JSON-safe).

    ``reason`` is one of ``ROUTE_REASONS``:

    ===============================  ======================================================
    reason                           meaning
    ===============================  ======================================================
    ``confident``                    local answer scored at or above the threshold; kept
    ``low_confidence``               local answer scored below the threshold; escalated
    ``hedge``                        local answer contained a hedging phrase; escalated
    ``unknown_token``                local answer contained an unknown token; escalated
    ``empty_answer``                 local answer was empty; escalated
    ``no_logprobs``                  local tier gave no usable log-probs; escalated
    ``early_abort``                  local generation was stopped early (hopeless); escalated
    ``predicted_unlikely``           the policy's probe on the local model's state at the
                                     end of the prompt predicted a failing answer; sent to
                                     the cloud before the local answer was written
    ``rule_force_local``             a pre-routing rule (``rule``) sent it to the local tier
    ``privacy_forced_local``         the privacy rule (``rule``) found data that must stay
                                     local (detectors in ``privacy``); answered locally only
    ``rule_force_cloud``             a pre-routing rule (``rule``) sent it to the cloud tier
    ``context_too_long``             the prompt exceeds the local context limit; sent to cloud
    ``local_unsupported``            the local tier cannot serve the request (tools it cannot
                                     call, non-text content); sent to cloud
    ``local_error``                  the local tier raised an error; sent to cloud
    ``invalid_tool_call``            the local answer's tool call named an unknown tool, had
                                     arguments that are not JSON or fail the tool's schema,
                                     or repeated a call already made in the conversation;
                                     a required tool call was not made; or the text held
                                     tool-call markup; escalated
    ``invalid_structured_output``    the local answer failed the structured-output
                                     schema (``response_format``, ``with_structured_output``);
                                     escalated
    ``sticky_escalation``            an earlier turn of the same conversation thread was
                                     answered by the cloud and the policy's
                                     ``sticky_escalation`` is on; sent to cloud
    ``truncated``                    the local answer was cut off by its token limit
                                     (``finish_reason="length"``); escalated
    ``unfinished``                   the local answer did not finish naturally (``timeout``,
                                     ``cancelled``: the policy's ``escalate_finish_reasons``);
                                     escalated
    ``cloud_error``                  the cloud was wanted but failed (server error, rate limit
                                     after the client's retries, dropped connection, malformed
                                     reply); the local answer was returned (``degraded``)
    ``cloud_timeout``                the cloud timed out, or the call's deadline left it no
                                     time; the local answer was returned (``degraded``)
    ``cloud_auth_error``             the cloud refused the credentials (401/403); local answer
                                     returned (``degraded``), a warning logged once per model
    ``cloud_bad_request``            the cloud rejected the request (400/404/422); local answer
                                     returned (``degraded``), a warning logged once per model
    ``cloud_stream_broken``          the cloud's stream broke after part of its answer was
                                     shown, or ended without a finish reason
    ``cloud_circuit_open``           the cloud failed repeatedly and its circuit breaker is
                                     open; the cloud was skipped, the local answer returned
    ``budget_exhausted``             the cloud budget is spent; the cloud was skipped, the
                                     local answer returned
    ===============================  ======================================================

    ``tier`` is the tier whose answer was returned. ``escalated`` is True when the cloud
    tier was asked after a local attempt; ``degraded`` is True when the cloud was wanted but
    failed or was skipped (circuit open, budget spent) and the local answer was returned
    instead; ``reason`` then says what went wrong and ``escalation_reason`` why the cloud
    was wanted. ``escalation_reason`` is set whenever the cloud was wanted (equal to
    ``reason`` when the cloud answered), None when the local answer was kept. ``failed``
    is True when the call returned no answer but raised an error carrying this decision
    (``RoutedCallError``, ``BothTiersFailedError``). ``error`` says what failed: the local
    tier's error and the cloud's, each prefixed with its tier.
    ``local_output_tokens`` counts local tokens spent, also on escalated requests;
    ``finish_reason`` is the local answer's, when there was one. ``usage`` is the token
    usage of the call that produced the answer (``input_tokens``, ``output_tokens``,
    ``total_tokens``), or None when that tier reported none. ``cached`` is True when the
    answer came from LangChain's cache: nothing was called, nothing was spent
    (``cost_usd`` 0, no latencies), and ``cost_avoided_usd`` is what the call would have
    cost in the cloud. ``privacy`` is set when a privacy rule fired: ``{"rule": name,
    "action": "local" | "redact", "detectors": [names]}`` (names of detectors, never the
    data); with ``"redact"`` the cloud, if asked, received placeholders instead.
    ``model`` names the model whose answer was returned (the answer's ``model_name``, else
    the tier's model): in a cascade each step's decision names the model that answered,
    whatever its tier is called in that step.
    Non-finite numbers are clamped (NaN and -inf become -100.0, +inf 1e300) and the text
    fields are coerced with ``str`` (so ``error=exc`` works): ``json.dumps(d.as_dict())``
    always works.

    Example:
        >>> d = RouteDecision(tier="cloud", reason="low_confidence", confidence=-1.3,
        ...                   threshold=-0.6, escalated=True, local_output_tokens=12)
        >>> d.as_dict()["reason"], d.escalated
        ('low_confidence', True)
    """

    tier: Tier
    reason: RouteReason
    confidence: float | None = None
    threshold: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    escalated: bool = False
    degraded: bool = False
    early_abort: bool = False
    local_latency_s: float | None = None
    cloud_latency_s: float | None = None
    cost_usd: float = 0.0
    cost_avoided_usd: float = 0.0
    policy_version: str | None = None
    scorer: str | None = None
    local_output_tokens: int = 0
    rule: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    cached: bool = False
    escalation_reason: RouteReason | None = None
    failed: bool = False
    privacy: dict[str, Any] | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        check_route(self.tier, self.reason)
        if self.escalation_reason is not None:
            check_route(self.tier, self.escalation_reason)
        if not isinstance(self.features, Mapping):
            raise ValueError(f"features must be a mapping, got {type(self.features).__name__}")
        features = {str(k): _number(v, f"features[{k!r}]") for k, v in self.features.items()}
        object.__setattr__(self, "features", features)
        for name in ("confidence", "threshold", "local_latency_s", "cloud_latency_s"):
            object.__setattr__(self, name, _optional(getattr(self, name), name))
        for name in ("cost_usd", "cost_avoided_usd"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        for name in ("policy_version", "scorer", "rule", "error", "finish_reason", "model"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else str(value))
        if self.usage is not None:
            if not isinstance(self.usage, Mapping):
                raise ValueError(f"usage must be a mapping or None, got {self.usage!r}")
            object.__setattr__(self, "usage", json.loads(json.dumps(dict(self.usage))))
        if self.privacy is not None:
            if not isinstance(self.privacy, Mapping):
                raise ValueError(f"privacy must be a mapping or None, got {self.privacy!r}")
            object.__setattr__(self, "privacy", json.loads(json.dumps(dict(self.privacy))))
        for name in ("escalated", "degraded", "early_abort", "cached", "failed"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        tokens = self.local_output_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"local_output_tokens must be an int >= 0, got {tokens!r}")

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict with every field.

        Example:
            >>> import json
            >>> json.loads(json.dumps(RouteDecision("local", "confident").as_dict()))["tier"]
            'local'
        """
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["features"] = dict(self.features)
        values["usage"] = copy.deepcopy(self.usage)
        values["privacy"] = copy.deepcopy(self.privacy)
        return values

    def as_cached(self) -> RouteDecision:
        """Return this decision as replayed by a cache hit: nothing called, nothing spent.

        The answer keeps its tier and reason; ``cached`` is True, the latencies are None,
        ``cost_usd`` is 0 and ``cost_avoided_usd`` is what the call would have cost in the
        cloud (its original cloud cost, or the cost a local answer avoided).

        Example:
            >>> d = RouteDecision("cloud", "low_confidence", escalated=True, cost_usd=0.002,
            ...                   cloud_latency_s=0.9).as_cached()
            >>> d.cached, d.cost_usd, d.cost_avoided_usd, d.cloud_latency_s
            (True, 0.0, 0.002, None)
        """
        return replace(
            self,
            cached=True,
            cost_usd=0.0,
            cost_avoided_usd=self.cost_usd if self.tier == "cloud" else self.cost_avoided_usd,
            local_latency_s=None,
            cloud_latency_s=None,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteDecision:
        """Rebuild a decision from :meth:`as_dict` output; unknown keys are ignored.

        Example:
            >>> RouteDecision.from_dict({"tier": "cloud", "reason": "hedge"}).reason
            'hedge'
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a route decision must be a mapping, got {type(data).__name__}")
        missing = [k for k in ("tier", "reason") if k not in data]
        if missing:
            raise ValueError(f"route decision is missing {', '.join(missing)}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
