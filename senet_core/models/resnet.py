"""SE-ResNet, SE-ResNeXt and SENet-154 beside their baselines (Section 3.3, Table 1, Table 2, Appendix).

Layout choices, each checked against the paper's complexity columns (``senet complexity``):

* ResNet-50/101/152 put the stride of a downsampling block on the **first 1x1 conv**, like the
  original ResNet and the official Caffe SE-ResNets; only this layout gives the paper's 3.86
  GFLOPs for ResNet-50 (torchvision's stride-on-3x3 gives 4.09). ``stride_in_1x1=False`` builds
  the torchvision layout.
* ResNeXt and SENet-154 put the stride on the grouped 3x3 conv, as every source does.
* SE sits on the residual branch after the last BN, before the addition (Fig. 3); the scale and
  the addition are one fused operation (``SEBlock.forward(u, residual)``). The other integration
  positions of Section 6.5 are ``se_position="pre" | "post" | "identity" | "3x3"``.
* The stem's max pool rounds up (``ceil_mode=True``, no padding) as Caffe does, so ported
  checkpoints of the released models give identical outputs; at 224x224 the sizes are those of
  Table 1.
* Stages are numbered like the paper: the stem is stage 1, ``layer1`` ... ``layer4`` are stages
  2 ... 5 (conv2_x ... conv5_x).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..se import POSITIONS, SEConfig, close_residual
from .head import Classifier
from .init import he_init
from .registry import register_model

RESIDUAL_STAGES = (2, 3, 4, 5)


def _se_for(se: SEConfig | None, stage: int) -> SEConfig | None:
    return se if se is not None and se.in_stage(stage) else None


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). SE on the branch after the second BN."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 se: SEConfig | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.se_position = se.position if se is not None else None
        if se is not None:
            self.se = se.block(inplanes if se.position == "pre" else planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.se(x) if self.se_position == "pre" else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        return _merge(self, out, identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand (Table 1).

    ``width`` is the 3x3 conv's width, ``first_width`` the first 1x1's (SENet-154 halves it,
    Appendix (a)). ``stride_in_1x1`` puts a downsampling stride on the first 1x1 conv (original
    ResNet) instead of the 3x3 (ResNeXt, SENet-154).
    """

    def __init__(self, inplanes: int, width: int, outplanes: int, stride: int = 1, groups: int = 1,
                 first_width: int | None = None, stride_in_1x1: bool = False,
                 downsample: nn.Module | None = None, se: SEConfig | None = None):
        super().__init__()
        first_width = first_width or width
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, first_width, 1, stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(first_width)
        self.conv2 = nn.Conv2d(first_width, width, 3, stride_3x3, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.se_position = se.position if se is not None else None
        if se is not None:
            gated = {"pre": inplanes, "3x3": width}.get(se.position, outplanes)
            self.se = se.block(gated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.se(x) if self.se_position == "pre" else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.se_position == "3x3":
            out = self.se(out)
        out = self.bn3(self.conv3(out))
        return _merge(self, out, identity)


def _merge(block: nn.Module, branch: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """Close a post-activation unit: the addition with SE where Section 6.5 puts it, then ReLU."""
    return close_residual(branch, identity, getattr(block, "se", None), block.se_position, block.relu)


class ResNet(Classifier, nn.Module):
    """The ResNet family of Table 2: ResNet, ResNeXt and SENet-154, with or without SE blocks.

    ``feature_info`` lists the stem's activation (stride 2) and conv2_x ... conv5_x (strides 4-32).
    """

    first_conv = "stem.conv1"
    classifier_name = "fc"

    def __init__(self, block: str, layers: list[int], num_classes: int = 1000, in_chans: int = 3,
                 groups: int = 1, width_per_group: int = 64, first_width_ratio: float = 1.0,
                 deep_stem: bool = False, downsample_3x3: bool = False, stride_in_1x1: bool = False,
                 drop_rate: float = 0.0, se: SEConfig | None = None):
        super().__init__()
        self.stem = _deep_stem(in_chans) if deep_stem else _stem(in_chans)
        inplanes = 128 if deep_stem else 64
        self.block = block
        stages = []
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stage_se = _se_for(se, RESIDUAL_STAGES[index])
            stride = 1 if index == 0 else 2
            stage, inplanes = self._make_stage(
                block, inplanes, planes, blocks, stride, groups, width_per_group, first_width_ratio,
                downsample_3x3 and index > 0, stride_in_1x1, stage_se)
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = inplanes
        self.num_classes = num_classes
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(inplanes, num_classes)
        stem_act, stem_width = ("stem.relu3", 128) if deep_stem else ("stem.relu1", 64)
        self.feature_info = [dict(module=stem_act, num_chs=stem_width, reduction=2)] + [
            dict(module=f"layer{i + 1}", num_chs=_stage_width(stage), reduction=4 * 2 ** i)
            for i, stage in enumerate(stages)]
        he_init(self)

    @staticmethod
    def _make_stage(block, inplanes, planes, blocks, stride, groups, width_per_group, first_width_ratio,
                    downsample_3x3, stride_in_1x1, se):
        outplanes = planes * (1 if block == "basic" else 4)
        downsample = None
        if stride != 1 or inplanes != outplanes:
            # SENet-154 (Appendix (c)) downsamples with a 3x3 stride-2 conv to keep information.
            kernel = 3 if downsample_3x3 else 1
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, outplanes, kernel, stride, kernel // 2, bias=False),
                nn.BatchNorm2d(outplanes))
        layers = []
        for i in range(blocks):
            block_in, block_stride = (inplanes, stride) if i == 0 else (outplanes, 1)
            block_down = downsample if i == 0 else None
            if block == "basic":
                layers.append(BasicBlock(block_in, planes, block_stride, block_down, se))
            else:
                width = int(planes * width_per_group / 64) * groups
                layers.append(Bottleneck(block_in, width, outplanes, block_stride, groups,
                                         int(width * first_width_ratio), stride_in_1x1, block_down, se))
        return nn.Sequential(*layers), outplanes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(x.mean((2, 3)))   # global average pooling: any input size
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _stage_width(stage: nn.Sequential) -> int:
    """Output channels of a residual stage: those of its last block's last conv."""
    last = stage[-1]
    return (last.conv3 if isinstance(last, Bottleneck) else last.conv2).out_channels


def _stem(in_chans: int) -> nn.Sequential:
    """conv 7x7/2, 64 + max pool 3x3/2 (Table 1); names follow the released checkpoints' layer0."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)),
        ("bn1", nn.BatchNorm2d(64)),
        ("relu1", nn.ReLU(inplace=True)),
        ("pool", nn.MaxPool2d(3, 2, ceil_mode=True)),
    ]))


def _deep_stem(in_chans: int) -> nn.Sequential:
    """SENet-154's stem (Appendix (b)): three 3x3 convs (64, 64, 128, the first with stride 2)."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_chans, 64, 3, 2, 1, bias=False)),
        ("bn1", nn.BatchNorm2d(64)),
        ("relu1", nn.ReLU(inplace=True)),
        ("conv2", nn.Conv2d(64, 64, 3, 1, 1, bias=False)),
        ("bn2", nn.BatchNorm2d(64)),
        ("relu2", nn.ReLU(inplace=True)),
        ("conv3", nn.Conv2d(64, 128, 3, 1, 1, bias=False)),
        ("bn3", nn.BatchNorm2d(128)),
        ("relu3", nn.ReLU(inplace=True)),
        ("pool", nn.MaxPool2d(3, 2, ceil_mode=True)),
    ]))


