"""Where a routing decision is shown: message metadata, the callback event, LangSmith.

The decision is computed once, as a :class:`RouteDecision`; these helpers publish
that one record everywhere.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> msg = AIMessage("Paris", response_metadata={"logprobs": {"content": []}})
    >>> with_routing(msg, RouteDecision(tier="local", reason="confident")).response_metadata[
    ...     "routing"]["tier"]
    'local'
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_hybrid._callbacks import (
    AsyncRunManager,
    SyncRunManager,
    child_callbacks,
)
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
    "cached",
    "escalation_reason",
    "failed",
    "privacy",
    "model",
)


def routing_steps(message: BaseMessage) -> list[dict[str, Any]]:
    """Return the decisions of every step that routed ``message``, the first step first.

    For a plain ``ChatHybrid`` that is one decision (``response_metadata["routing"]``);
    for a cascade (``ChatHybrid.cascade([...])``), one per step that ran: the first
    step's, then the step it escalated to, and so on. ``tier_routing`` holds the steps
    below the first, innermost first; this reads them in the order they ran. An answer
    that was not routed gives an empty list.

    Example:
        >>> msg = AIMessage("Paris", response_metadata={
        ...     "routing": {"tier": "cloud", "reason": "low_confidence"},
        ...     "tier_routing": [{"tier": "local", "reason": "confident"}]})
        >>> [(s["tier"], s["reason"]) for s in routing_steps(msg)]
        [('cloud', 'low_confidence'), ('local', 'confident')]
        >>> routing_steps(AIMessage("not routed"))
        []
    """
    metadata = message.response_metadata
    first = metadata.get("routing")
    if not isinstance(first, dict):
        return []
    below = [step for step in metadata.get("tier_routing") or [] if isinstance(step, dict)]
    return [first, *reversed(below)]


def with_routing(
    message: BaseMessage, decision: RouteDecision, *, keep_usage: bool = True
) -> AIMessage:
    """Return the answer as an ``AIMessage`` whose metadata carries the decision.

    When the answer came from a tier that is itself a router (``ChatHybrid(local=small,
    cloud=ChatHybrid(local=medium, cloud=large))``, a cascade), that tier's decision is
    kept in ``response_metadata["tier_routing"]``: the decisions of the routers below,
    the innermost first.

    ``keep_usage=False`` drops ``usage_metadata``: a routed chat-model run must not report
    the tokens its tier runs already reported (handlers and LangSmith would count them
    twice); the decision keeps them in ``usage``.
    """
    metadata = {**message.response_metadata, "routing": decision.as_dict()}
    below = message.response_metadata.get("routing")
    if isinstance(below, dict):  # the tier was itself a router (a cascade): keep its decision
        metadata["tier_routing"] = [*message.response_metadata.get("tier_routing", []), below]
    if isinstance(message, AIMessage):
        return AIMessage(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=metadata,
            tool_calls=message.tool_calls,
            invalid_tool_calls=message.invalid_tool_calls,
            usage_metadata=message.usage_metadata if keep_usage else None,
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
        config=RunnableConfig(callbacks=child_callbacks(run_manager)),
    )
