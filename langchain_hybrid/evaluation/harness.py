"""The evaluation harness: Cloud-only, Local-only and Hybrid on the same examples.

:func:`evaluate` runs the local tier once per example (:func:`~langchain_hybrid.
evaluation.collect.collect_local`, or reuses saved records), gets the cloud's answers from
a :class:`CloudSource`, and replays the policy's decision on every local answer with
``policy.judge(answer, max_tokens=...)``, exactly as the live route decides. Three cloud
sources:

- :class:`LiveCloud`: any cloud ``BaseChatModel`` (e.g. ``ChatOpenAI(base_url=...,
  model=...)`` for any OpenAI-compatible endpoint); asked only for the examples the
  evaluated systems need.
- :class:`ReplayCloud`: the responses recorded in the dataset for one model (GSM8K holds
  GPT-4's); free, and reproduces the recorded text and correctness exactly. Token counts
  are estimated (4 characters per token) when they were not recorded, and the report says so.
- :class:`AssumedCloud`: no answers, an assumed accuracy; the report labels it so.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_hybrid import RoutingPolicy
    >>> from langchain_hybrid.costs import PriceTable
    >>> from langchain_hybrid.evaluation.records import CloudRecord, Example
    >>> ex = Example(id="1", question="6*7?", answers=("42",), task="math",
    ...              recorded={"gpt-4": CloudRecord("gpt-4", "6*7 = 42", True)})
    >>> local = GenericFakeChatModel(messages=iter(["I don't know."]))
    >>> report = evaluate([ex], local=local, policy=RoutingPolicy(),
    ...                   cloud_source=ReplayCloud("gpt-4"), prices=PriceTable.paper_gpt4(),
    ...                   max_tokens=64, progress=False)
    >>> [(r.system, r.accuracy, r.cloud_share) for r in report.rows]
    [('cloud-only', 1.0, 1.0), ('local-only', 0.0, 0.0), ('hybrid', 1.0, 1.0)]
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_hybrid.costs import PriceTable, token_usage
from langchain_hybrid.errors import DatasetError
from langchain_hybrid.evaluation.collect import _Timer, collect_local, progress_bar
from langchain_hybrid.evaluation.graders import Grader, declines, grade
from langchain_hybrid.evaluation.records import Example, LocalRecord, prompt_digest
from langchain_hybrid.evaluation.report import SYSTEMS, EvaluationReport, System, SystemRow
from langchain_hybrid.evaluation.statistics import auroc, grouped_auroc_interval
from langchain_hybrid.hidden_states import hidden_vectors
from langchain_hybrid.logprobs import message_logprobs
from langchain_hybrid.routing.confidence import (
    ConfidenceScorer,
    available_scorers,
    scorer_from_config,
)
from langchain_hybrid.routing.policy import RoutingPolicy, Verdict, answer_text, prompt_text
from langchain_hybrid.routing.rules import RoutingContext
from langchain_hybrid.routing.stats import percentile

__all__ = [
    "AssumedCloud",
    "CloudAnswer",
    "CloudSource",
    "LiveCloud",
    "ReplayCloud",
    "estimate_tokens",
    "evaluate",
    "fitted_overlap",
    "scorer_aurocs",
]

_CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Estimate a token count as one token per 4 characters (at least 1 for non-empty text).

    Example:
        >>> estimate_tokens("What is the capital of France?")
        8
    """
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _prompt_tokens(prompt: Sequence[BaseMessage]) -> int:
    return sum(estimate_tokens(str(m.text)) for m in prompt)


@dataclass(frozen=True)
class CloudAnswer:
    """The cloud's outcome on one example.

    ``correct`` is 1.0 or 0.0, or the assumed accuracy when no answer exists;
    ``latency_s`` is None when unknown; ``estimated`` says the token counts are estimates.

    Example:
        >>> CloudAnswer(correct=1.0, prompt_tokens=10, completion_tokens=5).estimated
        False
    """

    correct: float
    prompt_tokens: int
    completion_tokens: int
    latency_s: float | None = None
    text: str | None = None
    estimated: bool = False


