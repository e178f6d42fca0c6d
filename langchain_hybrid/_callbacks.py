"""Callback plumbing: tier calls as child runs, the run of a stream, nesting inside chains.

Three things LangChain does not do for a model that calls other models:

* chat-model run managers have no ``get_child``: :func:`child_callbacks` builds the
  manager under which the tier calls become child runs of the routed run;
* ``BaseChatModel.stream``/``astream`` do not hand their run manager to ``_stream``:
  :class:`StreamRunCapture` records the run they start, and :class:`RoutedRun` makes it
  (or the run manager of ``_generate_with_cache``) available to ``_stream``, so that it
  can nest the tier calls under the run and publish the decision on it;
* inside a chain, LangChain's context variable still holds the outer step's config:
  :func:`nested` makes the routed run the parent of a tier's runs while it is called.

Example:
    >>> from langchain_core.callbacks import CallbackManagerForLLMRun
    >>> from uuid import uuid4
    >>> run = CallbackManagerForLLMRun(run_id=uuid4(), handlers=[], inheritable_handlers=[])
    >>> child_callbacks(run).parent_run_id == run.run_id
    True
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

__all__ = [
    "AsyncRunManager",
    "ChatModelCapture",
    "RoutedRun",
    "StreamRunCapture",
    "SyncRunManager",
    "aiter_nested",
    "child_callbacks",
    "iter_nested",
    "nested",
    "routed_run",
]

SyncRunManager = CallbackManagerForLLMRun | CallbackManagerForChainRun
AsyncRunManager = AsyncCallbackManagerForLLMRun | AsyncCallbackManagerForChainRun

_T = TypeVar("_T")
_RM = TypeVar("_RM", CallbackManagerForLLMRun, AsyncCallbackManagerForLLMRun)


@overload
def child_callbacks(run_manager: SyncRunManager) -> CallbackManager: ...
@overload
def child_callbacks(run_manager: AsyncRunManager) -> AsyncCallbackManager: ...
@overload
def child_callbacks(run_manager: None) -> None: ...
def child_callbacks(
    run_manager: SyncRunManager | AsyncRunManager | None,
) -> CallbackManager | AsyncCallbackManager | None:
    """Return a callback manager for runs nested under ``run_manager``'s run (async for async).

    This mirrors what chain runs' ``get_child`` does, so the tier calls appear as child
    runs of the routed run (and in its traces). None for no run manager.
    """
    if run_manager is None:
        return None
    manager_class = (
        AsyncCallbackManager if isinstance(run_manager, AsyncRunManager) else (CallbackManager)
    )
    manager = manager_class(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


class StreamRunCapture(BaseCallbackHandler):
    """Records the run id of the chat-model run that ``stream``/``astream`` start.

    Add it (not inherited) to the manager passed to ``BaseChatModel.stream``, and enter
    :func:`routed_run` with it around the first step of the stream: ``_stream`` then
    rebuilds the run manager with :meth:`RoutedRun.manager`.
    """

    run_inline = True

    def __init__(self, manager: CallbackManager | AsyncCallbackManager) -> None:
        self.manager = manager
        self.run_id: UUID | None = None

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Remember the first chat-model run started through the manager."""
        if self.run_id is None:
            self.run_id = run_id


class ChatModelCapture(BaseCallbackHandler):
    """Records the answer message of the last chat-model run to end under a manager.

    Added (inherited) to the callbacks of a runnable such as a whole chain, it sees every
    chat model called inside it; :attr:`message` is the generation message of the last
    one that ended (its log-probs and finish reason in ``response_metadata``), whatever
    the chain returned: a string, a dict, a parsed object. This is how
    ``ConfidenceGate`` judges a chain that ends in a parser.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langchain_core.output_parsers import StrOutputParser
        >>> capture = ChatModelCapture()
        >>> chain = FakeListChatModel(responses=["Paris"]) | StrOutputParser()
        >>> chain.invoke("Capital?", {"callbacks": [capture]}), capture.message.content
        ('Paris', 'Paris')
    """

    run_inline = True

    def __init__(self) -> None:
        self.message: BaseMessage | None = None
        self.calls = 0

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """Keep the generation message of a chat-model run that ended."""
        generations = response.generations[0] if response.generations else []
        if generations and isinstance(generations[0], ChatGeneration):
            self.message = generations[0].message
            self.calls += 1


