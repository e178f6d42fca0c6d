r"""Record escalated requests with the cloud's answer as JSON Lines rows to tune the local tier on.

:class:`EscalationRecorder` is an opt-in LangChain callback handler: attach it to a
``ChatHybrid`` call (``callbacks=[recorder]`` in the config, or
``llm.with_config(callbacks=[recorder])``) and every request the cloud answered is
appended to a JSON Lines file as one row (:func:`escalation_row`)::

    {"id": "<run id>", "question": "<last user message>", "answer": ["<cloud answer>"],
     "messages": [<the prompt, as messages_to_dict>],
     "recorded": {"<cloud model>": {"response": "<cloud answer>", ...}},
     "decision": {<the RouteDecision dict>}}

:func:`~langchain_hybrid.evaluation.load_dataset` loads these rows (the cloud's answer is
the accepted answer), and :func:`~langchain_hybrid.tuning.tune` trains on them (the
cloud's answer is the target).

Which requests are written:

- only those whose decision says the cloud answered: tier ``"cloud"``, not ``degraded``,
  not ``failed``, not a cache hit (``cached``: its first answer was the escalation), with
  a non-empty text answer (an answer that is only tool calls is not a training target);
  in a cascade, only answers of the last tier (every step's tier is ``"cloud"``);
- never one a privacy rule kept local (decision ``privacy`` with action ``"local"``, or
  reason ``privacy_forced_local``);
- with ``redact=True``, the privacy detectors' redaction is applied to everything
  written: question, messages, answer, and the decision's error text. Without it, rows
  hold the prompt as the caller sent it, including values a ``PrivacyRule(action=
  "redact")`` replaced by placeholders for the cloud.

Example:
    >>> import json, os, tempfile
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> decision = {"tier": "cloud", "reason": "low_confidence", "escalated": True,
    ...             "model": "gpt-4o"}
    >>> row = escalation_row([HumanMessage("Mail ada@example.com: capital of France?")],
    ...                      AIMessage("Paris.", response_metadata={"routing": decision}),
    ...                      row_id="r1", redact=True)
    >>> row["question"], row["answer"], row["recorded"]
    ('Mail [EMAIL]: capital of France?', ['Paris.'], {'gpt-4o': {'response': 'Paris.'}})
    >>> path = os.path.join(tempfile.mkdtemp(), "escalations.jsonl")
    >>> _ = open(path, "w").write(json.dumps(row) + "\n")
    >>> from langchain_hybrid.evaluation import load_dataset
    >>> [(ex.id, ex.answers) for ex in load_dataset(path)]
    [('r1', ('Paris.',))]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage, messages_to_dict
from langchain_core.outputs import LLMResult

from langchain_hybrid.privacy import (
    Detector,
    default_detectors,
    detector_from,
    redact_messages,
)
from langchain_hybrid.privacy import redact as redact_text
from langchain_hybrid.routing.surfaces import ROUTE_EVENT, routing_steps

__all__ = ["EscalationRecorder", "escalation_row", "skip_reason"]

#: The decision keys that are not part of the route decision (the event's extras).
_EVENT_EXTRAS = ("local_logprobs",)


def skip_reason(steps: Sequence[Mapping[str, Any]]) -> str | None:
    """Return why a request with these routing decisions is not recorded (None: it is).

    ``steps`` are the decisions of every step that routed the answer, the outermost first
    (:func:`~langchain_hybrid.routing.surfaces.routing_steps`; one for a plain
    ``ChatHybrid``).

    Example:
        >>> skip_reason([{"tier": "cloud", "reason": "low_confidence"}]) is None
        True
        >>> skip_reason([{"tier": "local", "reason": "privacy_forced_local",
        ...               "privacy": {"rule": "privacy", "action": "local"}}])
        'kept local by a privacy rule'
        >>> skip_reason([{"tier": "local", "reason": "cloud_error", "degraded": True}])
        'degraded: the cloud failed'
    """
    if not steps:
        return "not routed"
    for step in steps:
        privacy = step.get("privacy")
        kept = isinstance(privacy, Mapping) and privacy.get("action") == "local"
        if kept or step.get("reason") == "privacy_forced_local":
            return "kept local by a privacy rule"
    first = steps[0]
    if first.get("failed"):
        return "failed"
    if first.get("degraded"):
        return "degraded: the cloud failed"
    if first.get("cached"):
        return "a cache hit"
    if any(step.get("tier") != "cloud" for step in steps):
        return "answered locally"
    return None


def _question(messages: Sequence[BaseMessage]) -> str:
    """Return the text of the last user message (else of the last message with text)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and message.text.strip():
            return str(message.text)
    for message in reversed(messages):
        if message.text.strip():
            return str(message.text)
    return ""


