"""Tuned adapters on local models: find one, check it fits its base, merge it, and name the result.

An adapter folder is what :func:`langchain_hybrid.tuning.tune` writes: peft's standard
format (``adapter_config.json``, ``adapter_model.safetensors``) and a card
(``tuning_card.json``) naming the base model it was trained on. :func:`merge_adapter`
applies it to a loaded base model and merges it into the weights (``merge_and_unload``:
inference runs at the base model's speed), after checking the card's base fingerprint
against the weights it is applied to (a mismatch warns: the adapter was trained on other
weights). :func:`adapter_identity` names the result ``<base>+<adapter>@<sha8>``, the
model name decisions, LangSmith and policy files record.

Example:
    >>> import tempfile
    >>> adapter_identity("SmolLM2-135M-Instruct", tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    langchain_hybrid.errors.ModelNotAvailableError: ... is not an adapter folder ...
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_hybrid.errors import ModelNotAvailableError

__all__ = ["ADAPTER_CONFIG", "Fingerprint", "adapter_identity", "merge_adapter"]

#: The file that marks a folder as a peft adapter.
ADAPTER_CONFIG = "adapter_config.json"
_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
#: Computes the base weights' fingerprint and its kind, as a tuning card records them.
Fingerprint = Callable[[], tuple[str | None, str | None]]


def _checked_folder(adapter: str | Path) -> Path:
    folder = Path(adapter).expanduser()
    if (folder / ADAPTER_CONFIG).is_file():
        return folder
    if (folder / "config.json").is_file():
        raise ModelNotAvailableError(
            f"{str(folder)!r} holds a whole model (tune --method full writes one), not an "
            "adapter: pass it as ChatTransformers(model=...) instead of adapter=."
        )
    raise ModelNotAvailableError(
        f"{str(folder)!r} is not an adapter folder (no {ADAPTER_CONFIG}): pass the folder "
        "langchain-hybrid tune wrote (or any peft adapter)."
    )


def adapter_identity(base_name: str, adapter: str | Path) -> str:
    """Return the name of ``base_name`` with ``adapter`` merged: ``<base>+<adapter>@<sha8>``.

    ``sha8`` is the start of the SHA-256 of the adapter's weights: two folders with the
    same weights have the same identity, a retrained adapter another one.
    """
    from langchain_hybrid.tuning.card import file_sha256

    folder = _checked_folder(adapter)
    weights = next((folder / w for w in _WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        raise ModelNotAvailableError(f"{str(folder)!r} has no adapter weights ({_WEIGHTS[0]}).")
    return f"{base_name}+{folder.resolve().name}@{file_sha256(weights)[:8]}"


def _check_card(folder: Path, base_fingerprint: Fingerprint, base_name: str) -> None:
    """Warn when the adapter's card names other base weights than those it is applied to."""
    card_path = folder / "tuning_card.json"
    if not card_path.is_file():
        return
    try:
        base = json.loads(card_path.read_text()).get("base_model") or {}
    except (OSError, ValueError, AttributeError):
        return
    expected = base.get("fingerprint")
    if not expected:
        return
    actual, kind = base_fingerprint()
    if actual is not None and kind == base.get("fingerprint_kind") and actual != expected:
        warnings.warn(
            f"The adapter {folder.name!r} was trained on {base.get('name')!r} "
            f"({kind} {expected[:12]}), but is applied to {base_name!r} ({actual[:12]}): "
            "its answers may be poor. Pass the base model it was trained on.",
            UserWarning,
            stacklevel=4,
        )


def merge_adapter(
    model: Any, adapter: str | Path, *, base_name: str, base_fingerprint: Fingerprint
) -> Any:
    """Apply the adapter to ``model``, merge it into the weights, return the merged model.

    ``base_fingerprint`` computes the base weights' fingerprint the way a tuning card
    records it (``(value, kind)``), when the card is there to compare with. Needs peft
    (``pip install 'langchain-hybrid[tune]'``).
    """
    folder = _checked_folder(adapter)
    _check_card(folder, base_fingerprint, base_name)
    from langchain_hybrid._quiet import quiet_import_noise

    quiet_import_noise()
    try:
        from peft import PeftModel
    except ImportError as e:
        from langchain_hybrid.errors import MissingDependencyError

        raise MissingDependencyError(
            "Loading an adapter needs peft: pip install 'langchain-hybrid[tune]'"
        ) from e
    try:
        tuned = PeftModel.from_pretrained(model, str(folder))
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelNotAvailableError(
            f"Could not apply the adapter {str(folder)!r} to {base_name!r}: {e}. Pass the base "
            "model it was trained on (its tuning_card.json names it)."
        ) from e
    return tuned.merge_and_unload()
