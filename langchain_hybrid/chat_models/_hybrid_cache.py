"""ChatHybrid through LangChain's cache: a hit replays its decision; a degraded one routes again.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> from langchain_core.outputs import ChatGeneration, ChatResult
    >>> answer = AIMessage("Paris", response_metadata={"routing": {"tier": "local",
    ...                                                             "reason": "confident"}})
    >>> hit = CacheHit.of(ChatResult(generations=[ChatGeneration(message=answer)]))
    >>> hit.decision.cached, hit.stale
    (True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_hybrid.routing.decision import RouteDecision

__all__ = ["CacheHit", "recache"]


@dataclass(frozen=True)
class CacheHit:
    """A cached answer, its decision marked as a cache hit (nothing called, nothing spent)."""

    result: ChatResult
    decision: RouteDecision

    @property
    def stale(self) -> bool:
        """Whether the hit is a fallback answer from an earlier outage, to be routed again."""
        return self.decision.degraded

    @classmethod
    def of(cls, result: ChatResult) -> CacheHit | None:
        """Return the hit ``result`` is, or None when no routed answer of ours was cached."""
        generation = result.generations[0]
        routing = generation.message.response_metadata.get("routing")
        if not isinstance(routing, dict):
            return None
        decision = RouteDecision.from_dict(routing).as_cached()
        metadata = {**generation.message.response_metadata, "routing": decision.as_dict()}
        message = generation.message.model_copy(
            update={"response_metadata": metadata, "usage_metadata": None}
        )
        replayed = ChatGeneration(message=message, generation_info=generation.generation_info)
        return cls(ChatResult(generations=[replayed], llm_output=result.llm_output), decision)


def recache(
    llm: BaseChatModel,
    messages: list[BaseMessage],
    stop: list[str] | None,
    result: ChatResult,
    kwargs: Mapping[str, Any],
) -> ChatResult:
    """Replace a cached answer under the key LangChain's cache lookup used; return ``result``."""
    cache = llm.cache if isinstance(llm.cache, BaseCache) else get_llm_cache()
    if cache is None or llm.cache is False:
        return result
    normalized = [m.model_copy(update={"id": None}) if m.id is not None else m for m in messages]
    cache.update(dumps(normalized), llm._get_llm_string(stop=stop, **kwargs), result.generations)
    return result
