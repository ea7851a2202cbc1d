"""The book's one plotting style, shared by its charts and its diagrams.

A palette (baseline grey-blue, SE orange), the rcParams every figure is drawn under (:func:`style`),
:class:`BookFigure`, a figure that a notebook shows once, as a PNG, when a cell returns it, and
:func:`as_numpy` for the tensors the figures are given.
"""
from __future__ import annotations

import contextlib
import io
from typing import Iterator

import matplotlib
import numpy as np
from matplotlib.figure import Figure

# One palette for the book: baseline grey-blue, SE orange, the SE part of diagrams light orange.
BASELINE_COLOUR = "#4c72b0"
SE_COLOUR = "#dd8452"
SE_FILL = "#fde3cf"
PLAIN_FILL = "#e8eef7"
IDENTITY_COLOUR = "#555555"
CLASS_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
                 "#8c8c8c", "#ccb974", "#64b5cd")

RC_PARAMS = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 11,
    "lines.linewidth": 1.4,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The book's plotting style (:data:`RC_PARAMS`), applied inside a ``with`` block only."""
    with matplotlib.rc_context(RC_PARAMS):
        yield


class BookFigure(Figure):
    """A Figure outside pyplot that a notebook shows once, as a PNG, when a cell returns it.

    pyplot's inline backend would show a pyplot figure a second time at the end of the cell, and
    would keep every figure in its registry.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def book_figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs):
    """A :class:`BookFigure` of ``size`` inches with an (nrows x ncols) array of axes."""
    fig = BookFigure(figsize=size)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def as_numpy(values) -> np.ndarray:
    """A tensor, array or sequence as a float array (a tensor is detached and moved to the CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)
