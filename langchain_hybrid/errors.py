"""Typed errors raised by langchain-hybrid; each message says what to do about it."""

from __future__ import annotations


class LangChainHybridError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelNotAvailableError(LangChainHybridError, RuntimeError):
    """The requested local model cannot be found or loaded."""


class InvalidMessagesError(LangChainHybridError, ValueError):
    """The messages cannot be turned into a prompt (empty list, unknown role, non-text content)."""


class ChatTemplateMissingError(LangChainHybridError, ValueError):
    """The tokenizer has no chat template and none was given with ``chat_template=``."""


class ContextWindowExceededError(LangChainHybridError, ValueError):
    """The prompt plus ``max_tokens`` does not fit the local model's context window."""
