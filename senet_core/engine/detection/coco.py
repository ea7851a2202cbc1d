"""COCO for Table 7 (Section 5.3): a split in the standard layout as a detection dataset, and its
official box AP (pycocotools' ``COCOeval``)."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor

from ..recipes import check_positive_int

COCO_DOWNLOAD_HINT = (
    "Get COCO from https://cocodataset.org/#download: the 2017 Train and Val images and the "
    "2017 Train/Val annotations. Unzip them into DATA_DIR so that DATA_DIR/annotations/"
    "instances_train2017.json, DATA_DIR/train2017/ and DATA_DIR/val2017/ exist "
    "(train2017 = the paper's 80k train + 35k val-minus-minival, val2017 = its 5k minival).")


def _load_coco(annotation_file: Path):
    try:
        from pycocotools.coco import COCO   # local: the COCO API is needed by the detection path only
    except ImportError as error:
        raise ImportError("COCO reading and scoring need pycocotools: pip install pycocotools") from error
    with contextlib.redirect_stdout(io.StringIO()):   # COCO() prints progress lines
        return COCO(str(annotation_file))


def coco_to_target(annotations: Sequence[dict], width: int, height: int, category_to_label: dict[int, int],
                   skip_crowd: bool = True) -> dict[str, torch.Tensor]:
    """COCO annotations of one image as a torchvision detection target.

    Boxes go from COCO's ``[x, y, w, h]`` to ``[x1, y1, x2, y2]`` (float32), clipped to the image;
    empty boxes are dropped. ``labels`` (int64) are the contiguous labels 1..K of
    ``category_to_label`` (0 is the background). Crowd regions are skipped when ``skip_crowd``
    (training: they are neither objects nor background; COCOeval ignores matches to them).
    """
    boxes, labels, areas, crowd = [], [], [], []
    for annotation in annotations:
        if skip_crowd and annotation.get("iscrowd", 0):
            continue
        x, y, w, h = annotation["bbox"]
        x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
        x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
        if x2 <= x1 or y2 <= y1:
            continue
        boxes.append([x1, y1, x2, y2])
        labels.append(category_to_label[annotation["category_id"]])
        areas.append(float(annotation.get("area", w * h)))
        crowd.append(int(annotation.get("iscrowd", 0)))
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "area": torch.tensor(areas, dtype=torch.float32),
        "iscrowd": torch.tensor(crowd, dtype=torch.int64),
    }


class CocoDetection(Dataset):
    """A COCO split in the standard layout: ``DATA_DIR/annotations/instances_{split}.json`` + ``DATA_DIR/{split}/``.

    Items are ``(image, target)``: a float RGB tensor (3, H, W) in [0, 1] (the detector normalises
    it) and the dict of :func:`coco_to_target` plus ``image_id``. With ``train=True`` crowd boxes are
    skipped, images without a box are left out (as Detectron does) and images are flipped
    horizontally with probability 0.5, the only augmentation of Detectron's recipe.

    ``category_ids[label - 1]`` is the COCO category id of a label; ``num_classes`` counts the
    background. ``limit`` keeps the first ``limit`` images by id (smoke runs).
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
        self.coco = _load_coco(self.annotation_file)
        self.category_ids = sorted(self.coco.cats)
        self.category_to_label = {cat: label for label, cat in enumerate(self.category_ids, start=1)}
        image_ids = sorted(self.coco.imgs)
        if train:
            image_ids = [i for i in image_ids if len(self._target(i)["boxes"])]
        self.image_ids = image_ids[:limit] if limit else image_ids

    @property
    def num_classes(self) -> int:
        return len(self.category_ids) + 1

    def _target(self, image_id: int) -> dict[str, torch.Tensor]:
        info = self.coco.imgs[image_id]
        return coco_to_target(self.coco.imgToAnns.get(image_id, []), info["width"], info["height"],
                              self.category_to_label, skip_crowd=self.train)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_id = self.image_ids[index]
        # PIL, not torchvision.io, whose decoders are deprecated from torchvision 0.29 on; RGB turns
        # COCO's few grayscale images into three channels.
        with Image.open(self.images_dir / self.coco.imgs[image_id]["file_name"]) as picture:
            image = pil_to_tensor(picture.convert("RGB")).float().div_(255)
        target = self._target(image_id)
        target["image_id"] = torch.tensor(image_id, dtype=torch.int64)
        if self.train and torch.rand(()) < 0.5:
            width = image.shape[-1]
            image = image.flip(-1)
            boxes = target["boxes"].clone()
            boxes[:, 0], boxes[:, 2] = width - target["boxes"][:, 2], width - target["boxes"][:, 0]
            target["boxes"] = boxes
        return image, target


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
