"""The privacy detectors: what each finds and what it must not, redaction, custom detectors."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue

from langchain_hybrid.errors import MissingDependencyError, PolicyError
from langchain_hybrid.privacy import (
    BUILTIN_DETECTORS,
    CallableDetector,
    PresidioDetector,
    RegexDetector,
    detector_from,
    make_redactor,
    redact,
    redact_inputs,
    redact_message,
    redact_value,
    scan,
    scan_messages,
)

# (detector, text that holds a value, the value) and (detector, text that must not fire)
TRUE_POSITIVES = [
    ("email", "write to jane.doe@example.com today", "jane.doe@example.com"),
    ("email", "cc: a.b+tag@mail.co.uk.", "a.b+tag@mail.co.uk"),
    ("phone", "call +1 (415) 555-0132 now", "+1 (415) 555-0132"),
    ("phone", "office +44 20 7946 0958", "+44 20 7946 0958"),
    ("phone", "cell (415) 555-0132", "(415) 555-0132"),
    ("phone", "cell 415.555.0132", "415.555.0132"),
    ("credit_card", "card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("credit_card", "amex 3782-822463-10005", "3782-822463-10005"),
    ("credit_card", "pan 5555555555554444", "5555555555554444"),
    ("us_ssn", "ssn 123-45-6789", "123-45-6789"),
    ("us_ssn", "ssn 123 45 6789", "123 45 6789"),
    ("us_ssn", "my SSN: 123456789", "123456789"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00"),
    ("iban", "pay GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("ip_address", "server 203.0.113.77 is down", "203.0.113.77"),
    ("ip_address", "from 2001:db8::8a2e:370:7334.", "2001:db8::8a2e:370:7334"),
    ("ip_address", "link fe80::1%eth0 up", "fe80::1%eth0"),
    ("ip_address", "mapped ::ffff:192.0.2.1", "::ffff:192.0.2.1"),
]

FALSE_POSITIVES = [
    ("email", "the @ sign and user@localhost"),
    ("phone", "order 2024-01-15 shipped; room 1234"),
    ("phone", "pi is 3.14159265"),
    ("credit_card", "card 4111 1111 1111 1112"),  # 16 digits, fails Luhn
    ("credit_card", "1234567890123456"),  # fails Luhn
    ("us_ssn", "ssn 000-12-3456 and 666-12-3456 and 912-34-5678"),  # never issued
    ("us_ssn", "order 123456789"),  # 9 digits without an SSN keyword
    ("iban", "DE89 3704 0044 0532 0130 01"),  # checksum fails
    ("ip_address", "version 1.2.3.4 of the tool"),  # a version number
    ("ip_address", "release v1.2.3.4 and build 10.0.0.1"),  # version words
    ("ip_address", "192.168.1.300 and 1.2.3.4.5"),  # not an address
    ("ip_address", "at 12:30:45 see std::vector"),  # times and C++
]


@pytest.mark.parametrize(("name", "text", "value"), TRUE_POSITIVES)
def test_each_detector_finds_its_values(name: str, text: str, value: str) -> None:
    found = scan(text)
    assert found.detectors == (name,)
    (detection,) = found.detections
    assert text[detection.start : detection.end] == value
    assert redact(text) == text.replace(value, BUILTIN_DETECTORS[name].placeholder)


@pytest.mark.parametrize(("name", "text"), FALSE_POSITIVES)
def test_each_detector_ignores_lookalikes(name: str, text: str) -> None:
    assert name not in scan(text).detectors
    assert BUILTIN_DETECTORS[name].detect(text) == []


def test_a_detection_holds_spans_and_names_never_the_value() -> None:
    found = scan("mail jane.doe@example.com, card 4111 1111 1111 1111")
    assert found.detectors == ("credit_card", "email")
    assert "jane" not in repr(found) and "4111" not in repr(found)


def test_overlapping_detections_keep_the_longest() -> None:
    text = "card 4111-1111-1111-1111"
    assert [d.detector for d in scan(text).detections] == ["credit_card"]


def test_text_blocks_are_scanned_and_redacted_on_their_joined_text() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "mail jane.doe@exa"},
            {"type": "image_url", "image_url": {"url": "https://example.org/x.png"}},
            {"type": "text", "text": "mple.com please"},
        ]
    )
    assert scan_messages([message]).detectors == ("email",)
    redacted = redact_message(message)
    assert redacted.content[0] == {"type": "text", "text": "mail [EMAIL]"}
    assert redacted.content[1] == message.content[1]
    assert redacted.content[2] == {"type": "text", "text": " please"}
    assert message.content[0]["text"] == "mail jane.doe@exa"  # type: ignore[index]  # unchanged


def test_tool_call_arguments_and_tool_results_are_scanned_and_redacted() -> None:
    call = AIMessage(
        "",
        tool_calls=[{"name": "f", "args": {"who": {"ip": "10.1.2.3"}, "n": 4155550132}, "id": "1"}],
        invalid_tool_calls=[
            {"name": "g", "args": '{"ssn": "123-45-6789"', "id": "2", "error": None}
        ],
    )
    result = ToolMessage("owner jane@example.com", tool_call_id="1")
    assert scan_messages([call, result]).detectors == ("email", "ip_address", "phone", "us_ssn")
    redacted = redact_message(call)
    assert redacted.tool_calls[0]["args"] == {"who": {"ip": "[IP_ADDRESS]"}, "n": "[PHONE]"}
    assert redacted.invalid_tool_calls[0]["args"] == '{"ssn": "[US_SSN]"'
    assert redact_message(result).content == "owner [EMAIL]"


def test_redact_value_covers_runnable_inputs() -> None:
    value = {
        "q": "who is jane@example.com",
        "history": [HumanMessage("ip 10.0.0.1")],
        "prompt": StringPromptValue(text="ssn 123-45-6789"),
        "chat": ChatPromptValue(messages=[HumanMessage("card 4111 1111 1111 1111")]),
        "k": 3,
    }
    out = redact_value(value)
    assert out["q"] == "who is [EMAIL]"
    assert out["history"][0].content == "ip [IP_ADDRESS]"
    assert out["prompt"].text == "ssn [US_SSN]"
    assert out["chat"].messages[0].content == "card [CREDIT_CARD]"
    assert out["k"] == 3


def test_regex_detector_and_its_errors() -> None:
    ticket = RegexDetector("ticket", r"T-\d{4}")
    assert ticket.placeholder == "[TICKET]"
    assert redact("see T-1234", [ticket]) == "see [TICKET]"
    assert detector_from(ticket.to_config()) == ticket
    with pytest.raises(PolicyError, match="invalid regular expression"):
        RegexDetector("bad", "(unclosed")


def test_callable_detector_and_what_cannot_be_loaded() -> None:
    def badge(text: str) -> list[tuple[int, int]]:
        i = text.find("BADGE")
        return [(i, i + 9)] if i >= 0 else []

    detector = detector_from(badge)
    assert isinstance(detector, CallableDetector) and detector.name == "badge"
    assert redact("my BADGE1234 here", [detector]) == "my [BADGE] here"
    assert not detector.serialisable
    with pytest.raises(PolicyError, match="is a function"):
        detector_from(detector.to_config())


def test_unknown_detector_names_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="built-in detectors: email, phone"):
        detector_from("passport")


def test_presidio_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"langchain-hybrid\[presidio\]"):
        detector_from("presidio")


def test_presidio_results_become_detections(monkeypatch: pytest.MonkeyPatch) -> None:
    class Result:
        def __init__(self, entity_type: str, start: int, end: int, score: float) -> None:
            self.entity_type, self.start, self.end, self.score = entity_type, start, end, score

    class AnalyzerEngine:
        def __init__(self, supported_languages: list[str]) -> None:
            self.languages = supported_languages

        def analyze(self, text: str, language: str, entities: Any) -> list[Result]:
            i = text.find("Jane Doe")
            return [Result("PERSON", i, i + 8, 0.85), Result("LOCATION", 0, 2, 0.1)]

    fake = types.ModuleType("presidio_analyzer")
    fake.AnalyzerEngine = AnalyzerEngine  # type: ignore[attr-defined]
    fake.__spec__ = importlib_spec("presidio_analyzer")
    monkeypatch.setitem(sys.modules, "presidio_analyzer", fake)
    detector = PresidioDetector(entities=("PERSON",))
    assert redact("I am Jane Doe.", [detector]) == "I am [PERSON]."
    assert detector_from(detector.to_config()) == detector


def importlib_spec(name: str) -> Any:
    import importlib.machinery

    return importlib.machinery.ModuleSpec(name, None)


def test_langsmith_redactor_walks_run_data() -> None:
    run_inputs = {
        "messages": [
            [
                {
                    "lc": 1,
                    "type": "constructor",
                    "id": ["langchain", "schema", "messages", "HumanMessage"],
                    "kwargs": {
                        "content": [
                            {"type": "text", "text": "card 4111 1111 "},
                            {"type": "text", "text": "1111 1111 ok"},
                        ],
                        "type": "human",
                    },
                }
            ]
        ],
        "note": "from 203.0.113.77",
    }
    out = redact_inputs(run_inputs)
    assert out["note"] == "from [IP_ADDRESS]"
    blocks = out["messages"][0][0]["kwargs"]["content"]
    assert blocks == [
        {"type": "text", "text": "card [CREDIT_CARD]"},
        {"type": "text", "text": " ok"},
    ]
    assert out["messages"][0][0]["id"][-1] == "HumanMessage"
    only_email = make_redactor(["email"])
    assert only_email({"x": "a@b.org 10.0.0.1"}) == {"x": "[EMAIL] 10.0.0.1"}
