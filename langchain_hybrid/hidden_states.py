"""The local model's own hidden states as answer features: how they travel with an answer.

``ChatTransformers(hidden_states=True)`` reads one decoder layer's output in the forward
passes generation already makes (no extra pass): the state at the last prompt token
(``prompt``: what the model "thinks" before it writes a word, which predicts whether it
will know the answer), the state of the answer's :data:`PREFIX_TOKENS`-th token
(``answer_prefix``: what early escalation may read a few tokens in) and the mean state
over the answer's tokens (``answer_mean``). They
travel in ``response_metadata["hidden_state"]``, as log-probs do, each vector compact
(float16, little-endian, base64), and evaluation records keep them:

    {"layer": 20, "dim": 576, "prompt": "<base64>", "answer_prefix": "<base64>",
     "answer_mean": "<base64>"}

A streamed answer carries ``layer``, ``dim`` and ``prompt`` on its first chunk (so that
routing may act before the answer is written), ``answer_prefix`` on a chunk of its own as
soon as it is known, and ``answer_mean`` on its last. Served
models and the cloud carry none; scorers that read them then score as before. Decoding
needs no numpy.

Example:
    >>> meta = {"hidden_state": {"layer": 3, "dim": 2, "prompt": encode_vector([0.5, -1.0])}}
    >>> hidden_vectors(meta)
    {'prompt': [0.5, -1.0]}
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "HIDDEN_PARTS",
    "HIDDEN_STATE_KEY",
    "PREFIX_TOKENS",
    "decode_vector",
    "encode_vector",
    "hidden_vectors",
]

#: The key of ``response_metadata`` that carries an answer's hidden-state features.
HIDDEN_STATE_KEY = "hidden_state"
#: The vectors an answer may carry: before generation, a few tokens in, over the answer.
HIDDEN_PARTS: tuple[str, ...] = ("prompt", "answer_prefix", "answer_mean")
#: ``answer_prefix`` is the state of the answer's token at this position (when it has one).
PREFIX_TOKENS = 4


def encode_vector(values: Sequence[float]) -> str:
    """Encode a vector as base64 float16 (little-endian).

    Example:
        >>> decode_vector(encode_vector([1.0, 0.25]))
        [1.0, 0.25]
    """
    return base64.b64encode(struct.pack(f"<{len(values)}e", *values)).decode("ascii")


def decode_vector(text: str) -> list[float]:
    """Decode a vector written by :func:`encode_vector`; ``ValueError`` if it is not one."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise ValueError(f"not a base64 hidden-state vector: {e}") from e
    if len(raw) % 2:
        raise ValueError("a hidden-state vector holds 2 bytes per value")
    return list(struct.unpack(f"<{len(raw) // 2}e", raw))


def hidden_vectors(metadata: Mapping[str, Any] | None) -> dict[str, list[float]]:
    """Return the hidden-state vectors of an answer's ``response_metadata`` (maybe none).

    Vectors that are missing or malformed are left out.

    Example:
        >>> hidden_vectors({"finish_reason": "stop"})
        {}
    """
    state = (metadata or {}).get(HIDDEN_STATE_KEY)
    if not isinstance(state, Mapping):
        return {}
    out: dict[str, list[float]] = {}
    for part in HIDDEN_PARTS:
        value = state.get(part)
        if isinstance(value, str):
            try:
                out[part] = decode_vector(value)
            except ValueError:
                continue
    return out
