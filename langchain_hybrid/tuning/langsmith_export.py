"""Export the escalations a LangSmith project traced as JSON Lines rows to tune the local tier on.

:func:`export_escalations` reads the ``ChatHybrid`` runs of a LangSmith project whose
metadata says the cloud answered (``routing_tier == "cloud"``, the key
:mod:`~langchain_hybrid.routing.surfaces` writes on every routed run) with the real
``langsmith`` client, and writes one row per request in the shape
:class:`~langchain_hybrid.tuning.recorder.EscalationRecorder` appends (see
:func:`~langchain_hybrid.tuning.recorder.escalation_row`): the same rules apply (no
degraded, failed, cached or privacy-kept requests; ``redact=True`` redacts everything
written), and the row ids are the run ids, so a request recorded both ways has one id.

Example:
    >>> summary = export_escalations("my-project", "escalations.jsonl")  # doctest: +SKIP
    >>> summary.rows, summary.skipped  # doctest: +SKIP
    (412, {'degraded: the cloud failed': 3})
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages, messages_from_dict

from langchain_hybrid.routing.surfaces import TRACE_METADATA_KEYS, routing_steps
from langchain_hybrid.tuning.recorder import escalation_row, skip_reason

__all__ = ["ESCALATION_FILTER", "ExportSummary", "export_escalations", "run_messages"]

#: The LangSmith filter of the runs the cloud answered (their routing metadata).
ESCALATION_FILTER = 'and(eq(metadata_key, "routing_tier"), eq(metadata_value, "cloud"))'


@dataclass
class ExportSummary:
    """What :func:`export_escalations` wrote.

    Attributes:
        path: the JSON Lines file.
        rows: rows written.
        runs: runs read from LangSmith (those with ``routing_tier == "cloud"``).
        skipped: runs not written, counted by reason.
    """

    path: Path
    rows: int
    runs: int
    skipped: dict[str, int] = field(default_factory=dict)


#: Message classes by the name LangChain serializes them under, to their dict ``type``.
_CLASS_TYPES = {
    "HumanMessage": "human",
    "AIMessage": "ai",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "ChatMessage": "chat",
    "FunctionMessage": "function",
}


def _message(data: Any) -> BaseMessage:
    """Rebuild one traced message: LangChain-serialized, ``messages_to_dict`` or role dict."""
    if isinstance(data, BaseMessage):
        return data
    if isinstance(data, Mapping) and data.get("lc") == 1 and data.get("type") == "constructor":
        kwargs = dict(data.get("kwargs") or {})
        name = str((data.get("id") or ["HumanMessage"])[-1])
        kind = kwargs.get("type") or _CLASS_TYPES.get(name, name)
        return messages_from_dict([{"type": kind, "data": kwargs}])[0]
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping) and "type" in data:
        return messages_from_dict([dict(data)])[0]
    return convert_to_messages([data])[0]


def run_messages(inputs: Mapping[str, Any] | None) -> list[BaseMessage]:
    """Return the prompt of a traced chat-model run (its ``inputs["messages"][0]``).

    Example:
        >>> run_messages({"messages": [[{"lc": 1, "type": "constructor",
        ...     "id": ["langchain", "schema", "messages", "HumanMessage"],
        ...     "kwargs": {"content": "Capital of France?", "type": "human"}}]]})[0].text
        'Capital of France?'
    """
    batches = (inputs or {}).get("messages") or []
    if batches and isinstance(batches[0], list):
        batches = batches[0]
    return [_message(m) for m in batches]


def _answer(outputs: Mapping[str, Any] | None) -> BaseMessage | None:
    """Return the answer message of a traced chat-model run."""
    generations = (outputs or {}).get("generations") or []
    for batch in generations:
        for generation in batch if isinstance(batch, list) else [batch]:
            if isinstance(generation, Mapping) and generation.get("message") is not None:
                return _message(generation["message"])
    return None


def _decision(outputs: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return the run's decision: its ``llm_output``, else its ``routing_*`` metadata."""
    llm_output = (outputs or {}).get("llm_output")
    if isinstance(llm_output, Mapping) and isinstance(llm_output.get("routing"), Mapping):
        return dict(llm_output["routing"])
    return {key: metadata.get(f"routing_{key}") for key in TRACE_METADATA_KEYS}


def _ancestors(run: Any) -> set[str]:
    """Return the ids of the runs above ``run`` (from its dotted order, else its parents)."""
    dotted = str(getattr(run, "dotted_order", None) or "")
    found = {part[-36:] for part in dotted.split(".")[:-1] if len(part) >= 36}
    found.update(str(p) for p in getattr(run, "parent_run_ids", None) or ())
    parent = getattr(run, "parent_run_id", None)
    if parent is not None:
        found.add(str(parent))
    return found


def export_escalations(
    project_name: str,
    path: str | Path,
    *,
    client: Any = None,
    redact: bool = False,
    limit: int | None = None,
    detectors: Iterable[Any] | None = None,
) -> ExportSummary:
    """Write the requests of a LangSmith project that the cloud answered as JSON Lines rows.

    Args:
        project_name: the LangSmith project the ``ChatHybrid`` runs were traced to.
        path: the JSON Lines file, written anew (the recorder's row shape).
        client: a ``langsmith.Client``; None: ``langsmith.Client()`` from the environment
            (``LANGSMITH_API_KEY``, ``LANGSMITH_ENDPOINT``).
        redact: replace what the privacy detectors find in everything written.
        detectors: the detectors of ``redact``; None: the built-ins.
        limit: read at most this many runs; None: all.

    The runs are listed with ``client.list_runs(project_name=..., run_type="llm",
    filter=ESCALATION_FILTER)``; each is checked like a recorded request (its decision
    from its outputs, else its ``routing_*`` metadata). A routed run inside another
    listed run (a cascade's inner router) is skipped: the outer run's row stands for the
    request. Returns an :class:`ExportSummary`.

    Example:
        >>> import langsmith
        >>> export_escalations("support-bot", "escalations.jsonl",
        ...                    client=langsmith.Client(), redact=True)  # doctest: +SKIP
        ExportSummary(path=PosixPath('escalations.jsonl'), rows=412, runs=415, ...)
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if client is None:
        import langsmith

        client = langsmith.Client()
    with warnings.catch_warnings():
        # list_runs() is deprecated (langsmith 0.15: removal after January 2027) in favour
        # of client.runs.query_v2, which self-hosted LangSmith before v0.16 lacks; the
        # caller did not call list_runs, so its warning is not theirs to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        listed = client.list_runs(
            project_name=project_name, run_type="llm", filter=ESCALATION_FILTER, limit=limit
        )
    runs = [
        r for r in listed if (getattr(r, "metadata", None) or {}).get("routing_tier") == "cloud"
    ]
    ids = {str(r.id) for r in runs}
    skipped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for run in runs:
        if _ancestors(run) & ids:
            skipped["inside another routed run"] += 1
            continue
        if getattr(run, "error", None):
            skipped["failed"] += 1
            continue
        metadata = getattr(run, "metadata", None) or {}
        answer = _answer(run.outputs)
        decision = _decision(run.outputs, metadata)
        if answer is None:
            skipped["no answer traced"] += 1
            continue
        row = escalation_row(
            run_messages(run.inputs),
            answer,
            row_id=str(run.id),
            decision=decision,
            redact=redact,
            detectors=detectors,
        )
        if row is None:
            why = skip_reason(routing_steps(answer) or [decision])
            skipped[why or "no question or no text answer"] += 1
            continue
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return ExportSummary(path=path, rows=len(rows), runs=len(runs), skipped=dict(skipped))
