"""Section 5.1, Tables 4-5: the CIFAR networks, each beside its SE version; plus the reduced-scale nets.

Baselines, each built as its source paper describes it:

* ResNet-20/56/110 and ResNet-164: the **pre-activation** ResNets of He et al. 2016b, "Identity
  Mappings in Deep Residual Networks" (the paper's "original" ResNet-110/164 errors, 6.37 % and
  5.46 % on CIFAR-10, are that paper's). Basic blocks for depth 6n+2, bottlenecks for 9n+2.
* WRN-16-8: Zagoruyko & Komodakis 2016, "Wide Residual Networks" (pre-activation basic blocks).
* Shake-Shake 26 2x96d and Shake-Even 29 2x4x64d (Gastaldi 2017): :mod:`senet_core.models.shake`,
  built from this module's convolutions and SE rules.

SE integration (Section 5.1): "the same scheme as Section 3.3", i.e. an SE block on the residual
branch after its last layer, before the addition with the identity. The paper does not give r for
CIFAR; the default r=16 leaves a 16-channel stage a 1-unit excitation (see ``se.hidden_width``).
Every residual network here also takes the integration variants of Section 6.5 (Fig. 5) through
``se.position``; see :func:`senet_core.se.close_residual` and the block docstrings for where each one
sits in a pre-activation unit.

Stages are numbered like the paper's (the stem is stage 1), so the three residual stages of every
CIFAR network are stages 2, 3 and 4; ``se.stages`` picks which of them get SE blocks.
"""
from __future__ import annotations

import torch
from torch import nn

from ..se import SEConfig, close_residual
from .head import Classifier
from .init import he_init
from .registry import register_model

__all__ = ["PreActBasicBlock", "PreActBottleneck", "PreActResNet"]

# Section 6.5 positions a unit implements; SE 3x3 needs a bottleneck's 3x3 conv.
RESIDUAL_POSITIONS = ("standard", "pre", "post", "identity")
BOTTLENECK_POSITIONS = RESIDUAL_POSITIONS + ("3x3",)
# What every CIFAR network registers: 32x32 inputs (8x8 at the least), SE in its three residual stages.
CIFAR_INPUT = dict(input_size=(3, 32, 32), min_size=8)
CIFAR_SE_STAGES = (2, 3, 4)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def unit_se(se: SEConfig | None, channels: int, positions: tuple[str, ...], unit: str) -> nn.Module | None:
    """The gate of one residual unit, or None when the unit has no SE block."""
    if se is None:
        return None
    if se.position not in positions:
        raise ValueError(f"se_position={se.position!r} does not apply to a {unit}: it supports "
                         f"{', '.join(map(repr, positions))}")
    return se.block(channels)


