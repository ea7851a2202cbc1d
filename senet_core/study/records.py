"""What a finished training run of the study (Sections 5-6) leaves: one record per (row, seed), and the
names runs and records go by.

A record (see :mod:`senet_core.study.results` for reading and writing one) is built from the run's
per-epoch metrics and its run folder's ``config.json``: the row's settings, its final errors and
training curve, its exact complexity and where it was trained. Rows of several tables with the same
settings are one run, so one run can give records to several tables.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..complexity import complexity
from ..engine.data import dataset_info
from ..engine.runtime import CONFIG
from .results import load_records
from .spec import Experiment, Profile, Row, fingerprint, row_model, row_recipe


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def record_path(results_dir: str | Path, profile_name: str, experiment_name: str, label: str, seed: int) -> Path:
    return Path(results_dir) / profile_name / experiment_name / f"{slug(label)}__seed{seed}.json"


def run_name(fp: str, seed: int) -> str:
    """A run's name (its folder's, and the ledger's): its settings' fingerprint and its seed."""
    return f"{fp}-seed{seed}"


def record_name(experiment_name: str, label: str, seed: int) -> str:
    """How the ledger names one record: experiment/row/seed."""
    return f"{experiment_name}/{label}/seed {seed}"


def build_record(exp: Experiment, row: Row, prof: Profile, seed: int, run_dir: Path, metrics: list[dict]) -> dict:
    """The JSON record of one finished run, from its metrics and its run folder's config.json."""
    chosen, options = row_recipe(exp, row, prof)
    info = dataset_info(prof.dataset)
    run = json.loads((run_dir / CONFIG).read_text())
    side = chosen.image_size or info.input_size
    size = (info.in_chans, side, side)
    cost = complexity(row_model(exp, row, prof), size)
    last = metrics[-1]
    return {
        "experiment": exp.name, "row": row.label, "model": row.model,
        "fingerprint": fingerprint(chosen, options, prof), "seed": seed,
        "config": {**run["recipe"], "model_options": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in options.items()},
                   "limit_train": prof.limit_train, "limit_val": prof.limit_val},
        "metrics": {"top1_err": last["val_top1_err"], "top5_err": last["val_top5_err"],
                    "train_loss": last["train_loss"],
                    "curve": [{k: m[k] for k in ("epoch", "train_loss", "val_loss", "val_top1_err",
                                                  "val_top5_err")} for m in metrics]},
        "complexity": {"params": cost.params, "macs": cost.macs, "input_size": list(size)},
        "provenance": {"profile": prof.name, "dataset": prof.dataset, "epochs": prof.epochs,
                       "image_size": side,
                       "train_images": run["train_images"], "val_images": run["val_images"],
                       "engine": {"name": prof.engine, "channels_last": run["channels_last"],
                                  "compile": run["compile"]},
                       "wall_seconds": round(sum(m["epoch_seconds"] + m.get("eval_seconds", 0.0)
                                                 for m in metrics), 1),
                       **run["provenance"],
                       **({"resumed": run["resumed"]} if run.get("resumed") else {})},
    }


def records_by_run(results_dir: str | Path, profile_name: str) -> dict[tuple[str, int], dict]:
    """Every record of a profile, by the run that made it: (fingerprint, seed)."""
    return {(r["fingerprint"], r["seed"]): r for r in load_records(results_dir, profile_name)
            if "fingerprint" in r}


def errors_by_row(records: list[dict]) -> dict[str, dict[int, float]]:
    """Top-1 error of each row of an experiment's records, by seed."""
    errors: dict[str, dict[int, float]] = {}
    for r in records:
        errors.setdefault(r["row"], {})[r["seed"]] = r["metrics"]["top1_err"]
    return errors
