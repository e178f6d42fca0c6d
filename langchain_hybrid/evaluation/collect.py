"""Run the local tier once per example and keep what it answered (:class:`LocalRecord`).

:func:`prompt_for` builds the prompt of an example (a RAG prompt over the passage, a brief
short-answer prompt, or a step-by-step maths prompt); :func:`collect_local` sends the
prompts to the local model in batches (``ChatTransformers`` decodes a batch as one
``generate``), grades every answer and times it. The records are what evaluation and
calibration replay policies on, so the model runs once whatever is tried afterwards.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_hybrid.evaluation.records import Example
    >>> local = GenericFakeChatModel(messages=iter(["Paris."]))
    >>> ex = Example(id="q1", question="What is the capital of France?", answers=("Paris",))
    >>> [record] = collect_local([ex], local, max_tokens=16, progress=False)
    >>> record.correct, record.answer.text
    (True, 'Paris.')
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig

from langchain_hybrid.evaluation.graders import Grader, grade
from langchain_hybrid.evaluation.records import Example, LocalRecord

__all__ = [
    "DECLINE_SENTENCE",
    "collect_local",
    "progress_bar",
    "prompt_for",
]

logger = logging.getLogger(__name__)

#: What the RAG prompt asks the model to say when the passage does not hold the answer.
DECLINE_SENTENCE = "The passage does not say."

_RAG_SYSTEM = (
    "Answer the question using only the passage. Reply with a short answer of a few words. "
    f'If the passage does not contain the answer, reply exactly: "{DECLINE_SENTENCE}"'
)
_SHORT_SYSTEM = "Answer the question with a short answer of a few words."
_MATH_SYSTEM = (
    "Solve the problem step by step. "
    "End with the final answer as a number on its own line, like: Answer: 42"
)


def prompt_for(example: Example) -> tuple[BaseMessage, ...]:
    r"""Return the messages the local model is sent for ``example``.

    With a ``context``, a RAG prompt that answers from the passage only and says
    :data:`DECLINE_SENTENCE` when the passage does not hold the answer; a ``math`` task gets a
    step-by-step prompt ending in the final number; otherwise a brief short-answer prompt.

    Example:
        >>> ex = Example(id="1", question="Who?", answers=("Ada",), context="Ada wrote it.")
        >>> [m.type for m in prompt_for(ex)]
        ['system', 'human']
        >>> prompt_for(ex)[1].text
        'Passage: Ada wrote it.\n\nQuestion: Who?'
    """
    if example.context is not None:
        user = f"Passage: {example.context}\n\nQuestion: {example.question}"
        return SystemMessage(_RAG_SYSTEM), HumanMessage(user)
    system = _MATH_SYSTEM if example.task == "math" else _SHORT_SYSTEM
    return SystemMessage(system), HumanMessage(example.question)


class _Timer(BaseCallbackHandler):
    """Times one model run: from its start callback to its end (or error) callback."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.start = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.end = time.perf_counter()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.start)


def progress_bar(total: int, description: str, enabled: bool | None = None) -> Any:
    """Return a tqdm progress bar on stderr; off when ``enabled`` is False, or None and not a TTY.

    Example:
        >>> bar = progress_bar(3, "local", enabled=False)
        >>> bar.update(3); bar.close()
    """
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit="ex", disable=not enabled, leave=False)


def _failed_answer(error: BaseException) -> AIMessage:
    """Return the record of a failed local call: an empty answer, which every policy escalates."""
    return AIMessage(
        "",
        response_metadata={"finish_reason": "error", "error": f"{type(error).__name__}: {error}"},
    )


def collect_local(
    examples: Sequence[Example],
    local: BaseChatModel,
    *,
    max_tokens: int,
    batch_size: int = 8,
    progress: bool | None = None,
    grader: Grader | None = None,
) -> list[LocalRecord]:
    """Answer every example once with ``local``, grade and time each answer.

    Args:
        examples: the labelled examples.
        local: the local tier, any chat model whose answers carry log-probs (e.g.
            ``ChatTransformers()``); it is called with ``max_tokens=max_tokens``.
        max_tokens: the local token limit (recorded, so replays see the same limit).
        batch_size: how many prompts go to ``local.batch`` at once.
        progress: show a progress bar (None: only when stderr is a terminal).
        grader: ``(prediction, example) -> bool``; default :func:`~langchain_hybrid.
            evaluation.graders.grade`.

    A call that raises (e.g. a prompt longer than the context window) is recorded as an
    empty, wrong answer with ``finish_reason="error"`` and the error in
    ``response_metadata["error"]``; every policy escalates it, as the live route would.
    ``latency_s`` is the time of the model run; in a batch the runs overlap, so it is the
    latency a request sees in a batch of ``batch_size`` (pass ``batch_size=1`` for
    one-at-a-time latency).

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> ex = Example(id="m1", question="6*7?", answers=("42",), task="math")
        >>> local = GenericFakeChatModel(messages=iter(["6*7 = 42"]))
        >>> collect_local([ex], local, max_tokens=64, progress=False)[0].max_tokens
        64
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    grader = grader or grade
    # An in-process local tier reports its hidden states too: a probe can then be fitted.
    options: dict[str, Any] = {"max_tokens": max_tokens}
    if "hidden_states" in getattr(type(local), "model_fields", {}):
        options["hidden_states"] = True
    records: list[LocalRecord] = []
    bar = progress_bar(len(examples), "local model", progress)
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            prompts = [prompt_for(ex) for ex in chunk]
            timers = [_Timer() for _ in chunk]
            configs: list[RunnableConfig] = [{"callbacks": [t]} for t in timers]
            inputs: list[LanguageModelInput] = [list(p) for p in prompts]
            outputs = local.batch(inputs, configs, return_exceptions=True, **options)
            for ex, prompt, timer, output in zip(chunk, prompts, timers, outputs, strict=True):
                if isinstance(output, BaseException):
                    logger.warning("local model failed on example %s: %s", ex.id, output)
                    answer = _failed_answer(output)
                elif isinstance(output, AIMessage):
                    answer = output
                else:
                    answer = AIMessage(str(getattr(output, "content", output)))
                correct = bool(grader(str(answer.text), ex)) if answer.text else False
                records.append(
                    LocalRecord(
                        example_id=ex.id,
                        prompt=prompt,
                        answer=answer,
                        correct=correct,
                        latency_s=timer.seconds,
                        max_tokens=max_tokens,
                        group=ex.group_key,
                    )
                )
            bar.update(len(chunk))
    finally:
        bar.close()
    return records
