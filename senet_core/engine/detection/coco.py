"""COCO for Table 7 (Section 5.3): a split in the standard layout as a detection dataset, read by
torchvision (``CocoDetection`` wrapped for the v2 transforms), and its official box AP
(pycocotools' ``COCOeval``)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, tv_tensors
from torchvision.transforms import v2

from ..recipes import check_positive_int

COCO_DOWNLOAD_HINT = (
    "Get COCO from https://cocodataset.org/#download: the 2017 Train and Val images and the "
    "2017 Train/Val annotations. Unzip them into DATA_DIR so that DATA_DIR/annotations/"
    "instances_train2017.json, DATA_DIR/train2017/ and DATA_DIR/val2017/ exist "
    "(train2017 = the paper's 80k train + 35k val-minus-minival, val2017 = its 5k minival).")

# What torchvision's COCO wrapper keeps of each annotation, beside the image.
_TARGET_KEYS = {"image_id", "boxes", "labels", "area", "iscrowd"}
# Boxes narrower or shorter than this many pixels are dropped (SanitizeBoundingBoxes), and an image
# has a box to train on only if one of its boxes is at least this large.
MIN_BOX_SIZE = 1.0


def _require_pycocotools() -> None:
    """torchvision reads COCO with pycocotools, an extra of the detection path: say so if it is missing."""
    if importlib.util.find_spec("pycocotools") is None:
        raise ImportError("COCO reading and scoring need pycocotools: pip install pycocotools")


class DetectionTarget:
    """The last step of turning torchvision's COCO target into the detector's: COCO's category ids
    become the contiguous labels 1..K of ``category_to_label`` (0 is the background), crowd regions
    are dropped when ``skip_crowd`` (training: they are neither objects nor background; COCOeval
    ignores matches to them), boxes become float32, and an image without annotations gets empty
    tensors (torchvision's wrapper gives it only its ``image_id``)."""

    def __init__(self, category_to_label: dict[int, int], skip_crowd: bool):
        self.category_to_label, self.skip_crowd = dict(category_to_label), skip_crowd

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        image_id = torch.tensor(target["image_id"], dtype=torch.int64)
        if "boxes" not in target:
            boxes = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=tuple(image.shape[-2:]))
            empty = torch.zeros(0, dtype=torch.int64)
            return image, {"image_id": image_id, "boxes": boxes, "labels": empty, "area": torch.zeros(0),
                           "iscrowd": empty}
        crowd = torch.as_tensor(target["iscrowd"], dtype=torch.int64)
        keep = crowd == 0 if self.skip_crowd else torch.ones_like(crowd, dtype=torch.bool)
        labels = torch.tensor([self.category_to_label[c] for c in target["labels"].tolist()], dtype=torch.int64)
        boxes = target["boxes"]
        return image, {"image_id": image_id, "boxes": tv_tensors.wrap(boxes[keep].to(torch.float32), like=boxes),
                       "labels": labels[keep], "area": torch.as_tensor(target["area"], dtype=torch.float32)[keep],
                       "iscrowd": crowd[keep]}


def _per_box(sample: tuple) -> tuple[torch.Tensor, ...]:
    """The target's tensors with one entry per box, which ``SanitizeBoundingBoxes`` filters with the boxes."""
    target = sample[1]
    return target["labels"], target["area"], target["iscrowd"]


def detection_transforms(category_to_label: dict[int, int], train: bool) -> v2.Compose:
    """torchvision's v2 pipeline from a COCO image and target to the detector's input: an RGB float
    image in [0, 1] (the detector normalises it), boxes clamped to the image, a horizontal flip with
    probability 0.5 when training (the only augmentation of Detectron's recipe), and boxes under one
    pixel wide or high dropped with their labels (``SanitizeBoundingBoxes``)."""
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
             DetectionTarget(category_to_label, skip_crowd=train), v2.ClampBoundingBoxes()]
    if train:
        steps.append(v2.RandomHorizontalFlip(0.5))
    steps.append(v2.SanitizeBoundingBoxes(min_size=MIN_BOX_SIZE, labels_getter=_per_box))
    return v2.Compose(steps)


def _has_box(annotations: Sequence[dict]) -> bool:
    """Whether an image has a box to train on: a non-crowd annotation at least :data:`MIN_BOX_SIZE` wide and high."""
    return any(not a.get("iscrowd", 0) and min(a["bbox"][2:]) >= MIN_BOX_SIZE for a in annotations)


