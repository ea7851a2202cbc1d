"""The paper's training experiments as reduced-scale miniatures (Sections 5-6), defined in ``experiments.yaml``.

:func:`run_experiment` trains every row of an experiment for every seed of a profile and writes one
JSON record per (row, seed) with its provenance. It is resumable: a record whose settings match is
kept, an interrupted run continues from its checkpoint, and rows with identical settings in different
tables (the ablation baseline, the reference SE model) share one training run.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .names import lookup
from .paper import paper_row
from .recipes import Recipe, recipe
from .se import SEConfig


@dataclass(frozen=True)
class Row:
    """One row of an experiment: a network with its options, and the paper row it stands for."""

    label: str
    model: str
    options: dict = field(default_factory=dict, hash=False)
    baseline: str | None = None          # label of the row it is compared with
    paper_table: int = 0
    paper_key: str = ""
    paper_value: str | None = None
    paper_column: str = "top1_err"

    def paper_number(self) -> float | None:
        """The paper's top-1 error for this row, or None if the paper has no such row."""
        if self.paper_value is None:
            return None
        cell = paper_row(self.paper_table, self.paper_key, self.paper_value)[self.paper_column]
        return float(cell) if cell else None


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    paper_table: int
    conclusion: str
    ablation: bool
    rows: tuple[Row, ...]
    image_size: int | None = None        # overrides the profile's (e.g. networks that need 28x28)

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        raise ValueError(f"{self.name} has no row {label!r}; rows: {', '.join(r.label for r in self.rows)}")


@dataclass(frozen=True)
class Profile:
    """The scale of a run: which data, how much of it, how long, how many seeds."""

    name: str
    dataset: str
    epochs: int
    batch_size: int
    limit_train: int | None
    limit_val: int | None
    seeds: tuple[int, ...]
    image_size: int | None = None        # small datasets downsampled to this side; None: native
    recipe: dict = field(default_factory=dict, hash=False)   # recipe fields this profile sets for every row


@lru_cache(maxsize=None)
def _spec() -> dict:
    return yaml.safe_load((resources.files("senet_core") / "experiments.yaml").read_text(encoding="utf-8"))


def list_experiments() -> list[str]:
    return sorted(_spec()["experiments"])


def experiment(name: str) -> Experiment:
    e = lookup("experiment", name, _spec()["experiments"])
    rows = tuple(Row(label=r["label"], model=r["model"], options=dict(r.get("options", {})),
                     baseline=r.get("baseline"), paper_table=r.get("paper_table", e["paper_table"]),
                     paper_key=r.get("paper_key", e["key"]), paper_value=r.get("paper_value"),
                     paper_column=r.get("paper_column", "top1_err")) for r in e["rows"])
    return Experiment(name, e["title"], e["paper_table"], e["conclusion"], bool(e.get("ablation")), rows,
                      e.get("image_size"))


def profile(name: str) -> Profile:
    p = lookup("profile", name, _spec()["profiles"])
    return Profile(name, p["dataset"], p["epochs"], p["batch_size"], p["limit_train"], p["limit_val"],
                   tuple(p["seeds"]), p.get("image_size"), dict(p.get("recipe", {})))


def row_recipe(exp: Experiment, row: Row, prof: Profile) -> tuple[Recipe, dict]:
    """The recipe and model options of one row under one profile (same for every row of an experiment)."""
    spec = _spec()
    base = recipe(spec["base_recipe"])
    overrides = {**prof.recipe, **(spec["ablation_protocol"]["recipe"] if exp.ablation else {})}
    chosen = base.with_overrides(dataset=prof.dataset, model=row.model, epochs=prof.epochs,
                                 batch_size=prof.batch_size, image_size=exp.image_size or prof.image_size,
                                 **overrides)
    options = dict(row.options)
    if exp.ablation and row.model.startswith("se_"):
        options = {**spec["ablation_protocol"]["options"], **options}
    if "se_stages" in options:
        options["se_stages"] = tuple(options["se_stages"])
    return chosen, options


def fingerprint(chosen: Recipe, options: dict, prof: Profile) -> str:
    """A short hash of everything that decides a run's result except the seed."""
    settings = {k: v for k, v in chosen.__dict__.items() if k not in ("paper", "ours", "explicit", "name", "summary")}
    settings = {**settings, "lr_milestones": list(chosen.lr_milestones), "options": SEConfig.without_defaults(options),
                "limit_train": prof.limit_train, "limit_val": prof.limit_val}
    text = json.dumps(settings, sort_keys=True, default=list)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def record_path(results_dir: str | Path, profile_name: str, experiment_name: str, label: str, seed: int) -> Path:
    return Path(results_dir) / profile_name / experiment_name / f"{slug(label)}__seed{seed}.json"