class PreActBasicBlock(nn.Module):
    """Pre-activation basic unit (He et al. 2016b, Fig. 4e): BN-ReLU-conv3x3, BN-ReLU-conv3x3.

    The unit's input is batch-normalised and activated once; a projection shortcut (1x1 conv,
    used when the shape changes) reads that activated input, as in the pre-activation paper.
    ``drop_rate`` is Wide ResNet's dropout between the two convolutions (Zagoruyko & Komodakis
    2016, Section 2.4).

    SE-PRE sits on the activated input of the first conv rather than before ``bn1``: it then
    sees the same post-ReLU features it sees in the post-activation ResNet of Fig. 5c, and
    batch norm cannot undo its batch-average scale. The identity path bypasses it.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 se: SEConfig | None = None, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(drop_rate)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv1x1(in_channels, out_channels, stride)
        self.se_position = se.position if se is not None else None
        gated = in_channels if self.se_position == "pre" else out_channels
        self.se = unit_se(se, gated, RESIDUAL_POSITIONS, "basic block")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        if self.se_position == "pre":
            out = self.se(out)
        out = self.conv1(out)
        out = self.relu(self.bn2(out))
        out = self.dropout(out)
        out = self.conv2(out)
        return close_residual(out, shortcut, self.se, self.se_position)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck unit (He et al. 2016b): BN-ReLU-conv1x1, BN-ReLU-conv3x3,
    BN-ReLU-conv1x1, with a 4x narrower middle (``out_channels // 4``).

    The stride is on the 3x3 conv, as in the pre-activation paper's released code; the
    projection shortcut reads the activated input like the basic unit's. SE-PRE as in
    :class:`PreActBasicBlock`. SE 3x3 (Table 15) gates the 3x3 conv's output after its BN-ReLU,
    i.e. the input of the last 1x1 conv: the post-ReLU features SE 3x3 sees in the
    post-activation ResNet-50, on ``out_channels // 4`` channels.
    """

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 se: SEConfig | None = None, drop_rate: float = 0.0):
        super().__init__()
        width = out_channels // self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn3 = nn.BatchNorm2d(width)
        # Only Wide ResNet uses dropout; kept here so both pre-activation units take one signature.
        self.dropout = nn.Dropout(drop_rate)
        self.conv3 = conv1x1(width, out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv1x1(in_channels, out_channels, stride)
        self.se_position = se.position if se is not None else None
        gated = {"pre": in_channels, "3x3": width}.get(self.se_position, out_channels)
        self.se = unit_se(se, gated, BOTTLENECK_POSITIONS, "bottleneck")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        if self.se_position == "pre":
            out = self.se(out)
        out = self.conv1(out)
        out = self.relu(self.bn2(out))
        out = self.conv2(out)
        out = self.relu(self.bn3(out))
        if self.se_position == "3x3":
            out = self.se(out)
        out = self.dropout(out)
        out = self.conv3(out)
        return close_residual(out, shortcut, self.se, self.se_position)


class PreActResNet(Classifier, nn.Module):
    """Pre-activation ResNet / Wide ResNet for 32x32 inputs (He et al. 2016b; Zagoruyko &
    Komodakis 2016).

    ``widths`` = (stem, stage 2, stage 3, stage 4) output channels; stages 3 and 4 halve the
    resolution. The stem is a bare 3x3 conv (the first unit pre-activates it) and the last unit
    is followed by BN-ReLU, global average pooling and the classifier ``fc``. The trunk's last
    stage output (``feature_info``) is that final BN-ReLU's, the activated features the head reads.
    """

    def __init__(self, block: type[nn.Module], blocks_per_stage: int, widths: tuple[int, int, int, int],
                 num_classes: int = 10, in_chans: int = 3, se: SEConfig | None = None,
                 drop_rate: float = 0.0):
        super().__init__()
        self.conv1 = conv3x3(in_chans, widths[0])
        self.layer1 = self._make_stage(block, widths[0], widths[1], blocks_per_stage, 1, 2, se, drop_rate)
        self.layer2 = self._make_stage(block, widths[1], widths[2], blocks_per_stage, 2, 3, se, drop_rate)
        self.layer3 = self._make_stage(block, widths[2], widths[3], blocks_per_stage, 2, 4, se, drop_rate)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        self.num_features, self.num_classes = widths[3], num_classes
        self.feature_info = cifar_feature_info("conv1", widths, "relu")
        he_init(self)

    @staticmethod
    def _make_stage(block, in_channels, out_channels, blocks, stride, stage, se, drop_rate):
        se = se if se is not None and se.in_stage(stage) else None
        layers = [block(in_channels, out_channels, stride, se, drop_rate)]
        layers += [block(out_channels, out_channels, 1, se, drop_rate) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.relu(self.bn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def cifar_feature_info(stem: str, widths: tuple[int, int, int, int], last: str) -> list[dict]:
    """The stem and the three residual stages of a CIFAR network (strides 1, 1, 2, 4); the last
    stage is read after ``last``, the activation the head pools."""
    modules = (stem, "layer1", "layer2", last)
    return [dict(module=m, num_chs=c, reduction=r) for m, c, r in zip(modules, widths, (1, 1, 2, 4))]


# ---- Pre-activation ResNets (He et al. 2016b) and their SE versions (Section 5.1, Tables 4-5) -----

def _resnet_basic(depth: int, num_classes: int, in_chans: int, se: SEConfig | None = None) -> PreActResNet:
    """ResNet-20/56/110: depth 6n+2, n basic units per stage, 16/32/64 channels."""
    return PreActResNet(PreActBasicBlock, (depth - 2) // 6, (16, 16, 32, 64), num_classes, in_chans, se)


def _resnet_bottleneck(depth: int, num_classes: int, in_chans: int, se: SEConfig | None = None) -> PreActResNet:
    """ResNet-29/164: depth 9n+2, n bottleneck units per stage, 64/128/256 channels (16/32/64 inside)."""
    return PreActResNet(PreActBottleneck, (depth - 2) // 9, (16, 64, 128, 256), num_classes, in_chans, se)


@register_model(**CIFAR_INPUT, paper="reduced scale")
def resnet20_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    return _resnet_basic(20, num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="reduced scale", baseline="resnet20_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=RESIDUAL_POSITIONS)
def se_resnet20_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet_basic(20, num_classes, in_chans, se)


@register_model(**CIFAR_INPUT, paper="reduced scale")
def resnet56_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    return _resnet_basic(56, num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="reduced scale", baseline="resnet56_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=RESIDUAL_POSITIONS)
def se_resnet56_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet_basic(56, num_classes, in_chans, se)


@register_model(**CIFAR_INPUT, paper="Tables 4-5")
def resnet110_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    return _resnet_basic(110, num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="Tables 4-5", baseline="resnet110_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=RESIDUAL_POSITIONS)
def se_resnet110_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet_basic(110, num_classes, in_chans, se)


@register_model(**CIFAR_INPUT, paper="reduced scale (Tables 10-16)")
def resnet29_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """Pre-activation bottleneck ResNet-29: ResNet-164's unit with n=3, for the reduced-scale ablations.

    Its stages output 64/128/256 channels, so every reduction ratio of Table 10 (up to r=32) leaves
    the gate at least two units, and SE 3x3 (Table 15) has a bottleneck 3x3 conv to sit after."""
    return _resnet_bottleneck(29, num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="reduced scale (Tables 10-16)", baseline="resnet29_cifar",
                se_stages=CIFAR_SE_STAGES, se_positions=BOTTLENECK_POSITIONS)
def se_resnet29_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet_bottleneck(29, num_classes, in_chans, se)


@register_model(**CIFAR_INPUT, paper="Tables 4-5")
def resnet164_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    return _resnet_bottleneck(164, num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="Tables 4-5", baseline="resnet164_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=BOTTLENECK_POSITIONS)
def se_resnet164_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _resnet_bottleneck(164, num_classes, in_chans, se)


# ---- Wide ResNet (Zagoruyko & Komodakis 2016) -------------------------------------------------------

def _wide_resnet(depth: int, k: int, num_classes: int, in_chans: int, se: SEConfig | None = None,
                 drop_rate: float = 0.0) -> PreActResNet:
    """WRN-depth-k: depth 6n+4, n basic units per stage, widened k times (16k/32k/64k channels)."""
    return PreActResNet(PreActBasicBlock, (depth - 4) // 6, (16, 16 * k, 32 * k, 64 * k), num_classes,
                        in_chans, se, drop_rate)


@register_model(**CIFAR_INPUT, paper="Tables 4-5")
def wrn16_8_cifar(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> nn.Module:
    return _wide_resnet(16, 8, num_classes, in_chans, drop_rate=drop_rate)


@register_model(**CIFAR_INPUT, paper="Tables 4-5", baseline="wrn16_8_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=RESIDUAL_POSITIONS)
def se_wrn16_8_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig(),
                     drop_rate: float = 0.0) -> nn.Module:
    return _wide_resnet(16, 8, num_classes, in_chans, se, drop_rate)
