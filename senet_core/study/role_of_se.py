"""Section 7.2 of the paper: what the excitations of an SE network do (Figs. 6-8), measured on any SE
network and images.

The paper passes 50 validation images of each of four ImageNet classes through a trained
SE-ResNet-50 and plots, for the last SE block of each stage and all blocks of the last stage, the
mean gate ``s`` (Eq. 3) per channel and class (Fig. 6) and its spread within a class (Fig. 7).

* :func:`excitation_statistics` collects those statistics from an SE network and batches of images
  with :func:`senet_core.capture_gates` (the gates of the forward pass that runs anyway).
* :func:`last_block_of_each_stage` picks the blocks the paper plots.
* :func:`layerwise_summary` turns the statistics into the numbers behind the paper's three
  observations (class-agnostic early, class-specific late, saturation in the last stage), and
  :func:`observations` says whether ours agree.
* :func:`trace_se_block` gives the tensors of Section 3 around one block, for Eqs. 2-4.

Which trained model stands in for the paper's, and the record of its excitations, are
:mod:`senet_core.study.reference`'s.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..se import capture_gates, se_modules


def _stage_of(name: str) -> str:
    # "layer3.5.se" -> "layer3": blocks of one stage share the top-level container they live in.
    return name.split(".")[0]


def last_block_of_each_stage(model: nn.Module) -> list[str]:
    """The SE blocks Figs. 6-7 plot: the last SE block of every stage, and every block of the last stage.

    A stage is the top-level child module an SE block lives in (``layer1`` ... ``layer4`` of the
    ResNets), so for SE-ResNet-50 this gives SE_2_3, SE_3_4, SE_4_6, SE_5_1, SE_5_2, SE_5_3 in the
    paper's naming: ``layer1.2.se``, ``layer2.3.se``, ``layer3.5.se``, ``layer4.{0,1,2}.se``.
    """
    stages: dict[str, list[str]] = {}
    for name in se_modules(model):
        stages.setdefault(_stage_of(name), []).append(name)
    if not stages:
        raise ValueError(f"{type(model).__name__} has no SE blocks")
    groups = list(stages.values())
    return [group[-1] for group in groups[:-1]] + groups[-1]


def paper_block_name(name: str, model: nn.Module) -> str:
    """The paper's ``SE_stageID_blockID`` name of a block (stages counted from 2, blocks from 1)."""
    stages = list(dict.fromkeys(_stage_of(n) for n in se_modules(model)))
    in_stage = [n for n in se_modules(model) if _stage_of(n) == _stage_of(name)]
    return f"SE_{stages.index(_stage_of(name)) + 2}_{in_stage.index(name) + 1}"


@torch.no_grad()
def excitation_statistics(model: nn.Module, loader: Iterable, num_per_class: int = 50,
                          blocks: Sequence[str] | None = None, device: str | torch.device = "cpu") -> dict:
    """Per-class gate statistics of the SE blocks ``blocks`` (default: :func:`last_block_of_each_stage`).

    ``loader`` yields ``(images, labels)`` batches, preprocessed as for evaluation. The first
    ``num_per_class`` images of every class are kept, in loader order; iteration stops once every
    class of the classifier (``model.fc.out_features`` when there is one) has them all. The model
    runs in eval mode, one forward pass per batch.

    Returns ``{block: {"classes": {label: {"gates": (N_c, C), "mean": (C,), "std": (C,), "n": N_c}},
    "all": (C,)}}``, tensors on the CPU. ``std`` is the standard deviation over the images of the
    class (0 for a single image); ``"all"`` is the mean over every kept image, i.e. the mean of the
    class means weighted by their counts (the paper's reference over all classes). NoSqueeze gates,
    which vary over positions, are averaged over H x W first.
    """
    device = torch.device(device)
    available = se_modules(model)
    names = list(blocks) if blocks is not None else last_block_of_each_stage(model)
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"no SE block named {', '.join(missing)}; the model's SE blocks: "
                         f"{', '.join(available)}")
    num_classes = getattr(getattr(model, "fc", None), "out_features", None)
    kept: dict[int, dict[str, list[torch.Tensor]]] = {}
    counts: dict[int, int] = {}
    was_training = model.training
    model.eval().to(device)
    try:
        for images, labels in loader:
            labels = labels.cpu()
            take = []
            for i, label in enumerate(labels.tolist()):
                if counts.get(label, 0) < num_per_class:
                    counts[label] = counts.get(label, 0) + 1
                    take.append(i)
            if take:
                with capture_gates(model) as gates:
                    model(images.to(device))
                for name in names:
                    g = gates[name].float().cpu()
                    g = g.mean((2, 3)) if g.dim() == 4 else g
                    for i in take:
                        kept.setdefault(int(labels[i]), {}).setdefault(name, []).append(g[i])
            if num_classes is not None and len(counts) == num_classes and \
                    all(c >= num_per_class for c in counts.values()):
                break
    finally:
        model.train(was_training)
    if not kept:
        raise ValueError("the loader yielded no images")
    stats = {}
    for name in names:
        per_class, everything = {}, []
        for label in sorted(kept):
            g = torch.stack(kept[label][name])
            std = g.std(0, unbiased=True) if len(g) > 1 else torch.zeros(g.shape[1])
            per_class[label] = {"gates": g, "mean": g.mean(0), "std": std, "n": len(g)}
            everything.append(g)
        stats[name] = {"classes": per_class, "all": torch.cat(everything).mean(0)}
    return stats


