"""Section 4's timings on this machine, paired, in one run: writes RESULTS.md and results.json.

    python benchmarks/run_benchmarks.py            # the full run (2-core CPU: about 10 minutes)
    python benchmarks/run_benchmarks.py --quick    # a smoke run: few rounds
    python benchmarks/run_benchmarks.py --device cpu --out /tmp/bench

What it measures (every comparison paired round-robin, see senet_core.engine.profile.paired_times):

* CPU training steps at the reduced-scale study's sizes (one thread, real Fashion-MNIST batches):
  SE network / its baseline, and the SE network with autograd's own backward of the scale (the
  path before ``senet_core.se.scale``) beside it. The paper: 209 vs 190 ms, x1.10 (8 GPUs).
* The study's throughput: for every architecture the cpu profile trains, training images/s of two
  one-thread processes (``senet experiments --jobs 2``) against one process with every core (the
  plain path); the whole profile's ratio weights each architecture by the runs it trains.
* CPU inference, batch 1, 224x224: our se_resnet50 against our resnet50 (the paper: 167 vs 164 ms,
  x1.018) and against timm's legacy_seresnet50 (the same architecture and weight layout).
* On CUDA, when there is a GPU: forward+backward+SGD at batch 256 of resnet50 and se_resnet50 in
  eager fp32, in bf16 autocast with channels_last, and compiled; inference at batch 256;
  torchvision's resnet50 against ours.

What was tried on the way is in TRIED.md beside this script. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from senet_core import create_model, se_modules
from senet_core.engine.data import build_loaders, dataset_info
from senet_core.engine.profile import ProfileReport, paired_times, profile_models, spread
from senet_core.engine.recipes import recipe
from senet_core.engine.runtime import git_commit
from senet_core.se import SEConfig, fused_excitation
from senet_core.study.spec import (ablation_protocol_options, experiment, fingerprint, list_experiments, profile,
                                   row_recipe)

HERE = Path(__file__).resolve().parent

# The sizes the reduced-scale study trains at: (SE network, baseline, batch, side).
STUDY_SIZES = [("se_resnet29_cifar", "resnet29_cifar", 32, 14), ("se_resnet20_cifar", "resnet20_cifar", 32, 14),
               ("se_resnet20_cifar", "resnet20_cifar", 128, 28)]

# key: (what, threshold, "max" if the measured value must stay at or below it, "min" if at or above)
TARGETS = {
    **{f"train_{se}_b{batch}_{side}": (f"CPU training step, 1 thread, {se} / {base}, batch {batch}, 1x{side}x{side}",
                                       1.08, "max") for se, base, batch, side in STUDY_SIZES},
    "study_throughput": ("Study throughput, cpu profile: two one-thread processes / one process", 1.30, "min"),
    "cpu_se_overhead": ("CPU batch-1 latency, se_resnet50 / resnet50", 1.05, "max"),
    "cpu_vs_timm": ("CPU batch-1 latency, se_resnet50 / timm legacy_seresnet50", 0.95, "max"),
    "cuda_se_overhead_amp_cl": ("CUDA fwd+bwd b256 bf16+channels_last, se_resnet50 / resnet50", 1.05, "max"),
    "cuda_vs_torchvision": ("CUDA training images/s b256 bf16+channels_last, our resnet50 / torchvision's",
                            0.95, "min"),
}
CUDA_TARGETS = ("cuda_se_overhead_amp_cl", "cuda_vs_torchvision")
SIGN = {"max": "<=", "min": ">="}
PROFILE_HEADER = ["model", "input", "median ms [IQR]", "min-max ms", "images/s", "ratio [IQR]"]


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def target(key: str, value: float, spread_: tuple[float, float] | None) -> dict:
    what, threshold, kind = TARGETS[key]
    met = value <= threshold if kind == "max" else value >= threshold
    miss = None if met else (value - threshold if kind == "max" else threshold - value)
    return {"key": key, "what": what, "threshold": threshold, "kind": kind, "value": value,
            "spread": list(spread_) if spread_ else None, "met": met, "missed_by": miss}


def report_section(name: str, note: str, report: ProfileReport) -> dict:
    """A section from a ProfileReport: its table as rows of cells, and its data."""
    base = report.baseline
    rows = []
    for r in report.rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f} [{r.ratio_iqr[0]:.3f}, {r.ratio_iqr[1]:.3f}]"
        rows.append([r.model, "x".join(map(str, r.input_size)), f"{r.median_ms:.2f} [{r.iqr_ms[0]:.2f}, "
                     f"{r.iqr_ms[1]:.2f}]", f"{r.min_ms:.2f}-{r.max_ms:.2f}", f"{r.images_per_second:.1f}", ratio])
    header = PROFILE_HEADER[:-1] + [f"ratio to {base} [IQR]" if base else "ratio"]
    return {"name": name, "note": note, "header": header, "rows": rows,
            "footer": f"{report.rows[0].rounds} paired rounds, device {report.provenance['device']}, "
                      f"{report.provenance['threads']} thread(s).",
            "data": report.as_dict(times=True)}


# ---- SE paths measured beside the kept one ---------------------------------------------------------

PREVIOUS = "se_resnet50, first SE forward"
AUTOGRAD_SCALE = "autograd's scale backward"


def _previous_forward(block, u, residual=None):
    # se.py's SEBlock.forward before the fast path: mean, module calls, indexing, addcmul.
    z = u.mean((2, 3)) if block.squeeze == "avg" else u.amax((2, 3))
    s = block.gate(block.fc2(block.relu(block.fc1(z))))[:, :, None, None]
    return u * s if residual is None else torch.addcmul(residual, u, s)


def _autograd_scale_forward(block, u, residual=None):
    # The kept squeeze and excitation, with Eq. 4 left to autograd (before se.scale).
    s = fused_excitation(block, u).view(u.shape[0], u.shape[1], 1, 1)
    return u * s if residual is None else torch.addcmul(residual, u, s)


def with_se_forward(model, forward):
    """``model`` with every SE block running ``forward`` (an instance attribute)."""
    for block in se_modules(model).values():
        block.forward = types.MethodType(forward, block)
    return model


# ---- CPU training steps at the study's sizes -------------------------------------------------------

def fashion_mnist_batches(batch: int, side: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` real, augmented Fashion-MNIST training batches at side x side, read once."""
    loaders = build_loaders("fashion_mnist", batch_size=batch, device="cpu", limit_train=batch * count,
                            limit_val=batch, image_size=side)
    loaders.train.set_epoch(0)
    return [(x.contiguous(), y) for x, y in loaders.train][:count]


