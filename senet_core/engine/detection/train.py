"""Training Faster R-CNN with a (SE-)ResNet trunk on COCO by Table 7's protocol: SGD with
Detectron's step schedule, warm-up and bias rule, one process at any batch size (Section 5.3)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..recipes import TABLE7_RECIPE, check_positive_int
from ..runtime import METRICS, atomic_save, autocast, grad_scaler, resolve_device, run_lock
from .coco import CocoDetection, coco_loader
from .detector import build_detector
from .evaluate import evaluate_detection

DETECTOR_CHECKPOINT = "detector.pt"   # in a detection run's folder, beside METRICS


def _sgd_with_detectron_bias_rule(model: nn.Module, lr: float, momentum: float, weight_decay: float,
                                  bias_lr_factor: float, bias_weight_decay: float) -> torch.optim.SGD:
    weights, biases = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (biases if name.endswith(".bias") else weights).append(parameter)
    groups = [{"params": weights, "lr": lr, "weight_decay": weight_decay}]
    if biases:
        groups.append({"params": biases, "lr": lr * bias_lr_factor, "weight_decay": bias_weight_decay})
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _step_schedule(total_iterations: int, milestones: Sequence[float], gamma: float, warmup_iters: int,
                   warmup_factor: float):
    """Detectron's ``steps_with_decay`` with linear warm-up, as a multiplier of the base learning rate."""
    steps = sorted(round(m * total_iterations) for m in milestones)

    def multiplier(iteration: int) -> float:
        decay = gamma ** sum(iteration >= step for step in steps)
        if iteration < warmup_iters:
            alpha = iteration / warmup_iters
            return decay * (warmup_factor * (1 - alpha) + alpha)
        return decay
    return multiplier


