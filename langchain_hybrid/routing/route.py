"""The flow of one routed call, written once; ChatHybrid and ConfidenceGate drive it.

:func:`route_flow` is a generator that holds every routing decision: pre-routing rules,
the local attempt and its verdict (with early escalation), the cloud call, degrading to
the local answer when the cloud fails, and the one :class:`RouteDecision` of the call. It
does no I/O itself: it yields *steps* (:class:`Call`, :class:`Open`, :class:`Pull`,
:class:`Close`, :class:`Emit`) and receives their results. A driver carries the steps out:
:func:`drive` with blocking calls, :func:`adrive` with awaited ones. Both yield the chunks
the flow emits (streaming mode) and, last, the :class:`Routed` result.

Hosts describe the call in a :class:`Route` (policy, what the rules see, how the tiers are
called, how to find the answer message in a tier's output) and supply the tier calls
(:class:`TierCalls` / :class:`AsyncTierCalls`).

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> from langchain_hybrid.routing.policy import RoutingPolicy
    >>> from langchain_hybrid.routing.rules import RoutingContext
    >>> sure = AIMessage("Paris", response_metadata={"logprobs": {"content": [
    ...     {"token": "Paris", "logprob": -0.01}]}})
    >>> class Tiers:
    ...     def call(self, tier, timeout=None):
    ...         return sure if tier == "local" else AIMessage("cloud")
    ...     def stream(self, tier, timeout=None): return iter([self.call(tier)])
    >>> route = Route(policy=RoutingPolicy(), context=RoutingContext([HumanMessage("Capital?")]),
    ...               local_streams=False)
    >>> routed = run(route_flow(route), Tiers())
    >>> routed.output.content, routed.decision.tier, routed.decision.reason
    ('Paris', 'local', 'confident')
"""

from __future__ import annotations

import contextlib
import functools
import operator
import sys
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_ai_message_chunks

from langchain_hybrid._early_stop import AsyncStoppableStream, StoppableStream
from langchain_hybrid.costs import PriceTable, token_usage
from langchain_hybrid.errors import (
    BothTiersFailedError,
    CloudRequestError,
    CloudStreamBrokenError,
    ContextWindowExceededError,
    InvalidCallOptionError,
    InvalidMessagesError,
    RoutedCallError,
    UnsupportedCallOptionError,
)
from langchain_hybrid.hidden_states import hidden_vectors
from langchain_hybrid.logprobs import logprob_entries, message_logprobs
from langchain_hybrid.routing.decision import RouteDecision, RouteReason, Tier
from langchain_hybrid.routing.failures import FailureKind, failure_kind, failure_reason, warn_once
from langchain_hybrid.routing.guards import CloudGuard, CloudOutcome, Permit
from langchain_hybrid.routing.inputs import check_messages
from langchain_hybrid.routing.policy import AnswerWatch, RoutingPolicy, Verdict
from langchain_hybrid.routing.rules import Redaction, RoutingContext, RuleOutcome
from langchain_hybrid.routing.threads import ThreadMemory
from langchain_hybrid.routing.validation import AnswerSpec

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
else:  # pragma: no cover - Python 3.10
    from async_timeout import timeout as _timeout

__all__ = [
    "END",
    "AsyncTierCalls",
    "Call",
    "Close",
    "Emit",
    "Flow",
    "Open",
    "Pull",
    "Route",
    "Routed",
    "Step",
    "StreamEndedEarlyError",
    "TierCalls",
    "adrive",
    "arun",
    "check_messages",
    "drive",
    "merge_chunks",
    "message_chunk",
    "model_label",
    "route_flow",
    "run",
]


# ---------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Call:
    """Call ``tier`` once; the driver sends back its whole output.

    ``timeout`` is the seconds left of the call's deadline (None: no deadline): drivers
    hand it to the tier, and the async driver stops waiting when it runs out.
    """

    tier: Tier
    timeout: float | None = None


