"""The training-regime pilot: in which reduced-scale regime does the SE block act as an excitation?

With 1,000 SGD steps on 8,000 images the gates of the reference model stay within a few hundredths
of 0.5 and SE vs no SE changes sign from seed to seed: a constant scale, not a recalibration, and a
comparison no number of seeds can settle. The pilot trains one comparison, SE vs no SE on the
ablation network (Table 16's rows, the ablation protocol, paired seeds), in candidate regimes (the
``pilot_*`` profiles of experiments.yaml), and reports for each:

* the paired gain of SE per seed, its mean and 95 % t interval, and whether its sign holds;
* for the SE model of every seed, for the blocks Fig. 6 plots (the last SE block of each stage and
  every block of the last), the mean distance of the gates from 0.5 and their between-class spread
  (role_of_se), on the first 50 test images of every class;
* the cost: wall seconds per run.

``senet pilot`` trains what is missing (resumable, records under ``results/<profile>/``) and writes
``results/pilot/summary.json``.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from ..engine.data import build_loaders
from ..engine.runtime import provenance, resolve_device
from .experiments import run_experiments, trained_model
from .records import errors_by_row
from .results import load_records, provenance_label, write_json
from .role_of_se import excitation_statistics
from .spec import experiment, profile, profile_names, row_recipe
from .stats import paired

EXPERIMENT = "table16_pilot"
PROFILES = profile_names(pilot=True)


def gate_statistics(model: torch.nn.Module, loader, num_per_class: int = 50) -> list[dict]:
    """Per SE block of Fig. 6: the mean |gate - 0.5| over images and channels, and the
    between-class spread (standard deviation over classes of the class-mean gate, averaged over
    channels)."""
    rows = []
    for block, data in excitation_statistics(model, loader, num_per_class).items():
        per_class = data["classes"]
        gates = torch.cat([c["gates"] for c in per_class.values()])
        means = torch.stack([c["mean"] for c in per_class.values()])
        rows.append({"block": block, "channels": int(gates.shape[1]),
                     "mean |gate - 0.5|": round(float((gates - 0.5).abs().mean()), 4),
                     "between-class spread": round(float(means.std(0, unbiased=True).mean()), 4)})
    return rows


def summarise(profile_name: str, records: list[dict], runs_dir: str | Path) -> dict:
    """The pilot's numbers for one regime, from its records and run folders."""
    errors = errors_by_row(records)
    seeds = sorted(set(errors.get("SE", {})) & set(errors.get("no SE", {})))
    compared = paired(errors["no SE"], errors["SE"]) if seeds else None
    gains = list(compared.gains) if compared else []
    prof = profile(profile_name)
    exp = experiment(EXPERIMENT)
    chosen, _ = row_recipe(exp, exp.row("SE"), prof)
    loader = build_loaders(prof.dataset, batch_size=256, device="cpu", image_size=chosen.image_size).val
    gates = {seed: gate_statistics(trained_model(exp, exp.row("SE"), prof, seed, runs_dir), loader) for seed in seeds}
    return {"profile": profile_name, "train_images": prof.limit_train, "epochs": prof.epochs,
            "image_size": chosen.image_size, "seeds": seeds,
            "top1_err": {row: {str(s): e for s, e in sorted(v.items())} for row, v in errors.items()},
            "gain_per_seed": [round(g, 2) for g in gains],
            "gain_mean": None if compared is None else round(compared.mean, 2),
            "gain_ci95": None if compared is None or compared.ci is None else [round(x, 2) for x in compared.ci],
            "sign_holds": bool(gains) and (all(g > 0 for g in gains) or all(g < 0 for g in gains)),
            "wall_seconds_per_run": round(statistics.fmean(r["provenance"]["wall_seconds"] for r in records), 1),
            "gates": {str(s): g for s, g in gates.items()}}


def run_pilot(profiles: tuple[str, ...] = PROFILES, results_dir: str | Path = "results",
              runs_dir: str | Path = "runs/experiments", device: str = "auto", progress: bool = False) -> dict:
    """Train the pilot's comparison in every regime (what is missing), then summarise each; the
    summary is written to ``results_dir/pilot/summary.json``, keeping the regimes already summarised
    there that ``profiles`` does not name (their run folders need not exist any more)."""
    path = Path(results_dir) / "pilot" / "summary.json"
    kept = json.loads(path.read_text())["regimes"] if path.exists() else []
    regimes = {regime["profile"]: regime for regime in kept}
    for name in profiles:
        records = run_experiments([EXPERIMENT], name, results_dir, runs_dir, device, progress=progress)[EXPERIMENT]
        regimes[name] = summarise(name, records, runs_dir)
    summary = {"experiment": EXPERIMENT,
               "regimes": sorted(regimes.values(), key=lambda r: (
                   r["profile"] not in PROFILES, PROFILES.index(r["profile"]) if r["profile"] in PROFILES else 0)),
               "provenance": provenance(resolve_device(device), 1)}
    write_json(path, summary)
    return summary


def pilot_table(results_dir: str | Path = "results"):
    """The pilot's summary (``results_dir/pilot/summary.json``) as a table, one regime a row: SE's
    paired gain per seed and its mean with the 95 % interval, whether its sign holds, the gates'
    mean distance from 0.5 and between-class spread (lowest to highest over the Fig. 6 blocks and
    the seeds), the cost of a run, and which regime the ``cpu`` profile (the study) uses."""
    path = Path(results_dir) / "pilot" / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"no pilot summary at {path}: `senet pilot` trains the pilot and writes it")
    summary = json.loads(path.read_text())
    study = profile("cpu")
    lines = []
    for regime in summary["regimes"]:
        blocks = [b for seed in regime["gates"].values() for b in seed]
        distance = [b["mean |gate - 0.5|"] for b in blocks]
        spread = [b["between-class spread"] for b in blocks]
        low, high = regime["gain_ci95"] or (None, None)
        lines.append({
            "regime": regime["profile"].removeprefix("pilot_"),
            "images x epochs, side": f"{regime['train_images']:,} x {regime['epochs']}, {regime['image_size']} px",
            "SE gain per seed": ", ".join(f"{g:+.2f}" for g in regime["gain_per_seed"]),
            "SE gain [95 % CI]": f"{regime['gain_mean']:+.2f}" + ("" if low is None else f" [{low:+.2f}, {high:+.2f}]"),
            "sign holds": "yes" if regime["sign_holds"] else "no",
            "|gate - 0.5|": f"{min(distance):.2f}-{max(distance):.2f}",
            "class spread": f"{min(spread):.3f}-{max(spread):.3f}",
            "s / run": round(regime["wall_seconds_per_run"]),
            "the study's": "yes" if replace(profile(regime["profile"]), name="cpu", seeds=study.seeds,
                                            study=study.study) == study else ""})
    return pd.DataFrame(lines).set_index("regime")


def pilot_provenance(results_dir: str | Path = "results") -> str:
    """Where the pilot's numbers come from: the provenance of each regime's records, a line each."""
    return "\n".join(f"{name.removeprefix('pilot_')}: {provenance_label(records)}" for name in PROFILES
                     if (records := load_records(results_dir, name, EXPERIMENT)))
