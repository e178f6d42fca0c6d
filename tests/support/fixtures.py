"""Pytest fixtures for the OpenAI and LangSmith stand-ins (loopback servers and a socket-free mock).

Loaded for the whole test suite by ``tests/conftest.py``
(``pytest_plugins = ["tests.support.fixtures"]``).

* ``openai_server``: a started :class:`FakeOpenAIServer` on 127.0.0.1 (function
  scope; integration tests).
* ``openai_mock``: a :class:`MockOpenAI`, the same scripted API behind an
  ``httpx.MockTransport`` (function scope; unit tests, no socket).
* :func:`make_chat_openai` / :func:`make_openai_client`: real clients wired to
  either of them.
* ``langsmith_capture``: a started :class:`LangSmithCaptureServer`, with the
  ``LANGSMITH_*`` environment pointing at it and a fresh cached
  ``langsmith.Client`` for the test. Flush with :func:`flush_traces` (or
  ``langchain_core.tracers.langchain.wait_for_all_tracers()``) and then
  ``langsmith_capture.wait_for(...)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import openai
import pytest
from langchain_openai import ChatOpenAI

from tests.support.langsmith_capture import LangSmithCaptureServer, RunsPredicate
from tests.support.openai_fake import FakeOpenAI
from tests.support.openai_mock import MockOpenAI
from tests.support.openai_server import FakeOpenAIServer

__all__ = [
    "flush_traces",
    "langsmith_capture",
    "make_chat_openai",
    "make_openai_client",
    "openai_mock",
    "openai_server",
    "reset_langsmith_client",
]

_LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"

# Settings that would send traces elsewhere, drop them, or change the wire
# format; removed under both prefixes while the capture fixture is active.
_LANGSMITH_SCRUBBED = (
    "RUNS_ENDPOINTS",
    "TRACING_SAMPLING_RATE",
    "TRACING_MODE",
    "OTEL_ENABLED",
    "OTEL_ONLY",
    "HIDE_INPUTS",
    "HIDE_OUTPUTS",
    "HIDE_METADATA",
    "DISABLE_RUN_COMPRESSION",
    "WORKSPACE_ID",
    "USE_PYO3_CLIENT",
    "BATCH_INGEST_SIZE_LIMIT",
    "TEST_TRACKING",
    "ENDPOINT",
    "API_KEY",
    "PROJECT",
    "TRACING",
    "TRACING_V2",
)


def _loopback_only(mp: pytest.MonkeyPatch) -> None:
    """Keep HTTP clients from routing loopback traffic through a proxy."""
    mp.delenv("OPENAI_PROXY", raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(var, "")
        mp.setenv(var, f"{current},{_LOOPBACK_NO_PROXY}" if current else _LOOPBACK_NO_PROXY)


def make_chat_openai(server: FakeOpenAI, *, own_clients: bool = False, **kw: Any) -> ChatOpenAI:
    """A real ``ChatOpenAI`` talking to ``server``, over HTTP or with no socket at all.

    A :class:`FakeOpenAIServer` is reached at its ``base_url``; a :class:`MockOpenAI`
    answers through the sync and async ``httpx`` clients wired in here
    (``http_client=``, ``http_async_client=``).

    ``own_clients=True`` gives a server-backed model HTTP clients of its own, made by the
    openai SDK's own factories (``openai.DefaultHttpxClient`` and
    ``openai.DefaultAsyncHttpxClient``, whichever HTTP library the SDK is built on):
    langchain-openai otherwise shares one cached async client per base URL and timeout,
    which outlives pytest-asyncio's per-test event loops when the server lives longer
    than one test.

    Defaults: ``api_key="test-key"``, ``model="gpt-4o"``, ``max_retries=0``;
    any of them (and any other ``ChatOpenAI`` field) can be overridden by ``kw``.
    """
    params: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": "test-key",
        "model": "gpt-4o",
        "max_retries": 0,
    }
    if isinstance(server, MockOpenAI):
        params["http_client"] = server.http_client()
        params["http_async_client"] = server.http_async_client()
        # No TCP, so no TCP keep-alive options: ChatOpenAI would otherwise open a
        # probe socket to see which options the kernel accepts.
        params["http_socket_options"] = ()
    elif own_clients:
        params["http_client"] = openai.DefaultHttpxClient()
        params["http_async_client"] = openai.DefaultAsyncHttpxClient()
    params.update(kw)
    return ChatOpenAI(**params)


def make_openai_client(server: FakeOpenAI, **kw: Any) -> openai.OpenAI:
    """A real ``openai.OpenAI`` client talking to ``server`` (``max_retries=0``)."""
    params: dict[str, Any] = {"base_url": server.base_url, "api_key": "test-key", "max_retries": 0}
    if isinstance(server, MockOpenAI):
        params["http_client"] = server.http_client()
    params.update(kw)
    return openai.OpenAI(**params)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A started fake OpenAI server on 127.0.0.1 (``.base_url`` ends in ``/v1``)."""
    with pytest.MonkeyPatch.context() as mp:
        _loopback_only(mp)
        with FakeOpenAIServer() as server:
            yield server


