"""RoutingPolicy: ordered pre-routing rules, a confidence scorer and a threshold.

A policy decides twice per request: :meth:`RoutingPolicy.pre_route` may settle the tier
before any generation (the first matching rule wins); otherwise :meth:`RoutingPolicy.decide`
turns the local answer's :class:`~langchain_hybrid.routing.confidence.Confidence` into a
tier and a reason. Policies are saved as JSON (what calibration writes).

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> policy = RoutingPolicy(threshold=-0.6, rules=[ForceCloudRule(pattern=r"(?i)legal")])
    >>> policy.pre_route(RoutingContext([HumanMessage("A legal question")])).reason
    'rule_force_cloud'
    >>> RoutingPolicy.from_dict(policy.to_dict()) == policy
    True
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from langchain_hybrid.routing.confidence import (
    Confidence,
    ConfidenceScorer,
    MeanLogprobScorer,
    RunningConfidence,
    scorer_from_config,
)
from langchain_hybrid.routing.decision import RouteReason, Tier, check_route

__all__ = [
    "FORMAT_VERSION",
    "ForceCloudRule",
    "ForceLocalRule",
    "MaxLocalContextRule",
    "PolicyError",
    "PolicyRule",
    "RoutingContext",
    "RoutingPolicy",
    "RuleOutcome",
    "message_text",
    "register_rule",
    "rule_from_dict",
]

#: Version of the policy file format this code reads and writes.
FORMAT_VERSION = 1

_FORCED_TO_REASON: dict[str, RouteReason] = {
    "hedge": "hedge",
    "unknown_token": "unknown_token",
    "empty": "empty_answer",
    "no_logprobs": "no_logprobs",
}


class PolicyError(ValueError):
    """A policy (file) is invalid; the message says what is wrong and what to do.

    Example:
        >>> try:
        ...     RoutingPolicy.from_dict({"format_version": 99, "threshold": -1.0})
        ... except PolicyError as e:
        ...     print(str(e).split(";")[0])
        policy format_version 99 is not supported (this langchain-hybrid reads 1)
    """


def message_text(message: BaseMessage) -> str:
    """Return the text of a message: string content, or the text parts of list content.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> message_text(HumanMessage(content=[{"type": "text", "text": "hi"},
        ...                                    {"type": "image_url", "image_url": {"url": "x"}}]))
        'hi'
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            text = part.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "\n".join(parts)


@dataclass
class RoutingContext:
    """What pre-routing rules see: the messages and, optionally, a prompt token counter.

    Without ``count_tokens`` the prompt length is estimated as one token per 4 characters.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> RoutingContext([HumanMessage("12345678")]).prompt_tokens()
        2
    """

    messages: list[BaseMessage]
    count_tokens: Callable[[list[BaseMessage]], int] | None = None

    def texts(self) -> list[str]:
        """Return the text of each message (see :func:`message_text`).

        Example:
            >>> from langchain_core.messages import HumanMessage, SystemMessage
            >>> RoutingContext([SystemMessage("be brief"), HumanMessage("hi")]).texts()
            ['be brief', 'hi']
        """
        return [message_text(m) for m in self.messages]

    def prompt_tokens(self) -> int:
        """Count (or estimate) the prompt tokens.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> RoutingContext([HumanMessage("hi")], count_tokens=lambda ms: 7).prompt_tokens()
            7
        """
        if self.count_tokens is not None:
            return int(self.count_tokens(self.messages))
        return math.ceil(sum(len(t) for t in self.texts()) / 4)


@dataclass(frozen=True)
class RuleOutcome:
    """A pre-routing verdict: which tier, with which reason, from which rule.

    Example:
        >>> RuleOutcome("cloud", "context_too_long", "max_local_context").tier
        'cloud'
    """

    tier: Tier
    reason: RouteReason
    rule_name: str

    def __post_init__(self) -> None:
        check_route(self.tier, self.reason)


_R = TypeVar("_R", bound="PolicyRule")
_RULE_TYPES: dict[str, type[PolicyRule]] = {}