@dataclass(frozen=True)
class _Asked:
    """One example the cloud is asked about: its prompt and the local tier's record, by id."""

    example: Example
    prompts: Mapping[str, Sequence[BaseMessage]]
    local: Mapping[str, LocalRecord]

    @property
    def prompt(self) -> Sequence[BaseMessage]:
        return self.prompts[self.example.id]

    @property
    def record(self) -> LocalRecord | None:
        return self.local.get(self.example.id)

    def answer(
        self,
        correct: float,
        text: str | None,
        tokens: tuple[int | None, int | None],
        latency_s: float | None,
    ) -> CloudAnswer:
        """Return the cloud's answer; token counts not known (None) are estimated, and say so.

        The prompt's count is estimated from the prompt, the completion's from ``text``.
        """
        prompt_tokens, completion_tokens = tokens
        return CloudAnswer(
            correct=correct,
            prompt_tokens=_prompt_tokens(self.prompt) if prompt_tokens is None else prompt_tokens,
            completion_tokens=(
                estimate_tokens(text or "") if completion_tokens is None else completion_tokens
            ),
            latency_s=latency_s,
            text=text,
            estimated=prompt_tokens is None or completion_tokens is None,
        )


class CloudSource(ABC):
    """Where the cloud's answers come from (see the module docstring for the three kinds).

    A source implements :meth:`describe` and ``_answer`` (or :meth:`answers` itself).

    Example:
        >>> AssumedCloud(0.9).describe()
        'assumed accuracy 90.0% (gpt-4)'
    """

    #: The cloud model's name, used for prices.
    model: str

    @abstractmethod
    def describe(self) -> str:
        """Return how the report names this source."""

    def answers(
        self,
        examples: Sequence[Example],
        prompts: Mapping[str, Sequence[BaseMessage]],
        local: Mapping[str, LocalRecord],
        *,
        progress: bool | None = None,
    ) -> dict[str, CloudAnswer]:
        """Return the cloud's answer to each of ``examples`` by example id."""
        asked = [_Asked(ex, prompts, local) for ex in examples]
        answers = self._answer(asked, progress)
        return {a.example.id: answer for a, answer in zip(asked, answers, strict=True)}

    def _answer(self, asked: Sequence[_Asked], progress: bool | None) -> list[CloudAnswer]:
        """Return the cloud's answers to ``asked``, in order."""
        raise NotImplementedError(f"{type(self).__name__} implements neither answers nor _answer")

    def notes(self, answers: Mapping[str, CloudAnswer]) -> list[str]:
        """Return what the report must say about these answers (estimates, assumptions)."""
        notes: list[str] = []
        if any(a.estimated for a in answers.values()):
            notes.append(
                f"cloud token counts are estimated at {_CHARS_PER_TOKEN} characters per token "
                "where they were not recorded"
            )
        if answers and any(a.latency_s is None for a in answers.values()):
            notes.append(
                "cloud latency is unknown (not recorded), so latencies that include the cloud "
                "are n/a"
            )
        return notes