def training_step(model, batches, steps_per_call: int):
    """A zero-argument call that runs ``steps_per_call`` SGD steps with the study's optimizer."""
    r = recipe("fashion_mnist")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=r.momentum, nesterov=r.nesterov,
                                weight_decay=r.weight_decay)
    position = [0]

    def call():
        for _ in range(steps_per_call):
            images, labels = batches[position[0] % len(batches)]
            position[0] += 1
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return call


def cpu_training_steps(rounds: int, warmup: int, steps_per_call: int) -> tuple[list[dict], list[dict]]:
    sections, targets = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for se, base, batch, side in STUDY_SIZES:
            batches = fashion_mnist_batches(batch, side, 4)
            size = tuple(batches[0][0].shape[1:])
            steps = {}
            for label, name, forward in [(base, base, None), (se, se, None),
                                         (f"{se}, {AUTOGRAD_SCALE}", se, _autograd_scale_forward)]:
                torch.manual_seed(0)
                model = create_model(name, num_classes=10, in_chans=1).train()
                if forward is not None:
                    with_se_forward(model, forward)
                steps[label] = training_step(model, batches, steps_per_call)
            times = paired_times(steps, warmup=warmup, repeats=rounds, device="cpu")
            report = ProfileReport.from_times(times, baseline=base, mode="train",
                                              images_per_call=batch * steps_per_call, batch_size=batch,
                                              input_sizes={k: size for k in steps}, device=torch.device("cpu"))
            row = report.row(se)
            targets.append(target(f"train_{se}_b{batch}_{side}", row.ratio, row.ratio_iqr))
            value, q = report.ratio(se, f"{se}, {AUTOGRAD_SCALE}")
            note = (f"{steps_per_call} SGD steps per timed call (lr 0.1, Nesterov momentum 0.9, weight decay "
                    f"5e-4) on real Fashion-MNIST batches ({len(batches)} distinct, prefetched), one thread; "
                    f"{se} / its {AUTOGRAD_SCALE}, paired: {value:.3f} [{q[0]:.3f}, {q[1]:.3f}]")
            sections.append(report_section(f"CPU training step, batch {batch}, 1x{side}x{side}", note, report))
    finally:
        torch.set_num_threads(threads)
    return sections, targets


# ---- The study's throughput: one process with every core vs two one-thread processes ---------------

