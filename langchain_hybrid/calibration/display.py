"""Drawing a trade-off curve: accuracy and cost against cloud share (matplotlib, loaded on use)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from langchain_hybrid.calibration.errors import CalibrationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


__all__ = ["TradeoffCurveDisplay"]


class _Point(Protocol):
    @property
    def cloud_share(self) -> float: ...
    @property
    def accuracy(self) -> float: ...
    @property
    def kept_accuracy(self) -> float | None: ...
    @property
    def cost_per_query(self) -> float: ...


class DrawableCurve(Protocol):
    """What the display reads of a curve (a ``TradeoffCurve`` has it all)."""

    @property
    def points(self) -> Sequence[_Point]:
        """The measured points, by cloud share."""

    @property
    def chosen(self) -> int | None:
        """The index of the chosen point, if any."""

    @property
    def scorer(self) -> str:
        """The scorer the curve was measured with."""

    @property
    def n(self) -> int:
        """How many records it was measured on."""

    @property
    def source(self) -> str:
        """Where the cloud's outcomes and the scores came from."""


class TradeoffCurveDisplay:
    """A drawing of a :class:`~langchain_hybrid.calibration.curve.TradeoffCurve`.

    As scikit-learn's displays: the curve is what was measured, this draws it.
    :meth:`plot` draws expected accuracy (and the accuracy of the answers kept local) and
    expected cost per query against cloud share on a new figure, ``figure_``, with the
    chosen point marked; :meth:`save` writes it.

    Example:
        >>> from langchain_hybrid.calibration.curve import CurvePoint, TradeoffCurve
        >>> p = CurvePoint(0.0, 1.0, 0.9, 0.01, None, 0)
        >>> curve = TradeoffCurve(points=(p,), chosen=0, scorer="x", n=10, source="test")
        >>> TradeoffCurveDisplay(curve).plot().figure_.get_axes()[0].get_xlabel()
        'cloud share'
    """

    def __init__(self, curve: DrawableCurve) -> None:
        self.curve = curve
        #: The matplotlib ``Figure`` once :meth:`plot` has drawn it.
        self.figure_: Figure | None = None

    def plot(self, title: str | None = None) -> TradeoffCurveDisplay:
        """Draw the curve on a new figure (Agg backend); ``title`` defaults to its provenance.

        Raises :class:`CalibrationError` when matplotlib is not installed.
        """
        self.figure_ = self._draw(title)
        return self

    def save(self, path: str | Path) -> None:
        """Write the figure as a PNG (100 dpi), drawing it first if :meth:`plot` was not called."""
        figure = self.figure_ if self.figure_ is not None else self._draw(None)
        figure.savefig(str(path), dpi=100)

    def _draw(self, title: str | None) -> Figure:
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise CalibrationError(
                "plotting needs matplotlib: pip install 'langchain-hybrid[calibration]'"
            ) from e
        curve = self.curve
        share = [p.cloud_share for p in curve.points]
        fig = Figure(figsize=(9, 4))
        FigureCanvasAgg(fig)
        ax_acc, ax_cost = fig.subplots(1, 2)
        ax_acc.plot(share, [p.accuracy for p in curve.points], "-", label="hybrid (expected)")
        kept = [
            (p.cloud_share, p.kept_accuracy) for p in curve.points if p.kept_accuracy is not None
        ]
        if kept:
            ax_acc.plot(*zip(*kept, strict=True), ":", label="answers kept local")
        ax_cost.plot(share, [p.cost_per_query for p in curve.points], "-")
        if curve.chosen is not None:
            c = curve.points[curve.chosen]
            ax_acc.plot([c.cloud_share], [c.accuracy], "o", color="red", label="chosen")
            ax_cost.plot([c.cloud_share], [c.cost_per_query], "o", color="red")
        ax_acc.set_xlabel("cloud share")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(0, 1)
        ax_acc.legend(loc="lower right", fontsize=8)
        ax_cost.set_xlabel("cloud share")
        ax_cost.set_ylabel("expected USD per query")
        fig.suptitle(title or f"{curve.scorer}, n={curve.n} ({curve.source})", fontsize=10)
        fig.tight_layout()
        return fig
