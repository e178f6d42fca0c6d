"""RoutingPolicy: the single source of truth for routing.

A policy holds every setting that decides where a request goes: the confidence scorer and
its threshold, the pre-routing rules, which finish reasons of a local answer escalate, and
when local generation may stop early. It decides twice per request:
:meth:`RoutingPolicy.pre_route` may settle the tier before any generation, and
:meth:`RoutingPolicy.judge` turns the local answer into a :class:`Verdict`. The live route
(``ChatHybrid``, ``ConfidenceGate``) and offline replay (calibration, evaluation) reach
their verdicts through the same :class:`AnswerWatch`, so a saved policy replays exactly the
decisions the live model made. Policies are saved as JSON (what calibration writes).

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> policy = RoutingPolicy(threshold=-0.6, rules=[ForceCloudRule(pattern=r"(?i)legal")])
    >>> policy.pre_route(RoutingContext([HumanMessage("A legal question")])).reason
    'rule_force_cloud'
    >>> answer = AIMessage("Paris", response_metadata={"finish_reason": "stop", "logprobs": {
    ...     "content": [{"token": "Paris", "logprob": -0.05}]}})
    >>> policy.judge(answer).reason
    'confident'
    >>> RoutingPolicy.from_dict(policy.to_dict()) == policy
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_hybrid.errors import PolicyError
from langchain_hybrid.hidden_states import hidden_vectors
from langchain_hybrid.logprobs import LOGPROB_FLOOR, LogprobsLike, logprob_entries, message_logprobs
from langchain_hybrid.routing.adaptive import AdaptiveThreshold
from langchain_hybrid.routing.decision import RouteReason, Tier
from langchain_hybrid.routing.rules import (
    RULE_STAGES,
    ForceCloudRule,
    ForceLocalRule,
    MaxLocalContextRule,
    PolicyRule,
    PrivacyRule,
    Redaction,
    RoutingContext,
    RuleOutcome,
    privacy_rule_of,
    rule_from_dict,
)
from langchain_hybrid.routing.running import EarlyEscalation, RunningConfidence
from langchain_hybrid.routing.scorers import ConfidenceScorer, MeanLogprobScorer, scorer_from_config
from langchain_hybrid.routing.scores import Confidence
from langchain_hybrid.routing.state_gate import StateGate
from langchain_hybrid.routing.validation import AnswerSpec

__all__ = [
    "AdaptiveThreshold",
    "DEFAULT_ESCALATE_FINISH_REASONS",
    "DEFAULT_THRESHOLD",
    "FORMAT_VERSION",
    "AnswerWatch",
    "EarlyEscalation",
    "ForceCloudRule",
    "ForceLocalRule",
    "MaxLocalContextRule",
    "PolicyError",
    "PolicyRule",
    "PrivacyRule",
    "Redaction",
    "RoutingContext",
    "RoutingPolicy",
    "RuleOutcome",
    "Verdict",
    "answer_text",
    "prompt_text",
]

#: Version of the policy file format this code writes; it also reads version 1.
FORMAT_VERSION = 2

#: Threshold on the mean token log-prob of the default policy.
DEFAULT_THRESHOLD = -0.6

#: Finish reasons of a local answer that escalate by default: the answer did not end
#: naturally (token limit, ``timeout=``, cancelled), so it is not kept as confident.
DEFAULT_ESCALATE_FINISH_REASONS: frozenset[str] = frozenset({"length", "timeout", "cancelled"})

_FORCED_TO_REASON: dict[str, RouteReason] = {
    "hedge": "hedge",
    "unknown_token": "unknown_token",
    "empty": "empty_answer",
    "no_logprobs": "no_logprobs",
}
_HOPELESS_TO_REASON: dict[str, RouteReason] = {"hedge": "hedge", "unknown_token": "unknown_token"}
_DEFAULT: Any = object()
_KEYS = (
    "format_version",
    "version",
    "threshold",
    "scorer",
    "rules",
    "privacy",
    "escalate_finish_reasons",
    "early_escalation",
    "fitted_on",
    "adaptive",
    "sticky_escalation",
    "before_generation",
)
_STICKY = RuleOutcome("cloud", "sticky_escalation", "sticky_escalation")
#: Verdict reasons that a failed answer check replaces: the answer was complete and
#: judged on its score alone (the others already name what is wrong with it).
_CHECKED_REASONS = frozenset({"confident", "low_confidence", "empty_answer"})
#: Verdict reasons that depend on the threshold (the others escalate whatever the score).
_THRESHOLD_REASONS = frozenset({"confident", "low_confidence", "early_abort"})


def answer_text(message: BaseMessage) -> str:
    """Return the text a scorer judges: the answer's text, or its tool calls when it has none.

    Example:
        >>> answer_text(AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "1"}]))
        '[{"name": "f", "args": {"x": 1}}]'
    """
    text = str(message.text)
    if not text and isinstance(message, AIMessage) and message.tool_calls:
        return json.dumps([{"name": c["name"], "args": c["args"]} for c in message.tool_calls])
    return text


def prompt_text(context: RoutingContext | Sequence[BaseMessage] | str | None) -> str | None:
    """Return the request's text that answer features compare with (None: no context).

    Example:
        >>> from langchain_core.messages import HumanMessage, SystemMessage
        >>> print(prompt_text([SystemMessage("Passage: Paris."), HumanMessage("Capital?")]))
        Passage: Paris.
        Capital?
    """
    if context is None or isinstance(context, str):
        return context
    if not isinstance(context, RoutingContext):
        context = RoutingContext(list(context))
    return context.prompt


@dataclass(frozen=True)
class Verdict:
    """What the policy concluded about one local answer.

    ``escalate`` says whether the answer goes to the cloud and ``reason`` why (one of
    ``ROUTE_REASONS``); ``confidence`` is the scorer's view (its ``features`` are the
    answer's features); ``early_abort`` is True when the answer was (or, in a replay,
    would have been) stopped before it finished, after ``n_tokens`` tokens. ``threshold``
    is the threshold it was judged against (the adaptive one, when the policy adapts).
    ``invalid`` says what is wrong with an answer that failed its request's
    :class:`~langchain_hybrid.routing.validation.AnswerSpec` (reason ``invalid_tool_call``
    or ``invalid_structured_output``), else None.

    Example:
        >>> v = RoutingPolicy().judge(AIMessage("I don't know."))
        >>> v.escalate, v.reason
        (True, 'hedge')
    """

    escalate: bool
    reason: RouteReason
    confidence: Confidence
    early_abort: bool = False
    n_tokens: int = 0
    finish_reason: str | None = None
    threshold: float | None = None
    invalid: str | None = None

    @property
    def tier(self) -> Tier:
        """The tier the verdict sends the request to."""
        return "cloud" if self.escalate else "local"

    @property
    def features(self) -> dict[str, float]:
        """The answer's confidence features (mean_logprob, min_logprob, n_tokens, ...)."""
        return self.confidence.features

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of the verdict.

        Example:
            >>> RoutingPolicy().judge(AIMessage("")).as_dict()["reason"]
            'empty_answer'
        """
        return {
            "escalate": self.escalate,
            "reason": self.reason,
            "confidence": self.confidence.as_dict(),
            "early_abort": self.early_abort,
            "n_tokens": self.n_tokens,
            "finish_reason": self.finish_reason,
            "threshold": self.threshold,
            "invalid": self.invalid,
        }


class AnswerWatch:
    """Judges one local answer while it streams in; built by :meth:`RoutingPolicy.watch`.

    Feed each piece with :meth:`add`: it returns an escalating :class:`Verdict` as soon as
    the answer should stop (early escalation), else None. When the answer is complete,
    :meth:`finish` returns the verdict on the whole answer.

    Example:
        >>> watch = RoutingPolicy(threshold=-0.6).watch(max_tokens=64)
        >>> watch.add([{"token": "I", "logprob": -0.1}], "I") is None
        True
        >>> watch.add([{"token": " don't know", "logprob": -0.1}], " don't know").reason
        'hedge'
    """

    def __init__(
        self,
        policy: RoutingPolicy,
        max_tokens: int | None = None,
        context: RoutingContext | Sequence[BaseMessage] | str | None = None,
        *,
        record: bool = True,
        expects: AnswerSpec | None = None,
    ) -> None:
        self.policy = policy
        self.expects = expects
        self.prompt = prompt_text(context)
        adaptive = policy.adaptive
        self.key = adaptive.key_of(context) if adaptive is not None else None
        self.threshold = (
            adaptive.threshold(self.key, policy.threshold)
            if adaptive is not None
            else policy.threshold
        )
        self.running = policy.scorer.running(
            self.threshold, max_tokens, policy.early_escalation, prompt=self.prompt
        )
        self.text = ""
        self._record = record and adaptive is not None
        self._judged: set[int] = set()  # the state gates that have judged this answer

    def add(
        self,
        entries: LogprobsLike,
        text: str,
        hidden: Mapping[str, Sequence[float]] | None = None,
    ) -> Verdict | None:
        """Add the new token ``entries`` and ``text`` (and hidden states); a verdict: stop now.

        The policy's ``before_generation`` gate judges the prompt's hidden state as soon as
        it arrives, before the first token: a request it stops goes to the cloud with
        reason ``predicted_unlikely``. A learned early-escalation gate
        (``early_escalation.probe``) judges once its tokens are written and its states
        have arrived (reason ``early_abort``).
        """
        if hidden:
            self.running.add_hidden(hidden)
        self.text += text
        if entries or text:
            self.running.update(entries, self.text)
        gated = self._gated()
        if gated is not None:
            return gated
        if not (self.policy.early_escalation.enabled and self.running.hopeless):
            return None
        reason = self.running.hopeless_reason or ""
        return self._seen(
            Verdict(
                escalate=True,
                reason=_HOPELESS_TO_REASON.get(reason, "early_abort"),
                confidence=self.running.confidence(),
                early_abort=True,
                n_tokens=self.running.n_tokens,
                threshold=self.threshold,
            )
        )

    def _gated(self) -> Verdict | None:
        """Stop when a state gate is ready and predicts a failing answer (each judges once)."""
        early = self.policy.early_escalation
        gates = [(self.policy.before_generation, "predicted_unlikely")]
        if early.enabled:
            gates.append((early.probe, "early_abort"))
        states, n_tokens = self.running.hidden, self.running.n_tokens
        for gate, reason in gates:
            if gate is None or id(gate) in self._judged or not gate.ready(states, n_tokens):
                continue
            self._judged.add(id(gate))
            if reason == "predicted_unlikely" and n_tokens > gate.after_tokens:
                continue  # the answer was under way before the prompt's state came
            odds = gate.log_odds(states)
            if odds >= gate.threshold:
                continue
            confidence = Confidence(odds, {"state_log_odds": odds}, None, "state_gate")
            verdict = Verdict(
                escalate=True,
                reason=reason,  # type: ignore[arg-type]
                confidence=confidence,
                early_abort=True,
                n_tokens=n_tokens,
                threshold=gate.threshold,
            )
            return self._seen(verdict)
        return None

    def finish(self, answer: BaseMessage | None) -> Verdict:
        """Return the verdict on the complete answer (None: no answer message was found)."""
        verdict = self.policy._judge_complete(
            answer, self.threshold, self.prompt, calls_done=_calls_done(answer, self.expects)
        )
        return self._seen(_checked(verdict, answer, self.expects))

    def _seen(self, verdict: Verdict) -> Verdict:
        """Show the adaptive threshold in the verdict's features and feed it the outcome."""
        adaptive = self.policy.adaptive
        if adaptive is None:
            return verdict
        if self._record:
            forced = verdict.reason not in _THRESHOLD_REASONS
            adaptive.record(self.key, verdict.confidence.score, forced=forced)
        features = {**verdict.confidence.features, "adaptive_threshold": self.threshold}
        confidence = dataclasses.replace(verdict.confidence, features=features)
        return dataclasses.replace(verdict, confidence=confidence)