@dataclass(frozen=True)
class Open:
    """Open ``tier``'s stream (closing any stream still open); ``timeout`` as for Call."""

    tier: Tier
    timeout: float | None = None


@dataclass(frozen=True)
class Pull:
    """Take the next chunk of the open stream; the driver sends back :data:`END` at its end.

    ``timeout``: the seconds left of the call's deadline, or None.
    """

    timeout: float | None = None


@dataclass(frozen=True)
class Close:
    """Close the open stream before it ended (the answer stopped early).

    A tier that can stop cooperatively ends its run normally, with the usage of every
    token it computed (see :mod:`langchain_hybrid._early_stop`).
    """


@dataclass(frozen=True)
class Emit:
    """Hand ``chunk`` to the caller now (streaming mode)."""

    chunk: Any


Step = Call | Open | Pull | Close | Emit
#: A routed call's flow: yields steps, receives their results, returns the outcome.
Flow = Generator[Step, Any, "Routed"]


class _End:
    def __repr__(self) -> str:
        return "END"


#: What :class:`Pull` receives when the stream has no more chunks.
END: Any = _End()


class TierCalls(Protocol):
    """How a host calls its tiers with blocking I/O.

    ``timeout`` is the seconds left of the call's deadline (None: no deadline); hand it to
    tiers that take a timeout, since a blocking call cannot be stopped from outside.
    """

    def call(self, tier: Tier, timeout: float | None = None) -> Any:
        """Run ``tier`` on the request and return its output."""

    def stream(self, tier: Tier, timeout: float | None = None) -> Iterator[Any]:
        """Stream ``tier``'s output on the request."""


class AsyncTierCalls(Protocol):
    """How a host calls its tiers with async I/O (``timeout`` as for :class:`TierCalls`)."""

    async def acall(self, tier: Tier, timeout: float | None = None) -> Any:
        """Run ``tier`` on the request and return its output."""

    def astream(self, tier: Tier, timeout: float | None = None) -> AsyncIterator[Any]:
        """Stream ``tier``'s output on the request."""


# ---------------------------------------------------------------------------- the call


def _message_itself(output: Any) -> BaseMessage | None:
    return output if isinstance(output, BaseMessage) else None


@dataclass
class Route:
    """What the flow needs to know about one call.

    Args:
        policy: the routing policy in force.
        context: what the pre-routing rules see.
        capability: the host's own verdict on what the local tier cannot serve (e.g.
            tools it cannot call); it runs at the policy's capability stage.
        local_streams: the local tier is streamed (which lets the policy stop it early);
            else it is called once and judged on its whole output.
        streaming: the caller streams: the answer's chunks are emitted as they arrive.
        max_tokens: the local tier's token limit (exact early-escalation bounds).
        find_message: where the answer message is in a tier's output.
        prices: for the decision's cost figures.
        local_label, cloud_label: model names to price by when an answer names none.
        guards: stateful checks before each cloud call (circuit breaker, budget).
        raise_on: cloud failure kinds that raise :class:`CloudRequestError` instead of
            degrading to the local answer.
        deadline: ``time.monotonic()`` by which the whole call must end (both tiers), or
            None.
        redaction: what the policy's redacting privacy rules found; the host sends the
            cloud tier the redacted request, and the decision notes it.
        expects: what a valid answer looks like (tools bound, structured output); a
            local answer that fails it escalates (``invalid_tool_call``,
            ``invalid_structured_output``).
        tier_message: the message a tier's chat model produced in its last call (e.g.
            captured through callbacks), for tier outputs that carry none (a chain
            ending in a parser).
        thread_id, threads: the conversation thread of the call and the memory of the
            threads the cloud answered (the policy's ``sticky_escalation``).
    """

    policy: RoutingPolicy
    context: RoutingContext
    capability: RuleOutcome | None = None
    local_streams: bool = True
    streaming: bool = False
    max_tokens: int | None = None
    find_message: Callable[[Any], BaseMessage | None] = _message_itself
    prices: PriceTable = field(default_factory=PriceTable.default)
    local_label: str = ""
    cloud_label: str = ""
    guards: Sequence[CloudGuard] = ()
    raise_on: frozenset[FailureKind] = frozenset()
    deadline: float | None = None
    redaction: Redaction | None = None
    expects: AnswerSpec | None = None
    tier_message: Callable[[Tier], BaseMessage | None] | None = None
    thread_id: str | None = None
    threads: ThreadMemory | None = None

    def message_of(self, tier: Tier, output: Any) -> BaseMessage | None:
        """Return the answer message of ``tier``'s ``output`` (or of its chat model's call)."""
        message = self.find_message(output)
        if message is None and self.tier_message is not None:
            message = self.tier_message(tier)
        return message

    def time_left(self) -> float | None:
        """Seconds left until the deadline (never below 0), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@dataclass
class Routed:
    """The outcome of one call: the answer, its decision, and what is left to emit.

    ``output`` is the answering tier's output (chunks merged when it streamed); ``held``
    are the chunks of the answer that were not emitted yet (a local answer is held until
    it is judged); ``local_answer`` is the local attempt's answer message, if any.
    ``error``, when set, is what the host raises after publishing the decision: the call
    has no answer to return (``decision.failed`` is True).
    """

    output: Any
    decision: RouteDecision
    held: list[Any]
    local_answer: BaseMessage | None
    error: Exception | None = None


@dataclass
class _Attempt:
    """The local tier's attempt at the request."""

    chunks: list[Any] = field(default_factory=list)
    output: Any = None
    message: BaseMessage | None = None
    error: Exception | None = None
    latency_s: float = 0.0
    tokens_seen: int = 0

    @property
    def output_tokens(self) -> int:
        """Local tokens spent: the reported usage, else the tokens seen before stopping."""
        return token_usage(self.message)[1] or self.tokens_seen


