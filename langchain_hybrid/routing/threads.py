"""Which conversation threads escalated: the state behind ``sticky_escalation``.

The setting lives in the policy (:attr:`RoutingPolicy.sticky_escalation
<langchain_hybrid.routing.policy.RoutingPolicy>`: a routing rule, saved with the policy);
the memory of which threads the cloud answered is state, and lives on the model
(``ChatHybrid.threads``), like the circuit breaker and the budget: copies of the model
(``bind_tools``, ``with_structured_output``, ``model_copy``) share it, and one
:class:`ThreadMemory` can be handed to several models. It is bounded: past ``max_threads``
the least recently used thread is forgotten (its next turn may be answered locally
again), so a long-running server does not grow without limit.

Example:
    >>> memory = ThreadMemory(max_threads=2)
    >>> memory.mark("a"); memory.mark("b"); memory.mark("c")
    >>> memory.escalated("a"), memory.escalated("c"), len(memory)
    (False, True, 2)
"""

from __future__ import annotations

import contextvars
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["THREAD_KEYS", "ThreadMemory", "call_thread", "thread_id_of", "thread_of"]

#: The conversation thread of the call in progress (from the run config it was given).
_THREAD_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "langchain_hybrid_thread_id", default=None
)


class ThreadMemory:
    """Remembers the conversation threads whose turns the cloud answered (bounded, LRU).

    Args:
        max_threads: how many threads to remember; the least recently used is forgotten
            first.

    Thread-safe; shared by the copies of the model that holds it.
    """

    def __init__(self, max_threads: int = 10_000) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be an int >= 1, got {max_threads!r}")
        self.max_threads = max_threads
        self._threads: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def escalated(self, thread_id: str | None) -> bool:
        """Whether the cloud answered a turn of ``thread_id`` (None: no thread, False)."""
        if thread_id is None:
            return False
        with self._lock:
            if thread_id not in self._threads:
                return False
            self._threads.move_to_end(thread_id)
            return True

    def mark(self, thread_id: str | None) -> None:
        """Remember that the cloud answered a turn of ``thread_id`` (None: nothing to do)."""
        if thread_id is None:
            return
        with self._lock:
            self._threads[thread_id] = None
            self._threads.move_to_end(thread_id)
            while len(self._threads) > self.max_threads:
                self._threads.popitem(last=False)

    def forget(self, thread_id: str) -> None:
        """Forget ``thread_id``: its next turn is routed afresh.

        Example:
            >>> memory = ThreadMemory(); memory.mark("t"); memory.forget("t")
            >>> memory.escalated("t")
            False
        """
        with self._lock:
            self._threads.pop(thread_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._threads)

    def __repr__(self) -> str:
        return f"ThreadMemory(max_threads={self.max_threads}, threads={len(self)})"


#: The keys that name a conversation thread, in the order they are looked for:
#: LangGraph's checkpointers (``thread_id``), ``RunnableWithMessageHistory``'s default
#: (``session_id``), and the third key LangSmith groups threads by (``conversation_id``).
THREAD_KEYS = ("thread_id", "session_id", "conversation_id")
#: Where ``RunnableWithMessageHistory`` leaves the history it loaded for the wrapped runnable.
_HISTORY_KEY = "message_history"


def thread_id_of(config: Mapping[str, Any] | None) -> str | None:
    """Return the conversation thread a run config names, or None.

    ``configurable`` first, then ``metadata``, each looked up for :data:`THREAD_KEYS` in
    order (``thread_id`` as LangGraph's checkpointers use it, ``session_id`` as
    ``RunnableWithMessageHistory`` does by default, ``conversation_id``). Inside a
    ``RunnableWithMessageHistory`` whose ``history_factory_config`` uses other keys
    (``user_id`` and ``conversation_id``, say), the thread is those keys' values together.
    Any value is turned into a string.

    Example:
        >>> thread_id_of({"configurable": {"thread_id": 7}})
        '7'
        >>> thread_id_of({"metadata": {"thread_id": "t1"}}), thread_id_of({})
        ('t1', None)
        >>> thread_id_of({"configurable": {"session_id": "s1", "message_history": []}})
        's1'
        >>> thread_id_of({"configurable": {"user_id": "u1", "chat": 2, "message_history": []}})
        'chat=2|user_id=u1'
    """
    if not config:
        return None
    for section_name in ("configurable", "metadata"):
        section = config.get(section_name)
        if not isinstance(section, Mapping):
            continue
        for key in THREAD_KEYS:
            if section.get(key) is not None:
                return str(section[key])
    configurable = config.get("configurable")
    if isinstance(configurable, Mapping) and _HISTORY_KEY in configurable:
        keys = [
            f"{key}={value}"
            for key, value in sorted(configurable.items())
            if key != _HISTORY_KEY and isinstance(value, (str, int)) and not key.startswith("_")
        ]
        return "|".join(keys) or None
    return None


@contextmanager
def thread_of(config: Mapping[str, Any] | None) -> Iterator[None]:
    """Make the thread ``config`` names the current call's while the block runs.

    A routed model reads it with :func:`call_thread` (LangChain hands ``_generate`` no
    run config, only the run's metadata).

    Example:
        >>> with thread_of({"configurable": {"thread_id": "t1"}}):
        ...     call_thread(None, sticky=True)
        't1'
    """
    token = _THREAD_ID.set(thread_id_of(config))
    try:
        yield
    finally:
        _THREAD_ID.reset(token)


def call_thread(metadata: Mapping[str, Any] | None, *, sticky: bool) -> str | None:
    """Return the current call's conversation thread: :func:`thread_of`'s, else its metadata's.

    With ``sticky`` (the policy's ``sticky_escalation``) a call that names no thread warns
    once: the setting cannot apply to it.

    Example:
        >>> call_thread({"thread_id": "t2"}, sticky=False)
        't2'
    """
    thread = _THREAD_ID.get() or thread_id_of({"metadata": metadata or {}})
    if thread is None and sticky:
        warnings.warn(
            "sticky_escalation is on, but this call names no conversation thread, so it is "
            "routed on its own. Name the thread in the run config: "
            '{"configurable": {"thread_id": ...}} (LangGraph sets it), "session_id" '
            '(RunnableWithMessageHistory sets it) or "conversation_id".',
            UserWarning,
            stacklevel=3,
        )
    return thread
