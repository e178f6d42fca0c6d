"""Exact bytes of each token, and incremental UTF-8 text assembly.

OpenAI's log-prob entries carry each token's text and its UTF-8 ``bytes``. A
token can hold part of a multi-byte character, so the text of an answer is built
from the bytes of its tokens, emitting characters only once they are complete.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _decoder_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = repr(getattr(backend, "decoder", None)) if backend is not None else ""
    if "ByteLevel" in decoder:
        return "byte_level"
    if "ByteFallback" in decoder or "Metaspace" in decoder or "▁" in decoder:
        return "sentencepiece"
    return "generic"


class TokenBytes:
    """Map token ids to the exact bytes they contribute to the text.

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> tb = TokenBytes(AutoTokenizer.from_pretrained("gpt2"))  # doctest: +SKIP
        >>> tb(15496)  # doctest: +SKIP
        b'Hello'
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._kind = _decoder_kind(tokenizer)
        self._cache: dict[int, bytes] = {}

    def __call__(self, token_id: int) -> bytes:
        """Return the bytes of one token."""
        cached = self._cache.get(token_id)
        if cached is None:
            cached = self._compute(token_id)
            self._cache[token_id] = cached
        return cached

    def _compute(self, token_id: int) -> bytes:
        piece: str | None = self._tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return b""
        if self._kind == "byte_level":
            table = _byte_level_decoder()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
        elif self._kind == "sentencepiece":
            match = _BYTE_FALLBACK.match(piece)
            if match:
                return bytes([int(match.group(1), 16)])
            return piece.replace("▁", " ").encode("utf-8")
        text = str(self._tokenizer.convert_tokens_to_string([piece]))
        return text.encode("utf-8")

    @property
    def strips_leading_space(self) -> bool:
        """Whether the tokenizer's decoder drops the space that starts a SentencePiece text."""
        return self._kind == "sentencepiece"


class Utf8Assembler:
    """Accumulate token bytes and release text only in whole characters.

    Example:
        >>> asm = Utf8Assembler()
        >>> asm.feed("é".encode()[:1]), asm.feed("é".encode()[1:])
        ('', 'é')
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> str:
        """Add bytes; return the text that is now complete."""
        buf = self._pending + data
        try:
            self._pending = b""
            return buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and len(buf) - exc.start < 4:
                self._pending = buf[exc.start :]
                return buf[: exc.start].decode("utf-8", errors="replace")
            return buf.decode("utf-8", errors="replace")

    def flush(self) -> str:
        """Return whatever incomplete bytes remain, with replacement characters."""
        rest, self._pending = self._pending, b""
        return rest.decode("utf-8", errors="replace")