def layerwise_summary(stats: dict, classes: Sequence[int] | None = None, model: nn.Module | None = None):
    """The numbers behind Section 7.2's observations, one row per block (a pandas DataFrame).

    * ``between-class spread``: the standard deviation over ``classes`` of the class-mean gate,
      averaged over channels. Small = class-agnostic (the paper's early layers), large =
      class-specific (its later layers).
    * ``within-class std``: the standard deviation over a class's images, averaged over channels
      and classes (Fig. 7's instance-level dynamics).
    * ``mean gate`` and ``gates > 0.9``: the fraction of (image, channel) gates above 0.9;
      near 1 means the block is saturated and acts almost as the identity (the paper's SE_5_2).
    * ``between-class correlation``: the mean Pearson correlation, over pairs of classes, of
      their class-mean gate curves: near 1 with a non-zero spread is the paper's "same shape,
      different scale" (SE_5_3).
    """
    rows = []
    for name, block in stats.items():
        labels = list(classes) if classes is not None else sorted(block["classes"])
        means = torch.stack([block["classes"][c]["mean"] for c in labels])
        gates = torch.cat([block["classes"][c]["gates"] for c in labels])
        row = {"block": name}
        if model is not None:
            row["paper name"] = paper_block_name(name, model)
        row.update({
            "channels": means.shape[1],
            "between-class spread": float(means.std(0, unbiased=True).mean()) if len(labels) > 1 else 0.0,
            "within-class std": float(torch.stack([block["classes"][c]["std"] for c in labels]).mean()),
            "mean gate": float(gates.mean()),
            "gates > 0.9": float((gates > 0.9).float().mean()),
        })
        if len(labels) > 1:
            corr = torch.corrcoef(means)
            off = corr[~torch.eye(len(labels), dtype=torch.bool)]
            row["between-class correlation"] = float(off.nan_to_num(1.0).mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("block")


def observations(summary, spread_ratio: float = 1.5, saturated: float = 0.5) -> list[str]:
    """The paper's three Section 7.2 observations checked against ``layerwise_summary`` (sentences).

    Early vs late: the between-class spread of the last-stage blocks against the first block's
    (agreement needs a ratio above ``spread_ratio``). Saturation: the largest share of gates above
    0.9 in a last-stage block (agreement needs more than ``saturated``). Scale: the correlation of
    the class curves in the last block.
    """
    blocks = list(summary.index)
    stage = _stage_of(blocks[-1])
    late = [b for b in blocks if _stage_of(b) == stage]
    first = blocks[0]
    name = (lambda b: f"{b} ({summary.loc[b, 'paper name']})") if "paper name" in summary else str
    early_spread = float(summary.loc[first, "between-class spread"])
    late_spread = float(summary.loc[late, "between-class spread"].mean())
    ratio = late_spread / early_spread if early_spread > 0 else float("inf")
    agree = "agrees" if ratio > spread_ratio else "does not agree"
    lines = [f"Class-agnostic early, class-specific late: the spread between class means is "
             f"{early_spread:.3g} at {name(first)} and {late_spread:.3g} on average in the last stage "
             f"(ratio {ratio:.1f}); ours {agree} with the paper (threshold: ratio > {spread_ratio})."]
    share = summary.loc[late, "gates > 0.9"]
    top = share.idxmax()
    agree = "agrees" if float(share.max()) > saturated else "does not agree"
    lines.append(f"Saturation in the last stage: at most {float(share.max()):.1%} of the gates exceed 0.9 "
                 f"(in {name(top)}; mean gate there {float(summary.loc[top, 'mean gate']):.3f}); ours {agree} "
                 f"with the paper's saturated SE_5_2 (threshold: more than {saturated:.0%}).")
    if "between-class correlation" in summary:
        corr = float(summary.loc[blocks[-1], "between-class correlation"])
        lines.append(f"Same shape up to scale in the last block: the class curves of {name(blocks[-1])} have a "
                     f"mean pairwise correlation of {corr:.2f} (1 = identical shape).")
    return lines


def trace_se_block(model: nn.Module, block: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tensors of Section 3 around one SE block, from a single forward pass of ``model``.

    ``block`` names a module that holds an SE block as ``.se`` (e.g. ``"layer1.0"``). Returns
    ``X`` (the unit's input), ``U`` (what the SE block gates: the output of F_tr), ``s`` (the gate,
    Eq. 3), ``W1``, ``W2`` (the excitation weights, biases in ``b1``, ``b2`` when present) and ``out``
    (the unit's output), so that Eqs. 2-4 can be checked against the code.
    """
    unit = model.get_submodule(block)
    se = unit.se
    seen: dict[str, torch.Tensor] = {}
    hooks = [unit.register_forward_hook(lambda m, i, o: seen.update(X=i[0].detach().clone(), out=o.detach())),
             se.register_forward_hook(lambda m, i, o: seen.update(U=i[0].detach().clone()))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture_gates(model) as gates:
            model(images)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    name = next(n for n, m in se_modules(model).items() if m is se)
    traced = {**seen, "s": gates[name], "W1": se.fc1.weight.detach(), "W2": se.fc2.weight.detach()}
    if se.fc1.bias is not None:
        traced.update(b1=se.fc1.bias.detach(), b2=se.fc2.bias.detach())
    return traced