# ---- The networks of Table 2, each written once; the registered factories below name them ----------

# Residual units per stage (conv2_x ... conv5_x) of each depth (He et al. 2016, Table 1).
_LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
_BASIC_POSITIONS = tuple(p for p in POSITIONS if p != "3x3")


def _resnet(depth: int, num_classes: int, in_chans: int, se: SEConfig | None = None,
            stride_in_1x1: bool = True) -> ResNet:
    """ResNet-18/34 (basic units) and ResNet-50/101/152 (bottlenecks, stride on the first 1x1 conv
    unless ``stride_in_1x1=False``)."""
    if depth < 50:
        return ResNet("basic", _LAYERS[depth], num_classes, in_chans, se=se)
    return ResNet("bottleneck", _LAYERS[depth], num_classes, in_chans, stride_in_1x1=stride_in_1x1, se=se)


def _resnext_32x4d(depth: int, num_classes: int, in_chans: int, se: SEConfig | None = None) -> ResNet:
    """ResNeXt-50/101 (32x4d): 32 groups of 4 channels in the first stage's 3x3 conv (Table 1)."""
    return ResNet("bottleneck", _LAYERS[depth], num_classes, in_chans, groups=32, width_per_group=4, se=se)


def _resnext154_64x4d(num_classes: int, in_chans: int, se: SEConfig | None = None,
                      drop_rate: float = 0.2) -> ResNet:
    """The modified 64x4d ResNeXt-152 of the Appendix: (a) first 1x1 at half width, (b) a stem of three
    3x3 convs, (c) 3x3 stride-2 downsampling projections (1x1 in the first stage, whose stride is 1),
    (d) dropout 0.2 before the classifier. Stem widths (64, 64, 128) follow the released model."""
    return ResNet("bottleneck", _LAYERS[152], num_classes, in_chans, groups=64, width_per_group=4,
                  first_width_ratio=0.5, deep_stem=True, downsample_3x3=True, drop_rate=drop_rate, se=se)


