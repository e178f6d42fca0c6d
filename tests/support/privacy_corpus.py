"""Prompts with planted sensitive values, and a byte-level leak check of what a fake cloud got.

Every planted value is a value the built-in detectors find (one per detector kind, two
for IP addresses). Each *shape* places a value somewhere the cloud would receive it: the
user's text, split over two text blocks, an earlier tool call's arguments, a tool result,
the system prompt. :func:`leaked_bytes` counts the bytes of any planted value (as written,
without spaces, digits only, JSON-escaped) found in raw request bodies.

Run ``python -m tests.support.privacy_corpus`` for the corpus figures over every entry
point (no sockets, no weights: the cloud is ``MockOpenAI``, the local tier
``FakeLocalChatModel``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

__all__ = [
    "PLANTED",
    "SHAPES",
    "Prompt",
    "corpus",
    "leak_forms",
    "leaked_bytes",
    "leaks",
]

#: One planted value per detector kind (two for IP addresses), by kind.
PLANTED: dict[str, str] = {
    "email": "jane.doe@example.com",
    "phone": "+1 (415) 555-0132",
    "credit_card": "4111 1111 1111 1111",
    "us_ssn": "123-45-6789",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ipv4": "203.0.113.77",
    "ipv6": "2001:db8::8a2e:370:7334",
}

#: What the redacted request carries instead of each planted value.
PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "us_ssn": "[US_SSN]",
    "iban": "[IBAN]",
    "ipv4": "[IP_ADDRESS]",
    "ipv6": "[IP_ADDRESS]",
}


def _plain(value: str) -> list[BaseMessage]:
    return [HumanMessage(f"Here are my details: {value}. What should I do next?")]


def _split(value: str) -> list[BaseMessage]:
    half = len(value) // 2
    return [
        HumanMessage(
            content=[
                {"type": "text", "text": f"Here are my details: {value[:half]}"},
                {"type": "text", "text": f"{value[half:]}. What should I do next?"},
            ]
        )
    ]


def _tool_args(value: str) -> list[BaseMessage]:
    return [
        HumanMessage("Look up my account."),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"query": value}, "id": "call_1"}]),
        ToolMessage("No account found.", tool_call_id="call_1"),
        HumanMessage("What now?"),
    ]


def _tool_result(value: str) -> list[BaseMessage]:
    return [
        HumanMessage("Look up my account."),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"query": "me"}, "id": "call_1"}]),
        ToolMessage(f"Account holder record: {value}", tool_call_id="call_1"),
        HumanMessage("Summarise the record."),
    ]


def _system(value: str) -> list[BaseMessage]:
    return [SystemMessage(f"The customer's record: {value}."), HumanMessage("Hello!")]


#: Where a value is planted.
SHAPES: dict[str, Callable[[str], list[BaseMessage]]] = {
    "plain": _plain,
    "split_blocks": _split,
    "tool_call_args": _tool_args,
    "tool_result": _tool_result,
    "system_prompt": _system,
}


@dataclass(frozen=True)
class Prompt:
    """One prompt of the corpus: a planted value of ``kind`` in ``shape``."""

    kind: str
    shape: str
    value: str
    messages: list[BaseMessage]

    @property
    def id(self) -> str:
        """A test id."""
        return f"{self.kind}-{self.shape}"


def corpus(shapes: Iterable[str] = tuple(SHAPES)) -> list[Prompt]:
    """Every planted value in every shape."""
    return [
        Prompt(kind, shape, value, SHAPES[shape](value))
        for shape in shapes
        for kind, value in PLANTED.items()
    ]


def leak_forms(value: str) -> set[bytes]:
    """The forms of ``value`` whose bytes must not reach the cloud."""
    forms = {value, value.replace(" ", ""), json.dumps(value)[1:-1]}
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7:
        forms.add(digits)
    half = len(value) // 2
    forms.update(p for p in (value[:half], value[half:]) if len(p.strip()) >= 6)
    return {f.encode() for f in forms}


def leaks(raw: bytes, values: Iterable[str]) -> dict[str, int]:
    """For each value with a form in ``raw``: the bytes of its forms found there."""
    found: dict[str, int] = {}
    for value in values:
        total = sum(len(form) * raw.count(form) for form in leak_forms(value))
        if total:
            found[value] = total
    return found


def leaked_bytes(raw: bytes, values: Iterable[str] = PLANTED.values()) -> int:
    """Bytes of planted values (any form) in ``raw``."""
    return sum(leaks(raw, values).values())


# ---------------------------------------------------------------------------- figures


def _figures() -> dict[str, Any]:  # pragma: no cover - a reporting script
    from langchain_core.prompts import ChatPromptTemplate

    from langchain_hybrid import ChatHybrid, ConfidenceGate, PrivacyRule
    from tests.support.fake_chat import FakeLocalChatModel
    from tests.support.fixtures import make_chat_openai
    from tests.support.openai_mock import MockOpenAI

    def hybrid(mock: MockOpenAI, privacy: Any = None) -> ChatHybrid:
        return ChatHybrid(
            local=FakeLocalChatModel(), cloud=make_chat_openai(mock), threshold=0.0, privacy=privacy
        )

    def lookup(query: str) -> str:
        """Look an account up."""
        return "none"

    from pydantic import BaseModel

    class Reply(BaseModel):
        """A structured reply."""

        text: str

    calls = 0
    entry_points: dict[str, Callable[[ChatHybrid, list[BaseMessage]], Any]] = {
        "invoke": lambda llm, m: llm.invoke(m),
        "stream": lambda llm, m: list(llm.stream(m)),
        "ainvoke": lambda llm, m: asyncio.run(llm.ainvoke(m)),
        "astream": lambda llm, m: asyncio.run(_collect(llm.astream(m))),
        "bind_tools": lambda llm, m: llm.bind_tools([lookup]).invoke(m),
        "structured_output": lambda llm, m: _swallow(
            lambda: llm.with_structured_output(Reply).invoke(m)
        ),
    }
    report: dict[str, Any] = {}
    prompts = corpus()
    for action in ("local", "redact"):
        mock = MockOpenAI()
        privacy = PrivacyRule(action=action)
        for prompt in prompts:
            for call in entry_points.values():
                call(hybrid(mock, privacy), prompt.messages)
                calls += 1
            gate = ConfidenceGate(
                FakeLocalChatModel(), make_chat_openai(mock), threshold=0.0, privacy=privacy
            )
            gate.invoke(prompt.messages)
            list(gate.stream(prompt.messages))
            calls += 2
        dict_gate = ConfidenceGate(
            ChatPromptTemplate.from_messages([("human", "{q}")]) | FakeLocalChatModel(),
            ChatPromptTemplate.from_messages([("human", "{q}")]) | make_chat_openai(mock),
            threshold=0.0,
            privacy=privacy,
        )
        for value in PLANTED.values():
            dict_gate.invoke({"q": f"my details: {value}"})
            calls += 1
        raw = b"".join(r.raw for r in mock.requests)
        report[action] = {
            "cloud_requests": len(mock.chat_requests),
            "leaked_bytes": leaked_bytes(raw),
        }
    off = MockOpenAI()
    for prompt in corpus(["plain"]):
        hybrid(off, False).invoke(prompt.messages)
        calls += 1
    report["privacy_off"] = {
        "cloud_requests": len(off.chat_requests),
        "leaked_bytes": leaked_bytes(b"".join(r.raw for r in off.requests)),
    }
    return {
        "prompts": len(prompts),
        "planted_values": len(PLANTED),
        "shapes": len(SHAPES),
        "entry_points": [*entry_points, "gate.invoke", "gate.stream", "gate(dict input)"],
        "calls": calls,
        **report,
    }


async def _collect(chunks: Any) -> list[Any]:  # pragma: no cover
    return [c async for c in chunks]


def _swallow(fn: Callable[[], Any]) -> Any:  # pragma: no cover
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the typed error is expected when kept local
        return exc


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_figures(), indent=2))
