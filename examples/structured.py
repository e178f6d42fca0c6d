"""Structured extraction routed call by call: ChatHybrid.with_structured_output, local first.

Ten short texts, each describing one person, are extracted into a pydantic ``Person``
(name, age, city) with ``method="json_schema"``. The local model answers first under
constrained decoding (its JSON always fits the schema); the gate keeps the answer when
the model was confident and sends the call to the cloud when it was not. Each answer is
checked against the right one, so you see both how many calls stayed local and how many
of those were right. The cloud is scripted on 127.0.0.1 (``scripted_cloud.py``: it knows
the right answers), so the example runs offline; with a key, pass
``ChatOpenAI(model="gpt-4o")`` as ``cloud``.

Run: ``python examples/structured.py``. It prints, per text, the tier, the reason, the
confidence against the threshold and the extracted person.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from langchain_hybrid import ChatHybrid

sys.path.insert(0, str(Path(__file__).parent))
from scripted_cloud import ScriptedCloud  # noqa: E402


class Person(BaseModel):
    """A person described in a text."""

    name: str = Field(description="the person's full name")
    age: int = Field(description="the person's age in years")
    city: str = Field(description="the city the person lives in")


# Each text with the answer a careful reader would extract.
TEXTS: list[tuple[str, dict[str, Any]]] = [
    (
        "Alice Smith is 34 years old and lives in Paris.",
        {"name": "Alice Smith", "age": 34, "city": "Paris"},
    ),
    (
        "Bob Jones, 51, has lived in Leeds all his life.",
        {"name": "Bob Jones", "age": 51, "city": "Leeds"},
    ),
    (
        "Priya Patel (age 42) runs a bakery in Mumbai, where she lives.",
        {"name": "Priya Patel", "age": 42, "city": "Mumbai"},
    ),
    (
        "Lukas Becker is a 19-year-old student living in Berlin.",
        {"name": "Lukas Becker", "age": 19, "city": "Berlin"},
    ),
    (
        "The tenant of the flat in Lyon is Marie Dubois, aged 63.",
        {"name": "Marie Dubois", "age": 63, "city": "Lyon"},
    ),
    (
        "Kofi Mensah turned 38 this year; home for him is Accra.",
        {"name": "Kofi Mensah", "age": 38, "city": "Accra"},
    ),
    (
        "Sarah O'Connor, a 45-year-old nurse, lives and works in Dublin.",
        {"name": "Sarah O'Connor", "age": 45, "city": "Dublin"},
    ),
    (
        "Hiroshi Tanaka, who lives in Osaka, is sixty years old.",
        {"name": "Hiroshi Tanaka", "age": 60, "city": "Osaka"},
    ),
    (
        "Meet Chen Wei: twenty-seven years old and based in Shanghai.",
        {"name": "Chen Wei", "age": 27, "city": "Shanghai"},
    ),
    (
        "Ana Lima is 23 and lives in São Paulo.",
        {"name": "Ana Lima", "age": 23, "city": "São Paulo"},
    ),
]

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Extract the person described in the text."), ("human", "{text}")]
)


def right(person: Person | None, expected: dict[str, Any]) -> bool:
    """Whether the extracted person is the expected one (names and cities ignore case)."""
    if person is None:
        return False
    return (
        person.name.strip().casefold() == expected["name"].casefold()
        and person.age == expected["age"]
        and person.city.strip().casefold() == expected["city"].casefold()
    )


def scripted_answer(body: dict[str, Any]) -> str:
    """The scripted cloud: the right extraction of the text in the request."""
    asked = str(body["messages"][-1]["content"])
    for text, expected in TEXTS:
        if text in asked:
            return json.dumps(expected)
    return json.dumps({"name": "", "age": 0, "city": ""})


def run(local: BaseChatModel, cloud: BaseChatModel) -> list[dict[str, Any]]:
    """Extract every text through ChatHybrid; print and return each call's decision."""
    llm = ChatHybrid(local=local, cloud=cloud, threshold=-0.6)
    chain = PROMPT | llm.with_structured_output(Person, method="json_schema", include_raw=True)
    record = []
    for text, expected in TEXTS:
        out = chain.invoke({"text": text})
        routing = out["raw"].response_metadata["routing"]
        person = out["parsed"]
        ok = right(person, expected)
        record.append(
            {
                "tier": routing["tier"],
                "reason": routing["reason"],
                "parsed": person is not None,
                "right": ok,
            }
        )
        confidence = routing["confidence"]
        shown = "n/a" if confidence is None else f"{confidence:.2f}"
        found = person.model_dump() if person is not None else out["parsing_error"]
        print(
            f"{text}\n  -> {routing['tier']:5} ({routing['reason']}, confidence {shown} "
            f"vs {routing['threshold']}) {found} {'right' if ok else 'WRONG'}"
        )
    local_calls = [r for r in record if r["tier"] == "local"]
    print(
        f"{len(local_calls)} of {len(record)} calls answered locally, "
        f"{sum(r['right'] for r in local_calls)} of those right; "
        f"{sum(r['right'] for r in record)} of {len(record)} right in all"
    )
    return record


def main(local: BaseChatModel | None = None) -> list[dict[str, Any]]:
    """Run the extraction with ``local`` (default: the embedded model) and the scripted cloud."""
    if local is None:
        from langchain_hybrid import ChatTransformers

        local = ChatTransformers(max_tokens=64)
    with ScriptedCloud(scripted_answer) as scripted:
        cloud = ChatOpenAI(model="gpt-4o", base_url=scripted.base_url, api_key="none")
        return run(local, cloud)


if __name__ == "__main__":
    main()
