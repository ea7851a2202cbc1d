"""Mobile architectures of Table 3: MobileNet, ShuffleNet and their SE versions (Section 5.1).

The paper only says SE blocks are integrated into these networks "with a similar scheme"
(Section 3.3, Table 3); it gives no placement. We choose the placement that reproduces the
complexity the paper prints (NOTES.md Section 3, PAPER.md "Consolidated catalogue"):

* SE-MobileNet: one SE block on the output of each of the 13 depthwise-separable blocks, after
  the pointwise conv's BN + ReLU (as for VGG, Section 3.3: after the non-linearity).
  +479,744 weights (r=16, Eq. 5), 568.7 -> 571.9 M MACs: Table 3's 569 / 572 MFLOPs and
  4.2M / 4.7M params.
* SE-ShuffleNet: SE on the residual branch of each of the 16 ShuffleNet units, after the last
  grouped 1x1 conv's BN and before the addition or concatenation (the SE-ResNet placement of
  Fig. 3). It adds 610,416 weights at r=16 and 2.2 M MACs (Table 3: +0.6M params, 140 -> 142
  MFLOPs). SE on the unit output (after the concatenation) would add 720,000 weights instead
  and miss Table 3's 2.4M.

Exact counts (``senet_core.complexity`` at 224, FC biases in SE on):

============================  ==========  =============  ================
model                         params      MACs           Table 3
============================  ==========  =============  ================
mobilenet_v1                  4,231,976   568,740,352    4.2M, 569 M
se_mobilenet_v1               4,718,044   571,929,600    4.7M, 572 M
shufflenet_v1_g3              1,865,728   137,460,672    1.8M, 140 M
se_shufflenet_v1_g3           2,484,533   139,675,152    2.4M, 142 M
============================  ==========  =============  ================

ShuffleNet 1x (g=3) as specified by Zhang et al. is 137 M MACs, the figure their architecture
table gives for g=3; Table 3's 140 MFLOPs matches the nominal "1x" budget under which Zhang et al.
compare their group counts. We keep the architecture as specified rather than pad it to 140 M.
The Eq. 5 sum with fractional ``C/r`` gives 610,632 SE weights; we get 216 fewer because the
216-channel branch of stage 2's first unit has a bottleneck of ``216 // 16 = 13`` units, not 13.5.
"""
from __future__ import annotations

import torch
from torch import nn

from ..se import SEConfig
from .head import Classifier
from .init import he_init
from .registry import register_model


def _check_se(name: str, se: SEConfig | None) -> None:
    # The registry checks this too; repeat it for direct calls of the factories.
    if se is not None:
        se.check(name, stages=(), positions=("standard",))


# --------------------------------------------------------------------------------------------
# MobileNet (Howard et al., 2017)
# --------------------------------------------------------------------------------------------

# 1.0 MobileNet-224 (Howard et al., Table 1): (output channels, stride) of the 13 separable blocks.
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU; then SE in SE-MobileNet."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 se: SEConfig | None = None):
        super().__init__()
        self.conv_dw = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1,
                                 groups=in_channels, bias=False)
        self.bn_dw = nn.BatchNorm2d(in_channels)
        self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.se = se.block(out_channels) if se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn_dw(self.conv_dw(x)))
        out = self.relu(self.bn_pw(self.conv_pw(out)))
        if self.se is not None:
            out = self.se(out)
        return out


