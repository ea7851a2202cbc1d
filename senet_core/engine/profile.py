"""Section 4 of the paper in wall-clock time: what an SE block costs when the network runs.

The paper reports that SE-ResNet-50 adds 0.26 % FLOPs to ResNet-50 but takes 167 ms instead of
164 ms for one CPU image and 209 ms instead of 190 ms for a forward+backward pass of 256 images on
a GPU. FLOPs (``senet_core.complexity``) say little about time: the squeeze reads the whole feature
map once more, the excitation is two small matrix-vector products whose cost is reading their
weights, and every extra kernel has a fixed launch cost that dominates at batch 1.

:func:`profile_models` measures networks **paired, in one process**: after a warm-up, each of
``repeats`` rounds times every model once, in an order rotated from round to round, so that a
change in machine load hits all models of a round alike. A model's time is the median over rounds
(with the inter-quartile range); its ratio to the baseline is the median of the per-round ratios,
which cancels most of the drift that a ratio of medians would keep.

>>> report = profile_models(["resnet50", "se_resnet50"], baseline="resnet50", device="cpu")
>>> print(report.render())

:mod:`senet_core.study.timing` sets such measurements beside the paper's milliseconds.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models import create_model, model_entry
from ..progress import progress_bar
from .runtime import autocast, check_amp, provenance, resolve_device

__all__ = ["MODES", "ProfileRow", "ProfileReport", "profile_models", "paired_times", "spread"]

# latency: forward in eval mode under no_grad; train: forward, backward and an SGD step in train mode.
MODES = ("latency", "train")


@dataclass
class ProfileRow:
    """One model's measurement. Times are per call (one batch), over ``rounds`` paired rounds.

    ``iqr_ms`` and ``ratio_iqr`` are ``[lower quartile, upper quartile]``; ``ratio`` is the median
    over rounds of (this model's time / the baseline's time in the same round), ``None`` without a
    baseline. ``peak_memory_mb`` is CUDA only (``None`` on CPU, where it is not measured): the
    largest ``torch.cuda.max_memory_allocated`` increase during one call of this model, plus the
    bytes it keeps between calls (parameters, buffers, optimizer state, its input batch), so that
    the other models resident on the GPU are not counted.
    """

    model: str
    mode: str
    batch_size: int
    input_size: tuple[int, int, int]
    device: str
    amp: str | None
    channels_last: bool
    compile: bool
    median_ms: float
    iqr_ms: tuple[float, float]
    min_ms: float
    max_ms: float
    images_per_second: float
    peak_memory_mb: float | None
    ratio: float | None
    ratio_iqr: tuple[float, float] | None
    rounds: int
    times_ms: list[float] = field(repr=False)


@dataclass
class ProfileReport:
    """The rows of a :func:`profile_models` run, the baseline they are relative to, and provenance.

    ``provenance`` holds the device name, torch version, thread count, git commit and UTC date.
    """

    rows: list[ProfileRow]
    baseline: str | None
    provenance: dict

    def row(self, model: str) -> ProfileRow:
        for row in self.rows:
            if row.model == model:
                return row
        raise ValueError(f"no row {model!r}; rows are {', '.join(r.model for r in self.rows)}")

    def ratio(self, model: str, baseline: str) -> tuple[float, tuple[float, float]]:
        """Median and quartiles of the per-round ratio time(model) / time(baseline), for any pair."""
        a, b = self.row(model).times_ms, self.row(baseline).times_ms
        ratios = [x / y for x, y in zip(a, b)]
        return statistics.median(ratios), spread(ratios)

    def as_dict(self, times: bool = False) -> dict:
        """JSON-able: ``{"baseline", "provenance", "rows": [...]}`` with the fields of
        :class:`ProfileRow` (``model, mode, batch_size, input_size, device, amp, channels_last,
        compile, median_ms, iqr_ms, min_ms, max_ms, images_per_second, peak_memory_mb, ratio,
        ratio_iqr, rounds``); the per-round ``times_ms`` only with ``times=True``."""
        rows = []
        for row in self.rows:
            d = asdict(row)
            d["input_size"] = list(row.input_size)
            d["iqr_ms"] = list(row.iqr_ms)
            d["ratio_iqr"] = list(row.ratio_iqr) if row.ratio_iqr is not None else None
            if not times:
                d.pop("times_ms")
            rows.append(d)
        return {"baseline": self.baseline, "provenance": dict(self.provenance), "rows": rows}

    def render(self) -> str:
        """A text table, one line per model, with the settings and provenance above it."""
        p = self.provenance
        first = self.rows[0]
        lines = [
            f"{first.mode}, batch {first.batch_size}, device {p['device']}, amp {first.amp or 'off'}, "
            f"channels_last {first.channels_last}, compile {first.compile}, {first.rounds} paired rounds",
            f"torch {p['torch']}, {p['threads']} threads, commit {p['commit']}, {p['date']}",
        ]
        header = ("model", "input", "median ms [IQR]", "images/s", "peak MB",
                  f"ratio to {self.baseline} [IQR]" if self.baseline else "ratio")
        table = [header]
        for r in self.rows:
            ratio = "-" if r.ratio is None else f"{r.ratio:.3f} [{r.ratio_iqr[0]:.3f}, {r.ratio_iqr[1]:.3f}]"
            table.append((r.model, "x".join(map(str, r.input_size)),
                          f"{r.median_ms:.2f} [{r.iqr_ms[0]:.2f}, {r.iqr_ms[1]:.2f}]",
                          f"{r.images_per_second:.1f}",
                          "n/a" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}", ratio))
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for i, row in enumerate(table):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    @classmethod
    def from_times(cls, times: dict[str, list[float]], *, baseline: str | None, mode: str,
                   images_per_call: int, batch_size: int, input_sizes: dict[str, tuple[int, int, int]],
                   device: torch.device, amp: str | None = None, channels_last: bool = False,
                   compile: bool = False, peak_memory: dict[str, float | None] | None = None) -> "ProfileReport":
        """Build a report from per-round times in seconds (as :func:`paired_times` returns them).

        ``images_per_call`` is the number of images one timed call processes (a call may run
        several steps); ``batch_size`` is what the rows report.
        """
        if baseline is not None and baseline not in times:
            raise ValueError(f"baseline={baseline!r} is not one of the models {', '.join(map(repr, times))}")
        rows = []
        for label, seconds in times.items():
            ms = [1e3 * t for t in seconds]
            median = statistics.median(ms)
            ratio = ratio_q = None
            if baseline is not None:
                ratios = [x / (1e3 * y) for x, y in zip(ms, times[baseline])]
                ratio, ratio_q = statistics.median(ratios), spread(ratios)
            peak = (peak_memory or {}).get(label)
            rows.append(ProfileRow(
                model=label, mode=mode, batch_size=batch_size, input_size=tuple(input_sizes[label]),
                device=str(device), amp=amp, channels_last=channels_last, compile=compile,
                median_ms=median, iqr_ms=spread(ms), min_ms=min(ms), max_ms=max(ms),
                images_per_second=images_per_call / (median / 1e3), peak_memory_mb=peak,
                ratio=ratio, ratio_iqr=ratio_q, rounds=len(ms), times_ms=ms))
        prov = provenance(device, 1)
        prov.pop("world_size", None)
        prov["threads"] = torch.get_num_threads()
        return cls(rows, baseline, prov)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Lower and upper quartiles (inclusive method; one value gives that value twice)."""
    if len(values) == 1:
        return (values[0], values[0])
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[0], q[2])