class LiveCloud(CloudSource):
    """A live cloud chat model, sent the same prompt as the local tier, graded here.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> LiveCloud(GenericFakeChatModel(messages=iter([])), model="gpt-4o").describe()
        'live gpt-4o'
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        model: str | None = None,
        grader: Grader | None = None,
        batch_size: int = 8,
    ) -> None:
        """Wrap ``chat_model``; ``model`` names it for prices (default: its ``model_name``)."""
        self.chat_model = chat_model
        self.model = model or str(
            getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None) or ""
        )
        self.grader = grader or grade
        self.batch_size = batch_size

    def describe(self) -> str:
        """Return ``live <model>``."""
        return f"live {self.model}"

    def _answer(self, asked: Sequence[_Asked], progress: bool | None) -> list[CloudAnswer]:
        """Ask the cloud model, in batches, and grade its answers."""
        out: list[CloudAnswer] = []
        bar = progress_bar(len(asked), "cloud model", progress)
        try:
            for start in range(0, len(asked), self.batch_size):
                chunk = asked[start : start + self.batch_size]
                timers = [_Timer() for _ in chunk]
                configs: list[RunnableConfig] = [{"callbacks": [t]} for t in timers]
                inputs: list[LanguageModelInput] = [list(a.prompt) for a in chunk]
                replies = self.chat_model.batch(inputs, configs)
                for a, timer, reply in zip(chunk, timers, replies, strict=True):
                    text = str(reply.text)
                    usage: tuple[int | None, int | None] = (None, None)  # None: estimated
                    if getattr(reply, "usage_metadata", None):
                        usage = token_usage(reply)
                    correct = 1.0 if self.grader(text, a.example) else 0.0
                    out.append(a.answer(correct, text, usage, timer.seconds))
                bar.update(len(chunk))
        finally:
            bar.close()
        return out


class ReplayCloud(CloudSource):
    """The cloud answers recorded in the dataset for one model, replayed exactly.

    Args:
        model: the recorded model's name (a key of ``Example.recorded``).
        grader: grades recordings whose correctness was not recorded.
        latency_s: an assumed latency per cloud call when none was recorded (the report
            says it is assumed); None leaves it unknown.

    Example:
        >>> ReplayCloud("gpt-4-1106-preview").describe()
        'replay of recorded gpt-4-1106-preview answers'
    """

    def __init__(
        self, model: str, *, grader: Grader | None = None, latency_s: float | None = None
    ) -> None:
        """Replay ``model``'s recorded answers."""
        self.model = model
        self.grader = grader or grade
        self.latency_s = latency_s

    def describe(self) -> str:
        """Return ``replay of recorded <model> answers``."""
        return f"replay of recorded {self.model} answers"

    def _answer(self, asked: Sequence[_Asked], progress: bool | None) -> list[CloudAnswer]:
        """Return the recorded answers; :class:`DatasetError` when one is missing."""
        out: list[CloudAnswer] = []
        for a in asked:
            record = a.example.recorded.get(self.model)
            if record is None:
                known = sorted({m for b in asked for m in b.example.recorded})
                raise DatasetError(
                    f"example {a.example.id!r} has no recorded answer from {self.model!r}; "
                    f"recorded models: {', '.join(known) or 'none'}. Pick one of them, or "
                    "use a live cloud or an assumed cloud accuracy"
                )
            correct = record.correct
            if correct is None:
                correct = self.grader(record.text, a.example)
            tokens = (record.prompt_tokens, record.completion_tokens)
            latency = record.latency_s if record.latency_s is not None else self.latency_s
            out.append(a.answer(1.0 if correct else 0.0, record.text, tokens, latency))
        return out

    def notes(self, answers: Mapping[str, CloudAnswer]) -> list[str]:
        """Add the assumed latency, when one was given, to the base notes."""
        notes = super().notes(answers)
        if self.latency_s is not None:
            notes.append(f"cloud latency assumed {self.latency_s:g} s per call where not recorded")
        return notes


class AssumedCloud(CloudSource):
    """No cloud answers: an assumed cloud accuracy, labelled as an assumption in the report.

    Each example counts as ``accuracy`` of a correct answer. Token counts are estimated
    (the prompt's characters, and the local answer's length for the completion).

    Example:
        >>> AssumedCloud(0.85, model="gpt-4o", latency_s=1.5).describe()
        'assumed accuracy 85.0% (gpt-4o)'
    """

    def __init__(self, accuracy: float, *, model: str = "gpt-4", latency_s: float | None = None):
        """Assume the cloud answers correctly with probability ``accuracy``."""
        if isinstance(accuracy, bool) or not 0.0 <= float(accuracy) <= 1.0:
            raise ValueError(f"the assumed cloud accuracy must be within [0, 1], got {accuracy!r}")
        self.accuracy = float(accuracy)
        self.model = model
        self.latency_s = latency_s

    def describe(self) -> str:
        """Return ``assumed accuracy <p> (<model>)``."""
        return f"assumed accuracy {100 * self.accuracy:.1f}% ({self.model})"

    def _answer(self, asked: Sequence[_Asked], progress: bool | None) -> list[CloudAnswer]:
        """Return the assumed outcome of each example (its completion: the local answer's)."""
        out: list[CloudAnswer] = []
        for a in asked:
            record = a.record
            completion = token_usage(record.answer)[1] if record is not None else 0
            if not completion and record is not None:
                completion = estimate_tokens(str(record.answer.text))
            out.append(a.answer(self.accuracy, None, (None, completion), self.latency_s))
        return out

    def notes(self, answers: Mapping[str, CloudAnswer]) -> list[str]:
        """Say that the cloud's accuracy, tokens (and latency) are assumptions."""
        notes = [
            f"cloud accuracy is an assumption ({100 * self.accuracy:.1f}%), not a measurement; "
            "cloud tokens are estimated from the prompt and the local answer's length"
        ]
        if self.latency_s is None:
            notes.append("cloud latency is unknown, so latencies that include the cloud are n/a")
        else:
            notes.append(f"cloud latency assumed {self.latency_s:g} s per call")
        return notes


