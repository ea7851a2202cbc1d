"""The paper's figures, regenerated from data or from the code, in one plotting style.

* Fig. 1 (:func:`draw_se_block`): the SE block, Eqs. 1-4, optionally coloured with real gates.
* Figs. 2-3 (:func:`draw_module`): one SE-Inception module or SE-ResNet unit, traced from a forward
  pass of the module itself rather than drawn by hand.
* Fig. 4 (:func:`plot_training_curves`): validation error against epoch, baseline beside SE.
* Fig. 5 (:func:`draw_integration_variants`): the five residual-unit designs of Section 6.5.
* Figs. 6-7 (:func:`plot_excitations`, :func:`plot_excitation_spread`): excitation statistics
  of Section 7.2, from :func:`senet_core.role_of_se.excitation_statistics`.
* Fig. 8 (:func:`show_samples`): example images of the classes used in Figs. 6-7.

Every function takes its data explicitly, trains nothing, and returns the
:class:`matplotlib.figure.Figure`; :func:`style` is the one rcParams set they all draw under.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np

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
    import matplotlib.pyplot as plt

    with plt.rc_context(RC_PARAMS):
        yield


def _figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)
    return fig, axes


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)


# ---- Diagram primitives -----------------------------------------------------------------------------
def _box(ax, x: float, y: float, text: str, width: float = 2.6, height: float = 0.55,
         fill: str = PLAIN_FILL, edge: str = "#333333", fontsize: float = 8) -> tuple[float, float]:
    """A rounded box centred at (x, y); returns its centre."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=fill,
                                edgecolor=edge, linewidth=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x, y


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], colour: str = "#333333",
           style_: str = "-|>", connection: str = "arc3", linestyle: str = "-") -> None:
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style_, mutation_scale=9, color=colour,
                                 linewidth=1.0, connectionstyle=connection, linestyle=linestyle,
                                 shrinkA=0, shrinkB=0))


def _circle(ax, x: float, y: float, symbol: str, radius: float = 0.2) -> None:
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), radius, facecolor="white", edgecolor="#333333", linewidth=0.9))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=9)


def _blank(ax) -> None:
    ax.set_aspect("equal")
    ax.axis("off")


# ---- Fig. 5: integration designs (Section 6.5) ------------------------------------------------------
# Each design is a list of steps on the residual branch, plus where the SE block sits:
# "branch_start" (SE-PRE), "branch_end" (standard), "after_sum" (SE-POST), "identity" (SE-Identity).
INTEGRATION_VARIANTS = (
    ("(a) Residual block", None),
    ("(b) Standard SE block", "branch_end"),
    ("(c) SE-PRE block", "branch_start"),
    ("(d) SE-POST block", "after_sum"),
    ("(e) SE-Identity block", "identity"),
)


def _residual_unit(ax, title: str, se_at: str | None) -> None:
    """One design of Fig. 5: input on top, output at the bottom, identity on the left."""
    se_box = dict(fill=SE_FILL, edge=SE_COLOUR)
    branch_x, identity_x = 0.6, -1.2
    steps = ["Residual"]
    if se_at == "branch_start":
        steps = ["SE", "Residual"]
    elif se_at == "branch_end":
        steps = ["Residual", "SE"]
    top = 4.2
    ax.text(branch_x - 0.3, top + 0.35, "X", ha="center", fontsize=9)
    y = top - 0.6
    previous = (branch_x, top)
    for step in steps:
        kind = se_box if step == "SE" else {}
        _box(ax, branch_x, y, step, width=1.6, height=0.5, **kind)
        _arrow(ax, previous, (branch_x, y + 0.25))
        previous = (branch_x, y - 0.25)
        y -= 0.9
    sum_y = min(y + 0.2, 1.4)
    _arrow(ax, previous, (branch_x, sum_y + 0.2))
    # The identity leaves the input, runs down the left, and joins the sum (through SE for (e)).
    ax.plot([branch_x, identity_x, identity_x], [top, top, sum_y + (1.0 if se_at == "identity" else 0)],
            color=IDENTITY_COLOUR, linewidth=1.0)
    if se_at == "identity":
        _box(ax, identity_x, sum_y + 0.75, "SE", width=0.9, height=0.5, **se_box)
        ax.plot([identity_x, identity_x], [sum_y + 0.5, sum_y], color=IDENTITY_COLOUR, linewidth=1.0)
    _arrow(ax, (identity_x, sum_y), (branch_x - 0.2, sum_y), colour=IDENTITY_COLOUR)
    _circle(ax, branch_x, sum_y, "+")
    y = sum_y - 0.75
    if se_at == "after_sum":
        _box(ax, branch_x, y, "SE", width=1.6, height=0.5, **se_box)
        _arrow(ax, (branch_x, sum_y - 0.2), (branch_x, y + 0.25))
        out_top = y - 0.25
        y -= 0.8
    else:
        out_top = sum_y - 0.2
    _arrow(ax, (branch_x, out_top), (branch_x, y))
    ax.text(branch_x, y - 0.3, "X̃", ha="center", fontsize=9)
    ax.text(0, -1.15, title, ha="center", va="top", fontsize=9)
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-1.6, 4.8)
    _blank(ax)