@dataclass
class _Trip:
    """The state of one call as the flow proceeds."""

    pre: RuleOutcome | None = None
    attempt: _Attempt | None = None
    verdict: Verdict | None = None
    tier: Tier = "local"
    reason: RouteReason = "confident"
    output: Any = None
    held: list[Any] = field(default_factory=list)
    shown: bool = False
    degraded: bool = False
    cloud_latency_s: float | None = None
    cloud_error: Exception | None = None
    local_call_s: float | None = None
    escalation_reason: RouteReason | None = None
    shown_chunks: list[Any] = field(default_factory=list)
    cloud_asked: bool = False
    failure: Exception | None = None


#: Pre-routed escalations after which the local tier may still answer if the cloud fails.
_LOCAL_MAY_ANSWER = frozenset({"rule_force_cloud", "sticky_escalation"})
_LOCAL_CANNOT_SERVE = (InvalidMessagesError, InvalidCallOptionError, UnsupportedCallOptionError)


def route_flow(route: Route) -> Flow:
    """Route one call: pre-route, local attempt, verdict, cloud, degrade, decision.

    Run it with :func:`drive` / :func:`adrive` (or :func:`run` / :func:`arun`).
    """
    sticky = route.threads is not None and route.threads.escalated(route.thread_id)
    trip = _Trip(
        pre=route.policy.pre_route(route.context, route.capability, thread_escalated=sticky)
    )
    try:
        if trip.pre is not None:
            trip.tier, trip.reason = trip.pre.tier, trip.pre.reason
            if trip.tier == "local":
                yield from _answer(route, trip, "local")  # nothing else may answer: errors raise
            else:
                yield from _cloud(route, trip)
        else:
            trip.attempt = yield from _local_attempt(route, trip)
            if trip.tier == "local":
                trip.output, trip.held = trip.attempt.output, trip.attempt.chunks
            else:
                yield from _cloud(route, trip)
    except BothTiersFailedError as exc:
        trip.failure = exc
    decision = _decision(route, trip)
    if route.threads is not None and decision.tier == "cloud" and not decision.failed:
        route.threads.mark(route.thread_id)
    if isinstance(trip.failure, (BothTiersFailedError, RoutedCallError)):
        trip.failure.decision = decision
    return Routed(
        output=trip.output,
        decision=decision,
        held=trip.held,
        local_answer=trip.attempt.message if trip.attempt is not None else None,
        error=trip.failure,
    )