@dataclass
class RoutedRun:
    """The LangChain run a routed call is in, for the code that is not handed its manager.

    ``_generate_with_cache`` knows its run manager but calls ``_stream`` without it (when
    streaming handlers are attached); ``stream()`` only knows its run through a
    :class:`StreamRunCapture`. ``routed`` is set when a route really ran, which tells a
    cache hit from a fresh answer.
    """

    run_manager: Any = None
    capture: StreamRunCapture | None = None
    routed: bool = False

    @staticmethod
    def mark_routed() -> None:
        """Record that the innermost routed run really routed (no cache hit)."""
        current = _ROUTED_RUN.get()
        if current is not None:
            current.routed = True

    @staticmethod
    def manager(run_manager_cls: type[_RM]) -> _RM | None:
        """Return the run manager of the innermost routed run, if it is of this class."""
        current = _ROUTED_RUN.get()
        if current is None:
            return None
        if isinstance(current.run_manager, run_manager_cls):
            return current.run_manager
        capture = current.capture
        if capture is None or capture.run_id is None:
            return None
        m = capture.manager
        return run_manager_cls(
            run_id=capture.run_id,
            handlers=[h for h in m.handlers if h is not capture],
            inheritable_handlers=m.inheritable_handlers,
            parent_run_id=m.parent_run_id,
            tags=m.tags,
            inheritable_tags=m.inheritable_tags,
            metadata=m.metadata,
            inheritable_metadata=m.inheritable_metadata,
        )


_ROUTED_RUN: contextvars.ContextVar[RoutedRun | None] = contextvars.ContextVar(
    "langchain_hybrid_routed_run", default=None
)


@contextmanager
def routed_run(
    run_manager: Any = None, capture: StreamRunCapture | None = None
) -> Iterator[RoutedRun]:
    """Make a :class:`RoutedRun` the innermost one for the ``with`` block."""
    current = RoutedRun(run_manager=run_manager, capture=capture)
    token = _ROUTED_RUN.set(current)
    try:
        yield current
    finally:
        _ROUTED_RUN.reset(token)


@contextmanager
def nested(callbacks: CallbackManager | AsyncCallbackManager | None) -> Iterator[None]:
    """Make the routed run (``callbacks``: its child manager) the parent of a tier's runs.

    Inside a chain or graph, LangChain's context variable still holds the outer step's
    config while the router runs; a tier that is a ``RunnableBinding`` (tools bound)
    merges that config into its own, and its run would hang under the outer step
    instead of under the routed run.
    """
    if callbacks is None:
        yield
        return
    outer = var_child_runnable_config.get() or {}
    inner = {k: v for k, v in outer.items() if k not in ("callbacks", "run_name", "run_id")}
    token = var_child_runnable_config.set(cast(RunnableConfig, {**inner, "callbacks": callbacks}))
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


def iter_nested(
    stream: Iterator[_T], callbacks: CallbackManager | AsyncCallbackManager | None
) -> Iterator[_T]:
    """Iterate a tier's stream, each step under :func:`nested`; closing closes the stream."""
    try:
        while True:
            with nested(callbacks):
                try:
                    chunk = next(stream)
                except StopIteration:
                    return
            yield chunk
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            with nested(callbacks):
                close()


async def aiter_nested(
    stream: AsyncIterator[_T], callbacks: CallbackManager | AsyncCallbackManager | None
) -> AsyncIterator[_T]:
    """Async twin of :func:`iter_nested`."""
    try:
        while True:
            with nested(callbacks):
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
            yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with nested(callbacks):
                await aclose()
