"""Apply a tuned LoRA adapter to a loaded base model, after checking it was tuned on that base.

The adapter folder :func:`~langchain_hybrid.tuning.tune` writes holds peft's standard files
(``adapter_config.json``, ``adapter_model.safetensors``) and ``tuning_card.json``, whose
``base_model.fingerprint`` names the weights it was tuned on. :func:`apply_adapter` refuses
an adapter whose card names other weights than the ones given, then merges the adapter
into the weights (``merge_and_unload``): the merged model generates exactly as fast as the
base and needs no peft at inference. Merging changes the model in place, so give it a
model of its own (not one shared with other chat models), and merge before any
quantisation.

Example:
    >>> from transformers import AutoModelForCausalLM  # doctest: +SKIP
    >>> base = AutoModelForCausalLM.from_pretrained(folder)  # doctest: +SKIP
    >>> key = embedded_fingerprint()  # doctest: +SKIP
    >>> model = apply_adapter(base, "adapter/", fingerprint=key)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_hybrid.errors import MissingDependencyError
from langchain_hybrid.tuning.card import CARD_FILE, AdapterCard, model_fingerprint

__all__ = ["AdapterMismatchError", "apply_adapter", "embedded_fingerprint", "folder_fingerprint"]


class AdapterMismatchError(ValueError):
    """The adapter was tuned on other base weights than the ones it is applied to."""


def embedded_fingerprint() -> str:
    """Return the fingerprint a card records for the embedded model (its GGUF content key)."""
    from langchain_hybrid import _models

    return _models.gguf_content_key(_models.embedded_gguf_path())


def folder_fingerprint(folder: str | Path) -> str | None:
    """Return the fingerprint a card records for a local model folder (SHA-256 of safetensors).

    Example:
        >>> import tempfile
        >>> folder_fingerprint(tempfile.mkdtemp()) is None
        True
    """
    return model_fingerprint(folder)[0]


def apply_adapter(
    model: Any, adapter: str | Path, *, fingerprint: str | None = None, merge: bool = True
) -> Any:
    """Return ``model`` with the LoRA adapter of folder ``adapter`` applied (merged by default).

    Args:
        model: the loaded base model (``AutoModelForCausalLM``), in the dtype it will run in.
        adapter: the folder :func:`~langchain_hybrid.tuning.tune` saved.
        fingerprint: the base weights' fingerprint (:func:`embedded_fingerprint`,
            :func:`folder_fingerprint`); when given and the adapter's card records another,
            :class:`AdapterMismatchError` is raised. None skips the check.
        merge: merge the adapter into the weights (no peft wrapper at inference); False
            returns the ``PeftModel``.

    Raises:
        FileNotFoundError: the folder holds no ``adapter_config.json`` (a ``method="full"``
            folder is a whole model: load it as one).
        AdapterMismatchError: the card's base fingerprint differs from ``fingerprint``.
    """
    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds no adapter_config.json; a folder tuned with method='full' is a "
            "whole model: load it with ChatTransformers(model=...)"
        )
    if fingerprint is not None and (folder / CARD_FILE).is_file():
        recorded = AdapterCard.load(folder).base_model.get("fingerprint")
        if recorded and recorded != fingerprint:
            raise AdapterMismatchError(
                f"the adapter in {folder} was tuned on base weights {recorded}, not on these "
                f"({fingerprint}); tune it again on this model or load the base it names"
            )
    try:
        from peft import PeftModel
    except ImportError as e:
        raise MissingDependencyError("loading a LoRA adapter needs peft: pip install peft") from e
    tuned = PeftModel.from_pretrained(model, str(folder))
    return tuned.merge_and_unload() if merge else tuned
