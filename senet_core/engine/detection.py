"""Object detection on COCO with SE-ResNet trunks (Section 5.3, Table 7).

The paper swaps the trunk of a Faster R-CNN detector: ResNet-50/101 against SE-ResNet-50/101, each
initialised from its ImageNet model, trained end to end with Detectron's hyperparameters and
"2x" schedule on COCO's minival protocol (train on the 80k train images plus the 35k
val-minus-minival images, test on the 5k minival images), and reports COCO AP and AP@IoU=0.5.
COCO 2017's ``train2017`` / ``val2017`` are exactly those two sets, so they are our defaults.

This module builds that detector from torchvision's parts around our own ResNets
(:func:`build_detector`), reads COCO (:class:`CocoDetection`), trains (:func:`train_detection`)
and scores with the official COCO API (:func:`evaluate_detection`, :func:`coco_ap`).
:data:`TABLE7_RECIPE` is the schedule as data.

Detector. The paper says "Faster R-CNN" and "Detectron"; it does not say C4 or FPN. We build
Faster R-CNN with FPN, [INFERRED]: Detectron's model zoo gives 37.9 AP for R-50-FPN and 39.8 AP
for R-101-FPN with the 2x schedule (R-50-C4 2x: 36.5), and Table 7's baselines are 38.0 and 39.9.

Deviations from Detectron's ``e2e_faster_rcnn_R-{50,101}-FPN_2x`` that remain:

* Trunk weights: our ImageNet checkpoints (the released SE models, or ours), fed RGB images
  normalised with the ImageNet mean/std they were trained with; Detectron used MSRA's Caffe
  ResNets on BGR images with mean subtraction only. The stem's max pool rounds up (Caffe style,
  see ``models/resnet.py``) where Detectron pads. Stride on the first 1x1 conv matches
  Detectron's ``STRIDE_1X1``.
* Box-head regression loss: torchvision's smooth L1 uses beta = 1/9 in the box head as in the
  RPN; Detectron uses beta = 1 in the box head.
* Training proposals: torchvision keeps the top 2000 RPN proposals per image; Detectron's FPN
  kept 2000 per minibatch.
* No aspect-ratio grouping of minibatches (Detectron groups); this changes padding, not the
  objective.
* One process, any batch size: the learning rate and the schedule follow Detectron's own linear
  scaling rule (lr and warm-up scaled by batch / 16, iterations by 16 / batch), and the schedule
  is counted in epochs (2x = 180k x 16 images = 24.35 passes over COCO train2017's 118,287
  images; 25 epochs over the 117,266 that have a box).

Unchanged from Detectron: frozen BN (torchvision's ``FrozenBatchNorm2d`` is Detectron's
AffineChannel), stem and conv2_x frozen (``trainable_layers=3`` is Detectron's ``FREEZE_AT: 2``),
FPN P2-P6 with 256 channels and P6 by stride-2 subsampling, anchors 32-512 with aspect ratios
0.5/1/2, RoIAlign 7x7 with sampling ratio 2, a two-FC 1024 box head, 512 RoIs per image with
25% foreground, test NMS 0.5 and 100 detections per image, training scale 800 (max 1333)
with horizontal flips only, SGD with momentum 0.9, weight decay 1e-4, bias learning rate x2
without weight decay, 500 iterations of linear warm-up from 1/3.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from ..models import create_model, list_models, model_entry
from ..models import resnet as resnet_models
from ..models.features import FeatureNet
from ..models.weights import IMAGENET_MEAN, IMAGENET_STD
from .runtime import atomic_save, autocast, check_amp, grad_scaler, resolve_device

COCO_DOWNLOAD_HINT = (
    "Get COCO from https://cocodataset.org/#download: the 2017 Train and Val images and the "
    "2017 Train/Val annotations. Unzip them into DATA_DIR so that DATA_DIR/annotations/"
    "instances_train2017.json, DATA_DIR/train2017/ and DATA_DIR/val2017/ exist "
    "(train2017 = the paper's 80k train + 35k val-minus-minival, val2017 = its 5k minival).")


# ---- Table 7 recipe ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionRecipe:
    """The training protocol of Table 7 as data; ``sources`` says where each number comes from.

    The paper gives the detector, the data split, the initialisation and the schedule's name ("2x");
    the numbers are Detectron's (``configs/12_2017_baselines/e2e_faster_rcnn_R-50-FPN_2x.yaml`` and
    ``core/config.py``) for a minibatch of 16 images on 8 GPUs.
    """

    detector: str = "Faster R-CNN + FPN"
    train_split: str = "train2017"
    val_split: str = "val2017"
    images_per_batch: int = 16
    base_lr: float = 0.02
    iterations: int = 180_000
    lr_steps: tuple[int, ...] = (120_000, 160_000)
    lr_gamma: float = 0.1
    warmup_iters: int = 500
    warmup_factor: float = 1.0 / 3.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    bias_lr_factor: float = 2.0
    bias_weight_decay: float = 0.0
    min_size: int = 800
    max_size: int = 1333
    trainable_layers: int = 3
    horizontal_flip: bool = True
    sources: dict[str, str] = field(default_factory=lambda: {
        "detector": "paper: Faster R-CNN; FPN [INFERRED] from Detectron's model-zoo APs (module docstring)",
        "train_split": "paper: 80k train + 35k val subset (= COCO train2017)",
        "val_split": "paper: 5k minival (= COCO val2017)",
        "schedule": "paper: Detectron '2x'; numbers are Detectron defaults (180k iterations, "
                    "steps at 120k and 160k, gamma 0.1, batch 16)",
        "base_lr": "Detectron default (0.02 for batch 16)",
        "warmup": "Detectron default (500 iterations, linear from 1/3)",
        "momentum": "Detectron default",
        "weight_decay": "Detectron default (e2e_faster_rcnn_*_2x.yaml)",
        "bias_lr": "Detectron default (BIAS_DOUBLE_LR, no bias weight decay)",
        "image_size": "Detectron default (shorter side 800, longer at most 1333)",
        "trainable_layers": "Detectron default (FREEZE_AT 2: stem and conv2_x frozen)",
        "horizontal_flip": "Detectron default (the only training augmentation)",
        "initialisation": "paper: the ImageNet-trained (SE-)ResNet",
    })

    @property
    def lr_milestones(self) -> tuple[float, ...]:
        """The learning-rate steps as fractions of training (2/3 and 8/9 for 2x)."""
        return tuple(step / self.iterations for step in self.lr_steps)

    def lr_for(self, batch_size: int) -> float:
        """Base learning rate for ``batch_size`` images per step (Detectron's linear scaling rule)."""
        return self.base_lr * batch_size / self.images_per_batch

    def warmup_iters_for(self, batch_size: int) -> int:
        """Warm-up length for ``batch_size``: the same number of images as 500 steps of 16."""
        return max(1, round(self.warmup_iters * self.images_per_batch / batch_size))

    def epochs_for(self, num_train_images: int) -> int:
        """Epochs that see as many images as the schedule (25 for train2017's 117,266 images with boxes)."""
        return math.ceil(self.iterations * self.images_per_batch / num_train_images)


TABLE7_RECIPE = DetectionRecipe()


# ---- Detector ---------------------------------------------------------------------------------------
def detection_backbones() -> list[str]:
    """Registered networks that can serve as a detection trunk: the ResNet family of ``models/resnet.py``."""
    return [name for name in list_models() if model_entry(name).factory.__module__ == resnet_models.__name__]


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by a ``FrozenBatchNorm2d`` with its statistics and affine.

    Detection minibatches (2 images per GPU) are too small to estimate BN statistics, so detectors
    keep the ImageNet statistics fixed, as Detectron's AffineChannel and torchvision's detection
    backbones do. Works in place; returns ``module`` (or its replacement if it is itself a BN).
    """
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            if module.track_running_stats:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        replacement = freeze_batch_norm(child)
        if replacement is not child:
            setattr(module, name, replacement)
    return module


class TrunkWithFPN(nn.Module):
    """The trunk's conv2_x ... conv5_x outputs (``body``, a features-only trunk) through a feature
    pyramid (``fpn``), as torchvision's ``BackboneWithFPN`` builds it: P2-P5 with ``out_channels``
    channels, plus P6 by stride-2 subsampling of P5 (for the RPN only)."""

    def __init__(self, body: FeatureNet, out_channels: int = 256):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.feature_info.channels(), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


# The trunk's parts from the top down, in torchvision's order for ``trainable_layers``.
_TRUNK_PARTS = ("layer4", "layer3", "layer2", "layer1", "stem")


def build_detector(backbone: str, num_classes: int, pretrained_backbone: str | None = None, fpn: bool = True,
                   min_size: int | tuple[int, ...] = 800, max_size: int = 1333, trainable_layers: int = 3,
                   frozen_batch_norm: bool | None = None, **backbone_options) -> FasterRCNN:
    """Faster R-CNN (torchvision) with one of our ResNet-family networks as its trunk (Section 5.3).

    Args:
        backbone: a registered ResNet-family model, e.g. ``"resnet50"``, ``"se_resnet50"``,
            ``"resnet101"``, ``"se_resnet101"`` (Table 7); see :func:`detection_backbones`.
        num_classes: object classes **plus one for the background** (81 for COCO).
        pretrained_backbone: ImageNet weights for the trunk, passed to ``create_model(pretrained=...)``
            (a path, URL, or ``"imagenet"`` for the released SE models). ``None``: random init.
        fpn: ``True`` builds Faster R-CNN + FPN (P2-P6), the Table 7 configuration. ``False``
            builds a single-level detector on the stride-32 conv5_x output, torchvision's non-FPN
            pattern; it is not Detectron's C4 and is not a paper configuration.
        min_size, max_size: the resize of torchvision's transform (shorter side, cap on the longer).
        trainable_layers: trunk parts trained, counted from conv5_x down (0-5; 5 includes the stem).
            3 is Detectron's ``FREEZE_AT: 2``. As in torchvision, a randomly initialised trunk
            trains all 5 (with a warning if fewer were asked for).
        frozen_batch_norm: replace the trunk's BN with ``FrozenBatchNorm2d``. ``None`` follows
            torchvision: frozen when ``pretrained_backbone`` is given.
        backbone_options: ``create_model`` options of the trunk (SE options such as ``reduction``).

    Raises ``ValueError`` for an unknown or non-ResNet backbone and for bad sizes.
    """
    entry = model_entry(backbone)     # ValueError naming close names if unknown
    trunks = detection_backbones()
    if entry.name not in trunks:
        raise ValueError(f"{backbone} is not a ResNet-family network, so it cannot be a Faster R-CNN trunk "
                         f"here; use one of: {', '.join(trunks)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes counts the object classes plus the background (81 for COCO), "
                         f"so it must be an integer >= 2; got {num_classes!r}")
    if not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= len(_TRUNK_PARTS):
        raise ValueError(f"trainable_layers must be an integer in [0, {len(_TRUNK_PARTS)}], got {trainable_layers!r}")
    sizes = min_size if isinstance(min_size, (tuple, list)) else (min_size,)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes) or not isinstance(max_size, int) \
            or max_size < max(sizes):
        raise ValueError(f"min_size must be positive integer(s) not above max_size; got min_size={min_size!r}, "
                         f"max_size={max_size!r}")
    if pretrained_backbone is None and trainable_layers < len(_TRUNK_PARTS):
        # Freezing randomly initialised layers would fix them at noise; torchvision refuses it too.
        if trainable_layers != TABLE7_RECIPE.trainable_layers:
            warnings.warn(f"trainable_layers={trainable_layers} has no effect without pretrained_backbone: "
                          f"training all {len(_TRUNK_PARTS)} trunk parts")
        trainable_layers = len(_TRUNK_PARTS)
    if frozen_batch_norm is None:
        frozen_batch_norm = pretrained_backbone is not None

    trunk = create_model(backbone, pretrained=pretrained_backbone, **backbone_options)
    if frozen_batch_norm:
        freeze_batch_norm(trunk)
    trained_parts = _TRUNK_PARTS[:trainable_layers]
    for name, parameter in trunk.named_parameters():
        if not name.startswith(trained_parts):
            parameter.requires_grad_(False)

    # The trunk's stages by feature_info position: 0 is the stem, 1-4 are conv2_x ... conv5_x. The
    # features-only trunk keeps the trunk's module names, so checkpoints keep their keys.
    if fpn:
        body = TrunkWithFPN(FeatureNet(trunk, out_indices=(1, 2, 3, 4), as_dict=True), out_channels=256)
        # One anchor size per level P2..P6 (Detectron's RPN_ANCHOR_START_SIZE 32), three aspect ratios.
        anchors = AnchorGenerator(sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
        roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    else:
        body = FeatureNet(trunk, out_indices=(4,), as_dict=True)
        body.out_channels = body.feature_info.channels()[0]
        anchors = AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
        roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)

    source = getattr(trunk, "pretrained_source", None)
    detector = FasterRCNN(body, num_classes=num_classes, min_size=min_size, max_size=max_size,
                          image_mean=list(source.mean if source else IMAGENET_MEAN),
                          image_std=list(source.std if source else IMAGENET_STD),
                          rpn_anchor_generator=anchors, box_roi_pool=roi_pool)
    # What rebuilds this detector from a checkpoint (see load_detector); effective values only.
    detector.build_options = dict(backbone=entry.name, num_classes=num_classes, fpn=fpn,
                                  min_size=min_size, max_size=max_size, trainable_layers=trainable_layers,
                                  frozen_batch_norm=frozen_batch_norm, **backbone_options)
    return detector


def load_detector(checkpoint: str | os.PathLike, map_location: str | torch.device = "cpu") -> FasterRCNN:
    """Rebuild a detector saved by :func:`train_detection` and load its weights.

    The returned model carries ``category_ids`` (COCO category id of each label 1..K) when saved.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no detector checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "build_options" not in state:
        raise ValueError(f"{path} is not a checkpoint written by train_detection (needs 'model' and 'build_options')")
    options = dict(state["build_options"])
    if isinstance(options.get("min_size"), list):
        options["min_size"] = tuple(options["min_size"])
    detector = build_detector(**options)
    detector.load_state_dict(state["model"])
    detector.category_ids = list(state.get("category_ids") or [])
    return detector


# ---- COCO data --------------------------------------------------------------------------------------
def _load_coco(annotation_file: Path):
    try:
        from pycocotools.coco import COCO
    except ImportError as error:   # a dependency of the detection path only
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


class CocoDetection(torch.utils.data.Dataset):
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
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
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
    from pycocotools.cocoeval import COCOeval

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


# ---- Training and evaluation ------------------------------------------------------------------------
def _loader(dataset: CocoDetection, batch_size: int, shuffle: bool, num_workers: int, seed: int,
            device: torch.device) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate,
        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda",
        persistent_workers=False)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


