"""``with_structured_output`` for a chat model whose tiers speak OpenAI's shapes.

Follows ``langchain_openai``'s contract: ``method="function_calling"`` binds the schema as
one tool with ``tool_choice`` naming it; ``"json_schema"`` binds
``response_format={"type": "json_schema", ...}``; ``"json_mode"`` binds
``response_format={"type": "json_object"}``. ``include_raw=True`` returns
``{"raw", "parsed", "parsing_error"}``. Parsing reuses langchain-core's parsers, with
one change: a reply that made no tool call under ``function_calling`` is a parsing error
(``OutputParserException``), never a silent None.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import Generation
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import (
    convert_to_json_schema,
    convert_to_openai_function,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass

__all__ = [
    "METHODS",
    "default_method",
    "openai_response_format",
    "output_format",
    "structured_output",
]

#: The ``method`` values of ``with_structured_output``.
METHODS = ("function_calling", "json_schema", "json_mode")
_FALLBACK_METHOD = "json_schema"


@functools.cache
def default_method() -> str:
    """Return the default ``method`` of the installed ``ChatOpenAI.with_structured_output``.

    The contract followed is the installed langchain-openai's (``"json_schema"`` since
    0.3; ``"function_calling"`` before); ``"json_schema"`` when it cannot be read.

    Example:
        >>> default_method() in METHODS
        True
    """
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return _FALLBACK_METHOD
    parameter = inspect.signature(ChatOpenAI.with_structured_output).parameters.get("method")
    default = parameter.default if parameter is not None else None
    return default if default in METHODS else _FALLBACK_METHOD


class _ToolCallRequired:
    """For the parser of one forced tool call: no call is a parsing error, not None."""

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        parsed = super().parse_result(result, partial=partial)  # type: ignore[misc]
        if parsed is None and not partial:
            raise _no_tool_call(result)
        return parsed


class _RequiredPydanticToolsParser(_ToolCallRequired, PydanticToolsParser):
    """``PydanticToolsParser`` for one forced tool call."""


class _RequiredJsonKeyToolsParser(_ToolCallRequired, JsonOutputKeyToolsParser):
    """``JsonOutputKeyToolsParser`` for one forced tool call."""


def _no_tool_call(result: list[Generation]) -> OutputParserException:
    text = result[0].text if result else ""
    return OutputParserException(
        "The model answered without calling the structured-output tool, so there is "
        "nothing to parse. Retry, use include_raw=True to get the reply, or try "
        'method="json_schema".',
        llm_output=text,
    )


def openai_response_format(schema: Any, strict: bool | None = None) -> dict[str, Any]:
    """Return OpenAI's ``response_format`` for ``schema``, as ``ChatOpenAI`` builds it.

    Example:
        >>> rf = openai_response_format({"title": "Answer", "type": "object",
        ...     "properties": {"city": {"type": "string"}}})
        >>> rf["type"], rf["json_schema"]["name"], rf["json_schema"]["strict"]
        ('json_schema', 'Answer', False)
    """
    if isinstance(schema, Mapping) and schema.get("type") == "json_schema":
        return dict(schema)
    if isinstance(schema, Mapping) and "name" in schema and "schema" in schema:
        return {"type": "json_schema", "json_schema": dict(schema)}
    if strict is None:
        given = schema.get("strict") if isinstance(schema, Mapping) else None
        strict = given if isinstance(given, bool) else False
    function = dict(convert_to_openai_function(schema, strict=strict))
    function["schema"] = function.pop("parameters")
    return {"type": "json_schema", "json_schema": function}


def output_format(schema: Any, method: str, strict: bool | None) -> dict[str, Any]:
    """Return the ``ls_structured_output_format`` a ``response_format`` call records.

    What LangChain's callbacks and LangSmith show of a structured-output request made with
    ``method="json_schema"`` or ``"json_mode"``.

    Example:
        >>> output_format(None, "json_mode", None)
        {'kwargs': {'method': 'json_mode', 'strict': None}, 'schema': None}
    """
    return {
        "kwargs": {"method": method, "strict": strict},
        "schema": convert_to_json_schema(schema) if schema is not None else None,
    }


def structured_output(
    llm: BaseChatModel,
    schema: Any = None,
    *,
    method: str | None = None,
    include_raw: bool = False,
    strict: bool | None = None,
    **kwargs: Any,
) -> Runnable[LanguageModelInput, Any]:
    """Build ``llm.with_structured_output(schema, method=..., include_raw=...)``.

    ``method=None`` is :func:`default_method`, as for ``ChatOpenAI``.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> try:
        ...     structured_output(FakeListChatModel(responses=["x"]), None)
        ... except ValueError as e:
        ...     print(str(e)[:43])
        schema is required for method='json_schema'
    """
    if kwargs:
        raise ValueError(f"with_structured_output got unsupported arguments {sorted(kwargs)}.")
    method = default_method() if method is None else method
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    if schema is None and method != "json_mode":
        raise ValueError(
            f"schema is required for method={method!r}; pass a pydantic class, a TypedDict "
            'or a JSON schema, or use method="json_mode" for any JSON object.'
        )
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    output_parser: Runnable[Any, Any]
    if method == "function_calling":
        tool = convert_to_openai_tool(schema, strict=strict)
        name = tool["function"]["name"]
        extra = {"strict": strict} if strict is not None else {}
        bound = llm.bind_tools(
            [schema],
            tool_choice=name,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": tool,
            },
            **extra,
        )
        output_parser = (
            _RequiredPydanticToolsParser(tools=[schema], first_tool_only=True)
            if is_pydantic
            else _RequiredJsonKeyToolsParser(key_name=name, first_tool_only=True)
        )
    else:
        response_format = (
            {"type": "json_object"}
            if method == "json_mode"
            else openai_response_format(schema, strict=strict)
        )
        bound = llm.bind(
            response_format=response_format,
            ls_structured_output_format=output_format(schema, method, strict),
        )
        output_parser = (
            PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        )
    if not include_raw:
        return bound | output_parser
    parser_assign = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | output_parser, parsing_error=lambda _: None
    )
    parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
    parser_with_fallback = parser_assign.with_fallbacks(
        [parser_none], exception_key="parsing_error"
    )
    return RunnableMap(raw=bound) | parser_with_fallback
