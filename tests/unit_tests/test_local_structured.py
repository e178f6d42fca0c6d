"""with_structured_output's contract (langchain_openai's), on a scripted chat model."""

from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import BaseModel
from typing_extensions import TypedDict

from langchain_hybrid.chat_models._structured import structured_output


class Person(BaseModel):
    """A person."""

    name: str
    age: int


class PersonDict(TypedDict):
    """A person."""

    name: str
    age: int


class Scripted(GenericFakeChatModel):
    """Answers from a script and records the options each call was bound with."""

    seen: list[dict[str, Any]] = []

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), **kwargs)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        self.seen.append(kwargs)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def scripted(*replies: AIMessage) -> Scripted:
    return Scripted(messages=iter(replies), seen=[])


def call(name: str = "Person") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": {"name": "Ann", "age": 3}, "id": "1"}])


@pytest.mark.parametrize(
    ("schema", "expected"),
    [(Person, Person(name="Ann", age=3)), (PersonDict, {"name": "Ann", "age": 3})],
)
def test_function_calling_binds_the_schema_as_the_one_tool_to_call(schema, expected) -> None:
    llm = scripted(call(schema.__name__))
    assert structured_output(llm, schema, method="function_calling").invoke("Ann is 3") == expected
    (options,) = llm.seen
    assert options["tool_choice"] == schema.__name__ and options["parallel_tool_calls"] is False


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_json_methods_bind_a_response_format_and_parse_the_text(method) -> None:
    llm = scripted(AIMessage('{"name": "Ann", "age": 3}'))
    assert structured_output(llm, Person, method=method).invoke("Ann is 3") == Person(
        name="Ann", age=3
    )
    response_format = llm.seen[0]["response_format"]
    if method == "json_mode":
        assert response_format == {"type": "json_object"}
    else:
        assert response_format["type"] == "json_schema"
        assert response_format["json_schema"]["name"] == "Person"
        assert response_format["json_schema"]["schema"]["required"] == ["name", "age"]


@pytest.mark.parametrize(
    ("method", "reply", "why"),
    [
        ("function_calling", AIMessage("Ann is three."), "holds no call to 'PersonDict'"),
        ("json_schema", AIMessage("Ann is three."), "not JSON"),
        ("json_mode", AIMessage(""), "not JSON"),
    ],
)
def test_an_unparseable_reply_raises_or_fills_parsing_error_never_a_silent_none(
    method, reply, why
) -> None:
    with pytest.raises(OutputParserException, match=why):
        structured_output(scripted(reply), PersonDict, method=method).invoke("Ann is 3")
    out = structured_output(scripted(reply), PersonDict, method=method, include_raw=True).invoke(
        "Ann is 3"
    )
    assert out["parsed"] is None
    assert isinstance(out["parsing_error"], OutputParserException)
    assert out["raw"].content == reply.content


def test_include_raw_gives_raw_parsed_and_no_error() -> None:
    out = structured_output(scripted(call()), Person, method="function_calling", include_raw=True)
    result = out.invoke("Ann is 3")
    assert result["parsed"] == Person(name="Ann", age=3)
    assert result["parsing_error"] is None
    assert result["raw"].tool_calls[0]["name"] == "Person"


def test_a_schema_is_required_except_in_json_mode() -> None:
    with pytest.raises(ValueError, match="schema must be specified"):
        structured_output(scripted(call()), None, method="function_calling")
    llm = scripted(AIMessage('{"any": 1}'))
    assert structured_output(llm, None, method="json_mode").invoke("x") == {"any": 1}
