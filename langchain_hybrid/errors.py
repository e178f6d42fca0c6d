"""Typed errors raised by langchain-hybrid; each message says what to do about it."""

from __future__ import annotations


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


class InvalidMessagesError(LangChainHybridError, ValueError):
    """The messages cannot be turned into a prompt (empty list, unknown role, non-text content)."""


class ChatTemplateMissingError(LangChainHybridError, ValueError):
    """The tokenizer has no chat template and none was given with ``chat_template=``."""


class ContextWindowExceededError(LangChainHybridError, ValueError):
    """The prompt plus ``max_tokens`` does not fit the local model's context window."""


class UnsupportedCallOptionError(LangChainHybridError, TypeError):
    """A call option (``llm.invoke(..., option=...)``) that this model does not support."""


class BothTiersFailedError(LangChainHybridError, RuntimeError):
    """Neither the local nor the cloud tier could answer; both causes are attached.

    Attributes:
        local_error: why the local tier could not answer.
        cloud_error: why the cloud tier could not answer.
    """

    def __init__(self, local_error: BaseException, cloud_error: BaseException) -> None:
        self.local_error = local_error
        self.cloud_error = cloud_error
        super().__init__(
            "Both tiers failed. Local: "
            f"{type(local_error).__name__}: {local_error}. Cloud: "
            f"{type(cloud_error).__name__}: {cloud_error}. Fix either tier to get answers: "
            "check the cloud's credentials, network and rate limits; for the local tier, "
            "what its error says."
        )


class MissingDependencyError(LangChainHybridError, ImportError):
    """An optional dependency is needed for what was asked; the message says what to install."""


class LocalToolCallUnavailableError(LangChainHybridError, RuntimeError):
    """A request must stay local, needs a tool call, and the local tier cannot call tools.

    Raised when a local-only rule (privacy, ``ForceLocalRule``) keeps a request on a local
    model that cannot call tools while ``tool_choice`` (e.g. ``with_structured_output``)
    requires a tool call. Without a required tool call the local tier answers without tools.
    """