def _local_attempt(route: Route, trip: _Trip) -> Generator[Step, Any, _Attempt]:
    """Generate locally, judging as it goes; set the trip's verdict, tier and reason."""
    attempt = _Attempt()
    policy = route.policy
    if not all(guard.available() for guard in route.guards):
        # The cloud will not be called: let the local answer finish rather than stop it.
        early = replace(policy.early_escalation, enabled=False)
        policy = replace(policy, early_escalation=early, before_generation=None)
    watch = policy.watch(route.max_tokens, route.context, expects=route.expects)
    started = time.perf_counter()
    try:
        if route.local_streams:
            trip.verdict = yield from _watch_stream(route, attempt, watch)
            attempt.output = merge_chunks(attempt.chunks)
        else:
            attempt.output = yield Call("local", route.time_left())
            attempt.chunks = [attempt.output]
    except Exception as exc:  # noqa: BLE001 - routed to the cloud, reported in the decision
        attempt.error = exc
    attempt.latency_s = time.perf_counter() - started
    attempt.tokens_seen = watch.running.n_tokens
    if attempt.error is None:
        attempt.message = route.message_of("local", attempt.output)
        if trip.verdict is None:
            trip.verdict = watch.finish(attempt.message)
        attempt.tokens_seen = attempt.tokens_seen or trip.verdict.n_tokens
        trip.tier, trip.reason = trip.verdict.tier, trip.verdict.reason
    else:
        trip.tier, trip.reason = "cloud", _error_reason(attempt.error)
    return attempt


def _watch_stream(
    route: Route, attempt: _Attempt, watch: AnswerWatch
) -> Generator[Step, Any, Verdict | None]:
    """Pull the local stream into ``attempt``; return a verdict if it had to stop early."""
    yield Open("local", route.time_left())
    while (chunk := (yield Pull(route.time_left()))) is not END:
        attempt.chunks.append(chunk)
        message = message_chunk(chunk)
        entries = logprob_entries(message_logprobs(message))
        stopped = watch.add(entries, str(message.text), hidden_vectors(message.response_metadata))
        if stopped is not None:
            yield Close()
            return stopped
    return None


def _error_reason(error: Exception) -> RouteReason:
    if isinstance(error, ContextWindowExceededError):
        return "context_too_long"
    if isinstance(error, _LOCAL_CANNOT_SERVE):
        return "local_unsupported"
    return "local_error"


def _answer(route: Route, trip: _Trip, tier: Tier) -> Generator[Step, Any, None]:
    """Get the answer from ``tier``: streamed to the caller when streaming, else one call."""
    started = time.perf_counter()
    try:
        if route.streaming and (tier == "cloud" or route.local_streams):
            chunks: list[Any] = []
            if tier == "cloud":
                trip.shown_chunks = chunks  # what the caller got, should the stream break
            yield Open(tier, route.time_left())
            while (chunk := (yield Pull(route.time_left()))) is not END:
                if _shown(chunk):
                    trip.shown = True
                chunks.append(chunk)
                yield Emit(chunk)
                if tier == "cloud" and route.time_left() == 0.0:
                    yield Close()
                    raise TimeoutError("the call's deadline ran out while the cloud streamed")
            trip.output, trip.held = merge_chunks(chunks), []
            if tier == "cloud" and _ended_early(trip.output):
                raise StreamEndedEarlyError(
                    "the cloud's stream ended without a finish reason (connection closed early)"
                )
        else:
            trip.output = yield Call(tier, route.time_left())
            trip.held = [trip.output]
    finally:
        elapsed = time.perf_counter() - started
        if tier == "cloud":
            trip.cloud_latency_s = elapsed
        else:
            trip.local_call_s = elapsed


