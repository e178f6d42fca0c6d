r"""Tool calling on a local chat model: the request's output format, prompts and reply parsing.

A local model sees tools in one of two ways:

* **native**: the model's chat template renders tools itself (its source mentions
  ``tools``, as Qwen2.5's, Hermes' or SmolLM3's do); tools go to
  ``tokenizer.apply_chat_template(..., tools=[...])`` in OpenAI's function shape and
  the history keeps its ``tool_calls`` and ``tool`` turns;
* **generic**: the template knows nothing of tools (SmolLM2's), so a documented
  system-prompt block (:data:`GENERIC_TOOLS_PROMPT`) lists the tools' JSON schemas and
  the exact reply format, and the history's tool calls and tool results are written
  into the turns' text in that same format.

Either way the reply format is Hermes' (Qwen's): one block per call,
``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``. :func:`parse_reply`
reads it back, and plain JSON calls too (``{"name": ..., "arguments": ...}`` or a list
of them); a call that cannot be read becomes an ``invalid_tool_calls`` entry.

Example:
    >>> from langchain_hybrid.chat_models._tools import OutputFormat, parse_reply
    >>> fmt = OutputFormat.from_call_options(
    ...     {"tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}]}
    ... )
    >>> fmt.tool_choice.mode
    'auto'
    >>> text = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
    >>> reply = parse_reply(text, fmt)
    >>> reply.tool_calls[0]["name"], reply.tool_calls[0]["args"]
    ('add', {'a': 1})
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.tool import (
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_hybrid.errors import InvalidCallOptionError

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "GENERIC_TOOLS_PROMPT",
    "OutputFormat",
    "ParsedReply",
    "ReplyStream",
    "ToolChoice",
    "format_tool_call",
    "format_tools",
    "parse_reply",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"

GENERIC_TOOLS_PROMPT = """\
You can call these tools. Each is described by a JSON schema:
<tools>
{tools}
</tools>
To call a tool, reply with one block per call, exactly in this format:
<tool_call>
{{"name": "<tool name>", "arguments": {{<the arguments as a JSON object>}}}}
</tool_call>
The results come back to you inside <tool_response></tool_response> blocks."""
"""The system-prompt block that offers tools to a model whose chat template cannot.

