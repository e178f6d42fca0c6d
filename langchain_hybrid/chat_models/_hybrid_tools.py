"""Tools bound to a ChatHybrid: both tiers get them, and what the local tier cannot do is said.

:func:`bind_tools_to` binds the tools to both tiers and returns a :class:`ToolBinding`: the
bound tiers, whether the local tier can call tools at all (a model whose ``bind_tools``
raises ``NotImplementedError`` cannot, and such requests go to the cloud), what a valid
local answer looks like (:class:`~langchain_hybrid.routing.validation.AnswerSpec`), and
the key the binding adds to the model's identity (LangChain's cache key).

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> fake = FakeListChatModel(responses=["x"])
    >>> binding = ToolBinding()
    >>> binding.local_serves_tools, binding.capability() is None, binding.refusal() is None
    (True, True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_hybrid.errors import LocalToolCallUnavailableError
from langchain_hybrid.routing.rules import RuleOutcome
from langchain_hybrid.routing.validation import AnswerSpec

__all__ = ["ToolBinding", "Tools", "bind_tools_to"]

#: What ``bind_tools`` takes: tool dicts, pydantic classes, functions or LangChain tools.
Tools = Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool]
_CANNOT_CALL_TOOLS = RuleOutcome("cloud", "local_unsupported", "local_cannot_call_tools")
_REFUSAL = (
    "This request was kept on the local tier by a local-only rule (privacy or "
    "ForceLocalRule; see the rule in the decision), the local model cannot call tools, and "
    "tool_choice requires a tool call (with_structured_output does). Use a local model that "
    'can call tools, redact instead of keeping it local (privacy=PrivacyRule(action="redact")'
    "), or bind the tools without a required tool_choice."
)


@dataclass(frozen=True)
class ToolBinding:
    """What binding tools (or a structured-output format) did to a ChatHybrid's tiers."""

    local: Runnable[LanguageModelInput, BaseMessage] | None = None
    """The local tier with the tools bound (None: nothing bound, or it cannot call tools)."""
    cloud: Runnable[LanguageModelInput, BaseMessage] | None = None
    """The cloud tier with the tools bound (None: nothing bound)."""
    local_serves_tools: bool = True
    """Whether the local tier can call tools."""
    call_required: bool = False
    """Whether ``tool_choice`` forces a tool call."""
    spec: AnswerSpec | None = None
    """What a valid answer looks like (tools, arguments, ``tool_choice``, JSON shape)."""
    key: Mapping[str, Any] | None = None
    """What the binding adds to the model's identity (and so to the cache key)."""
    output_format: Mapping[str, Any] | None = None
    """A ``response_format`` request's structured-output format, recorded on both tier runs."""

    def capability(self) -> RuleOutcome | None:
        """Return the route's capability verdict: to the cloud when the local tier cannot."""
        return None if self.local_serves_tools else _CANNOT_CALL_TOOLS

    def refusal(self) -> Exception | None:
        """Return what a local call raises when it must make a tool call it cannot make."""
        if self.local_serves_tools or not self.call_required:
            return None
        return LocalToolCallUnavailableError(_REFUSAL)


def bind_tools_to(
    local: BaseChatModel,
    cloud: BaseChatModel,
    tools: Tools,
    tool_choice: str | None,
    kwargs: Mapping[str, Any],
) -> ToolBinding:
    """Bind ``tools`` to both tiers (see the module docstring)."""
    extra = {"tool_choice": tool_choice} if tool_choice is not None else {}
    try:
        bound_local: Runnable[LanguageModelInput, BaseMessage] | None = local.bind_tools(
            tools, **extra, **kwargs
        )
    except NotImplementedError:
        bound_local = None
    structured = bool(kwargs.get("ls_structured_output_format"))
    return ToolBinding(
        local=bound_local,
        cloud=cloud.bind_tools(tools, **extra, **kwargs),
        local_serves_tools=bound_local is not None,
        call_required=_requires_tool_call(tool_choice),
        spec=AnswerSpec.for_tools(tools, tool_choice, structured=structured),
        key={
            "tools": [_tool_key(t) for t in tools],
            "tool_choice": tool_choice,
            "kwargs": {k: repr(v) for k, v in sorted(kwargs.items())},
        },
    )


def _requires_tool_call(tool_choice: Any) -> bool:
    """Whether ``tool_choice`` forces a tool call ("any", "required", a tool's name, ...).

    Example:
        >>> _requires_tool_call("auto"), _requires_tool_call("required"), _requires_tool_call(None)
        (False, True, False)
    """
    if tool_choice is None or tool_choice is False:
        return False
    return not (isinstance(tool_choice, str) and tool_choice in ("auto", "none"))


def _tool_key(tool: Any) -> Any:
    """Describe a bound tool as JSON-like data, for the model's identity (cache key)."""
    try:
        return convert_to_openai_tool(tool)
    except Exception:  # noqa: BLE001 - a tool only some tier understands: describe it by repr
        return repr(tool)