def paired_times(steps: dict[str, Callable[[], object]], *, warmup: int, repeats: int,
                 device: torch.device | str = "cpu",
                 after_step: Callable[[str], None] | None = None,
                 before_step: Callable[[str], None] | None = None,
                 progress: bool = False) -> dict[str, list[float]]:
    """Time each zero-argument ``steps[label]()`` once per round, ``repeats`` rounds, round-robin.

    Round ``i`` starts at the ``i mod n``-th step, so no model always runs first (after another
    model has evicted its weights from the caches) or last. ``warmup`` untimed rounds come first.
    On CUDA the device is synchronised before and after each timed call. Returns seconds per call.
    ``progress`` shows a bar over the rounds on a terminal.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    labels = list(steps)
    times: dict[str, list[float]] = {label: [] for label in labels}
    rounds = progress_bar(range(warmup + repeats), show=progress, desc="rounds", unit="round")
    for round_ in rounds:
        k = round_ % len(labels)
        for label in labels[k:] + labels[:k]:
            if before_step is not None:
                before_step(label)
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            steps[label]()
            if cuda:
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            if after_step is not None:
                after_step(label)
            if round_ >= warmup:
                times[label].append(elapsed)
    return times


def _check(models, baseline, mode, batch_size, input_size, amp, warmup, repeats, threads):
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of model names or (label, nn.Module) pairs")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
    check_amp(amp)
    for name, value, least in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if input_size is not None and (len(input_size) != 3 or not all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size must be (channels, height, width) of positive integers, got {input_size!r}")
    labels = []
    for item in models:
        if isinstance(item, str):
            model_entry(item)                       # ValueError naming the closest models
            labels.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], nn.Module):
            labels.append(item[0])
        else:
            raise ValueError(f"each model must be a registered name or a (label, nn.Module) pair, got {item!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"model labels must be unique; repeated: {', '.join(duplicates)}")
    if baseline is not None and baseline not in labels:
        raise ValueError(f"baseline={baseline!r} is not one of the models {', '.join(map(repr, labels))}")
    return labels


def _build(item, input_size) -> tuple[str, nn.Module, tuple[int, int, int]]:
    if isinstance(item, str):
        size = tuple(input_size) if input_size is not None else model_entry(item).input_size
        return item, create_model(item, in_chans=size[0]), size
    label, module = item
    if input_size is None:
        name = getattr(module, "model_name", None)
        if name is None:
            raise ValueError(f"{label}: input_size=None needs a model built by create_model; "
                             f"give input_size for other modules")
        size = model_entry(name).input_size
    else:
        size = tuple(input_size)
    # A copy, so that moving, converting and training it leaves the caller's module as it was.
    return label, copy.deepcopy(module), size


def _logits(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _state_bytes(*tensors_groups) -> int:
    return sum(t.numel() * t.element_size() for group in tensors_groups for t in group)


def profile_models(models: list, *, baseline: str | None = None, mode: str = "latency",
                   batch_size: int = 1, input_size: tuple[int, int, int] | None = None,
                   device: str = "auto", amp: str | None = None, channels_last: bool = False,
                   compile: bool = False, warmup: int = 3, repeats: int = 20,
                   threads: int | None = None, progress: bool = False) -> ProfileReport:
    """Time networks paired in one process (Section 4's CPU and GPU timings).

    Args:
        models: registered names (built with :func:`senet_core.create_model`, random weights) or
            ``(label, module)`` pairs; a module is deep-copied, the caller's is left untouched.
        baseline: the label every ratio is relative to (``None``: no ratios).
        mode: ``"latency"``: a forward pass in eval mode under ``torch.no_grad()``; ``"train"``: a
            forward pass, cross-entropy against random labels, a backward pass and an SGD step
            (momentum 0.9) in train mode, with a gradient scaler for fp16 on CUDA.
        batch_size: images per call (the paper: 1 on CPU, 256 for the GPU training pass).
        input_size: (C, H, W) of every model, or ``None`` for each model's registered size
            (224x224 for the ImageNet networks). Registered models are built with ``C`` input
            channels.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (the GPU when there is one).
        amp: ``None``, ``"bf16"`` or ``"fp16"`` autocast.
        channels_last: models and inputs in NHWC memory format.
        compile: wrap each model in ``torch.compile`` (the warm-up rounds absorb the compilation).
        warmup: untimed rounds before the timed ones.
        repeats: timed rounds; each times every model once, in an order rotated per round.
        threads: CPU threads for the measurement (``torch.set_num_threads``; restored after).
        progress: a bar over the rounds (warm-up included), drawn only on a terminal.

    Returns:
        a :class:`ProfileReport` whose rows keep the order of ``models``.

    Raises:
        ValueError: an unknown model, mode, amp or device, a batch size or repeat count below 1,
            a baseline that is not one of the models.
    """
    labels = _check(models, baseline, mode, batch_size, input_size, amp, warmup, repeats, threads)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    previous_threads = torch.get_num_threads()
    previous_benchmark = torch.backends.cudnn.benchmark
    if threads is not None:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = True
    try:
        generator = torch.Generator().manual_seed(0)
        steps, sizes, resident = {}, {}, {}
        for item in models:
            label, module, size = _build(item, input_size)
            module = module.to(dev, memory_format=memory_format)
            module.train(mode == "train")
            images = torch.randn(batch_size, *size, generator=generator).to(dev)
            images = images.contiguous(memory_format=memory_format)
            runner = torch.compile(module) if compile else module
            sizes[label] = size
            kept = [list(module.parameters()), list(module.buffers()), [images]]
            if mode == "latency":
                steps[label] = _latency_step(runner, images, dev, amp)
                resident[label] = (None, kept)
            else:
                optimizer = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9)
                steps[label] = _train_step(runner, optimizer, images, dev, amp, generator)
                resident[label] = (optimizer, kept)
        peaks: dict[str, float | None] = {label: None for label in labels}
        before: dict[str, int] = {}

        def reset(label):
            if cuda:
                torch.cuda.synchronize(dev)
                before[label] = torch.cuda.memory_allocated(dev)
                torch.cuda.reset_peak_memory_stats(dev)

        def record(label):
            if cuda:
                used = torch.cuda.max_memory_allocated(dev) - before[label]
                peaks[label] = max(peaks[label] or 0, used)

        times = paired_times(steps, warmup=warmup, repeats=repeats, device=dev,
                             before_step=reset, after_step=record, progress=progress)
        if cuda:
            for label in labels:
                optimizer, kept = resident[label]
                state = [t for s in (optimizer.state.values() if optimizer else ()) for t in s.values()
                         if torch.is_tensor(t)]
                peaks[label] = (peaks[label] + _state_bytes(*kept, state)) / 2**20
        return ProfileReport.from_times(
            times, baseline=baseline, mode=mode, images_per_call=batch_size, batch_size=batch_size,
            input_sizes=sizes, device=dev, amp=amp, channels_last=channels_last, compile=compile,
            peak_memory=peaks)
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.cudnn.benchmark = previous_benchmark


def _latency_step(runner: nn.Module, images: torch.Tensor, device: torch.device, amp: str | None):
    def step():
        with torch.no_grad(), autocast(device, amp):
            return runner(images)
    return step


def _train_step(runner, optimizer, images, device, amp, generator):
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" and device.type == "cuda" else None
    labels: list[torch.Tensor] = []

    def step():
        with autocast(device, amp):
            logits = _logits(runner(images))
            if not labels:                # random targets, drawn once the number of classes is known
                labels.append(torch.randint(logits.shape[1], (images.shape[0],), generator=generator).to(device))
            loss = F.cross_entropy(logits.float(), labels[0])
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        # Freed at the end rather than the start, so that between calls a model holds no gradients.
        optimizer.zero_grad(set_to_none=True)
    return step
