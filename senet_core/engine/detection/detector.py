"""The detector of Table 7: Faster R-CNN (torchvision) around one of our ResNet-family trunks, with a
feature pyramid (Section 5.3); :func:`build_detector` builds it, :func:`load_detector` rebuilds a
trained one from its checkpoint."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from ...models import create_model, list_models, model_entry
from ...models import resnet as resnet_models
from ...models.features import FeatureNet
from ...models.weights import IMAGENET_MEAN, IMAGENET_STD, load_file, load_state
from ..recipes import TABLE7_RECIPE

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
    state = load_file(path, map_location)
    if not isinstance(state, dict) or "model" not in state or "build_options" not in state:
        raise ValueError(f"{path} is not a checkpoint written by train_detection (needs 'model' and 'build_options')")
    options = dict(state["build_options"])
    if isinstance(options.get("min_size"), list):
        options["min_size"] = tuple(options["min_size"])
    detector = build_detector(**options)
    load_state(detector, state["model"], str(path))
    detector.category_ids = list(state.get("category_ids") or [])
    return detector
