"""Section 7 of the paper on the reduced-scale study: the reference SE model standing in for the
paper's SE-ResNet-50, and what is measured on it.

* :func:`reference_model` loads (training it first if needed) the SE row of the Table 16 ablation,
  seed 0, and :func:`reference_val_loader` gives the validation images it is shown.
* :func:`excitations` measures Figs. 6-7's statistics on it (:mod:`senet_core.study.role_of_se`) or
  reads back its committed record (:func:`excitation_record`, beside the study's records).
* :func:`sample_images` gives Fig. 8's images; :func:`nosqueeze_vs_se` decides Section 7.1's
  comparison from the records of the same experiment.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from ..engine import data
from ..engine.runtime import CHECKPOINT, resolve_device
from .comparisons import Pair, decisions
from .experiments import run_dir_of, train_row, trained_model
from .records import run_name
from .results import load_records, write_json
from .role_of_se import excitation_statistics, last_block_of_each_stage, layerwise_summary, paper_block_name
from .spec import experiment, row_recipe
from .spec import profile as study_profile   # the functions here name their profile argument ``profile``
from .stats import Comparison

# Fashion-MNIST's label names, in label order (Xiao et al. 2017, the dataset's README).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

# The experiment row whose trained model stands in for the paper's SE-ResNet-50 in Section 7.2.
REFERENCE_EXPERIMENT, REFERENCE_ROW, REFERENCE_SEED = "table16_nosqueeze", "SE", 0
# Four Fashion-MNIST classes of different kinds, as the paper's four ImageNet classes are: T-shirt/top
# (upper body), Trouser (legs), Sandal (footwear), Bag (not worn).
REFERENCE_CLASSES = (0, 1, 5, 8)


def reference_run_dir(runs_dir: str | Path, profile_name: str, epochs: int | None = None) -> Path:
    """Where ``run_experiment`` trains the reference SE model (row SE of Table 16, seed 0)."""
    exp = experiment(REFERENCE_EXPERIMENT)
    return run_dir_of(exp, exp.row(REFERENCE_ROW), study_profile(profile_name, epochs=epochs), REFERENCE_SEED,
                      runs_dir)


def reference_model(runs_dir: str | Path = "runs/experiments", profile: str = "smoke", device: str = "cpu",
                    data_dir: str | None = None, epochs: int | None = None, download: bool = False) -> nn.Module:
    """The trained reference SE model of the ablations (Table 16, row "SE", seed 0), in eval mode.

    Loads ``runs_dir/<profile>/<fingerprint>-seed0/checkpoint.pt``; if it is not there, trains
    that one row first (the same run folder ``run_experiment`` uses, so an interrupted run
    continues). ``epochs`` overrides the profile's, and ``download`` fetches a missing dataset, as in
    ``run_experiment``.
    """
    exp, prof = experiment(REFERENCE_EXPERIMENT), study_profile(profile, epochs=epochs)
    row = exp.row(REFERENCE_ROW)
    if not (reference_run_dir(runs_dir, profile, epochs) / CHECKPOINT).exists():
        train_row(exp, row, prof, REFERENCE_SEED, runs_dir, device, data_dir, download)
    return trained_model(exp, row, prof, REFERENCE_SEED, runs_dir, resolve_device(device))


def reference_val_loader(profile: str = "smoke", data_dir: str | None = None, device: str | torch.device = "cpu",
                         batch_size: int = 256, download: bool = False):
    """Validation batches as the reference model saw them in training (its profile's image size)."""
    exp = experiment(REFERENCE_EXPERIMENT)
    chosen, _ = row_recipe(exp, exp.row(REFERENCE_ROW), study_profile(profile))
    return data.build_loaders(chosen.dataset, data_dir, batch_size=batch_size, device=device,
                              image_size=chosen.image_size, download=download).val


def sample_images(classes: Sequence[int], per_class: int = 3, data_dir: str | None = None, download: bool = False):
    """The first ``per_class`` Fashion-MNIST validation images of each class (Fig. 8), uint8
    (``download``: fetch the dataset if it is missing, :func:`senet_core.engine.data.read_fashion_mnist`)."""
    val = data.read_fashion_mnist(data_dir, download)["val"]
    index = torch.cat([(val.labels == c).nonzero().flatten()[:per_class] for c in classes])
    return val.images[index], val.labels[index]


def excitation_record(stats: dict, summary, classes: dict, names: dict, provenance: dict) -> dict:
    """What Figs. 6-7 and the layer-wise table need, as JSON: per block and class the mean and std
    gate of every channel (not the per-image gates), the mean over all classes, the summary rows."""
    def floats(t: torch.Tensor) -> list[float]:
        return [round(float(v), 5) for v in t]

    return {
        "experiment": "role_of_se_excitations", "seed": REFERENCE_SEED,
        "classes": {str(k): v for k, v in classes.items()}, "names": names,
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


def read_excitation_record(results_dir: str | Path, profile: str) -> dict | None:
    """The committed record of ``profile``, or None when there is none."""
    path = excitation_record_path(results_dir, profile)
    return json.loads(path.read_text()) if path.exists() else None


def statistics_from_record(record: dict) -> tuple[dict, dict, dict, pd.DataFrame]:
    """``(stats, classes, names, summary)`` from :func:`excitation_record`'s JSON, ready for the plots."""
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


def excitations(profile: str, results_dir: str | Path, runs_dir: str | Path, device: str = "auto",
                data_dir: str | None = None, write: bool = False, num_per_class: int = 50, download: bool = False):
    """Figs. 6-7's statistics of the reference model: ``(stats, classes, names, summary, record)``.

    The record under ``results_dir`` is read back when it was made from the current reference run
    (its ``provenance.run``); otherwise the reference model is loaded (trained first if its run is
    missing), its gates measured on the first ``num_per_class`` validation images of each class, and,
    with ``write``, the record written. The record's provenance is the reference run's training record.
    ``download`` fetches a missing dataset (:func:`senet_core.engine.data.build_loaders`).
    """
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


def nosqueeze_vs_se(records: Sequence[dict]) -> tuple[Comparison, str]:
    """Section 7.1's comparison: NoSqueeze error minus SE error over the seeds both have, and its
    outcome (:func:`senet_core.study.comparisons.decisions`) against the paper's gain of SE over NoSqueeze
    (22.93 vs 22.28 top-1: +0.65 points, also the equivalence margin). Positive = SE is better."""
    (decided,) = decisions("table16_nosqueeze", list(records), [Pair("SE", "NoSqueeze")])
    return decided.comparison, decided.outcome
