"""Scoring a detector on a COCO split with the official COCO API: Table 7's AP and AP@0.5."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from ..recipes import check_positive_int
from ..runtime import atomic_write_text, autocast, check_amp, resolve_device
from .coco import CocoDetection, coco_ap, coco_loader, detections_to_coco
from .detector import load_detector


@torch.no_grad()
def evaluate_detection(model: nn.Module | str | os.PathLike, data_dir: str | os.PathLike, split: str = "val2017",
                       batch_size: int = 2, device: str = "cpu", limit_val: int | None = None,
                       amp: str | None = None, num_workers: int = 2,
                       out: str | os.PathLike | None = None) -> dict:
    """COCO box AP and AP@0.5 of a detector on one split (Table 7's columns; minival = ``val2017``).

    Args:
        model: a detector from :func:`build_detector`, or the path of a checkpoint written by
            :func:`train_detection`.
        data_dir: the COCO root (``annotations/`` and one folder of images per split).
        split: the split to score.
        batch_size, num_workers: inference batching and data-loading workers.
        device: ``"cpu"`` or ``"cuda"``; amp: ``None``, ``"bf16"`` or ``"fp16"``.
        limit_val: score only the first ``limit_val`` images (by id).
        out: if given, a folder to write the COCO-format detections ``detections_{split}.json`` to.

    Returns ``{"split", "num_images", "num_detections", "ap", "ap50", "ap75", "ap_small",
    "ap_medium", "ap_large", "seconds"}`` with APs in percent.
    """
    check_positive_int("batch_size", batch_size)
    run_device = resolve_device(device)
    check_amp(amp)   # validate before the dataset is read
    if isinstance(model, (str, os.PathLike)):
        model = load_detector(model, map_location="cpu")
    dataset = CocoDetection(data_dir, split, train=False, limit=limit_val)
    predicted_classes = model.roi_heads.box_predictor.cls_score.out_features
    if predicted_classes != dataset.num_classes:
        raise ValueError(f"the detector predicts {predicted_classes} classes (with background) but {split} has "
                         f"{dataset.num_classes} ({len(dataset.category_ids)} categories + background)")
    trained_on = getattr(model, "category_ids", None)
    if trained_on and list(trained_on) != dataset.category_ids:
        raise ValueError(f"the detector was trained on categories {trained_on}, but {split} has "
                         f"{dataset.category_ids}: its labels would be scored as the wrong classes")

    was_training = model.training
    model.to(run_device).eval()
    started = time.perf_counter()
    detections: list[dict] = []
    for images, targets in coco_loader(dataset, batch_size, False, num_workers, 0, run_device):
        images = [image.to(run_device, non_blocking=True) for image in images]
        with autocast(run_device, amp):
            outputs = model(images)
        image_ids = [int(t["image_id"]) for t in targets]
        detections.extend(detections_to_coco(outputs, image_ids, dataset.category_ids))
    model.train(was_training)

    metrics = coco_ap(dataset.coco, detections, dataset.image_ids)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / f"detections_{split}.json", json.dumps(detections))
    return {"split": split, "num_images": len(dataset), "num_detections": len(detections), **metrics,
            "seconds": round(time.perf_counter() - started, 3)}
