"""Bad input and bad configuration: typed errors before any tier, and nothing sent anywhere."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_openai import ChatOpenAI

from langchain_hybrid import (
    ChatHybrid,
    ChatTransformers,
    ConfidenceGate,
    EarlyEscalation,
    ForceLocalRule,
    MaxLocalContextRule,
    ModelPrice,
    PriceTable,
    RoutingPolicy,
)
from langchain_hybrid.errors import (
    BothTiersFailedError,
    InvalidCallOptionError,
    InvalidMessagesError,
    LangChainHybridError,
    PolicyError,
    UnsupportedCallOptionError,
)
from langchain_hybrid.routing.inputs import check_call_options, check_messages, check_stop
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply
from tests.support.openai_mock import MockOpenAI

SURROGATE = "\ud800"


@pytest.fixture
def local_api() -> MockOpenAI:
    return MockOpenAI(default_reply=ScriptedReply("Paris.", logprobs=-0.05))


@pytest.fixture
def cloud_api() -> MockOpenAI:
    return MockOpenAI(default_reply=ScriptedReply("Paris, France.", logprobs=-0.01))


@pytest.fixture
def llm(local_api: MockOpenAI, cloud_api: MockOpenAI) -> ChatHybrid:
    """Both tiers are real ChatOpenAI clients, so every request either tier gets is recorded."""
    return ChatHybrid(
        local=make_chat_openai(local_api, model="local-small", logprobs=True),
        cloud=make_chat_openai(cloud_api),
        threshold=-0.6,
    )


# --------------------------------------------------------------------------- messages

BAD_MESSAGES: dict[str, Any] = {
    "empty list": [],
    "unknown role": [ChatMessage(role="narrator", content="Once upon a time")],
    "surrogate in a string": f"caf{SURROGATE}",
    "surrogate in content": [HumanMessage(f"hello {SURROGATE}")],
    "surrogate in a content block": [
        SystemMessage("Be brief."),
        HumanMessage([{"type": "text", "text": "ok"}, {"type": "text", "text": SURROGATE}]),
    ],
    "surrogate in tool-call args": [
        HumanMessage("weather?"),
        AIMessage("", tool_calls=[{"name": "w", "args": {"city": f"Pa{SURROGATE}"}, "id": "1"}]),
        ToolMessage("sunny", tool_call_id="1"),
    ],
    "surrogate in a tool result": [
        HumanMessage("weather?"),
        AIMessage("", tool_calls=[{"name": "w", "args": {"city": "Paris"}, "id": "1"}]),
        ToolMessage(f"sun{SURROGATE}", tool_call_id="1"),
    ],
}


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_bad_messages_reach_no_tier(
    llm: ChatHybrid, local_api: MockOpenAI, cloud_api: MockOpenAI, case: str
) -> None:
    with pytest.raises(InvalidMessagesError):
        llm.invoke(BAD_MESSAGES[case])
    with pytest.raises(InvalidMessagesError):
        list(llm.stream(BAD_MESSAGES[case]))
    assert local_api.requests == [] and cloud_api.requests == []


@pytest.mark.parametrize("case", ["empty list", "surrogate in tool-call args"])
async def test_bad_messages_reach_no_tier_async(
    llm: ChatHybrid, local_api: MockOpenAI, cloud_api: MockOpenAI, case: str
) -> None:
    with pytest.raises(InvalidMessagesError):
        await llm.ainvoke(BAD_MESSAGES[case])
    with pytest.raises(InvalidMessagesError):
        [c async for c in llm.astream(BAD_MESSAGES[case])]
    assert local_api.requests == [] and cloud_api.requests == []


def test_invalid_unicode_names_the_message_and_the_place() -> None:
    with pytest.raises(InvalidMessagesError) as info:
        check_messages(BAD_MESSAGES["surrogate in tool-call args"])
    assert "Message 1 (AIMessage)" in str(info.value)
    assert "tool_calls[0]['args']['city']" in str(info.value)
    with pytest.raises(InvalidMessagesError, match=r"Message 1 .*content\[1\]\['text'\]"):
        check_messages(BAD_MESSAGES["surrogate in a content block"])


def test_valid_non_ascii_text_is_accepted() -> None:
    check_messages([HumanMessage("Ünïcödé ✓ 日本語 😀 <|im_end|>"), AIMessage("")])


# --------------------------------------------------------------------------- call options

BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"temperature": -1}, InvalidCallOptionError),
    ({"temperature": 1e9}, InvalidCallOptionError),
    ({"temperature": math.nan}, InvalidCallOptionError),
    ({"temperature": "hot"}, InvalidCallOptionError),
    ({"top_p": 5}, InvalidCallOptionError),
    ({"top_p": 0}, InvalidCallOptionError),
    ({"max_tokens": 0}, InvalidCallOptionError),
    ({"max_tokens": 2.5}, InvalidCallOptionError),
    ({"max_tokens": True}, InvalidCallOptionError),
    ({"stop": 3}, InvalidCallOptionError),
    ({"stop": ["ok", None]}, InvalidCallOptionError),
    ({"stop": [SURROGATE]}, InvalidCallOptionError),
    ({"top_logprobs": 21}, InvalidCallOptionError),
    ({"user": f"u{SURROGATE}"}, InvalidCallOptionError),
    ({"n": 2}, UnsupportedCallOptionError),
]


@pytest.mark.parametrize(("options", "error"), BAD_OPTIONS, ids=lambda v: repr(v)[:40])
def test_bad_call_options_reach_no_tier(
    llm: ChatHybrid,
    local_api: MockOpenAI,
    cloud_api: MockOpenAI,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    options = dict(options)
    stop = options.pop("stop", None)
    with pytest.raises(error) as info:
        llm.invoke("What is the capital of France?", stop=stop, **options)
    assert isinstance(info.value, LangChainHybridError)
    with pytest.raises(error):
        list(llm.stream("What is the capital of France?", stop=stop, **options))
    assert local_api.requests == [] and cloud_api.requests == []


def test_invalid_call_option_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"temperature must be a number in \[0, 2\]"):
        check_call_options({"temperature": -1})


def test_valid_options_reach_the_tiers(
    llm: ChatHybrid, local_api: MockOpenAI, cloud_api: MockOpenAI
) -> None:
    llm.invoke("Who?", temperature=0.5, top_p=0.9, max_tokens=16, stop="END", seed=7)
    body = local_api.chat_requests[0]
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.5, 0.9, 16)
    assert body["stop"] == ["END"] and body["seed"] == 7


def test_stop_is_normalised() -> None:
    assert check_stop("END") == ["END"]
    assert check_stop(("a", "b")) == ["a", "b"]
    assert check_call_options({"temperature": None, "max_tokens": 3}) == {"max_tokens": 3}


# --------------------------------------------------------------------------- the gate


def _gate(cloud_api: MockOpenAI) -> ConfidenceGate:
    return ConfidenceGate(
        primary=FakeLocalChatModel(), fallback=make_chat_openai(cloud_api), threshold=-0.6
    )


@pytest.mark.parametrize(
    "bad",
    [
        [],
        [ChatMessage(role="narrator", content="x")],
        [HumanMessage(SURROGATE)],
        f"x{SURROGATE}",
        ChatPromptValue(messages=[HumanMessage(SURROGATE)]),
    ],
    ids=["empty", "role", "surrogate", "string", "prompt value"],
)
def test_gate_rejects_bad_chat_input(cloud_api: MockOpenAI, bad: Any) -> None:
    with pytest.raises(InvalidMessagesError):
        _gate(cloud_api).invoke(bad)
    with pytest.raises(InvalidMessagesError):
        list(_gate(cloud_api).stream(bad))
    assert cloud_api.requests == []


def test_gate_leaves_other_inputs_to_its_runnables(cloud_api: MockOpenAI) -> None:
    out = _gate(cloud_api).invoke([HumanMessage("What is the capital of France?")])
    assert out.response_metadata["routing"]["tier"] == "local"


# --------------------------------------------------------------------------- both tiers failing


def _failing(
    local_fault: Fault | None, cloud_fault: Fault, **cloud_kw: Any
) -> tuple[ChatHybrid, MockOpenAI]:
    local_api, cloud_api = MockOpenAI(), MockOpenAI()
    if local_fault is not None:
        local_api.enqueue(local_fault)
    else:  # an unsure local answer, which escalates
        local_api.enqueue(ScriptedReply("Maybe Lyon.", logprobs=-3.0))
    cloud_api.enqueue(cloud_fault, cloud_fault)
    llm = ChatHybrid(
        local=make_chat_openai(local_api, model="local-small", logprobs=True),
        cloud=make_chat_openai(cloud_api, **cloud_kw),
        policy=RoutingPolicy(threshold=-0.6, early_escalation=EarlyEscalation(enabled=False)),
    )
    return llm, cloud_api


def test_both_failed_advice_for_a_rejected_key() -> None:
    llm, _ = _failing(Fault(status=500), Fault(status=401))
    with pytest.raises(BothTiersFailedError) as info:
        llm.invoke("Capital of France?")
    assert "check its API key" in str(info.value)
    assert "network" not in str(info.value)


def test_both_failed_advice_for_a_timeout() -> None:
    llm, _ = _failing(Fault(status=500), Fault(delay_s=5.0), timeout=0.05)
    with pytest.raises(BothTiersFailedError, match="timed out: raise the cloud model's timeout"):
        llm.invoke("Capital of France?")


def test_both_failed_advice_for_a_bad_request() -> None:
    error = BothTiersFailedError(
        InvalidCallOptionError("top_logprobs must be ..."), UnsupportedCallOptionError("n=2 ...")
    )
    assert str(error).count("the request is invalid") == 2
    assert "credentials" not in str(error)


# --------------------------------------------------------------------------- configuration


def _fake() -> GenericFakeChatModel:
    return FakeLocalChatModel()


CONFIG_ERRORS: dict[str, tuple[Callable[[], Any], str]] = {
    "hybrid threshold nan": (
        lambda: ChatHybrid(local=_fake(), cloud=_fake(), threshold=math.nan),
        "threshold",
    ),
    "hybrid temperature -1": (
        lambda: ChatHybrid(local=_fake(), cloud=_fake(), temperature=-1),
        "temperature",
    ),
    "hybrid temperature 3": (
        lambda: ChatHybrid(local=_fake(), cloud=_fake(), temperature=3),
        "temperature",
    ),
    "hybrid max_tokens 0": (
        lambda: ChatHybrid(local=_fake(), cloud=_fake(), max_tokens=0),
        "max_tokens",
    ),
    "hybrid cloud not a chat model": (lambda: ChatHybrid(local=_fake(), cloud=3.5), "cloud"),
    "hybrid local not a chat model": (lambda: ChatHybrid(local=None, cloud=_fake()), "local"),
    "hybrid timeout not positive": (
        lambda: ChatHybrid(local=_fake(), cloud=_fake(), timeout=0),
        "timeout",
    ),
    "hybrid unknown setting": (
        lambda: ChatHybrid(local=_fake(), cloud=_fake(), max_retries=3),
        "max_retries",
    ),
    "transformers temperature -1": (lambda: ChatTransformers(temperature=-1), "temperature"),
    "transformers temperature nan": (lambda: ChatTransformers(temperature=math.nan), "temperature"),
    "transformers max_tokens 0": (lambda: ChatTransformers(max_tokens=0), "max_tokens"),
    "transformers top_p 1.5": (lambda: ChatTransformers(top_p=1.5), "top_p"),
    "transformers timeout inf": (lambda: ChatTransformers(timeout=math.inf), "timeout"),
    "gate threshold nan": (
        lambda: ConfidenceGate(_fake(), _fake(), threshold=math.nan),
        "threshold",
    ),
    "gate fallback not a runnable": (lambda: ConfidenceGate(_fake(), 42), "fallback"),
    "policy threshold nan": (lambda: RoutingPolicy(threshold=math.nan), "threshold"),
    "policy threshold inf": (lambda: RoutingPolicy(threshold=math.inf), "threshold"),
    "early escalation min_tokens 0": (lambda: EarlyEscalation(min_tokens=0), "min_tokens"),
    "early escalation margin -1": (lambda: EarlyEscalation(margin=-1), "margin"),
    "rule bad pattern": (lambda: ForceLocalRule(pattern="("), "pattern"),
    "rule max_tokens 0": (lambda: MaxLocalContextRule(max_tokens=0), "max_tokens"),
    "price negative": (lambda: ModelPrice(-1.0, 0.0), "input_per_1m"),
    "price table value": (lambda: PriceTable({"gpt-4o": 1.0}), "gpt-4o"),
}


@pytest.mark.parametrize("case", CONFIG_ERRORS)
def test_bad_configuration_fails_at_construction_naming_the_field(case: str) -> None:
    build, field = CONFIG_ERRORS[case]
    # pydantic's ValidationError is a ValueError; a tier that is no chat model (nor a model
    # name) is a TierSettingError, a TypeError.
    with pytest.raises((ValueError, TypeError), match=field):
        build()


def test_policy_errors_are_typed() -> None:
    with pytest.raises(PolicyError):
        RoutingPolicy(threshold=math.nan)


def test_cloud_model_that_is_valid_is_kept() -> None:
    cloud = ChatOpenAI(model="gpt-4o", api_key="k", http_socket_options=())
    assert ChatHybrid(local=_fake(), cloud=cloud).cloud.logprobs is True
