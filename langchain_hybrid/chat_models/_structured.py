"""``with_structured_output`` for a chat model that takes OpenAI's call options.

The contract is ``langchain_openai``'s: ``method="function_calling"`` binds the schema
as the one tool the model must call; ``"json_schema"`` binds
``response_format={"type": "json_schema", ...}``; ``"json_mode"`` binds
``response_format={"type": "json_object"}``. The reply is parsed with langchain-core's
parsers (``PydanticToolsParser``, ``JsonOutputKeyToolsParser``, ``PydanticOutputParser``,
``JsonOutputParser``); ``include_raw=True`` gives ``{"raw", "parsed", "parsing_error"}``.

One difference, on purpose: a reply that holds no call to the schema's tool, or no
JSON, raises ``OutputParserException`` (or fills ``parsing_error``) instead of
parsing to a silent ``None``.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from langchain_hybrid.chat_models._structured import structured_output
    >>> llm = FakeListChatModel(responses=['{"city": "Paris"}'])
    >>> chain = structured_output(llm, {"title": "Place", "type": "object",
    ...     "properties": {"city": {"type": "string"}}}, method="json_mode")
    >>> chain.invoke("Where is the Louvre?")
    {'city': 'Paris'}
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from operator import itemgetter
from typing import Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import (
    Runnable,
    RunnableGenerator,
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.json import parse_json_markdown
from langchain_core.utils.pydantic import is_basemodel_subclass

__all__ = ["Method", "structured_output"]

Method = Literal["function_calling", "json_schema", "json_mode"]


def _response_format(schema: Any, strict: bool | None) -> dict[str, Any]:
    if isinstance(schema, dict) and schema.get("type") == "json_schema" and "json_schema" in schema:
        return schema
    if isinstance(schema, dict) and "name" in schema and "schema" in schema:
        return {"type": "json_schema", "json_schema": schema}
    function = convert_to_openai_tool(schema, strict=strict)["function"]
    inner = {"name": function["name"], "schema": function.get("parameters") or {}}
    if function.get("description"):
        inner["description"] = function["description"]
    if strict is not None:
        inner["strict"] = strict
    return {"type": "json_schema", "json_schema": inner}


def _checker(method: Method, tool_name: str | None) -> Runnable[Any, Any]:
    """Pass the message (or its chunks) through; at the end, raise if nothing can be parsed."""

    def check(message: BaseMessage | None) -> None:
        if not isinstance(message, AIMessage):
            return
        text = message.text
        if method == "function_calling":
            if any(c["name"] == tool_name for c in message.tool_calls):
                return
            errors = [str(c.get("error")) for c in message.invalid_tool_calls]
            why = "; ".join(errors) if errors else f"it answered in text: {text[:200]!r}"
            raise OutputParserException(
                f"The reply holds no call to {tool_name!r}: {why}. Use include_raw=True to "
                "get the reply and the error instead of an exception.",
                llm_output=text,
            )
        try:
            json.loads(text)
        except json.JSONDecodeError:
            try:
                parse_json_markdown(text)
            except (json.JSONDecodeError, ValueError) as e:
                raise OutputParserException(
                    f"The reply is not JSON ({e}): {text[:200]!r}. Use include_raw=True to "
                    "get the reply and the error instead of an exception.",
                    llm_output=text,
                ) from e

    def through(messages: Iterator[Any]) -> Iterator[Any]:
        total: Any = None
        for message in messages:
            total = message if total is None else total + message
            yield message
        check(total)

    async def athrough(messages: AsyncIterator[Any]) -> AsyncIterator[Any]:
        total: Any = None
        async for message in messages:
            total = message if total is None else total + message
            yield message
        check(total)

    return RunnableGenerator(through, athrough, name="check_structured_reply")


def structured_output(
    llm: BaseChatModel,
    schema: dict[str, Any] | type | None,
    *,
    method: Method = "json_schema",
    include_raw: bool = False,
    strict: bool | None = None,
    **kwargs: Any,
) -> Runnable[LanguageModelInput, Any]:
    """Return ``llm`` bound to produce ``schema`` and a parser, as ``ChatOpenAI`` does.

    ``schema``: a pydantic class (parsed to an instance), a TypedDict or a JSON schema
    (parsed to a dict); ``None`` only with ``method="json_mode"`` (any JSON object).
    """
    if strict is not None and method == "json_mode":
        raise ValueError("Argument `strict` is not supported with `method`='json_mode'")
    if schema is None and method != "json_mode":
        raise ValueError("schema must be specified when method is not 'json_mode'. Received None.")
    pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    target: Any = schema
    tool_name: str | None = None
    parser: Runnable[Any, Any]
    if method == "function_calling":
        tool_name = convert_to_openai_tool(target)["function"]["name"]
        llm_bound: Runnable[Any, Any] = llm.bind_tools(
            [target],
            tool_choice=tool_name,
            parallel_tool_calls=False,
            strict=strict,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": schema,
            },
            **kwargs,
        )
        if pydantic:
            parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
        else:
            parser = JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
    elif method == "json_mode":
        llm_bound = llm.bind(
            response_format={"type": "json_object"},
            ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            **kwargs,
        )
        parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()  # type: ignore[arg-type]
    elif method == "json_schema":
        llm_bound = llm.bind(
            response_format=_response_format(schema, strict),
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": convert_to_openai_tool(target),
            },
            **kwargs,
        )
        parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()  # type: ignore[arg-type]
    else:
        raise ValueError(
            "Unrecognized method argument. Expected one of 'function_calling', "
            f"'json_schema' or 'json_mode'. Received: '{method}'"
        )
    checked = _checker(method, tool_name) | parser
    if include_raw:
        parser_assign = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | checked, parsing_error=lambda _: None
        )
        parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
        with_fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
        return RunnableMap(raw=llm_bound) | with_fallback
    return llm_bound | checked
