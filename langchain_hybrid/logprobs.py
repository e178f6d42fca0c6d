"""The log-prob contract: OpenAI's chat-completions shape, used by producers and scorers.

Every tier's per-token log-probs travel in this shape: what ``ChatOpenAI(logprobs=True)``
puts in ``response_metadata["logprobs"]``, what ``ChatTransformers`` emits, and what vLLM
or TGI return through an OpenAI-compatible endpoint::

    {"content": [{"token": str, "logprob": float, "bytes": [int] | None,
                  "top_logprobs": [{"token": str, "logprob": float, "bytes": [int] | None}]}]}

:func:`logprob_entries` normalises any of the accepted shapes to a list of
:class:`TokenLogprob`; :func:`message_logprobs` reads them off an answer message.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> msg = AIMessage("Hi", response_metadata={"logprobs": {"content": [
    ...     {"token": "Hi", "logprob": float("-inf")}]}})
    >>> logprob_entries(message_logprobs(msg))
    [{'token': 'Hi', 'logprob': -100.0, 'bytes': None, 'top_logprobs': []}]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from typing_extensions import TypedDict

__all__ = [
    "LOGPROB_FLOOR",
    "ChatLogprobs",
    "LogprobsLike",
    "TokenLogprob",
    "TopLogprob",
    "logprob_entries",
    "message_logprobs",
]

#: Lowest log-prob kept; ``-inf`` and NaN become this value so every number stays JSON-safe.
LOGPROB_FLOOR = -100.0


class TopLogprob(TypedDict):
    """One alternative token at a position (OpenAI ``top_logprobs`` item).

    Example:
        >>> TopLogprob(token="Paris", logprob=-0.1, bytes=None)["logprob"]
        -0.1
    """

    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TypedDict):
    """One generated token with its log-prob (OpenAI ``logprobs.content`` item).

    Example:
        >>> TokenLogprob(token="Hi", logprob=-0.2, bytes=[72, 105], top_logprobs=[])["token"]
        'Hi'
    """

    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(TypedDict, total=False):
    """The ``logprobs`` object of a chat completion.

    Example:
        >>> ChatLogprobs(content=[]).get("content")
        []
    """

    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None


#: What scorers accept: a :class:`ChatLogprobs` mapping, the bare list of entries, or None.
LogprobsLike = Mapping[str, Any] | Sequence[Any] | None


def _clean_logprob(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: 'logprob' must be a number, got {value!r}")
    x = float(value)
    if math.isnan(x) or x < LOGPROB_FLOOR:
        return LOGPROB_FLOOR
    return min(x, 0.0)


def _as_mapping(obj: object) -> Mapping[str, Any] | None:
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)  # e.g. OpenAI SDK pydantic objects
    if callable(dump):
        dumped = dump()
        if isinstance(dumped, Mapping):
            return dumped
    return None


def _clean_bytes(value: object) -> list[int] | None:
    if isinstance(value, (list, tuple)):
        return [int(b) for b in value]
    return None


def logprob_entries(logprobs: LogprobsLike) -> list[TokenLogprob]:
    """Return the normalised per-token entries of ``logprobs``.

    Accepts a :class:`ChatLogprobs` mapping (``{"content": [...]}``), the bare list of entries,
    or None (no log-probs: returns ``[]``). Every returned entry has all four keys;
    log-probs are clamped to ``[LOGPROB_FLOOR, 0.0]`` (``-inf`` and NaN become the floor).
    Raises ``ValueError`` for an entry without a numeric ``logprob`` and ``TypeError`` for an
    input of another shape.

    Example:
        >>> logprob_entries({"content": [{"token": "a", "logprob": float("-inf")}]})
        [{'token': 'a', 'logprob': -100.0, 'bytes': None, 'top_logprobs': []}]
        >>> logprob_entries(None)
        []
    """
    if logprobs is None:
        return []
    raw: object
    mapping = _as_mapping(logprobs)
    if mapping is not None:
        raw = mapping.get("content")
        if raw is None:
            return []
    else:
        raw = logprobs
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise TypeError(
            "log-probs must be {'content': [...]}, a list of token entries, or None; "
            f"got {type(logprobs).__name__}"
        )
    out: list[TokenLogprob] = []
    for i, item in enumerate(raw):
        entry = _as_mapping(item)
        where = f"log-prob entry {i}"
        if entry is None or "logprob" not in entry:
            raise ValueError(f"{where} is not a mapping with a 'logprob' key: {item!r:.100}")
        tops: list[TopLogprob] = []
        for j, top_item in enumerate(entry.get("top_logprobs") or ()):
            top = _as_mapping(top_item)
            if top is None or "logprob" not in top:
                raise ValueError(f"{where}, top_logprobs[{j}] has no 'logprob': {top_item!r:.100}")
            tops.append(
                TopLogprob(
                    token=str(top.get("token") or ""),
                    logprob=_clean_logprob(top["logprob"], f"{where}, top_logprobs[{j}]"),
                    bytes=_clean_bytes(top.get("bytes")),
                )
            )
        out.append(
            TokenLogprob(
                token=str(entry.get("token") or ""),
                logprob=_clean_logprob(entry["logprob"], where),
                bytes=_clean_bytes(entry.get("bytes")),
                top_logprobs=tops,
            )
        )
    return out


def message_logprobs(message: BaseMessage | None) -> Any:
    """Return the OpenAI-shaped log-probs an answer carries (None when it has none).

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> message_logprobs(AIMessage("x")) is None
        True
    """
    return None if message is None else message.response_metadata.get("logprobs")
