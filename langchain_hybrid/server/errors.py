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

from langchain_hybrid import errors
from langchain_hybrid.errors import LangChainHybridError
from langchain_hybrid.server.wire import ErrorType, error_body

__all__ = ["HTTPError", "http_error_of"]


_BAD_OPTIONS = (
    errors.InvalidCallOptionError | errors.UnsupportedCallOptionError | errors.PolicyError
)
_TIERS_FAILED = (
    errors.BothTiersFailedError | errors.CloudStreamBrokenError | errors.CloudRequestError
)


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
    if isinstance(error, errors.ContextWindowExceededError):
        return HTTPError(400, message, code="context_length_exceeded", param="messages")
    if isinstance(error, errors.InvalidMessagesError | errors.ChatTemplateMissingError):
        return HTTPError(400, message, param="messages")
    if isinstance(error, _BAD_OPTIONS):
        return HTTPError(400, message)
    if isinstance(error, errors.LocalToolCallUnavailableError | NotImplementedError):
        return HTTPError(422, message, code="unsupported")
    if isinstance(error, _TIERS_FAILED):
        return HTTPError(503, message, "service_unavailable", code="tiers_failed")
    if isinstance(error, errors.RoutedCallError | errors.ModelNotAvailableError):
        return HTTPError(503, message, "service_unavailable")
    if isinstance(error, LangChainHybridError):
        return HTTPError(500, message, "server_error")
    return HTTPError(500, f"The server failed to answer ({type(error).__name__}).", "server_error")
