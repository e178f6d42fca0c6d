"""Graders: the scoring conventions of NQ-Open, SQuAD 2.0 (RAG) and GSM8K."""

from __future__ import annotations

import pytest

from langchain_hybrid.evaluation import (
    Example,
    declines,
    grade,
    grade_math,
    grade_short,
    normalize_answer,
)
from langchain_hybrid.evaluation.graders import RAG_MAX_WORDS


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Beatles", "beatles"),
        ("  An  apple,\ta   day! ", "apple day"),
        ("U.S.A.", "usa"),
        ("Theatre", "theatre"),  # an article only as a whole word
        ("“Quoted” – text…", "quoted text"),
    ],
)
def test_normalize_answer(text: str, normalised: str) -> None:
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize(
    ("prediction", "answers", "correct"),
    [
        ("Paris", ["Paris"], True),
        ("It is Paris, France.", ["paris"], True),
        ("the beatles", ["The Beatles"], True),  # articles
        ("Beatles!", ["The Beatles."], True),  # punctuation
        ("Parisian cafés", ["Paris"], False),  # word boundaries
        ("In 1969.", ["1969"], True),
        ("In 19690.", ["1969"], False),
        ("December 14, 1972", ["14 December 1972 UTC", "December 1972"], False),
        ("It ended in December 1972.", ["14 December 1972 UTC", "December 1972"], True),
        ("Bob   Russell", ["Bob Russell"], True),  # white space
        ("London", ["Paris", "Rome"], False),
        ("The", ["The"], False),  # an answer that normalises to nothing matches nothing
        ("", ["Paris"], False),
    ],
)
def test_grade_short(prediction: str, answers: list[str], correct: bool) -> None:
    assert grade_short(prediction, answers) is correct


def test_grade_short_length_bound() -> None:
    essay = "Paris " + "and more words " * RAG_MAX_WORDS
    assert grade_short(essay, ["Paris"])
    assert not grade_short(essay, ["Paris"], max_words=RAG_MAX_WORDS)
    assert grade_short("Paris " + "x " * (RAG_MAX_WORDS - 1), ["Paris"], max_words=RAG_MAX_WORDS)


@pytest.mark.parametrize(
    ("prediction", "answer", "correct"),
    [
        ("So she makes $18 a day.", "18", True),
        ("#### 18", 18, True),
        ("18 eggs; 16 - 3 - 4 = 9", "18", False),  # the last number counts
        ("The total is 1,000.", "1000", True),  # thousands separators
        ("Answer: 1000", "1,000", True),
        ("It is 18.0", "18", True),  # trailing .0
        ("It is 18.50", "18.5", True),
        ("It is 18.5", "18", False),
        ("It fell to -3 degrees", "-3", True),
        ("No number here", "3", False),
        ("Answer: 7.", "7", True),  # a sentence's full stop is not a decimal point
    ],
)
def test_grade_math(prediction: str, answer: str | int, correct: bool) -> None:
    assert grade_math(prediction, answer) is correct


@pytest.mark.parametrize(
    "text",
    [
        "The passage does not say.",
        "The context doesn't mention the date.",
        "The text does not specify who built it.",
        "This is not mentioned in the passage.",
        "I don't know.",
        "I do not know the answer.",
        "I don’t know",  # typographic apostrophe
        "It cannot be determined from the passage.",
        "There is no information about that.",
        "The answer is unknown.",
        "Unanswerable.",
        "There is not enough information to answer.",
        "I'm not sure.",
    ],
)
def test_declines(text: str) -> None:
    assert declines(text)


@pytest.mark.parametrize(
    "text",
    [
        "Paris.",
        "The passage says it was built in 1889.",
        "It was unknown to Europeans until 1492, when Columbus arrived.",
        "The Known Universe is a documentary.",
        "No.",
    ],
)
def test_does_not_decline(text: str) -> None:
    assert not declines(text)


def test_grade_by_workload() -> None:
    nq = Example(id="1", question="Capital?", answers=("Paris",))
    rag = Example(id="2", question="Where?", answers=("France",), context="Normandy is in France.")
    unanswerable = Example(id="3", question="When?", answers=(), context="x", answerable=False)
    math = Example(id="4", question="6*7?", answers=("42",), task="math")
    assert grade("Paris", nq)
    assert not grade("I don't know, maybe Paris", nq)  # an answerable row that declines
    assert grade("France", rag)
    assert not grade("France " + "and so on " * RAG_MAX_WORDS, rag)  # an essay
    assert not grade("The passage does not say whether France.", rag)
    assert grade("The passage does not say.", unanswerable)
    assert not grade("In 1066.", unanswerable)
    assert grade("6 * 7 = 42", math)
    assert not grade("42 / 6 = 7", math)
