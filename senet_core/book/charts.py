"""The paper's charts, drawn from results in the book's style (:mod:`senet_core.book.style`).

* Fig. 4 (:func:`plot_training_curves`): validation error against epoch, baseline beside SE.
* Figs. 6-7 (:func:`plot_excitations`, :func:`plot_excitation_spread`): excitation statistics
  of Section 7.2, from :func:`senet_core.study.role_of_se.excitation_statistics`.
* Fig. 8 (:func:`show_samples`): example images of the classes used in Figs. 6-7.

Every function takes its data explicitly, trains nothing, and returns the figure.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .style import BASELINE_COLOUR, CLASS_COLOURS, SE_COLOUR, as_numpy, book_figure, style


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
        fig, axes = book_figure(1, len(pairs), (max(3.8 * len(pairs), 6.5), 3.0))
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


# ---- Figs. 6-8: the role of excitation (Section 7.2) -------------------------------------------------
def _class_names(classes) -> dict:
    if isinstance(classes, dict):
        return dict(classes)
    return {c: str(c) for c in classes}


def _sampled_channels(count: int, channels: int) -> np.ndarray:
    # "50 uniformly sampled channels": evenly spaced indices, so the choice is deterministic.
    if count <= channels:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, channels).round().astype(int))


def _panel_grid(n: int, ncols: int = 3, panel: tuple[float, float] = (3.6, 2.6)):
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = book_figure(nrows, ncols, (panel[0] * ncols, panel[1] * nrows + 0.6))
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _panel_title(index: int, block: str, names: dict | None) -> str:
    label = names.get(block, block) if names else block
    return f"({chr(ord('a') + index)}) {label}"


def _excitation_panels(stats: dict, classes, blocks: Sequence[str], channels: int, names: dict | None,
                       title: str, draw_class, with_all: bool):
    """The panel grid of Figs. 6-7: one panel per SE block, ``draw_class(ax, x, idx, class_stats,
    colour, name)`` once per class, and the mean over all classes dashed when ``with_all``."""
    class_names = _class_names(classes)
    with style():
        fig, axes = _panel_grid(len(blocks))
        for k, (ax, block) in enumerate(zip(axes, blocks)):
            entry = stats[block]
            idx = _sampled_channels(len(entry["all"]), channels)
            x = np.arange(len(idx))
            for j, (label, name) in enumerate(class_names.items()):
                draw_class(ax, x, idx, entry["classes"][label], CLASS_COLOURS[j % len(CLASS_COLOURS)], name)
            if with_all:
                ax.plot(x, as_numpy(entry["all"])[idx], color="black", linestyle="--", linewidth=1.0,
                        label="all")
            ax.set_ylim(0, 1.02)
            ax.set_title(_panel_title(k, block, names))
            ax.set_xlabel("channel index" + (" (sampled)" if len(idx) < len(entry["all"]) else ""))
            ax.set_ylabel("activation")
        axes[0].legend(loc="lower left", ncol=2 if with_all else 1)
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_excitations(stats: dict, classes, blocks: Sequence[str], channels: int = 50,
                     names: dict | None = None, title: str | None = None):
    """Fig. 6: mean excitation per channel for each class, and over all classes, at several depths.

    ``stats`` comes from :func:`senet_core.study.role_of_se.excitation_statistics`; ``classes`` is a
    sequence of labels or a ``{label: name}`` dict; ``blocks`` the SE blocks to plot (one panel
    each); ``names`` optional display names (``{"layer1.2.se": "SE_2_3"}``). The first
    ``channels`` channels are shown, or that many evenly spaced ones when a block has more.
    """
    def class_mean(ax, x, idx, c, colour, name):
        ax.plot(x, as_numpy(c["mean"])[idx], color=colour, label=name, linewidth=1.0)

    return _excitation_panels(stats, classes, blocks, channels, names,
                              title or "Fig. 6: activations induced by excitation in different modules",
                              class_mean, with_all=True)


def plot_excitation_spread(stats: dict, classes, blocks: Sequence[str], channels: int = 50,
                           names: dict | None = None, title: str | None = None):
    """Fig. 7: per channel, the mean excitation over a class's images with a +/- 1 std band.

    Arguments as :func:`plot_excitations`; the paper shows two classes (goldfish, plane).
    """
    def mean_and_band(ax, x, idx, c, colour, name):
        mean, std = as_numpy(c["mean"])[idx], as_numpy(c["std"])[idx]
        ax.plot(x, mean, color=colour, label=f"{name} (n={c['n']})", linewidth=1.0)
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)

    return _excitation_panels(stats, classes, blocks, channels, names,
                              title or "Fig. 7: activations induced by excitation, mean and std within a class",
                              mean_and_band, with_all=False)


def show_samples(images, labels, class_names, per_class: int = 3, title: str | None = None):
    """Fig. 8: example images, one column per class (in order of first appearance in ``labels``).

    ``images`` is (N, H, W), (N, 1, H, W) or (N, 3, H, W), uint8 or float; ``class_names`` a
    ``{label: name}`` dict or a sequence indexed by label.
    """
    images = as_numpy(images)
    labels = [int(v) for v in as_numpy(labels).ravel()]
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    names = class_names if isinstance(class_names, dict) else dict(enumerate(class_names))
    order = list(dict.fromkeys(labels))
    if not order:
        raise ValueError("no images to show")
    by_class = {c: [i for i, v in enumerate(labels) if v == c][:per_class] for c in order}
    rows = max(len(v) for v in by_class.values())
    scale = 255.0 if images.max() > 1.0 else 1.0
    with style():
        fig, axes = book_figure(rows, len(order), (1.6 * len(order), 1.6 * rows + 0.5))
        for j, c in enumerate(order):
            for r in range(rows):
                ax = axes[r, j]
                ax.axis("off")
                if r < len(by_class[c]):
                    ax.imshow(images[by_class[c][r]] / scale, cmap="gray", vmin=0, vmax=1)
            axes[0, j].set_title(f"({chr(ord('a') + j)}) {names.get(c, c)}")
        fig.suptitle(title or "Fig. 8: sample images from the classes used in Figs. 6-7")
        fig.tight_layout()
    return fig