@pytest.fixture
def openai_mock() -> MockOpenAI:
    """The same fake OpenAI API without a socket: pass it to :func:`make_chat_openai`."""
    return MockOpenAI()


def reset_langsmith_client() -> None:
    """Drop langsmith's cached client and env-derived caches.

    ``langchain_core``'s ``LangChainTracer`` and ``wait_for_all_tracers`` use
    ``langsmith.run_trees.get_cached_client()`` / ``run_trees._CLIENT``, and
    ``langsmith.utils`` caches environment lookups; after this the next traced
    call builds a new ``Client`` from the current environment.
    """
    import langsmith.run_trees as rt
    import langsmith.utils as ls_utils

    rt._CLIENT = None
    cast(Any, ls_utils.get_env_var).cache_clear()  # overloaded, so untyped here
    ls_utils.get_tracer_project.cache_clear()
    rt._exclude_inputs_on_patch.cache_clear()


def flush_traces(
    server: LangSmithCaptureServer,
    predicate: RunsPredicate | None = None,
    timeout: float = 5.0,
) -> dict[str, dict[str, Any]]:
    """Flush the cached langsmith client, then wait (bounded) for ``predicate``.

    Equivalent to ``wait_for_all_tracers()`` followed by
    ``server.wait_for(predicate)``, but the flush itself is bounded too.
    Without a predicate, waits until every captured run has ended.
    """
    import langsmith.run_trees as rt

    client = rt._CLIENT
    if client is not None:
        client.flush(timeout=timeout)

    def all_ended(runs: dict[str, dict[str, Any]]) -> bool:
        return bool(runs) and all(r.get("end_time") is not None for r in runs.values())

    return server.wait_for(predicate or all_ended, timeout=timeout)


@pytest.fixture
def langsmith_capture() -> Iterator[LangSmithCaptureServer]:
    """A LangSmith capture server with tracing on and pointed at it.

    Sets ``LANGSMITH_TRACING=true``, ``LANGSMITH_ENDPOINT=<server url>``,
    ``LANGSMITH_API_KEY=test``, ``LANGSMITH_PROJECT=test-project`` (and
    ``LANGSMITH_USE_DAEMON=true`` so upload threads never block interpreter
    exit), and gives the test a fresh cached ``langsmith.Client``. Afterwards the
    client is flushed and closed and the environment and caches are restored.
    """
    import langsmith.run_trees as rt

    with LangSmithCaptureServer() as server:
        with pytest.MonkeyPatch.context() as mp:
            _loopback_only(mp)
            for prefix in ("LANGSMITH_", "LANGCHAIN_"):
                for name in _LANGSMITH_SCRUBBED:
                    mp.delenv(prefix + name, raising=False)
            mp.delenv("HOSTED_LANGSERVE_PROJECT_NAME", raising=False)
            mp.setenv("LANGSMITH_TRACING", "true")
            mp.setenv("LANGSMITH_TRACING_V2", "true")
            mp.setenv("LANGSMITH_ENDPOINT", server.url)
            mp.setenv("LANGSMITH_API_KEY", "test")
            mp.setenv("LANGSMITH_PROJECT", "test-project")
            mp.setenv("LANGSMITH_USE_DAEMON", "true")
            reset_langsmith_client()
            try:
                yield server
            finally:
                client = rt._CLIENT
                if client is not None:
                    client.close(timeout=2.0)
                rt._CLIENT = None
        # Environment restored: forget anything cached from the test's values.
        reset_langsmith_client()