def _default_scorers() -> dict[str, ConfidenceScorer]:
    """Every registered scorer that can be built without parameters."""
    scorers: dict[str, ConfidenceScorer] = {}
    for name in available_scorers():
        try:
            scorers[name] = scorer_from_config(name)
        except (TypeError, ValueError):
            continue  # needs fitted parameters (e.g. "combined")
    return scorers


def scorer_scores(
    records: Sequence[LocalRecord],
    scorers: Mapping[str, ConfidenceScorer] | None = None,
) -> dict[str, list[float]]:
    """Return each scorer's score of every record, as the live route computes it.

    ``scorers`` defaults to every registered scorer that needs no fitted parameters.
    Scorers read the answer's log-probs, text, finish reason, prompt and hidden states.
    """
    scorers = _default_scorers() if scorers is None else dict(scorers)
    return {
        name: [
            scorer.score(
                message_logprobs(r.answer),
                answer_text(r.answer),
                finish_reason=r.answer.response_metadata.get("finish_reason"),
                prompt=prompt_text(list(r.prompt)),
                hidden=hidden_vectors(r.answer.response_metadata),
            ).score
            for r in records
        ]
        for name, scorer in scorers.items()
    }


def scorer_aurocs(
    records: Sequence[LocalRecord],
    scorers: Mapping[str, ConfidenceScorer] | None = None,
) -> dict[str, float | None]:
    """AUROC of each scorer's score for predicting that the local answer is correct.

    ``scorers`` defaults to every registered scorer that needs no fitted parameters. The
    value is None when the records hold only correct or only wrong answers, or when the
    scorer gives every answer the same score (``margin`` needs ``top_logprobs``).

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> def rec(i, lp, ok):
        ...     answer = AIMessage("x", response_metadata={"logprobs": {"content": [
        ...         {"token": "x", "logprob": lp}]}})
        ...     return LocalRecord(str(i), (), answer, ok, 0.1, 8)
        >>> records = [rec(0, -0.1, True), rec(1, -2.0, False), rec(2, -0.5, True)]
        >>> scorer_aurocs(records)["mean_logprob"]
        1.0
    """
    labels = [r.correct for r in records]
    return {
        name: auroc(labels, scores) if len(set(scores)) > 1 else None
        for name, scores in scorer_scores(records, scorers).items()
    }


def _aurocs(
    records: Sequence[LocalRecord], policy: RoutingPolicy
) -> tuple[dict[str, float | None], dict[str, tuple[float, float] | None]]:
    """Every scorer's AUROC (the policy's own as ``policy``) with its 95% interval by group."""
    scores = scorer_scores(records)
    scores["policy"] = scorer_scores(records, {"policy": policy.scorer})["policy"]
    labels = [r.correct for r in records]
    groups = [r.group_key for r in records]
    values: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float] | None] = {}
    for name, s in scores.items():
        constant = len(set(s)) < 2  # one score for all (e.g. margins without top_logprobs)
        values[name] = None if constant else auroc(labels, s)
        intervals[name] = None if constant else grouped_auroc_interval(labels, s, groups)
    return values, intervals