def _changes(options: dict) -> int:
    """How many block options differ from both the SE block's defaults and the ablation protocol's."""
    protocol = ablation_protocol_options()
    return len(SEConfig.without_defaults({k: v for k, v in options.items() if protocol.get(k, object()) != v}))


def study_architectures(profile_name: str = "cpu") -> list[dict]:
    """Every architecture the profile trains (model and image size), with the runs it trains: rows
    shared between tables count once, as they train once."""
    prof = profile(profile_name)
    runs: Counter = Counter()
    example = {}
    seen = set()
    for name in list_experiments():
        exp = experiment(name)
        for row in exp.rows:
            chosen, options = row_recipe(exp, row, prof)
            fp = fingerprint(chosen, options, prof)
            if fp in seen:
                continue
            seen.add(fp)
            key = (row.model, chosen.image_size or dataset_info(prof.dataset).input_size)
            runs[key] += len(prof.seeds)
            # The variant timed for an architecture: the one closest to the standard SE block of the
            # ablations (the default block, or the ablation protocol's, the first of them to come).
            if key not in example or _changes(options) < _changes(example[key][0]):
                example[key] = (options, chosen.batch_size)
    return [{"model": m, "side": side, "options": example[(m, side)][0], "batch": example[(m, side)][1],
             "runs": runs[(m, side)]} for m, side in runs]


def _study_worker(conn, threads: int) -> None:
    """A worker process: builds the network it is sent, then runs the number of steps it is sent
    and answers with the seconds they took; None ends it."""
    torch.set_num_threads(threads)
    step = None
    while True:
        message = conn.recv()
        if message is None:
            return
        kind, value = message
        if kind == "build":
            torch.manual_seed(0)
            model = create_model(value["model"], num_classes=10, in_chans=1, **value["options"]).train()
            step = training_step(model, fashion_mnist_batches(value["batch"], value["side"], 4), 1)
            step(), step()                      # warm-up
            conn.send("ready")
        else:
            start = time.perf_counter()
            for _ in range(value):
                step()
            conn.send(time.perf_counter() - start)


