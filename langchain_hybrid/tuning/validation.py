"""Per-class validation by generation: answer each validation row greedily and grade it.

A model tuned on RAG rows can score well on loss while it has only learned to decline;
what matters is, per class, how often it answers the answerable rows right and declines
the unanswerable ones. :func:`generate_answers` answers prompts greedily (as the local
tier does), in left-padded batches sorted by length; :func:`score_answers` grades them
with :func:`~langchain_hybrid.evaluation.graders.grade` into :class:`ValidationScores`.
The tuner selects and stops on :attr:`ValidationScores.balanced_accuracy`, the mean of
the two per-class rates.

Example:
    >>> from langchain_hybrid.evaluation.records import Example
    >>> from langchain_hybrid.tuning.data import rows_from_examples
    >>> rows = rows_from_examples([
    ...     Example(id="1", question="Who?", answers=("Ada",), context="Ada wrote it."),
    ...     Example(id="2", question="When?", answers=(), context="Ada.", answerable=False)])
    >>> s = score_answers(rows, ["Ada", "Ada"])
    >>> s.answerable_accuracy, s.unanswerable_declined, s.balanced_accuracy, s.decline_rate
    (1.0, 0.0, 0.5, 0.0)
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from langchain_hybrid.evaluation.graders import declines, grade, normalize_answer
from langchain_hybrid.tuning.data import TuningRow

__all__ = ["ValidationScores", "generate_answers", "score_answers", "validation_subset"]


@dataclass(frozen=True)
class ValidationScores:
    """Generation metrics of one validation pass.

    Attributes:
        n_answerable: answerable rows graded.
        n_unanswerable: unanswerable rows graded.
        answerable_correct: answerable rows answered right (an accepted span, short).
        unanswerable_declined_count: unanswerable rows declined.
        declined_count: answers (of both classes) that decline.
        median_answer_words: median length of the answers in normalised words.
    """

    n_answerable: int
    n_unanswerable: int
    answerable_correct: int
    unanswerable_declined_count: int
    declined_count: int
    median_answer_words: float

    @property
    def answerable_accuracy(self) -> float:
        """Share of answerable rows answered right (0 when there are none)."""
        return self.answerable_correct / self.n_answerable if self.n_answerable else 0.0

    @property
    def unanswerable_declined(self) -> float:
        """Share of unanswerable rows declined (0 when there are none)."""
        return (
            self.unanswerable_declined_count / self.n_unanswerable if self.n_unanswerable else 0.0
        )

    @property
    def overall_accuracy(self) -> float:
        """Share of all rows graded right."""
        total = self.n_answerable + self.n_unanswerable
        right = self.answerable_correct + self.unanswerable_declined_count
        return right / total if total else 0.0

    @property
    def balanced_accuracy(self) -> float:
        """Mean of the per-class rates of the classes present (the selection metric)."""
        rates = []
        if self.n_answerable:
            rates.append(self.answerable_accuracy)
        if self.n_unanswerable:
            rates.append(self.unanswerable_declined)
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def decline_rate(self) -> float:
        """Share of all answers that decline (1.0 means the model only learned to decline)."""
        total = self.n_answerable + self.n_unanswerable
        return self.declined_count / total if total else 0.0

    def metrics(self) -> dict[str, float]:
        """Return every count and rate by name (what the tuner logs and the card stores).

        Example:
            >>> ValidationScores(2, 2, 1, 2, 2, 3.0).metrics()["balanced_accuracy"]
            0.75
        """
        out: dict[str, float] = {k: float(v) for k, v in asdict(self).items()}
        out.update(
            answerable_accuracy=self.answerable_accuracy,
            unanswerable_declined=self.unanswerable_declined,
            overall_accuracy=self.overall_accuracy,
            balanced_accuracy=self.balanced_accuracy,
            decline_rate=self.decline_rate,
        )
        return out


def score_answers(rows: Sequence[TuningRow], answers: Sequence[str]) -> ValidationScores:
    """Grade ``answers`` (one per row) with the package's grader, per class."""
    if len(rows) != len(answers):
        raise ValueError(f"{len(rows)} rows but {len(answers)} answers")
    n_ans = n_unans = correct = declined_unans = declined = 0
    lengths: list[int] = []
    for row, answer in zip(rows, answers, strict=True):
        right = bool(answer.strip()) and grade(answer, row.example)
        if declines(answer):
            declined += 1
        lengths.append(len(normalize_answer(answer).split()))
        if row.answerable:
            n_ans += 1
            correct += right
        else:
            n_unans += 1
            declined_unans += right
    return ValidationScores(
        n_answerable=n_ans,
        n_unanswerable=n_unans,
        answerable_correct=correct,
        unanswerable_declined_count=declined_unans,
        declined_count=declined,
        median_answer_words=float(statistics.median(lengths)) if lengths else 0.0,
    )


def validation_subset(rows: Sequence[TuningRow], size: int | None, *, seed: int = 0) -> list[int]:
    """Return the indices of a fixed random subset of ``size`` rows, stratified by class.

    Each class keeps its share of ``rows`` (rounded); None or a size at least
    ``len(rows)`` keeps every row. Indices are sorted.

    Example:
        >>> from langchain_hybrid.evaluation.records import Example
        >>> from langchain_hybrid.tuning.data import rows_from_examples
        >>> rows = rows_from_examples([Example(id=str(i), question="q?",
        ...     answers=("a",) if i % 4 else (), context="p", answerable=bool(i % 4))
        ...     for i in range(40)])
        >>> keep = validation_subset(rows, 8)
        >>> len(keep), sum(not rows[i].answerable for i in keep)
        (8, 2)
    """
    import random

    if size is None or size >= len(rows):
        return list(range(len(rows)))
    if size < 1:
        raise ValueError(f"the validation size must be >= 1, got {size}")
    rng = random.Random(seed)
    chosen: list[int] = []
    by_class = [[i for i, r in enumerate(rows) if r.answerable == c] for c in (True, False)]
    answerable_share = round(size * len(by_class[0]) / len(rows))
    for indices, want in zip(by_class, (answerable_share, size - answerable_share), strict=True):
        chosen.extend(rng.sample(indices, min(want, len(indices))))
    return sorted(chosen)


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    autocast_dtype: Any = None,
    pad_id: int | None = None,
) -> list[str]:
    """Answer each prompt (token ids) greedily; return the decoded answers in order.

    Prompts are sorted by length and batched with left padding; generation stops at the
    tokenizer's and the model's end-of-sequence tokens. ``autocast_dtype`` (e.g.
    ``torch.bfloat16``) runs the model under autocast on its device.
    """
    import torch

    device = next(model.parameters()).device
    eos = _eos_ids(model, tokenizer)
    if pad_id is None:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    autocast: Any = (
        torch.autocast(device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        with torch.no_grad(), autocast:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                length = max(len(prompts[i]) for i in chunk)
                ids = [[pad_id] * (length - len(prompts[i])) + list(prompts[i]) for i in chunk]
                mask = [[0] * (length - len(prompts[i])) + [1] * len(prompts[i]) for i in chunk]
                out = model.generate(
                    input_ids=torch.tensor(ids, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    eos_token_id=eos,
                    pad_token_id=pad_id,
                    use_cache=True,
                )
                for i, row in zip(chunk, out[:, length:].tolist(), strict=True):
                    answers[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    return answers


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None)
        for token in value if isinstance(value, list) else [value]:
            if isinstance(token, int) and token not in ids:
                ids.append(token)
    if isinstance(tokenizer.eos_token_id, int) and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the tokenizer and the model define no end-of-sequence token")
    return ids
