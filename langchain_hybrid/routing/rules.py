r"""Pre-routing rules: decide a request's tier before any generation.

Rules are immutable pydantic models saved in policy files as JSON with a ``type``. Each
rule belongs to a *stage*, and the stages run in a fixed order (see
:meth:`~langchain_hybrid.routing.policy.RoutingPolicy.pre_route`):

1. ``"local_only"``: data that must not leave the machine keeps the request local,
   whatever else holds (:class:`ForceLocalRule`, and the policy's :class:`PrivacyRule`
   after them).
2. ``"capability"``: requests the local tier should not or cannot serve go to the cloud
   (:class:`MaxLocalContextRule`, :class:`ForceCloudRule`), after the built-in capability
   checks (tools the local tier cannot call).

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> rule = ForceLocalRule(pattern=r"\d{3}-\d{2}-\d{4}", name="ssn")
    >>> rule.apply(RoutingContext([HumanMessage("My SSN is 123-45-6789")]))
    RuleOutcome(tier='local', reason='rule_force_local', rule_name='ssn')
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar, cast

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from langchain_hybrid._registry import Registry
from langchain_hybrid.errors import PolicyError
from langchain_hybrid.privacy import (
    Detector,
    Findings,
    default_detectors,
    detector_from,
    redact_messages,
    redact_value,
    scan_messages,
)
from langchain_hybrid.routing.decision import RouteReason, Tier, check_route

__all__ = [
    "RULE_STAGES",
    "ForceCloudRule",
    "ForceLocalRule",
    "MaxLocalContextRule",
    "PolicyRule",
    "PrivacyRule",
    "Redaction",
    "RoutingContext",
    "RuleOutcome",
    "RuleStage",
    "available_rules",
    "privacy_rule_of",
    "register_rule",
    "rule_from_dict",
]

RuleStage = Literal["local_only", "capability"]
#: The stages of pre-routing, in the order they run.
RULE_STAGES: tuple[RuleStage, ...] = ("local_only", "capability")


@dataclass
class RoutingContext:
    """What pre-routing rules see: the messages and, optionally, a prompt token counter.

    Without ``count_tokens`` the prompt length is estimated as one token per 4 characters.
    ``metadata`` is the run's metadata (``config={"metadata": {...}}``), e.g. the user id
    an :class:`~langchain_hybrid.routing.adaptive.AdaptiveThreshold` keys its windows by.

    Example:
        >>> RoutingContext([HumanMessage("12345678")]).prompt_tokens()
        2
    """

    messages: list[BaseMessage]
    count_tokens: Callable[[list[BaseMessage]], int] | None = None
    metadata: Mapping[str, Any] | None = None
    prompt: str = field(init=False, repr=False, compare=False)
    """The request's text, one message per line (what answer features compare with)."""
    _texts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        texts: list[str] = []
        for message in self.messages:
            texts.append(str(message.text))
            if isinstance(message, AIMessage):
                texts.extend(json.dumps(call["args"]) for call in message.tool_calls)
        self._texts = tuple(texts)
        self.prompt = "\n".join(texts)

    @classmethod
    def from_input(cls, value: Any) -> RoutingContext:
        """Build the context of any runnable input (what ``ConfidenceGate`` receives).

        Strings, messages, message lists and prompt values become their messages;
        mappings, lists and documents contribute the text of every value inside them, so
        that a rule sees all the text a chain is given.

        Example:
            >>> ctx = RoutingContext.from_input({"question": "Who?", "context": ["a", "b"]})
            >>> ctx.texts()
            ['Who?', 'a', 'b']
        """
        return cls(_input_messages(value))

    def texts(self) -> list[str]:
        """Return the text of each message, and the arguments of the tool calls it made.

        List content is joined block by block, so a value split over two text blocks is
        seen whole; an assistant message's tool-call arguments count as its text too.

        Example:
            >>> from langchain_core.messages import SystemMessage
            >>> RoutingContext([SystemMessage("be brief"), HumanMessage("hi")]).texts()
            ['be brief', 'hi']
        """
        return list(self._texts)

    def prompt_tokens(self) -> int:
        """Count (or estimate) the prompt tokens.

        Example:
            >>> RoutingContext([HumanMessage("hi")], count_tokens=lambda ms: 7).prompt_tokens()
            7
        """
        if self.count_tokens is not None:
            return int(self.count_tokens(self.messages))
        return math.ceil(sum(len(t) for t in self.texts()) / 4)