def draw_integration_variants():
    """Fig. 5: the residual unit and the four places Section 6.5 puts its SE block, side by side.

    The code paths are ``se_position="standard" | "pre" | "post" | "identity"`` of the residual
    models (``senet_core.models.resnet._merge``); Table 14 compares them.
    """
    with style():
        fig, axes = _figure(1, len(INTEGRATION_VARIANTS), (11, 3.6))
        for ax, (title, se_at) in zip(axes[0], INTEGRATION_VARIANTS):
            _residual_unit(ax, title, se_at)
        fig.suptitle("Fig. 5: SE block integration designs explored in the ablation study")
        fig.tight_layout()
    return fig


# ---- Fig. 4: training curves (Section 5.1) ----------------------------------------------------------
def _curves_by_seed(records: Sequence[dict], row: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and a (seeds x epochs) array of ``metric`` for one row, over the epochs all seeds share."""
    runs = [r for r in records if r["row"] == row and r["metrics"].get("curve")]
    if not runs:
        raise ValueError(f"no record of row {row!r} has a training curve; rows with records: "
                         f"{', '.join(sorted({r['row'] for r in records}))}")
    length = min(len(r["metrics"]["curve"]) for r in runs)
    epochs = np.array([p["epoch"] for p in runs[0]["metrics"]["curve"][:length]], dtype=float)
    values = np.array([[p[metric] for p in r["metrics"]["curve"][:length]] for r in runs], dtype=float)
    return epochs, values


def plot_training_curves(records: Sequence[dict], pairs: Sequence[tuple[str, str]],
                         metric: str = "val_top1_err", title: str | None = None):
    """Fig. 4: validation top-1 error against epoch, baseline beside its SE counterpart.

    ``records`` are result records (``experiments.run_experiment``); ``pairs`` lists
    ``(baseline_row, se_row)`` labels, one panel each. Lines are the mean over seeds, the shaded
    band the min-max range over seeds. Epoch k is the
    validation error after k epochs of training.
    """
    if not pairs:
        raise ValueError("pairs is empty: give at least one (baseline_row, se_row) pair")
    with style():
        fig, axes = _figure(1, len(pairs), (max(3.8 * len(pairs), 6.5), 3.0))
        for ax, (baseline, se_row) in zip(axes[0], pairs):
            for row, colour in ((baseline, BASELINE_COLOUR), (se_row, SE_COLOUR)):
                epochs, values = _curves_by_seed(records, row, metric)
                shown = epochs
                n = values.shape[0]
                ax.plot(shown, values.mean(0), color=colour, marker="o", markersize=3,
                        label=f"{row} (n={n})")
                if n > 1:
                    ax.fill_between(shown, values.min(0), values.max(0), color=colour, alpha=0.2,
                                    linewidth=0)
            ax.set_title(f"{baseline} vs {se_row}")
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylabel("val top-1 error (%)" if metric == "val_top1_err" else metric)
            ax.legend()
        fig.suptitle(title or "Fig. 4: validation top-1 error of baselines and their SE counterparts")
        fig.tight_layout()
    return fig