``{tools}`` is replaced by one OpenAI tool definition (JSON) per line. A line saying
whether a tool call is optional, required, or which tool to call follows it.
"""

_CHOICE_LINES = {
    "auto": "If no tool is needed, answer in plain text instead.",
    "required": "You must call at least one of the tools now.",
}


@dataclass(frozen=True)
class ToolChoice:
    """A normalised ``tool_choice``: ``mode`` "none" | "auto" | "required", and a tool name.

    Example:
        >>> ToolChoice.parse("any", ["add"])
        ToolChoice(mode='required', name=None)
        >>> ToolChoice.parse({"type": "function", "function": {"name": "add"}}, ["add"])
        ToolChoice(mode='required', name='add')
    """

    mode: Literal["none", "auto", "required"] = "auto"
    name: str | None = None

    @classmethod
    def parse(cls, choice: Any, names: Sequence[str]) -> ToolChoice:
        """Read OpenAI's and LangChain's spellings of ``tool_choice``.

        ``None`` and "auto" -> auto; "none" -> none; "required", "any" and ``True``
        -> required; a tool's name, ``{"type": "function", "function": {"name": ...}}``
        -> that tool. Anything else is an :class:`InvalidCallOptionError`.
        """
        if choice is None or choice == "auto":
            return cls("auto")
        if choice == "none" or choice is False:
            return cls("none")
        if choice in ("required", "any") or choice is True:
            return cls("required")
        name: Any = choice
        if isinstance(choice, Mapping):
            function = choice.get("function")
            name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        if isinstance(name, str) and name in names:
            return cls("required", name)
        raise InvalidCallOptionError(
            f"tool_choice {choice!r} names no bound tool; use 'auto', 'none', 'required' "
            f"(or 'any'), or one of the tool names {list(names)}."
        )


@dataclass(frozen=True)
class OutputFormat:
    """What a call asks of the reply beyond free text: tools to call, or a JSON format.

    Built from the call options (``tools``, ``tool_choice``, ``parallel_tool_calls``,
    ``response_format``) that ``bind_tools`` and ``with_structured_output`` bind.
    ``json_schema`` is the schema a ``response_format`` answer must follow (``{}`` for
    ``{"type": "json_object"}``: any JSON object).
    """

    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool | None = None
    json_schema: dict[str, Any] | None = None
    json_schema_name: str | None = None

    @classmethod
    def from_call_options(cls, options: Mapping[str, Any]) -> OutputFormat:
        """Build the format from call options, checking their shapes."""
        tools = tuple(format_tools(options.get("tools") or ()))
        names = [t["function"]["name"] for t in tools]
        choice = ToolChoice.parse(options.get("tool_choice"), names)
        if not tools:
            choice = ToolChoice("none")
        parallel = options.get("parallel_tool_calls")
        schema, name = _response_schema(options.get("response_format"))
        if schema is not None and choice.mode == "required":
            raise InvalidCallOptionError(
                "response_format and a required tool call were both asked for; a reply is "
                "either a tool call or a JSON answer. Drop one of them."
            )
        return cls(
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=None if parallel is None else bool(parallel),
            json_schema=schema,
            json_schema_name=name,
        )

    @property
    def offers_tools(self) -> bool:
        """Whether the model is offered tools (some are bound and ``tool_choice`` is not none)."""
        return bool(self.tools) and self.tool_choice.mode != "none"

    @property
    def tool_names(self) -> list[str]:
        """The names of the bound tools."""
        return [t["function"]["name"] for t in self.tools]

    @property
    def offered(self) -> list[dict[str, Any]]:
        """The tools a required named choice leaves (that one), else all bound tools."""
        if self.tool_choice.name is None:
            return list(self.tools)
        return [t for t in self.tools if t["function"]["name"] == self.tool_choice.name]

    def instructions(self, native_tools: bool) -> str:
        """Return the system-prompt text this format adds ("" when none)."""
        parts: list[str] = []
        if self.offers_tools and not native_tools:
            listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in self.tools)
            parts.append(GENERIC_TOOLS_PROMPT.format(tools=listing))
        if self.offers_tools:
            choice = self.tool_choice
            if choice.name is not None:
                parts.append(f'You must call the tool "{choice.name}" now.')
            elif not native_tools or choice.mode == "required":
                parts.append(_CHOICE_LINES[choice.mode])
        if self.json_schema is not None:
            if self.json_schema:
                schema = json.dumps(self.json_schema, ensure_ascii=False)
                parts.append(
                    f"Reply with only a JSON object that follows this JSON schema:\n{schema}"
                )
            else:
                parts.append("Reply with only a JSON object.")
        return "\n".join(parts)


def format_tools(tools: Sequence[Any], strict: bool | None = None) -> list[dict[str, Any]]:
    """Convert tools (functions, pydantic models, ``BaseTool``, dicts) to OpenAI tool dicts.

    Example:
        >>> def add(a: int, b: int) -> int:
        ...     '''Add two numbers.'''
        ...     return a + b
        >>> format_tools([add])[0]["function"]["parameters"]["required"]
        ['a', 'b']
    """
    out: list[dict[str, Any]] = []
    for tool in tools:
        spec = convert_to_openai_tool(tool, strict=strict)
        if spec.get("type") != "function" or "function" not in spec:
            raise InvalidCallOptionError(
                f"ChatTransformers calls function tools only; got {spec.get('type')!r}. "
                "Pass Python functions, pydantic models, LangChain tools or OpenAI "
                "function definitions."
            )
        spec["function"].setdefault("parameters", {"type": "object", "properties": {}})
        out.append(spec)
    return out


def _response_schema(response_format: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Return (schema, name) of a ``response_format`` in OpenAI's shapes (None for text)."""
    if response_format is None:
        return None, None
    if isinstance(response_format, type):
        spec = convert_to_openai_tool(response_format)["function"]
        return dict(spec.get("parameters") or {}), spec["name"]
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "text":
            return None, None
        if kind == "json_object":
            return {}, None
        inner = response_format.get("json_schema")
        if kind == "json_schema" and isinstance(inner, Mapping):
            schema = inner.get("schema")
            if isinstance(schema, Mapping):
                return dict(schema), inner.get("name")
    raise InvalidCallOptionError(
        f"response_format {response_format!r} is not one of OpenAI's shapes: "
        '{"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": ..., '
        '"schema": {...}, "strict": true}}, {"type": "text"}, or a pydantic class.'
    )


# ---------------------------------------------------------------------------- history


def format_tool_call(name: str, args: Any) -> str:
    """Write one call in the reply format.

    Example:
        >>> print(format_tool_call("add", {"a": 1}))
        <tool_call>
        {"name": "add", "arguments": {"a": 1}}
        </tool_call>
    """
    body = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def tool_result_text(message: ToolMessage, text: str) -> str:
    """Return the text of a tool result, marked as an error when the tool failed."""
    if message.status == "error" and not text.lower().startswith("error"):
        return f"Error: {text}"
    return text