def _input_messages(value: Any) -> list[BaseMessage]:
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, str):
        return [HumanMessage(value)]
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, Document):
        return [HumanMessage(value.page_content)]
    if isinstance(value, Mapping):
        return [m for item in value.values() for m in _input_messages(item)]
    if isinstance(value, Sequence):
        try:
            return convert_to_messages(value)
        except (ValueError, TypeError, NotImplementedError):
            return [m for item in value for m in _input_messages(item)]
    return [] if value is None else [HumanMessage(str(value))]


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
    detectors: tuple[str, ...] = field(default=(), repr=False)
    """The privacy detectors that fired (names only), for a privacy rule's outcome."""

    def __post_init__(self) -> None:
        check_route(self.tier, self.reason)


_R = TypeVar("_R", bound="PolicyRule")
_RULES: Registry[PolicyRule] = Registry("type", "rule type")


#: Register a rule class under its ``type`` so policy files can refer to it (a class
#: decorator; registering the same class twice is a no-op).
register_rule = _RULES.register
#: The registered rule types, sorted (``available_rules()``).
available_rules = _RULES.names


class PolicyRule(BaseModel, ABC):
    """Base class of pre-routing rules (immutable pydantic models, JSON with a ``type``).

    Subclasses set ``type`` (their name in policy files) and ``stage``: ``"local_only"``
    for rules that must win over everything else (privacy), ``"capability"`` (the
    default) for rules that send requests to the cloud.

    Example:
        >>> ForceLocalRule(pattern="secret").to_dict()
        {'type': 'force_local', 'name': 'force_local', 'pattern': 'secret'}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    stage: ClassVar[RuleStage] = "capability"
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
    try:
        cls = _RULES.get(rule_type)
    except KeyError as e:
        raise PolicyError(e.args[0]) from None
    try:
        return cls.model_validate({k: v for k, v in data.items() if k != "type"})
    except ValidationError as e:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: {err['msg']}" for err in e.errors()
        )
        raise PolicyError(f"invalid {rule_type!r} rule: {errors}") from e


class _PatternRule(PolicyRule):
    """A rule that sends a request to one tier when ``pattern`` matches any message."""

    pattern: str
    #: The tier a match sends the request to, and the decision's reason.
    outcome: ClassVar[tuple[Tier, RouteReason]]
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
            >>> rule = ForceLocalRule(pattern="[0-9]{3}-[0-9]{2}")
            >>> rule.matches(RoutingContext([HumanMessage("id 123-45")]))
            True
        """
        return any(self._regex.search(text) for text in ctx.texts())

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return this rule's outcome if the pattern matches.

        Example:
            >>> ForceLocalRule(pattern="x").apply(RoutingContext([HumanMessage("y")])) is None
            True
        """
        return RuleOutcome(*self.outcome, self.name) if self.matches(ctx) else None


@register_rule
class ForceLocalRule(_PatternRule):
    """Keep the request local (reason ``rule_force_local``) if any message matches ``pattern``.

    ``pattern`` is a Python regular expression searched in each message's text
    (use ``(?i)`` for case-insensitive matching). It runs first, before any check that
    could send the request to the cloud: a match keeps the request local whatever else
    holds (tools bound, a long prompt, a force-cloud rule).

    Example:
        >>> ForceLocalRule(pattern="(?i)confidential", name="nda").apply(
        ...     RoutingContext([HumanMessage("CONFIDENTIAL memo")]))
        RuleOutcome(tier='local', reason='rule_force_local', rule_name='nda')
    """

    type: ClassVar[str] = "force_local"
    stage: ClassVar[RuleStage] = "local_only"
    outcome: ClassVar[tuple[Tier, RouteReason]] = ("local", "rule_force_local")
    name: str = "force_local"


@register_rule
class ForceCloudRule(_PatternRule):
    """Send the request to the cloud (reason ``rule_force_cloud``) if any message matches.

    Example:
        >>> ForceCloudRule(pattern="(?i)prove").apply(
        ...     RoutingContext([HumanMessage("prove it")])).tier
        'cloud'
    """

    type: ClassVar[str] = "force_cloud"
    outcome: ClassVar[tuple[Tier, RouteReason]] = ("cloud", "rule_force_cloud")
    name: str = "force_cloud"


@register_rule
class MaxLocalContextRule(PolicyRule):
    """Send prompts longer than ``max_tokens`` to the cloud (reason ``context_too_long``).

    Example:
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
            >>> MaxLocalContextRule(max_tokens=10).apply(RoutingContext([HumanMessage("hi")]))
        """
        if ctx.prompt_tokens() > self.max_tokens:
            return RuleOutcome("cloud", "context_too_long", self.name)
        return None


PrivacyAction = Literal["local", "redact"]


@register_rule
class PrivacyRule(PolicyRule):
    """Keep data that must not leave the machine local, or redact it before the cloud sees it.

    ``detectors`` find the data (default: every built-in detector of
    :mod:`langchain_hybrid.privacy`: e-mail, phone, credit_card, us_ssn, iban,
    ip_address); each may be a built-in name, ``"presidio"``, a
    :class:`~langchain_hybrid.privacy.RegexDetector` (or its dict), a function returning
    ``(start, end)`` spans, or any :class:`~langchain_hybrid.privacy.Detector`. The rule
    scans everything the cloud would receive: every message of the history (system prompt
    and tool results included), text blocks joined as the message's text joins them, and
    the arguments of earlier tool calls. Bound tools' definitions, non-text blocks
    (images, files, audio) and message ``name`` fields are not scanned.

    ``action="local"`` (the default): a request where any detector fires is answered by
    the local tier only (reason ``privacy_forced_local``), whatever tools are bound.
    ``action="redact"``: the request is routed as usual, but the cloud receives the
    messages with each detected value replaced by its placeholder (``[EMAIL]``, ...).
    Either way the decision's ``privacy`` field names the rule, the action and the
    detectors that fired, never the data.

    The default :class:`~langchain_hybrid.RoutingPolicy` holds ``PrivacyRule()`` as its
    ``privacy`` setting. A rule holding a function cannot be saved to a policy file
    (:class:`PolicyError` on save).

    Example:
        >>> rule = PrivacyRule()
        >>> outcome = rule.apply(RoutingContext([HumanMessage("I am jane@example.com")]))
        >>> outcome.reason, outcome.detectors
        ('privacy_forced_local', ('email',))
        >>> PrivacyRule(detectors=["phone"]).apply(
        ...     RoutingContext([HumanMessage("I am jane@example.com")])) is None
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    type: ClassVar[str] = "privacy"
    stage: ClassVar[RuleStage] = "local_only"
    name: str = "privacy"
    detectors: tuple[Detector, ...] = Field(default_factory=default_detectors)
    action: PrivacyAction = "local"

    @field_validator("detectors", mode="before")
    @classmethod
    def _build_detectors(cls, value: Any) -> tuple[Detector, ...]:
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
            raise ValueError(f"detectors must be a list, got {type(value).__name__}")
        detectors = tuple(detector_from(spec) for spec in value)
        names = [d.name for d in detectors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"detector names must be unique; repeated: {duplicates}")
        return detectors

    @property
    def detector_names(self) -> tuple[str, ...]:
        """The names of this rule's detectors, in order.

        Example:
            >>> PrivacyRule(detectors=["email", "iban"]).detector_names
            ('email', 'iban')
        """
        return tuple(d.name for d in self.detectors)

    def with_detectors(self, *add: Any, remove: Sequence[str] = ()) -> PrivacyRule:
        """Return this rule with detectors added (names, patterns, functions) and removed.

        Example:
            >>> from langchain_hybrid.privacy import RegexDetector
            >>> PrivacyRule().with_detectors(RegexDetector("ticket", "T-[0-9]+"),
            ...                              remove=["phone", "ip_address"]).detector_names
            ('email', 'credit_card', 'us_ssn', 'iban', 'ticket')
        """
        unknown = sorted(set(remove) - set(self.detector_names))
        if unknown:
            raise PolicyError(
                f"cannot remove {unknown}: this rule's detectors are {list(self.detector_names)}"
            )
        kept = [d for d in self.detectors if d.name not in remove]
        return self.model_copy(update={"detectors": self._build_detectors([*kept, *add])})

    def scan(self, ctx: RoutingContext) -> Findings:
        """Return what this rule's detectors find in everything the cloud would receive.

        Example:
            >>> PrivacyRule().scan(RoutingContext([HumanMessage("no secrets")])).detectors
            ()
        """
        return scan_messages(ctx.messages, self.detectors)

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """With ``action="local"``, keep a request holding detected data local.

        A redacting rule never decides the tier (see :meth:`RoutingPolicy.redaction`).

        Example:
            >>> PrivacyRule(action="redact").apply(
            ...     RoutingContext([HumanMessage("jane@example.com")])) is None
            True
        """
        if self.action != "local":
            return None
        found = self.scan(ctx)
        if not found:
            return None
        return RuleOutcome("local", "privacy_forced_local", self.name, found.detectors)

    def to_dict(self) -> dict[str, Any]:
        """Return the rule's JSON-safe dict: detectors by name or pattern.

        Functions are written as ``{"type": "callable", "name": ...}``, which names them
        but cannot be read back (``RoutingPolicy.save`` refuses such a policy).

        Example:
            >>> PrivacyRule(detectors=["email"]).to_dict()
            {'type': 'privacy', 'name': 'privacy', 'action': 'local', 'detectors': ['email']}
        """
        return {
            "type": self.type,
            "name": self.name,
            "action": self.action,
            "detectors": [d.to_config() for d in self.detectors],
        }

    def check_serialisable(self) -> None:
        """Raise :class:`PolicyError` if a detector cannot be written to a policy file.

        Example:
            >>> PrivacyRule(detectors=[lambda text: []]).check_serialisable()
            Traceback (most recent call last):
            ...
            langchain_hybrid.errors.PolicyError: privacy rule 'privacy' holds detector(s) ...
        """
        functions = [d.name for d in self.detectors if not d.serialisable]
        if functions:
            raise PolicyError(
                f"privacy rule {self.name!r} holds detector(s) {functions} that are "
                "functions, which a policy file cannot hold; use a RegexDetector, or keep "
                "the policy in code"
            )


