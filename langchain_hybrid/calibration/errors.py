"""The error calibration raises when it cannot run on what it was given."""

from __future__ import annotations

from langchain_hybrid.errors import LangChainHybridError

__all__ = ["CalibrationError"]


class CalibrationError(LangChainHybridError):
    """Calibration cannot run on what it was given (no records, a missing extra, bad target)."""
