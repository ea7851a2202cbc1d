"""The paper's diagrams, in the book's style (:mod:`senet_core.book.style`), traced from the code where
they show it.

* Fig. 1 (:func:`draw_se_block`): the SE block, Eqs. 1-4, optionally coloured with real gates
  (one vector, or several, e.g. a trained block's mean gate per class).
* Figs. 2-3 (:func:`draw_module`): one SE-Inception module or SE-ResNet unit, traced from a forward
  pass of the module itself (:func:`senet_core.models.describe.trace_module`) rather than drawn by
  hand.
* Fig. 5 (:func:`draw_integration_variants`): the five residual-unit designs of Section 6.5.

Every function returns the figure.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib import cm, colors as mcolors
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle

from ..models.describe import trace_module
from ..se import GATED_MODULES
from .style import IDENTITY_COLOUR, PLAIN_FILL, SE_COLOUR, SE_FILL, as_numpy, book_figure, style


# ---- Diagram primitives -----------------------------------------------------------------------------
def _box(ax, x: float, y: float, text: str, width: float = 2.6, height: float = 0.55,
         fill: str = PLAIN_FILL, edge: str = "#333333", fontsize: float = 8) -> tuple[float, float]:
    """A rounded box centred at (x, y); returns its centre."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=fill,
                                edgecolor=edge, linewidth=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x, y


def _column(ax, x: float, y: float, previous: tuple[float, float], texts: list[str], step: float,
            **box) -> tuple[tuple[float, float], float]:
    """Boxes of ``texts`` down a column at ``x`` from ``y``, each reached by an arrow from the one above
    (the first from ``previous``); returns the last box's bottom and the ``y`` below it. ``box``: the
    boxes' fill, edge and font size."""
    for text in texts:
        _box(ax, x, y, text, width=2.2, **box)
        _arrow(ax, previous, (x, y + 0.28))
        previous = (x, y - 0.28)
        y -= step
    return previous, y


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], colour: str = "#333333",
           style_: str = "-|>", connection: str = "arc3", linestyle: str = "-") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style_, mutation_scale=9, color=colour,
                                 linewidth=1.0, connectionstyle=connection, linestyle=linestyle,
                                 shrinkA=0, shrinkB=0))


def _circle(ax, x: float, y: float, symbol: str, radius: float = 0.2) -> None:
    ax.add_patch(Circle((x, y), radius, facecolor="white", edgecolor="#333333", linewidth=0.9))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=9)


def _blank(ax) -> None:
    ax.set_aspect("equal")
    ax.axis("off")


# ---- Fig. 1: the SE block (Section 3) ---------------------------------------------------------------
def _slab(ax, x: float, y: float, colours: Sequence, depth: float = 1.2, height: float = 1.6,
          width: float = 0.9, edge: str = "#333333") -> None:
    """A feature map drawn as C stacked channel slices, front slice at (x, y), receding up-right."""
    n = len(colours)
    dx, dy = depth / max(n, 1) * 0.8, depth / max(n, 1) * 0.6
    for i in reversed(range(n)):
        ox, oy = x + i * dx, y + i * dy
        ax.add_patch(Polygon([(ox, oy), (ox + width, oy), (ox + width, oy + height), (ox, oy + height)],
                             closed=True, facecolor=colours[i], edgecolor=edge, linewidth=0.3))


def _strip(ax, x: float, y: float, colours: Sequence, length: float = 1.6, side: float = 0.28,
           gid: str | None = None) -> None:
    """A 1 x 1 x C vector drawn as a vertical strip of C cells (channel 1 at the bottom)."""
    n = len(colours)
    cell = length / n
    for i, colour in enumerate(colours):
        ax.add_patch(Rectangle((x, y + i * cell), side, cell, facecolor=colour, edgecolor="#333333",
                               linewidth=0.3, gid=gid))


def _gate_vectors(gates) -> dict[str, np.ndarray]:
    """``gates`` as ``{label: 1-D array}``: a mapping as given, a single vector under the label ''."""
    vectors = {str(k): as_numpy(v).ravel() for k, v in gates.items()} if isinstance(gates, Mapping) \
        else {"": as_numpy(gates).ravel()}
    if not vectors or any(v.size == 0 for v in vectors.values()):
        raise ValueError("gates is empty: give a vector of gate values s, or a mapping of labels to vectors")
    sizes = {v.size for v in vectors.values()}
    if len(sizes) > 1:
        raise ValueError(f"every gate vector must have the same number of channels, got sizes {sorted(sizes)}")
    return vectors