class CocoDetection(Dataset):
    """A COCO split in the standard layout: ``DATA_DIR/annotations/instances_{split}.json`` + ``DATA_DIR/{split}/``.

    torchvision reads it (``torchvision.datasets.CocoDetection`` wrapped by
    ``wrap_dataset_for_transforms_v2``) and :func:`detection_transforms` prepares each item:
    ``(image, target)`` with a float RGB image (3, H, W) in [0, 1] and a target of ``boxes``
    (xyxy, float32), ``labels`` (int64, 1..K), ``area``, ``iscrowd`` and ``image_id``. With
    ``train=True`` crowd boxes are skipped, images without a box are left out (as Detectron does)
    and images are flipped horizontally with probability 0.5.

    ``category_ids[label - 1]`` is the COCO category id of a label; ``num_classes`` counts the
    background. ``limit`` keeps the first ``limit`` images by id (smoke runs). ``coco`` is the
    split's pycocotools ``COCO``, which scoring uses.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str, train: bool = False, limit: int | None = None):
        if not isinstance(split, str) or not split:
            raise ValueError(f"split must name a COCO split such as 'train2017' or 'val2017', got {split!r}")
        check_positive_int("limit", limit, optional=True)
        self.data_dir, self.split, self.train = Path(data_dir), split, train
        self.annotation_file = self.data_dir / "annotations" / f"instances_{split}.json"
        self.images_dir = self.data_dir / split
        missing = [p for p in (self.annotation_file, self.images_dir) if not p.exists()]
        if missing:
            found = sorted(p.name[len("instances_"):-len(".json")]
                           for p in (self.data_dir / "annotations").glob("instances_*.json"))
            have = f" Splits found there: {', '.join(found)}." if found else ""
            raise FileNotFoundError(f"COCO split {split!r} not found: looked for {self.annotation_file} and "
                                    f"{self.images_dir}; missing {', '.join(map(str, missing))}.{have} "
                                    f"{COCO_DOWNLOAD_HINT}")
        _require_pycocotools()
        with contextlib.redirect_stdout(io.StringIO()):   # pycocotools' COCO() prints progress lines
            split_data = datasets.CocoDetection(str(self.images_dir), str(self.annotation_file))
        self.coco = split_data.coco
        self.category_ids = sorted(self.coco.cats)
        self.category_to_label = {cat: label for label, cat in enumerate(self.category_ids, start=1)}
        split_data.transforms = detection_transforms(self.category_to_label, train)
        self._items = datasets.wrap_dataset_for_transforms_v2(split_data, target_keys=_TARGET_KEYS)
        image_ids = list(split_data.ids)   # torchvision's order: sorted by id
        if train:
            image_ids = [i for i in image_ids if _has_box(self.coco.imgToAnns.get(i, []))]
        self.image_ids = image_ids[:limit] if limit else image_ids
        position = {image_id: index for index, image_id in enumerate(split_data.ids)}
        self._positions = [position[i] for i in self.image_ids]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids) + 1

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._items[self._positions[index]]


def collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Detection batches stay lists: images differ in size and the detector batches them itself."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def coco_loader(dataset: CocoDetection, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                device: torch.device) -> DataLoader:
    """Batches of ``dataset`` as lists (:func:`collate`); ``seed`` fixes the shuffled order."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate,
        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda",
        persistent_workers=False)


# ---- COCO metrics -----------------------------------------------------------------------------------
_COCO_STATS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def detections_to_coco(outputs: Sequence[dict[str, torch.Tensor]], image_ids: Sequence[int],
                       category_ids: Sequence[int]) -> list[dict]:
    """torchvision detections (``boxes`` xyxy, ``labels`` 1..K, ``scores``) as COCO result records (xywh)."""
    records = []
    for output, image_id in zip(outputs, image_ids):
        boxes = output["boxes"].detach().float().cpu()
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        for box, label, score in zip(xywh, output["labels"].tolist(), output["scores"].detach().float().tolist()):
            records.append({"image_id": int(image_id), "category_id": int(category_ids[label - 1]),
                            "bbox": [round(v, 3) for v in box], "score": round(score, 5)})
    return records


def coco_ap(coco_gt, detections: list[dict], image_ids: Sequence[int] | None = None) -> dict[str, float | None]:
    """COCO box AP of ``detections`` against ``coco_gt`` (a ``pycocotools`` COCO), in percent.

    ``ap`` is AP averaged over IoU 0.50:0.95, ``ap50`` AP at IoU 0.5 (Table 7's two columns);
    also ``ap75`` and AP by object size (``None`` for a size with no ground truth). ``image_ids``
    restricts scoring to those images (the rest of the annotation file is ignored). No detections
    at all scores 0.
    """
    from pycocotools.cocoeval import COCOeval   # local: the COCO API is needed by the detection path only

    image_ids = sorted(coco_gt.imgs) if image_ids is None else sorted(int(i) for i in image_ids)
    if not any(coco_gt.imgToAnns.get(i) for i in image_ids):
        raise ValueError("the evaluated images have no ground-truth boxes, so COCO AP is undefined")
    if not detections:   # loadRes cannot take an empty list
        return {name: 0.0 for name in _COCO_STATS}
    with contextlib.redirect_stdout(io.StringIO()):   # pycocotools reports on stdout
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval reports -1 where a size range has no ground truth: that is "undefined", not 0, and
    # None (JSON null) keeps metrics.jsonl strict JSON where NaN would not.
    return {name: (100.0 * float(v) if v >= 0 else None) for name, v in zip(_COCO_STATS, evaluator.stats)}