def render_history(
    chat: list[dict[str, Any]], messages: Sequence[BaseMessage]
) -> list[dict[str, Any]]:
    """Write tool calls and tool results into the turns' text, for a template without tools.

    ``chat`` holds the role/content dicts of ``messages``. An assistant turn's calls are
    appended to its text as ``<tool_call>`` blocks; each tool result becomes a
    ``<tool_response>`` block (JSON with the tool's name, the content and, for a failed
    tool, ``"status": "error"``) in a user turn, consecutive results (parallel calls) in
    one turn, in the order of the calls. Call ids are left out, as Qwen's and Hermes'
    templates leave them out: the calls carry none the model could match, and random
    ids in the prompt would make the same conversation give different answers.
    """
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for entry, message in zip(chat, messages, strict=True):
        if isinstance(message, AIMessage) and (message.tool_calls or message.invalid_tool_calls):
            blocks = [format_tool_call(c["name"], c["args"]) for c in message.tool_calls]
            for call in message.tool_calls:
                if call.get("id"):
                    names[str(call["id"])] = call["name"]
            for bad in message.invalid_tool_calls:
                blocks.append(f"{CALL_OPEN}\n{bad.get('args') or ''}\n{CALL_CLOSE}")
            text = "\n".join(([entry["content"]] if entry["content"] else []) + blocks)
            out.append({"role": "assistant", "content": text})
        elif isinstance(message, ToolMessage):
            payload: dict[str, Any] = {
                "name": message.name or names.get(message.tool_call_id),
                "content": entry["content"],
            }
            if message.status == "error":
                payload["status"] = "error"
            block = f"<tool_response>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append({k: v for k, v in entry.items() if k not in ("tool_calls", "tool_call_id")})
    for entry in out:
        entry.pop("_tool_results", None)
    return out


def add_instructions(chat: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Append ``text`` to the system turn, adding one first when there is none."""
    if not text:
        return chat
    if chat and chat[0]["role"] in ("system", "developer"):
        first = dict(chat[0])
        first["content"] = f"{first['content']}\n\n{text}" if first["content"] else text
        return [first, *chat[1:]]
    return [{"role": "system", "content": text}, *chat]


# ---------------------------------------------------------------------------- parsing


@dataclass
class ParsedReply:
    """A reply split into its text and its tool calls."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)


_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|\Z)", re.S)


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _read_calls(raw: str, names: Sequence[str], out: ParsedReply, *, loose: bool) -> bool:
    """Add the calls in ``raw`` (one JSON call or a list) to ``out``; False if it holds none.

    With ``loose`` (a ``<tool_call>`` block) anything unreadable is an invalid call;
    otherwise (plain JSON text) text that is not shaped like a call is left alone.
    """
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        if not loose:
            return False
        found = re.search(r'"name"\s*:\s*"([^"]*)"', raw)
        out.invalid_tool_calls.append(
            invalid_tool_call(
                name=found.group(1) if found else None,
                args=raw,
                id=_call_id(),
                error=f"The tool call is not valid JSON: {e}",
            )
        )
        return True
    items = value if isinstance(value, list) else [value]
    shaped = [
        i
        for i in items
        if isinstance(i, dict)
        and isinstance(i.get("name"), str)
        and _args_key(i) not in (None, "" if not loose else None)
    ]
    if not items or len(shaped) != len(items):
        if not loose:
            return False
        out.invalid_tool_calls.append(
            invalid_tool_call(
                name=None,
                args=raw,
                id=_call_id(),
                error='A tool call must be a JSON object {"name": ..., "arguments": {...}}.',
            )
        )
        return True
    for item in shaped:
        key = _args_key(item)
        args = item[key] if key else {}
        if isinstance(args, str):
            with contextlib.suppress(json.JSONDecodeError):
                args = json.loads(args) if args.strip() else {}
        text_args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        if item["name"] not in names:
            out.invalid_tool_calls.append(
                invalid_tool_call(
                    name=item["name"],
                    args=text_args,
                    id=_call_id(),
                    error=f"Unknown tool {item['name']!r}; the bound tools are {list(names)}.",
                )
            )
        elif not isinstance(args, dict):
            out.invalid_tool_calls.append(
                invalid_tool_call(
                    name=item["name"],
                    args=text_args,
                    id=_call_id(),
                    error="The tool call's arguments are not a JSON object.",
                )
            )
        else:
            out.tool_calls.append(tool_call(name=item["name"], args=args, id=_call_id()))
    return True


def _args_key(item: Mapping[str, Any]) -> str | None:
    for key in ("arguments", "parameters", "args"):
        if key in item:
            return key
    return None if len(item) > 1 else ""


