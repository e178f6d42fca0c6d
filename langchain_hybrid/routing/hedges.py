"""Hedging and declining phrases, and the detector that finds them in an answer as it grows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DEFAULT_DECLINE_PHRASES", "DEFAULT_HEDGE_PHRASES", "HedgeDetector"]


#: Phrases that mark a hedged answer by default (matched case-insensitively, whole words).
DEFAULT_HEDGE_PHRASES: tuple[str, ...] = (
    "I don't know",
    "I do not know",
    "I'm not sure",
    "I am not sure",
    "I'm not certain",
    "I am not certain",
    "I cannot answer",
    "I can't answer",
    "I'm unable to",
    "I am unable to",
    "not enough information",
    "I don't have",
    "I do not have",
    "as an AI",
)


#: Phrases of an answer that declines (the ``declines`` feature), beyond the hedges.
DEFAULT_DECLINE_PHRASES: tuple[str, ...] = (
    *DEFAULT_HEDGE_PHRASES,
    "does not say",
    "doesn't say",
    "does not mention",
    "doesn't mention",
    "not mentioned",
    "does not provide",
    "doesn't provide",
    "not provided",
    "not stated",
    "not specified",
    "no information",
    "cannot be determined",
    "can't be determined",
    "unanswerable",
    "cannot be answered",
    "can't be answered",
)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})


@dataclass(frozen=True)
class HedgeDetector:
    """Finds hedging phrases ("I don't know", "I'm not sure", ...) in an answer.

    Matching is case-insensitive, on whole words, tolerant of runs of whitespace, and treats
    typographic apostrophes (’ ‘ ʼ) like ``'``. ``HedgeDetector(phrases=())`` disables it.

    Example:
        >>> HedgeDetector().find("Honestly, I DON’T know.")
        "I don't know"
        >>> HedgeDetector(phrases=["no idea"]).find("The capital is Paris.") is None
        True
    """

    phrases: Sequence[str] = DEFAULT_HEDGE_PHRASES
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)
    _window: int = field(init=False, repr=False, compare=False, default=16)

    def __post_init__(self) -> None:
        if isinstance(self.phrases, str):
            raise TypeError("HedgeDetector(phrases=...) takes a list of phrases, not one string")
        phrases = tuple(str(p) for p in self.phrases if str(p).strip())
        object.__setattr__(self, "phrases", phrases)
        object.__setattr__(self, "_window", 2 * max((len(p) for p in phrases), default=0) + 16)
        if phrases:
            parts = []
            for i, phrase in enumerate(phrases):
                words = phrase.translate(_APOSTROPHES).split()
                body = r"\s+".join(re.escape(w) for w in words)
                parts.append(f"(?P<p{i}>{body})")
            pattern = r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)"
            object.__setattr__(self, "_regex", re.compile(pattern, re.IGNORECASE))

    @property
    def window(self) -> int:
        """Characters to look back when searching only the new tail of a growing text.

        Covers matches with up to ``longest phrase + 16`` characters of extra whitespace.

        Example:
            >>> HedgeDetector(phrases=["abc"]).window
            22
        """
        return self._window

    def find(self, text: str, start: int = 0) -> str | None:
        """Return the first hedging phrase (as configured) found in ``text[start:]``, or None.

        Example:
            >>> HedgeDetector().find("I am  not sure it is 4")
            'I am not sure'
        """
        if self._regex is None or not text:
            return None
        offset = max(0, start - 1)  # keep one character for the word-boundary look-behind
        m = self._regex.search(text[offset:].translate(_APOSTROPHES), max(0, start) - offset)
        if m is None or m.lastgroup is None:
            return None
        return self.phrases[int(m.lastgroup[1:])]
