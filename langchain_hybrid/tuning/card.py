"""The adapter card: what a tuned adapter was trained from, how, and how well it validated.

:func:`~langchain_hybrid.tuning.tune` writes an :class:`AdapterCard` as
``tuning_card.json`` beside the adapter it saves: the base model and its fingerprint
(so an adapter is never applied to other weights unknowingly), the method and its
hyper-parameters, the data (file, SHA-256, rows per class, grouping), how far training
went, the validation figures of the saved weights, timings, the machine and the command.
:meth:`AdapterCard.load` reads it back.

Example:
    >>> import tempfile
    >>> card = AdapterCard(base_model={"name": "tiny", "fingerprint": "sha256:00"},
    ...                    method="lora", hyperparameters={"learning_rate": 1e-3})
    >>> folder = tempfile.mkdtemp()
    >>> _ = card.save(folder)
    >>> AdapterCard.load(folder) == card
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "CARD_FILE",
    "CARD_FORMAT",
    "AdapterCard",
    "file_sha256",
    "machine_info",
    "model_fingerprint",
]

#: The card's file name inside the output folder.
CARD_FILE = "tuning_card.json"
#: The card format this release writes (and reads).
CARD_FORMAT = 1


@dataclass
class AdapterCard:
    """The record of one tuning run, saved as JSON beside the adapter.

    Attributes:
        base_model: ``name``, ``source`` (where it was loaded from), ``fingerprint`` and
            ``fingerprint_kind`` (``"sha256-safetensors"``: SHA-256 over the base model's
            safetensors files, in name order; ``"gguf-content-key"``: the embedded GGUF's
            content key).
        method: ``"lora"`` or ``"full"``.
        hyperparameters: every setting of the run (learning rate, batch size, LoRA rank,
            layers and modules, balancing, target choice, seed...).
        data: ``train`` and ``validation``, each with ``name``, ``sha256``, ``rows``,
            ``rows_by_class``, ``groups`` and ``grouping``; ``excluded_ids`` and
            ``skipped_too_long`` counts.
        training: ``steps``, ``epochs_done``, ``examples_seen``, ``stopped`` (why it
            ended: ``"completed"``, ``"early_stopping"``, ``"time_limit"``,
            ``"interrupted"``), ``best_step``, ``wall_seconds``, ``train_seconds`` and
            ``seconds_per_example`` (training only, validation excluded).
        validation: ``best`` (the metrics of the saved weights: loss, per-class accuracy,
            decline rate...), ``select_on`` and ``history`` (every validation pass).
        machine: CPU model, cores, device, precision, library versions.
        command: how the run was started (``argv``) and the ``tune()`` arguments.
        created: when the card was written (UTC, ISO 8601).
        format_version: :data:`CARD_FORMAT`.
    """

    base_model: dict[str, Any]
    method: str
    hyperparameters: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    command: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    format_version: int = CARD_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Return the card as a JSON-safe dict."""
        return json.loads(json.dumps(asdict(self), default=str))  # type: ignore[no-any-return]

    def save(self, folder: str | Path) -> Path:
        """Write the card to ``folder``/:data:`CARD_FILE` and return the file's path."""
        path = Path(folder) / CARD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> AdapterCard:
        """Read the card of an adapter folder (or a card file); ``ValueError`` if unreadable.

        Example:
            >>> import tempfile
            >>> AdapterCard.load(tempfile.mkdtemp())
            Traceback (most recent call last):
            ...
            FileNotFoundError: no tuning card in ...
        """
        path = Path(folder)
        if path.is_dir():
            path = path / CARD_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tuning card in {folder} (expected {CARD_FILE})")
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a tuning card must be a JSON object")
        version = data.get("format_version")
        if version != CARD_FORMAT:
            raise ValueError(
                f"{path}: tuning card format_version {version!r} is not supported "
                f"(this langchain-hybrid reads {CARD_FORMAT})"
            )
        known = {f.name for f in fields(cls)}
        missing = {"base_model", "method", "hyperparameters"} - data.keys()
        if missing:
            raise ValueError(f"{path}: the tuning card lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in known})


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 (hex) of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x")
        >>> _ = open(path, "wb").write(b"abc")
        >>> file_sha256(path)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_fingerprint(folder: str | Path | None) -> tuple[str | None, str | None]:
    """Return ``(fingerprint, kind)`` of a local model folder's safetensors files.

    The fingerprint is the SHA-256 over each ``*.safetensors`` file's name and SHA-256,
    in name order; ``(None, None)`` when the folder holds none (or is not a folder).

    Example:
        >>> import tempfile
        >>> model_fingerprint(tempfile.mkdtemp())
        (None, None)
    """
    if folder is None or not Path(folder).is_dir():
        return None, None
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None, None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest(), "sha256-safetensors"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str, precision: str) -> dict[str, Any]:
    """Return the machine facts a card records (CPU, cores, device, library versions).

    Example:
        >>> sorted(machine_info("cpu", "float32"))[:3]
        ['cpu', 'cpu_cores', 'device']
    """
    import importlib.metadata as metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "device": device,
        "precision": precision,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "peft": version("peft"),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = round(os.getloadavg()[0], 2)
    if device.startswith("cuda"):
        try:
            import torch

            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        except Exception:  # noqa: BLE001 - the card records what it can
            info["gpu"] = None
    return info
