r"""Pre-routing rules: decide a request's tier before any generation.

Rules are immutable pydantic models saved in policy files as JSON with a ``type``. Each
rule belongs to a *stage*, and the stages run in a fixed order (see
:meth:`~langchain_hybrid.routing.policy.RoutingPolicy.pre_route`):

1. ``"local_only"``: data that must not leave the machine keeps the request local,
   whatever else holds (:class:`ForceLocalRule`).
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
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from langchain_hybrid._registry import Registry
from langchain_hybrid.errors import PolicyError
from langchain_hybrid.routing.decision import RouteReason, Tier, check_route

__all__ = [
    "RULE_STAGES",
    "ForceCloudRule",
    "ForceLocalRule",
    "MaxLocalContextRule",
    "PolicyRule",
    "RoutingContext",
    "RuleOutcome",
    "RuleStage",
    "available_rules",
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

    Example:
        >>> RoutingContext([HumanMessage("12345678")]).prompt_tokens()
        2
    """

    messages: list[BaseMessage]
    count_tokens: Callable[[list[BaseMessage]], int] | None = None

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
        texts: list[str] = []
        for message in self.messages:
            texts.append(str(message.text))
            if isinstance(message, AIMessage):
                texts.extend(json.dumps(call["args"]) for call in message.tool_calls)
        return texts

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

    def __post_init__(self) -> None:
        check_route(self.tier, self.reason)


_R = TypeVar("_R", bound="PolicyRule")
_RULES: Registry[PolicyRule] = Registry("type", "rule type")


def register_rule(cls: type[_R]) -> type[_R]:
    """Register a rule class under its ``type`` so policy files can refer to it.

    Registering the same class twice is a no-op.

    Example:
        >>> register_rule(ForceLocalRule) is ForceLocalRule
        True
    """
    return _RULES.register(cls)


def available_rules() -> tuple[str, ...]:
    """Return the registered rule types, sorted.

    Example:
        >>> available_rules()
        ('force_cloud', 'force_local', 'max_local_context')
    """
    return _RULES.names()


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
            >>> rule = ForceLocalRule(pattern="[0-9]{3}-[0-9]{2}")
            >>> rule.matches(RoutingContext([HumanMessage("id 123-45")]))
            True
        """
        return any(self._regex.search(text) for text in ctx.texts())


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
    name: str = "force_local"

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return a local outcome if the pattern matches.

        Example:
            >>> ForceLocalRule(pattern="x").apply(RoutingContext([HumanMessage("y")])) is None
            True
        """
        return RuleOutcome("local", "rule_force_local", self.name) if self.matches(ctx) else None


@register_rule
class ForceCloudRule(_PatternRule):
    """Send the request to the cloud (reason ``rule_force_cloud``) if any message matches.

    Example:
        >>> ForceCloudRule(pattern="(?i)prove").apply(
        ...     RoutingContext([HumanMessage("prove it")])).tier
        'cloud'
    """

    type: ClassVar[str] = "force_cloud"
    name: str = "force_cloud"

    def apply(self, ctx: RoutingContext) -> RuleOutcome | None:
        """Return a cloud outcome if the pattern matches.

        Example:
            >>> ForceCloudRule(pattern="x").apply(RoutingContext([HumanMessage("y")])) is None
            True
        """
        return RuleOutcome("cloud", "rule_force_cloud", self.name) if self.matches(ctx) else None


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
