"""Privacy routing, unit lane: planted values never reach the (mocked) cloud's request bytes.

The cloud is the real ``ChatOpenAI`` answered by ``MockOpenAI``, whose recorded requests
hold the raw bodies; the local tier is ``FakeLocalChatModel`` (it cannot call tools).
``threshold=0.0`` escalates every local answer, so anything not kept local reaches the
cloud.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel

from langchain_hybrid import (
    ChatHybrid,
    ConfidenceGate,
    ForceLocalRule,
    LocalToolCallUnavailableError,
    PolicyError,
    PrivacyRule,
    RoutingPolicy,
)
from langchain_hybrid.privacy import DEFAULT_DETECTOR_NAMES, RegexDetector
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import ScriptedReply
from tests.support.openai_mock import MockOpenAI
from tests.support.privacy_corpus import PLACEHOLDERS, PLANTED, SHAPES, corpus, leaks

PROMPTS = corpus()


def raw(mock: MockOpenAI) -> bytes:
    return b"".join(r.raw for r in mock.requests)


def hybrid(mock: MockOpenAI, **kw: Any) -> ChatHybrid:
    return ChatHybrid(local=FakeLocalChatModel(), cloud=make_chat_openai(mock), threshold=0.0, **kw)


def lookup(query: str) -> str:
    """Look an account up."""
    return "none"


class Reply(BaseModel):
    """A structured reply."""

    text: str


async def _ainvoke(llm: Any, m: Any) -> Any:
    return await llm.ainvoke(m)


async def _astream(llm: Any, m: Any) -> Any:
    return [c async for c in llm.astream(m)]


ENTRY_POINTS: dict[str, Callable[[Any, list[BaseMessage]], Any]] = {
    "invoke": lambda llm, m: llm.invoke(m),
    "stream": lambda llm, m: list(llm.stream(m)),
    "ainvoke": _ainvoke,
    "astream": _astream,
    "bind_tools": lambda llm, m: llm.bind_tools([lookup]).invoke(m),
}


async def call(entry: str, llm: Any, messages: list[BaseMessage]) -> Any:
    out = ENTRY_POINTS[entry](llm, messages)
    return await out if hasattr(out, "__await__") else out


def routing_of(out: Any) -> dict[str, Any]:
    message = out[-1] if isinstance(out, list) else out
    routing: dict[str, Any] = message.response_metadata["routing"]
    return routing


# ---------------------------------------------------------------------------- the corpus


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("shape", SHAPES)
async def test_planted_values_stay_local_by_default(
    openai_mock: MockOpenAI, shape: str, entry: str
) -> None:
    for prompt in corpus([shape]):
        out = await call(entry, hybrid(openai_mock), prompt.messages)
        routing = routing_of(out)
        assert (routing["tier"], routing["reason"]) == ("local", "privacy_forced_local")
        assert routing["privacy"]["action"] == "local"
        assert prompt.value not in json.dumps(routing)
    assert openai_mock.chat_requests == []
    assert leaks(raw(openai_mock), PLANTED.values()) == {}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("shape", SHAPES)
async def test_redaction_sends_the_cloud_placeholders_only(
    openai_mock: MockOpenAI, shape: str, entry: str
) -> None:
    llm = hybrid(openai_mock, privacy=PrivacyRule(action="redact"))
    for prompt in corpus([shape]):
        out = await call(entry, llm, prompt.messages)
        routing = routing_of(out)
        assert routing["tier"] == "cloud"  # escalated, or (tools bound) local_unsupported
        assert routing["privacy"] == {
            "rule": "privacy",
            "action": "redact",
            "detectors": ["ip_address" if prompt.kind.startswith("ip") else prompt.kind],
        }
        assert PLACEHOLDERS[prompt.kind].encode() in openai_mock.requests[-1].raw
    assert len(openai_mock.chat_requests) == len(PLANTED)
    assert leaks(raw(openai_mock), PLANTED.values()) == {}


@pytest.mark.parametrize("shape", SHAPES)
def test_with_privacy_off_the_values_do_reach_the_cloud(
    openai_mock: MockOpenAI, shape: str
) -> None:
    llm = hybrid(openai_mock, privacy=False)
    for prompt in corpus([shape]):
        assert routing_of(llm.invoke(prompt.messages))["tier"] == "cloud"
    assert set(leaks(raw(openai_mock), PLANTED.values())) == set(PLANTED.values())


# ---------------------------------------------------------------------------- tools


def test_structured_output_kept_local_is_a_typed_error_and_sends_nothing(
    openai_mock: MockOpenAI,
) -> None:
    structured = hybrid(openai_mock).with_structured_output(Reply, method="function_calling")
    for prompt in PROMPTS:
        with pytest.raises(LocalToolCallUnavailableError, match="cannot call tools"):
            structured.invoke(prompt.messages)
    assert openai_mock.requests == []


def test_structured_output_with_redaction_escalates_with_placeholders(
    openai_mock: MockOpenAI,
) -> None:
    openai_mock.responder = lambda body: ScriptedReply(
        "", tool_calls=[{"name": "Reply", "arguments": {"text": "done"}}]
    )
    structured = hybrid(openai_mock, privacy=PrivacyRule(action="redact")).with_structured_output(
        Reply, method="function_calling"
    )
    for prompt in PROMPTS:
        assert structured.invoke(prompt.messages) == Reply(text="done")
    assert len(openai_mock.chat_requests) == len(PROMPTS)
    assert leaks(raw(openai_mock), PLANTED.values()) == {}


def test_tools_bound_a_local_answer_without_tools(openai_mock: MockOpenAI) -> None:
    bound = hybrid(openai_mock).bind_tools([lookup])
    out = bound.invoke(f"My mail is {PLANTED['email']}")
    assert out.content == "The capital of France is Paris."
    assert out.tool_calls == []
    assert openai_mock.requests == []
    # Without sensitive data the local tier cannot serve the tools: the cloud does.
    assert bound.invoke("Look up the weather").response_metadata["routing"]["reason"] == (
        "local_unsupported"
    )


def test_a_force_local_rule_is_not_bypassed(openai_mock: MockOpenAI) -> None:
    policy = RoutingPolicy(rules=[ForceLocalRule(pattern="ACME-SECRET", name="nda")], privacy=None)
    llm = hybrid(openai_mock, policy=policy)
    split = HumanMessage(
        content=[{"type": "text", "text": "ACME-SE"}, {"type": "text", "text": "CRET"}]
    )
    args = AIMessage("", tool_calls=[{"name": "f", "args": {"x": "ACME-SECRET"}, "id": "1"}])
    for messages in ([split], [HumanMessage("q"), args, HumanMessage("go")]):
        for llm_ in (llm, llm.bind_tools([lookup])):
            assert routing_of(llm_.invoke(messages))["reason"] == "rule_force_local"
        with pytest.raises(LocalToolCallUnavailableError):
            llm.with_structured_output(Reply, method="function_calling").invoke(messages)
    assert openai_mock.requests == []


# ---------------------------------------------------------------------------- the gate


def gate_inputs(value: str) -> list[Any]:
    messages = SHAPES["plain"](value)
    return [f"my details: {value}", messages, ChatPromptValue(messages=messages)]


@pytest.mark.parametrize("action", ["local", "redact"])
async def test_the_gate_applies_privacy_to_every_input_form(
    openai_mock: MockOpenAI, action: str
) -> None:
    gate = ConfidenceGate(
        FakeLocalChatModel(),
        make_chat_openai(openai_mock),
        threshold=0.0,
        privacy=PrivacyRule(action=action),  # type: ignore[arg-type]
    )
    template = ChatPromptTemplate.from_messages([("human", "{q}")])
    dict_gate = ConfidenceGate(
        template | FakeLocalChatModel(),
        template | make_chat_openai(openai_mock),
        threshold=0.0,
        privacy=PrivacyRule(action=action),  # type: ignore[arg-type]
    )
    sent = 0
    for value in PLANTED.values():
        for value_in in gate_inputs(value):
            outs = [gate.invoke(value_in), list(gate.stream(value_in))[-1]]
            outs += [await gate.ainvoke(value_in)]
            for out in outs:
                assert out.response_metadata["routing"]["privacy"]["action"] == action
            sent += 3
        out = dict_gate.invoke({"q": f"my details: {value}"})
        expected = "local" if action == "local" else "cloud"
        assert out.response_metadata["routing"]["tier"] == expected
        sent += 1
    assert len(openai_mock.chat_requests) == (0 if action == "local" else sent)
    assert leaks(raw(openai_mock), PLANTED.values()) == {}


def test_the_gate_runs_the_policys_rules(openai_mock: MockOpenAI) -> None:
    policy = RoutingPolicy(threshold=0.0, rules=[ForceLocalRule(pattern="ACME", name="nda")])
    gate = ConfidenceGate(FakeLocalChatModel(), make_chat_openai(openai_mock), policy=policy)
    assert gate.invoke("ACME plans").response_metadata["routing"]["reason"] == "rule_force_local"
    assert gate.invoke("a@b.org").response_metadata["routing"]["reason"] == "privacy_forced_local"
    assert openai_mock.requests == []
    assert gate.invoke("plans").response_metadata["routing"]["tier"] == "cloud"


# ---------------------------------------------------------------------------- the setting


def test_privacy_is_on_by_default_and_folds_into_the_policy(openai_mock: MockOpenAI) -> None:
    assert RoutingPolicy().privacy == PrivacyRule()
    assert RoutingPolicy().privacy.detector_names == DEFAULT_DETECTOR_NAMES  # type: ignore[union-attr]
    llm = hybrid(openai_mock)
    assert llm.routing_policy.privacy == PrivacyRule()
    assert hybrid(openai_mock, privacy=False).routing_policy.privacy is None
    assert llm.model_copy(update={"privacy": ["email"]}).routing_policy.privacy == PrivacyRule(
        detectors=["email"]
    )
    text = f"ip {PLANTED['ipv4']}"
    assert routing_of(llm.invoke(text))["tier"] == "local"
    assert openai_mock.requests == []
    # A copy with privacy off routes accordingly; one without the IP detector too.
    assert routing_of(llm.model_copy(update={"privacy": False}).invoke(text))["tier"] == "cloud"
    only_email = llm.model_copy(update={"privacy": ["email"]})
    assert routing_of(only_email.invoke(text))["tier"] == "cloud"
    assert len(openai_mock.chat_requests) == 2


def test_users_add_and_remove_detectors(openai_mock: MockOpenAI) -> None:
    rule = PrivacyRule().with_detectors(RegexDetector("ticket", r"TCK-\d+"), remove=["ip_address"])
    llm = hybrid(openai_mock, privacy=rule)
    assert routing_of(llm.invoke("about TCK-991"))["privacy"]["detectors"] == ["ticket"]
    assert routing_of(llm.invoke("ip 10.0.0.1"))["tier"] == "cloud"
    with pytest.raises(PolicyError, match="cannot remove"):
        rule.with_detectors(remove=["passport"])


def test_policy_json_keeps_the_privacy_rule(tmp_path: Path) -> None:
    policy = RoutingPolicy(
        privacy=PrivacyRule(
            detectors=["email", RegexDetector("ticket", "T-[0-9]+")], action="redact"
        )
    )
    path = tmp_path / "policy.json"
    policy.save(path)
    saved = json.loads(path.read_text())
    assert saved["privacy"] == {
        "type": "privacy",
        "name": "privacy",
        "action": "redact",
        "detectors": [
            "email",
            {"type": "regex", "name": "ticket", "pattern": "T-[0-9]+", "placeholder": "[TICKET]"},
        ],
    }
    assert RoutingPolicy.load(path) == policy
    off = RoutingPolicy(privacy=None)
    assert RoutingPolicy.from_dict(off.to_dict()).privacy is None


def test_an_old_policy_file_gets_the_default_privacy_rule() -> None:
    old = {"format_version": 2, "threshold": -0.8, "rules": []}
    assert RoutingPolicy.from_dict(old).privacy == PrivacyRule()
    assert RoutingPolicy.from_dict({**old, "privacy": None}).privacy is None


def test_a_policy_holding_a_function_cannot_be_saved(tmp_path: Path) -> None:
    def badge(text: str) -> list[tuple[int, int]]:
        return []

    policy = RoutingPolicy(privacy=PrivacyRule(detectors=["email", badge]))
    with pytest.raises(PolicyError, match=r"\['badge'\] that are functions"):
        policy.save(tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
    with pytest.raises(PolicyError, match="is a function"):
        RoutingPolicy.from_dict(policy.to_dict())


def test_bad_privacy_settings_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="unknown detector 'passport'"):
        RoutingPolicy.from_dict(
            {"format_version": 2, "threshold": -1, "privacy": {"detectors": ["passport"]}}
        )
    with pytest.raises(PolicyError, match="privacy must be True, False"):
        RoutingPolicy().override(privacy="email")  # type: ignore[arg-type]
