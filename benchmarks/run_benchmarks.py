"""Section 4's timings on this machine, paired, in one run: writes RESULTS.md and results.json.

    python benchmarks/run_benchmarks.py            # the full run (2-core CPU: under 10 minutes)
    python benchmarks/run_benchmarks.py --quick    # a smoke run: few rounds
    python benchmarks/run_benchmarks.py --device cpu --out /tmp/bench

What it measures (every comparison paired round-robin in one process, see senet_core.profile):

* CPU, batch 1, 224x224, eval, no_grad: our se_resnet50 against our resnet50 (the paper: 167 vs
  164 ms, x1.018) and against timm's legacy_seresnet50 (the same architecture and weight layout).
* CPU training on real Fashion-MNIST (batch 128): images/s of se_resnet20_cifar against
  resnet20_cifar. Batches are read from the loader once, before timing, so that the timed calls
  are training steps only.
* On CUDA, when there is a GPU: forward+backward+SGD at batch 256 of resnet50 and se_resnet50
  (the paper: 209 vs 190 ms, x1.10) in eager fp32, in bf16 autocast with channels_last, and
  compiled; inference throughput at batch 256; torchvision's resnet50 against ours.

Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from senet_core import create_model, se_modules                           # noqa: E402
from senet_core.profile import ProfileReport, paired_times, profile_models  # noqa: E402
from senet_core.train import git_commit                                    # noqa: E402

HERE = Path(__file__).resolve().parent

# key: (what, threshold, "max" if the measured value must stay at or below it, "min" if at or above)
TARGETS = {
    "cpu_se_overhead": ("CPU batch-1 latency, se_resnet50 / resnet50", 1.03, "max"),
    "cpu_vs_timm": ("CPU batch-1 latency, se_resnet50 / timm legacy_seresnet50", 0.95, "max"),
    "cuda_se_overhead_amp_cl": ("CUDA fwd+bwd b256 bf16+channels_last, se_resnet50 / resnet50", 1.05, "max"),
    "cuda_vs_torchvision": ("CUDA training images/s b256 bf16+channels_last, our resnet50 / torchvision's",
                            0.95, "min"),
}
SIGN = {"max": "<=", "min": ">="}

# Where the time went and what was tried, measured while choosing se.py's forward path (CPU, batch 1,
# 2 threads, paired rounds; ratios are medians of per-round ratios to resnet50 [IQR]).
TRIED = """\
Where the SE time goes on this CPU at batch 1 (2 threads). With a 32x32 input the activations are
tiny but the weights are as cold as at 224x224: there se_resnet50 costs 1.6-1.7 ms more than
resnet50 per image, of which the squeeze, gate and scale without the two FCs are 0.26 ms, so
1.2-1.4 ms is the excitation: 16 pairs of one-image products that read 10 MB of FC weights from
memory (the network's 100 MB of weights cycle through a 32 MB L3 that other tenants share) and 64
small operator calls. At 224x224 the squeeze (`sum` over H, W) adds ~0.5-0.9 ms: in the network
a block's sum takes 44-75 us, up to twice as long as a second read of the same activation, since it
reads what batch norm has just written; the fused scale costs no more than the baseline's residual
addition (per call in torch.profiler, `addcmul` 86 us, `add` 99 us). All together 2-2.5 ms against
a 55-58 ms ResNet-50. The paper's CPU figure (164 -> 167 ms) is
a similar absolute cost on a baseline three times slower, hence its smaller ratio. With one
thread the convolutions take twice as long and the SE cost barely changes (it is single-threaded
work), so the one-thread ratio is lower.
The stage-5 products are the slowest: with cold weights MKL's matrix-vector product takes
~134 us for fc2 (2048x128) and 52-66 us for fc1 (128x2048) per block, where reading the same
1 MB with both cores (`weight.sum()`) takes ~21 us. They are bound by memory latency, not
bandwidth; a row-major 2048x128 product is the worst case (a 1024-channel product takes no
longer than a plain read of its weights).

| SE forward (all compute the same function up to float rounding) | measured | kept |
|---|---|---|
| first SE forward: `mean((2,3))`, `fc1`/`relu`/`fc2` module calls, `[:, :, None, None]`, `addcmul` | se_resnet50 / resnet50 1.064 [1.055, 1.076] (30 rounds, quiet window) | |
| FCs and ReLU as `F.linear` / `torch.relu_`, gate reshaped with `view` | 1.055 [1.049, 1.074] | yes |
| and the squeeze as `sum((2,3))` with 1/(HW) as fc1's GEMM alpha (`addmm(..., alpha=)`; fp32/fp64 only, a half-precision sum can overflow) | 1.050 [1.047, 1.060] | yes |
| one image squeezed to a vector, so each FC is one matrix-vector product (`addmv`) instead of a one-row matrix product (`addmm` plus a transpose) | SE FC time per image 1.28 -> 0.88 ms (torch.profiler, 30 forwards); against the first SE forward, paired: 0.991 [0.976, 1.009] | yes |
| the excitation as one method that returns the gate as the products leave it, one `view` fewer per block | no measurable change: at 32x32 the SE cost was 0.17-0.24 ms above the inline variant below before, 0.16 ms after (same-run comparisons) | yes: neutral, `excite()` and `forward` share one path |
| the excitation written inline for the one-image case (no `_linear` calls, each parameter looked up once) | SE cost at 32x32 1.45-1.57 vs 1.62-1.72 ms for the kept path | no: ~0.15 ms (0.25 % at 224x224, inside the run-to-run spread) for a second copy of `_linear`'s cases |
| fc2's weight stored column-major (a transposed contiguous tensor), so its product streams whole columns | stage-5 fc2 139 -> 57 us in the profiler, but paired 0.997 [0.978, 1.016] against the kept path | no: no measurable gain, and a non-contiguous parameter breaks `.view` and `parameters_to_vector` |
| FCs with C >= 1024 as an element-wise product and a row sum (both cores read the weights) | +1.85 vs +1.93 ms over resnet50 (80 rounds) | no: within noise, three operators for one |
| the one-image products split in two halves as a batched product (`bmm`) | 178 vs 95 us for the 128x2048 product, cold | no |
| FCs as a 1x1 convolution (oneDNN) or `baddbmm` | 66 / 148 us vs 58 / 133 us for the stage-5 FC pair | no |
| fc2 as one matrix product that streams long rows: its weight viewed as (C/f) x (f C/r) against a block-diagonal (f C/r) x f stack of the hidden vector, f = 2, 4, 8 | 158-212 vs 139 us for the 2048x128 product, cold (MKL's few-column products are slower than its matrix-vector product) | no |
| each FC with C >= 1024 split in two halves, one half run on PyTorch's inter-op thread (`torch.jit.fork`) while the caller runs the other | 374 vs 196 us (2048x128) and 285 vs 109 us (128x2048), cold: handing work to the other thread costs ~170 us, more than a whole product | no |
| scale as `u.mul(s).add_(residual)` instead of `addcmul` | 86 vs 66 us at 256x56x56 (two passes) | no |
| `torch.add(residual, u * s)` | 114 vs 66 us at 256x56x56 | no |
| squeeze as `adaptive_avg_pool2d` | same as `mean`, 5 us slower than `sum` | no |
| squeeze of a bottleneck taken before its last 1x1 conv: in eval mode `mean(bn3(conv3(a)))` is `bn3(conv3(mean(a)))`, and `a` has a quarter of the channels (then a matrix-vector product with conv3's weight and bn3's affine map) | stages 2-3 only, against the kept path, paired: 0.999 (80 rounds), 1.009 [0.989, 1.024] (150 rounds); all stages: 1.033-1.039 slower (the stage-4/5 conv3 weights are 1-4 MB per product) | no: no gain, and an eval-only second path |
| both networks under `torch.compile` (inductor, CPU) | resnet50 84 ms (eager 58 ms), ratio 1.052 | no: slower on this CPU |
| stage-5 FC weights first read by a two-thread `sum()` (so they are in cache), then the products | three stage-5 excitations alone, cold: 603 -> 356 us; all 16 blocks in sequence, cold: 1.06-1.14x slower; in the network, paired: 0.994 [0.961, 1.024] | no: the isolated gain does not survive the full network on this shared machine |

The paired rows are medians of per-round ratios [IQR]; single-operator rows are medians of 300+
timed calls with the caches flushed in between ("cold") or not. The machine is shared: runs of
the same code minutes apart have given se_resnet50 / resnet50 anywhere from 1.027 (while another
job loaded it) to 1.065, so compare rows measured in the same run. The table at the top of this
page measures the first SE forward again beside the kept one, paired, in this run.
"""


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def target(key: str, value: float, spread: tuple[float, float] | None) -> dict:
    what, threshold, kind = TARGETS[key]
    met = value <= threshold if kind == "max" else value >= threshold
    miss = None if met else (value - threshold if kind == "max" else threshold - value)
    return {"key": key, "what": what, "threshold": threshold, "kind": kind, "value": value,
            "spread": list(spread) if spread else None, "met": met, "missed_by": miss}


PREVIOUS = "se_resnet50, first SE forward"


def _previous_forward(block, u, residual=None):
    # se.py's SEBlock.forward before the fast path: mean, module calls, indexing, addcmul.
    z = u.mean((2, 3)) if block.squeeze == "avg" else u.amax((2, 3))
    s = block.gate(block.fc2(block.relu(block.fc1(z))))[:, :, None, None]
    return u * s if residual is None else torch.addcmul(residual, u, s)


def previous_se_path(model):
    """``model`` with every SE block running the previous forward (an instance attribute)."""
    for block in se_modules(model).values():
        block.forward = types.MethodType(_previous_forward, block)
    return model


def cpu_latency(rounds: int, warmup: int, threads: int | None = None) -> tuple[dict, list[dict]]:
    models = ["resnet50", "se_resnet50", (PREVIOUS, previous_se_path(create_model("se_resnet50")))]
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
    section_extra = f"; se_resnet50 / {PREVIOUS}, paired: {value:.3f} [{q[0]:.3f}, {q[1]:.3f}]"
    if timm is not None:
        value, q = report.ratio("se_resnet50", "timm legacy_seresnet50")
        targets.append(target("cpu_vs_timm", value, q))
    name = "CPU inference, batch 1, 224x224" + (f", {threads} thread (supplementary: no target)" if threads else "")
    section = {"name": name,
               "note": "eval mode, torch.no_grad(); the paper: ResNet-50 164 ms, SE-ResNet-50 167 ms (x1.018)"
                       + section_extra,
               "report": report}
    return section, targets


def cpu_fashion_mnist(rounds: int, warmup: int, steps_per_call: int) -> dict:
    from senet_core.data import build_loaders
    batch = 128
    distinct = 4 * steps_per_call
    loaders = build_loaders("fashion_mnist", batch_size=batch, device="cpu", limit_train=batch * distinct,
                            limit_val=batch)
    loaders.train.set_epoch(0)
    batches = [(x.contiguous(), y) for x, y in loaders.train][:distinct]
    size = tuple(batches[0][0].shape[1:])
    torch.manual_seed(0)
    steps = {}
    for name in ("resnet20_cifar", "se_resnet20_cifar"):
        model = create_model(name, num_classes=10, in_chans=size[0]).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        steps[name] = _fmnist_call(model, optimizer, batches, steps_per_call)
    times = paired_times(steps, warmup=warmup, repeats=rounds, device="cpu")
    report = ProfileReport.from_times(times, baseline="resnet20_cifar", mode="train",
                                      images_per_call=batch * steps_per_call, batch_size=batch,
                                      input_sizes={k: size for k in steps}, device=torch.device("cpu"))
    return {"name": f"CPU training on Fashion-MNIST, batch {batch}",
            "note": f"{steps_per_call} SGD steps (lr 0.1, momentum 0.9, wd 1e-4) per timed call on real "
                    f"Fashion-MNIST batches ({len(batches)} distinct, prefetched); images/s = "
                    f"{batch * steps_per_call} / median call time",
            "report": report}


def _fmnist_call(model, optimizer, batches, steps_per_call):
    position = [0]

    def call():
        for _ in range(steps_per_call):
            images, labels = batches[position[0] % len(batches)]
            position[0] += 1
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return call


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
        sections.append({"name": name, "note": "the paper (8 Titan X, fp32): 190 vs 209 ms, x1.10"
                         if settings["mode"] == "train" else "", "report": report})
        if name.endswith("bf16 + channels_last") and settings["mode"] == "train":
            row = report.row("se_resnet50")
            targets.append(target("cuda_se_overhead_amp_cl", row.ratio, row.ratio_iqr))
    try:
        import torchvision
        tv = ("torchvision resnet50", torchvision.models.resnet50())
        report = profile_models(["resnet50", tv], mode="train", amp="bf16", channels_last=True,
                                **{k: v for k, v in common.items()})
        # Throughput ours / torchvision = time torchvision / time ours, per round.
        value, q = report.ratio("torchvision resnet50", "resnet50")
        targets.append(target("cuda_vs_torchvision", value, q))
        sections.append({"name": "CUDA training, batch 256, bf16 + channels_last: ours vs torchvision",
                         "note": "ours puts the stride on the first 1x1 conv (the released Caffe models, "
                                 "3.86 GMACs); torchvision on the 3x3 (4.1 GMACs)", "report": report})
    except ImportError:
        pass
    return sections, targets


def markdown(results: dict, sections: list[dict]) -> str:
    prov = results["provenance"]
    lines = ["# Section 4 timings: what an SE block costs", "",
             f"Written by `benchmarks/run_benchmarks.py`{' --quick' if results['quick'] else ''} on "
             f"{prov['date']} (commit `{prov['commit']}`, torch {prov['torch']}, "
             f"{prov['threads']} CPU threads, CPU: {prov['cpu']}, GPU: {prov['gpu'] or 'none'}).",
             f"Load average (1, 5, 15 min) before: {results['load_before']}, after: {results['load_after']} "
             f"on {os.cpu_count()} cores: other processes share this machine, so read the spreads.", "",
             "Every comparison is paired: each round times every model once, in an order rotated per "
             "round; a ratio is the median of the per-round ratios, with its inter-quartile range.", "",
             "## Targets", "",
             "| target | threshold | measured [IQR] | met | missed by |",
             "|---|---|---|---|---|"]
    for t in results["targets"]:
        q = f" [{t['spread'][0]:.3f}, {t['spread'][1]:.3f}]" if t["spread"] else ""
        sign = SIGN[t["kind"]]
        miss = "" if t["met"] else f"{t['missed_by']:.3f}"
        lines.append(f"| {t['what']} | {sign} {t['threshold']:.2f} | {t['value']:.3f}{q} | "
                     f"{'yes' if t['met'] else 'no'} | {miss} |")
    by_what = {what: (threshold, kind) for what, threshold, kind in TARGETS.values()}
    for skipped in results["skipped"]:
        threshold, kind = by_what[skipped]
        lines.append(f"| {skipped} | {SIGN[kind]} {threshold:.2f} | not measured: no CUDA device | | |")
    for section in sections:
        report = section["report"]
        lines += ["", f"## {section['name']}", ""]
        if section.get("note"):
            lines += [section["note"], ""]
        base = report.baseline
        lines += [f"| model | input | median ms [IQR] | min-max ms | images/s | peak MB | "
                  f"ratio to {base} [IQR] |" if base else "| model | input | median ms [IQR] | min-max ms | "
                  "images/s | peak MB | ratio |", "|---|---|---|---|---|---|---|"]
        for r in report.rows:
            ratio = "-" if r.ratio is None else f"{r.ratio:.3f} [{r.ratio_iqr[0]:.3f}, {r.ratio_iqr[1]:.3f}]"
            peak = "not measured" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}"
            lines.append(f"| {r.model} | {'x'.join(map(str, r.input_size))} | {r.median_ms:.2f} "
                         f"[{r.iqr_ms[0]:.2f}, {r.iqr_ms[1]:.2f}] | {r.min_ms:.2f}-{r.max_ms:.2f} | "
                         f"{r.images_per_second:.1f} | {peak} | {ratio} |")
        lines.append(f"\n{report.rows[0].rounds} paired rounds, device {report.provenance['device']}.")
    lines += ["", "## What was tried for a cheap SE path", "", TRIED.rstrip(), ""]
    return "\n".join(lines)


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
    rounds = dict(latency=(8, 2), fmnist=(3, 1), cuda=(5, 2)) if args.quick else \
        dict(latency=(300, 5), fmnist=(25, 2), cuda=(30, 5))
    sections, targets, skipped = [], [], []
    section, found = cpu_latency(*rounds["latency"])
    sections.append(section)
    targets += found
    print(section["report"].render(), flush=True)
    # One thread: a core left to the other processes of a shared machine, and no OpenMP barrier
    # waiting for a descheduled thread, so a steadier (if slower) view of the same ratios.
    section, _ = cpu_latency(rounds["latency"][0] // 2, rounds["latency"][1], threads=1)
    sections.append(section)
    print(section["report"].render(), flush=True)
    section = cpu_fashion_mnist(*rounds["fmnist"], steps_per_call=1 if args.quick else 2)
    sections.append(section)
    print(section["report"].render(), flush=True)
    if use_cuda:
        found_sections, found = cuda_sections(*rounds["cuda"], device="cuda")
        sections += found_sections
        targets += found
        for s in found_sections:
            print(s["report"].render(), flush=True)
    else:
        skipped = [TARGETS["cuda_se_overhead_amp_cl"][0], TARGETS["cuda_vs_torchvision"][0]]

    prov = dict(sections[0]["report"].provenance)
    prov.pop("device", None)
    prov.update(cpu=_cpu_name(), gpu=torch.cuda.get_device_name() if use_cuda else None, commit=_commit())
    results = {"quick": args.quick, "provenance": prov, "load_before": load_before,
               "load_after": load_average(), "seconds": round(time.time() - start, 1),
               "targets": targets, "skipped": skipped,
               "sections": [{"name": s["name"], "note": s.get("note", ""), **s["report"].as_dict(times=True)}
                            for s in sections]}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "RESULTS.md").write_text(markdown(results, sections))
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
