"""What calibration learns from: record features as the live route computes them, as arrays."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_hybrid.calibration.errors import CalibrationError
from langchain_hybrid.hidden_states import HIDDEN_PARTS, hidden_vectors
from langchain_hybrid.routing.confidence import ANSWER_FEATURE_NAMES, LogisticScorer
from langchain_hybrid.routing.policy import answer_text, prompt_text

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.language_models import BaseChatModel

    from langchain_hybrid.calibration.outcomes import CloudOutcomes
    from langchain_hybrid.costs import PriceTable
    from langchain_hybrid.evaluation.records import Example, LocalRecord

__all__ = ["LEARNED_FEATURES", "record_features"]

#: Features the learned scorer may use (those every answer has).
LEARNED_FEATURES: tuple[str, ...] = (
    "mean_logprob",
    "min_logprob",
    "p10_logprob",
    "margin",
    "n_tokens",
    "hedge",
    *ANSWER_FEATURE_NAMES,
)

_FEATURE_SCORER = LogisticScorer({"n_tokens": 0.0})


def record_features(record: LocalRecord) -> tuple[dict[str, float], str | None, str | None]:
    """Return ``(features, forced_low, finish_reason)`` of a record, as the live route sees it.

    The features are the learned scorer's (log-prob statistics and ``ANSWER_FEATURE_NAMES``),
    computed from the answer's log-probs, text, finish reason and the record's prompt.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid.evaluation.records import LocalRecord
        >>> r = LocalRecord("1", (HumanMessage("Capital of France?"),), AIMessage("France",
        ...     response_metadata={"finish_reason": "length", "logprobs": {"content": [
        ...     {"token": "France", "logprob": -0.5}]}}), correct=False, latency_s=0.1,
        ...     max_tokens=1)
        >>> f, forced, finish = record_features(r)
        >>> f["truncated"], f["context_overlap"], forced, finish
        (1.0, 1.0, None, 'length')
    """
    from langchain_hybrid.logprobs import message_logprobs

    answer = record.answer
    finish = answer.response_metadata.get("finish_reason")
    finish_reason = None if finish is None else str(finish)
    confidence = _FEATURE_SCORER.score(
        message_logprobs(answer),
        answer_text(answer),
        finish_reason=finish_reason,
        prompt=prompt_text(list(record.prompt)),
    )
    return dict(confidence.features), confidence.forced_low, finish_reason


def _collected(
    records: Sequence[LocalRecord] | None,
    examples: Sequence[Example] | None,
    local: BaseChatModel | None,
    max_tokens: int,
    progress: bool | None,
) -> Sequence[LocalRecord]:
    """Return the records, collected from the examples with the local tier when not given."""
    if records is None:
        if examples is None or local is None:
            raise CalibrationError("give records, or examples and the local tier to collect them")
        from langchain_hybrid.evaluation.collect import collect_local

        records = collect_local(examples, local, max_tokens=max_tokens, progress=progress)
    if not records:
        raise CalibrationError("no records to calibrate on")
    return records


def hidden_matrices(records: Sequence[LocalRecord]) -> dict[str, np.ndarray]:
    """Return, per part every record reports (``prompt``, ``answer_mean``), its vectors."""
    import numpy as np

    vectors = [hidden_vectors(r.answer.response_metadata) for r in records]
    out: dict[str, np.ndarray] = {}
    for part in HIDDEN_PARTS:
        rows = [v.get(part) for v in vectors]
        if rows and all(row is not None for row in rows) and len({len(r) for r in rows}) == 1:  # type: ignore[arg-type]
            out[part] = np.array(rows, dtype=float)
    return out


def hidden_layer(records: Sequence[LocalRecord]) -> int | None:
    """Return the decoder layer the records' hidden states come from (None: unknown)."""
    for r in records:
        state = r.answer.response_metadata.get("hidden_state")
        if isinstance(state, dict) and isinstance(state.get("layer"), int):
            return int(state["layer"])
    return None


@dataclass
class _Data:
    """The records as arrays: features, labels, cloud outcomes and costs."""

    records: list[LocalRecord]
    names: list[str]
    x: np.ndarray  # features, one column per name
    y: np.ndarray  # local answer correct (0/1)
    forced: np.ndarray  # escalates whatever the score (hedge, empty, unknown token, ...)
    finish: list[str | None]
    cloud_p: np.ndarray  # cloud correct (0/1, or the assumed accuracy)
    cloud_cost: np.ndarray
    local_cost: np.ndarray
    groups: np.ndarray  # the group of each record (an integer code): held out together
    hidden: dict[str, np.ndarray] = field(default_factory=dict)  # hidden-state vectors
    hidden_layer: int | None = None  # the decoder layer they come from

    def subset(self, idx: np.ndarray) -> _Data:
        return _Data(
            [self.records[i] for i in idx],
            self.names,
            self.x[idx],
            self.y[idx],
            self.forced[idx],
            [self.finish[i] for i in idx],
            self.cloud_p[idx],
            self.cloud_cost[idx],
            self.local_cost[idx],
            self.groups[idx],
            {part: vectors[idx] for part, vectors in self.hidden.items()},
            self.hidden_layer,
        )

    @property
    def n_groups(self) -> int:
        """How many groups the records fall in."""
        return len(set(self.groups.tolist()))

    def column(self, name: str) -> np.ndarray:
        return self.x[:, self.names.index(name)]


def _prepare(records: Sequence[LocalRecord], cloud: CloudOutcomes, prices: PriceTable) -> _Data:
    import numpy as np

    rows, forced, finish, y, cp, cc, lc = [], [], [], [], [], [], []
    for r in records:
        f, low, fin = record_features(r)
        rows.append(f)
        forced.append(low is not None)
        finish.append(fin)
        y.append(1.0 if r.correct else 0.0)
        cp.append(cloud.p_correct(r.example_id))
        usage: Mapping[str, Any] = r.answer.usage_metadata or {}
        n_in = int(
            usage.get("input_tokens") or math.ceil(len(prompt_text(list(r.prompt)) or "") / 4)
        )
        n_out_local = int(usage.get("output_tokens") or f.get("n_tokens", 0))
        n_out = cloud.completion_tokens.get(r.example_id, n_out_local)
        cc.append(prices.cost_of(cloud.model, n_in, n_out))
        model = str(r.answer.response_metadata.get("model_name") or "")
        lc.append(prices.local_cost_of(model, n_in, n_out_local))
    names = [n for n in LEARNED_FEATURES if all(n in row for row in rows)]
    x = np.array([[row[n] for n in names] for row in rows], dtype=float).reshape(len(rows), -1)
    codes: dict[str, int] = {}
    groups = np.array([codes.setdefault(r.group_key, len(codes)) for r in records])
    return _Data(
        list(records),
        names,
        x,
        np.array(y),
        np.array(forced, dtype=bool),
        finish,
        np.array(cp),
        np.array(cc),
        np.array(lc),
        groups,
        hidden_matrices(records),
        hidden_layer(records),
    )
