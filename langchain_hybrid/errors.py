"""Typed errors raised by langchain-hybrid; each message says what to do about it."""

from __future__ import annotations

from typing import Any


class LangChainHybridError(Exception):
    """Base class of every error this package raises on purpose."""


class PolicyError(LangChainHybridError, ValueError):
    """A routing policy (or its file) is invalid; the message says what is wrong and what to do.

    Example:
        >>> from langchain_hybrid import RoutingPolicy
        >>> try:
        ...     RoutingPolicy.from_dict({"format_version": 99, "threshold": -1.0})
        ... except PolicyError as e:
        ...     print(str(e).split(";")[0])
        policy format_version 99 is not supported (this langchain-hybrid reads 1 and 2)
    """


class ModelNotAvailableError(LangChainHybridError, RuntimeError):
    """The requested local model cannot be found or loaded."""


class EngineSettingError(LangChainHybridError, RuntimeError):
    """A local engine setting this machine cannot honour (4-bit weights without a GPU...)."""


class InvalidMessagesError(LangChainHybridError, ValueError):
    """The messages cannot be turned into a prompt (empty list, unknown role, non-text content)."""


class ChatTemplateMissingError(LangChainHybridError, ValueError):
    """The tokenizer has no chat template and none was given with ``chat_template=``."""


class ContextWindowExceededError(LangChainHybridError, ValueError):
    """The prompt plus ``max_tokens`` does not fit the local model's context window."""


class UnsupportedCallOptionError(LangChainHybridError, TypeError):
    """A call option (``llm.invoke(..., option=...)``) that this model does not support."""


class InvalidCallOptionError(LangChainHybridError, ValueError):
    """A call option with a value out of its range or of the wrong type (``temperature=-1``).

    Example:
        >>> from langchain_hybrid.routing.inputs import check_call_options
        >>> try:
        ...     check_call_options({"temperature": -1})
        ... except ValueError as e:
        ...     print(type(e).__name__, str(e).split(";")[0])
        InvalidCallOptionError temperature must be a number in [0, 2], got -1
    """


class BothTiersFailedError(LangChainHybridError, RuntimeError):
    r"""Neither the local nor the cloud tier could answer; both causes are attached.

    The message gives advice that fits each cause: a bad request is fixed in the
    request, a rejected key by checking the key, a timeout by a longer timeout, ...

    Attributes:
        local_error: why the local tier could not answer.
        cloud_error: why the cloud tier could not answer.

    Example:
        >>> err = BothTiersFailedError(RuntimeError("out of memory"), TimeoutError("timed out"))
        >>> print(str(err).split("To fix: ")[1].replace("; ", ";\n"))
        local: do what its error says;
        cloud: the call timed out: raise the cloud model's timeout or retry later.
    """

    #: The call's RouteDecision when the route got far enough to make one.
    decision: Any = None

    def __init__(self, local_error: BaseException, cloud_error: BaseException) -> None:
        self.local_error = local_error
        self.cloud_error = cloud_error
        super().__init__(
            "Both tiers failed. Local: "
            f"{type(local_error).__name__}: {local_error}. Cloud: "
            f"{type(cloud_error).__name__}: {cloud_error}. To fix: "
            f"local: {_advice(local_error, 'local')}; cloud: {_advice(cloud_error, 'cloud')}."
        )


class RoutedCallError(LangChainHybridError, RuntimeError):
    """A routed call that returned no answer; ``decision`` says what happened.

    The ``hybrid_route`` event and :class:`~langchain_hybrid.RoutingStatsHandler` have
    counted the call (``decision.failed`` is True) before this is raised.

    Attributes:
        decision: the call's :class:`~langchain_hybrid.routing.decision.RouteDecision`.
        cloud_error: the cloud tier's error.
        local_answer: the local tier's answer, when it gave one (e.g. to show instead).
    """

    def __init__(
        self,
        message: str,
        *,
        decision: Any = None,
        cloud_error: BaseException | None = None,
        local_answer: Any = None,
    ) -> None:
        super().__init__(message)
        self.decision = decision
        self.cloud_error = cloud_error
        self.local_answer = local_answer