def parse_reply(text: str, fmt: OutputFormat) -> ParsedReply:
    r"""Split a reply into text and tool calls (none unless the format offers tools).

    ``<tool_call>`` blocks are read wherever they are (an unclosed last block too: a
    reply cut by ``max_tokens``); without blocks, a reply that is only JSON shaped like
    calls (``{"name": ..., "arguments": ...}``, or a list of them) is read as calls.
    Calls that cannot be read, or that name no bound tool, land in
    ``invalid_tool_calls``; the text around the blocks is the content.

    Example:
        >>> fmt = OutputFormat.from_call_options({"tools": [
        ...     {"type": "function", "function": {"name": "f", "parameters": {}}}]})
        >>> r = parse_reply('{"name": "f", "arguments": {}}', fmt)
        >>> r.content, [c["name"] for c in r.tool_calls]
        ('', ['f'])
        >>> parse_reply("<tool_call>\n{oops", fmt).invalid_tool_calls[0]["args"]
        '{oops'
    """
    out = ParsedReply(content=text)
    if not fmt.offers_tools:
        return out
    names = fmt.tool_names
    blocks = list(_BLOCK.finditer(text))
    if blocks:
        for block in blocks:
            body = block.group(1)
            if not block.group(0).endswith(CALL_CLOSE):
                # Cut by max_tokens, maybe inside the closing tag: "...}\n</tool_".
                body = body[: len(body) - _partial_suffix(body, CALL_CLOSE)]
            _read_calls(body.strip(), names, out, loose=True)
        content = _BLOCK.sub("", text).strip()
        out.content = content[: len(content) - _partial_suffix(content, CALL_OPEN)].rstrip()
        return out
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and _read_calls(stripped, names, out, loose=False):
        out.content = ""
    return out


class ReplyStream:
    r"""Turn streamed reply text into content text and ``tool_call_chunks``, as they complete.

    Text outside ``<tool_call>`` blocks streams through at once (except a tail that may
    still become ``<tool_call>``); each block is held until it closes, then parsed and
    emitted as one chunk per call (name, id and the arguments as JSON text). A reply that
    starts with ``{`` or ``[`` may be a plain JSON call, so it is held to the end.

    Example:
        >>> fmt = OutputFormat.from_call_options({"tools": [
        ...     {"type": "function", "function": {"name": "f", "parameters": {}}}]})
        >>> s = ReplyStream(fmt)
        >>> s.feed("Sure. <tool")
        ('Sure. ', [])
        >>> text, calls = s.feed('_call>\n{"name": "f", "arguments": {}}\n</tool_call>')
        >>> text, [(c["name"], c["args"], c["index"]) for c in calls]
        ('', [('f', '{}', 0)])
    """

    def __init__(self, fmt: OutputFormat) -> None:
        self.fmt = fmt
        self.buffer = ""
        self.started = False
        self.hold_all = False
        self.index = 0

    def feed(self, text: str) -> tuple[str, list[ToolCallChunk]]:
        """Add streamed text; return the content that can go out and the calls completed."""
        if not self.fmt.offers_tools:
            return text, []
        self.buffer += text
        if not self.started:
            head = self.buffer.lstrip()
            if not head:
                return "", []
            self.started = True
            self.hold_all = head[0] in "{["
        if self.hold_all:
            return "", []
        content, chunks = "", list[ToolCallChunk]()
        while True:
            start = self.buffer.find(CALL_OPEN)
            if start < 0:
                keep = _partial_suffix(self.buffer, CALL_OPEN)
                cut = len(self.buffer) - keep
                content += self.buffer[:cut]
                self.buffer = self.buffer[cut:]
                return content, chunks
            end = self.buffer.find(CALL_CLOSE, start)
            if end < 0:
                content += self.buffer[:start]
                self.buffer = self.buffer[start:]
                return content, chunks
            content += self.buffer[:start]
            chunks += self._chunks(self.buffer[start : end + len(CALL_CLOSE)])
            self.buffer = self.buffer[end + len(CALL_CLOSE) :]

    def flush(self) -> tuple[str, list[ToolCallChunk]]:
        """End of the reply: return what is left (an unclosed block is parsed as it is)."""
        if not self.fmt.offers_tools:
            return "", []
        rest, self.buffer = self.buffer, ""
        parsed = parse_reply(rest, self.fmt)
        return parsed.content if self.hold_all else _strip_blocks(rest), self._from(parsed)

    def _chunks(self, block: str) -> list[ToolCallChunk]:
        return self._from(parse_reply(block, self.fmt))

    def _from(self, parsed: ParsedReply) -> list[ToolCallChunk]:
        chunks: list[ToolCallChunk] = []
        for call in parsed.tool_calls:
            chunks.append(
                tool_call_chunk(
                    name=call["name"],
                    args=json.dumps(call["args"], ensure_ascii=False),
                    id=call["id"],
                    index=self.index,
                )
            )
            self.index += 1
        for bad in parsed.invalid_tool_calls:
            chunks.append(
                tool_call_chunk(name=bad["name"], args=bad["args"], id=bad["id"], index=self.index)
            )
            self.index += 1
        return chunks


def _strip_blocks(text: str) -> str:
    return _BLOCK.sub("", text) if CALL_OPEN in text else text


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0
