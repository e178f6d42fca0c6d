"""The cloud fault matrix: each injected fault, in each call style, and what the caller gets.

Used by ``tests/integration_tests/test_reliability.py`` (which asserts :data:`EXPECTED`)
and ``benchmarks/bench_reliability.py`` (which prints the table). The cloud is the real
``ChatOpenAI`` talking to :class:`FakeOpenAIServer` on 127.0.0.1; the local tier is a
scripted :class:`FakeLocalChatModel` whose answers always escalate.
"""

from __future__ import annotations

import socket
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from langchain_hybrid import ChatHybrid
from langchain_hybrid.errors import LangChainHybridError, RoutedCallError
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply
from tests.support.openai_server import FakeOpenAIServer

__all__ = [
    "CLOUD_TEXT",
    "EXPECTED",
    "FAULTS",
    "LOCAL_TEXT",
    "STYLES",
    "escalating_hybrid",
    "outcome_of",
    "refused_base_url",
]

LOCAL_TEXT = "It was Charles Dickens."
CLOUD_TEXT = "Middlemarch was written by George Eliot."
QUESTION = "Who wrote Middlemarch?"
STYLES = ("invoke", "ainvoke", "stream", "astream")
CLIENT_TIMEOUT_S = 0.5

#: Fault name -> the fault injected into the cloud's reply (None: see ``refused``).
FAULTS: dict[str, Fault | None] = {
    "none": Fault(),
    "500": Fault(status=500),
    "429": Fault(status=429, retry_after_s=None),
    "401": Fault(status=401),
    "400": Fault(status=400),
    "timeout": Fault(delay_s=CLIENT_TIMEOUT_S * 4),
    "dropped": Fault(drop=True),
    "refused": None,  # nothing listens on the cloud's port
    "malformed JSON": Fault(malformed=True),
    "stream dropped midway": Fault(drop_after_chunks=4),
    "stream ended early": Fault(end_after_chunks=4),
}

_DEGRADED = {
    "500": "local, degraded (cloud_error)",
    "429": "local, degraded (cloud_error)",
    "401": "local, degraded (cloud_auth_error)",
    "400": "local, degraded (cloud_bad_request)",
    "timeout": "local, degraded (cloud_timeout)",
    "dropped": "local, degraded (cloud_error)",
    "refused": "local, degraded (cloud_error)",
    "malformed JSON": "local, degraded (cloud_error)",
}
_BROKEN = "CloudStreamBrokenError (cloud_stream_broken)"

#: (fault, style) -> the outcome the caller gets.
EXPECTED: dict[tuple[str, str], str] = {
    **{(fault, style): out for fault, out in _DEGRADED.items() for style in STYLES},
    **{("none", style): "cloud (low_confidence)" for style in STYLES},
    **{
        (fault, style): _BROKEN if style in ("stream", "astream") else "cloud (low_confidence)"
        for fault in ("stream dropped midway", "stream ended early")
        for style in STYLES
    },
}


def refused_base_url() -> str:
    """A loopback URL on which nothing listens (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def escalating_hybrid(cloud: BaseChatModel, **kw: Any) -> ChatHybrid:
    """A ChatHybrid whose local answers always escalate (no circuit breaker)."""
    local = FakeLocalChatModel(messages=_forever(LOCAL_TEXT), logprob=-3.0)
    kw.setdefault("circuit_breaker", None)
    return ChatHybrid(local=local, cloud=cloud, threshold=-0.6, **kw)


def _forever(text: str) -> Any:
    while True:
        yield text


def cloud_for(server: FakeOpenAIServer, fault: str) -> BaseChatModel:
    """The cloud tier for one fault: the real ChatOpenAI, a short client timeout."""
    base_url = refused_base_url() if FAULTS[fault] is None else server.base_url
    return make_chat_openai(server, base_url=base_url, timeout=CLIENT_TIMEOUT_S, model="gpt-4o")


def describe(message: BaseMessage) -> str:
    """Say which tier answered and why, from the decision."""
    r = message.response_metadata["routing"]
    if r["degraded"]:
        return f"{r['tier']}, degraded ({r['reason']})"
    return f"{r['tier']} ({r['reason']})"


async def outcome_of(server: FakeOpenAIServer, fault: str, style: str) -> str:
    """Inject ``fault`` into the next cloud reply, call in ``style``, describe the outcome."""
    injected = FAULTS[fault]
    if injected is not None:
        server.enqueue(ScriptedReply(CLOUD_TEXT, logprobs=-0.01, fault=injected))
    llm = escalating_hybrid(cloud_for(server, fault))
    try:
        return describe(await _call(llm, style))
    except RoutedCallError as exc:
        return f"{type(exc).__name__} ({exc.decision.reason})"
    except LangChainHybridError as exc:
        return f"{type(exc).__name__}"


async def _call(llm: ChatHybrid, style: str) -> BaseMessage:
    if style == "invoke":
        return llm.invoke(QUESTION)
    if style == "ainvoke":
        return await llm.ainvoke(QUESTION)
    if style == "stream":
        chunks = list(llm.stream(QUESTION))
    else:
        chunks = [c async for c in llm.astream(QUESTION)]
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total