@dataclass(frozen=True)
class _Outcome:
    """One system's result on one example."""

    correct: float
    cost: float
    latency: float | None
    cloud: bool
    declined: bool | None = None  # whether the answer declines (None: no text to tell)


def _local_cost(record: LocalRecord, prices: PriceTable) -> float:
    model = str(record.answer.response_metadata.get("model_name") or "")
    tokens_in, tokens_out = token_usage(record.answer)
    return prices.local_cost_of(model, tokens_in, tokens_out) if model else 0.0


def _cloud_cost(answer: CloudAnswer, model: str, prices: PriceTable) -> float:
    return prices.cost_of(model, answer.prompt_tokens, answer.completion_tokens)


def _local_attempt_latency(record: LocalRecord, verdict: Verdict) -> float:
    """Latency of the local attempt: the whole answer, or its share up to an early abort."""
    if not verdict.early_abort:
        return record.latency_s
    produced = token_usage(record.answer)[1] or int(verdict.features.get("n_tokens", 0))
    if produced <= 0:
        return record.latency_s
    return record.latency_s * min(1.0, verdict.n_tokens / produced)


@dataclass(frozen=True)
class _Decision:
    """Where the hybrid sends one example, and why."""

    escalate: bool
    reason: str
    verdict: Verdict | None  # None when a pre-routing rule decided before generation


def _decide(record: LocalRecord, policy: RoutingPolicy) -> _Decision:
    pre = policy.pre_route(RoutingContext(list(record.prompt)))
    if pre is not None:
        return _Decision(pre.tier == "cloud", pre.reason, None)
    # The request goes along, as on the live route: learned scorers read prompt features.
    verdict = policy.judge(record.answer, max_tokens=record.max_tokens, context=list(record.prompt))
    return _Decision(verdict.escalate, verdict.reason, verdict)


def _local_outcome(record: LocalRecord, prices: PriceTable) -> _Outcome:
    """Return the local answer's outcome: its correctness, cost, latency and declining."""
    declined = _declines(str(record.answer.text))
    return _Outcome(float(record.correct), _local_cost(record, prices), record.latency_s, False,
                    declined)  # fmt: skip


def _declines(text: str | None) -> bool | None:
    return None if text is None else declines(text)


def _hybrid_outcome(
    record: LocalRecord, decision: _Decision, cloud: _Outcome, local: _Outcome
) -> _Outcome:
    if not decision.escalate:
        return local
    if decision.verdict is None or decision.verdict.reason == "predicted_unlikely":
        # Sent to the cloud before any local generation (a rule, or the prompt gate).
        return cloud
    attempt = _local_attempt_latency(record, decision.verdict)
    latency = None if cloud.latency is None else attempt + cloud.latency
    return _Outcome(cloud.correct, local.cost + cloud.cost, latency, True, cloud.declined)


def _row(
    system: System, outcomes: Sequence[_Outcome], baseline_cost: float, examples: Sequence[Example]
) -> SystemRow:
    n = len(outcomes)
    latencies = [o.latency for o in outcomes]
    known = [x for x in latencies if x is not None]
    complete = len(known) == n and n > 0
    cost = sum(o.cost for o in outcomes)
    return SystemRow(
        system=system,
        n=n,
        accuracy=sum(o.correct for o in outcomes) / n if n else 0.0,
        cloud_share=sum(o.cloud for o in outcomes) / n if n else 0.0,
        cost_usd=cost,
        cost_avoided_usd=max(0.0, baseline_cost - cost),
        latency_mean_s=sum(known) / n if complete else None,
        latency_p95_s=percentile(known, 95) if complete else None,
        by_class=_by_class(outcomes, examples),
    )


