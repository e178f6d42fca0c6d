"""Local tool calling without weights: tool choice, prompts, reply parsing, streaming parsing."""

import json

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage

from langchain_hybrid.chat_models._tools import (
    GENERIC_TOOLS_PROMPT,
    OutputFormat,
    ReplyStream,
    ToolChoice,
    add_instructions,
    format_tools,
    parse_reply,
    render_history,
)
from langchain_hybrid.errors import InvalidCallOptionError


def get_weather(city: str) -> str:
    """Get the weather of a city."""
    return "sunny"


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


TOOLS = format_tools([get_weather, add])


def fmt(**options: object) -> OutputFormat:
    return OutputFormat.from_call_options({"tools": TOOLS, **options})


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ToolChoice("auto")),
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ("any", ToolChoice("required")),
        (True, ToolChoice("required")),
        ("add", ToolChoice("required", "add")),
        ({"type": "function", "function": {"name": "add"}}, ToolChoice("required", "add")),
    ],
)
def test_tool_choice_spellings(choice: object, expected: ToolChoice) -> None:
    assert ToolChoice.parse(choice, ["get_weather", "add"]) == expected


def test_tool_choice_naming_no_bound_tool_is_an_error() -> None:
    with pytest.raises(InvalidCallOptionError, match="names no bound tool"):
        ToolChoice.parse("multiply", ["add"])


def test_response_format_shapes() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    json_schema = {"type": "json_schema", "json_schema": {"name": "X", "schema": schema}}
    assert OutputFormat.from_call_options({"response_format": json_schema}).json_schema == schema
    assert (
        OutputFormat.from_call_options({"response_format": {"type": "json_object"}}).json_schema
        == {}
    )
    assert OutputFormat.from_call_options({"response_format": {"type": "text"}}).json_schema is None
    with pytest.raises(InvalidCallOptionError, match="OpenAI's shapes"):
        OutputFormat.from_call_options({"response_format": {"type": "xml"}})
    with pytest.raises(InvalidCallOptionError, match="either a tool call or a JSON"):
        fmt(tool_choice="any", response_format={"type": "json_object"})


def test_hermes_blocks_are_parsed_with_text_around_them() -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    )
    reply = parse_reply(text, fmt())
    assert reply.content == "Let me check."
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("add", {"a": 1, "b": 2}),
    ]
    assert len({c["id"] for c in reply.tool_calls}) == 2
    assert reply.invalid_tool_calls == []


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 1, "b": 2}}',
        '{"name": "add", "parameters": {"a": 1, "b": 2}}',
        '[{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}]',
    ],
)
def test_plain_json_calls_are_parsed(text: str) -> None:
    reply = parse_reply(text, fmt())
    assert reply.content == ""
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("add", {"a": 1, "b": 2})]


def test_plain_json_that_is_not_a_call_stays_text() -> None:
    reply = parse_reply('{"city": "Paris"}', fmt())
    assert reply.content == '{"city": "Paris"}'
    assert reply.tool_calls == [] and reply.invalid_tool_calls == []


def test_unreadable_and_unknown_calls_are_invalid_tool_calls() -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>'
        '<tool_call>{"name": "fly", "arguments": {}}</tool_call>'
    )
    reply = parse_reply(text, fmt())
    assert reply.tool_calls == []
    broken, unknown = reply.invalid_tool_calls
    assert broken["name"] == "get_weather" and "not valid JSON" in str(broken["error"])
    assert unknown["name"] == "fly" and "Unknown tool" in str(unknown["error"])


def test_a_reply_cut_by_max_tokens_keeps_its_calls_and_drops_the_half_open_tag() -> None:
    text = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n<tool'
    reply = parse_reply(text, fmt())
    assert reply.content == ""
    assert len(reply.tool_calls) == 1


@pytest.mark.parametrize("cut", ["\n", "\n</", "\n</tool_", "\n</tool_call"])
def test_a_call_cut_inside_its_closing_tag_is_still_read(cut: str) -> None:
    # Seen with the embedded model: a long (CJK) argument left no room to close the tag.
    text = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}' + cut
    reply = parse_reply(text, fmt())
    assert [c["args"] for c in reply.tool_calls] == [{"a": 1, "b": 2}]
    assert reply.invalid_tool_calls == []


def test_no_parsing_without_tools_or_with_tool_choice_none() -> None:
    text = '<tool_call>\n{"name": "add", "arguments": {}}\n</tool_call>'
    assert parse_reply(text, OutputFormat()).content == text
    assert parse_reply(text, fmt(tool_choice="none")).tool_calls == []


