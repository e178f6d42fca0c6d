"""Cloud faults against the real ChatOpenAI client and a server on 127.0.0.1, per call style.

Every fault in :data:`tests.support.fault_matrix.FAULTS` (HTTP errors, a timeout, a dropped
or refused connection, malformed JSON, a stream dropped midway or ended early) is injected
into the cloud's reply and called in each of the four styles; the caller gets the local
answer marked ``degraded`` with a reason of the fault's kind, the cloud answer, or (a
stream broken after text was sent) one ``CloudStreamBrokenError`` carrying the decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.fault_matrix import (
    EXPECTED,
    FAULTS,
    STYLES,
    escalating_hybrid,
    outcome_of,
)
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import ScriptedReply
from tests.support.openai_server import FakeOpenAIServer

# One event loop for the module's async tests: langchain-openai caches its async HTTP
# client per base URL, and a client made in one test's loop cannot be used in another's.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default_reply=ScriptedReply("unused", logprobs=-0.01)) as srv:
        yield srv


@module_loop
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_matrix(server: FakeOpenAIServer, fault: str, style: str) -> None:
    assert await outcome_of(server, fault, style) == EXPECTED[(fault, style)]


def test_closing_an_escalated_astream_early_leaves_nothing_to_finalise(
    server: FakeOpenAIServer,
) -> None:
    long_answer = " ".join(f"word{i}" for i in range(200))
    loop_errors: list[str] = []

    async def stop_reading_early() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: loop_errors.append(str(context)))
        llm = escalating_hybrid(make_chat_openai(server, stream_usage=True))
        server.enqueue(ScriptedReply(long_answer, logprobs=-0.01))
        async for chunk in llm.astream("Tell me everything."):
            if chunk.content:
                break  # the caller stops reading, as a UI whose user clicked "stop"

    # The loop's end finalises any generator left open; none may be "already running".
    asyncio.run(stop_reading_early())
    assert not loop_errors, loop_errors


def test_a_deadline_covers_the_cloud_call(server: FakeOpenAIServer) -> None:
    from tests.support.openai_fake import Fault

    server.enqueue(ScriptedReply("late", logprobs=-0.01, fault=Fault(delay_s=3.0)))
    llm = escalating_hybrid(make_chat_openai(server), timeout=0.5)
    msg = llm.invoke("Who wrote Middlemarch?")
    r = msg.response_metadata["routing"]
    # The client's own timeout is 600 s; only the call's deadline could stop it.
    assert (r["reason"], r["degraded"]) == ("cloud_timeout", True)
    assert r["cloud_latency_s"] < 2.5
