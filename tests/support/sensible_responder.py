"""A responder for the fake OpenAI API that answers any request sensibly.

Used where the requests are not known in advance (the test that runs every code block of
the docs, examples): plain text with log-probs; a tool call when the request asks for one
(``tool_choice`` "required"/"any"/a named tool, or tools offered on a turn whose last
message is the user's); a JSON value that validates against the schema when a
``json_schema`` ``response_format`` is given, a small JSON object for ``json_object``.

    fake = FakeOpenAIServer(responder=sensible_reply)
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.openai_fake import ScriptedReply, last_user_text

__all__ = ["example_for_schema", "sensible_reply"]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return _resolve(dict(node), root)


def example_for_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Return a small value that validates against a JSON schema (the subset models use)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if _resolve(o, root).get("type") != "null"]
        if options:
            return example_for_schema(options[0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties") or {}
        return {name: example_for_schema(sub, root) for name, sub in props.items()}
    if kind == "array":
        item = example_for_schema(schema.get("items") or {"type": "string"}, root)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "string":
        return "example"
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return None


def _tool_to_call(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t["function"]["name"] == name] or tools
    elif choice not in ("required", "any"):
        messages = body.get("messages") or []
        if not messages or messages[-1].get("role") != "user":
            return None  # the tool results are in: answer in words
    function = tools[0]["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {"name": function["name"], "arguments": example_for_schema(parameters)}


def sensible_reply(body: dict[str, Any]) -> ScriptedReply:
    """Answer one chat-completions request body sensibly (see the module docstring)."""
    call = _tool_to_call(body)
    if call is not None:
        return ScriptedReply(content="", tool_calls=[call])
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return ScriptedReply(content=json.dumps(example_for_schema(schema)))
    if response_format.get("type") == "json_object":
        return ScriptedReply(content=json.dumps({"answer": "example"}))
    question = last_user_text(body).strip()
    topic = question[:60] if question else "your question"
    return ScriptedReply(content=f"A cloud answer about: {topic}", logprobs=-0.05)