def _stream(pieces: list[str], f: OutputFormat) -> AIMessageChunk:
    stream = ReplyStream(f)
    total = AIMessageChunk(content="")
    for piece in pieces:
        text, calls = stream.feed(piece)
        total += AIMessageChunk(content=text, tool_call_chunks=calls)
    text, calls = stream.flush()
    return total + AIMessageChunk(content=text, tool_call_chunks=calls)


@pytest.mark.parametrize(
    "text",
    [
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}',
        # Cut by max_tokens inside the closing tag: streamed as parse_reply reads it.
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_',
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</',
    ],
)
def test_streamed_replies_aggregate_to_the_parsed_calls(text: str) -> None:
    for size in (1, 3, 7, len(text)):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        total = _stream(pieces, fmt())
        assert [(c["name"], c["args"]) for c in total.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        assert total.content.strip() == parse_reply(text, fmt()).content


def test_plain_text_streams_through_unchanged_except_a_possible_tag_start() -> None:
    stream = ReplyStream(fmt())
    assert stream.feed("Hello <") == ("Hello ", [])
    assert stream.feed("b>") == ("<b>", [])
    assert stream.flush() == ("", [])


def test_generic_prompt_lists_the_tools_and_the_choice() -> None:
    text = fmt(tool_choice="add").instructions(native_tools=False)
    assert text.startswith(GENERIC_TOOLS_PROMPT.split("{tools}")[0])
    for tool in TOOLS:
        assert json.dumps(tool) in text
    assert 'You must call the tool "add"' in text
    assert "plain text" in fmt().instructions(native_tools=False)
    # A template that renders tools itself gets no second listing.
    assert "<tools>" not in fmt(tool_choice="any").instructions(native_tools=True)
    assert fmt(tool_choice="none").instructions(native_tools=False) == ""


def test_json_instructions_carry_the_schema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    f = OutputFormat.from_call_options(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "X", "schema": schema}}}
    )
    assert json.dumps(schema) in f.instructions(native_tools=False)


def test_instructions_join_an_existing_system_turn_or_add_one() -> None:
    chat = [{"role": "user", "content": "hi"}]
    assert add_instructions(chat, "Use tools.") == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "hi"},
    ]
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert add_instructions(chat, "Use tools.")[0]["content"] == "Be brief.\n\nUse tools."


def test_history_with_parallel_calls_and_a_tool_error_is_written_into_the_turns() -> None:
    messages = [
        HumanMessage("Weather in Paris and 1+2?"),
        AIMessage(
            "",
            tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"},
                {"name": "add", "args": {"a": 1, "b": 2}, "id": "c2"},
            ],
        ),
        ToolMessage("sunny", tool_call_id="c1"),
        ToolMessage("Error: overflow", tool_call_id="c2", status="error"),
    ]
    chat = [
        {"role": "user", "content": "Weather in Paris and 1+2?"},
        {"role": "assistant", "content": "", "tool_calls": [...]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        {"role": "tool", "content": "Error: overflow", "tool_call_id": "c2"},
    ]
    out = render_history(chat, messages)
    assert [e["role"] for e in out] == ["user", "assistant", "user"]
    assert out[1]["content"].count("<tool_call>") == 2
    assert '"name": "get_weather", "arguments": {"city": "Paris"}' in out[1]["content"]
    results = out[2]["content"]
    assert results.count("<tool_response>") == 2
    first = json.loads(results.split("<tool_response>\n")[1].split("\n</tool_response>")[0])
    assert first == {"name": "get_weather", "content": "sunny"}
    assert '"status": "error"' in results and '"name": "add"' in results
    # Random call ids never reach the prompt: the same conversation, the same prompt.
    renamed = json.loads(
        json.dumps([m.model_dump() for m in messages])
        .replace('"c1"', '"z9"')
        .replace('"c2"', '"z8"')
    )
    other_ids = [type(m).model_validate(d) for m, d in zip(messages, renamed, strict=True)]
    assert other_ids[2].tool_call_id == "z9"
    assert render_history(chat, other_ids) == out


def test_tool_use_blocks_of_an_assistant_turn_are_rendered_from_its_tool_calls() -> None:
    # Anthropic-style history: the calls appear both as content blocks and as tool_calls.
    from langchain_hybrid.chat_models.transformers import _text_of
    from langchain_hybrid.errors import InvalidMessagesError

    content: list[str | dict] = [
        {"type": "text", "text": "Let me add those."},
        {"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1, "b": 2}},
    ]
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"}
    assert _text_of(AIMessage(content, tool_calls=[call]), 1) == "Let me add those."
    # Without tool_calls the block would be lost: refused, with the message named.
    with pytest.raises(InvalidMessagesError, match="Message 1 has a 'tool_use'"):
        _text_of(AIMessage(content), 1)