@torch.no_grad()
def evaluate_detection(model: nn.Module | str | os.PathLike, data_dir: str | os.PathLike, split: str = "val2017",
                       batch_size: int = 2, device: str = "cpu", limit: int | None = None,
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
        limit: score only the first ``limit`` images (by id).
        out: if given, a folder to write the COCO-format detections ``detections_{split}.json`` to.

    Returns ``{"split", "num_images", "num_detections", "ap", "ap50", "ap75", "ap_small",
    "ap_medium", "ap_large", "seconds"}`` with APs in percent.
    """
    _check_positive(batch_size=batch_size)
    run_device = resolve_device(device)
    check_amp(amp)   # validate before the dataset is read
    if isinstance(model, (str, os.PathLike)):
        model = load_detector(model, map_location="cpu")
    dataset = CocoDetection(data_dir, split, train=False, limit=limit)
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
    for images, targets in _loader(dataset, batch_size, False, num_workers, 0, run_device):
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
        detections_file = out_dir / f"detections_{split}.json"
        temporary = detections_file.with_name(detections_file.name + ".tmp")
        temporary.write_text(json.dumps(detections))
        os.replace(temporary, detections_file)
    return {"split": split, "num_images": len(dataset), "num_detections": len(detections), **metrics,
            "seconds": round(time.perf_counter() - started, 3)}


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
                    device: str = "cpu", seed: int = 0, limit: int | None = None,
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
        limit: use only the first ``limit`` images of each split (smoke runs).
        pretrained_backbone, fpn, min_size, max_size, trainable_layers, backbone_options: see
            :func:`build_detector`.
        num_workers: data-loading workers.
        eval_every: also score ``val_split`` every this many epochs (0: after the last only).
        log_every: print the running loss every this many steps (0: silent).

    Each epoch appends a line to ``out/metrics.jsonl`` (mean losses, learning rate, time and,
    when scored, AP) and rewrites ``out/detector.pt`` atomically (temp file + ``os.replace``).
    Returns the last epoch's record plus ``checkpoint``.
    """
    _check_positive(epochs=epochs, batch_size=batch_size)
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
    dataset = CocoDetection(data_dir, train_split, train=True, limit=limit)
    if not len(dataset):
        raise ValueError(f"{train_split} has no image with a (non-crowd) box to train on")
    if val_split is not None:
        CocoDetection(data_dir, val_split, train=False, limit=1)   # fail now, not after training
    model = build_detector(model_name, dataset.num_classes, pretrained_backbone=pretrained_backbone, fpn=fpn,
                           min_size=min_size, max_size=max_size, trainable_layers=trainable_layers,
                           **backbone_options)
    model.category_ids = dataset.category_ids
    model.to(run_device).train()

    loader = _loader(dataset, batch_size, True, num_workers, seed, run_device)
    total_iterations = epochs * len(loader)
    optimizer = _sgd_with_detectron_bias_rule(model, lr, momentum, weight_decay, bias_lr_factor, bias_weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _step_schedule(total_iterations, lr_milestones, lr_gamma, warmup_iters, warmup_factor))
    scaler = grad_scaler(run_device, amp)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_file, checkpoint_file = out_dir / "metrics.jsonl", out_dir / "detector.pt"
    settings = dict(model=model_name, train_split=train_split, val_split=val_split, epochs=epochs,
                    batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                    lr_milestones=list(lr_milestones), lr_gamma=lr_gamma, warmup_iters=warmup_iters,
                    warmup_factor=warmup_factor, bias_lr_factor=bias_lr_factor,
                    bias_weight_decay=bias_weight_decay, seed=seed, limit=limit, amp=amp,
                    pretrained_backbone=pretrained_backbone, num_train_images=len(dataset))
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
                                        limit=limit, amp=amp, num_workers=num_workers)
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
