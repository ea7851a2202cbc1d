"""Training (Sections 5-6): one engine from a laptop CPU to many GPUs, which never loses a run.

* One process or ``torchrun --nproc_per_node=N -m senet_core train ...`` (DDP: NCCL on GPU, gloo on
  CPU). ``batch_size`` is the global batch, split over the processes, as the paper's 1024 was over GPUs.
* Every epoch appends one JSON line to ``OUT/metrics.jsonl`` and replaces ``OUT/checkpoint.pt``
  atomically (temporary file + rename): model, optimizer, schedule, gradient scaler and RNG states.
* ``resume=True`` continues from ``OUT`` and ends with the same metrics as an uninterrupted run: each
  epoch's data order, augmentation and dropout are functions of (seed, epoch, rank) alone.
* A non-finite loss stops the run with :class:`NonFiniteLossError`; the last good checkpoint stays.
"""
from __future__ import annotations

import json
import math
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..models import create_model, model_entry
from ..models.init import he_init
from ..se import SEConfig
from .data import build_loaders
from .evaluate import evaluate
from .recipes import Recipe
from ..models.weights import CheckpointError, load_state
from ..progress import progress_bar
from .runtime import (CHECKPOINT, CONFIG, METRICS, Distributed, TrainingStopped, atomic_write_text, autocast,
                      check_amp, distributed_from_env, grad_scaler, has_checkpoint, provenance, read_metrics,
                      resolve_device, resume_checkpoint, run_lock, save_checkpoint, stop_on_signals)