# ---- ResNet-18/34 (basic blocks) ------------------------------------------------------------------
@register_model(min_size=16, paper="reduced scale")
def resnet18(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    return _resnet(18, num_classes, in_chans)


@register_model(min_size=16, baseline="resnet18", se_stages=RESIDUAL_STAGES, se_positions=_BASIC_POSITIONS,
                paper="reduced scale")
def se_resnet18(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet(18, num_classes, in_chans, se)


@register_model(min_size=16, paper="reduced scale")
def resnet34(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    return _resnet(34, num_classes, in_chans)


@register_model(min_size=16, baseline="resnet34", se_stages=RESIDUAL_STAGES, se_positions=_BASIC_POSITIONS,
                paper="reduced scale")
def se_resnet34(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet(34, num_classes, in_chans, se)


# ---- ResNet-50/101/152 (Table 2; ResNet-50 is the backbone of every ablation, Tables 10-16) -------
@register_model(min_size=16, paper="Tables 2, 10-16")
def resnet50(num_classes: int = 1000, in_chans: int = 3, stride_in_1x1: bool = True) -> nn.Module:
    return _resnet(50, num_classes, in_chans, stride_in_1x1=stride_in_1x1)


@register_model(min_size=16, baseline="resnet50", se_stages=RESIDUAL_STAGES, se_positions=POSITIONS,
                paper="Tables 1, 2, 10-16")
def se_resnet50(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig(),
                stride_in_1x1: bool = True) -> nn.Module:
    return _resnet(50, num_classes, in_chans, se, stride_in_1x1)


@register_model(min_size=16, paper="Table 2")
def resnet101(num_classes: int = 1000, in_chans: int = 3, stride_in_1x1: bool = True) -> nn.Module:
    return _resnet(101, num_classes, in_chans, stride_in_1x1=stride_in_1x1)


@register_model(min_size=16, baseline="resnet101", se_stages=RESIDUAL_STAGES, se_positions=POSITIONS,
                paper="Table 2")
def se_resnet101(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig(),
                 stride_in_1x1: bool = True) -> nn.Module:
    return _resnet(101, num_classes, in_chans, se, stride_in_1x1)


@register_model(min_size=16, paper="Table 2")
def resnet152(num_classes: int = 1000, in_chans: int = 3, stride_in_1x1: bool = True) -> nn.Module:
    return _resnet(152, num_classes, in_chans, stride_in_1x1=stride_in_1x1)


@register_model(min_size=16, baseline="resnet152", se_stages=RESIDUAL_STAGES, se_positions=POSITIONS,
                paper="Table 2")
def se_resnet152(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig(),
                 stride_in_1x1: bool = True) -> nn.Module:
    return _resnet(152, num_classes, in_chans, se, stride_in_1x1)


# ---- ResNeXt 32x4d (Tables 1, 2) --------------------------------------------------------------------
@register_model(min_size=16, paper="Table 2")
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    return _resnext_32x4d(50, num_classes, in_chans)


@register_model(min_size=16, baseline="resnext50_32x4d", se_stages=RESIDUAL_STAGES, se_positions=POSITIONS,
                paper="Tables 1, 2")
def se_resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnext_32x4d(50, num_classes, in_chans, se)


@register_model(min_size=16, paper="Table 2")
def resnext101_32x4d(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    return _resnext_32x4d(101, num_classes, in_chans)


@register_model(min_size=16, baseline="resnext101_32x4d", se_stages=RESIDUAL_STAGES, se_positions=POSITIONS,
                paper="Table 2")
def se_resnext101_32x4d(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnext_32x4d(101, num_classes, in_chans, se)


# ---- SENet-154 (Appendix, Tables 8-9) ---------------------------------------------------------------
@register_model(min_size=16, baseline="resnext154_64x4d", se_stages=RESIDUAL_STAGES, se_positions=POSITIONS,
                paper="Tables 8, 9")
def senet154(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig(),
             drop_rate: float = 0.2) -> nn.Module:
    """SE on the modified 64x4d ResNeXt-152 of the Appendix."""
    return _resnext154_64x4d(num_classes, in_chans, se, drop_rate)


@register_model(min_size=16, paper="Tables 8, 9 (baseline of SENet-154)")
def resnext154_64x4d(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> nn.Module:
    """SENet-154 without its SE blocks: the modified ResNeXt-152 64x4d of the Appendix, (a)-(d)."""
    return _resnext154_64x4d(num_classes, in_chans, drop_rate=drop_rate)
