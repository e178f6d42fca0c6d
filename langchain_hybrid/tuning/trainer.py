"""The ``transformers.Trainer`` the tuner runs: answer-only loss, per-class validation, limits.

:class:`AnswerTrainer` changes three things of the stock ``Trainer``:

- the loss: a per-row mean cross-entropy over the answer tokens only, weighted per row
  (class balancing), computed from the logits of the last positions only (the batch is
  left-padded, so every answer ends at the last position; ``logits_to_keep`` skips the
  vocabulary projection of the prompt, a fifth of a 135M model's forward pass);
- validation: after the loss, a :class:`GenerationValidator` answers the validation rows
  greedily and adds the per-class metrics (``eval_balanced_accuracy``...), which early
  stopping and the choice of the best checkpoint use;
- bookkeeping: examples seen and seconds spent in training steps (validation excluded).

The callbacks here show a progress bar with the loss and the time left
(:class:`ProgressBar`), stop training at a time limit after a last validation
(:class:`TimeLimit`) and make sure the last step is validated and saved
(:class:`ValidateLastStep`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_hybrid._quiet import quiet_import_noise

quiet_import_noise()

import torch  # noqa: E402
from transformers import Trainer, TrainerCallback  # noqa: E402

from langchain_hybrid.tuning.data import TuningRow  # noqa: E402
from langchain_hybrid.tuning.validation import (  # noqa: E402
    ValidationScores,
    generate_answers,
    score_answers,
)

__all__ = [
    "AnswerTrainer",
    "GenerationValidator",
    "MetricsHook",
    "ProgressBar",
    "StepTimer",
    "TimeLimit",
    "ValidateLastStep",
    "answer_loss",
]

logger = logging.getLogger("langchain_hybrid.tuning")


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean over rows of each row's mean cross-entropy on its labelled positions.

    ``logits[:, t]`` predicts ``labels[:, t]`` (already shifted); ``-100`` labels are
    ignored; a row without labels counts for nothing.

    Example:
        >>> logits = torch.zeros(2, 3, 4)
        >>> labels = torch.tensor([[-100, 1, 2], [-100, -100, 3]])
        >>> round(answer_loss(logits, labels, torch.ones(2)).item(), 4)  # log(4)
        1.3863
    """
    ce = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none"
    )
    mask = (labels != -100).to(ce.dtype)
    counts = mask.sum(dim=1)
    per_row = (ce * mask).sum(dim=1) / counts.clamp(min=1)
    weights = weights.to(ce.dtype) * (counts > 0).to(ce.dtype)
    return (per_row * weights).sum() / weights.sum().clamp(min=1e-8)


def _accepts_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


class GenerationValidator:
    """Answer the validation rows greedily and grade them per class.

    Args:
        rows: the validation rows to answer.
        prompts: their prompt ids (as the live route renders them).
        tokenizer: decodes the answers.
        max_new_tokens: the answer token limit (the local tier's ``max_tokens``).
        batch_size: prompts generated at once.
        autocast_dtype: run generation under autocast in this dtype (None: the model's).
    """

    def __init__(
        self,
        rows: Sequence[TuningRow],
        prompts: Sequence[Sequence[int]],
        tokenizer: Any,
        *,
        max_new_tokens: int,
        batch_size: int,
        autocast_dtype: Any = None,
    ) -> None:
        self.rows = list(rows)
        self.prompts = [list(p) for p in prompts]
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype
        #: The answers of each validation pass, by global step.
        self.answers: dict[int, list[str]] = {}

    def __call__(self, model: Any, step: int) -> ValidationScores:
        """Answer and grade every row with ``model``; remember the answers under ``step``."""
        answers = generate_answers(
            model,
            self.tokenizer,
            self.prompts,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            autocast_dtype=self.autocast_dtype,
        )
        self.answers[step] = answers
        return score_answers(self.rows, answers)


