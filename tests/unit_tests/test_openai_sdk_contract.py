"""What the tests hand the openai SDK, checked against the installed SDK.

openai 3 moved from ``httpx`` to ``httpx2`` and began refusing an ``httpx.Timeout``
(the standard suite's cloud fixture passed one to get clients of its own), which broke
the suite without a commit. These tests construct and call ``ChatOpenAI`` exactly the
ways the tests, examples and benchmarks do, so the next such change in the SDK fails
here, in the unit lane, with a clear name:

* clients of its own (``make_chat_openai(..., own_clients=True)``) come from the SDK's
  own factories and are not shared between instances;
* the socket-free fake's ``httpx`` clients are accepted as ``http_client`` /
  ``http_async_client``;
* the ``httpx`` errors the fake raises (read timeout, dropped connection) and its error
  statuses reach ChatHybrid as the errors its failure classifier knows.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import openai
import pytest

from langchain_hybrid.routing.failures import failure_kind
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply
from tests.support.openai_mock import MockOpenAI


def _server(url: str = "http://127.0.0.1:9/v1") -> Any:
    """A stand-in for a loopback server: constructing a client opens no socket."""
    return SimpleNamespace(base_url=url)


def test_own_clients_are_the_sdks_own_and_not_shared() -> None:
    first = make_chat_openai(_server(), own_clients=True, timeout=30.0, http_socket_options=())
    second = make_chat_openai(_server(), own_clients=True, timeout=30.0, http_socket_options=())
    sdk_async = type(openai.DefaultAsyncHttpxClient())
    assert isinstance(first.http_async_client, sdk_async)
    assert first.root_async_client is not None and second.root_async_client is not None
    assert first.root_async_client._client is not second.root_async_client._client
    assert first.root_client is not None and second.root_client is not None
    assert first.root_client._client is not second.root_client._client
    assert first.request_timeout == 30.0


def test_shared_clients_are_what_own_clients_avoids() -> None:
    # The reason own_clients exists: without it, instances share one async client.
    first = make_chat_openai(_server(), timeout=30.0, http_socket_options=())
    second = make_chat_openai(_server(), timeout=30.0, http_socket_options=())
    assert first.root_async_client is not None and second.root_async_client is not None
    assert first.root_async_client._client is second.root_async_client._client


def test_the_socket_free_fake_answers_through_the_sdk() -> None:
    mock = MockOpenAI()
    mock.enqueue(ScriptedReply("sync"), ScriptedReply("streamed"))
    llm = make_chat_openai(mock)
    assert llm.invoke("hi").content == "sync"
    assert "".join(str(c.content) for c in llm.stream("hi")) == "streamed"


async def test_the_socket_free_fake_answers_through_the_async_sdk() -> None:
    mock = MockOpenAI()
    mock.enqueue(ScriptedReply("async"))
    assert (await make_chat_openai(mock).ainvoke("hi")).content == "async"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault(delay_s=30), "timeout"),
        (Fault(drop=True), "unavailable"),
        (Fault(status=500), "unavailable"),
        (Fault(status=429, retry_after_s=None), "unavailable"),
        (Fault(status=401), "auth"),
        (Fault(status=400), "bad_request"),
    ],
)
def test_transport_faults_reach_the_failure_classifier(fault: Fault, kind: str) -> None:
    mock = MockOpenAI()
    mock.enqueue(fault)
    llm = make_chat_openai(mock, timeout=0.2)
    with pytest.raises(Exception) as caught:
        llm.invoke("hi")
    assert failure_kind(caught.value) == kind, repr(caught.value)
    # The SDK's own error types, not the HTTP library's: what LangChain maps.
    assert isinstance(caught.value, openai.OpenAIError) or type(caught.value).__module__.startswith(
        "langchain_core"
    ), type(caught.value).__mro__
