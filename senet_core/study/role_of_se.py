"""Section 7.2 of the paper: what the excitations of a trained SE network do (Figs. 6-8).

The paper passes 50 validation images of each of four ImageNet classes through a trained
SE-ResNet-50 and plots, for the last SE block of each stage and all blocks of the last stage, the
mean gate ``s`` (Eq. 3) per channel and class (Fig. 6) and its spread within a class (Fig. 7).

* :func:`excitation_statistics` collects those statistics from any SE network and loader with
  :func:`senet_core.capture_gates` (the gates of the forward pass that runs anyway).
* :func:`last_block_of_each_stage` picks the blocks the paper plots.
* :func:`reference_model` loads (training it first if needed) our reduced-scale stand-in for the
  paper's model: the SE row of the Table 16 ablation, seed 0.
* :func:`layerwise_summary` turns the statistics into the numbers behind the paper's three
  observations (class-agnostic early, class-specific late, saturation in the last stage).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from .experiments import Pair, decisions, experiment, profile, row_recipe, run_dir_of, train_row
from .results import write_json
from ..se import capture_gates, se_modules
from .stats import Comparison

# Fashion-MNIST's label names, in label order (Xiao et al. 2017, the dataset's README).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

# The experiment row whose trained model stands in for the paper's SE-ResNet-50 in Section 7.2.
REFERENCE_EXPERIMENT, REFERENCE_ROW, REFERENCE_SEED = "table16_nosqueeze", "SE", 0
# Four Fashion-MNIST classes of different kinds, as the paper's four ImageNet classes are: T-shirt/top
# (upper body), Trouser (legs), Sandal (footwear), Bag (not worn).
REFERENCE_CLASSES = (0, 1, 5, 8)


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
    import pandas as pd

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


def _profile(profile_name: str, epochs: int | None):
    from dataclasses import replace

    prof = profile(profile_name)
    return prof if epochs is None else replace(prof, epochs=epochs)


def reference_run_dir(runs_dir: str | Path, profile_name: str, epochs: int | None = None) -> Path:
    """Where ``run_experiment`` trains the reference SE model (row SE of Table 16, seed 0)."""
    exp = experiment(REFERENCE_EXPERIMENT)
    return run_dir_of(exp, exp.row(REFERENCE_ROW), _profile(profile_name, epochs), REFERENCE_SEED, runs_dir)


def reference_model(runs_dir: str | Path = "runs/experiments", profile: str = "smoke", device: str = "cpu",
                    data_dir: str | None = None, epochs: int | None = None, download: bool = False) -> nn.Module:
    """The trained reference SE model of the ablations (Table 16, row "SE", seed 0), in eval mode.

    Loads ``runs_dir/<profile>/<fingerprint>-seed0/checkpoint.pt``; if it is not there, trains
    that one row first (the same run folder ``run_experiment`` uses, so an interrupted run
    continues). ``epochs`` overrides the profile's, and ``download`` fetches a missing dataset, as in
    ``run_experiment``.
    """
    from ..engine.data import dataset_info
    from ..models import create_model
    from ..engine.runtime import CHECKPOINT, resolve_device

    exp, prof = experiment(REFERENCE_EXPERIMENT), _profile(profile, epochs)
    row = exp.row(REFERENCE_ROW)
    checkpoint = reference_run_dir(runs_dir, profile, epochs) / CHECKPOINT
    if not checkpoint.exists():
        train_row(exp, row, prof, REFERENCE_SEED, runs_dir, device, data_dir, download)
    _, options = row_recipe(exp, row, prof)
    info = dataset_info(prof.dataset)
    model = create_model(row.model, num_classes=info.num_classes, in_chans=info.in_chans, **options)
    target = resolve_device(device)
    state = torch.load(checkpoint, map_location=target, weights_only=True)["model"]
    model.load_state_dict(state)
    return model.to(target).eval()


def reference_val_loader(profile: str = "smoke", data_dir: str | None = None, device: str | torch.device = "cpu",
                         batch_size: int = 256, download: bool = False):
    """Validation batches as the reference model saw them in training (its profile's image size)."""
    from ..engine.data import build_loaders

    exp, prof = experiment(REFERENCE_EXPERIMENT), _profile(profile, None)
    chosen, _ = row_recipe(exp, exp.row(REFERENCE_ROW), prof)
    return build_loaders(chosen.dataset, data_dir, batch_size=batch_size, device=device,
                         image_size=chosen.image_size, download=download).val


def excitation_record(stats: dict, summary, classes: dict, names: dict, provenance: dict) -> dict:
    """What Figs. 6-7 and the layer-wise table need, as JSON: per block and class the mean and std
    gate of every channel (not the per-image gates), the mean over all classes, the summary rows."""
    def floats(t: torch.Tensor) -> list[float]:
        return [round(float(v), 5) for v in t]

    return {
        "experiment": "role_of_se_excitations", "seed": REFERENCE_SEED, "classes": {str(k): v for k, v in classes.items()},
        "names": names,
        "blocks": {block: {"all": floats(entry["all"]),
                           "classes": {str(c): {"mean": floats(e["mean"]), "std": floats(e["std"]), "n": e["n"]}
                                       for c, e in entry["classes"].items() if c in classes}}
                   for block, entry in stats.items()},
        "summary": summary.reset_index().to_dict(orient="records"),
        "provenance": provenance,
    }


def excitation_record_path(results_dir: str | Path, profile: str) -> Path:
    """Beside the experiments' folders, not in one: it is not a training record."""
    return Path(results_dir) / profile / f"role_of_se_excitations__seed{REFERENCE_SEED}.json"


def write_excitation_record(results_dir: str | Path, profile: str, record: dict) -> Path:
    return write_json(excitation_record_path(results_dir, profile), record)


def excitations(profile: str, results_dir: str | Path, runs_dir: str | Path, device: str = "auto",
                data_dir: str | None = None, write: bool = False, num_per_class: int = 50, download: bool = False):
    """Figs. 6-7's statistics of the reference model: ``(stats, classes, names, summary, record)``.

    The record under ``results_dir`` is read back when it was made from the current reference run
    (its ``provenance.run``); otherwise the reference model is loaded (trained first if its run is
    missing), its gates measured on the first ``num_per_class`` validation images of each class, and,
    with ``write``, the record written. The record's provenance is the reference run's training record.
    ``download`` fetches a missing dataset (:func:`senet_core.engine.data.build_loaders`).
    """
    from .experiments import run_name
    from .results import load_records
    from ..engine.runtime import resolve_device

    run = reference_run_dir(runs_dir, profile).name
    record = read_excitation_record(results_dir, profile)
    if record is not None and record["provenance"].get("run") == run:
        return (*statistics_from_record(record), record)
    target = resolve_device(device)
    model = reference_model(runs_dir, profile, str(target), data_dir=data_dir, download=download)
    blocks = last_block_of_each_stage(model)
    names = {b: f"{paper_block_name(b, model)} ({b})" for b in blocks}
    classes = {c: FASHION_MNIST_CLASSES[c] for c in REFERENCE_CLASSES}
    loader = reference_val_loader(profile, data_dir, device=target, download=download)
    stats = excitation_statistics(model, loader, num_per_class=num_per_class, blocks=blocks, device=target)
    summary = layerwise_summary(stats, list(classes), model)
    trained = [r for r in load_records(results_dir, profile, REFERENCE_EXPERIMENT)
               if r["row"] == REFERENCE_ROW and r["seed"] == REFERENCE_SEED
               and run_name(r["fingerprint"], r["seed"]) == run]
    provenance = {**(trained[0]["provenance"] if trained else {}), "run": run}
    record = excitation_record(stats, summary, classes, names, provenance)
    if write:
        write_excitation_record(results_dir, profile, record)
    return stats, classes, names, summary, record


def read_excitation_record(results_dir: str | Path, profile: str) -> dict | None:
    """The committed record of ``profile``, or None when there is none."""
    import json

    path = excitation_record_path(results_dir, profile)
    return json.loads(path.read_text()) if path.exists() else None


def statistics_from_record(record: dict) -> tuple[dict, dict, dict, "object"]:
    """``(stats, classes, names, summary)`` from :func:`excitation_record`'s JSON, ready for the plots."""
    import pandas as pd

    stats = {block: {"all": torch.tensor(entry["all"]),
                     "classes": {int(c): {"mean": torch.tensor(e["mean"]), "std": torch.tensor(e["std"]),
                                          "n": e["n"]} for c, e in entry["classes"].items()}}
             for block, entry in record["blocks"].items()}
    classes = {int(k): v for k, v in record["classes"].items()}
    return stats, classes, record["names"], pd.DataFrame(record["summary"]).set_index("block")


def class_mean_gates(record: dict, classes: Sequence[int] | None = None,
                     block: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """One block's mean gate ``s`` per class from :func:`excitation_record`'s JSON (Fig. 1, trained).

    ``block=None`` takes the block whose class means differ most (the largest ``between-class
    spread`` of the record's summary); ``classes=None`` every class of the record. Returns the block's
    name and ``{class name: (C,) tensor}`` in the order of ``classes``.
    """
    stats, class_names, _, summary = statistics_from_record(record)
    block = block if block is not None else str(summary["between-class spread"].idxmax())
    if block not in stats:
        raise ValueError(f"the record has no block {block!r}; its blocks: {', '.join(stats)}")
    wanted = list(classes) if classes is not None else list(class_names)
    unknown = [c for c in wanted if c not in class_names]
    if unknown:
        raise ValueError(f"the record has no class {unknown}; its classes: {class_names}")
    return block, {class_names[c]: stats[block]["classes"][c]["mean"] for c in wanted}


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


def sample_images(classes: Sequence[int], per_class: int = 3, data_dir: str | None = None, download: bool = False):
    """The first ``per_class`` Fashion-MNIST validation images of each class (Fig. 8), uint8
    (``download``: fetch the dataset if it is missing, :func:`senet_core.engine.data.read_fashion_mnist`)."""
    from ..engine.data import read_fashion_mnist

    val = read_fashion_mnist(data_dir, download)["val"]
    index = torch.cat([(val.labels == c).nonzero().flatten()[:per_class] for c in classes])
    return val.images[index], val.labels[index]


def nosqueeze_vs_se(records: Sequence[dict]) -> tuple[Comparison, str]:
    """Section 7.1's comparison: NoSqueeze error minus SE error over the seeds both have, and its
    outcome (:func:`senet_core.study.experiments.decisions`) against the paper's gain of SE over NoSqueeze
    (22.93 vs 22.28 top-1: +0.65 points, also the equivalence margin). Positive = SE is better."""
    (decided,) = decisions("table16_nosqueeze", list(records), [Pair("SE", "NoSqueeze")])
    return decided.comparison, decided.outcome