def _by_class(outcomes: Sequence[_Outcome], examples: Sequence[Example]) -> dict[str, Any] | None:
    """Accuracy on answerable and unanswerable questions over a passage, and declines."""
    pairs = [(o, ex) for o, ex in zip(outcomes, examples, strict=True) if ex.context is not None]
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for name, answerable in (("answerable", True), ("unanswerable", False)):
        group = [o.correct for o, ex in pairs if ex.answerable == answerable]
        out[name] = {"n": len(group), "accuracy": sum(group) / len(group) if group else None}
    declined = [o.declined for o, _ in pairs]
    out["decline_rate"] = (
        None if any(d is None for d in declined) else sum(bool(d) for d in declined) / len(pairs)
    )
    return out


def fitted_overlap(
    policy: RoutingPolicy, prompts: Iterable[Sequence[BaseMessage]], dataset: str
) -> str | None:
    """Say when the data measured is (partly) the data ``policy`` was fitted on, else None.

    Reads the policy's ``fitted_on``: its ``prompt_digests`` (written by ``calibrate``)
    against the digests of ``prompts``, or, for policies fitted before digests were
    recorded, its ``dataset`` name against ``dataset``.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> prompt = [HumanMessage("Capital of France?")]
        >>> fitted = RoutingPolicy(fitted_on={"prompt_digests": [prompt_digest(prompt)]})
        >>> fitted_overlap(fitted, [prompt], "qa.jsonl")[:47]
        '1 of 1 examples were among the rows this policy'
        >>> fitted_overlap(RoutingPolicy(), [prompt], "qa.jsonl") is None
        True
    """
    fitted = policy.fitted_on or {}
    digests = fitted.get("prompt_digests")
    prompts = list(prompts)
    if isinstance(digests, list) and digests:
        known = set(digests)
        same = sum(prompt_digest(p) in known for p in prompts)
        if not same:
            return None
        return (
            f"{same} of {len(prompts)} examples were among the rows this policy was fitted on "
            "(its fitted_on): the Hybrid row is optimistic on them; evaluate on rows that "
            "calibrate never saw (other articles or passages for RAG data)"
        )
    if fitted.get("dataset") and fitted.get("dataset") == dataset:
        return (
            f"this policy was fitted on a dataset named {dataset!r} too (its fitted_on): if "
            "these are the same rows, the Hybrid row is optimistic; evaluate on rows that "
            "calibrate never saw"
        )
    return None