class StreamEndedEarlyError(ConnectionError):
    """A tier's stream ended without a finish reason: the server closed it early."""


class _CloudSkipped(RuntimeError):
    """The cloud was not called: a guard refused, or no time was left."""


def _ended_early(output: Any) -> bool:
    """Whether a streamed chat answer ended without the finish reason its provider sends.

    Only answers whose chunks name a ``model_provider`` are checked: other chat models
    (fakes, custom runnables) may never report a finish reason.
    """
    if not isinstance(output, AIMessageChunk):
        return False
    metadata = output.response_metadata
    if not metadata.get("model_provider"):
        return False
    return not any(metadata.get(key) for key in _FINISH_KEYS)


_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason")


def _cloud(route: Route, trip: _Trip) -> Generator[Step, Any, None]:
    """Answer from the cloud, through its guards; degrade to the local answer on failure.

    A cloud stream that fails after part of its answer was shown cannot be taken back: the
    call ends with :class:`CloudStreamBrokenError` (carrying the decision) instead.
    """
    trip.escalation_reason = trip.reason
    permits = _acquire(route, trip)
    if permits is None:
        assert trip.cloud_error is not None
        yield from _degrade(route, trip, trip.cloud_error)
        return
    trip.cloud_asked = True
    try:
        yield from _answer(route, trip, "cloud")
    except Exception as exc:  # noqa: BLE001 - classified, reported in the decision
        broken = trip.shown or isinstance(exc, StreamEndedEarlyError)
        kind: FailureKind = "stream_broken" if broken else failure_kind(exc)
        _release(permits, CloudOutcome(failure=kind))
        trip.cloud_error, trip.reason = exc, failure_reason(kind)
        warn_once(kind, route.cloud_label, exc)
        if trip.shown:
            trip.failure = _broken_stream_error(trip, exc)
            trip.output, trip.held = None, []
        elif kind in route.raise_on:
            trip.failure = CloudRequestError(
                f"The cloud tier failed ({kind}): {type(exc).__name__}: {exc}. Not degrading "
                f"to the local answer because raise_on_cloud_errors includes {kind!r}.",
                cloud_error=exc,
                local_answer=trip.attempt.message if trip.attempt else None,
            )
            trip.failure.__cause__ = exc
        else:
            yield from _degrade(route, trip, exc)
        return
    _release(permits, _cloud_outcome(route, trip))


def _acquire(route: Route, trip: _Trip) -> list[Permit] | None:
    """Ask each guard for leave to call the cloud; on a refusal, say why in the trip."""
    if route.deadline is not None and route.time_left() == 0.0:
        trip.reason = "cloud_timeout"
        trip.cloud_error = _CloudSkipped("the call's deadline left no time for the cloud tier")
        return None
    permits: list[Permit] = []
    for guard in route.guards:
        permit = guard.acquire()
        if permit is None:
            _release(permits, None)
            trip.reason = guard.reason
            trip.cloud_error = _CloudSkipped(f"cloud skipped: {guard.reason} ({guard!r})")
            return None
        permits.append(permit)
    return permits


def _release(permits: list[Permit], outcome: CloudOutcome | None) -> None:
    for permit in permits:
        permit.release(outcome)


def _cloud_outcome(route: Route, trip: _Trip) -> CloudOutcome:
    """Return what the cloud's answer cost, for the guards."""
    if not route.guards:
        return CloudOutcome()
    answer = route.message_of("cloud", trip.output)
    prompt, completion = token_usage(answer)
    name = _model_name(answer, route.cloud_label)
    return CloudOutcome(
        cost_usd=route.prices.cost_of(name, prompt, completion), tokens=prompt + completion
    )