def register_rule(cls: type[_R]) -> type[_R]:
    """Register a rule class under its ``type`` so policy files can refer to it.

    Registering the same class twice is a no-op.

    Example:
        >>> register_rule(ForceLocalRule) is ForceLocalRule
        True
    """
    rule_type = getattr(cls, "type", None)
    if not isinstance(rule_type, str) or not rule_type:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute 'type'")
    existing = _RULE_TYPES.get(rule_type)
    if existing is not None and existing is not cls:
        raise ValueError(f"a rule type {rule_type!r} is already registered ({existing.__name__})")
    _RULE_TYPES[rule_type] = cls
    return cls


class PolicyRule(BaseModel, ABC):
    """Base class of pre-routing rules (immutable pydantic models, JSON with a ``type``).

    Example:
        >>> ForceLocalRule(pattern="secret").to_dict()
        {'type': 'force_local', 'name': 'force_local', 'pattern': 'secret'}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    name: str

    @abstractmethod
    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return an outcome if this rule decides the request, else None."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict of this rule, with its ``type``.

        Example:
            >>> MaxLocalContextRule(max_tokens=2048).to_dict()["type"]
            'max_local_context'
        """
        return {"type": self.type, **self.model_dump(mode="json")}


def rule_from_dict(data: Mapping[str, Any]) -> PolicyRule:
    """Build a rule from :meth:`PolicyRule.to_dict` output; raises :class:`PolicyError`.

    Example:
        >>> rule_from_dict({"type": "max_local_context", "max_tokens": 100}).max_tokens
        100
    """
    if not isinstance(data, Mapping):
        raise PolicyError(f"a rule must be a JSON object, got {type(data).__name__}")
    rule_type = data.get("type")
    cls = _RULE_TYPES.get(rule_type) if isinstance(rule_type, str) else None
    if cls is None:
        raise PolicyError(
            f"unknown rule type {rule_type!r}; known types: {', '.join(sorted(_RULE_TYPES))}"
        )
    try:
        return cls.model_validate({k: v for k, v in data.items() if k != "type"})
    except ValidationError as e:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: {err['msg']}" for err in e.errors()
        )
        raise PolicyError(f"invalid {rule_type!r} rule: {errors}") from e


class _PatternRule(PolicyRule):
    pattern: str
    _regex: re.Pattern[str] = PrivateAttr()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"invalid regular expression {value!r}: {e}") from e
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Compile the pattern once."""
        self._regex = re.compile(self.pattern)

    def matches(self, ctx: RoutingContext) -> bool:
        """Return True if the pattern is found in the text of any message.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> rule = ForceLocalRule(pattern="[0-9]{3}-[0-9]{2}")
            >>> rule.matches(RoutingContext([HumanMessage("id 123-45")]))
            True
        """
        return any(self._regex.search(text) for text in ctx.texts())


@register_rule
class ForceLocalRule(_PatternRule):
    """Keep the request local (reason ``rule_force_local``) if any message matches ``pattern``.

    ``pattern`` is a Python regular expression searched in each message's text
    (use ``(?i)`` for case-insensitive matching).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> ForceLocalRule(pattern="(?i)confidential", name="nda").apply(
        ...     RoutingContext([HumanMessage("CONFIDENTIAL memo")]))
        RuleOutcome(tier='local', reason='rule_force_local', rule_name='nda')
    """

    type: ClassVar[str] = "force_local"
    name: str = "force_local"

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return a local outcome if the pattern matches.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> ForceLocalRule(pattern="x").apply(RoutingContext([HumanMessage("y")])) is None
            True
        """
        return RuleOutcome("local", "rule_force_local", self.name) if self.matches(ctx) else None