def evaluate(
    examples: Sequence[Example],
    *,
    local: BaseChatModel | None,
    policy: RoutingPolicy,
    cloud_source: CloudSource,
    prices: PriceTable,
    max_tokens: int,
    records: Sequence[LocalRecord] | None = None,
    systems: Collection[System] = SYSTEMS,
    grader: Grader | None = None,
    batch_size: int = 8,
    progress: bool | None = None,
    dataset: str = "examples",
    base: BaseChatModel | None = None,
    base_records: Sequence[LocalRecord] | None = None,
) -> EvaluationReport:
    """Compare Cloud-only, Local-only and Hybrid on ``examples``; see the module docstring.

    Args:
        examples: the labelled examples.
        local: the local tier (e.g. ``ChatTransformers()``); None when every example has a
            record in ``records``.
        policy: the routing policy the hybrid row replays.
        cloud_source: :class:`LiveCloud`, :class:`ReplayCloud` or :class:`AssumedCloud`.
        prices: prices of the cloud (and, if listed, the local) model, e.g.
            ``PriceTable.default()`` or ``PriceTable.paper_gpt4()``.
        max_tokens: the local tier's token limit.
        records: local records collected before (e.g. :func:`~langchain_hybrid.evaluation.
            records.load_records`); examples without one are collected now.
        systems: which rows to compute; a live cloud is asked only for the examples they
            need (all for ``cloud-only``, the escalated ones for ``hybrid``).
        grader: ``(prediction, example) -> bool`` (default: the workload's convention).
        batch_size: prompts per ``batch`` call of the local (and live cloud) model.
        progress: show progress bars (None: only when stderr is a terminal).
        dataset: the name the report gives the data.
        base: a second local model, to compare with ``local`` in a row of its own
            (``base-local-only``: e.g. the stock model beside its tuned adapter).
        base_records: its records collected before (examples without one run ``base``).

    Rows: kept-local examples count the local answer's correctness, cost and latency;
    escalated ones the cloud's correctness and cost plus the local cost, and the latency of
    the local attempt (up to an early abort, in proportion to the tokens spent) plus the
    cloud's. Cost avoided is the cloud-only cost minus the row's cost. On questions over a
    passage each row also gives its accuracy on answerable and unanswerable questions and
    how often its answers decline (``by_class``). Each scorer's AUROC comes with a 95%
    interval from a bootstrap over groups (articles, passages).

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> ex = Example(id="1", question="Capital of France?", answers=("Paris",))
        >>> local = GenericFakeChatModel(messages=iter(["Paris"]))
        >>> report = evaluate([ex], local=local, policy=RoutingPolicy(),
        ...                   cloud_source=AssumedCloud(0.9), prices=PriceTable.default(),
        ...                   max_tokens=16, systems=["local-only"], progress=False)
        >>> [(r.system, r.accuracy) for r in report.rows]
        [('local-only', 1.0)]
    """
    if not examples:
        raise ValueError("evaluate() needs at least one example")
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        raise ValueError("example ids must be unique")
    notes: list[str] = []
    collect = _Collector(examples, max_tokens, batch_size, progress, grader, notes)
    local_records = collect(records, local, "local")
    prompts = {r.example_id: r.prompt for r in local_records}
    overlap = fitted_overlap(policy, prompts.values(), dataset)
    if overlap is not None:
        warnings.warn(overlap, UserWarning, stacklevel=2)
        notes.append(overlap)
    settings = _settings(policy, max_tokens, local_records, cloud_source.model, prices)
    fitted_model = (policy.fitted_on or {}).get("model")
    if isinstance(fitted_model, str) and settings["local_model"] not in (None, fitted_model):
        mismatch = (
            f"the policy was calibrated on the local model {fitted_model!r}, but these answers "
            f"are {settings['local_model']!r}'s: recalibrate on it (--adapter must match too)"
        )
        warnings.warn(mismatch, UserWarning, stacklevel=2)
        notes.append(mismatch)
    errors = sum(r.answer.response_metadata.get("finish_reason") == "error" for r in local_records)
    if errors:
        notes.append(f"the local model failed on {errors} examples (counted wrong, escalated)")

    decisions = {r.example_id: _decide(r, policy) for r in local_records}
    needed = _cloud_needed(examples, systems, decisions)
    by_id = {r.example_id: r for r in local_records}
    cloud = cloud_source.answers(needed, prompts, by_id, progress=progress) if needed else {}
    notes.extend(cloud_source.notes(cloud))
    outcomes = _outcomes(local_records, decisions, cloud, cloud_source.model, prices, systems)
    if base is not None or base_records is not None:
        base_list = collect(base_records, base, "base")
        outcomes["base-local-only"] = [_local_outcome(r, prices) for r in base_list]
    baseline = sum(o.cost for o in outcomes["cloud-only"]) if "cloud-only" in systems else 0.0
    order: tuple[System, ...] = ("cloud-only", "local-only", "base-local-only", "hybrid")
    rows = [_row(s, outcomes[s], baseline, examples) for s in order if outcomes.get(s)]
    if "cloud-only" not in systems:
        notes.append("cost avoided needs the cloud-only row; shown as 0")
    auroc, auroc_ci = _aurocs(local_records, policy)
    reasons = Counter(decisions[i].reason for i in ids) if "hybrid" in systems else Counter()
    return EvaluationReport(
        dataset=dataset,
        n=len(examples),
        cloud_source=cloud_source.describe(),
        rows=tuple(rows),
        auroc=auroc,
        reasons=dict(reasons),
        notes=tuple(notes),
        settings=settings,
        records=tuple(local_records),
        auroc_ci=auroc_ci,
    )