def _broken_stream_error(trip: _Trip, cause: Exception) -> CloudStreamBrokenError:
    partial = merge_chunks(trip.shown_chunks)
    text = str(partial.text) if isinstance(partial, BaseMessage) else str(partial or "")
    local = trip.attempt.message if trip.attempt is not None else None
    error = CloudStreamBrokenError(
        f"The cloud's streamed answer broke after {len(text)} characters were sent "
        f"({type(cause).__name__}: {cause}). Retry the call, or use the error's "
        "local_answer" + (" (the local tier's answer is attached)." if local else "."),
        partial_text=text,
        cloud_error=cause,
        local_answer=local,
    )
    error.__cause__ = cause
    return error


def _degrade(route: Route, trip: _Trip, cloud_error: Exception) -> Generator[Step, Any, None]:
    """Answer locally after the cloud failed: the finished attempt, or a new local call."""
    attempt = trip.attempt
    if attempt is not None and attempt.error is not None:
        raise BothTiersFailedError(attempt.error, cloud_error) from cloud_error
    if trip.pre is not None and trip.escalation_reason not in _LOCAL_MAY_ANSWER:
        not_asked = RuntimeError(f"the local tier was not asked ({trip.escalation_reason})")
        raise BothTiersFailedError(not_asked, cloud_error) from cloud_error
    trip.degraded = True
    if attempt is not None and trip.verdict is not None and not trip.verdict.early_abort:
        trip.output, trip.held = attempt.output, attempt.chunks
        return
    try:
        yield from _answer(route, trip, "local")
    except Exception as exc:
        raise BothTiersFailedError(exc, cloud_error) from cloud_error


# ---------------------------------------------------------------------------- the decision


def _decision(route: Route, trip: _Trip) -> RouteDecision:
    """Build the one record of the call."""
    attempt, verdict = trip.attempt, trip.verdict
    answered_tier: Tier = "cloud" if trip.tier == "cloud" and not trip.degraded else "local"
    answer = route.message_of(answered_tier, trip.output)
    answered_by_cloud = trip.tier == "cloud" and not trip.degraded
    cloud_name = _model_name(answer if answered_by_cloud else None, route.cloud_label)
    tokens = token_usage(answer)
    avoided = 0.0
    if answered_by_cloud:
        cost = route.prices.cost_of(cloud_name, *tokens)
    else:
        cost = route.prices.local_cost_of(_model_name(answer, route.local_label), *tokens)
        if trip.tier == "local" and cloud_name:
            # What the cloud would have charged for the same prompt and answer length.
            avoided = max(0.0, route.prices.cost_of(cloud_name, *tokens) - cost)
    local_tokens = attempt.output_tokens if attempt is not None else 0
    if trip.local_call_s is not None:
        local_tokens += tokens[1]  # the local tier answered in a call of its own
    confidence = verdict.confidence if verdict is not None else None
    usage = getattr(answer, "usage_metadata", None)
    return RouteDecision(
        tier="local" if trip.degraded else trip.tier,
        reason=trip.reason,
        confidence=confidence.score if confidence is not None else None,
        threshold=(
            verdict.threshold
            if verdict is not None and verdict.threshold is not None
            else route.policy.threshold
        ),
        features=dict(confidence.features) if confidence is not None else {},
        escalated=attempt is not None and trip.cloud_asked,
        degraded=trip.degraded,
        early_abort=verdict is not None and verdict.early_abort,
        local_latency_s=_sum(attempt.latency_s if attempt else None, trip.local_call_s),
        cloud_latency_s=trip.cloud_latency_s,
        cost_usd=cost,
        cost_avoided_usd=avoided,
        policy_version=route.policy.version,
        scorer=route.policy.scorer.name,
        local_output_tokens=local_tokens,
        rule=trip.pre.rule_name if trip.pre is not None else None,
        error=_error_text(trip),
        finish_reason=verdict.finish_reason if verdict is not None else None,
        usage=dict(usage) if usage else None,
        escalation_reason=trip.escalation_reason,
        failed=trip.failure is not None,
        privacy=_privacy_note(route, trip),
        model=_model_name(answer, route.cloud_label if answered_by_cloud else route.local_label)
        or None,
    )


