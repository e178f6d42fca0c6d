"""ConfidenceGate: the confidence gate as an LCEL Runnable around any two runnables."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from langchain_core.runnables.utils import AddableDict
from pydantic import ConfigDict, model_validator

from langchain_hybrid.costs import PriceTable
from langchain_hybrid.logprobs import message_logprobs
from langchain_hybrid.routing.confidence import Confidence, ConfidenceScorer, MeanLogprobScorer
from langchain_hybrid.routing.decision import RouteDecision, RouteReason, Tier
from langchain_hybrid.routing.policy import RoutingPolicy
from langchain_hybrid.routing.surfaces import (
    apublish,
    message_text,
    model_name_of,
    priced,
    publish,
    with_routing,
)

#: Threshold on the mean token log-prob used when neither ``threshold`` nor ``policy`` is given.
DEFAULT_THRESHOLD = -0.6


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

    The gate scores the primary output's log-probs (an ``AIMessage``, or a dict that
    carries one, such as a RAG chain's ``{"context", "answer"}``) with the policy's
    scorer, and returns it when the confidence reaches the threshold; otherwise it
    runs ``fallback`` on the same input. If the fallback fails, the primary output is
    returned with ``degraded=True``. The decision is the same :class:`RouteDecision`
    as ChatHybrid's (tier "local" = primary, "cloud" = fallback): it is attached to
    an ``AIMessage`` output's ``response_metadata["routing"]``, added as a
    ``"routing"`` key to a dict output, sent as the ``hybrid_route`` callback event,
    and written to the LangSmith run's metadata. The calls are child runs named
    ``primary`` and ``fallback``.

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

    scorer: ConfidenceScorer | None = None
    """Confidence scorer (default: mean token log-prob, or the policy's); overrides the
    policy's when both are given."""

    threshold: float | None = None
    """Confidence threshold; overrides the policy's when both are given."""

    policy: RoutingPolicy | None = None
    """Scorer and threshold from calibration (pre-routing rules are not applied here)."""

    message_key: str | None = None
    """Key of the answer message in a dict output (default: the first message value)."""

    prices: PriceTable | None = None
    """Prices for the decision's cost figures (default: the built-in table)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(
        self,
        primary: Runnable[Any, Any],
        fallback: Runnable[Any, Any],
        scorer: ConfidenceScorer | None = None,
        threshold: float | None = None,
        policy: RoutingPolicy | None = None,
        message_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the gate; ``primary`` and ``fallback`` may be given positionally."""
        values: dict[str, Any] = {
            "primary": primary,
            "fallback": fallback,
            "scorer": scorer,
            "threshold": threshold,
            "policy": policy,
            "message_key": message_key,
        }
        super().__init__(**values, **kwargs)

    @model_validator(mode="after")
    def _configure(self) -> ConfidenceGate:
        if self.policy is None:
            self.policy = RoutingPolicy(
                threshold=self.threshold if self.threshold is not None else DEFAULT_THRESHOLD,
                scorer=self.scorer or MeanLogprobScorer(),
            )
        elif self.threshold is not None or self.scorer is not None:
            self.policy = RoutingPolicy(
                threshold=self.threshold if self.threshold is not None else self.policy.threshold,
                scorer=self.scorer or self.policy.scorer,
                rules=list(self.policy.rules),
                version=self.policy.version,
                fitted_on=self.policy.fitted_on,
            )
        self.threshold = self.policy.threshold
        self.scorer = self.policy.scorer
        if self.prices is None:
            self.prices = PriceTable.default()
        return self

    @property
    def _policy(self) -> RoutingPolicy:
        assert self.policy is not None
        return self.policy

    # ------------------------------------------------------------------ decision

    def _score(self, output: Any) -> tuple[Confidence, Tier, RouteReason]:
        message = find_message(output, self.message_key)
        if message is None:
            confidence = self._policy.scorer.score(None, "")
        else:
            confidence = self._policy.scorer.score(message_logprobs(message), message_text(message))
        tier, reason = self._policy.decide(confidence)
        return confidence, tier, reason

    def _decision(
        self,
        confidence: Confidence,
        tier: Tier,
        reason: RouteReason,
        answer: Any,
        primary_latency: float,
        fallback_latency: float | None,
        error: BaseException | None,
    ) -> RouteDecision:
        assert self.prices is not None
        degraded = error is not None
        message = find_message(answer, self.message_key)
        cost = 0.0
        if tier == "cloud" and not degraded:
            cost = priced(self.prices, model_name_of(message, ""), message)
        return RouteDecision(
            tier="local" if degraded else tier,
            reason=reason,
            confidence=confidence.score,
            threshold=self._policy.threshold,
            features=dict(confidence.features),
            escalated=tier == "cloud",
            degraded=degraded,
            local_latency_s=primary_latency,
            cloud_latency_s=fallback_latency,
            cost_usd=cost,
            policy_version=self._policy.version,
            scorer=self._policy.scorer.name,
            local_output_tokens=int(confidence.features.get("n_tokens", 0)),
            error=str(error) if error is not None else None,
        )

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

    # ------------------------------------------------------------------ sync

    def _route(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> tuple[Any, RouteDecision]:
        started = time.perf_counter()
        primary_out = self.primary.invoke(
            input, patch_config(config, callbacks=run_manager.get_child(), run_name="primary")
        )
        primary_latency = time.perf_counter() - started
        confidence, tier, reason = self._score(primary_out)
        answer, fallback_latency, error = primary_out, None, None
        if tier == "cloud":
            started = time.perf_counter()
            try:
                answer = self.fallback.invoke(
                    input,
                    patch_config(config, callbacks=run_manager.get_child(), run_name="fallback"),
                )
            except Exception as exc:  # noqa: BLE001 - degrade to the primary answer
                answer, error = primary_out, exc
            fallback_latency = time.perf_counter() - started
        decision = self._decision(
            confidence, tier, reason, answer, primary_latency, fallback_latency, error
        )
        publish(run_manager, decision)
        return self._attach(answer, decision), decision

    def _invoke(
        self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        return self._route(input, run_manager, config)[0]

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
        final: Any = None
        got = False
        for chunk in inputs:
            final = chunk if not got else final + chunk
            got = True
        started = time.perf_counter()
        primary_out = self.primary.invoke(
            final, patch_config(config, callbacks=run_manager.get_child(), run_name="primary")
        )
        primary_latency = time.perf_counter() - started
        confidence, tier, reason = self._score(primary_out)
        if tier == "local":
            decision = self._decision(
                confidence, tier, reason, primary_out, primary_latency, None, None
            )
            publish(run_manager, decision)
            yield self._attach(primary_out, decision)
            return
        started = time.perf_counter()
        streamed: Any = None
        error: BaseException | None = None
        try:
            for chunk in self.fallback.stream(
                final, patch_config(config, callbacks=run_manager.get_child(), run_name="fallback")
            ):
                streamed = chunk if streamed is None else streamed + chunk
                yield chunk
        except Exception as exc:
            if streamed is not None:
                raise  # part of the fallback answer is already out
            error = exc
        decision = self._decision(
            confidence,
            tier,
            reason,
            primary_out if error else streamed,
            primary_latency,
            time.perf_counter() - started,
            error,
        )
        publish(run_manager, decision)
        if error is not None:
            yield self._attach(primary_out, decision)
            return
        tail = self._routing_chunk(streamed, decision)
        if tail is not None:
            yield tail

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
        started = time.perf_counter()
        primary_out = await self.primary.ainvoke(
            input, patch_config(config, callbacks=run_manager.get_child(), run_name="primary")
        )
        primary_latency = time.perf_counter() - started
        confidence, tier, reason = self._score(primary_out)
        answer, fallback_latency, error = primary_out, None, None
        if tier == "cloud":
            started = time.perf_counter()
            try:
                answer = await self.fallback.ainvoke(
                    input,
                    patch_config(config, callbacks=run_manager.get_child(), run_name="fallback"),
                )
            except Exception as exc:  # noqa: BLE001 - degrade to the primary answer
                answer, error = primary_out, exc
            fallback_latency = time.perf_counter() - started
        decision = self._decision(
            confidence, tier, reason, answer, primary_latency, fallback_latency, error
        )
        await apublish(run_manager, decision)
        return self._attach(answer, decision)

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
        final: Any = None
        got = False
        async for chunk in inputs:
            final = chunk if not got else final + chunk
            got = True
        started = time.perf_counter()
        primary_out = await self.primary.ainvoke(
            final, patch_config(config, callbacks=run_manager.get_child(), run_name="primary")
        )
        primary_latency = time.perf_counter() - started
        confidence, tier, reason = self._score(primary_out)
        if tier == "local":
            decision = self._decision(
                confidence, tier, reason, primary_out, primary_latency, None, None
            )
            await apublish(run_manager, decision)
            yield self._attach(primary_out, decision)
            return
        started = time.perf_counter()
        streamed: Any = None
        error: BaseException | None = None
        try:
            async for chunk in self.fallback.astream(
                final, patch_config(config, callbacks=run_manager.get_child(), run_name="fallback")
            ):
                streamed = chunk if streamed is None else streamed + chunk
                yield chunk
        except Exception as exc:
            if streamed is not None:
                raise
            error = exc
        decision = self._decision(
            confidence,
            tier,
            reason,
            primary_out if error else streamed,
            primary_latency,
            time.perf_counter() - started,
            error,
        )
        await apublish(run_manager, decision)
        if error is not None:
            yield self._attach(primary_out, decision)
            return
        tail = self._routing_chunk(streamed, decision)
        if tail is not None:
            yield tail

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async twin of :meth:`transform`."""
        async for chunk in self._atransform_stream_with_config(
            input, self._atransform, config, **kwargs
        ):
            yield chunk

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async twin of :meth:`stream`."""

        async def once() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(once(), config, **kwargs):
            yield chunk