def run_dir_of(exp: Experiment, row: Row, prof: Profile, seed: int, runs_dir: str | Path = "runs/experiments") -> Path:
    """The run folder of one row and seed: rows with the same settings in any table share it."""
    return Path(runs_dir) / prof.name / f"{fingerprint(*row_recipe(exp, row, prof), prof)}-seed{seed}"


def train_row(exp: Experiment, row: Row, prof: Profile, seed: int, runs_dir: str | Path = "runs/experiments",
              device: str = "auto", data_dir: str | None = None) -> tuple[list[dict], Path]:
    """Train one row for one seed in its run folder (continuing it if it was interrupted, or just
    reading it back if it finished); return its per-epoch metrics and the folder."""
    from .train import CHECKPOINT, TrainConfig, train

    chosen, options = row_recipe(exp, row, prof)
    run_dir = run_dir_of(exp, row, prof, seed, runs_dir)
    metrics = train(TrainConfig(recipe=chosen, out=str(run_dir), data_dir=data_dir, model_options=options,
                                seed=seed, limit_train=prof.limit_train, limit_val=prof.limit_val,
                                device=device, resume=(run_dir / CHECKPOINT).exists(), progress=False))
    return metrics, run_dir


def run_experiment(name: str, profile_name: str = "smoke", results_dir: str | Path = "results",
                   runs_dir: str | Path = "runs/experiments", device: str = "auto", seeds: list[int] | None = None,
                   epochs: int | None = None, data_dir: str | None = None, progress: bool = False) -> list[dict]:
    """Train every row of experiment ``name`` for every seed of the profile; return the records.

    ``seeds`` and ``epochs`` override the profile's (a record remembers its epochs: records of another
    length are not reused).
    """
    from .complexity import complexity
    from .data import dataset_info
    from .models import create_model
    from .results import read_record, write_record

    exp, prof = experiment(name), profile(profile_name)
    if epochs is not None:
        prof = replace(prof, epochs=epochs)
    records = []
    for row in exp.rows:
        chosen, options = row_recipe(exp, row, prof)
        fp = fingerprint(chosen, options, prof)
        info = dataset_info(prof.dataset)
        for seed in (seeds if seeds is not None else prof.seeds):
            path = record_path(results_dir, prof.name, name, row.label, seed)
            if path.exists():
                kept = read_record(path)
                if kept.get("fingerprint") == fp:
                    records.append(kept)
                    continue
            if progress:
                print(f"{name}: {row.label}, seed {seed} ({prof.name} profile)", flush=True)
            metrics, run_dir = train_row(exp, row, prof, seed, runs_dir, device, data_dir)
            run = json.loads((run_dir / "config.json").read_text())
            side = chosen.image_size or info.input_size
            size = (info.in_chans, side, side)
            cost = complexity(create_model(row.model, num_classes=info.num_classes, in_chans=info.in_chans,
                                           **options), size)
            last = metrics[-1]
            record = {
                "experiment": name, "row": row.label, "model": row.model, "fingerprint": fp, "seed": seed,
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
                               **run["provenance"]},
            }
            write_record(path, record)
            records.append(record)
    return records


def experiment_table(name: str, results_dir: str | Path = "results", profile_name: str = "cpu"):
    """Paper beside ours for one experiment, from its records: a pandas DataFrame.

    Columns: the paper's top-1 error; ours as mean +/- std over seeds; the paired difference to the row's
    baseline (baseline minus row, positive = better than the baseline) with its 95 % interval and verdict;
    the paper's difference, the direction it expects and the outcome of ours against it (as in
    :func:`conclusions`); exact params and MFLOPs at our input size.
    """
    import pandas as pd

    from .results import load_records, mean_std

    exp = experiment(name)
    records = load_records(results_dir, profile_name, name)
    if not records:
        raise FileNotFoundError(f"no records of {name} under {Path(results_dir) / profile_name}: run "
                                f"`senet experiments --only {name} --profile {profile_name}` first")
    by_row = _errors_by_row(records)
    cost = {r["row"]: r["complexity"] for r in records}
    lines = []
    for row in exp.rows:
        errors = by_row.get(row.label, {})
        paper = row.paper_number()
        line = {"row": row.label, "paper top-1 err (%)": paper}
        if errors:
            mean, std = mean_std(list(errors.values()))
            spread = f" ± {std:.2f}" if len(errors) > 1 else ""
            line["ours top-1 err (%)"] = f"{mean:.2f}{spread} (n={len(errors)})"
        else:
            line["ours top-1 err (%)"] = "not run"
        compared = _against_baseline(exp, row, by_row)
        if compared is not None:
            cmp, paper_gain = compared
            line["ours gain vs baseline"] = (f"{cmp['mean']:+.2f} [{cmp['ci'][0]:+.2f}, {cmp['ci'][1]:+.2f}]"
                                             if cmp["n"] > 1 else f"{cmp['mean']:+.2f}")
            line["verdict"] = cmp["verdict"]
            line["paper gain vs baseline"] = paper_gain
            line["paper direction"], line["outcome"] = _outcome(paper_gain, cmp["verdict"])
        if row.label in cost:
            line["params (M)"] = round(cost[row.label]["params"] / 1e6, 3)
            line["MFLOPs"] = round(cost[row.label]["macs"] / 1e6, 1)
        lines.append(line)
    return pd.DataFrame(lines).set_index("row").rename_axis(None).astype(object).fillna("")