# What a checkpoint of a training run holds, besides its epoch and settings.
TRAINING_STATE = ("epoch", "config", "model", "optimizer", "schedule", "scaler", "rng", "metrics")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """A run: a recipe (what the paper prescribes) plus where and how to run it."""

    recipe: Recipe
    out: str
    data_dir: str | None = None
    model_options: dict = field(default_factory=dict)   # SE options etc. for create_model
    lr: float | None = None           # absolute learning rate; None = the recipe's, scaled to batch_size
    amp: str | None = None            # "bf16", "fp16" or None
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    limit_train: int | None = None
    limit_val: int | None = None
    device: str = "auto"
    resume: bool = False
    workers: int = 2
    download: bool = False
    progress: bool = True

    # Fields that may differ between a run and its resumption.
    # A run folder may be moved or copied and resumed from its new place: ``out`` is where, not what.
    RESUMABLE = ("epochs", "resume", "progress", "workers", "device", "download", "data_dir", "out")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["recipe"] = {k: v for k, v in d["recipe"].items() if k not in ("paper", "ours", "explicit")}
        d["recipe"]["lr_milestones"] = list(d["recipe"]["lr_milestones"])
        return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one rank: what makes a resumed run repeat an uninterrupted one."""
    return (seed * 1_000_003 + (epoch + 1) * 7919 + rank * 104_729) % 2**63


class LRSchedule:
    """The learning rate as a function of training progress (epochs, fractional within an epoch).

    ``step``: multiplied by ``lr_gamma`` every ``lr_step_epochs``; ``multistep``: at ``lr_milestones``;
    ``cosine``: annealed to 0 over the run; ``plateau``: multiplied by ``lr_gamma`` when the validation
    loss has not improved for ``plateau_patience`` epochs, at most ``max_lr_drops`` times; ``constant``.
    A linear warm-up of ``warmup_epochs`` comes first.
    """

    def __init__(self, recipe: Recipe, base_lr: float):
        self.recipe, self.base_lr = recipe, base_lr
        self.best_loss = math.inf
        self.bad_epochs = 0
        self.drops = 0

    def lr_at(self, progress: float) -> float:
        r = self.recipe
        if r.schedule == "step":
            lr = self.base_lr * r.lr_gamma ** int(progress // r.lr_step_epochs)
        elif r.schedule == "multistep":
            lr = self.base_lr * r.lr_gamma ** sum(progress >= m for m in r.lr_milestones)
        elif r.schedule == "cosine":
            lr = 0.5 * self.base_lr * (1 + math.cos(math.pi * min(progress / r.epochs, 1.0)))
        elif r.schedule == "plateau":
            lr = self.base_lr * r.lr_gamma ** self.drops
        else:
            lr = self.base_lr
        if r.warmup_epochs > 0 and progress < r.warmup_epochs:
            lr *= (progress + 1e-8) / r.warmup_epochs
        return lr

    def observe(self, val_loss: float) -> None:
        """End of epoch: the plateau schedule watches the validation loss."""
        if self.recipe.schedule != "plateau":
            return
        if val_loss < self.best_loss * (1 - 1e-4):
            self.best_loss, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        can_drop = self.recipe.max_lr_drops is None or self.drops < self.recipe.max_lr_drops
        if self.bad_epochs > self.recipe.plateau_patience and can_drop:
            self.drops += 1
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "drops": self.drops}

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.bad_epochs, self.drops = state["best_loss"], state["bad_epochs"], state["drops"]


def _rng_state(device: torch.device) -> dict:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_rest": [int(pos), int(has_gauss), float(cached)]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_resumable(saved: dict, current: dict) -> None:
    diffs = []
    for key in set(saved) | set(current):
        if key in TrainConfig.RESUMABLE:
            continue
        if key == "recipe":
            for rk in set(saved["recipe"]) | set(current["recipe"]):
                if rk not in TrainConfig.RESUMABLE and saved["recipe"].get(rk) != current["recipe"].get(rk):
                    diffs.append(f"{rk}: {saved['recipe'].get(rk)!r} -> {current['recipe'].get(rk)!r}")
        elif key == "model_options":
            # Spelling out a default SE setting (reduction=16, ...) builds the same network.
            before, after = (SEConfig.without_defaults(d.get(key) or {}) for d in (saved, current))
            if before != after:
                diffs.append(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}")
        elif saved.get(key) != current.get(key):
            diffs.append(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}")
    if diffs:
        raise ValueError("cannot resume: the run in OUT was started with other settings (" + "; ".join(sorted(diffs))
                         + "). Only the number of epochs may change; use another --out for a new run")


def _bn_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def train(config: TrainConfig, model: nn.Module | None = None) -> list[dict]:
    """Run (or resume) a training run; returns the per-epoch metrics. ``model`` overrides the recipe's."""
    recipe = config.recipe
    check_amp(config.amp)
    env = distributed_from_env()
    device = resolve_device(config.device, env)
    if recipe.batch_size % env.world_size:
        raise ValueError(f"batch_size={recipe.batch_size} does not split over {env.world_size} processes")
    out = Path(config.out)

    if env.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        # The lock first: a live writer of the folder is what a second run must be told about.
        with run_lock(out, env.is_main):
            if has_checkpoint(out) and not config.resume:
                raise FileExistsError(f"{out} already holds a run ({out / CHECKPOINT}); pass --resume to continue "
                                      f"it or choose another --out")
            if config.resume and not has_checkpoint(out):
                raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {out}")
            return _run(config, model, env, device, out)
    finally:
        if env.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _run(config: TrainConfig, model: nn.Module | None, env: Distributed, device: torch.device,
         out: Path) -> list[dict]:
    recipe = config.recipe
    seed_everything(config.seed)
    loaders = build_loaders(recipe.dataset, config.data_dir, batch_size=recipe.batch_size // env.world_size,
                            device=device, seed=config.seed, limit_train=config.limit_train,
                            limit_val=config.limit_val, rank=env.rank, world_size=env.world_size,
                            workers=config.workers, download=config.download, cutout=recipe.cutout,
                            crop_size=recipe.crop_size, val_resize=recipe.val_resize,
                            image_size=recipe.image_size)
    info = loaders.info
    if model is None:
        options = dict(config.model_options)
        if recipe.se_bias is not None and model_entry(recipe.model).is_se:
            options.setdefault("se_bias", recipe.se_bias)
        model = create_model(recipe.model, num_classes=info.num_classes, in_chans=info.in_chans, **options)
        # Each layer's initial weights are a function of (seed, its name): a network and its
        # baseline start alike in every layer they share, so a seed pairs their runs.
        he_init(model, seed=config.seed)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    raw_model = model

    base_lr = config.lr if config.lr is not None else recipe.scaled_lr()
    optimizer = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov and recipe.momentum > 0,
                                weight_decay=recipe.weight_decay)
    schedule = LRSchedule(recipe, base_lr)
    scaler = grad_scaler(device, config.amp)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    metrics: list[dict] = []
    start_epoch = 0
    settings = config.as_dict()
    if config.resume:
        state = resume_checkpoint(out, device)
        missing = [k for k in TRAINING_STATE if not isinstance(state, dict) or k not in state]
        if missing:
            raise CheckpointError(f"{out / CHECKPOINT} is not a training checkpoint of this package (no "
                                  f"{', '.join(missing)}); start a new run in another --out")
        _check_resumable(state["config"], settings)
        load_state(raw_model, state["model"], str(out / CHECKPOINT))
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        _restore_rng(state["rng"], device)
        start_epoch, metrics = state["epoch"], list(state["metrics"])
        try:
            read_metrics(out)      # says so when a crash cut its last line; the checkpoint's rows replace it
        except ValueError as err:
            print(f"{err}; rewritten from the checkpoint", file=sys.stderr)
    if env.is_main and start_epoch < recipe.epochs:
        # config.json describes the run that trained: written when it starts, and on each resumption
        # that trains more epochs (kept under "resumed"). Reading a finished run back writes nothing.
        out.mkdir(parents=True, exist_ok=True)
        _write_metrics(out, metrics)          # drop lines of epochs the checkpoint does not hold
        now = provenance(device, env.world_size)
        record = {**settings, "provenance": now, "dataset": asdict(info),
                  "train_images": loaders.train_size, "val_images": loaders.val_size}
        before = _read_config(out) if config.resume else None
        if before is not None:
            record["provenance"] = before["provenance"]
            record["resumed"] = before.get("resumed", []) + [{**now, "from_epoch": start_epoch}]
        atomic_write_text(out / CONFIG, json.dumps(record, indent=2, default=str) + "\n")

    if env.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    # Evaluation runs the network uncompiled: an eval-mode graph (and the last, smaller batch) would
    # each cost a compilation for a pass that is a small part of the run.
    eval_model = model
    if config.compile:
        model = torch.compile(model)

    with stop_on_signals() as stop:
        return _epochs(config, model, raw_model, eval_model, loaders, optimizer, schedule, scaler, criterion,
                       device, env, out, start_epoch, metrics, settings, stop)