@dataclass(frozen=True)
class RoutingPolicy:
    """Every routing setting in one place; saved and loaded as JSON.

    Args:
        threshold: answers whose confidence score is below it escalate.
        scorer: turns an answer's log-probs into a confidence (default: mean log-prob).
        rules: pre-routing rules (a list of rules or their dicts); see
            :meth:`pre_route` for the order they run in.
        privacy: the privacy rule (default: ``PrivacyRule()``, every built-in detector,
            sensitive requests answered locally only); None turns it off. It is a
            ``local_only`` rule that runs after the ``local_only`` rules of ``rules``.
        escalate_finish_reasons: finish reasons of a local answer that escalate even when it
            is confident (default: ``length``, ``timeout``, ``cancelled``; the reason is
            ``truncated`` for ``length`` and ``unfinished`` for the others). Pass an empty
            set to judge unfinished answers by their confidence alone.
        early_escalation: when local generation may stop before the answer is finished.
        adaptive: an :class:`AdaptiveThreshold` that moves the threshold to hold a target
            cloud share as traffic drifts (``threshold`` is where it starts); None keeps
            ``threshold`` fixed.
        sticky_escalation: once the cloud answered a turn of a conversation thread, later
            turns of that thread go to the cloud too (reason ``sticky_escalation``), so
            that one thread is not answered by two models that may contradict each other.
            The thread is named by the run config (``thread_id`` as LangGraph sets it,
            ``session_id`` as ``RunnableWithMessageHistory`` does, or ``conversation_id``,
            in ``configurable`` or ``metadata``); a call that names none is routed on its
            own, with one warning per process. The model remembers the escalated threads
            (``ChatHybrid.threads``). Local-only rules (privacy) still win.
        version: the policy's own version, recorded in every decision.
        fitted_on: what calibration fitted the policy on (JSON-serialisable).

    The policy is immutable: derive a variant with :meth:`override` or
    ``dataclasses.replace``.

    Example:
        >>> policy = RoutingPolicy(threshold=-0.6)
        >>> from langchain_hybrid.routing.confidence import Confidence
        >>> policy.decide(Confidence(score=-0.2, features={}, forced_low=None, scorer="x"))
        ('local', 'confident')
    """

    threshold: float = DEFAULT_THRESHOLD
    scorer: ConfidenceScorer = field(default_factory=MeanLogprobScorer)
    rules: Sequence[PolicyRule] = ()
    privacy: PrivacyRule | None = field(default_factory=PrivacyRule)
    escalate_finish_reasons: Collection[str] = DEFAULT_ESCALATE_FINISH_REASONS
    early_escalation: EarlyEscalation = field(default_factory=EarlyEscalation)
    version: str = "1"
    fitted_on: dict[str, Any] | None = None
    adaptive: AdaptiveThreshold | None = None
    sticky_escalation: bool = False
    before_generation: StateGate | None = None

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise PolicyError(f"threshold must be a finite number, got {t!r}")
        object.__setattr__(self, "threshold", float(t))
        if not isinstance(self.scorer, ConfidenceScorer):
            raise PolicyError(f"scorer must be a ConfidenceScorer, got {self.scorer!r}")
        if isinstance(self.rules, (str, Mapping)) or not isinstance(self.rules, Sequence):
            raise PolicyError(f"rules must be a list, got {type(self.rules).__name__}")
        rules: list[PolicyRule] = []
        for i, rule in enumerate(self.rules):
            if isinstance(rule, PolicyRule):
                rules.append(rule)
            elif isinstance(rule, Mapping):
                try:
                    rules.append(rule_from_dict(rule))
                except PolicyError as e:
                    raise PolicyError(f"bad rule #{i} in policy: {e}") from e
            else:
                raise PolicyError(f"rule #{i} must be a PolicyRule or a dict, got {rule!r}")
        object.__setattr__(self, "rules", tuple(rules))
        if self.privacy is not None and not isinstance(self.privacy, PrivacyRule):
            object.__setattr__(self, "privacy", privacy_rule_of(self.privacy))
        reasons = self.escalate_finish_reasons
        if isinstance(reasons, str) or not all(isinstance(r, str) for r in reasons):
            raise PolicyError(
                f"escalate_finish_reasons must be a collection of strings, got {reasons!r}"
            )
        object.__setattr__(self, "escalate_finish_reasons", frozenset(reasons))
        if not isinstance(self.early_escalation, EarlyEscalation):
            raise PolicyError(
                f"early_escalation must be an EarlyEscalation, got {self.early_escalation!r}"
            )
        if self.adaptive is not None and not isinstance(self.adaptive, AdaptiveThreshold):
            raise PolicyError(
                f"adaptive must be an AdaptiveThreshold or None, got {self.adaptive!r}"
            )
        if not isinstance(self.sticky_escalation, bool):
            raise PolicyError(
                f"sticky_escalation must be True or False, got {self.sticky_escalation!r}"
            )
        if self.before_generation is not None and not isinstance(self.before_generation, StateGate):
            raise PolicyError(
                f"before_generation must be a StateGate or None, got {self.before_generation!r}"
            )
        if not isinstance(self.version, str):
            raise PolicyError(f"version must be a string, got {self.version!r}")
        if self.fitted_on is not None:
            if not isinstance(self.fitted_on, dict):
                raise PolicyError(f"fitted_on must be a dict or None, got {self.fitted_on!r}")
            try:
                json.dumps(self.fitted_on, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise PolicyError(
                    f"fitted_on must be JSON-serialisable without NaN/inf: {e}"
                ) from e

    @property
    def reads_hidden_states(self) -> bool:
        """Whether this policy reads the local model's hidden states.

        A probe scorer, a ``before_generation`` gate or a learned early-escalation probe
        does; a local tier that can report them (``ChatTransformers``) is then asked to.

        Example:
            >>> RoutingPolicy().reads_hidden_states
            False
        """
        early = self.early_escalation
        return (
            self.scorer.needs_hidden_states
            or self.before_generation is not None
            or (early.enabled and early.probe is not None)
        )

    def override(
        self,
        *,
        threshold: float | None = None,
        scorer: ConfidenceScorer | None = None,
        privacy: PrivacyRule | bool | Sequence[Any] | None = None,
    ) -> RoutingPolicy:
        """Return this policy with the given settings replaced (None keeps a setting).

        This is how ``ChatHybrid(policy=..., threshold=..., privacy=...)`` folds its
        shorthands into the policy. ``privacy`` takes False (off), True (the default
        rule), a list of detectors, or a :class:`PrivacyRule`.

        Example:
            >>> RoutingPolicy(threshold=-0.6).override(threshold=-1.0).threshold
            -1.0
            >>> RoutingPolicy().override(privacy=False).privacy is None
            True
        """
        changes: dict[str, Any] = {}
        if threshold is not None:
            changes["threshold"] = threshold
        if scorer is not None:
            changes["scorer"] = scorer
        if privacy is not None:
            changes["privacy"] = privacy_rule_of(privacy)
        return dataclasses.replace(self, **changes) if changes else self

    # ------------------------------------------------------------------ deciding

    def pre_route(
        self,
        ctx: RoutingContext | Sequence[BaseMessage],
        capability: RuleOutcome | None = None,
        *,
        thread_escalated: bool = False,
    ) -> RuleOutcome | None:
        """Decide the tier before generation, or return None to try the local tier.

        Stages run in order and the first outcome wins: ``local_only`` rules (data that
        must stay local; the policy's ``privacy`` rule after those of ``rules``), then
        ``capability`` (the caller's own ``capability`` verdict,
        e.g. tools the local tier cannot call, then the capability rules); within a
        stage, rules run in their list order. With ``sticky_escalation`` on, a request
        of a thread the cloud answered before (``thread_escalated``) goes to the cloud
        after the ``local_only`` stage (reason ``sticky_escalation``).

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> RoutingPolicy(threshold=-1.0).pre_route([HumanMessage("hi")]) is None
            True
        """
        if not isinstance(ctx, RoutingContext):
            ctx = RoutingContext(list(ctx))
        for stage in RULE_STAGES:
            if stage == "capability" and self.sticky_escalation and thread_escalated:
                return _STICKY
            if stage == "capability" and capability is not None:
                return capability
            for rule in self._rules_in_order():
                if rule.stage == stage:
                    outcome = rule.apply(ctx)
                    if outcome is not None:
                        return outcome
        return None

    def _rules_in_order(self) -> tuple[PolicyRule, ...]:
        return (*self.rules, self.privacy) if self.privacy is not None else tuple(self.rules)

    def redaction(self, ctx: RoutingContext | Sequence[BaseMessage]) -> Redaction | None:
        """Return what the redacting privacy rules found (None: nothing to redact).

        Hosts redact the cloud's copy of the request with it; rules with
        ``action="local"`` are not asked (they keep the request local instead).

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> policy = RoutingPolicy(privacy=PrivacyRule(action="redact"))
            >>> policy.redaction([HumanMessage("ssn 123-45-6789")]).detectors
            ('us_ssn',)
            >>> RoutingPolicy().redaction([HumanMessage("ssn 123-45-6789")]) is None
            True
        """
        if not isinstance(ctx, RoutingContext):
            ctx = RoutingContext(list(ctx))
        fired: list[PrivacyRule] = []
        names: set[str] = set()
        for rule in self._rules_in_order():
            if isinstance(rule, PrivacyRule) and rule.action == "redact":
                found = rule.scan(ctx)
                if found:
                    fired.append(rule)
                    names.update(found.detectors)
        return Redaction(tuple(fired), tuple(sorted(names))) if fired else None

    def decide(self, confidence: Confidence) -> tuple[Tier, RouteReason]:
        """Map a confidence to ``(tier, reason)``: forced reasons, then the threshold.

        A ``forced_low`` reason always escalates (hedge -> ``hedge``, unknown_token ->
        ``unknown_token``, empty -> ``empty_answer``, no_logprobs -> ``no_logprobs``);
        otherwise ``score >= threshold`` keeps the local answer.

        Example:
            >>> from langchain_hybrid.routing.confidence import Confidence
            >>> RoutingPolicy(threshold=-0.6).decide(Confidence(-0.1, {}, "hedge", "x"))
            ('cloud', 'hedge')
        """
        return self._decide(confidence, self.threshold)

    @staticmethod
    def _decide(confidence: Confidence, threshold: float) -> tuple[Tier, RouteReason]:
        if confidence.forced_low is not None:
            return "cloud", _FORCED_TO_REASON[confidence.forced_low]
        if confidence.score >= threshold:
            return "local", "confident"
        return "cloud", "low_confidence"

    def running(self, max_tokens: int | None = None) -> RunningConfidence:
        """Start incremental scoring against this policy's threshold (early escalation).

        Example:
            >>> r = RoutingPolicy(threshold=-0.6).running(max_tokens=256)
            >>> r.threshold, r.early.min_tokens
            (-0.6, 8)
        """
        return self.scorer.running(self.threshold, max_tokens, self.early_escalation)

    def watch(
        self,
        max_tokens: int | None = None,
        context: RoutingContext | Sequence[BaseMessage] | str | None = None,
        *,
        expects: AnswerSpec | None = None,
    ) -> AnswerWatch:
        """Start judging a local answer that streams in (see :class:`AnswerWatch`).

        ``max_tokens`` is the local tier's token limit, which makes the exact early bound
        of some scorers possible. ``context`` is the request (a :class:`RoutingContext`,
        its messages or their text): scorers that compare the answer with the prompt
        (:class:`~langchain_hybrid.routing.confidence.LogisticScorer`) read it, and an
        adaptive threshold finds its key there. The watch's verdict feeds the adaptive
        threshold, if any. ``expects`` is what a valid answer looks like (tools,
        structured output): a complete answer that fails it escalates.

        Example:
            >>> RoutingPolicy().watch(max_tokens=16).running.max_tokens
            16
        """
        return AnswerWatch(self, max_tokens, context, expects=expects)

    def judge(
        self,
        answer: BaseMessage | None,
        *,
        max_tokens: int | None = None,
        context: RoutingContext | Sequence[BaseMessage] | str | None = None,
        expects: AnswerSpec | None = None,
    ) -> Verdict:
        """Return the verdict the live route reaches on this local answer.

        The answer is replayed token by token through :meth:`watch`, exactly as the live
        route watches a stream, so with early escalation on, an answer that the live route
        would have stopped gets the same early-abort verdict (with the tokens it would have
        spent in ``n_tokens``). Pass the local tier's ``max_tokens`` to replay the exact
        bounds too, and the request as ``context`` for scorers that read the prompt.
        ``None`` (no answer message) escalates with ``no_logprobs``. A replay reads an
        adaptive threshold as it is now and does not feed it. ``expects`` replays the
        check of the answer against its request's
        :class:`~langchain_hybrid.routing.validation.AnswerSpec` (tools bound,
        structured output): a complete answer that fails it escalates with
        ``invalid_tool_call`` or ``invalid_structured_output`` whatever its score (an
        answer already escalated as hedged, truncated or unfinished keeps that reason).

        Example:
            >>> lp = {"content": [{"token": "Lyon", "logprob": -2.5}]}
            >>> RoutingPolicy(threshold=-0.6).judge(
            ...     AIMessage("Lyon", response_metadata={"logprobs": lp})).reason
            'low_confidence'
            >>> spec = AnswerSpec().with_response_format({"type": "json_object"})
            >>> sure = {"content": [{"token": "Paris", "logprob": -0.01}]}
            >>> RoutingPolicy().judge(AIMessage("Paris", response_metadata={"logprobs": sure}),
            ...                       expects=spec).reason
            'invalid_structured_output'
        """
        watch = AnswerWatch(self, max_tokens, context, record=False, expects=expects)
        if answer is not None:
            # The states a stream carries before its end, as soon as they are known: a
            # state gate judges them when its tokens are written, as on the live route.
            states = hidden_vectors(answer.response_metadata)
            states.pop("answer_mean", None)
            if states:
                stopped = watch.add([], "", states)
                if stopped is not None:
                    return stopped
            entries = logprob_entries(message_logprobs(answer))
            pieces = [([e], e["token"]) for e in entries] or [([], answer_text(answer))]
            for piece_entries, text in pieces:
                stopped = watch.add(piece_entries, text)
                if stopped is not None:
                    return stopped
        return watch.finish(answer)

    def _judge_complete(
        self,
        answer: BaseMessage | None,
        threshold: float,
        prompt: str | None,
        *,
        calls_done: bool = False,
    ) -> Verdict:
        if answer is None:
            missing = Confidence(LOGPROB_FLOOR, {}, "no_logprobs", self.scorer.name)
            return Verdict(
                escalate=True, reason="no_logprobs", confidence=missing, threshold=threshold
            )
        finish = answer.response_metadata.get("finish_reason")
        finish_reason = str(finish) if finish is not None else None
        confidence = self.scorer.score(
            message_logprobs(answer),
            answer_text(answer),
            finish_reason=finish_reason,
            prompt=prompt,
            hidden=hidden_vectors(answer.response_metadata),
        )
        tier, reason = self._decide(confidence, threshold)
        # A token limit reached after the tool calls were complete and valid cut nothing.
        finished = calls_done and finish_reason == "length"
        if tier == "local" and finish_reason in self.escalate_finish_reasons and not finished:
            tier, reason = "cloud", "truncated" if finish_reason == "length" else "unfinished"
        return Verdict(
            escalate=tier == "cloud",
            reason=reason,
            confidence=confidence,
            n_tokens=int(confidence.features.get("n_tokens", 0)),
            finish_reason=finish_reason,
            threshold=threshold,
        )

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict written to policy files: every setting.

        Example:
            >>> d = RoutingPolicy(threshold=-0.6).to_dict()
            >>> d["format_version"], d["scorer"]["name"], d["escalate_finish_reasons"]
            (2, 'mean_logprob', ['cancelled', 'length', 'timeout'])
        """
        data = {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "threshold": self.threshold,
            "scorer": self.scorer.to_config(),
            "rules": [rule.to_dict() for rule in self.rules],
            "privacy": self.privacy.to_dict() if self.privacy is not None else None,
            "escalate_finish_reasons": sorted(self.escalate_finish_reasons),
            "early_escalation": self.early_escalation.to_dict(),
            "fitted_on": self.fitted_on,
        }
        if self.adaptive is not None:  # written only when set: files stay readable as before
            data["adaptive"] = self.adaptive.to_dict()
        if self.sticky_escalation:  # likewise
            data["sticky_escalation"] = True
        if self.before_generation is not None:  # likewise
            data["before_generation"] = self.before_generation.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutingPolicy:
        """Build a policy from :meth:`to_dict` output; raises :class:`PolicyError`.

        Only ``format_version`` and ``threshold`` are required; every other setting takes
        its default. Files of format version 1 are read too. A file without a
        ``privacy`` key (files written before privacy existed) gets the default privacy
        rule, so sensitive requests stay local; ``"privacy": null`` turns it off.

        Example:
            >>> RoutingPolicy.from_dict({"format_version": 2, "threshold": -0.5}).threshold
            -0.5
        """
        fix = "re-create it with RoutingPolicy(...).save() or by running calibration"
        if not isinstance(data, Mapping):
            raise PolicyError(f"a policy must be a JSON object, got {type(data).__name__}; {fix}")
        if "format_version" not in data:
            raise PolicyError(
                "policy has no 'format_version', so it is not a langchain-hybrid policy "
                f"(expected format_version {FORMAT_VERSION}); {fix}"
            )
        fv = data["format_version"]
        if isinstance(fv, bool) or fv not in (1, FORMAT_VERSION):
            raise PolicyError(
                f"policy format_version {fv!r} is not supported (this langchain-hybrid reads "
                f"1 and {FORMAT_VERSION}); upgrade langchain-hybrid, or {fix}"
            )
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise PolicyError(
                f"policy has unknown key(s) {unknown}; allowed keys: {', '.join(_KEYS)}; "
                "remove or fix them"
            )
        if "threshold" not in data:
            raise PolicyError(f"policy has no 'threshold'; add a number such as -0.6, or {fix}")
        scorer_cfg = data.get("scorer")
        early_cfg = data.get("early_escalation") or {}
        if fv == 1:
            scorer_cfg, early_cfg = _from_version_1(scorer_cfg)
        try:
            scorer = MeanLogprobScorer() if scorer_cfg is None else scorer_from_config(scorer_cfg)
        except (TypeError, ValueError) as e:
            raise PolicyError(f"bad 'scorer' in policy: {e}") from e
        try:
            early = EarlyEscalation.from_dict(early_cfg)
        except (TypeError, ValueError) as e:
            raise PolicyError(f"bad 'early_escalation' in policy: {e}") from e
        adaptive = None
        if data.get("adaptive") is not None:
            try:
                adaptive = AdaptiveThreshold.from_dict(data["adaptive"])
            except (TypeError, ValueError) as e:
                raise PolicyError(f"bad 'adaptive' in policy: {e}") from e
        before = None
        if data.get("before_generation") is not None:
            try:
                before = StateGate.from_dict(data["before_generation"])
            except (TypeError, ValueError) as e:
                raise PolicyError(f"bad 'before_generation' in policy: {e}") from e
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            raise PolicyError(f"'rules' must be a list, got {type(raw_rules).__name__}")
        finish_reasons = data.get("escalate_finish_reasons", DEFAULT_ESCALATE_FINISH_REASONS)
        if not isinstance(finish_reasons, (list, frozenset)):
            raise PolicyError(
                f"'escalate_finish_reasons' must be a list, got {type(finish_reasons).__name__}"
            )
        privacy = data.get("privacy", _DEFAULT)
        if privacy is not _DEFAULT and privacy is not None:
            if not isinstance(privacy, Mapping):
                raise PolicyError(
                    f"'privacy' must be an object or null, got {type(privacy).__name__}"
                )
            try:
                privacy = privacy_rule_of(privacy)
            except PolicyError as e:
                raise PolicyError(f"bad 'privacy' in policy: {e}") from e
        return cls(
            threshold=data["threshold"],
            scorer=scorer,
            rules=raw_rules,
            privacy=PrivacyRule() if privacy is _DEFAULT else privacy,
            escalate_finish_reasons=finish_reasons,
            early_escalation=early,
            version=data.get("version", "1"),
            fitted_on=data.get("fitted_on"),
            adaptive=adaptive,
            sticky_escalation=data.get("sticky_escalation", False),
            before_generation=before,
        )

    def save(self, path: str | Path) -> None:
        """Write the policy as indented JSON to ``path``.

        Raises :class:`PolicyError` if a privacy detector is a function (a file cannot
        hold one).

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "policy.json")
            >>> RoutingPolicy(threshold=-0.6).save(p)
            >>> RoutingPolicy.load(p).threshold
            -0.6
        """
        for rule in self._rules_in_order():
            if isinstance(rule, PrivacyRule):
                rule.check_serialisable()
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RoutingPolicy:
        """Read a policy file written by :meth:`save` or by calibration.

        Raises :class:`PolicyError` (naming the file) for invalid JSON or content, and
        ``OSError`` if the file cannot be read.

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "bad.json")
            >>> _ = open(p, "w").write("{not json")
            >>> try:
            ...     RoutingPolicy.load(p)
            ... except PolicyError as e:
            ...     print("not valid JSON" in str(e))
            True
        """
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PolicyError(
                f"{path} is not valid JSON ({e}); write policies with RoutingPolicy.save() "
                "or calibration"
            ) from e
        try:
            return cls.from_dict(data)
        except PolicyError as e:
            raise PolicyError(f"{path}: {e}") from e


def _calls_done(answer: BaseMessage | None, expects: AnswerSpec | None) -> bool:
    """Whether ``answer`` made tool calls whose arguments parsed and satisfy ``expects``."""
    if expects is None or not isinstance(answer, AIMessage) or not answer.tool_calls:
        return False
    return not answer.invalid_tool_calls and expects.check(answer) is None


def _checked(verdict: Verdict, answer: BaseMessage | None, expects: AnswerSpec | None) -> Verdict:
    """Escalate a complete answer that fails its request's spec (see ``judge``)."""
    if expects is None or answer is None or verdict.reason not in _CHECKED_REASONS:
        return verdict
    invalid = expects.check(answer)
    if invalid is None:
        return verdict
    return dataclasses.replace(
        verdict, escalate=True, reason=invalid.reason, invalid=invalid.detail
    )


def _from_version_1(scorer_cfg: Any) -> tuple[Any, dict[str, Any]]:
    """Split a version-1 scorer config: its early-escalation parameters moved to the policy."""
    early: dict[str, Any] = {}
    if not isinstance(scorer_cfg, Mapping) or not isinstance(scorer_cfg.get("params"), Mapping):
        return scorer_cfg, early
    params = dict(scorer_cfg["params"])
    for old, new in (("early_min_tokens", "min_tokens"), ("early_margin", "margin")):
        if old in params:
            early[new] = params.pop(old)
    return {**scorer_cfg, "params": params}, early