def study_throughput(rounds: int, steps: int) -> tuple[dict, dict]:
    """Images/s of each architecture of the cpu profile: one process with every core (A) against two
    one-thread processes running at once (B), in alternating rounds; B's workers wait while A runs."""
    cores = os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    workers = []
    for threads in (cores, max(1, cores // 2), max(1, cores // 2)):
        parent, child = context.Pipe()
        process = context.Process(target=_study_worker, args=(child, threads), daemon=True)
        process.start()
        workers.append((parent, process))
    one, pair = workers[0][0], [w[0] for w in workers[1:]]
    rows, data = [], []
    total_one = total_two = 0.0
    try:
        for arch in study_architectures():
            for conn, _ in workers:
                conn.send(("build", arch))
            for conn, _ in workers:
                conn.recv()
            one_s, two_s = [], []
            for round_ in range(rounds):
                for which in ((0, 1) if round_ % 2 == 0 else (1, 0)):
                    if which == 0:
                        one.send(("run", steps))
                        one_s.append(one.recv())
                    else:
                        start = time.perf_counter()
                        for conn in pair:
                            conn.send(("run", steps))
                        for conn in pair:
                            conn.recv()
                        two_s.append(time.perf_counter() - start)
            images = arch["batch"] * steps
            # Throughput of B over A in one round: (2 images / t_B) / (images / t_A).
            ratios = [2 * a / b for a, b in zip(one_s, two_s)]
            ratio = statistics.median(ratios)
            step_one = statistics.median(one_s) / steps
            total_one += arch["runs"] * step_one
            total_two += arch["runs"] * step_one / ratio
            q = spread(ratios)
            rows.append([arch["model"], f"1x{arch['side']}x{arch['side']}", str(arch["runs"]),
                         f"{images / statistics.median(one_s):.0f}", f"{2 * images / statistics.median(two_s):.0f}",
                         f"{ratio:.3f} [{q[0]:.3f}, {q[1]:.3f}]"])
            data.append({**{k: arch[k] for k in ("model", "side", "batch", "runs")}, "options": {
                k: list(v) if isinstance(v, tuple) else v for k, v in arch["options"].items()},
                "one_process_s": one_s, "two_processes_s": two_s, "ratio": ratio, "ratio_iqr": list(q)})
    finally:
        for conn, process in workers:
            conn.send(None)
            process.join(timeout=30)
    overall = total_one / total_two
    section = {"name": "The study's throughput: two one-thread processes against one process",
               "note": f"Each architecture of the cpu profile (experiments.yaml) at its batch and image size, "
                       f"{steps} SGD steps per timed call on real Fashion-MNIST batches. One process with "
                       f"{cores} threads (the plain path) against two one-thread processes at once "
                       f"(`senet experiments --jobs 2`), in alternating rounds. runs: the profile's runs of that "
                       f"architecture (SE variants of a network share its row; shared rows count once). The "
                       f"whole profile, weighting each architecture by its runs (its evaluation passes "
                       f"left out): **x{overall:.3f}**.",
               "header": ["network", "input", "runs", "one process images/s", "two processes images/s",
                          "ratio [IQR]"],
               "rows": rows, "footer": f"{rounds} paired rounds per architecture, {cores} cores.",
               "data": {"architectures": data, "overall": overall}}
    return section, target("study_throughput", overall, None)


# ---- CPU inference at batch 1 --------------------------------------------------------------------

def cpu_latency(rounds: int, warmup: int, threads: int | None = None) -> tuple[dict, list[dict]]:
    models = ["resnet50", "se_resnet50", (PREVIOUS, with_se_forward(create_model("se_resnet50"), _previous_forward))]
    try:
        import timm
        models.append(("timm legacy_seresnet50", timm.create_model("legacy_seresnet50")))
    except ImportError:
        timm = None
    report = profile_models(models, baseline="resnet50", mode="latency", batch_size=1,
                            input_size=(3, 224, 224), device="cpu", warmup=warmup, repeats=rounds,
                            threads=threads)
    se = report.row("se_resnet50")
    targets = [target("cpu_se_overhead", se.ratio, se.ratio_iqr)]
    value, q = report.ratio("se_resnet50", PREVIOUS)
    extra = f"; se_resnet50 / {PREVIOUS}, paired: {value:.3f} [{q[0]:.3f}, {q[1]:.3f}]"
    if timm is not None:
        value, q = report.ratio("se_resnet50", "timm legacy_seresnet50")
        targets.append(target("cpu_vs_timm", value, q))
    name = "CPU inference, batch 1, 224x224" + (f", {threads} thread (supplementary: no target)" if threads else "")
    note = "eval mode, torch.no_grad(); the paper: ResNet-50 164 ms, SE-ResNet-50 167 ms (x1.018)" + extra
    return report_section(name, note, report), targets


# ---- CUDA ----------------------------------------------------------------------------------------

def cuda_sections(rounds: int, warmup: int, device: str) -> tuple[list[dict], list[dict]]:
    sections, targets = [], []
    pair = ["resnet50", "se_resnet50"]
    common = dict(baseline="resnet50", batch_size=256, input_size=(3, 224, 224), device=device,
                  warmup=warmup, repeats=rounds)
    runs = [
        ("CUDA fwd+bwd+SGD, batch 256, fp32 eager", dict(mode="train")),
        ("CUDA fwd+bwd+SGD, batch 256, bf16 + channels_last", dict(mode="train", amp="bf16", channels_last=True)),
        ("CUDA fwd+bwd+SGD, batch 256, bf16 + channels_last, torch.compile",
         dict(mode="train", amp="bf16", channels_last=True, compile=True, warmup=max(warmup, 3))),
        ("CUDA inference, batch 256, bf16 + channels_last", dict(mode="latency", amp="bf16", channels_last=True)),
    ]
    for name, settings in runs:
        report = profile_models(pair, **{**common, **settings})
        note = "the paper (8 Titan X, fp32): 190 vs 209 ms, x1.10" if settings["mode"] == "train" else ""
        sections.append(report_section(name, note, report))
        if name.endswith("bf16 + channels_last") and settings["mode"] == "train":
            row = report.row("se_resnet50")
            targets.append(target("cuda_se_overhead_amp_cl", row.ratio, row.ratio_iqr))
    try:
        import torchvision
    except ImportError:
        return sections, targets
    tv = ("torchvision resnet50", torchvision.models.resnet50())
    report = profile_models(["resnet50", tv], mode="train", amp="bf16", channels_last=True, **common)
    # Throughput ours / torchvision = time torchvision / time ours, per round.
    value, q = report.ratio("torchvision resnet50", "resnet50")
    targets.append(target("cuda_vs_torchvision", value, q))
    sections.append(report_section("CUDA training, batch 256, bf16 + channels_last: ours vs torchvision",
                                   "ours puts the stride on the first 1x1 conv (the released Caffe models, "
                                   "3.86 GMACs); torchvision on the 3x3 (4.1 GMACs)", report))
    return sections, targets


# ---- RESULTS.md ----------------------------------------------------------------------------------

def markdown(results: dict) -> str:
    prov = results["provenance"]
    lines = ["# Section 4 timings: what an SE block costs", "",
             f"Written by `benchmarks/run_benchmarks.py`{' --quick' if results['quick'] else ''} on "
             f"{prov['date']} (commit `{prov['commit']}`, torch {prov['torch']}, CPU: {prov['cpu']}, "
             f"GPU: {prov['gpu'] or 'none'}) in {results['seconds']:.0f} s.",
             f"Load average (1, 5, 15 min) before: {results['load_before']}, after: {results['load_after']} "
             f"on {os.cpu_count()} cores: other processes share this machine, so read the spreads.", "",
             "Every comparison is paired: each round times every variant once, in an order rotated per "
             "round; a ratio is the median of the per-round ratios, with its inter-quartile range. What was "
             "tried to make the SE block cheaper, kept or not, is in [TRIED.md](TRIED.md).", "",
             "## Targets", "",
             "| target | threshold | measured [IQR] | met | missed by |",
             "|---|---|---|---|---|"]
    for t in results["targets"]:
        q = f" [{t['spread'][0]:.3f}, {t['spread'][1]:.3f}]" if t["spread"] else ""
        miss = "" if t["met"] else f"{t['missed_by']:.3f}"
        lines.append(f"| {t['what']} | {SIGN[t['kind']]} {t['threshold']:.2f} | {t['value']:.3f}{q} | "
                     f"{'yes' if t['met'] else 'no'} | {miss} |")
    for key in results["skipped"]:
        what, threshold, kind = TARGETS[key]
        lines.append(f"| {what} | {SIGN[kind]} {threshold:.2f} | not measured: no CUDA device | | |")
    for section in results["sections"]:
        lines += ["", f"## {section['name']}", ""]
        if section.get("note"):
            lines += [section["note"], ""]
        lines += ["| " + " | ".join(section["header"]) + " |", "|" + "---|" * len(section["header"])]
        lines += ["| " + " | ".join(row) + " |" for row in section["rows"]]
        lines += ["", section["footer"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="cpu: CPU sections only; cuda: also the GPU sections (fails without one); "
                             "auto: the GPU sections when torch sees a GPU")
    parser.add_argument("--out", default=str(HERE), help="folder for RESULTS.md and results.json")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start, load_before = time.time(), load_average()
    rounds = dict(train=(3, 1, 1), study=(2, 2), latency=(8, 2), cuda=(5, 2)) if args.quick else \
        dict(train=(20, 2, 3), study=(6, 4), latency=(200, 5), cuda=(30, 5))
    sections, targets = cpu_training_steps(*rounds["train"])
    section, found = study_throughput(*rounds["study"])
    sections.append(section)
    targets.append(found)
    section, found = cpu_latency(*rounds["latency"])
    sections.append(section)
    targets += found
    # One thread: a core left to the other processes of a shared machine, and no OpenMP barrier
    # waiting for a descheduled thread, so a steadier (if slower) view of the same ratios.
    section, _ = cpu_latency(rounds["latency"][0] // 2, rounds["latency"][1], threads=1)
    sections.append(section)
    skipped = []
    if use_cuda:
        found_sections, found = cuda_sections(*rounds["cuda"], device="cuda")
        sections += found_sections
        targets += found
    else:
        skipped = list(CUDA_TARGETS)
    for s in sections:
        print(f"\n{s['name']}\n" + "\n".join("  ".join(row) for row in [s["header"], *s["rows"]]), flush=True)

    prov = {k: v for k, v in sections[0]["data"]["provenance"].items() if k not in ("device", "threads")}
    prov.update(cpu=_cpu_name(), gpu=torch.cuda.get_device_name() if use_cuda else None, commit=_commit())
    results = {"quick": args.quick, "provenance": prov, "load_before": load_before,
               "load_after": load_average(), "seconds": round(time.time() - start, 1),
               "targets": targets, "skipped": skipped, "sections": sections}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "RESULTS.md").write_text(markdown(results))
    for t in targets:
        print(f"{t['what']}: {t['value']:.3f} ({'met' if t['met'] else 'missed'}, threshold {t['threshold']})")
    print(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'} in {results['seconds']} s")
    return 0


def _commit() -> str:
    """The commit, marked when the working tree differs from it (the timings are of the tree)."""
    commit = git_commit()
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return commit
    return f"{commit} + uncommitted changes" if dirty and commit != "unknown" else commit


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