def conclusions(results_dir: str | Path = "results", profile_name: str = "cpu"):
    """Every comparison of every experiment that has records, with its outcome (a pandas DataFrame).

    A comparison is a row against its baseline, paired over seeds (gain = baseline error minus row
    error, in points; positive = the row is better). The direction the paper expects is the sign of
    its own gain, or "better" where the paper prints no number for the row (its conclusion is that
    SE helps). Outcome: "holds" (ours is significant in that direction), "contradicted" (significant
    the other way), "within noise" (the 95 % interval contains 0) or "one seed".
    """
    import pandas as pd

    from .results import load_records

    lines = []
    for name in list_experiments():
        records = load_records(results_dir, profile_name, name)
        if not records:
            continue
        exp = experiment(name)
        errors = _errors_by_row(records)
        for row in exp.rows:
            compared = _against_baseline(exp, row, errors)
            if compared is None:
                continue
            cmp, paper_gain = compared
            expected, outcome = _outcome(paper_gain, cmp["verdict"])
            ci = "" if cmp["n"] < 2 else f" [{cmp['ci'][0]:+.2f}, {cmp['ci'][1]:+.2f}]"
            lines.append({"table": exp.paper_table, "comparison": f"{row.label} vs {row.baseline}",
                          "paper gain": "" if paper_gain is None else f"{paper_gain:+.2f}",
                          "paper direction": expected, "ours gain [95 % CI]": f"{cmp['mean']:+.2f}{ci}",
                          "seeds": cmp["n"], "outcome": outcome})
    return pd.DataFrame(lines)


def _errors_by_row(records: list[dict]) -> dict[str, dict[int, float]]:
    """Top-1 error of each row of an experiment's records, by seed."""
    errors: dict[str, dict[int, float]] = {}
    for r in records:
        errors.setdefault(r["row"], {})[r["seed"]] = r["metrics"]["top1_err"]
    return errors


def _against_baseline(exp: Experiment, row: Row,
                      errors: dict[str, dict[int, float]]) -> tuple[dict, float | None] | None:
    """``row`` against its baseline: our paired difference over seeds (results.paired_difference)
    and the paper's gain (baseline error minus row error; None where the paper prints no number).
    None when there is nothing to compare: the row has no baseline, or either has no records."""
    from .results import paired_difference

    if row.baseline is None or not errors.get(row.label) or not errors.get(row.baseline):
        return None
    paper, paper_base = row.paper_number(), exp.row(row.baseline).paper_number()
    paper_gain = None if paper is None or paper_base is None else round(paper_base - paper, 2)
    return paired_difference(errors[row.baseline], errors[row.label]), paper_gain


def _outcome(paper_gain: float | None, verdict: str) -> tuple[str, str]:
    """The direction the paper expects for a comparison, and the outcome of ours against it.

    Expected: the sign of the paper's gain ("better", "worse", "equal"), or "better" where the paper
    prints no number for the row (its conclusion is that SE helps). Outcome: "holds" when our
    verdict is significant in that direction, "contradicted" when it is significant the other way
    (or at all, against an "equal"), else our verdict ("within noise", "one seed").
    """
    expected = "better" if paper_gain is None or paper_gain > 0 else "worse" if paper_gain < 0 else "equal"
    if verdict in ("within noise", "one seed"):
        return expected, verdict
    return expected, "holds" if verdict == expected else "contradicted"
