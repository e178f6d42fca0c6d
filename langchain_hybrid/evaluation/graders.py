"""Graders: whether an answer is correct for an example.

The scoring conventions of the three workloads:

- Short answers (NQ-Open): correct when, after SQuAD-style normalisation (lower-case,
  strip punctuation and the articles a/an/the, collapse white space), one accepted answer
  appears in the prediction on word boundaries (:func:`grade_short`).
- RAG over a passage (SQuAD 2.0): on an answerable row, the same, and the prediction must
  not be a long essay around the span: at most :data:`RAG_MAX_WORDS` normalised words.
  On an unanswerable row, correct when the answer declines (:func:`declines`).
- Maths (GSM8K): correct when the last number in the response equals the answer
  (:func:`grade_math`).

An answerable row whose answer declines is wrong, even if it happens to contain a span.
:func:`grade` applies these conventions to an :class:`~langchain_hybrid.evaluation.records.
Example`; pass your own ``(prediction, example) -> bool`` callable wherever a ``grader`` is
taken to grade differently.

Example:
    >>> grade_short("It was the Beatles.", ["The Beatles"])
    True
    >>> grade_math("3 + 4 = 7, so she has 1,000 eggs.", "1000")
    True
    >>> declines("The passage does not say.")
    True
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

from langchain_hybrid.evaluation.records import Example

__all__ = [
    "RAG_MAX_WORDS",
    "Grader",
    "declines",
    "grade",
    "grade_math",
    "grade_short",
    "last_number",
    "normalize_answer",
]

#: A grader: ``(prediction, example) -> correct``.
Grader = Callable[[str, Example], bool]

#: Longest RAG answer (in normalised words) still graded as an answer rather than an essay
#: around the span. Accepted SQuAD spans are a few words; 30 words leaves room for a full
#: sentence ("Normandy is a region in the north of France.") and rejects a paragraph that
#: mentions many candidates.
RAG_MAX_WORDS = 30

_PUNCTUATION = frozenset(string.punctuation) | frozenset("‘’“”–—…")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")

_DECLINE_PATTERNS: tuple[str, ...] = (
    # the passage/context/text does not say/mention/...
    r"\b(?:passage|context|text|document|article)s?\b[^.?!]{0,40}?"
    r"\b(?:does ?n[o']t|do ?n[o']t|did ?n[o']t|is ?n[o']t|are ?n[o']t)\b[^.?!]{0,20}?"
    r"\b(?:say|state|mention|contain|specify|provide|include|give|indicate|tell|answer|"
    r"discuss|address|cover|have|hold|clear|explicitly|specified|stated|mentioned|provided)",
    # not mentioned/stated/... in the passage
    r"\bnot\b[^.?!]{0,15}\b(?:mentioned|stated|specified|provided|given|included|found|"
    r"discussed|available|addressed)\b[^.?!]{0,20}\b(?:in|by) (?:the|this) "
    r"(?:passage|context|text|document|article)",
    r"\bno (?:information|mention|indication|answer|data|details?)\b",
    r"\bi (?:do ?n[o']t|cannot|can ?n[o']t|am unable to|'m unable to) "
    r"(?:know|tell|say|answer|determine|find|be sure)",
    r"\bi(?:'m| am) not (?:sure|certain|aware)",
    r"\b(?:cannot|can ?n[o']t|could ?n[o']t|could not) be (?:determined|answered|found|known)",
    r"\b(?:is|are|remains?) (?:unknown|unclear|not known|not clear)\b",
    r"\bunanswerable\b",
    r"\b(?:not enough|insufficient|no sufficient) (?:information|context|data|details)",
    r"\bunable to (?:answer|determine|find|say)",
)
_DECLINES = re.compile("|".join(f"(?:{p})" for p in _DECLINE_PATTERNS), re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower-case, no punctuation, no a/an/the, single spaces.

    Example:
        >>> normalize_answer("The  Eiffel-Tower!")
        'eiffeltower'
        >>> normalize_answer("An apple, a day")
        'apple day'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def grade_short(prediction: str, answers: Iterable[str], *, max_words: int | None = None) -> bool:
    """Return True when a normalised accepted answer appears in the prediction on word boundaries.

    ``max_words`` bounds the normalised prediction's length (longer answers are wrong); None
    means no bound. Answers that normalise to nothing are ignored.

    Example:
        >>> grade_short("Paris, of course.", ["paris"])
        True
        >>> grade_short("Parisian food", ["Paris"])
        False
        >>> grade_short("It is " + "very " * 40 + "Paris", ["Paris"], max_words=30)
        False
    """
    pred = normalize_answer(prediction)
    if max_words is not None and len(pred.split()) > max_words:
        return False
    padded = f" {pred} "
    for answer in answers:
        norm = normalize_answer(answer)
        if norm and f" {norm} " in padded:
            return True
    return False


def _as_decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        return None


def last_number(text: str) -> str | None:
    """Return the last number written in ``text`` (commas removed), or None.

    Example:
        >>> last_number("She pays $1,250.50 in total. Answer: 1,250.50.")
        '1250.50'
        >>> last_number("no digits") is None
        True
    """
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def grade_math(prediction: str, answer: str | float) -> bool:
    """Return True when the last number in ``prediction`` equals ``answer``.

    Thousands separators and a trailing ``.0`` do not matter (``1,000.0`` equals ``1000``).

    Example:
        >>> grade_math("So the answer is 18.", "18")
        True
        >>> grade_math("18 eggs, then 9 are left", 18)
        False
        >>> grade_math("#### 1,000.00", "1000")
        True
    """
    found = last_number(prediction)
    expected = _as_decimal(str(answer))
    if found is None or expected is None:
        return False
    value = _as_decimal(found)
    return value is not None and value == expected


def declines(prediction: str) -> bool:
    """Return True when the answer declines to answer ("the passage does not say", ...).

    Example:
        >>> declines("The context doesn't mention when it was built.")
        True
        >>> declines("I don’t know.")
        True
        >>> declines("It cannot be determined from the text.")
        True
        >>> declines("It was built in 1889.")
        False
    """
    return _DECLINES.search(prediction.translate(_APOSTROPHES)) is not None


def grade(prediction: str, example: Example) -> bool:
    """Grade ``prediction`` by the conventions of the example's workload (module docstring).

    Example:
        >>> rag = Example(id="1", question="Where?", answers=(), context="...",
        ...               answerable=False)
        >>> grade("The passage does not say.", rag)
        True
        >>> grade("42", Example(id="2", question="6*7?", answers=("42",), task="math"))
        True
    """
    if example.task == "math":
        return bool(example.answers) and grade_math(prediction, example.answers[0])
    if not example.answerable:
        return declines(prediction)
    if declines(prediction):
        return False
    max_words = RAG_MAX_WORDS if example.context is not None else None
    return grade_short(prediction, example.answers, max_words=max_words)
