"""Token ids for tuning: the product's exact prompt, then the answer and the end-of-turn token.

The prompt of a row is what the live route sends the local model:
:func:`~langchain_hybrid.evaluation.collect.prompt_for` of its example, rendered by the
tokenizer's chat template with ``add_generation_prompt=True`` (as ``ChatTransformers``
renders it). The answer tokens are what the template puts after the generation prompt
for an assistant turn holding the target, up to and including the end-of-turn token
(for SmolLM2 ``"Ada<|im_end|>"``). Only the answer tokens are learned: every prompt
position has the label ``-100``.

:class:`AnswerCollator` pads a batch on the left, so that every row's answer ends at
the last position and the model only has to compute logits for the last few positions
(``logits_to_keep``), which saves the vocabulary projection of the whole prompt.

Example:
    >>> collate = AnswerCollator(pad_id=0)
    >>> batch = collate([
    ...     {"input_ids": [5, 6, 7], "prompt_length": 2, "weight": 1.0},
    ...     {"input_ids": [8, 9], "prompt_length": 1, "weight": 2.0}])
    >>> batch["input_ids"].tolist(), batch["labels"].tolist()
    ([[5, 6, 7], [0, 8, 9]], [[-100, -100, 7], [-100, -100, 9]])
    >>> batch["position_ids"].tolist(), batch["answer_length"]
    ([[0, 1, 2], [0, 0, 1]], 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_hybrid.evaluation.collect import prompt_for
from langchain_hybrid.evaluation.records import Example
from langchain_hybrid.tuning.data import TuningRow

__all__ = [
    "IGNORE_INDEX",
    "AnswerCollator",
    "EncodedRow",
    "answer_ids",
    "chat_for",
    "encode_rows",
    "prompt_ids",
]

#: The label of a position that is not learned (the prompt, the padding).
IGNORE_INDEX = -100

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


@dataclass(frozen=True)
class EncodedRow:
    """A row as token ids: the prompt's ``prompt_length`` ids, then the answer's."""

    input_ids: tuple[int, ...]
    prompt_length: int
    weight: float
    answerable: bool
    index: int

    def as_feature(self) -> dict[str, Any]:
        """Return the dict a :class:`AnswerCollator` batches (a training set item)."""
        return {
            "input_ids": list(self.input_ids),
            "prompt_length": self.prompt_length,
            "weight": self.weight,
        }


def chat_for(example: Example) -> list[dict[str, str]]:
    """Return the chat-template messages of the example's product prompt.

    Example:
        >>> ex = Example(id="1", question="Who?", answers=("Ada",), context="Ada wrote it.")
        >>> [m["role"] for m in chat_for(ex)]
        ['system', 'user']
    """
    return [{"role": _ROLES[m.type], "content": str(m.text)} for m in prompt_for(example)]


def prompt_ids(tokenizer: Any, example: Example) -> list[int]:
    """Return the prompt ids of ``example`` as the live route renders them."""
    ids = tokenizer.apply_chat_template(
        chat_for(example),
        tokenize=True,
        add_generation_prompt=True,
        return_dict=False,
        # As ChatTransformers: control tokens inside message text are encoded as text.
        sanitize_control_tokens=True,
    )
    return [int(i) for i in ids]


def _end_ids(tokenizer: Any) -> set[int]:
    ends: set[int] = set()
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        ends.add(eos)
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        unk = getattr(tokenizer, "unk_token_id", None)
        if isinstance(token_id, int) and token_id >= 0 and token_id != unk:
            ends.add(token_id)
    return ends


def answer_ids(tokenizer: Any, example: Example, target: str) -> list[int]:
    """Return the ids the model should generate for ``target``, end-of-turn token included.

    The chat template renders the prompt with an assistant turn holding ``target``; the
    text after the generation prompt, cut after the first end-of-turn token, is the answer.
    A template that does not extend the prompt that way falls back to ``target`` + eos.
    """
    chat = chat_for(example)
    prompt_text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": target}], tokenize=False
    )
    eos = getattr(tokenizer, "eos_token", None) or ""
    if isinstance(full_text, str) and full_text.startswith(prompt_text) and target in full_text:
        suffix = full_text[len(prompt_text) :]
    else:
        suffix = target + eos
    ids = [int(i) for i in tokenizer(suffix, add_special_tokens=False)["input_ids"]]
    ends = _end_ids(tokenizer)
    for position, token_id in enumerate(ids):
        if token_id in ends:
            return ids[: position + 1]
    eos_id = getattr(tokenizer, "eos_token_id", None)
    return [*ids, eos_id] if isinstance(eos_id, int) else ids


def encode_rows(
    rows: Sequence[TuningRow],
    tokenizer: Any,
    *,
    weights: Mapping[bool, float] | None = None,
    max_length: int | None = None,
) -> tuple[list[EncodedRow], list[int]]:
    """Encode rows; return ``(encoded, skipped)`` (indices of rows longer than ``max_length``).

    A row too long is skipped rather than truncated: cutting the passage would teach an
    answer the shortened prompt may no longer hold.
    """
    encoded: list[EncodedRow] = []
    skipped: list[int] = []
    for index, row in enumerate(rows):
        prompt = prompt_ids(tokenizer, row.example)
        answer = answer_ids(tokenizer, row.example, row.target)
        if max_length is not None and len(prompt) + len(answer) > max_length:
            skipped.append(index)
            continue
        encoded.append(
            EncodedRow(
                input_ids=tuple(prompt + answer),
                prompt_length=len(prompt),
                weight=float((weights or {}).get(row.answerable, 1.0)),
                answerable=row.answerable,
                index=index,
            )
        )
    return encoded, skipped


@dataclass
class AnswerCollator:
    """Pad a batch on the left; labels are the answer ids, ``-100`` elsewhere.

    The batch holds ``input_ids``, ``attention_mask``, ``position_ids`` (counting from the
    first real token), ``labels``, ``weights`` (one loss weight per row) and
    ``answer_length`` (the longest answer of the batch: the loss needs the logits of the
    last ``answer_length + 1`` positions only).
    """

    pad_id: int

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Return the padded batch of ``features`` (dicts of :meth:`EncodedRow.as_feature`)."""
        import torch

        length = max(len(f["input_ids"]) for f in features)
        ids, mask, labels = [], [], []
        for f in features:
            tokens = list(f["input_ids"])
            pad = length - len(tokens)
            ids.append([self.pad_id] * pad + tokens)
            mask.append([0] * pad + [1] * len(tokens))
            answer = len(tokens) - int(f["prompt_length"])
            labels.append([IGNORE_INDEX] * (length - answer) + tokens[len(tokens) - answer :])
        attention = torch.tensor(mask, dtype=torch.long)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": attention,
            "position_ids": (attention.cumsum(-1) - 1).clamp(min=0),
            "labels": torch.tensor(labels, dtype=torch.long),
            "weights": torch.tensor([float(f.get("weight", 1.0)) for f in features]),
            "answer_length": max(len(f["input_ids"]) - int(f["prompt_length"]) for f in features),
        }
