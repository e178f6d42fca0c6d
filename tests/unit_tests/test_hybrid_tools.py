"""ChatHybrid with tools and structured output: local first, invalid local answers escalate.

The local tier is a :class:`FakeLocalChatModel` that can call tools (scripted tool calls
and JSON replies, with log-probs); the cloud is a real ``ChatOpenAI`` answered by the
socket-free :class:`MockOpenAI`. Every escalation case runs through invoke, stream,
ainvoke and astream.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from pydantic import BaseModel

from langchain_hybrid import ChatHybrid, RoutingPolicy
from langchain_hybrid.routing.threads import ThreadMemory
from langchain_hybrid.routing.validation import AnswerSpec
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import ScriptedReply
from tests.support.openai_mock import MockOpenAI

SURE, UNSURE = -0.05, -2.5


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def city_weather(city: str) -> str:
    """Return the weather of a city."""
    return "sunny"


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str


def call(name: str, args: dict[str, Any], id_: str = "c1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_}])


def local(*answers: AIMessage | str, logprob: float = SURE) -> FakeLocalChatModel:
    return FakeLocalChatModel(can_call_tools=True, messages=iter(answers), logprob=logprob)


def hybrid(local_tier: FakeLocalChatModel, cloud: MockOpenAI, **kw: Any) -> ChatHybrid:
    return ChatHybrid(local=local_tier, cloud=make_chat_openai(cloud), threshold=-0.6, **kw)


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


async def answer(runnable: Any, mode: str, value: Any, config: Any = None) -> BaseMessage:
    """Call ``runnable`` in one of the four ways; return the whole answer message."""
    if mode == "invoke":
        return runnable.invoke(value, config)  # type: ignore[no-any-return]
    if mode == "ainvoke":
        return await runnable.ainvoke(value, config)  # type: ignore[no-any-return]
    if mode == "stream":
        return merge(list(runnable.stream(value, config)))
    return merge([c async for c in runnable.astream(value, config)])


MODES = ["invoke", "stream", "ainvoke", "astream"]


def cloud_calls(cloud: MockOpenAI) -> list[dict[str, Any]]:
    return cloud.chat_requests


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize("mode", MODES)
async def test_valid_confident_local_tool_call_is_kept(openai_mock: MockOpenAI, mode: str) -> None:
    llm = hybrid(local(call("add", {"a": 2, "b": 3})), openai_mock).bind_tools([add])
    msg = await answer(llm, mode, "What is 2 + 3?")
    assert [c["name"] for c in msg.tool_calls] == ["add"]  # type: ignore[attr-defined]
    assert msg.tool_calls[0]["args"] == {"a": 2, "b": 3}  # type: ignore[attr-defined]
    routing = msg.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("local", "confident")
    assert cloud_calls(openai_mock) == []


BAD_LOCAL = {
    "unknown tool": call("multiply", {"a": 2, "b": 3}),
    "arguments fail the schema": call("add", {"a": "two"}),
    "arguments not JSON": AIMessage(
        "", invalid_tool_calls=[{"name": "add", "args": "not json", "id": "c1", "error": None}]
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(BAD_LOCAL))
async def test_invalid_local_tool_call_escalates(
    openai_mock: MockOpenAI, mode: str, case: str
) -> None:
    openai_mock.enqueue(
        ScriptedReply("", tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}])
    )
    llm = hybrid(local(BAD_LOCAL[case]), openai_mock).bind_tools([add, city_weather])
    msg = await answer(llm, mode, "What is 2 + 3?")
    routing = msg.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "invalid_tool_call")
    assert routing["escalated"] is True
    assert "local: invalid_tool_call" in routing["error"]
    assert msg.tool_calls[0]["args"] == {"a": 2, "b": 3}  # type: ignore[attr-defined]
    [request] = cloud_calls(openai_mock)
    assert {t["function"]["name"] for t in request["tools"]} == {"add", "city_weather"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_local_call_repeating_one_already_answered_escalates(
    openai_mock: MockOpenAI, mode: str
) -> None:
    # Seen with the 135M model in the agent example: calculator("2.65") again and again,
    # confidently, until the agent's recursion limit.
    openai_mock.enqueue(ScriptedReply("2 + 3 is 5."))
    history = [
        HumanMessage("What is 2 + 3?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"b": 3, "a": 2}, "id": "c1"}]),
        ToolMessage("5", tool_call_id="c1"),
    ]
    llm = hybrid(local(call("add", {"a": 2, "b": 3})), openai_mock).bind_tools([add])
    msg = await answer(llm, mode, history)
    routing = msg.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "invalid_tool_call")
    assert 'repeats the call add({"a": 2, "b": 3})' in routing["error"]
    assert msg.text == "2 + 3 is 5."
    # A call with other arguments is a new step, kept local.
    again = hybrid(local(call("add", {"a": 5, "b": 1})), openai_mock).bind_tools([add])
    assert (await answer(again, mode, history)).response_metadata["routing"]["tier"] == "local"


@pytest.mark.parametrize("mode", MODES)
async def test_required_tool_call_not_made_escalates(openai_mock: MockOpenAI, mode: str) -> None:
    openai_mock.enqueue(
        ScriptedReply("", tool_calls=[{"name": "add", "arguments": {"a": 1, "b": 1}}])
    )
    llm = hybrid(local("It is 5."), openai_mock).bind_tools([add], tool_choice="any")
    msg = await answer(llm, mode, "What is 2 + 3?")
    assert msg.response_metadata["routing"]["reason"] == "invalid_tool_call"
    assert cloud_calls(openai_mock)[0]["tool_choice"] == "required"


async def test_plain_text_answer_with_optional_tools_is_valid(openai_mock: MockOpenAI) -> None:
    llm = hybrid(local("Paris is the capital of France."), openai_mock).bind_tools([add])
    msg = llm.invoke("Capital of France?")
    assert msg.response_metadata["routing"]["reason"] == "confident"


def test_unconfident_valid_tool_call_escalates_as_low_confidence(openai_mock: MockOpenAI) -> None:
    llm = hybrid(local(call("add", {"a": 2, "b": 3}), logprob=UNSURE), openai_mock)
    msg = llm.bind_tools([add]).invoke("What is 2 + 3?")
    assert msg.response_metadata["routing"]["reason"] in ("low_confidence", "early_abort")


def test_tool_histories_parallel_calls_and_errors_reach_both_tiers_unchanged(
    openai_mock: MockOpenAI,
) -> None:
    history: list[BaseMessage] = [
        HumanMessage("Add 1+2 and 3+4, and the weather in Paris."),
        AIMessage(
            "",
            tool_calls=[
                {"name": "add", "args": {"a": 1, "b": 2}, "id": "t1"},
                {"name": "add", "args": {"a": 3, "b": 4}, "id": "t2"},
                {"name": "city_weather", "args": {"city": "Paris"}, "id": "t3"},
            ],
        ),
        ToolMessage("3", tool_call_id="t1"),
        ToolMessage([{"type": "text", "text": "7"}], tool_call_id="t2"),
        ToolMessage("Error: service down", tool_call_id="t3", status="error"),
    ]
    local_tier = local("3 and 7; the weather is unknown.", logprob=UNSURE)
    llm = hybrid(local_tier, openai_mock).bind_tools([add, city_weather])
    msg = llm.invoke(history)
    assert msg.response_metadata["routing"]["tier"] == "cloud"
    assert local_tier.received[0] == history  # the local tier got the messages as they were
    sent = cloud_calls(openai_mock)[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["t1", "t2", "t3"]
    assert sent[3]["content"] == [{"type": "text", "text": "7"}]
    assert sent[4]["content"] == "Error: service down"


# --------------------------------------------------------------------------- structured output


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_structured_function_calling_local_first(openai_mock: MockOpenAI, mode: str) -> None:
    llm = hybrid(local(call("City", {"name": "Paris", "country": "France"})), openai_mock)
    structured = llm.with_structured_output(City, method="function_calling")
    if mode in ("stream", "astream"):
        chunks = (
            list(structured.stream("Capital of France?"))
            if mode == "stream"
            else [c async for c in structured.astream("Capital of France?")]
        )
        result = chunks[-1]
    else:
        result = await answer(structured, mode, "Capital of France?")
    assert result == City(name="Paris", country="France")
    assert cloud_calls(openai_mock) == []


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_structured_function_calling_invalid_local_escalates(
    openai_mock: MockOpenAI, mode: str
) -> None:
    reply = {"name": "City", "arguments": {"name": "Paris", "country": "France"}}
    openai_mock.enqueue(ScriptedReply("", tool_calls=[reply]))
    llm = hybrid(local(call("City", {"name": "Paris"})), openai_mock)  # "country" missing
    out = await answer(
        llm.with_structured_output(City, method="function_calling", include_raw=True),
        mode,
        "Capital?",
    )
    assert isinstance(out, dict)
    assert out["parsed"] == City(name="Paris", country="France")
    assert out["parsing_error"] is None
    routing = out["raw"].response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "invalid_structured_output")
    assert cloud_calls(openai_mock)[0]["tool_choice"]["function"]["name"] == "City"


JSON_METHODS = ["json_schema", "json_mode"]


@pytest.mark.parametrize("method", JSON_METHODS)
@pytest.mark.parametrize("mode", MODES)
async def test_json_methods_local_first_and_response_format_reaches_both_tiers(
    openai_mock: MockOpenAI, method: str, mode: str
) -> None:
    local_tier = local('{"name": "Paris", "country": "France"}')
    structured = hybrid(local_tier, openai_mock).with_structured_output(City, method=method)
    if mode in ("stream", "astream"):
        chunks = (
            list(structured.stream("Capital of France? Answer in JSON."))
            if mode == "stream"
            else [c async for c in structured.astream("Capital of France? Answer in JSON.")]
        )
        result = chunks[-1]
    else:
        result = await answer(structured, mode, "Capital of France? Answer in JSON.")
    assert result == City(name="Paris", country="France")
    expected = "json_schema" if method == "json_schema" else "json_object"
    assert local_tier.seen[0]["response_format"]["type"] == expected
    assert cloud_calls(openai_mock) == []


@pytest.mark.parametrize("method", JSON_METHODS)
@pytest.mark.parametrize("mode", MODES)
async def test_json_methods_invalid_local_escalates_with_the_same_response_format(
    openai_mock: MockOpenAI, method: str, mode: str
) -> None:
    openai_mock.enqueue(ScriptedReply('{"name": "Paris", "country": "France"}'))
    bad = "Paris, France" if method == "json_mode" else '{"name": "Paris"}'
    llm = hybrid(local(bad), openai_mock)
    bound = llm.bind(
        response_format={"type": "json_object"}
        if method == "json_mode"
        else {
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": City.model_json_schema()},
        }
    )
    msg = await answer(bound, mode, "Capital of France? Answer in JSON.")
    routing = msg.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "invalid_structured_output")
    assert cloud_calls(openai_mock)[0]["response_format"]["type"] in ("json_object", "json_schema")


@pytest.mark.parametrize("mode", MODES)
async def test_json_mode_local_object_missing_the_schema_escalates(
    openai_mock: MockOpenAI, mode: str
) -> None:
    # json_mode sends only {"type": "json_object"}, yet the schema still decides.
    openai_mock.enqueue(ScriptedReply('{"name": "Paris", "country": "France"}'))
    llm = hybrid(local('{"city": "Paris"}', '{"city": "Paris"}'), openai_mock)
    structured = llm.with_structured_output(City, method="json_mode", include_raw=True)
    if mode in ("stream", "astream"):
        chunks = (
            list(structured.stream("Capital of France? JSON."))
            if mode == "stream"
            else [c async for c in structured.astream("Capital of France? JSON.")]
        )
        out: dict[str, Any] = {}
        for chunk in chunks:
            out.update(chunk)
        raw = out["raw"]
    else:
        out = await answer(structured, mode, "Capital of France? JSON.")
        raw = out["raw"]
    assert out["parsed"] == City(name="Paris", country="France")
    routing = raw.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "invalid_structured_output")
    assert cloud_calls(openai_mock)[0]["response_format"] == {"type": "json_object"}
    # Without a schema any JSON object is a valid local answer.
    assert llm.with_structured_output(None, method="json_mode").invoke("JSON?") == {"city": "Paris"}


@pytest.mark.parametrize("method", [*JSON_METHODS, "function_calling"])
def test_unparseable_cloud_reply_is_an_error_never_none(
    openai_mock: MockOpenAI, method: str
) -> None:
    openai_mock.responder = lambda body: ScriptedReply("Sorry, I cannot do that.")
    llm = hybrid(local("no idea", logprob=UNSURE), openai_mock)
    with pytest.raises(OutputParserException):
        llm.with_structured_output(City, method=method).invoke("Capital of France?")
    out = llm.with_structured_output(City, method=method, include_raw=True).invoke("Capital?")
    assert out["parsed"] is None
    assert isinstance(out["parsing_error"], OutputParserException)
    assert out["raw"].response_metadata["routing"]["tier"] == "cloud"


def test_json_schema_method_sends_openai_response_format_to_the_cloud(
    openai_mock: MockOpenAI,
) -> None:
    openai_mock.enqueue(ScriptedReply('{"name": "Paris", "country": "France"}'))
    llm = hybrid(local("??", logprob=UNSURE), openai_mock)
    schema = City.model_json_schema()
    result = llm.with_structured_output(schema, method="json_schema").invoke("Capital?")
    assert result == {"name": "Paris", "country": "France"}  # a JSON schema gives a dict
    sent = cloud_calls(openai_mock)[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"


def test_with_structured_output_rejects_unknown_methods_and_missing_schema(
    openai_mock: MockOpenAI,
) -> None:
    llm = hybrid(local('{"a": 1}'), openai_mock)
    with pytest.raises(ValueError, match="method must be one of"):
        llm.with_structured_output(City, method="xml")
    with pytest.raises(ValueError, match="schema is required"):
        llm.with_structured_output(None, method="json_schema")
    assert llm.with_structured_output(None, method="json_mode").invoke("JSON?") == {"a": 1}


def test_policy_judge_replays_the_check_offline() -> None:
    lp = {"content": [{"token": "x", "logprob": -0.01}]}
    message = AIMessage(
        "", tool_calls=[{"name": "nope", "args": {}, "id": "1"}], response_metadata={"logprobs": lp}
    )
    spec = AnswerSpec.for_tools([add])
    verdict = RoutingPolicy().judge(message, expects=spec)
    assert (verdict.reason, verdict.escalate) == ("invalid_tool_call", True)
    assert "unknown tool 'nope'" in (verdict.invalid or "")
    assert RoutingPolicy().judge(message).reason == "confident"  # no spec: no check


# --------------------------------------------------------------------------- sticky escalation


class Scripted(FakeLocalChatModel):
    """Answers confidently unless the question contains 'hard'."""

    def _next(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[str, list[dict[str, Any]], float]:
        return "Answer.", [], UNSURE if "hard" in str(messages[-1].text) else SURE


@pytest.mark.parametrize("mode", MODES)
async def test_sticky_escalation_keeps_an_escalated_thread_on_the_cloud(
    openai_mock: MockOpenAI, mode: str
) -> None:
    llm = ChatHybrid(
        local=Scripted(),
        cloud=make_chat_openai(openai_mock),
        policy=RoutingPolicy(threshold=-0.6, sticky_escalation=True),
    )
    t1 = {"configurable": {"thread_id": "t1"}}
    t2 = {"metadata": {"thread_id": "t2"}}

    async def reason(question: str, config: Any) -> str:
        msg = await answer(llm, mode, question, config)
        return str(msg.response_metadata["routing"]["reason"])

    assert await reason("easy one", t1) == "confident"
    assert await reason("a hard one", t1) == "low_confidence"
    assert await reason("easy again", t1) == "sticky_escalation"
    assert await reason("easy one", t2) == "confident"  # another thread is not affected
    assert await reason("easy one", None) == "confident"  # no thread: routed afresh
    assert await reason("mail me at jo@example.com", t1) == "privacy_forced_local"  # privacy wins
    assert len(llm.threads) == 1


def _with_history(llm: ChatHybrid, *keys: str) -> Any:
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.runnables import ConfigurableFieldSpec
    from langchain_core.runnables.history import RunnableWithMessageHistory

    store: dict[tuple[str, ...], InMemoryChatMessageHistory] = {}

    def history(*values: str) -> InMemoryChatMessageHistory:
        return store.setdefault(values, InMemoryChatMessageHistory())

    if not keys:
        return RunnableWithMessageHistory(llm, lambda session_id: history(session_id))
    specs = [ConfigurableFieldSpec(id=k, annotation=str) for k in keys]

    def by_keys(user_id: str, chat: str) -> InMemoryChatMessageHistory:
        return history(user_id, chat)

    return RunnableWithMessageHistory(llm, by_keys, history_factory_config=specs)


@pytest.mark.parametrize("keys", [(), ("user_id", "chat")], ids=["session_id", "custom keys"])
def test_sticky_escalation_follows_runnable_with_message_history(
    openai_mock: MockOpenAI, keys: tuple[str, ...]
) -> None:
    llm = ChatHybrid(
        local=Scripted(),
        cloud=make_chat_openai(openai_mock),
        policy=RoutingPolicy(threshold=-0.6, sticky_escalation=True),
    )
    chat = _with_history(llm, *keys)

    def reason(question: str, thread: str) -> str:
        configurable = {"session_id": thread} if not keys else {"user_id": "u", "chat": thread}
        msg = chat.invoke(question, {"configurable": configurable})
        return str(msg.response_metadata["routing"]["reason"])

    assert reason("easy one", "s1") == "confident"
    assert reason("a hard one", "s1") == "low_confidence"
    assert reason("easy again", "s1") == "sticky_escalation"
    assert reason("easy one", "s2") == "confident"  # another conversation is not affected


def test_sticky_escalation_warns_when_a_call_names_no_thread(openai_mock: MockOpenAI) -> None:
    llm = ChatHybrid(
        local=Scripted(),
        cloud=make_chat_openai(openai_mock),
        policy=RoutingPolicy(threshold=-0.6, sticky_escalation=True),
    )
    with pytest.warns(UserWarning, match="names no conversation thread"):
        llm.invoke("easy one")


def test_without_sticky_escalation_each_turn_is_routed_afresh(openai_mock: MockOpenAI) -> None:
    llm = ChatHybrid(local=Scripted(), cloud=make_chat_openai(openai_mock), threshold=-0.6)
    config = {"configurable": {"thread_id": "t1"}}
    llm.invoke("a hard one", config)
    assert llm.invoke("easy", config).response_metadata["routing"]["reason"] == "confident"


def test_sticky_memory_is_shared_by_bound_copies_and_bounded(openai_mock: MockOpenAI) -> None:
    memory = ThreadMemory(max_threads=2)
    llm = ChatHybrid(
        local=Scripted(can_call_tools=True),
        cloud=make_chat_openai(openai_mock),
        policy=RoutingPolicy(threshold=-0.6, sticky_escalation=True),
        threads=memory,
    )
    bound = llm.bind_tools([add])
    for thread in ("a", "b", "c"):
        bound.invoke("a hard one", {"configurable": {"thread_id": thread}})
    assert len(memory) == 2 and not memory.escalated("a") and memory.escalated("c")
    msg = llm.invoke("easy", {"configurable": {"thread_id": "c"}})
    assert msg.response_metadata["routing"]["reason"] == "sticky_escalation"


def test_sticky_escalation_degrades_to_local_when_the_cloud_fails(openai_mock: MockOpenAI) -> None:
    from tests.support.openai_fake import Fault

    llm = ChatHybrid(
        local=Scripted(),
        cloud=make_chat_openai(openai_mock),
        policy=RoutingPolicy(threshold=-0.6, sticky_escalation=True),
    )
    config = {"configurable": {"thread_id": "t"}}
    llm.invoke("a hard one", config)
    openai_mock.enqueue(Fault(status=500))
    routing = llm.invoke("easy", config).response_metadata["routing"]
    assert (routing["tier"], routing["degraded"], routing["escalation_reason"]) == (
        "local",
        True,
        "sticky_escalation",
    )


def test_sticky_setting_round_trips_through_policy_files() -> None:
    policy = RoutingPolicy(sticky_escalation=True)
    assert RoutingPolicy.from_dict(policy.to_dict()).sticky_escalation is True
    assert "sticky_escalation" not in RoutingPolicy().to_dict()  # files stay as before


def test_an_answer_echoing_tool_markup_is_an_invalid_tool_call() -> None:
    # Seen with the 135M model inside an agent: it repeats the tool result it was shown.
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from langchain_hybrid.routing.validation import AnswerSpec

    spec = AnswerSpec.for_tools([convert_to_openai_tool(add)], tool_choice="auto")
    echoed = AIMessage('<tool_response>\n{"name": "add", "content": "3"}\n</tool_response>')
    invalid = spec.check(echoed)
    assert invalid is not None and invalid.reason == "invalid_tool_call"
    assert "markup" in invalid.detail
    assert spec.check(AIMessage("1 + 2 = 3.")) is None


async def test_structured_output_default_method_is_the_installed_chatopenais(
    openai_mock: MockOpenAI,
) -> None:
    import inspect

    from langchain_openai import ChatOpenAI

    chatopenai_default = inspect.signature(ChatOpenAI.with_structured_output).parameters["method"]
    local_tier = local('{"name": "Paris", "country": "France"}')
    structured = hybrid(local_tier, openai_mock).with_structured_output(City)
    assert structured.invoke("Capital of France? Answer in JSON.") == City(
        name="Paris", country="France"
    )
    sent = local_tier.seen[-1]
    if chatopenai_default.default == "json_schema":
        assert sent["response_format"]["type"] == "json_schema" and "tools" not in sent
    else:
        assert [t["function"]["name"] for t in sent["tools"]] == ["City"]
    assert cloud_calls(openai_mock) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_valid_tool_call_before_the_token_limit_is_not_truncated(
    openai_mock: MockOpenAI, mode: str
) -> None:
    # The local call's arguments parsed and fit the schema; the token limit came after.
    local_tier = local(call("City", {"name": "Paris", "country": "France"}))
    local_tier.finish_reason = "length"
    structured = hybrid(local_tier, openai_mock).with_structured_output(
        City, method="function_calling", include_raw=True
    )
    if mode in ("stream", "astream"):
        chunks = (
            list(structured.stream("Capital of France?"))
            if mode == "stream"
            else [c async for c in structured.astream("Capital of France?")]
        )
        out: Any = {k: v for c in chunks for k, v in c.items()}
    else:
        out = await answer(structured, mode, "Capital of France?")
    assert out["parsed"] == City(name="Paris", country="France")
    routing = out["raw"].response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("local", "confident")
    assert cloud_calls(openai_mock) == []


async def test_a_cut_tool_call_still_escalates_as_truncated(openai_mock: MockOpenAI) -> None:
    reply = {"name": "City", "arguments": {"name": "Paris", "country": "France"}}
    openai_mock.enqueue(ScriptedReply("", tool_calls=[reply]))
    local_tier = local(call("City", {"name": "Paris"}))  # cut before "country"
    local_tier.finish_reason = "length"
    out = (
        hybrid(local_tier, openai_mock)
        .with_structured_output(City, method="function_calling", include_raw=True)
        .invoke("Capital of France?")
    )
    routing = out["raw"].response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "truncated")