def _epochs(config, model, raw_model, eval_model, loaders, optimizer, schedule, scaler, criterion, device, env,
            out, start_epoch, metrics, settings, stop) -> list[dict]:
    recipe = config.recipe
    for epoch in range(start_epoch, recipe.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch, env.rank))
        loaders.train.set_epoch(epoch)
        model.train()
        if epoch >= recipe.epochs - recipe.freeze_bn_epochs:
            for bn in _bn_modules(raw_model):     # Appendix (f): BN frozen for the last epochs
                bn.eval()
        start = time.perf_counter()
        train_stats = _train_epoch(model, raw_model, loaders.train, optimizer, schedule, scaler, criterion,
                                   device, config, epoch, env, recipe, stop)
        seconds = time.perf_counter() - start
        val = evaluate(eval_model, loaders.val, device, config.amp, config.channels_last, env.enabled)
        eval_seconds = time.perf_counter() - start - seconds
        schedule.observe(val["loss"])
        row = {"epoch": epoch + 1, "train_loss": train_stats["loss"], "train_top1_err": train_stats["top1_err"],
               "val_loss": val["loss"], "val_top1_err": val["top1_err"], "val_top5_err": val["top5_err"],
               "lr": train_stats["lr"], "epoch_seconds": seconds, "eval_seconds": eval_seconds,
               "images_per_second": train_stats["images"] / seconds, "train_images": train_stats["images"],
               "val_images": val["images"]}
        metrics.append(row)
        if env.is_main:
            _write_metrics(out, metrics)
            save_checkpoint({"epoch": epoch + 1, "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                             "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                             "rng": _rng_state(device), "config": settings, "metrics": metrics}, out)
            if config.progress:
                print(f"epoch {epoch + 1}/{recipe.epochs}: train loss {row['train_loss']:.4f}, val top-1 err "
                      f"{row['val_top1_err']:.2f} %, top-5 err {row['val_top5_err']:.2f} %, "
                      f"{row['images_per_second']:.0f} images/s", flush=True)
        if env.enabled:
            dist.barrier()
    return metrics


