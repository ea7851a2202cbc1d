"""Result records with provenance: checked, written atomically and read back.

A record is one training run of one experiment row and one seed (built by
:func:`senet_core.study.records.build_record` when :func:`senet_core.study.experiments.run_experiment`
finishes a run)::

    {"experiment": "table10_reduction_ratio", "row": "r = 8", "model": ..., "seed": 0,
     "config": {...}, "metrics": {"top1_err": ..., "top5_err": ..., "curve": [...]},
     "complexity": {"params": ..., "macs": ...},
     "provenance": {"profile": "cpu", "dataset": "fashion_mnist", "device": ..., "torch": ...,
                    "commit": ..., "date": ...}}

:func:`provenance_label` says in one line where a set of records' numbers come from; the tables that
set them beside the paper's are :mod:`senet_core.study.comparisons`'.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Sequence

from ..engine.runtime import atomic_write_text

REQUIRED = ("experiment", "fingerprint", "config", "seed", "metrics", "provenance")
REQUIRED_PROVENANCE = ("profile", "dataset", "device", "torch", "commit", "date")


def validate_record(record: dict) -> dict:
    missing = [k for k in REQUIRED if k not in record]
    missing += [f"provenance.{k}" for k in REQUIRED_PROVENANCE if k not in record.get("provenance", {})]
    if "metrics" in record and "top1_err" not in record["metrics"]:
        missing.append("metrics.top1_err")
    if missing:
        raise ValueError(f"result record lacks {', '.join(missing)}")
    return record


def write_json(path: str | Path, data: dict) -> Path:
    """Write JSON atomically (temporary file + rename): a reader never sees half a file, and a failed
    write (a full disk) leaves the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def write_record(path: str | Path, record: dict) -> None:
    """Write a result record atomically, after checking its fields."""
    write_json(path, validate_record(record))


def read_record(path: str | Path) -> dict:
    """The record in ``path``; a ValueError naming the file when it is not JSON or lacks a field."""
    try:
        record = json.loads(Path(path).read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not a valid result record: not JSON ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a valid result record: not a JSON object")
    try:
        return validate_record(record)
    except ValueError as err:
        raise ValueError(f"{path} is not a valid result record: {str(err).removeprefix('result record ')}") from None


def load_records(results_dir: str | Path, profile: str | None = None, experiment: str | None = None) -> list[dict]:
    """Every record under ``results_dir`` (optionally one profile's, one experiment's), sorted.

    An invalid record (not JSON, a field missing) is named in a warning and left out: the other
    records, and the tables built from them, still load."""
    root = Path(results_dir)
    pattern = f"{profile or '*'}/{experiment or '*'}/*.json"
    records = []
    for path in sorted(root.glob(pattern)):
        try:
            records.append(read_record(path))
        except ValueError as err:
            warnings.warn(f"{err}; left out", stacklevel=2)
    return records


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def provenance_label(records: Sequence[dict]) -> str:
    """One line saying where a set of numbers comes from (measured at reduced scale: profile, data, device,
    torch, commit, date, seeds). Every record is a run of a reduced-scale miniature (experiments.yaml)."""
    p = records[0]["provenance"]
    commits = sorted({r["provenance"]["commit"] for r in records})
    dates = sorted(r["provenance"]["date"][:10] for r in records)
    seeds = sorted({r["seed"] for r in records})
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    sides = sorted({r["provenance"].get("image_size") for r in records} - {None})
    at = f" at {' and '.join(f'{s}x{s}' for s in sides)}" if sides else ""
    return (f"measured at reduced scale: {p['profile']} profile, {p['dataset']} ({p.get('train_images', '?')} train / "
            f"{p.get('val_images', '?')} val images{at}, {_epochs(p.get('epochs'))}), {p['device']}, torch "
            f"{p['torch']}, commit {', '.join(commits)}, {span}, seeds {', '.join(map(str, seeds))}")


def _epochs(n) -> str:
    return "? epochs" if n is None else f"{n} epoch" + ("" if n == 1 else "s")
