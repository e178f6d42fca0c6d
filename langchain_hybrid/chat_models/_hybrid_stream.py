"""What a routed ChatHybrid stream yields: tier chunks as its own, then the decision chunk.

The drive of a streaming call yields tier chunks and, last, the :class:`Routed` outcome;
:func:`chunks_of` turns each into the routed run's chunks (no position or usage of their
own), :func:`decision_chunk` is the chunk that ends the stream with the decision, and
:class:`DecisionTail` holds that chunk back until the run has ended, to give it the
answering tier's usage (:func:`with_answer_usage`).

Example:
    >>> from langchain_core.messages import AIMessageChunk
    >>> [c.message.content for c in chunks_of(AIMessageChunk("Pa", chunk_position="last"))]
    ['Pa']
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from langchain_hybrid.routing.decision import RouteDecision
from langchain_hybrid.routing.route import Routed, message_chunk

__all__ = [
    "DecisionTail",
    "chunks_of",
    "decision_chunk",
    "prepend",
    "with_answer_usage",
]

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseMessage)


def chunk_of(chunk: Any) -> ChatGenerationChunk:
    """Return the routed run's view of a tier chunk: no position or usage of its own.

    The decision chunk of a tier that is itself a router (a cascade) moves its decision
    to ``tier_routing`` (a list, which chunks add up), leaving ``routing`` to this run.
    """
    message = message_chunk(chunk)
    update: dict[str, Any] = {"chunk_position": None, "usage_metadata": None}
    below = message.response_metadata.get("routing")
    if isinstance(below, dict):
        metadata = {k: v for k, v in message.response_metadata.items() if k != "routing"}
        metadata["tier_routing"] = [*metadata.get("tier_routing", []), below]
        update["response_metadata"] = metadata
    return ChatGenerationChunk(message=message.model_copy(update=update))


def chunks_of(item: Any) -> list[ChatGenerationChunk]:
    """Return the answer chunks one item of a streaming drive stands for.

    A tier chunk is one chunk; the :class:`Routed` outcome stands for the chunks of the
    answer held until it was decided (a kept local answer), or raises the error of a call
    that has no answer.
    """
    if not isinstance(item, Routed):
        return [chunk_of(item)]
    if item.error is not None:
        raise item.error
    return [chunk_of(held) for held in item.held]


def decision_chunk(decision: RouteDecision) -> ChatGenerationChunk:
    """Return the chunk that ends a routed stream: it carries the decision.

    Example:
        >>> decision_chunk(RouteDecision("local", "confident")).message.chunk_position
        'last'
    """
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            response_metadata={"routing": decision.as_dict()},
            chunk_position="last",
        )
    )


def with_answer_usage(message: _M) -> _M:
    """Give the caller's answer the usage of the tier that answered (kept in the decision)."""
    routing = message.response_metadata.get("routing")
    usage = routing.get("usage") if isinstance(routing, dict) else None
    if not usage or getattr(message, "usage_metadata", None) is not None:
        return message
    return message.model_copy(update={"usage_metadata": usage})


class DecisionTail:
    """Holds the decision chunk of a stream back until the run has ended (it reports no usage).

    Example:
        >>> tail = DecisionTail()
        >>> tail.passes(AIMessageChunk("Paris")), tail.last()
        (True, [])
    """

    def __init__(self) -> None:
        self._chunk: AIMessageChunk | None = None

    def passes(self, chunk: AIMessageChunk) -> bool:
        """Whether ``chunk`` goes to the caller now (the decision chunk is held)."""
        held = getattr(chunk, "chunk_position", None) == "last" and "routing" in (
            chunk.response_metadata
        )
        if held:
            self._chunk = chunk
        return not held

    def last(self) -> list[AIMessageChunk]:
        """Return the held decision chunk with the answering tier's usage (or nothing)."""
        return [with_answer_usage(self._chunk)] if self._chunk is not None else []


async def prepend(first: _T, rest: AsyncIterator[_T]) -> AsyncGenerator[_T, None]:
    """Yield ``first``, then the items of ``rest``."""
    yield first
    async for item in rest:
        yield item