def _train_epoch(model, raw_model, loader, optimizer, schedule, scaler, criterion, device, config, epoch, env,
                 recipe, stop) -> dict:
    steps = len(loader)
    frozen_bn = epoch >= recipe.epochs - recipe.freeze_bn_epochs
    bn_params = [p for m in _bn_modules(raw_model) for p in m.parameters()] if frozen_bn else []
    # Sums stay on the device: no host synchronisation per step on a GPU.
    totals = torch.zeros(3, dtype=torch.float64, device=device)      # loss sum, top-1 hits, images
    check_every = 1 if device.type == "cpu" else 50
    show = config.progress and env.is_main
    bar = progress_bar(loader, show=show, total=steps, desc=f"epoch {epoch + 1}/{recipe.epochs}")
    lr = optimizer.param_groups[0]["lr"]
    for step, (images, labels) in enumerate(bar):
        if stop:
            raise TrainingStopped(_stopped_message(config, stop[0], epoch, step, steps), stop[0])
        lr = schedule.lr_at(epoch + step / steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, config.amp):
            logits = model(images)
            loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for p in bn_params:
            p.grad = None
        scaler.step(optimizer)
        scaler.update()
        n = labels.numel()
        totals += torch.stack([loss.detach().double() * n, (logits.argmax(1) == labels).sum().double(),
                               torch.tensor(float(n), dtype=torch.float64, device=device)])
        if (step + 1) % check_every == 0 or step + 1 == steps:
            if not torch.isfinite(totals[0]):
                raise NonFiniteLossError(_non_finite_message(config, epoch, step, loss))
            if show and (step + 1) % 10 == 0:
                bar.set_postfix(loss=f"{(totals[0] / totals[2]).item():.3f}", lr=f"{lr:.3g}")
    if env.enabled:
        dist.all_reduce(totals)
    loss_sum, hits, images = totals.tolist()
    return {"loss": loss_sum / images, "top1_err": 100.0 * (1 - hits / images), "images": int(images), "lr": lr}


def _non_finite_message(config: TrainConfig, epoch: int, step: int, loss: torch.Tensor) -> str:
    path = Path(config.out) / CHECKPOINT
    kept = (f"the last good checkpoint ({path}, after epoch {epoch}) is kept: lower the learning rate and "
            f"resume from it" if path.exists() else "no checkpoint was written yet")
    return (f"training stopped: the loss became {loss.item()} in epoch {epoch + 1}, step {step + 1}; {kept}")


def _read_config(out: Path) -> dict | None:
    """The run's config.json, or None (with a notice) when it is missing or damaged: it is rewritten."""
    try:
        before = json.loads((out / CONFIG).read_text())
    except FileNotFoundError:
        return None
    except ValueError:        # not JSON (UnicodeDecodeError is one too)
        before = None
    if isinstance(before, dict) and "provenance" in before:
        return before
    print(f"{out / CONFIG} is damaged; it is written again from the checkpoint's settings", file=sys.stderr)
    return None


def _stopped_message(config: TrainConfig, signum: int, epoch: int, step: int, steps: int) -> str:
    kept = (f"the checkpoint after epoch {epoch} is kept: run the same command with --resume to continue"
            if epoch else "no epoch had finished, so there is nothing to resume: start it again")
    return (f"stopped by {signal.Signals(signum).name} in epoch {epoch + 1} of {config.recipe.epochs}, after step "
            f"{step} of {steps}; {kept}")


def _write_metrics(out: Path, metrics: list[dict]) -> None:
    atomic_write_text(out / METRICS, "".join(json.dumps(row) + "\n" for row in metrics))