def _recorded(text: str, steps: Sequence[Mapping[str, Any]], answer: BaseMessage) -> dict[str, Any]:
    """Return the ``recorded`` entry: the answering model's response, tokens and latency."""
    first = steps[0]
    model = first.get("model") or answer.response_metadata.get("model_name") or "cloud"
    entry: dict[str, Any] = {"response": text}
    usage = first.get("usage")
    if isinstance(usage, Mapping):
        for key, name in (
            ("input_tokens", "prompt_tokens"),
            ("output_tokens", "completion_tokens"),
        ):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                entry[name] = value
    latency = first.get("cloud_latency_s")
    if isinstance(latency, (int, float)) and not isinstance(latency, bool) and latency >= 0:
        entry["latency_s"] = float(latency)
    return {str(model): entry}


def escalation_row(
    messages: Sequence[BaseMessage],
    answer: BaseMessage,
    *,
    row_id: str,
    decision: Mapping[str, Any] | None = None,
    redact: bool = False,
    detectors: Iterable[Any] | None = None,
) -> dict[str, Any] | None:
    """Return the dataset row of one request the cloud answered (None: not one to record).

    Args:
        messages: the prompt the router received.
        answer: its answer; its ``response_metadata["routing"]`` (and ``tier_routing`` in a
            cascade) is the decision, else ``decision`` is.
        row_id: the row's ``id`` (the recorder uses the routed run's id).
        decision: the ``hybrid_route`` event's decision, when the answer carries none.
        redact: replace what the privacy detectors find in the question, messages, answer
            and the decision's error by placeholders (``[EMAIL]``).
        detectors: the detectors (anything
            :func:`~langchain_hybrid.privacy.detector_from` takes); None: the built-ins.

    The rules are in the module docstring (:func:`skip_reason` says why a request is not
    recorded).

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> local = AIMessage("Paris", response_metadata={
        ...     "routing": {"tier": "local", "reason": "confident"}})
        >>> escalation_row([HumanMessage("Capital of France?")], local, row_id="1") is None
        True
    """
    steps = routing_steps(answer)
    if not steps and decision is not None:
        steps = [dict(decision)]
    if skip_reason(steps) is not None:
        return None
    text = str(answer.text)
    if not text.strip():
        return None
    prompt = list(messages)
    first = {k: v for k, v in steps[0].items() if k not in _EVENT_EXTRAS}
    if redact:
        dets = _detectors(detectors)
        text = redact_text(text, dets)
        prompt = redact_messages(prompt, dets)
        if isinstance(first.get("error"), str):
            first["error"] = redact_text(first["error"], dets)
    question = _question(prompt)
    if not question.strip():
        return None
    return {
        "id": row_id,
        "question": question,
        "answer": [text],
        "messages": messages_to_dict(prompt),
        "recorded": _recorded(text, steps, answer),
        "decision": first,
    }


def _detectors(detectors: Iterable[Any] | None) -> tuple[Detector, ...]:
    return default_detectors() if detectors is None else tuple(map(detector_from, detectors))


