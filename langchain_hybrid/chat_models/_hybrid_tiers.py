"""How one routed ChatHybrid call reaches its tiers: child runs named after each tier.

:class:`HybridTiers` is what the route's drivers call (``call``/``stream`` and their async
twins): each tier runs as a child run named ``local`` or ``cloud`` with the call's stop
sequences and options; the cloud gets the redacted messages when a privacy rule says so,
and a tier that takes a per-call ``timeout`` gets what is left of the call's deadline.
:func:`local_options` and :func:`token_counter` say what the local tier needs besides.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from langchain_core.messages import HumanMessage
    >>> fake = FakeListChatModel(responses=["Paris"])
    >>> tiers = HybridTiers(fake, fake, [HumanMessage("Capital?")], None, {}, None,
    ...                     [HumanMessage("Capital?")])
    >>> tiers.call("local").content
    'Paris'
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig

from langchain_hybrid._callbacks import aiter_nested, iter_nested, nested
from langchain_hybrid.routing.decision import Tier
from langchain_hybrid.routing.policy import RoutingPolicy

__all__ = ["HybridTiers", "local_options", "takes_timeout", "token_counter"]

# A tier told "no time left" would fail at once; give it a moment to return what it has.
_MIN_TIMEOUT_S = 0.05


@dataclass
class HybridTiers:
    """How ChatHybrid calls its tiers for one request: as child runs named after the tier."""

    local: Runnable[LanguageModelInput, BaseMessage]
    cloud: Runnable[LanguageModelInput, BaseMessage]
    messages: list[BaseMessage]
    stop: list[str] | None
    kwargs: dict[str, Any]
    callbacks: CallbackManager | AsyncCallbackManager | None
    cloud_messages: list[BaseMessage]
    """What the cloud tier receives: ``messages``, redacted when a privacy rule says so."""
    local_refusal: Exception | None = None
    """What a local call raises instead (a required tool call the local tier cannot make)."""
    local_kwargs: dict[str, Any] = field(default_factory=dict)
    """Call options for the local tier only (e.g. the alternatives a scorer needs)."""
    output_format: Mapping[str, Any] | None = None
    """The structured-output format of the request, recorded on both tier runs."""

    def _runnable(self, tier: Tier) -> Runnable[LanguageModelInput, BaseMessage]:
        if tier == "local" and self.local_refusal is not None:
            raise self.local_refusal
        return self.local if tier == "local" else self.cloud

    def _arguments(self, tier: Tier, timeout: float | None) -> tuple[Any, ...]:
        """Return the tier's runnable, its input, its config and its call options."""
        runnable = self._runnable(tier)
        kwargs = {**self.kwargs, **self.local_kwargs} if tier == "local" else dict(self.kwargs)
        kwargs["stop"] = self.stop
        if self.output_format is not None:
            kwargs["ls_structured_output_format"] = self.output_format
        if timeout is not None and takes_timeout(runnable):
            kwargs["timeout"] = max(timeout, _MIN_TIMEOUT_S)
        messages = self.messages if tier == "local" else self.cloud_messages
        config: RunnableConfig = {"callbacks": self.callbacks, "run_name": tier}
        return runnable, messages, config, kwargs

    def call(self, tier: Tier, timeout: float | None = None) -> BaseMessage:
        """Run ``tier`` on the request."""
        runnable, messages, config, kwargs = self._arguments(tier, timeout)
        with nested(self.callbacks):
            return runnable.invoke(messages, config, **kwargs)  # type: ignore[no-any-return]

    def stream(self, tier: Tier, timeout: float | None = None) -> Iterator[BaseMessage]:
        """Stream ``tier``'s answer to the request."""
        runnable, messages, config, kwargs = self._arguments(tier, timeout)
        return iter_nested(runnable.stream(messages, config, **kwargs), self.callbacks)

    async def acall(self, tier: Tier, timeout: float | None = None) -> BaseMessage:
        """Async twin of :meth:`call`."""
        runnable, messages, config, kwargs = self._arguments(tier, timeout)
        with nested(self.callbacks):
            return await runnable.ainvoke(messages, config, **kwargs)  # type: ignore[no-any-return]

    def astream(self, tier: Tier, timeout: float | None = None) -> AsyncIterator[BaseMessage]:
        """Async twin of :meth:`stream`."""
        runnable, messages, config, kwargs = self._arguments(tier, timeout)
        return aiter_nested(runnable.astream(messages, config, **kwargs), self.callbacks)


def takes_timeout(runnable: Any) -> bool:
    """Whether a tier (a chat model, possibly bound) takes a per-call ``timeout=``.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> takes_timeout(FakeListChatModel(responses=["x"]))
        False
    """
    while isinstance(runnable, RunnableBinding):
        runnable = runnable.bound
    if not isinstance(runnable, BaseChatModel):
        return False
    return any(
        name == "timeout" or info.alias == "timeout"
        for name, info in type(runnable).model_fields.items()
    )


def local_options(
    local: BaseChatModel, policy: RoutingPolicy, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Ask the local tier for what the policy reads: alternatives, hidden states.

    A margin-reading scorer (``margin``, or a learned one weighting it) judges every
    answer without alternatives as ``no_logprobs``; a local tier that takes
    ``top_logprobs`` but was built with fewer than 2 gets 2 on the calls made for it.
    A policy that reads hidden states (:attr:`RoutingPolicy.reads_hidden_states`) asks a
    local tier that can report them (``ChatTransformers``) for them.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> local_options(FakeListChatModel(responses=["x"]), RoutingPolicy(), {})
        {}
    """
    fields = type(local).model_fields
    options: dict[str, Any] = {}
    if policy.reads_hidden_states and "hidden_states" in fields and "hidden_states" not in kwargs:
        options["hidden_states"] = True
    few = (getattr(local, "top_logprobs", None) or 0) < 2
    if policy.scorer.needs_top_logprobs and "top_logprobs" in fields and few:
        options.setdefault("top_logprobs", 2)
    if "top_logprobs" in kwargs:
        options.pop("top_logprobs", None)
    return options


def token_counter(local: BaseChatModel) -> Callable[[list[BaseMessage]], int] | None:
    """Return the local tier's own token counter, if it has one (its tokenizer's).

    Other counters (ChatOpenAI's tiktoken) may fetch files from the network or be wrong
    for the local model, so the context rules do without them.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> token_counter(FakeListChatModel(responses=["x"])) is None
        True
    """
    if "get_num_tokens_from_messages" in type(local).__dict__:
        return local.get_num_tokens_from_messages
    return None
