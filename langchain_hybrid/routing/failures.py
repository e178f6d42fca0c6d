"""What kind of failure a cloud tier's error is, and what to do about it.

The route degrades to the local answer when the cloud fails; the kind of failure decides
the decision's ``reason`` and whether degrading is right at all. Errors are classified by
langchain-core's provider-neutral ``ModelError`` classes (``langchain-openai`` and other
partner packages raise them), then by an HTTP ``status_code`` on the error or its response,
then by name (``TimeoutError``):

==================  =========================================================  ===========
kind                errors                                                     retried by
==================  =========================================================  ===========
``auth``            401, 403 (``ModelAuthenticationError``, ...PermissionDenied)  never
``bad_request``     400, 404, 422 (``ModelInvalidRequestError``, ...NotFound)     never
``timeout``         ``ModelTimeoutError``, ``TimeoutError``, the call deadline  the client
``unavailable``     anything else: 429, 5xx, dropped connections, bad JSON      the client
``stream_broken``   a stream that failed after text was shown, or ended early   -
==================  =========================================================  ===========

Retries are the cloud client's own (``ChatOpenAI(max_retries=...)``): the route does not
retry on top of them. ``auth`` and ``bad_request`` will fail the same way on every call,
so they are logged as a warning once per cloud model, besides the decision's reason.

Example:
    >>> from langchain_core.exceptions import ModelAuthenticationError
    >>> failure_kind(ModelAuthenticationError("bad key"))
    'auth'
    >>> failure_kind(TimeoutError()), failure_kind(ConnectionResetError())
    ('timeout', 'unavailable')
"""

from __future__ import annotations

import logging
import threading
from typing import Literal, get_args

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAuthenticationError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelTimeoutError,
)

from langchain_hybrid.errors import http_status
from langchain_hybrid.routing.decision import RouteReason

__all__ = [
    "FAILURE_KINDS",
    "FailureKind",
    "failure_kind",
    "failure_reason",
    "warn_once",
]

FailureKind = Literal["auth", "bad_request", "timeout", "unavailable", "stream_broken"]
#: Every kind of cloud failure, as :func:`failure_kind` names them.
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)

_REASONS: dict[FailureKind, RouteReason] = {
    "auth": "cloud_auth_error",
    "bad_request": "cloud_bad_request",
    "timeout": "cloud_timeout",
    "unavailable": "cloud_error",
    "stream_broken": "cloud_stream_broken",
}
_AUTH_STATUS = frozenset({401, 403})
_BAD_REQUEST_STATUS = frozenset({400, 404, 413, 422})

logger = logging.getLogger("langchain_hybrid.routing")


def failure_kind(error: BaseException) -> FailureKind:
    """Classify a cloud tier's error (see the table above).

    Example:
        >>> class HTTPError(Exception):
        ...     status_code = 422
        >>> failure_kind(HTTPError("unprocessable"))
        'bad_request'
    """
    if isinstance(error, (ModelAuthenticationError, ModelPermissionDeniedError)):
        return "auth"
    if isinstance(error, (ModelInvalidRequestError, ModelNotFoundError, ContextOverflowError)):
        return "bad_request"
    if isinstance(error, (ModelTimeoutError, TimeoutError)):
        return "timeout"
    status = http_status(error)
    if status in _AUTH_STATUS:
        return "auth"
    if status in _BAD_REQUEST_STATUS:
        return "bad_request"
    if "timeout" in type(error).__name__.lower():
        return "timeout"
    return "unavailable"


def failure_reason(kind: FailureKind) -> RouteReason:
    """Return the decision reason for a failure kind.

    Example:
        >>> failure_reason("auth")
        'cloud_auth_error'
    """
    return _REASONS[kind]


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_once(kind: FailureKind, model: str, error: BaseException) -> None:
    """Log a warning the first time a cloud model fails with ``auth`` or ``bad_request``.

    These failures repeat on every call until the configuration is fixed, so they are
    worth a warning besides the decision; outages and timeouts are not logged here.

    Example:
        >>> warn_once("unavailable", "gpt-4o", RuntimeError("503"))  # not logged
    """
    if kind not in ("auth", "bad_request"):
        return
    with _warned_lock:
        if (kind, model) in _warned:
            return
        _warned.add((kind, model))
    what = (
        "refused the credentials: check the API key and its permissions"
        if kind == "auth"
        else "rejected the request: check the model name and the call options"
    )
    logger.warning(
        "The cloud tier %s %s. Answers fall back to the local tier (degraded) until this "
        "is fixed; set raise_on_cloud_errors={'%s'} to raise instead. Cause: %s: %s",
        model or "(unnamed model)",
        what,
        kind,
        type(error).__name__,
        error,
    )