class AnswerTrainer(Trainer):
    """A ``Trainer`` with the answer-only weighted loss and per-class generation validation."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, validator: GenerationValidator | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.validator = validator
        self.examples_seen = 0
        self.eval_seconds: list[float] = []
        self._keep_logits = _accepts_logits_to_keep(self.model)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """Return the answer-only weighted loss of a left-padded batch (module docstring)."""
        labels = inputs["labels"]
        keep = int(inputs["answer_length"]) + 1
        kwargs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids")}
        if self._keep_logits:
            kwargs["logits_to_keep"] = keep
        outputs = model(**kwargs, use_cache=False)
        logits = outputs.logits[:, -keep:-1]
        loss = answer_loss(logits, labels[:, labels.shape[1] - keep + 1 :], inputs["weights"])
        return (loss, {}) if return_outputs else loss

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Run the stock step and count the examples it trained on."""
        self.examples_seen += int(inputs["input_ids"].shape[0])
        return super().training_step(model, inputs, *args, **kwargs)

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        """Run the stock loss evaluation, then add the per-class generation metrics."""
        started = time.perf_counter()
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        metrics: dict[str, float] = output.metrics if output.metrics is not None else {}
        if self.validator is not None:
            scores = self.validator(self.model, self.state.global_step)
            for name, value in scores.metrics().items():
                metrics[f"{prefix}_{name}"] = value
        self.eval_seconds.append(time.perf_counter() - started)
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        logger.info("validation at step %d: %s", self.state.global_step, shown)
        return output


class ProgressBar(TrainerCallback):
    """A tqdm bar of optimizer steps with the last loss, validation score and time left.

    When the bar is off, each training-loss log is an INFO record of the
    ``langchain_hybrid.tuning`` logger instead (step, loss, time left), for logs of
    unattended runs.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.postfix: dict[str, str] = {}
        self.started = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the bar."""
        from tqdm.auto import tqdm

        self.started = time.perf_counter()
        self.bar = tqdm(
            total=state.max_steps,
            desc="tuning",
            unit="step",
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Advance the bar to the current step."""
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Show the last training loss and validation score."""
        if self.bar is None or not logs:
            return
        if "loss" in logs and not self.enabled and state.global_step:
            elapsed = time.perf_counter() - self.started
            left = elapsed / state.global_step * (state.max_steps - state.global_step)
            logger.info(
                "step %d/%d  loss %.4f  %.0f s elapsed, about %.0f s left (validation included)",
                state.global_step,
                state.max_steps,
                logs["loss"],
                elapsed,
                left,
            )
        if "loss" in logs:
            self.postfix["loss"] = f"{logs['loss']:.3f}"
        if "eval_balanced_accuracy" in logs:
            self.postfix["val"] = f"{logs['eval_balanced_accuracy']:.3f}"
        self.bar.set_postfix(self.postfix, refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TimeLimit(TrainerCallback):
    """Stop after a validation and a save once the time limit would otherwise be passed.

    Training stops at the first step where the elapsed time plus the last validation's
    duration reaches ``seconds``; that step is validated and saved, so the best
    checkpoint is chosen among all validated steps.
    """

    def __init__(self, seconds: float | None, *, started: float | None = None) -> None:
        self.seconds = seconds
        self.started = time.perf_counter() if started is None else started
        #: The trainer whose last validation time is kept in reserve (set after building it).
        self.trainer_ref: Any = None
        self.hit = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Stop (validating and saving this step) once the time is up."""
        if self.seconds is None:
            return control
        reserve = 0.0
        trainer = self.trainer_ref
        if trainer is not None and trainer.eval_seconds:
            reserve = trainer.eval_seconds[-1]
        if time.perf_counter() - self.started + reserve >= self.seconds:
            self.hit = True
            control.should_training_stop = True
            control.should_evaluate = True
            control.should_save = True
        return control


class ValidateLastStep(TrainerCallback):
    """Validate and save the last step (the stock loop only validates every ``eval_steps``)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Ask for a validation and a save on the last step."""
        if state.global_step >= state.max_steps:
            control.should_evaluate = True
            control.should_save = True
        return control


class StepTimer(TrainerCallback):
    """Add up the seconds spent in training steps (forward, backward, optimizer)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start: float | None = None

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start timing a step."""
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop timing a step."""
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None


class MetricsHook(TrainerCallback):
    """Call ``function`` with the step and metrics of every validation."""

    def __init__(self, function: Callable[[dict[str, Any]], None]) -> None:
        self.function = function

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        """Pass the validation's metrics on."""
        self.function({"step": state.global_step, **(metrics or {})})
