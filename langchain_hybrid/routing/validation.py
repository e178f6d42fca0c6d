"""What a valid answer to a request looks like, and the check of a local answer against it.

A request bound to tools (``bind_tools``) or asking for structured output
(``response_format``, ``with_structured_output``) expects an answer of a given shape. An
:class:`AnswerSpec` describes it: the tools that may be called with the JSON schema of
their arguments, whether a tool call is required (``tool_choice``), and the JSON (schema)
the text must hold. :meth:`AnswerSpec.check` returns an :class:`Invalid` naming what is
wrong with an answer, or None. The policy's verdict applies it to complete local answers
(:meth:`~langchain_hybrid.routing.policy.RoutingPolicy.judge` replays it offline): a
local answer that fails escalates with reason ``invalid_tool_call`` or
``invalid_structured_output`` instead of reaching the caller's parser.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> spec = AnswerSpec.for_tools(
    ...     [{"type": "function", "function": {"name": "add", "parameters": {
    ...         "type": "object", "properties": {"a": {"type": "integer"}},
    ...         "required": ["a"]}}}], tool_choice="required")
    >>> spec.check(AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1}, "id": "1"}]))
    >>> spec.check(AIMessage("", tool_calls=[{"name": "mul", "args": {}, "id": "1"}])).detail
    "unknown tool 'mul' (tools: add)"
    >>> spec.check(AIMessage("5")).reason
    'invalid_tool_call'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.json import parse_json_markdown

from langchain_hybrid.routing.decision import RouteReason

__all__ = ["AnswerSpec", "Invalid", "tool_choice_name"]


@dataclass(frozen=True)
class Invalid:
    """Why an answer fails its request's spec: the routing ``reason`` and a plain ``detail``."""

    reason: RouteReason
    detail: str


def tool_choice_name(tool_choice: Any) -> str | None:
    """Return the tool a ``tool_choice`` names, in any of OpenAI's shapes (None: none named).

    Example:
        >>> tool_choice_name({"type": "function", "function": {"name": "add"}})
        'add'
        >>> tool_choice_name("auto") is None, tool_choice_name("add")
        (True, 'add')
    """
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        return str(name) if name else None
    if isinstance(tool_choice, str) and tool_choice not in _CHOICE_WORDS:
        return tool_choice
    return None


_CHOICE_WORDS = frozenset({"auto", "none", "required", "any"})