class CloudStreamBrokenError(RoutedCallError):
    """The cloud's streamed answer broke after part of it was already sent to the caller.

    Text already streamed cannot be taken back, so the call ends with this error rather
    than a mix of two answers. ``partial_text`` is what the caller received; retry the
    call, or show ``local_answer`` (the local tier's answer, when there was one).

    Attributes:
        partial_text: the text of the cloud answer that was streamed before the break.
    """

    def __init__(self, message: str, *, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


class CloudRequestError(RoutedCallError):
    """The cloud failed with a kind of error the model was told to raise, not degrade on.

    Raised for the failure kinds in ``ChatHybrid(raise_on_cloud_errors=...)`` (e.g.
    ``{"auth"}``: a wrong API key raises instead of silently answering locally). The
    original error is ``cloud_error`` (and ``__cause__``).
    """


_REQUEST_ERRORS = (InvalidMessagesError, InvalidCallOptionError, UnsupportedCallOptionError)


def http_status(error: BaseException) -> int | None:
    """Return the HTTP status of an API error, if any.

    Reads ``status_code`` from the error (the openai SDK's errors) or from its
    ``response`` (httpx's ``HTTPStatusError``).

    Example:
        >>> class RateLimited(Exception):
        ...     status_code = 429
        >>> http_status(RateLimited()), http_status(ValueError())
        (429, None)
    """
    for holder in (error, getattr(error, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _advice(error: BaseException, tier: str) -> str:
    """Return what to do about one tier's failure, by its cause."""
    name = type(error).__name__
    status = http_status(error)
    if isinstance(error, _REQUEST_ERRORS):
        return "the request is invalid: fix it as its error says (this is not an outage)"
    if isinstance(error, ContextWindowExceededError):
        return "shorten the prompt or lower max_tokens"
    if status in (401, 403) or "Authentication" in name or "PermissionDenied" in name:
        return f"the {tier} model rejected its credentials: check its API key and permissions"
    if status == 429 or "RateLimit" in name:
        return "rate limited: retry later, send fewer requests at once, or raise the quota"
    if isinstance(error, TimeoutError) or "Timeout" in name:
        return f"the call timed out: raise the {tier} model's timeout or retry later"
    if status == 400 or "BadRequest" in name:
        return f"the {tier} model rejected the request: check the options and messages sent"
    if isinstance(error, ConnectionError) or "Connection" in name:
        return f"the {tier} model could not be reached: check the network and its base_url"
    if status is not None and status >= 500:
        return f"the {tier} service failed: retry later"
    if tier == "local":
        return "do what its error says"
    return "check the cloud model's settings, credentials and network"


class DatasetError(LangChainHybridError, ValueError):
    r"""A dataset or records file cannot be read; the message names the file and line.

    Example:
        >>> import os, tempfile
        >>> from langchain_hybrid.evaluation import load_dataset
        >>> path = os.path.join(tempfile.mkdtemp(), "data.jsonl")
        >>> _ = open(path, "w").write('{"question": "Capital of France?"}\n')
        >>> try:
        ...     load_dataset(path)
        ... except DatasetError as e:
        ...     print(str(e).split(":", 2)[1])
        1
    """


class MissingDependencyError(LangChainHybridError, ImportError):
    """An optional dependency is needed for what was asked; the message says what to install."""


class LocalToolCallUnavailableError(LangChainHybridError, RuntimeError):
    """A request must stay local, needs a tool call, and the local tier cannot call tools.

    Raised when a local-only rule (privacy, ``ForceLocalRule``) keeps a request on a local
    model that cannot call tools while ``tool_choice`` (e.g. ``with_structured_output``)
    requires a tool call. Without a required tool call the local tier answers without tools.
    """


class TierSettingError(LangChainHybridError, TypeError):
    """A tier given to ``ChatHybrid`` is missing or is not a chat model (nor a model name).

    Example:
        >>> from langchain_hybrid import ChatHybrid
        >>> try:
        ...     ChatHybrid(local=42, cloud="gpt-4o")
        ... except TierSettingError as e:
        ...     print(str(e)[:58])
        local= must be a chat model or a model name, got int (42).
    """
