"""HTTP errors of the server: one exception type, and the package's typed errors mapped to it.

Every error leaves the server in OpenAI's format
(``{"error": {"message", "type", "param", "code"}}``) with a message and never a stack
trace; :func:`http_error_of` says which status each typed error of the package gets.

Example:
    >>> from langchain_hybrid.errors import InvalidCallOptionError
    >>> e = http_error_of(InvalidCallOptionError("temperature must be a number in [0, 2]"))
    >>> e.status, e.type
    (400, 'invalid_request_error')
"""

from __future__ import annotations

from typing import Any

from langchain_hybrid.errors import (
    BothTiersFailedError,
    ChatTemplateMissingError,
    CloudRequestError,
    CloudStreamBrokenError,
    ContextWindowExceededError,
    InvalidCallOptionError,
    InvalidMessagesError,
    LangChainHybridError,
    LocalToolCallUnavailableError,
    ModelNotAvailableError,
    PolicyError,
    RoutedCallError,
    UnsupportedCallOptionError,
)
from langchain_hybrid.server.wire import ErrorType, error_body

__all__ = ["HTTPError", "http_error_of"]


class HTTPError(LangChainHybridError):
    """An error answer of the server: status, OpenAI error type, message, param, code."""

    def __init__(
        self,
        status: int,
        message: str,
        type: ErrorType = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type: ErrorType = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON body of the answer."""
        return error_body(self.message, self.type, param=self.param, code=self.code)


def http_error_of(error: BaseException) -> HTTPError:
    """Map an error raised while answering to the HTTP error the client gets.

    Request mistakes are 400 (``context_length_exceeded`` for a prompt too long), a
    request the served model cannot do (tools on a model without tool calling, a
    required tool call that must stay local) is 422, tiers that failed are 503, and
    anything unexpected is 500 with the error's type name only.
    """
    if isinstance(error, HTTPError):
        return error
    message = str(error) or type(error).__name__
    if isinstance(error, ContextWindowExceededError):
        return HTTPError(400, message, code="context_length_exceeded", param="messages")
    if isinstance(error, InvalidMessagesError | ChatTemplateMissingError):
        return HTTPError(400, message, param="messages")
    if isinstance(error, InvalidCallOptionError | UnsupportedCallOptionError | PolicyError):
        return HTTPError(400, message)
    if isinstance(error, LocalToolCallUnavailableError | NotImplementedError):
        return HTTPError(422, message, code="unsupported")
    if isinstance(error, BothTiersFailedError | CloudStreamBrokenError | CloudRequestError):
        return HTTPError(503, message, "service_unavailable", code="tiers_failed")
    if isinstance(error, RoutedCallError | ModelNotAvailableError):
        return HTTPError(503, message, "service_unavailable")
    if isinstance(error, LangChainHybridError):
        return HTTPError(500, message, "server_error")
    return HTTPError(500, f"The server failed to answer ({type(error).__name__}).", "server_error")
