"""Validation of a request before any tier sees it: its messages and its call options.

:func:`check_messages` rejects message lists no chat model should receive (empty lists,
unknown message kinds and roles, text that is not valid Unicode); :func:`check_call_options`
checks the generation options of a call (``temperature``, ``top_p``, ``max_tokens``,
``stop``, ``n``, ...) and returns them normalised. ``ChatHybrid`` and ``ConfidenceGate``
run them once per call, before the route starts; ``ChatTransformers`` runs them too when
it is called on its own. Each failure is a typed error whose message names the message or
option and says what to do.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> check_messages([HumanMessage("Hello")])
    >>> check_call_options({"temperature": 0.2, "max_tokens": 64})
    {'temperature': 0.2, 'max_tokens': 64}
    >>> check_call_options({"top_p": 5})
    Traceback (most recent call last):
    ...
    langchain_hybrid.errors.InvalidCallOptionError: top_p must be a number in (0, 1], got 5; ...
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hybrid.errors import (
    InvalidCallOptionError,
    InvalidMessagesError,
    UnsupportedCallOptionError,
)

__all__ = [
    "CHAT_ROLES",
    "check_call_options",
    "check_messages",
    "check_stop",
    "check_text",
    "invalid_unicode",
]

_MESSAGE_TYPES = (SystemMessage, HumanMessage, AIMessage, ToolMessage, FunctionMessage, ChatMessage)

#: The roles a ``ChatMessage`` may have (the ones chat templates and chat APIs place).
CHAT_ROLES = frozenset(
    {"system", "developer", "user", "human", "assistant", "ai", "tool", "function"}
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_FIX_UNICODE = (
    "Text must be valid Unicode: repair it before sending, e.g. "
    "text.encode('utf-8', 'replace').decode('utf-8') (lone surrogates often come from "
    "bytes decoded with errors='surrogateescape' or from JSON with a broken \\uD8xx escape)."
)


# ---------------------------------------------------------------------------- unicode


def invalid_unicode(value: Any, path: str = "") -> str | None:
    r"""Return where ``value`` holds a lone surrogate (a path such as ``content[1]``), else None.

    Strings, and the strings inside lists, tuples and dicts (keys too), are searched;
    other values are ignored.

    Example:
        >>> invalid_unicode({"args": {"city": "Pa\ud800ris"}})
        "['args']['city'] (character 2, '\\ud800')"
        >>> invalid_unicode(["fine", {"text": "fine"}]) is None
        True
    """
    if isinstance(value, str):
        if value.isascii():
            return None
        found = _SURROGATE.search(value)
        if found is None:
            return None
        return f"{path or 'text'} (character {found.start()}, {found.group()!r})"
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = invalid_unicode(key, f"{path} key") or invalid_unicode(item, f"{path}[{key!r}]")
            if where is not None:
                return where
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            where = invalid_unicode(item, f"{path}[{index}]")
            if where is not None:
                return where
    return None


def check_text(value: Any, what: str) -> None:
    r"""Raise :class:`InvalidMessagesError` if ``value`` (or text inside it) is invalid Unicode.

    Example:
        >>> check_text("caf\udce9", "the input")
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.InvalidMessagesError: The input has invalid Unicode in text ...
    """
    where = invalid_unicode(value)
    if where is not None:
        raise InvalidMessagesError(
            f"{what[:1].upper()}{what[1:]} has invalid Unicode in {where}: a lone surrogate, "
            f"which no tokenizer or API accepts. {_FIX_UNICODE}"
        )


def _message_parts(message: BaseMessage) -> Sequence[tuple[str, Any]]:
    """Return the fields of a message that carry text a tier reads."""
    parts: list[tuple[str, Any]] = [("content", message.content)]
    if message.name:
        parts.append(("name", message.name))
    if isinstance(message, AIMessage):
        if message.tool_calls:
            parts.append(("tool_calls", message.tool_calls))
        if message.invalid_tool_calls:
            parts.append(("invalid_tool_calls", message.invalid_tool_calls))
    if isinstance(message, ToolMessage):
        parts.append(("tool_call_id", message.tool_call_id))
    if message.additional_kwargs:
        parts.append(("additional_kwargs", message.additional_kwargs))
    return parts


# ---------------------------------------------------------------------------- messages


def check_messages(messages: Sequence[BaseMessage]) -> None:
    r"""Reject a request that no tier should see (the first step of a routed call).

    Raises :class:`InvalidMessagesError` for an empty list, a message of a kind chat
    models do not take, a ``ChatMessage`` with a role no chat template places, and text
    that is not valid Unicode (a lone surrogate in the content, a content block, a
    tool call's arguments, ...), naming the message and where in it.

    Example:
        >>> check_messages([ChatMessage(role="narrator", content="Once upon a time")])
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.InvalidMessagesError: Message 0 has role 'narrator'; ...
        >>> check_messages([HumanMessage("ok"), AIMessage("bad \ud83d")])
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.InvalidMessagesError: Message 1 (AIMessage) has invalid Unicode ...
    """
    if not messages:
        raise InvalidMessagesError(
            "Received an empty list of messages: pass at least one message, "
            "e.g. llm.invoke('Hello') or llm.invoke([('human', 'Hello')])."
        )
    for index, message in enumerate(messages):
        if not isinstance(message, _MESSAGE_TYPES):
            raise InvalidMessagesError(
                f"Message {index} is a {type(message).__name__}, which chat models do not "
                "take; send SystemMessage, HumanMessage, AIMessage or ToolMessage."
            )
        if isinstance(message, ChatMessage) and message.role not in CHAT_ROLES:
            raise InvalidMessagesError(
                f"Message {index} has role {message.role!r}; use one of "
                f"{', '.join(sorted(CHAT_ROLES))} (or SystemMessage, HumanMessage, ...)."
            )
        for field, value in _message_parts(message):
            where = invalid_unicode(value, field)
            if where is not None:
                raise InvalidMessagesError(
                    f"Message {index} ({type(message).__name__}) has invalid Unicode in "
                    f"{where}: a lone surrogate, which no tokenizer or API accepts. {_FIX_UNICODE}"
                )


# ---------------------------------------------------------------------------- call options


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rule(test: Callable[[Any], bool], expected: str, hint: str) -> tuple[Any, str, str]:
    return test, expected, hint


#: The generation options that are checked: (test, what is expected, what to do).
_OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "temperature": _rule(
        lambda v: _number(v) and 0 <= v <= 2,
        "a number in [0, 2]",
        "0 decodes greedily, higher values sample more freely",
    ),
    "top_p": _rule(
        lambda v: _number(v) and 0 < v <= 1,
        "a number in (0, 1]",
        "it is the probability mass nucleus sampling keeps (1 keeps all)",
    ),
    "max_tokens": _rule(
        lambda v: _integer(v) and v >= 1,
        "an int >= 1",
        "it is the most tokens the answer may have",
    ),
    "max_completion_tokens": _rule(
        lambda v: _integer(v) and v >= 1,
        "an int >= 1",
        "it is the most tokens the answer may have",
    ),
    "top_k": _rule(
        lambda v: _integer(v) and v >= 1,
        "an int >= 1",
        "it is how many most likely tokens sampling draws from",
    ),
    "seed": _rule(_integer, "an int", "any whole number makes sampling repeatable"),
    "top_logprobs": _rule(
        lambda v: _integer(v) and 0 <= v <= 20,
        "an int in [0, 20]",
        "it is how many alternatives are reported per token",
    ),
    "logprobs": _rule(lambda v: isinstance(v, bool), "True or False", "pass a bool"),
    "timeout": _rule(
        lambda v: _number(v) and v > 0,
        "a number of seconds > 0",
        "pass how long the call may take",
    ),
    "frequency_penalty": _rule(
        lambda v: _number(v) and -2 <= v <= 2, "a number in [-2, 2]", "0 means no penalty"
    ),
    "presence_penalty": _rule(
        lambda v: _number(v) and -2 <= v <= 2, "a number in [-2, 2]", "0 means no penalty"
    ),
}


def check_stop(stop: Any) -> list[str] | None:
    r"""Return ``stop`` as a list of strings (a single string becomes a one-item list).

    Raises :class:`InvalidCallOptionError` when it is neither None, a string nor a list
    of strings.

    Example:
        >>> check_stop("END"), check_stop(None)
        (['END'], None)
        >>> check_stop([1])
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.InvalidCallOptionError: stop must be a string or a list of ...
    """
    if stop is None:
        return None
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise InvalidCallOptionError(
            f"stop must be a string or a list of strings, got {stop!r}; e.g. "
            "llm.invoke(..., stop=['\\n\\n'])."
        )
    where = invalid_unicode(list(stop), "stop")
    if where is not None:
        raise InvalidCallOptionError(f"stop has invalid Unicode in {where}. {_FIX_UNICODE}")
    return list(stop)


def check_call_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check a call's options and return them normalised (None values are dropped).

    The generation options every tier understands are checked against their ranges
    (``temperature`` in [0, 2], ``top_p`` in (0, 1], ``max_tokens`` an int >= 1,
    ``top_logprobs`` in [0, 20], ``stop`` a string or list of strings, ...); ``n`` other
    than 1 is unsupported (a call gives one answer; use ``batch`` for several). Other
    options are kept as they are (they reach the tiers), once their text is checked for
    invalid Unicode. A None value means "the tier's own setting" and is dropped.

    Raises :class:`InvalidCallOptionError` (a ``ValueError``) or
    :class:`UnsupportedCallOptionError` (a ``TypeError``).

    Example:
        >>> check_call_options({"temperature": None, "stop": "END", "user": "u1"})
        {'stop': ['END'], 'user': 'u1'}
        >>> check_call_options({"n": 3})
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.UnsupportedCallOptionError: n=3 is not supported: ...
    """
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "stop":
            checked[name] = check_stop(value)
            continue
        if name == "n":
            if not (_integer(value) and value == 1):
                raise UnsupportedCallOptionError(
                    f"n={value!r} is not supported: a call gives one answer. For several "
                    "answers, call llm.batch([question] * n) (with temperature > 0)."
                )
            checked[name] = value
            continue
        rule = _OPTION_RULES.get(name)
        if rule is not None:
            test, expected, hint = rule
            if not test(value):
                raise InvalidCallOptionError(f"{name} must be {expected}, got {value!r}; {hint}.")
        else:
            where = invalid_unicode(value, name)
            if where is not None:
                raise InvalidCallOptionError(
                    f"Call option {name!r} has invalid Unicode in {where}. {_FIX_UNICODE}"
                )
        checked[name] = value
    return checked
