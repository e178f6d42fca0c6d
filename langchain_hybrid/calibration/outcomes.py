"""What the cloud tier scores on each example, replayed from recorded answers or assumed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langchain_hybrid.calibration.errors import CalibrationError

if TYPE_CHECKING:
    from langchain_hybrid.evaluation.graders import Grader
    from langchain_hybrid.evaluation.records import Example

__all__ = ["CloudOutcomes"]


@dataclass(frozen=True)
class CloudOutcomes:
    """What the cloud tier scores on each example, and what it costs.

    ``correct`` maps example ids to the cloud's graded correctness (replayed or live
    answers); ids it lacks take ``accuracy``, an *assumed* accuracy. ``source`` says which
    (it is written into the fitted policy). The cost of sending an example to the cloud is
    priced with ``prices`` for ``model`` from the prompt and answer token counts.

    Example:
        >>> CloudOutcomes.assumed(0.8).p_correct("anything"), CloudOutcomes.assumed(0.8).source
        (0.8, 'assumed accuracy 0.8')
        >>> CloudOutcomes(correct={"a": True}, accuracy=0.5).p_correct("a")
        1.0
    """

    correct: Mapping[str, bool] = field(default_factory=dict)
    accuracy: float | None = None
    model: str = "gpt-4o"
    source: str = ""
    completion_tokens: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = self.accuracy
        if a is not None and (isinstance(a, bool) or not 0.0 <= float(a) <= 1.0):
            raise CalibrationError(f"cloud accuracy must be in [0, 1], got {a!r}")
        if not self.source:
            src = f"assumed accuracy {a:g}" if not self.correct else f"replayed {self.model}"
            object.__setattr__(self, "source", src)

    @classmethod
    def assumed(cls, accuracy: float, model: str = "gpt-4o") -> CloudOutcomes:
        """Return an assumed cloud accuracy for every example (labelled as assumed).

        Example:
            >>> CloudOutcomes.assumed(0.9, model="gpt-4o-mini").model
            'gpt-4o-mini'
        """
        return cls(accuracy=accuracy, model=model)

    @classmethod
    def replayed(
        cls, examples: Iterable[Example], model: str, *, grader: Grader | None = None
    ) -> CloudOutcomes:
        """Return the recorded answers of ``model`` on the examples (``Example.recorded``).

        A recorded answer without its correctness is graded with ``grader`` (default: the
        workload's convention, as ``eval``'s replay does). Raises :class:`CalibrationError`
        when no example has an answer of ``model``.

        Example:
            >>> from langchain_hybrid.evaluation.records import CloudRecord, Example
            >>> ex = Example(id="1", question="2+2?", answers=("4",), task="math",
            ...              recorded={"gpt-4": CloudRecord("gpt-4", "4", True)})
            >>> CloudOutcomes.replayed([ex], "gpt-4").p_correct("1")
            1.0
        """
        from langchain_hybrid.evaluation.graders import grade

        grader = grader or grade
        correct: dict[str, bool] = {}
        tokens: dict[str, int] = {}
        for ex in examples:
            rec = ex.recorded.get(model)
            if rec is None:
                continue
            correct[ex.id] = rec.correct if rec.correct is not None else grader(rec.text, ex)
            if rec.completion_tokens is not None:
                tokens[ex.id] = rec.completion_tokens
        if not correct:
            raise CalibrationError(
                f"no example has a recorded answer of {model!r}; pass the cloud's accuracy "
                "instead (CloudOutcomes.assumed(...), --cloud-accuracy)"
            )
        return cls(
            correct=correct,
            model=model,
            source=f"replayed {model} ({len(correct)} answers)",
            completion_tokens=tokens,
        )

    def p_correct(self, example_id: str) -> float:
        """Return the cloud's correctness on one example (1/0 if known, else the assumed one).

        Raises :class:`CalibrationError` when neither is known.
        """
        if example_id in self.correct:
            return 1.0 if self.correct[example_id] else 0.0
        if self.accuracy is None:
            raise CalibrationError(
                f"the cloud's correctness on example {example_id!r} is unknown; give an "
                "assumed accuracy too (CloudOutcomes(..., accuracy=0.8))"
            )
        return float(self.accuracy)

    @property
    def assumed_only(self) -> bool:
        """True when no per-example outcome is known (the figures rest on an assumption)."""
        return not self.correct
