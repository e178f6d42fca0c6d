"""Keeps import-time log lines of torch's ecosystem that concern no user of this package off stderr.

transformers imports torchao whenever it is installed (``transformers/quantizers/auto.py``),
and torchao then logs, at import, each optional GPU kernel library it cannot load
(``Failed to load .../torchao/_C_mxfp8...so``), while torch logs a deprecation note on
torchao's own enums (``<enum 'KernelPreference'> is an Enum subclass ...``), and peft,
through torchao, that triton (a GPU compiler) is missing. A user who
never asked for torchao sees them on every model load; one who did gains nothing from
them on a machine without CUDA either. :func:`quiet_import_noise` drops exactly those
records with logging filters on their two loggers (every other torchao or torch warning
still shows); the kernel-library lines still show where CUDA is available, since
there they may concern a torchao user.

Example:
    >>> import logging
    >>> quiet_import_noise()
    >>> record = logging.makeLogRecord({"name": "torch.utils._pytree", "levelno": 30,
    ...     "msg": "%s is an Enum subclass and is now natively supported by torch.compile",
    ...     "args": ("<enum 'KernelPreference'>",)})
    >>> logging.getLogger("torch.utils._pytree").filter(record)
    False
"""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["quiet_import_noise"]

_PYTREE_ENUM_NOTE = re.compile(r"is an Enum subclass and is now natively supported")
_KERNEL_LIBRARY_NOT_LOADED = re.compile(r"^Failed to load \S+\.so\b")
_NO_TRITON = re.compile(r"Detected no triton")


class _DropNoise(logging.Filter):
    """Drop the records of one logger whose message matches one of ``patterns``."""

    def __init__(self, *patterns: re.Pattern[str], unless_cuda: bool = False) -> None:
        super().__init__()
        self.patterns = patterns
        self.unless_cuda = unless_cuda

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not any(pattern.search(message) for pattern in self.patterns):
            return True
        return self.unless_cuda and _cuda_available()


def _cuda_available() -> bool:
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA setup: the lines may matter, keep them
        return True


_FILTERS = {
    "torch.utils._pytree": _DropNoise(_PYTREE_ENUM_NOTE),
    "torchao": _DropNoise(_KERNEL_LIBRARY_NOT_LOADED, unless_cuda=True),
    # peft imports torchao's int8 matmul module, which looks for GPU kernels (triton).
    "torchao.kernel.intmm": _DropNoise(_NO_TRITON, unless_cuda=True),
}


def quiet_import_noise() -> None:
    """Install the filters (once per process; call before transformers is imported)."""
    for name, noise in _FILTERS.items():
        logger = logging.getLogger(name)
        if noise not in logger.filters:
            logger.addFilter(noise)
