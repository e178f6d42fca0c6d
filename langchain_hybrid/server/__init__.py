"""An OpenAI-compatible HTTP server in front of ChatHybrid (or any chat model).

Needs the ``server`` extra: ``pip install 'langchain-hybrid[server]'``.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> app = create_app(GenericFakeChatModel(messages=iter(["Hi"])), ServerSettings())
    >>> sorted(r.path for r in app.routes if "v1" in r.path)
    ['/v1/chat/completions', '/v1/models', '/v1/models/{model_id:path}']
"""

from __future__ import annotations

try:
    from langchain_hybrid.server.app import create_app, decision_headers
except ImportError as e:  # fastapi, uvicorn or prometheus-client missing
    from langchain_hybrid.errors import MissingDependencyError

    raise MissingDependencyError(
        f"The server needs the 'server' extra ({e.name} is missing): "
        "pip install 'langchain-hybrid[server]'"
    ) from e
from langchain_hybrid.server.errors import HTTPError, http_error_of
from langchain_hybrid.server.runner import RunningServer, serve, serve_in_thread
from langchain_hybrid.server.settings import API_KEYS_ENV_VAR, ServerSettings

__all__ = [
    "API_KEYS_ENV_VAR",
    "HTTPError",
    "RunningServer",
    "ServerSettings",
    "create_app",
    "decision_headers",
    "http_error_of",
    "serve",
    "serve_in_thread",
]
