"""Single-crop evaluation: top-1 and top-5 error in %, as every accuracy table of the paper reports them."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..models import create_model, model_entry
from ..models.weights import CheckpointError, load_file, load_state
from ..progress import progress_bar
from .data import build_loaders, dataset_info
from .runtime import CHECKPOINT, autocast, resolve_device


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, amp: str | None = None,
             channels_last: bool = False, distributed: bool = False, progress: bool = False) -> dict:
    """Loss and top-1/top-5 error (%) of ``model`` over ``loader``.

    With ``distributed=True`` each rank evaluates its shard and the sums are all-reduced, so every rank
    returns the totals over the whole split (shards must not overlap). ``progress`` shows a bar over
    the batches on a terminal (training evaluates every epoch under its own bar, without one).
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)   # loss sum, top-1 hits, top-5 hits, images
    batches = progress_bar(loader, show=progress, desc="eval", unit="batch")
    try:
        for images, labels in batches:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(images)
            logits = logits.float()
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hits = top == labels[:, None]
            totals += torch.stack([
                F.cross_entropy(logits, labels, reduction="sum").double(),
                hits[:, 0].sum().double(),
                hits.any(dim=1).sum().double(),
                torch.tensor(float(labels.numel()), dtype=torch.float64, device=device),
            ])
    finally:
        batches.close()
        model.train(was_training)
    if distributed:
        dist.all_reduce(totals)
    loss, top1, top5, count = totals.tolist()
    if count == 0:
        raise ValueError("the evaluation split is empty")
    return {"loss": loss / count, "top1_err": 100.0 * (1 - top1 / count),
            "top5_err": 100.0 * (1 - top5 / count), "images": int(count)}


def evaluate_run(*, model: str | None = None, checkpoint: str | None = None, pretrained: str | None = None,
                 dataset: str | None = None, data_dir: str | None = None, batch_size: int = 100,
                 crop_size: int | None = None, resize: int | None = None, device: str = "auto",
                 amp: str | None = None, limit_val: int | None = None, workers: int = 2,
                 download: bool = False, progress: bool = False) -> dict:
    """Single-crop error of a training run's checkpoint, or of a model with released weights.

    ImageNet-style datasets are evaluated with a centre crop of ``crop_size`` (default: the model's input
    size, 224 or 299) after resizing the shorter side to ``resize`` (default: ``crop_size * 8 / 7``, i.e.
    256 for 224; the paper uses 352 for Inception-ResNet-v2's 299). ``progress`` shows a bar over the
    validation batches on a terminal.
    """
    if (checkpoint is None) == (model is None):
        raise ValueError("give either --checkpoint (a training run) or --model (with --pretrained weights)")
    dev = resolve_device(device)
    state = None
    options: dict = {}
    if checkpoint is not None:
        path = Path(checkpoint)
        path = path / CHECKPOINT if path.is_dir() else path
        state = load_file(path)
        if not isinstance(state, dict) or not {"config", "model"} <= set(state):
            raise CheckpointError(f"{str(path)!r} is not a training run's checkpoint (it has no 'config' and "
                                  f"'model'); for other weights use --model NAME --pretrained {path}")
        recipe = state["config"]["recipe"]
        model = recipe["model"]
        options = dict(state["config"]["model_options"])
        if recipe.get("se_bias") is not None and model_entry(model).is_se:
            options.setdefault("se_bias", recipe["se_bias"])
        dataset = dataset or recipe["dataset"]
        crop_size = crop_size or recipe.get("crop_size")
    dataset = dataset or "imagenet"
    info = dataset_info(dataset)
    if dataset in ("imagenet", "places365"):
        crop_size = crop_size or model_entry(model).input_size[1]
        resize = resize or round(crop_size * 8 / 7)
    net = create_model(model, num_classes=info.num_classes, in_chans=info.in_chans, pretrained=pretrained,
                       **options)
    if state is not None:
        load_state(net, state["model"], str(checkpoint))
    net = net.to(dev)
    loaders = build_loaders(dataset, data_dir, batch_size=batch_size, device=dev, limit_val=limit_val,
                            workers=workers, download=download, crop_size=crop_size, val_resize=resize)
    result = evaluate(net, loaders.val, dev, amp, progress=progress)
    return {"model": model, "dataset": dataset, "crop_size": crop_size or info.input_size, "resize": resize,
            "weights": checkpoint or pretrained or "random initialisation", **result}