@dataclass
class _Run:
    """What the recorder holds about one open run."""

    parent: UUID | None
    chat: bool
    messages: list[BaseMessage] = field(default_factory=list)
    decision: dict[str, Any] | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Rows of routed runs nested in this one, decided when this run ends."""


class EscalationRecorder(BaseCallbackHandler):
    """Append every request the cloud answered to a JSON Lines file (opt-in, a callback).

    Args:
        path: the JSON Lines file; rows are appended (the folder is created if needed).
        redact: apply the privacy detectors' redaction to everything written.
        detectors: the detectors of ``redact`` (anything
            :func:`~langchain_hybrid.privacy.detector_from` takes); None: the built-ins.

    Pass it as a callback of the call or of the model, sync or async, streamed or not;
    appends are thread-safe and each request is written once, when its run ends:

    .. code-block:: python

        recorder = EscalationRecorder("escalations.jsonl", redact=True)
        llm.invoke("...", config={"callbacks": [recorder]})
        recorded = llm.with_config(callbacks=[recorder])  # every call of it

    The routed run's prompt comes from its start callback, its answer from its end
    callback, and its decision from the answer's ``response_metadata["routing"]`` (else
    the ``hybrid_route`` event). When a ``ChatHybrid`` runs as the tier of another (a
    cascade) or inside another chat-model run, the outermost routed run decides: its
    row replaces the inner one. Requests that end in an error are not written.
    ``rows_written`` counts the rows this recorder appended.

    Example:
        >>> import tempfile, os
        >>> from langchain_core.language_models import FakeListChatModel
        >>> path = os.path.join(tempfile.mkdtemp(), "escalations.jsonl")
        >>> recorder = EscalationRecorder(path)
        >>> _ = FakeListChatModel(responses=["hi"]).invoke("hello", {"callbacks": [recorder]})
        >>> recorder.rows_written  # not a routed run: nothing written
        0
    """

    def __init__(
        self,
        path: str | Path,
        *,
        redact: bool = False,
        detectors: Iterable[Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.redact = redact
        self.detectors = _detectors(detectors)
        self.rows_written = 0
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EscalationRecorder({str(self.path)!r}, redact={self.redact})"

    # ------------------------------------------------------------------ run bookkeeping

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the prompt of a chat-model run."""
        prompt = list(messages[0]) if messages else []
        with self._lock:
            self._runs[run_id] = _Run(parent=parent_run_id, chat=True, messages=prompt)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the chain's parent, to find the chat-model runs a routed run is inside."""
        with self._lock:
            self._runs[run_id] = _Run(parent=parent_run_id, chat=False)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the chain."""
        with self._lock:
            self._runs.pop(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the chain."""
        with self._lock:
            self._runs.pop(run_id, None)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Keep the ``hybrid_route`` decision of the routed run."""
        if name != ROUTE_EVENT or not isinstance(data, Mapping):
            return
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.decision = dict(data)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the run and the rows nested in it: the request failed."""
        with self._lock:
            self._runs.pop(run_id, None)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Decide the run's row (and those nested in it); write them at the outermost run."""
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None or not run.chat:
            return
        rows = run.pending
        answer = _answer(response)
        routed = run.decision is not None or (
            answer is not None and isinstance(answer.response_metadata.get("routing"), dict)
        )
        if routed and answer is not None:
            row = escalation_row(
                run.messages,
                answer,
                row_id=str(run_id),
                decision=run.decision,
                redact=self.redact,
                detectors=self.detectors,
            )
            rows = [row] if row is not None else []
        if rows:
            self._hand_up(run.parent, rows)

    # ------------------------------------------------------------------ writing

    def _hand_up(self, parent: UUID | None, rows: list[dict[str, Any]]) -> None:
        """Give ``rows`` to the nearest open chat-model run above, else write them."""
        with self._lock:
            seen: set[UUID] = set()
            while parent is not None and parent not in seen:
                seen.add(parent)
                above = self._runs.get(parent)
                if above is None:
                    break
                if above.chat:
                    above.pending.extend(rows)
                    return
                parent = above.parent
            self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` (the caller holds the lock)."""
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
        self.rows_written += len(rows)


def _answer(response: LLMResult) -> BaseMessage | None:
    """Return the first generation's message, when the run produced one."""
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if isinstance(message, BaseMessage):
                return message
    return None