@register_rule
class ForceCloudRule(_PatternRule):
    """Send the request to the cloud (reason ``rule_force_cloud``) if any message matches.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> ForceCloudRule(pattern="(?i)prove").apply(
        ...     RoutingContext([HumanMessage("prove it")])).tier
        'cloud'
    """

    type: ClassVar[str] = "force_cloud"
    name: str = "force_cloud"

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return a cloud outcome if the pattern matches.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> ForceCloudRule(pattern="x").apply(RoutingContext([HumanMessage("y")])) is None
            True
        """
        return RuleOutcome("cloud", "rule_force_cloud", self.name) if self.matches(ctx) else None


@register_rule
class MaxLocalContextRule(PolicyRule):
    """Send prompts longer than ``max_tokens`` to the cloud (reason ``context_too_long``).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> rule = MaxLocalContextRule(max_tokens=10)
        >>> rule.apply(RoutingContext([HumanMessage("hi")], count_tokens=lambda ms: 11)).reason
        'context_too_long'
    """

    type: ClassVar[str] = "max_local_context"
    name: str = "max_local_context"
    max_tokens: int = Field(ge=1)

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return a cloud outcome if the prompt has more than ``max_tokens`` tokens.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> MaxLocalContextRule(max_tokens=10).apply(RoutingContext([HumanMessage("hi")]))
        """
        if ctx.prompt_tokens() > self.max_tokens:
            return RuleOutcome("cloud", "context_too_long", self.name)
        return None


_KEYS = ("format_version", "version", "threshold", "scorer", "rules", "fitted_on")