@dataclass(frozen=True)
class AnswerSpec:
    """What a valid answer to one request looks like.

    Args:
        tools: the tools that may be called: name -> JSON schema of the arguments (None:
            any arguments).
        tool_choice: ``"auto"`` (or None), ``"none"``, ``"required"``/``"any"``, or the
            name of the tool that must be called.
        output: ``"json_object"`` (the text must be a JSON object) or ``"json_schema"``
            (the text must be JSON valid for ``schema``); None: any text.
        schema: the JSON schema the answer must fit: that of ``output="json_schema"``, or
            of ``output="json_object"`` in ``json_mode`` with a schema.
        structured: the tool binding comes from ``with_structured_output``: a failing
            tool call is reported as ``invalid_structured_output``.
        made_calls: the tool calls already made in the conversation, as
            ``name(arguments)`` keys: a call that repeats one of them is invalid (a model
            stuck in a loop, calling the tool whose result it already has).

    Build one with :meth:`for_tools`, :meth:`with_response_format` and
    :meth:`with_history`.
    """

    tools: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    tool_choice: str | None = None
    output: str | None = None
    schema: Mapping[str, Any] | None = None
    structured: bool = False
    made_calls: frozenset[str] = frozenset()

    @classmethod
    def for_tools(
        cls, tools: Sequence[Any], tool_choice: Any = None, *, structured: bool = False
    ) -> AnswerSpec:
        """Describe a ``bind_tools(tools, tool_choice=...)`` request (OpenAI's shapes).

        Example:
            >>> def add(a: int, b: int) -> int:
            ...     '''Add two integers.'''
            ...     return a + b
            >>> AnswerSpec.for_tools([add], "any").tool_choice
            'required'
        """
        schemas: dict[str, Mapping[str, Any] | None] = {}
        for tool in tools:
            try:
                function = convert_to_openai_tool(tool)["function"]
            except Exception:  # noqa: BLE001 - a tool only some tier understands: no schema
                continue
            schemas[str(function["name"])] = function.get("parameters")
        choice: str | None
        if tool_choice is None or tool_choice is False or tool_choice == "auto":
            choice = None
        elif tool_choice is True or tool_choice in ("required", "any"):
            choice = "required"
        elif tool_choice == "none":
            choice = "none"
        else:
            choice = tool_choice_name(tool_choice)
        return cls(tools=schemas, tool_choice=choice, structured=structured)

    def with_response_format(self, response_format: Any) -> AnswerSpec:
        """Add a call's ``response_format`` (OpenAI's dicts, or a pydantic class).

        Example:
            >>> spec = AnswerSpec().with_response_format({"type": "json_object"})
            >>> spec.output
            'json_object'
            >>> spec.check(AIMessage("not json")).reason
            'invalid_structured_output'
        """
        if response_format is None:
            return self
        if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
            schema = response_format.model_json_schema()
            return replace(self, output="json_schema", schema=schema)
        if not isinstance(response_format, Mapping):
            return self
        kind = response_format.get("type")
        if kind == "json_object":
            # A schema already set for a JSON object (json_mode with a schema) still holds.
            schema = self.schema if self.output == "json_object" else None
            return replace(self, output="json_object", schema=schema)
        if kind == "json_schema":
            inner = response_format.get("json_schema")
            schema = inner.get("schema") if isinstance(inner, Mapping) else None
            return replace(self, output="json_schema", schema=schema)
        return self

    def with_history(self, messages: Sequence[BaseMessage]) -> AnswerSpec:
        """Add the tool calls the conversation already made (each ``AIMessage``'s calls).

        A small model in an agent loop tends to repeat a call it already has the result
        of, with full confidence; repeating one is an ``invalid_tool_call``, so the step
        escalates instead of looping until the agent's recursion limit.

        Example:
            >>> history = [AIMessage("", tool_calls=[
            ...     {"name": "add", "args": {"a": 1}, "id": "1"}])]
            >>> spec = AnswerSpec.for_tools([{"type": "function", "function": {
            ...     "name": "add", "parameters": {}}}]).with_history(history)
            >>> spec.check(AIMessage("", tool_calls=[
            ...     {"name": "add", "args": {"a": 1}, "id": "2"}])).detail
            'repeats the call add({"a": 1}) already made in this conversation'
            >>> spec.check(AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2}, "id": "3"}]))
        """
        if not self.tools:
            return self
        made = {
            _call_key(call)
            for message in messages
            if isinstance(message, AIMessage)
            for call in message.tool_calls
        }
        return replace(self, made_calls=frozenset(made)) if made else self

    @property
    def empty(self) -> bool:
        """Whether the spec asks for nothing (any answer is valid)."""
        return not self.tools and self.tool_choice is None and self.output is None

    def check(self, answer: BaseMessage) -> Invalid | None:
        """Return why ``answer`` fails this spec, or None when it is valid.

        Tool calls must name a bound tool, carry JSON arguments valid for its schema,
        and honour ``tool_choice``; with ``output`` set, an answer without tool calls
        must hold the JSON asked for (a Markdown code fence around it is accepted, as
        LangChain's JSON parsers accept it).
        """
        calls = list(answer.tool_calls) if isinstance(answer, AIMessage) else []
        broken = list(answer.invalid_tool_calls) if isinstance(answer, AIMessage) else []
        tool_reason: RouteReason = (
            "invalid_structured_output" if self.structured else "invalid_tool_call"
        )
        if broken:
            name = broken[0].get("name") or "?"
            return Invalid(tool_reason, f"the arguments of the call to {name!r} are not JSON")
        if calls:
            return self._check_calls(calls, tool_reason)
        if self.tool_choice not in (None, "none"):
            wanted = "a tool call" if self.tool_choice == "required" else repr(self.tool_choice)
            return Invalid(tool_reason, f"the answer did not call {wanted}, which is required")
        if self.output is not None:
            return self._check_text(str(answer.text))
        if self.tools and _TOOL_MARKUP.search(str(answer.text)):
            # A small model that echoes the tool protocol (a tool result it was shown, or
            # a call it failed to close) instead of answering: never a usable answer.
            return Invalid(tool_reason, "the answer holds tool-call markup instead of an answer")
        return None

    def _check_calls(self, calls: list[Any], reason: RouteReason) -> Invalid | None:
        if self.tool_choice == "none":
            return Invalid(reason, "the answer called a tool although tool_choice is 'none'")
        for call in calls:
            name = call.get("name")
            if name not in self.tools:
                known = ", ".join(sorted(self.tools)) or "none bound"
                return Invalid(reason, f"unknown tool {name!r} (tools: {known})")
            if self.tool_choice not in (None, "required") and name != self.tool_choice:
                return Invalid(
                    reason, f"called {name!r}, but tool_choice asks for {self.tool_choice!r}"
                )
            problem = _schema_problem(call.get("args"), self.tools[name])
            if problem is not None:
                return Invalid(reason, f"the arguments of {name!r} fail its schema: {problem}")
            key = _call_key(call)
            if key in self.made_calls:
                return Invalid(reason, f"repeats the call {key} already made in this conversation")
        return None

    def _check_text(self, text: str) -> Invalid | None:
        try:
            value = parse_json_markdown(text)
        except (json.JSONDecodeError, ValueError):
            return Invalid("invalid_structured_output", "the answer is not JSON")
        if self.output == "json_object" and not isinstance(value, dict):
            return Invalid("invalid_structured_output", "the answer is not a JSON object")
        problem = _schema_problem(value, self.schema)
        if problem is not None:
            return Invalid("invalid_structured_output", f"the answer fails the schema: {problem}")
        return None


def _call_key(call: Mapping[str, Any]) -> str:
    """``name(arguments)`` with the arguments as canonical JSON: equal calls, equal keys."""
    args = json.dumps(call.get("args"), sort_keys=True, ensure_ascii=False)
    return f"{call.get('name')}({args})"


#: Tool-protocol tags (Hermes/Qwen style) that have no place in a final answer's text.
_TOOL_MARKUP = re.compile(r"</?tool_(?:call|response)>")


def _schema_problem(value: Any, schema: Mapping[str, Any] | None) -> str | None:
    """Return the first way ``value`` fails the JSON ``schema`` (None: valid, or no schema)."""
    if not schema:
        return None
    import jsonschema  # a light import, kept off the import path of the package

    validator_cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"