def _privacy_note(route: Route, trip: _Trip) -> dict[str, Any] | None:
    """Return the decision's ``privacy`` field: which privacy rule fired, how, and on what."""
    pre = trip.pre
    if pre is not None and pre.detectors:
        return {"rule": pre.rule_name, "action": "local", "detectors": list(pre.detectors)}
    return route.redaction.note() if route.redaction is not None else None


def _error_text(trip: _Trip) -> str | None:
    parts = []
    if trip.attempt is not None and trip.attempt.error is not None:
        parts.append(f"local: {type(trip.attempt.error).__name__}: {trip.attempt.error}")
    if trip.verdict is not None and trip.verdict.invalid is not None:
        parts.append(f"local: {trip.verdict.reason}: {trip.verdict.invalid}")
    if trip.cloud_error is not None:
        parts.append(f"cloud: {type(trip.cloud_error).__name__}: {trip.cloud_error}")
    return "; ".join(parts) or None


def _sum(*parts: float | None) -> float | None:
    """Add the latencies that happened; None when none did."""
    present = [p for p in parts if p is not None]
    return sum(present) if present else None


def _model_name(message: BaseMessage | None, fallback: str) -> str:
    """Return the model that produced ``message`` (from its metadata), else ``fallback``."""
    if message is not None:
        name = message.response_metadata.get("model_name") or message.response_metadata.get("model")
        if name:
            return str(name)
    return fallback


def model_label(runnable: Any) -> str:
    """Name a tier by its model (``model_name``, ``model``, ``model_id``), else ``""``.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> model_label(FakeListChatModel(responses=["x"]))
        ''
    """
    for attr in ("model_name", "model", "model_id"):
        value = getattr(runnable, attr, None)
        if isinstance(value, str) and value:
            return value
    return ""


# ---------------------------------------------------------------------------- chunks


def message_chunk(chunk: Any) -> AIMessageChunk:
    """Return ``chunk``, which a chat-model tier streamed; ``TypeError`` if it is no message chunk.

    Example:
        >>> message_chunk(AIMessageChunk("Hi")).content
        'Hi'
    """
    if not isinstance(chunk, AIMessageChunk):
        raise TypeError(f"A tier streamed {type(chunk).__name__}; expected AIMessageChunk.")
    return chunk


def _shown(chunk: Any) -> bool:
    """Whether an emitted chunk showed any of the answer (text or a tool call)."""
    if isinstance(chunk, AIMessageChunk):
        return bool(chunk.content or chunk.tool_call_chunks)
    return True


def merge_chunks(chunks: list[Any]) -> Any:
    """Add streamed chunks up, as LangChain does (message chunks in one pass); None if none.

    Example:
        >>> merge_chunks([AIMessageChunk("Pa"), AIMessageChunk("ris")]).content
        'Paris'
        >>> merge_chunks(["a", "b"]), merge_chunks([])
        ('ab', None)
    """
    if not chunks:
        return None
    if all(isinstance(c, AIMessageChunk) for c in chunks):
        return add_ai_message_chunks(chunks[0], *chunks[1:])
    return functools.reduce(operator.add, chunks)


# ---------------------------------------------------------------------------- drivers


