"""Where a routing decision is shown: message metadata, the callback event, LangSmith.

The decision is computed once, as a :class:`RouteDecision`; these helpers publish
that one record everywhere, and read what routing needs off an answer message.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> msg = AIMessage("Paris", response_metadata={"logprobs": {"content": []}})
    >>> with_routing(msg, RouteDecision(tier="local", reason="confident")).response_metadata[
    ...     "routing"]["tier"]
    'local'
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_hybrid.costs import PriceTable
from langchain_hybrid.routing.decision import RouteDecision

#: Name of the custom callback event that carries each decision.
ROUTE_EVENT = "hybrid_route"

#: LangSmith metadata keys written on the routed run (searchable in the LangSmith UI).
TRACE_METADATA_KEYS = (
    "tier",
    "reason",
    "confidence",
    "threshold",
    "escalated",
    "degraded",
    "early_abort",
    "cost_usd",
    "cost_avoided_usd",
)

SyncRunManager = CallbackManagerForLLMRun | CallbackManagerForChainRun
AsyncRunManager = AsyncCallbackManagerForLLMRun | AsyncCallbackManagerForChainRun


def message_text(message: BaseMessage) -> str:
    """Return the text to score: the content, or the tool calls when there is no text."""
    text = message.text if isinstance(message.text, str) else str(message.content)
    if not text and isinstance(message, AIMessage) and message.tool_calls:
        return json.dumps([{"name": c["name"], "args": c["args"]} for c in message.tool_calls])
    return text


def model_name_of(message: BaseMessage | None, fallback: str) -> str:
    """Return the model that produced ``message`` (from its metadata), else ``fallback``."""
    if message is not None:
        name = message.response_metadata.get("model_name") or message.response_metadata.get("model")
        if name:
            return str(name)
    return fallback


def token_usage(message: BaseMessage | None) -> tuple[int, int]:
    """(input tokens, output tokens) of an answer; zeros when it reports none."""
    usage = getattr(message, "usage_metadata", None) if message is not None else None
    if not usage:
        return 0, 0
    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))


def priced(prices: PriceTable, model_name: str, message: BaseMessage | None) -> float:
    """Cost in USD of ``message`` at ``model_name``'s price (0.0 for unpriced models)."""
    price = prices.lookup(model_name)
    if price is None:
        return 0.0
    return price.cost(*token_usage(message))


def with_routing(message: BaseMessage, decision: RouteDecision) -> AIMessage:
    """Return the answer as an ``AIMessage`` whose metadata carries the decision."""
    metadata = {**message.response_metadata, "routing": decision.as_dict()}
    if isinstance(message, AIMessage):
        return AIMessage(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=metadata,
            tool_calls=message.tool_calls,
            invalid_tool_calls=message.invalid_tool_calls,
            usage_metadata=message.usage_metadata,
            id=message.id,
        )
    return AIMessage(content=message.content, response_metadata=metadata, id=message.id)


def event_payload(decision: RouteDecision, local_logprobs: Any = None) -> dict[str, Any]:
    """Build the ``hybrid_route`` event data: the decision dict, plus local log-probs if given."""
    payload = decision.as_dict()
    if local_logprobs is not None:
        payload["local_logprobs"] = local_logprobs
    return payload


def _annotate_trace(run_manager: SyncRunManager | AsyncRunManager, decision: RouteDecision) -> None:
    """Write the decision into the LangSmith run's metadata before the run ends.

    LangChain fixes a run's metadata when the run starts; the LangSmith tracer sends
    ``extra.metadata`` again when it ends, so keys added to its run record now arrive
    with the run's end and are searchable (``routing_tier``, ``routing_reason``, ...).
    """
    from langchain_core.tracers.langchain import LangChainTracer

    values = decision.as_dict()
    extra = {f"routing_{key}": values[key] for key in TRACE_METADATA_KEYS}
    for handler in run_manager.handlers:
        if isinstance(handler, LangChainTracer):
            run = handler.run_map.get(str(run_manager.run_id))
            if run is not None:
                run.extra.setdefault("metadata", {}).update(extra)


def child_callbacks(run_manager: SyncRunManager) -> CallbackManager:
    """Return a callback manager for runs nested under ``run_manager``'s run.

    Chat-model run managers have no ``get_child``; this mirrors what chain runs do,
    so the tier calls appear as child runs of the routed run (and in its traces).
    """
    manager = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def achild_callbacks(run_manager: AsyncRunManager) -> AsyncCallbackManager:
    """Async twin of :func:`child_callbacks`."""
    manager = AsyncCallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def publish(
    run_manager: SyncRunManager | None, decision: RouteDecision, local_logprobs: Any = None
) -> None:
    """Send the ``hybrid_route`` event for the run and put the decision on its trace."""
    if run_manager is None:
        return
    _annotate_trace(run_manager, decision)
    dispatch_custom_event(
        ROUTE_EVENT,
        event_payload(decision, local_logprobs),
        config=RunnableConfig(callbacks=child_callbacks(run_manager)),
    )


async def apublish(
    run_manager: AsyncRunManager | None, decision: RouteDecision, local_logprobs: Any = None
) -> None:
    """Async twin of :func:`publish`."""
    if run_manager is None:
        return
    _annotate_trace(run_manager, decision)
    await adispatch_custom_event(
        ROUTE_EVENT,
        event_payload(decision, local_logprobs),
        config=RunnableConfig(callbacks=achild_callbacks(run_manager)),
    )