def draw_se_block(gates=None, max_channels: int = 32, title: str | None = None):
    """Fig. 1: a Squeeze-and-Excitation block, with the shapes of Eqs. 1-4.

    ``X`` (H' x W' x C') -> ``F_tr`` -> ``U`` (H x W x C) -> ``F_sq`` (Eq. 2) -> 1 x 1 x C ->
    ``F_ex`` (Eq. 3) -> 1 x 1 x C -> ``F_scale`` (Eq. 4) -> ``X~`` (H x W x C). ``gates`` is

    * ``None``: illustrative colours only;
    * a 1-D array of real gate values ``s`` (e.g. one image's, from :func:`senet_core.capture_gates`):
      the excitation strip (channel 1 at the bottom) and the output channels are coloured by them;
    * a mapping ``{label: 1-D array}`` (e.g. a trained block's mean gate per class): the diagram is
      coloured by the first entry, and a panel under it shows every entry over all C channels, one
      row per label, so that one sees how the recalibration differs between inputs.

    Channels beyond ``max_channels`` are left out of the diagram (not of the panel). Colours are on
    the absolute 0-1 scale of a sigmoid gate.
    """
    vectors = None if gates is None else _gate_vectors(gates)
    with style():
        cmap = matplotlib.colormaps["viridis"]
        if vectors is None:
            n = 12
            values = np.linspace(0.15, 0.95, n)[[3, 9, 1, 6, 11, 0, 8, 4, 10, 2, 7, 5]]
            caption = "illustrative gate colours"
        else:
            first, values = next(iter(vectors.items()))
            channels = values.size
            drawn = f", first {max_channels} channels drawn" if channels > max_channels else ""
            caption = f"gate values s of a real SE block{': ' + first if first else ''} (C={channels}{drawn})"
            values = values[:max_channels]
            n = values.size
        norm = mcolors.Normalize(0.0, 1.0)
        gate_colours = [cmap(norm(v)) for v in values]
        # U's channels get distinct neutral hues: F_tr's channels before any recalibration.
        feature_colours = [matplotlib.colormaps["tab20c"](i % 20) for i in range(n)]
        scaled = [mcolors.to_rgba(c, alpha=0.25 + 0.75 * float(np.clip(v, 0, 1)))
                  for c, v in zip(feature_colours, values)]

        panel = vectors is not None and len(vectors) > 1
        if panel:
            fig, axes = book_figure(2, 1, (10, 3.9 + 0.3 * len(vectors)),
                                gridspec_kw={"height_ratios": [3.4, 0.5 + 0.3 * len(vectors)]})
        else:
            fig, axes = book_figure(1, 1, (10, 3.4))
        ax = axes[0, 0]
        _slab(ax, 0.0, 0.6, ["#bbbbbb"] * 6, depth=0.9, height=1.4, width=0.8)
        ax.text(0.6, 0.25, "X\nH'×W'×C'", ha="center", va="top", fontsize=9)
        _arrow(ax, (1.8, 1.4), (2.8, 1.4))
        ax.text(2.3, 1.55, r"$F_{tr}$", ha="center", fontsize=10)
        _slab(ax, 3.0, 0.5, feature_colours)
        ax.text(3.7, 0.25, "U\nH×W×C", ha="center", va="top", fontsize=9)
        _arrow(ax, (5.2, 1.6), (6.1, 1.6))
        ax.text(5.65, 1.75, r"$F_{sq}(\cdot)$", ha="center", fontsize=10)
        _strip(ax, 6.3, 0.8, ["#dddddd"] * n)
        ax.text(6.45, 0.55, "z\n1×1×C", ha="center", va="top", fontsize=9)
        _arrow(ax, (6.8, 1.6), (7.8, 1.6))
        ax.text(7.3, 1.75, r"$F_{ex}(\cdot,\mathbf{W})$", ha="center", fontsize=10)
        _strip(ax, 8.0, 0.8, gate_colours, gid="s")
        ax.text(8.15, 0.55, "s\n1×1×C", ha="center", va="top", fontsize=9)
        _arrow(ax, (8.5, 1.6), (9.4, 1.6))
        ax.text(8.95, 1.75, r"$F_{scale}(\cdot,\cdot)$", ha="center", fontsize=10)
        # U feeds F_scale too (Eq. 4 multiplies u_c by s_c).
        _arrow(ax, (4.4, 2.6), (9.9, 2.6), connection="arc3,rad=-0.0", linestyle="--")
        ax.plot([4.4, 4.4], [2.25, 2.6], color="#333333", linewidth=1.0, linestyle="--")
        ax.plot([9.9, 9.9], [2.6, 2.2], color="#333333", linewidth=1.0, linestyle="--")
        _slab(ax, 9.6, 0.5, scaled)
        ax.text(10.3, 0.25, "X̃\nH×W×C", ha="center", va="top", fontsize=9)
        ax.set_xlim(-0.4, 11.6)
        ax.set_ylim(-0.6, 3.0)
        _blank(ax)
        ax.text(5.6, -0.55, caption, ha="center", fontsize=8, color="#555555")
        ax.set_title(title or "Fig. 1: A Squeeze-and-Excitation block")
        if panel:
            rows = axes[1, 0]
            matrix = np.stack(list(vectors.values()))
            rows.imshow(matrix, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
            rows.set_yticks(range(len(vectors)), list(vectors))
            rows.grid(False)
            label = f"channel c of s (all {matrix.shape[1]})"
            if matrix.shape[1] > max_channels:   # the channels the diagram above draws
                rows.add_patch(Rectangle((-0.5, -0.5), max_channels, len(vectors), fill=False,
                                         edgecolor="white", linewidth=1.2, linestyle="--"))
                label = f"channel c of s (all {matrix.shape[1]}; dashed: the {max_channels} drawn above)"
            rows.set_xlabel(label)
        sm = cm.ScalarMappable(norm=norm, cmap=cmap)
        bar = fig.colorbar(sm, ax=list(axes[:, 0]), fraction=0.025, pad=0.01)
        bar.set_label("gate $s_c$ (Eq. 3)")
    return fig


# ---- Figs. 2-3: a module traced from the code (Section 3.3) ------------------------------------------
def _shape_text(shape: Sequence[int]) -> str:
    """(N, C, H, W) -> 'H×W×C' and (N, C) -> '1×1×C', the paper's notation."""
    if len(shape) == 4:
        return f"{shape[2]}×{shape[3]}×{shape[1]}"
    if len(shape) == 2:
        return f"1×1×{shape[1]}"
    return "×".join(map(str, shape[1:]))


def _call_text(call: dict) -> str:
    """A traced layer's box text: its name over its output shape."""
    return f"{call['layer']}\n{_shape_text(call['shape'])}"


def draw_module(block, input_shape: Sequence[int], title: str | None = None):
    """Figs. 2-3 drawn from the code: the leaf layers of ``block`` in call order, with output shapes.

    ``block`` is one module (e.g. ``create_model("se_resnet50").layer1[0]`` or
    ``create_model("se_bn_inception").inception3a``), ``input_shape`` its input, (C, H, W) or
    (N, C, H, W). Parallel branches (Inception) become columns; the SE block's layers are
    highlighted, with its pooling (Eq. 2) and scale (Eq. 4) added, since they are tensor
    operations rather than modules; a residual block gets its identity path and addition.
    """
    calls = trace_module(block, input_shape)
    se_blocks = [m for m in block.modules() if isinstance(m, GATED_MODULES)]
    residual = hasattr(block, "downsample") or hasattr(block, "shortcut")
    first_se = next((i for i, c in enumerate(calls) if c["part"] == "se"), len(calls))
    last_se = max((i for i, c in enumerate(calls) if c["part"] == "se"), default=len(calls) - 1)
    head = [i for i, c in enumerate(calls[:first_se]) if c["part"] == "main"]
    identity = [i for i, c in enumerate(calls) if c["part"] == "identity"]
    tail = [i for i, c in enumerate(calls) if i > last_se and c["part"] == "main"]
    # Split the head into chains: a call starts a new chain when its input is the block's input,
    # a non-module result, or an output another call already continued (a fork).
    chains: list[list[int]] = []
    continued: set[int] = set()
    for i in head:
        parent = calls[i]["parent"]
        extend = next((ch for ch in chains if parent is not None and parent >= 0 and ch[-1] == parent
                       and parent not in continued), None)
        if extend is not None:
            extend.append(i)
            continued.add(parent)
        else:
            chains.append([i])
    depth = max((len(c) for c in chains), default=0)
    columns = max(len(chains), 1)
    step, col_w = 0.85, 2.5
    kind = "SE-ResNet module" if residual else "SE-Inception module" if len(chains) > 1 else "SE module"
    if not se_blocks:
        kind = kind.replace("SE-", "").replace("SE module", "module")
    fig_title = title or (f"Fig. {3 if residual else 2}: {kind} "
                          f"(traced from {type(block).__name__})")

    with style():
        fig, axes = book_figure(1, 1, (5, 5))
        ax = axes[0, 0]
        centre = 0.0
        y = 0.0
        in_text = _shape_text((1,) + tuple(input_shape)[-3:])
        _box(ax, centre, y, f"X  {in_text}", width=2.2, fill="white")
        top = y
        y -= step
        xs = [centre + (k - (columns - 1) / 2) * col_w for k in range(columns)]
        ends, concat_shape = [], None
        for x_col, chain in zip(xs, chains):
            end, _ = _column(ax, x_col, y, (centre, top - 0.28), [_call_text(calls[i]) for i in chain], step,
                             fontsize=7)
            ends.append(end)
        y -= depth * step
        if len(chains) > 1:
            channels = sum(calls[ch[-1]]["shape"][1] for ch in chains)
            spatial = calls[chains[0][-1]]["shape"]
            _box(ax, centre, y, f"concatenate\n{_shape_text((1, channels) + tuple(spatial[2:]))}",
                 width=2.2, fontsize=7)
            # Route each branch straight down to just above the concatenation, then into it.
            for end in ends:
                ax.plot([end[0], end[0]], [end[1], y + 0.55], color="#333333", linewidth=1.0)
                _arrow(ax, (end[0], y + 0.55), (centre + (end[0] - centre) * 0.25, y + 0.28))
            ends = [(centre, y - 0.28)]
            concat_shape = (1, channels) + tuple(spatial[2:])
            y -= step
        previous = ends[0] if ends else (centre, top - 0.28)
        u_shape = concat_shape if len(chains) > 1 else calls[head[-1]]["shape"] if head else None
        if se_blocks:
            se_calls = [c for c in calls if c["part"] == "se"]
            channels = se_calls[-1]["shape"][1]
            spatial = u_shape[2:] if u_shape is not None and len(u_shape) == 4 else (1, 1)
            entries = [(c["layer"], _shape_text(c["shape"])) for c in se_calls]
            entries.append(("scale", f"{spatial[0]}×{spatial[1]}×{channels}"))
            se_top = y + 0.4
            previous, y = _column(ax, centre, y, previous, [f"{label}\n{text}" for label, text in entries], step,
                                  fill=SE_FILL, edge=SE_COLOUR, fontsize=7)
            ax.text(centre + 1.25, (se_top + y + step - 0.4) / 2, "SE block", rotation=90, ha="left",
                    va="center", fontsize=8, color=SE_COLOUR)
            # The scale also reads U (Eq. 4): a dashed line from U to the scale box.
            ax.plot([centre - 1.1, centre - 1.35, centre - 1.35, centre - 1.1],
                    [se_top, se_top, y + step, y + step], color=SE_COLOUR, linewidth=0.8, linestyle="--")
        if residual:
            x_id = min(xs) - 2.3
            ax.plot([centre - 1.1, x_id], [top, top], color=IDENTITY_COLOUR, linewidth=1.0)
            y_id = top
            if identity:
                mid = (top + y) / 2
                ax.plot([x_id, x_id], [top, mid + 0.28], color=IDENTITY_COLOUR, linewidth=1.0)
                label = "\n".join(calls[i]["layer"] for i in identity) + "\n" + \
                    _shape_text(calls[identity[-1]]["shape"])
                _box(ax, x_id, mid, label, width=1.6, height=0.28 * (len(identity) + 1), fontsize=6)
                y_id = mid - 0.14 * (len(identity) + 1)
            ax.plot([x_id, x_id], [y_id, y], color=IDENTITY_COLOUR, linewidth=1.0)
            _arrow(ax, (x_id, y), (centre - 0.2, y), colour=IDENTITY_COLOUR)
            ax.text(x_id - 0.1, y + 0.8, "identity", rotation=90, ha="right", va="bottom",
                    fontsize=7, color=IDENTITY_COLOUR)
            _arrow(ax, previous, (centre, y + 0.2))
            _circle(ax, centre, y, "+")
            previous = (centre, y - 0.2)
            y -= step
        previous, y = _column(ax, centre, y, previous, [_call_text(calls[i]) for i in tail], step, fontsize=7)
        if tail:
            out_shape = calls[tail[-1]]["shape"]
        elif se_blocks and u_shape is not None:
            out_shape = u_shape
        else:
            out_shape = calls[head[-1]]["shape"] if head else None
        _arrow(ax, previous, (centre, y + 0.28))
        _box(ax, centre, y, "X̃" + (f"  {_shape_text(out_shape)}" if out_shape else ""), width=2.2,
             fill="white")
        left = min(xs) - 1.3 - (2.1 if residual else 0)
        right = max(max(xs) + 1.3, centre + 1.7)
        ax.set_xlim(left, right)
        ax.set_ylim(y - 0.5, top + 0.5)
        _blank(ax)
        ax.set_title(fig_title)
        # Equal aspect: size the figure to the drawing so that no band of white surrounds it.
        inch = 0.62
        fig.set_size_inches(max((right - left) * inch, 5.0), (top - y + 1.0) * inch + 0.5)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.45 / ((top - y + 1.0) * inch + 0.5))
    return fig


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
    models (:func:`senet_core.se.close_residual`); Table 14 compares them.
    """
    with style():
        fig, axes = book_figure(1, len(INTEGRATION_VARIANTS), (11, 3.6))
        for ax, (title, se_at) in zip(axes[0], INTEGRATION_VARIANTS):
            _residual_unit(ax, title, se_at)
        fig.suptitle("Fig. 5: SE block integration designs explored in the ablation study")
        fig.tight_layout()
    return fig