class MobileNetV1(Classifier, nn.Module):
    """MobileNet: a 3x3/2 stem conv, 13 depthwise-separable blocks, global pool and FC.

    ``feature_info``: the stem and the last block at each stride (2, 2, 4, 8, 16, 32).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, stem_width: int = 32,
                 blocks=MOBILENET_V1_BLOCKS, se: SEConfig | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        layers = []
        channels, reduction = stem_width, 2
        self.feature_info = [dict(module="relu", num_chs=stem_width, reduction=reduction)]
        for index, (out_channels, stride) in enumerate(blocks):
            layers.append(DepthwiseSeparable(channels, out_channels, stride, se))
            channels, reduction = out_channels, reduction * stride
            if index + 1 == len(blocks) or blocks[index + 1][1] > 1:    # the last block at this stride
                self.feature_info.append(dict(module=f"blocks.{index}", num_chs=channels, reduction=reduction))
        self.blocks = nn.Sequential(*layers)
        # Global pooling (not MobileNet's fixed 7x7) so that any input size works.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features, self.num_classes = channels, num_classes
        he_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _mobilenet_v1(name: str, num_classes: int, in_chans: int, se: SEConfig | None) -> MobileNetV1:
    _check_se(name, se)
    return MobileNetV1(num_classes, in_chans, se=se)


@register_model(min_size=16, paper="Table 3")
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    """1.0 MobileNet-224 (Howard et al., 2017), the baseline of Table 3.

    4,231,976 params and 568.7 M MACs at 224 (Table 3: 4.2M, 569 MFLOPs).
    """
    return _mobilenet_v1("mobilenet_v1", num_classes, in_chans, None)


@register_model(min_size=16, baseline="mobilenet_v1", se_stages=(), paper="Table 3")
def se_mobilenet_v1(num_classes: int = 1000, in_chans: int = 3,
                    se: SEConfig = SEConfig()) -> nn.Module:
    """SE-MobileNet (Table 3): an SE block after each of the 13 depthwise-separable blocks.

    Placement (not stated in the paper, Section 3.3 says "a similar scheme"): on the block output,
    after the pointwise conv's BN + ReLU. It adds 2/r * sum(C^2) = 479,744 weights at r=16
    (Eq. 5) and 3.2 M MACs, reproducing Table 3's 4.7M params and 572 MFLOPs.
    """
    return _mobilenet_v1("se_mobilenet_v1", num_classes, in_chans, se)


# --------------------------------------------------------------------------------------------
# ShuffleNet (Zhang et al., 2017)
# --------------------------------------------------------------------------------------------

# ShuffleNet 1x, g=3 (Zhang et al., Table 1): (units, output channels) of stages 2, 3 and 4.
SHUFFLENET_G3_STAGES = ((4, 240), (8, 480), (4, 960))


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups so the next grouped conv sees every group."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ShuffleUnit(nn.Module):
    """A ShuffleNet unit (Zhang et al., Fig. 2b/c), with SE on its residual branch.

    Branch: grouped 1x1 + BN + ReLU, channel shuffle, depthwise 3x3 + BN, grouped 1x1 + BN.
    With stride 1 the branch is added to the input; with stride 2 it is concatenated with a 3x3/2
    average-pooled shortcut, so the branch outputs ``out_channels - in_channels`` channels.
    The bottleneck width is a quarter of the unit's output channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int,
                 group_first: bool = True, se: SEConfig | None = None):
        super().__init__()
        self.stride = stride
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        first_groups = groups if group_first else 1
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        # After an ungrouped 1x1 every channel already mixes all inputs: nothing to shuffle.
        self.shuffle = ChannelShuffle(groups) if first_groups > 1 else nn.Identity()
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.se = se.block(branch_out) if se is not None else None
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.shuffle(out)
        # No ReLU after the depthwise conv (Zhang et al., Section 3.2).
        out = self.bn2(self.conv2(out))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            if self.se is not None:
                out = self.se(out)
            out = torch.cat((self.shortcut(x), out), dim=1)
        elif self.se is not None:
            out = self.se(out, x)  # residual + s * branch in one fused op
        else:
            out = out + x
        return self.relu(out)


class ShuffleNetV1(Classifier, nn.Module):
    """ShuffleNet: 3x3/2 conv, 3x3/2 max pool, three stages of ShuffleNet units, pool and FC.

    ``feature_info``: the stem conv's activation (stride 2) and stages 2-4 (strides 8, 16, 32).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, groups: int = 3,
                 stem_width: int = 24, stages=SHUFFLENET_G3_STAGES, se: SEConfig | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = stem_width
        layers = []
        for index, (units, out_channels) in enumerate(stages):
            # Stage 2's first 1x1 is not grouped: its 24 input channels are too few
            # (Zhang et al., Section 3.3).
            layers.append(self._make_stage(channels, out_channels, units, groups,
                                           group_first=index > 0, se=se))
            channels = out_channels
        self.stage2, self.stage3, self.stage4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features, self.num_classes = channels, num_classes
        self.feature_info = [dict(module="relu", num_chs=stem_width, reduction=2)] + [
            dict(module=f"stage{i + 2}", num_chs=c, reduction=8 * 2 ** i) for i, (_, c) in enumerate(stages)]
        he_init(self)

    @staticmethod
    def _make_stage(in_channels: int, out_channels: int, units: int, groups: int,
                    group_first: bool, se: SEConfig | None) -> nn.Sequential:
        layers = [ShuffleUnit(in_channels, out_channels, 2, groups, group_first, se)]
        for _ in range(units - 1):
            layers.append(ShuffleUnit(out_channels, out_channels, 1, groups, True, se))
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.stage4(self.stage3(self.stage2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _shufflenet_v1(name: str, num_classes: int, in_chans: int, se: SEConfig | None) -> ShuffleNetV1:
    _check_se(name, se)
    return ShuffleNetV1(num_classes, in_chans, groups=3, se=se)


@register_model(min_size=16, paper="Table 3")
def shufflenet_v1_g3(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    """ShuffleNet 1x (g=3) (Zhang et al., 2017), the baseline of Table 3 (140 MFLOPs, 1.8M)."""
    return _shufflenet_v1("shufflenet_v1_g3", num_classes, in_chans, None)


@register_model(min_size=16, baseline="shufflenet_v1_g3", se_stages=(), paper="Table 3")
def se_shufflenet_v1_g3(num_classes: int = 1000, in_chans: int = 3,
                        se: SEConfig = SEConfig()) -> nn.Module:
    """SE-ShuffleNet 1x (g=3) (Table 3: 142 MFLOPs, 2.4M).

    Placement (not stated in the paper): SE on the residual branch of each of the 16 units, after
    the last grouped 1x1 conv's BN, before the addition (stride 1) or the concatenation with the
    pooled shortcut (stride 2), i.e. the SE-ResNet placement of Fig. 3.
    """
    return _shufflenet_v1("se_shufflenet_v1_g3", num_classes, in_chans, se)