@dataclass
class RoutingPolicy:
    """Threshold, scorer and ordered pre-routing rules; saved and loaded as JSON.

    ``fitted_on`` records what calibration fitted the policy on (data size, target,
    achieved figures); it must be JSON-serialisable.

    Example:
        >>> policy = RoutingPolicy(threshold=-0.6)
        >>> from langchain_hybrid.routing.confidence import Confidence
        >>> policy.decide(Confidence(score=-0.2, features={}, forced_low=None, scorer="x"))
        ('local', 'confident')
    """

    threshold: float
    scorer: ConfidenceScorer = field(default_factory=MeanLogprobScorer)
    rules: list[PolicyRule] = field(default_factory=list)
    version: str = "1"
    fitted_on: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise PolicyError(f"threshold must be a finite number, got {t!r}")
        self.threshold = float(t)
        if not isinstance(self.scorer, ConfidenceScorer):
            raise PolicyError(f"scorer must be a ConfidenceScorer, got {self.scorer!r}")
        rules: list[PolicyRule] = []
        for i, rule in enumerate(self.rules):
            if isinstance(rule, PolicyRule):
                rules.append(rule)
            elif isinstance(rule, Mapping):
                rules.append(rule_from_dict(rule))
            else:
                raise PolicyError(f"rule #{i} must be a PolicyRule or a dict, got {rule!r}")
        self.rules = rules
        if not isinstance(self.version, str):
            raise PolicyError(f"version must be a string, got {self.version!r}")
        if self.fitted_on is not None:
            if not isinstance(self.fitted_on, dict):
                raise PolicyError(f"fitted_on must be a dict or None, got {self.fitted_on!r}")
            try:
                json.dumps(self.fitted_on, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise PolicyError(
                    f"fitted_on must be JSON-serialisable without NaN/inf: {e}"
                ) from e

    def pre_route(self, ctx: RoutingContext | Sequence[BaseMessage]) -> RuleOutcome | None:
        """Apply the rules in order; return the first outcome, or None to generate locally.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> RoutingPolicy(threshold=-1.0).pre_route([HumanMessage("hi")]) is None
            True
        """
        if not isinstance(ctx, RoutingContext):
            ctx = RoutingContext(list(ctx))
        for rule in self.rules:
            outcome = rule.apply(ctx)
            if outcome is not None:
                return outcome
        return None

    def decide(self, confidence: Confidence) -> tuple[Tier, RouteReason]:
        """Map a local answer's confidence to ``(tier, reason)``.

        A ``forced_low`` reason always escalates (hedge -> ``hedge``, unknown_token ->
        ``unknown_token``, empty -> ``empty_answer``, no_logprobs -> ``no_logprobs``);
        otherwise ``score >= threshold`` keeps the local answer.

        Example:
            >>> from langchain_hybrid.routing.confidence import Confidence
            >>> RoutingPolicy(threshold=-0.6).decide(Confidence(-0.1, {}, "hedge", "x"))
            ('cloud', 'hedge')
        """
        if confidence.forced_low is not None:
            return "cloud", _FORCED_TO_REASON[confidence.forced_low]
        if confidence.score >= self.threshold:
            return "local", "confident"
        return "cloud", "low_confidence"

    def running(self, max_tokens: int | None = None) -> RunningConfidence:
        """Start incremental scoring against this policy's threshold (early escalation).

        Example:
            >>> r = RoutingPolicy(threshold=-0.6).running(max_tokens=256)
            >>> r.threshold
            -0.6
        """
        return self.scorer.running(self.threshold, max_tokens)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict written to policy files.

        Example:
            >>> d = RoutingPolicy(threshold=-0.6).to_dict()
            >>> d["format_version"], d["scorer"]["name"], d["threshold"]
            (1, 'mean_logprob', -0.6)
        """
        return {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "threshold": self.threshold,
            "scorer": self.scorer.to_config(),
            "rules": [rule.to_dict() for rule in self.rules],
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutingPolicy:
        """Build a policy from :meth:`to_dict` output; raises :class:`PolicyError`.

        Only ``format_version`` and ``threshold`` are required; the scorer defaults to
        ``mean_logprob``.

        Example:
            >>> RoutingPolicy.from_dict({"format_version": 1, "threshold": -0.5}).threshold
            -0.5
        """
        fix = "re-create it with RoutingPolicy(...).save() or by running calibration"
        if not isinstance(data, Mapping):
            raise PolicyError(f"a policy must be a JSON object, got {type(data).__name__}; {fix}")
        if "format_version" not in data:
            raise PolicyError(
                "policy has no 'format_version', so it is not a langchain-hybrid policy "
                f"(expected format_version {FORMAT_VERSION}); {fix}"
            )
        fv = data["format_version"]
        if fv != FORMAT_VERSION or isinstance(fv, bool):
            raise PolicyError(
                f"policy format_version {fv!r} is not supported (this langchain-hybrid reads "
                f"{FORMAT_VERSION}); upgrade langchain-hybrid, or {fix}"
            )
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise PolicyError(
                f"policy has unknown key(s) {unknown}; allowed keys: {', '.join(_KEYS)}; "
                "remove or fix them"
            )
        if "threshold" not in data:
            raise PolicyError(f"policy has no 'threshold'; add a number such as -0.6, or {fix}")
        try:
            scorer_cfg = data.get("scorer")
            scorer = MeanLogprobScorer() if scorer_cfg is None else scorer_from_config(scorer_cfg)
        except (TypeError, ValueError) as e:
            raise PolicyError(f"bad 'scorer' in policy: {e}") from e
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            raise PolicyError(f"'rules' must be a list, got {type(raw_rules).__name__}")
        rules: list[PolicyRule] = []
        for i, raw in enumerate(raw_rules):
            try:
                rules.append(rule_from_dict(raw))
            except PolicyError as e:
                raise PolicyError(f"bad rule #{i} in policy: {e}") from e
        return cls(
            threshold=data["threshold"],
            scorer=scorer,
            rules=rules,
            version=data.get("version", "1"),
            fitted_on=data.get("fitted_on"),
        )

    def save(self, path: str | Path) -> None:
        """Write the policy as indented JSON to ``path``.

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "policy.json")
            >>> RoutingPolicy(threshold=-0.6).save(p)
            >>> RoutingPolicy.load(p).threshold
            -0.6
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RoutingPolicy:
        """Read a policy file written by :meth:`save` or by calibration.

        Raises :class:`PolicyError` (naming the file) for invalid JSON or content, and
        ``OSError`` if the file cannot be read.

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "bad.json")
            >>> _ = open(p, "w").write("{not json")
            >>> try:
            ...     RoutingPolicy.load(p)
            ... except PolicyError as e:
            ...     print("not valid JSON" in str(e))
            True
        """
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PolicyError(
                f"{path} is not valid JSON ({e}); write policies with RoutingPolicy.save() "
                "or calibration"
            ) from e
        try:
            return cls.from_dict(data)
        except PolicyError as e:
            raise PolicyError(f"{path}: {e}") from e
