"""ServerSettings: how the HTTP server behaves (names, auth, limits), in one frozen object.

Routing settings are not here: they live in the served model's ``RoutingPolicy``.

Example:
    >>> s = ServerSettings(api_keys=frozenset({"k1"}), max_concurrency=4, max_queue=8)
    >>> s.auth_required, s.max_admitted
    (True, 12)
    >>> ServerSettings.from_env({"LANGCHAIN_HYBRID_API_KEYS": "a, b"}).api_keys == {"a", "b"}
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["API_KEYS_ENV_VAR", "ServerSettings"]

#: Comma-separated API keys the server accepts (``Authorization: Bearer <key>``).
API_KEYS_ENV_VAR = "LANGCHAIN_HYBRID_API_KEYS"


@dataclass(frozen=True)
class ServerSettings:
    """Settings of the OpenAI-compatible server.

    Attributes:
        model_name: the model id clients send (``model=``) and ``GET /v1/models`` lists.
            Requests naming another model get 404 ``model_not_found``.
        api_keys: accepted ``Authorization: Bearer`` keys; empty: no authentication.
        max_concurrency: chat requests answered at once. Concurrent local generations
            are batched by the engine, so this is also the largest batch the server makes.
        max_queue: requests allowed to wait for a free slot; beyond
            ``max_concurrency + max_queue`` the server answers 429 with ``Retry-After``.
        retry_after_s: the ``Retry-After`` seconds sent with a 429.
        max_body_bytes: the largest request body accepted (413 beyond).
        executor_threads: threads of the event loop's default executor, where blocking
            waits on local generation run; ``None``: ``max_concurrency + 8`` (Python's
            default, ``cpu_count + 4``, would cap the batch on small machines).
    """

    model_name: str = "langchain-hybrid"
    api_keys: frozenset[str] = field(default_factory=frozenset)
    max_concurrency: int = 16
    max_queue: int = 64
    retry_after_s: int = 1
    max_body_bytes: int = 1_000_000
    executor_threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {self.retry_after_s}")

    @property
    def auth_required(self) -> bool:
        """Whether requests need an API key."""
        return bool(self.api_keys)

    @property
    def max_admitted(self) -> int:
        """Requests running or waiting at most; one more is answered 429."""
        return self.max_concurrency + self.max_queue

    @property
    def threads(self) -> int:
        """Threads of the default executor the server installs."""
        return self.executor_threads or self.max_concurrency + 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Read the API keys from ``LANGCHAIN_HYBRID_API_KEYS`` (comma-separated).

        Keyword arguments override fields; ``api_keys`` given there are added to the
        environment's.
        """
        env = os.environ if environ is None else environ
        keys = {k.strip() for k in env.get(API_KEYS_ENV_VAR, "").split(",") if k.strip()}
        keys.update(overrides.pop("api_keys", ()) or ())
        return replace(cls(**overrides), api_keys=frozenset(keys))