class _Steps:
    """The flow's steps, each sent the outcome of the one before: what both drivers share."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.result: Routed | None = None
        self._reply: Any = None
        self._error: Exception | None = None

    def __iter__(self) -> _Steps:
        return self

    def __next__(self) -> Step:
        reply, error = self._reply, self._error
        self._reply, self._error = None, None
        try:
            return self.flow.throw(error) if error is not None else self.flow.send(reply)
        except StopIteration as done:
            self.result = done.value
            raise StopIteration from None

    def reply(self, value: Any) -> None:
        """Send ``value`` to the flow with the next step."""
        self._reply = value

    def fail(self, error: Exception) -> None:
        """Throw ``error`` into the flow with the next step (the flow decides)."""
        self._error = error

    @property
    def stream_over(self) -> bool:
        """Whether the open stream ended or failed (the driver closes it)."""
        return self._reply is END or self._error is not None


def drive(flow: Flow, calls: TierCalls) -> Generator[Any, None, None]:
    """Carry out the flow's steps with blocking calls.

    Yields each chunk the flow emits, then the :class:`Routed` result. Exceptions of a
    call are thrown into the flow; an open stream is closed when it ends, when the flow
    closes it, when the flow finishes or fails, and when the caller stops iterating.
    """
    steps, stream = _Steps(flow), None
    try:
        for step in steps:
            if not isinstance(step, Emit):
                stream = _perform(step, steps, calls, stream)
                continue
            yield step.chunk
        yield steps.result
    finally:
        _close(stream)
        flow.close()


def _perform(step: Step, steps: _Steps, calls: TierCalls, stream: Any) -> Any:
    """Carry out one I/O step; return the stream open after it."""
    try:
        if isinstance(step, Call):
            steps.reply(calls.call(step.tier, step.timeout))
        elif isinstance(step, Pull):
            steps.reply(next(_opened(stream), END))
        else:
            _close(stream)
            stream = _opening(step, calls.stream, StoppableStream)
    except Exception as exc:  # noqa: BLE001 - thrown into the flow, which decides
        steps.fail(exc)
    if steps.stream_over:
        _close(stream)
        return None
    return stream


async def adrive(flow: Flow, calls: AsyncTierCalls) -> AsyncGenerator[Any, None]:
    """Async twin of :func:`drive`: the same flow, with awaited calls."""
    steps, stream = _Steps(flow), None
    try:
        for step in steps:
            if not isinstance(step, Emit):
                stream = await _aperform(step, steps, calls, stream)
                continue
            yield step.chunk
        yield steps.result
    finally:
        await _aclose(stream)
        flow.close()


async def _aperform(step: Step, steps: _Steps, calls: AsyncTierCalls, stream: Any) -> Any:
    """Async twin of :func:`_perform`; a call or pull stops waiting at its ``timeout``."""
    try:
        async with _within(step.timeout if isinstance(step, (Call, Pull)) else None):
            if isinstance(step, Call):
                steps.reply(await calls.acall(step.tier, step.timeout))
            elif isinstance(step, Pull):
                steps.reply(await anext(_opened(stream), END))
            else:
                await _aclose(stream)
                stream = _opening(step, calls.astream, AsyncStoppableStream)
    except Exception as exc:  # noqa: BLE001 - thrown into the flow, which decides
        steps.fail(exc)
    if steps.stream_over:
        await _aclose(stream)
        return None
    return stream


_S = TypeVar("_S")


def _opened(stream: _S | None) -> _S:
    assert stream is not None, "Pull without an open stream"
    return stream


def _opening(step: Step, open_stream: Callable[[Tier, float | None], Any], wrap: Any) -> Any:
    """Return the stream an :class:`Open` step opens, wrapped to stop cooperatively; else None."""
    return wrap(open_stream(step.tier, step.timeout)) if isinstance(step, Open) else None


def _within(timeout: float | None) -> AbstractAsyncContextManager[Any]:
    """Stop waiting after ``timeout`` seconds (``TimeoutError``); no limit when None."""
    return _timeout(timeout) if timeout is not None else contextlib.nullcontext()


def run(flow: Flow, calls: TierCalls) -> Routed:
    """Drive a non-streaming flow to its result (it emits nothing)."""
    return _routed_of(list(drive(flow, calls)))


async def arun(flow: Flow, calls: AsyncTierCalls) -> Routed:
    """Async twin of :func:`run`."""
    return _routed_of([item async for item in adrive(flow, calls)])


def _routed_of(items: list[Any]) -> Routed:
    if len(items) != 1 or not isinstance(items[0], Routed):
        raise AssertionError(f"a non-streaming route emitted chunks: {items[:-1]!r}")
    return items[0]


def _close(stream: Iterator[Any] | None) -> None:
    """Close ``stream`` if there is one."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


async def _aclose(stream: AsyncIterator[Any] | None) -> None:
    """Async twin of :func:`_close`."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