@dataclass
class _Collector:
    """Collects the local records ``evaluate`` needs (reusing saved ones), with notes."""

    examples: Sequence[Example]
    max_tokens: int
    batch_size: int
    progress: bool | None
    grader: Grader | None
    notes: list[str]

    def __call__(
        self, records: Sequence[LocalRecord] | None, model: BaseChatModel | None, what: str
    ) -> list[LocalRecord]:
        """Return one record per example: saved in ``records``, else answered by ``model``."""
        by_id = {r.example_id: r for r in records or ()}
        missing = [ex for ex in self.examples if ex.id not in by_id]
        if records is not None:
            reused = len(self.examples) - len(missing)
            self.notes.append(f"{what} answers of {reused} examples reused from saved records")
            limits = {by_id[ex.id].max_tokens for ex in self.examples if ex.id in by_id}
            if limits - {self.max_tokens}:
                self.notes.append(f"saved records were collected with max_tokens {sorted(limits)}")
        if missing:
            if model is None:
                raise ValueError(
                    f"{len(missing)} examples have no saved record (first: {missing[0].id!r}) "
                    f"and no {what} model was given; pass the model or records for every "
                    "example"
                )
            collected = collect_local(
                missing,
                model,
                max_tokens=self.max_tokens,
                batch_size=self.batch_size,
                progress=self.progress,
                grader=self.grader,
            )
            by_id.update((r.example_id, r) for r in collected)
            if self.batch_size > 1 and what == "local":
                self.notes.append(
                    f"local latency is each answer's run time inside a batch of "
                    f"{self.batch_size} (batch_size=1 measures one request at a time)"
                )
        return [by_id[ex.id] for ex in self.examples]


def _cloud_needed(
    examples: Sequence[Example], systems: Collection[System], decisions: Mapping[str, _Decision]
) -> list[Example]:
    """Return the examples the cloud must answer: all for cloud-only, else the escalated."""
    if "cloud-only" in systems:
        return list(examples)
    if "hybrid" in systems:
        return [ex for ex in examples if decisions[ex.id].escalate]
    return []


def _outcomes(
    local_records: Sequence[LocalRecord],
    decisions: Mapping[str, _Decision],
    cloud: Mapping[str, CloudAnswer],
    cloud_model: str,
    prices: PriceTable,
    systems: Collection[System],
) -> dict[System, list[_Outcome]]:
    """Each system's outcome on each example (an empty list for a system not asked for)."""
    cloud_costs = {i: _cloud_cost(a, cloud_model, prices) for i, a in cloud.items()}
    cloud_outcomes = {
        i: _Outcome(a.correct, cloud_costs[i], a.latency_s, True, _declines(a.text))
        for i, a in cloud.items()
    }
    local_outcomes = [_local_outcome(r, prices) for r in local_records]
    # Examples the cloud was not asked for never reach it; their placeholder is never used.
    unused = _Outcome(0.0, 0.0, 0.0, True)
    hybrid = [
        _hybrid_outcome(r, decisions[r.example_id], cloud_outcomes.get(r.example_id, unused), o)
        for r, o in zip(local_records, local_outcomes, strict=True)
    ]
    ids = [r.example_id for r in local_records]
    return {
        "cloud-only": [cloud_outcomes[i] for i in ids if i in cloud_outcomes]
        if "cloud-only" in systems
        else [],
        "local-only": local_outcomes if "local-only" in systems else [],
        "hybrid": hybrid if "hybrid" in systems else [],
    }


def _settings(
    policy: RoutingPolicy,
    max_tokens: int,
    records: Sequence[LocalRecord],
    cloud_model: str,
    prices: PriceTable,
) -> dict[str, Any]:
    """Return what produced the report: policy, token limit, models, the cloud's prices."""
    local_model = next(
        (str(r.answer.response_metadata.get("model_name")) for r in records
         if r.answer.response_metadata.get("model_name")),
        None,
    )  # fmt: skip
    return {
        "policy": policy.to_dict(),
        "max_tokens": max_tokens,
        "local_model": local_model,
        "cloud_model": cloud_model,
        "prices": {cloud_model: _price_of(prices, cloud_model)},
    }


def _price_of(prices: PriceTable, model: str) -> dict[str, float] | None:
    price = prices.lookup(model)
    return None if price is None else price.to_dict()