def train_detection(model_name: str, data_dir: str | os.PathLike, out: str | os.PathLike,
                    train_split: str = TABLE7_RECIPE.train_split, val_split: str | None = TABLE7_RECIPE.val_split,
                    epochs: int = TABLE7_RECIPE.epochs_for(117_266), batch_size: int = 2,
                    lr: float | None = None, momentum: float = TABLE7_RECIPE.momentum,
                    weight_decay: float = TABLE7_RECIPE.weight_decay,
                    lr_milestones: Sequence[float] = TABLE7_RECIPE.lr_milestones,
                    lr_gamma: float = TABLE7_RECIPE.lr_gamma, warmup_iters: int | None = None,
                    warmup_factor: float = TABLE7_RECIPE.warmup_factor,
                    bias_lr_factor: float = TABLE7_RECIPE.bias_lr_factor,
                    bias_weight_decay: float = TABLE7_RECIPE.bias_weight_decay,
                    device: str = "cpu", seed: int = 0, limit_train: int | None = None, limit_val: int | None = None,
                    pretrained_backbone: str | None = None, fpn: bool = True,
                    min_size: int = TABLE7_RECIPE.min_size, max_size: int = TABLE7_RECIPE.max_size,
                    trainable_layers: int = TABLE7_RECIPE.trainable_layers, amp: str | None = None,
                    num_workers: int = 2, eval_every: int = 0, log_every: int = 0,
                    **backbone_options) -> dict:
    """Train Faster R-CNN with a (SE-)ResNet trunk on COCO with SGD, then score it (Table 7).

    The defaults are :data:`TABLE7_RECIPE` (Detectron's 2x) for one process: 25 epochs of
    train2017 (the images of 180k steps of 16), the learning rate divided by 10 at 2/3 and 8/9 of
    training, warm-up, momentum 0.9, weight decay 1e-4, doubled bias learning rate without decay.

    Args:
        model_name: the trunk, a registered ResNet-family model (``"se_resnet50"``, ...).
        data_dir: the COCO root; out: the run folder (``metrics.jsonl``, ``detector.pt``).
        train_split, val_split: COCO splits to train on and to score (``None``: no scoring).
        epochs: passes over the training split; the schedule is stretched to fit them.
        batch_size: images per SGD step.
        lr: base learning rate; ``None`` applies Detectron's linear rule, 0.02 x batch_size / 16.
        momentum, weight_decay: SGD's.
        lr_milestones: fractions of training at which the learning rate is multiplied by ``lr_gamma``.
        warmup_iters: linear warm-up steps from ``warmup_factor`` x lr; ``None``: Detectron's 500
            steps of 16 images, rescaled to ``batch_size``.
        bias_lr_factor, bias_weight_decay: Detectron's treatment of biases (2x lr, no decay).
        device: ``"cpu"`` or ``"cuda"``; amp: ``None``, ``"bf16"`` or ``"fp16"``.
        seed: seeds initialisation, shuffling and flips.
        limit_train, limit_val: use only the first N images of the training / validation split (smoke runs).
        pretrained_backbone, fpn, min_size, max_size, trainable_layers, backbone_options: see
            :func:`build_detector`.
        num_workers: data-loading workers.
        eval_every: also score ``val_split`` every this many epochs (0: after the last only).
        log_every: print the running loss every this many steps (0: silent).

    Each epoch appends a line to ``out/metrics.jsonl`` (mean losses, learning rate, time and,
    when scored, AP) and rewrites ``out/detector.pt`` atomically (temp file + ``os.replace``).
    Returns the last epoch's record plus ``checkpoint``.
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive_int("limit_train", limit_train, optional=True)
    check_positive_int("limit_val", limit_val, optional=True)
    if not isinstance(eval_every, int) or eval_every < 0 or not isinstance(log_every, int) or log_every < 0:
        raise ValueError(f"eval_every and log_every must be integers >= 0, got {eval_every!r}, {log_every!r}")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if any(not 0 < m <= 1 for m in lr_milestones):
        raise ValueError(f"lr_milestones are fractions of training in (0, 1], got {tuple(lr_milestones)!r}")
    if not isinstance(train_split, str) or not train_split:
        raise ValueError(f"train_split must name a COCO split such as 'train2017', got {train_split!r}")
    if val_split is not None and (not isinstance(val_split, str) or not val_split):
        raise ValueError(f"val_split must name a COCO split such as 'val2017' or be None, got {val_split!r}")
    run_device = resolve_device(device)
    autocast(run_device, amp)
    lr = TABLE7_RECIPE.lr_for(batch_size) if lr is None else lr
    warmup_iters = TABLE7_RECIPE.warmup_iters_for(batch_size) if warmup_iters is None else warmup_iters

    torch.manual_seed(seed)
    dataset = CocoDetection(data_dir, train_split, train=True, limit=limit_train)
    if not len(dataset):
        raise ValueError(f"{train_split} has no image with a (non-crowd) box to train on")
    if val_split is not None:
        CocoDetection(data_dir, val_split, train=False, limit=1)   # fail now, not after training
    model = build_detector(model_name, dataset.num_classes, pretrained_backbone=pretrained_backbone, fpn=fpn,
                           min_size=min_size, max_size=max_size, trainable_layers=trainable_layers,
                           **backbone_options)
    model.category_ids = dataset.category_ids
    model.to(run_device).train()

    loader = coco_loader(dataset, batch_size, True, num_workers, seed, run_device)
    total_iterations = epochs * len(loader)
    optimizer = _sgd_with_detectron_bias_rule(model, lr, momentum, weight_decay, bias_lr_factor, bias_weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _step_schedule(total_iterations, lr_milestones, lr_gamma, warmup_iters, warmup_factor))
    scaler = grad_scaler(run_device, amp)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_file, checkpoint_file = out_dir / METRICS, out_dir / DETECTOR_CHECKPOINT
    settings = dict(model=model_name, train_split=train_split, val_split=val_split, epochs=epochs,
                    batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                    lr_milestones=list(lr_milestones), lr_gamma=lr_gamma, warmup_iters=warmup_iters,
                    warmup_factor=warmup_factor, bias_lr_factor=bias_lr_factor,
                    bias_weight_decay=bias_weight_decay, seed=seed, limit_train=limit_train, limit_val=limit_val,
                    amp=amp, pretrained_backbone=pretrained_backbone, num_train_images=len(dataset))
    # One writer per run folder: a second process training into it stops at once, naming the holder.
    with run_lock(out_dir):
        iteration, record = 0, {}
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            loss_sums: dict[str, float] = {}
            for images, targets in loader:
                images = [image.to(run_device, non_blocking=True) for image in images]
                targets = [{k: v.to(run_device, non_blocking=True) for k, v in t.items()} for t in targets]
                with autocast(run_device, amp):
                    losses = model(images, targets)
                loss = sum(losses.values())
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite detection loss at epoch {epoch}, step {iteration}: "
                                             + ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items()))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                lr_used = optimizer.param_groups[0]["lr"]
                scheduler.step()
                iteration += 1
                for name, value in losses.items():
                    loss_sums[name] = loss_sums.get(name, 0.0) + value.item()
                loss_sums["loss"] = loss_sums.get("loss", 0.0) + loss.item()
                if log_every and iteration % log_every == 0:
                    print(f"epoch {epoch} step {iteration}/{total_iterations} loss {loss.item():.4f} "
                          f"lr {lr_used:.5g}", flush=True)
            steps = len(loader)
            record = {"epoch": epoch, "iterations": iteration, "lr": lr_used,
                      **{name: total / steps for name, total in loss_sums.items()},
                      "train_seconds": round(time.perf_counter() - started, 3)}
            if val_split is not None and (epoch == epochs or (eval_every and epoch % eval_every == 0)):
                scores = evaluate_detection(model, data_dir, val_split, batch_size=batch_size, device=device,
                                            limit_val=limit_val, amp=amp, num_workers=num_workers)
                scores.pop("split")
                record["eval_seconds"] = scores.pop("seconds")
                record.update(scores)
                model.train()
            atomic_save({"model": model.state_dict(), "build_options": model.build_options,
                          "category_ids": dataset.category_ids, "epoch": epoch, "iterations": iteration,
                          "settings": settings}, checkpoint_file)
            with metrics_file.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
    return {**record, "checkpoint": str(checkpoint_file)}
