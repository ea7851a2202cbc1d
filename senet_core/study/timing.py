"""Section 4's timing claims beside ours: the paper's milliseconds for ResNet-50 against SE-ResNet-50
and the paired measurements of :func:`senet_core.engine.profile.profile_models`.

:func:`timing_table` sets measurements beside the paper; :func:`committed_timing_table` does it for
the repository's own paired run (``benchmarks/results.json``, written by
``benchmarks/run_benchmarks.py``) and :func:`measure_timing_table` for a fresh one on the reader's
machine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..engine.profile import ProfileReport, profile_models
from ..engine.runtime import repo_root, resolve_device

# Section 4, as printed: (ResNet-50 ms, SE-ResNet-50 ms) for the claim each mode re-measures.
# latency: one 224x224 image on a CPU (not named); train: forward and backward of 256 images on 8 Titan X.
PAPER_MS = {"latency": (164, 167), "train": (190, 209)}


def _measurement(data: dict, row: dict) -> str:
    """A row's settings in words: what was timed, batch, input, device (and CPU threads)."""
    threads = data["provenance"].get("threads")
    kind = "inference" if row["mode"] == "latency" else "training step"
    device = str(row["device"])
    where = device.upper() if device.startswith("cpu") else data["provenance"].get("device", device)
    if device.startswith("cpu") and threads:
        where += f", {threads} thread" + ("" if threads == 1 else "s")
    extras = ([row["amp"]] if row.get("amp") else []) + \
        [name for name, on in (("channels_last", row.get("channels_last")), ("compiled", row.get("compile"))) if on]
    size = "x".join(map(str, row["input_size"]))
    return ", ".join([kind, f"batch {row['batch_size']}", size, where, *extras])


def _paper_cells(claim: str) -> dict:
    paper = PAPER_MS[claim]
    return {"paper ms": f"{paper[0]} → {paper[1]}", "paper ratio": round(paper[1] / paper[0], 3)}


TIMING_COLUMNS = ["measurement", "networks", "paper ms", "paper ratio", "ours ms", "ours ratio [IQR]", "rounds"]


def timing_table(reports: Sequence) -> pd.DataFrame:
    """Section 4's timings beside ours: a pandas DataFrame, one row per (baseline, SE network) pair.

    ``reports`` are :class:`ProfileReport` objects or their ``as_dict()`` form (what
    ``benchmarks/results.json`` keeps per section). A report contributes a row when it holds its
    baseline ``b`` and ``se_b`` and times what a paper claim times: inference at batch 1 (the paper's
    164 -> 167 ms) or a training step (forward, backward and SGD update; its 190 -> 209 ms). Inference
    rows come first. ``ours ms`` is the median time per step over the paired rounds (a timed call of
    several SGD steps is divided by their number); ``ours ratio`` is the median over rounds of the
    per-round ratio SE / baseline, with its quartiles. Indexed by (measurement, networks).
    """
    rows = []
    for report in reports:
        data = report.as_dict() if isinstance(report, ProfileReport) else report
        by_model = {r["model"]: r for r in data["rows"]}
        base = data.get("baseline")
        se = by_model.get(f"se_{base}")
        if base is None or se is None:
            continue
        claim = "train" if se["mode"] == "train" else "latency" if se["batch_size"] == 1 else None
        if claim is None:
            continue

        def per_step(r):   # images/s x seconds per call / batch = SGD steps in one timed call
            steps = max(1, round(r["images_per_second"] * r["median_ms"] / 1e3 / r["batch_size"]))
            return r["median_ms"] / steps

        rows.append({"measurement": _measurement(data, se), "networks": f"{base} → se_{base}",
                     **_paper_cells(claim),
                     "ours ms": f"{per_step(by_model[base]):.1f} → {per_step(se):.1f}",
                     "ours ratio [IQR]": "{:.3f} [{:.3f}, {:.3f}]".format(se["ratio"], *se["ratio_iqr"]),
                     "rounds": se["rounds"], "_order": list(PAPER_MS).index(claim)})
    rows.sort(key=lambda r: r.pop("_order"))   # stable: a claim's rows keep the reports' order
    return pd.DataFrame(rows, columns=TIMING_COLUMNS).set_index(["measurement", "networks"])


