"""ConfidenceGate: the confidence gate as an LCEL Runnable around any two runnables."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from langchain_core.runnables.utils import AddableDict
from pydantic import ConfigDict, Field

from langchain_hybrid._callbacks import ChatModelCapture
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.routing.decision import RouteDecision, Tier
from langchain_hybrid.routing.failures import FailureKind
from langchain_hybrid.routing.guards import Budget, CircuitBreaker
from langchain_hybrid.routing.inputs import check_messages, check_text
from langchain_hybrid.routing.policy import DEFAULT_THRESHOLD, RoutingPolicy
from langchain_hybrid.routing.route import (
    Flow,
    Route,
    Routed,
    adrive,
    arun,
    drive,
    merge_chunks,
    model_label,
    route_flow,
    run,
)
from langchain_hybrid.routing.rules import PrivacyRule, RoutingContext
from langchain_hybrid.routing.scorers import ConfidenceScorer
from langchain_hybrid.routing.surfaces import apublish, publish, with_routing

__all__ = ["DEFAULT_THRESHOLD", "ConfidenceGate", "find_message"]

_RUN_NAMES: dict[Tier, str] = {"local": "primary", "cloud": "fallback"}


def _message_key(output: Mapping[Any, Any], key: str | None = None) -> Any:
    """Return the key of the answer message in a dict output (None when there is none).

    ``key`` when given; else the first ``AIMessage`` value, else the first message value.
    """
    if key is not None:
        return key if isinstance(output.get(key), BaseMessage) else None
    first: Any = None
    for k, value in output.items():
        if isinstance(value, AIMessage):
            return k
        if first is None and isinstance(value, BaseMessage):
            first = k
    return first


def find_message(output: Any, key: str | None = None) -> BaseMessage | None:
    """Find the answer message in a runnable's output.

    A message is itself; a mapping yields ``output[key]`` when ``key`` is given, else
    its first ``AIMessage`` value (e.g. the ``"answer"`` of a RAG chain that returns
    ``{"context": ..., "answer": AIMessage}``, even after an echoed ``HumanMessage``),
    else its first message value.

    Example:
        >>> find_message({"context": "...", "answer": AIMessage("Paris")}).content
        'Paris'
    """
    if isinstance(output, BaseMessage):
        return output
    if isinstance(output, Mapping):
        found = _message_key(output, key)
        return None if found is None else output[found]
    return None


class ConfidenceGate(RunnableSerializable[Any, Any]):
    """Run ``primary``; if its answer is not confident enough, run ``fallback`` instead.

    The gate is the same route as ChatHybrid's (tier "local" = primary, "cloud" =
    fallback), driven for any two runnables: the policy's pre-routing rules see the input
    (a ``ForceLocalRule`` keeps it on the primary), the primary runs and its answer
    message is judged by the policy, and below the threshold the fallback runs on the
    same input. The answer message is the output itself when it is an ``AIMessage``, or
    one a dict output carries (a RAG chain's ``{"context", "answer"}``); otherwise (a
    chain ending in ``StrOutputParser()``, a parsed object) it is the message of the chat
    model called inside the primary, captured through callbacks (its log-probs and finish
    reason): when several chat models run inside it, the last one to end is judged, as
    the one that wrote the answer (a query-rewriting step runs before the answering
    one). When no chat model ran, or the judged one gave no log-probs, the reason is
    ``no_logprobs``. If the primary fails, the fallback answers (reason ``local_error``);
    if the fallback fails, the primary output is returned with
    ``degraded=True``. The decision is attached to an ``AIMessage`` output's
    ``response_metadata["routing"]``, added as a ``"routing"`` key to a dict output, sent
    as the ``hybrid_route`` callback event, and written to the LangSmith run's metadata.
    For a string or parsed-object output the event is where to read it: a callback
    handler's ``on_custom_event`` (or ``RoutingStatsHandler``), or
    ``astream_events(version="v2")``.
    The calls are child runs named ``primary`` and ``fallback``.

    ``threshold=``, ``scorer=`` and ``privacy=`` override the policy's
    (``routing_policy`` is the policy in force).

    The policy's privacy rule (on by default) scans the text the rules see (strings,
    messages, prompt values, and every value of a dict or list input): data it detects
    keeps the call on the primary. With ``PrivacyRule(action="redact")`` the fallback
    receives the input with detected values replaced by placeholders: strings, messages,
    prompt values and documents, also inside dicts and lists; other objects in the input
    are passed as they are.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> confident = AIMessage("Paris", response_metadata={"logprobs": {"content": [
        ...     {"token": "Paris", "logprob": -0.01, "bytes": None, "top_logprobs": []}]}})
        >>> gate = ConfidenceGate(
        ...     primary=GenericFakeChatModel(messages=iter([confident])),
        ...     fallback=GenericFakeChatModel(messages=iter([AIMessage("Paris, France")])),
        ...     threshold=-0.5,
        ... )
        >>> out = gate.invoke("What is the capital of France?")
        >>> out.content, out.response_metadata["routing"]["tier"]
        ('Paris', 'local')
    """

    primary: Runnable[Any, Any]
    """The runnable tried first (a local model, or a whole local RAG chain)."""

    fallback: Runnable[Any, Any]
    """The runnable used when the primary answer is below the threshold."""

    policy: RoutingPolicy = Field(default_factory=RoutingPolicy)
    """Every routing setting (scorer, threshold, rules, finish reasons)."""

    scorer: ConfidenceScorer | None = None
    """Overrides the policy's scorer."""

    threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Overrides the policy's threshold."""

    privacy: PrivacyRule | bool | list[Any] | None = None
    """Overrides the policy's privacy rule (False off, a list of detectors, a PrivacyRule)."""

    message_key: str | None = None
    """Key of the answer message in a dict output (default: the first message value)."""

    prices: PriceTable = Field(default_factory=PriceTable.default)
    """Prices for the decision's cost figures."""

    circuit_breaker: CircuitBreaker | None = Field(default_factory=CircuitBreaker)
    """Skips the fallback for a cool-down after repeated failures (``cloud_circuit_open``)."""

    budget: Budget | None = None
    """Caps the fallback's spending; when spent, escalations keep the primary answer."""

    raise_on_cloud_errors: frozenset[FailureKind] = frozenset()
    """Fallback failure kinds that raise ``CloudRequestError`` instead of degrading."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    def __init__(
        self,
        primary: Runnable[Any, Any],
        fallback: Runnable[Any, Any],
        scorer: ConfidenceScorer | None = None,
        threshold: float | None = None,
        policy: RoutingPolicy | None = None,
        message_key: str | None = None,
        privacy: PrivacyRule | bool | list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the gate; ``primary`` and ``fallback`` may be given positionally."""
        values: dict[str, Any] = {
            "primary": primary,
            "fallback": fallback,
            "scorer": scorer,
            "threshold": threshold,
            "message_key": message_key,
            "privacy": privacy,
        }
        if policy is not None:
            values["policy"] = policy
        super().__init__(**values, **kwargs)

    @property
    def routing_policy(self) -> RoutingPolicy:
        """The policy in force: ``policy`` with the threshold/scorer/privacy overrides."""
        return self.policy.override(
            threshold=self.threshold, scorer=self.scorer, privacy=self.privacy
        )

    # ------------------------------------------------------------------ the route

    def _start(
        self, input: Any, config: RunnableConfig, run_manager: Any, *, streaming: bool
    ) -> tuple[Flow, _GateTiers]:
        """Set up one call's flow and tier calls (shared by every driver)."""
        _check_input(input)
        policy = self.routing_policy
        context = RoutingContext.from_input(input)
        redaction = policy.redaction(context)
        route = Route(
            policy=policy,
            context=context,
            local_streams=False,
            streaming=streaming,
            find_message=functools.partial(find_message, key=self.message_key),
            prices=self.prices,
            local_label=model_label(self.primary),
            cloud_label=model_label(self.fallback),
            guards=tuple(g for g in (self.circuit_breaker, self.budget) if g is not None),
            raise_on=self.raise_on_cloud_errors,
            redaction=redaction,
        )
        fallback_input = redaction.value(input) if redaction is not None else input
        tiers = _GateTiers(self.primary, self.fallback, input, config, run_manager, fallback_input)
        route.tier_message = tiers.captured
        return route_flow(route), tiers

    def _attach(self, output: Any, decision: RouteDecision) -> Any:
        if isinstance(output, AIMessage):
            return with_routing(output, decision)
        if isinstance(output, Mapping):
            routed = dict(output)
            key = _message_key(routed, self.message_key)
            if key is not None and isinstance(routed[key], AIMessage):
                routed[key] = with_routing(routed[key], decision)
            routed["routing"] = decision.as_dict()
            return routed
        return output

    def _routing_chunk(self, streamed: Any, decision: RouteDecision) -> Any:
        """Return the chunk that ends an escalated stream, adding the decision to the answer.

        ``streamed`` is the sum of the fallback's chunks. An ``AIMessageChunk`` stream gets
        an empty chunk whose ``response_metadata`` holds the decision; a dict stream gets
        ``{"routing": ...}`` (and the decision on its message, as :meth:`_attach` does).
        Other streams (strings, whole messages) get nothing: the event carries the decision.
        """
        routing = decision.as_dict()
        if isinstance(streamed, AIMessageChunk):
            return AIMessageChunk(content="", response_metadata={"routing": routing})
        if isinstance(streamed, Mapping):
            chunk = AddableDict(routing=routing)
            key = _message_key(streamed, self.message_key)
            if key is not None and isinstance(streamed[key], AIMessageChunk):
                chunk[key] = AIMessageChunk(content="", response_metadata={"routing": routing})
            return chunk
        return None

    def _closing_chunks(self, routed: Routed) -> Iterator[Any]:
        """Yield what a decided stream ends with: the held answer, or the escalated tail."""
        for held in routed.held:
            yield self._attach(held, routed.decision)
        if not routed.held:
            tail = self._routing_chunk(routed.output, routed.decision)
            if tail is not None:
                yield tail

    # ------------------------------------------------------------------ sync

    def _invoke(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        routed = run(*self._start(input, config, run_manager, streaming=False))
        publish(run_manager, routed.decision)
        if routed.error is not None:
            raise routed.error
        return self._attach(routed.output, routed.decision)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the primary, and the fallback when the primary is not confident enough.

        Example:
            >>> gate.invoke({"question": "..."})  # doctest: +SKIP
        """
        return self._call_with_config(self._invoke, input, config, **kwargs)

    def _transform(
        self,
        inputs: Iterator[Any],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Iterator[Any]:
        final = merge_chunks(list(inputs))
        with closing(drive(*self._start(final, config, run_manager, streaming=True))) as items:
            for item in items:
                if not isinstance(item, Routed):
                    yield item
                    continue
                publish(run_manager, item.decision)
                if item.error is not None:
                    raise item.error
                yield from self._closing_chunks(item)

    def transform(
        self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Stream: the primary answer when confident, else the fallback's stream."""
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Stream the gated answer (the fallback streams chunk by chunk when chosen).

        A kept (or degraded) answer comes as one chunk carrying the decision; an escalated
        message or dict stream ends with a chunk that adds the decision to the sum.

        Example:
            >>> for chunk in gate.stream("..."):  # doctest: +SKIP
            ...     print(chunk)
        """
        yield from self.transform(iter([input]), config, **kwargs)

    # ------------------------------------------------------------------ async

    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        routed = await arun(*self._start(input, config, run_manager, streaming=False))
        await apublish(run_manager, routed.decision)
        if routed.error is not None:
            raise routed.error
        return self._attach(routed.output, routed.decision)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async twin of :meth:`invoke`.

        Example:
            >>> await gate.ainvoke("...")  # doctest: +SKIP
        """
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    async def _atransform(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[Any]:
        final = merge_chunks([chunk async for chunk in inputs])
        flow, tiers = self._start(final, config, run_manager, streaming=True)
        async with aclosing(adrive(flow, tiers)) as items:
            async for item in items:
                if not isinstance(item, Routed):
                    yield item
                    continue
                await apublish(run_manager, item.decision)
                if item.error is not None:
                    raise item.error
                for chunk in self._closing_chunks(item):
                    yield chunk

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        """Async twin of :meth:`transform`."""
        stream = cast(
            "AsyncGenerator[Any, None]",
            self._atransform_stream_with_config(input, self._atransform, config, **kwargs),
        )
        async with aclosing(stream) as chunks:
            async for chunk in chunks:
                yield chunk

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async twin of :meth:`stream`."""

        async def once() -> AsyncIterator[Any]:
            yield input

        # Closed here when the caller stops early, not left for the event loop to finalise.
        async with aclosing(self.atransform(once(), config, **kwargs)) as chunks:
            async for chunk in chunks:
                yield chunk


def _check_input(input: Any) -> None:
    """Validate a gate input that is a chat request (messages, a chat prompt, a string).

    Other inputs (a chain's dict, documents, ...) are the primary runnable's to judge.
    """
    if isinstance(input, str):
        check_text(input, "the input")
    elif isinstance(input, PromptValue):
        check_messages(input.to_messages())
    elif isinstance(input, (list, tuple)) and all(isinstance(m, BaseMessage) for m in input):
        check_messages(input)  # an empty list too: no chat model answers it


@dataclass
class _GateTiers:
    """How the gate calls its runnables: as child runs ``primary`` and ``fallback``."""

    primary: Runnable[Any, Any]
    fallback: Runnable[Any, Any]
    input: Any
    config: RunnableConfig
    run_manager: CallbackManagerForChainRun | AsyncCallbackManagerForChainRun
    fallback_input: Any
    """What the fallback receives: ``input``, redacted when a privacy rule says so."""
    captures: dict[Tier, ChatModelCapture] = field(default_factory=dict)
    """The chat-model answer seen inside each tier's last call."""

    def _config(self, tier: Tier) -> RunnableConfig:
        callbacks = self.run_manager.get_child()
        self.captures[tier] = capture = ChatModelCapture()
        callbacks.add_handler(capture, inherit=True)
        return patch_config(self.config, callbacks=callbacks, run_name=_RUN_NAMES[tier])

    def captured(self, tier: Tier) -> BaseMessage | None:
        """Return the answer of the last chat model that ended inside ``tier``'s last call."""
        capture = self.captures.get(tier)
        return capture.message if capture is not None else None

    def _runnable(self, tier: Tier) -> Runnable[Any, Any]:
        return self.primary if tier == "local" else self.fallback

    def _input(self, tier: Tier) -> Any:
        return self.input if tier == "local" else self.fallback_input

    # The gate sets no deadline (any runnable has its own timeouts): ``timeout`` is None.

    def call(self, tier: Tier, timeout: float | None = None) -> Any:
        return self._runnable(tier).invoke(self._input(tier), self._config(tier))

    def stream(self, tier: Tier, timeout: float | None = None) -> Iterator[Any]:
        return self._runnable(tier).stream(self._input(tier), self._config(tier))

    async def acall(self, tier: Tier, timeout: float | None = None) -> Any:
        return await self._runnable(tier).ainvoke(self._input(tier), self._config(tier))

    def astream(self, tier: Tier, timeout: float | None = None) -> AsyncIterator[Any]:
        return self._runnable(tier).astream(self._input(tier), self._config(tier))