@dataclass(frozen=True)
class Redaction:
    """What redacting privacy rules found in a request, and how to redact it for the cloud.

    Built by :meth:`RoutingPolicy.redaction` when a ``PrivacyRule(action="redact")``
    fires. :meth:`messages` and :meth:`value` apply every such rule's detectors.

    Example:
        >>> found = Redaction((PrivacyRule(action="redact"),), ("email",))
        >>> found.messages([HumanMessage("mail jane@example.com")])[0].content
        'mail [EMAIL]'
        >>> found.note()
        {'rule': 'privacy', 'action': 'redact', 'detectors': ['email']}
    """

    rules: tuple[PrivacyRule, ...]
    detectors: tuple[str, ...]

    def messages(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Return ``messages`` with each detected value replaced by its placeholder."""
        redacted = list(messages)
        for rule in self.rules:
            redacted = redact_messages(redacted, rule.detectors)
        return redacted

    def value(self, value: Any) -> Any:
        """Redact a runnable input (see :func:`langchain_hybrid.privacy.redact_value`)."""
        for rule in self.rules:
            value = redact_value(value, rule.detectors)
        return value

    def note(self) -> dict[str, Any]:
        """Return the decision's ``privacy`` field: rule name(s), action, detectors that fired."""
        return {
            "rule": ",".join(r.name for r in self.rules),
            "action": "redact",
            "detectors": list(self.detectors),
        }


def privacy_rule_of(setting: Any) -> PrivacyRule | None:
    """Read the ``privacy=`` shorthand into a rule (None: privacy off).

    False/None turn it off, True is the default rule; a list of detectors, a dict (the
    policy-file form) or a :class:`PrivacyRule` give that rule.

    Example:
        >>> privacy_rule_of(["email", "iban"]).detector_names
        ('email', 'iban')
        >>> privacy_rule_of(False) is None
        True
    """
    if setting is None or setting is False:
        return None
    if setting is True:
        return PrivacyRule()
    if isinstance(setting, PrivacyRule):
        return setting
    if isinstance(setting, Mapping):
        rule = rule_from_dict({"type": "privacy", **setting})
        return cast(PrivacyRule, rule)
    if isinstance(setting, Sequence) and not isinstance(setting, str):
        try:
            return PrivacyRule.model_validate({"detectors": list(setting)})
        except ValidationError as e:
            raise PolicyError(f"invalid privacy detectors: {e.errors()[0]['msg']}") from e
    raise PolicyError(
        f"privacy must be True, False, a list of detectors or a PrivacyRule, got {setting!r}"
    )
