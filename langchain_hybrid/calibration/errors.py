"""What stops calibration: its typed error, and the check that its optional extra is installed."""

from __future__ import annotations

from typing import Any

from langchain_hybrid.errors import LangChainHybridError

__all__ = ["CalibrationError", "require_sklearn"]


class CalibrationError(LangChainHybridError):
    """Calibration cannot run on what it was given (no records, a missing extra, bad target)."""


def require_sklearn() -> Any:
    """Return scikit-learn with the parts calibration uses; :class:`CalibrationError` if absent."""
    try:
        import sklearn  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CalibrationError(
            "calibration needs scikit-learn: pip install 'langchain-hybrid[calibration]'"
        ) from e
    import sklearn.decomposition
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.model_selection
    import sklearn.pipeline
    import sklearn.preprocessing

    return sklearn