def benchmark_results_path() -> Path:
    """``benchmarks/results.json`` at the repository root (found as the chapters find the records)."""
    return repo_root() / "benchmarks" / "results.json"


def committed_timing_table(path: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """The repository's committed paired measurement beside Section 4's claims, and its provenance.

    Reads ``path`` (default :func:`benchmark_results_path`), the output of
    ``benchmarks/run_benchmarks.py``, and returns :func:`timing_table` of its sections plus one row
    for the paper's GPU training claim when the run had no GPU to re-measure it on. Raises
    FileNotFoundError when the file is absent (the package installed without the repository).
    """
    path = Path(path) if path is not None else benchmark_results_path()
    if not path.exists():
        raise FileNotFoundError(f"No committed timing here: {path} comes with the repository, not with the "
                                f"package; set measure_timing = True to measure on this machine.")
    results = json.loads(path.read_text())
    sections = [s["data"] for s in results["sections"] if "rows" in s.get("data", {})]
    table = timing_table(sections)
    p = results["provenance"]
    timed_on_gpu = any(str(r["device"]).startswith("cuda") and r["mode"] == "train" for s in sections for r in s["rows"])
    if not timed_on_gpu:
        reason = "no GPU" if not p.get("gpu") else "not in this run"
        missing = pd.DataFrame([{"measurement": "training step, batch 256, 3x224x224, GPU",
                                 "networks": "resnet50 → se_resnet50", **_paper_cells("train"),
                                 "ours ms": f"not measured ({reason})", "ours ratio [IQR]": "", "rounds": ""}],
                               columns=TIMING_COLUMNS).set_index(["measurement", "networks"])
        table = pd.concat([table, missing])
    provenance = (f"ours: measured by benchmarks/run_benchmarks.py on {p['cpu']} (GPU: {p.get('gpu') or 'none'}), "
                  f"torch {p['torch']}, commit {p['commit']}, {p['date'][:10]}; inference on random weights "
                  f"and inputs, training steps on real Fashion-MNIST batches. paper: Section 4 as printed "
                  f"(inference on an unnamed CPU; training on 8 Titan X GPUs).")
    return table, provenance


def measure_timing_table(device: str = "auto", repeats: int = 20) -> tuple[pd.DataFrame, str]:
    """Section 4's timings measured now on this machine, paired, beside the paper (random weights/inputs).

    Always ResNet-50 against SE-ResNet-50 at batch 1 on the CPU (the 164 -> 167 ms claim); when
    ``device`` resolves to a GPU, also their forward+backward+SGD step at batch 256 there (the
    190 -> 209 ms claim). Returns :func:`timing_table` and a provenance line.
    """
    pair = ["resnet50", "se_resnet50"]
    reports = [profile_models(pair, baseline="resnet50", mode="latency", batch_size=1, device="cpu",
                              warmup=3, repeats=repeats)]
    target = resolve_device(device)
    if target.type == "cuda":
        reports.append(profile_models(pair, baseline="resnet50", mode="train", batch_size=256, device=str(target),
                                      warmup=3, repeats=max(3, repeats // 2)))
    p = reports[0].provenance
    devices = ", ".join(dict.fromkeys(r.provenance["device"] for r in reports))
    commit = p["commit"] + (" + uncommitted changes" if p.get("dirty") else "")
    provenance = (f"ours: measured now on {devices}, torch {p['torch']}, commit {commit}, {p['date'][:10]}; "
                  f"random weights and inputs. paper: Section 4 as printed.")
    return timing_table(reports), provenance
