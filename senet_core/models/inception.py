"""SE-BN-Inception and SE-Inception-ResNet-v2 beside their baselines (Section 3.3, Fig. 2, Table 2).

**BN-Inception** is the Inception network of Ioffe & Szegedy (2015, "Batch Normalization", Fig. 5
and its appendix): GoogLeNet with BN after every conv, each 5x5 conv replaced by two 3x3 convs,
three 28x28 modules (3a, 3b, 3c), modules 4a-4e and 5a, 5b, and stride-2 "reduction" modules 3c
and 4e instead of pooling layers between stages. Module widths are the table of that figure; a
module's output width is the sum of its branches (the table's output column says 576 for 4c and
4d and 1024 for 4e, which its own branch widths contradict; the sums 608, 608 and 1056 are what
the widely used Caffe BN-Inception model builds). The first conv is
a plain 7x7 conv: the appendix's separable 7x7 (depth multiplier 8) would give 1.95 GMACs, not
the paper's 2.03. No dropout: Ioffe & Szegedy removed it (their Section 4.2.1).

SE-BN-Inception follows the SE-Inception scheme (Section 3.3, Fig. 2): the whole Inception module
is the transformation F_tr and one SE block recalibrates its concatenated output; ten SE blocks.
At 224x224: 2.0326 / 2.0344 GMACs (paper: 2.03 / 2.04 GFLOPs).

**Inception-ResNet-v2** is built as Szegedy et al. (2016, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections") describe it: the Inception-v4 stem (their Fig. 3), 5 x
Inception-ResNet-A (Fig. 16), Reduction-A (Fig. 7 with k, l, m, n = 256, 256, 384, 384, Table 1),
10 x Inception-ResNet-B (Fig. 17), Reduction-B (Fig. 18), 5 x Inception-ResNet-C (Fig. 19),
global average pooling, dropout (keep 0.8) and the classifier (Fig. 15). Widths are 384, 1152 and
2144 channels, what the stem, Reduction-A and Reduction-B produce. The figures print 1154 (Fig. 17)
and 2048 (Fig. 19) for the B and C blocks' projections, which could not be added to their 1152-
and 2144-channel inputs; the identity addition fixes them. Details the paper leaves open follow
the authors' TF-slim code: the residual scales 0.17, 0.10 and 0.20 (the paper only says 0.1-0.3,
its Section 3.3) and a linear 1x1 projection with a bias and no BN.

This network is **9.258 GMACs** at 299x299, 2.49 G short of the 11.75 GFLOPs of Table 2. No
published definition gives 11.75: TF-slim / timm / Cadene (10/20/10 blocks of 320/1088/2080
channels, the Inception-v3-like stem and a final 1x1 conv to 1536) is 13.156; the paper's
blocks at 10/20/10 are 14.142; TF-slim's network with the paper's 5/10/5 blocks is 8.507.
(TF-slim's network with 5/20/5 blocks happens to give 11.756, but no source defines it.) The
paper's description is the faithful choice; the gap is a reported miss.

SE-Inception-ResNet-v2 uses the "similar scheme" of SE-ResNet (Section 3.3; the paper gives no
detail): SE on the Inception (non-identity) branch of every residual block, before the addition
with the identity; 20 SE blocks, +11.0 M MACs (paper: +0.01 G).
"""
from __future__ import annotations

import torch
from torch import nn

from ..se import SEConfig
from .head import Classifier
from .init import he_init
from .registry import register_model


class BasicConv2d(nn.Module):
    """Conv + BN + ReLU, the unit every Inception branch is made of."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        # BN follows, so a conv bias would only duplicate BN's shift.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


# ---- BN-Inception (Ioffe & Szegedy 2015, Fig. 5) -------------------------------------------

class InceptionBN(nn.Module):
    """A stride-1 BN-Inception module: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1, concatenated.

    ``pool`` is "avg" or "max" (the table's "Pool +proj" column). With ``se``, one SE block
    rescales the concatenated output (SE-Inception, Fig. 2).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, dbl3x3red: int,
                 dbl3x3: int, pool: str, pool_proj: int, se: SEConfig | None = None):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, ch3x3red, 1)
        self.branch3x3_2 = BasicConv2d(ch3x3red, ch3x3, 3, padding=1)
        # Two stacked 3x3 convs: the 5x5 of GoogLeNet, factorised.
        self.branch3x3dbl_1 = BasicConv2d(in_channels, dbl3x3red, 1)
        self.branch3x3dbl_2 = BasicConv2d(dbl3x3red, dbl3x3, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(dbl3x3, dbl3x3, 3, padding=1)
        self.branch_pool = (nn.AvgPool2d(3, 1, 1) if pool == "avg" else nn.MaxPool2d(3, 1, 1))
        self.branch_pool_proj = BasicConv2d(in_channels, pool_proj, 1)
        self.out_channels = ch1x1 + ch3x3 + dbl3x3 + pool_proj
        self.se = se.block(self.out_channels) if se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool_proj(self.branch_pool(x))
        out = torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)
        return self.se(out) if self.se is not None else out


class InceptionBNReduction(nn.Module):
    """A stride-2 BN-Inception module (3c, 4e): 1x1-3x3/2 | 1x1-3x3-3x3/2 | max pool/2.

    The pooled input passes through unprojected ("max + pass through"), so the output has
    ``in_channels + ch3x3 + dbl3x3`` channels. SE as in :class:`InceptionBN`.
    """

    def __init__(self, in_channels: int, ch3x3red: int, ch3x3: int, dbl3x3red: int, dbl3x3: int,
                 se: SEConfig | None = None):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, ch3x3red, 1)
        self.branch3x3_2 = BasicConv2d(ch3x3red, ch3x3, 3, stride=2, padding=1)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, dbl3x3red, 1)
        self.branch3x3dbl_2 = BasicConv2d(dbl3x3red, dbl3x3, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(dbl3x3, dbl3x3, 3, stride=2, padding=1)
        # Padding 1 makes the pool's output ceil(H/2), like the padded stride-2 convs, for every
        # H (Caffe's ceil-mode pool without padding agrees only for even H).
        self.branch_pool = nn.MaxPool2d(3, 2, 1)
        self.out_channels = in_channels + ch3x3 + dbl3x3
        self.se = se.block(self.out_channels) if se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(x)
        out = torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)
        return self.se(out) if self.se is not None else out


class BNInception(Classifier, nn.Module):
    """BN-Inception (Ioffe & Szegedy 2015, Fig. 5), with an SE block per module if ``se`` is given.

    ``feature_info``: the two stem convs (strides 2, 4) and the last module at strides 8, 16, 32.
    """

    first_conv = "conv1.conv"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, se: SEConfig | None = None):
        super().__init__()
        self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)
        # Caffe's ceil-mode pools: 112 -> 56 and 56 -> 28 at 224x224, as in the paper's table.
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2_reduce = BasicConv2d(64, 64, 1)
        self.conv2 = BasicConv2d(64, 192, 3, padding=1)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = InceptionBN(192, 64, 64, 64, 64, 96, "avg", 32, se)            # 256
        self.inception3b = InceptionBN(256, 64, 64, 96, 64, 96, "avg", 64, se)            # 320
        self.inception3c = InceptionBNReduction(320, 128, 160, 64, 96, se)                 # 576
        self.inception4a = InceptionBN(576, 224, 64, 96, 96, 128, "avg", 128, se)         # 576
        self.inception4b = InceptionBN(576, 192, 96, 128, 96, 128, "avg", 128, se)        # 576
        self.inception4c = InceptionBN(576, 160, 128, 160, 128, 160, "avg", 128, se)      # 608
        self.inception4d = InceptionBN(608, 96, 128, 192, 160, 192, "avg", 128, se)       # 608
        self.inception4e = InceptionBNReduction(608, 128, 192, 192, 256, se)               # 1056
        self.inception5a = InceptionBN(1056, 352, 192, 320, 160, 224, "avg", 128, se)     # 1024
        self.inception5b = InceptionBN(1024, 352, 192, 320, 192, 224, "max", 128, se)     # 1024
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.inception5b.out_channels
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)
        self.feature_info = [dict(module="conv1", num_chs=64, reduction=2),
                             dict(module="conv2", num_chs=192, reduction=4),
                             dict(module="inception3b", num_chs=self.inception3b.out_channels, reduction=8),
                             dict(module="inception4d", num_chs=self.inception4d.out_channels, reduction=16),
                             dict(module="inception5b", num_chs=self.num_features, reduction=32)]
        he_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(self.conv2_reduce(x)))
        x = self.inception3c(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        x = self.inception4e(x)
        return self.inception5b(self.inception5a(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ---- Inception-ResNet-v2 (Szegedy et al. 2016, Figs. 3, 7, 15-19) -------------------------

class Stem(nn.Module):
    """The Inception-v4 / Inception-ResNet-v2 stem (Fig. 3): 299x299x3 -> 35x35x384.

    Convs marked "V" in the figure are unpadded ("valid"), the others keep the size.
    """

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.conv1 = BasicConv2d(in_chans, 32, 3, stride=2)                # 149x149x32
        self.conv2 = BasicConv2d(32, 32, 3)                                # 147x147x32
        self.conv3 = BasicConv2d(32, 64, 3, padding=1)                     # 147x147x64
        self.pool4 = nn.MaxPool2d(3, 2)
        self.conv4 = BasicConv2d(64, 96, 3, stride=2)                      # 73x73x160
        self.branch5a_1 = BasicConv2d(160, 64, 1)
        self.branch5a_2 = BasicConv2d(64, 96, 3)
        self.branch5b_1 = BasicConv2d(160, 64, 1)
        self.branch5b_2 = BasicConv2d(64, 64, (7, 1), padding=(3, 0))
        self.branch5b_3 = BasicConv2d(64, 64, (1, 7), padding=(0, 3))
        self.branch5b_4 = BasicConv2d(64, 96, 3)                           # 71x71x192
        # Fig. 3 labels this conv "192 V" only, but the 35x35 output needs stride 2.
        self.conv6 = BasicConv2d(192, 192, 3, stride=2)
        self.pool6 = nn.MaxPool2d(3, 2)                                    # 35x35x384
        self.out_channels = 384

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(self.conv2(self.conv1(x)))
        x = torch.cat([self.pool4(x), self.conv4(x)], 1)
        branch5a = self.branch5a_2(self.branch5a_1(x))
        branch5b = self.branch5b_4(self.branch5b_3(self.branch5b_2(self.branch5b_1(x))))
        x = torch.cat([branch5a, branch5b], 1)
        return torch.cat([self.conv6(x), self.pool6(x)], 1)


def _residual(block: nn.Module, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``relu(x + scale * branch)``, with the SE gate on the scaled branch if the block has one.

    The branch is scaled first and SE then computes ``x + s * (scale * branch)`` in one fused
    operation (SE-ResNet's standard placement, Fig. 5(b)): the same sum as
    ``x + scale * (s * branch)``. The gate sees the branch times a constant, which only rescales
    the squeezed vector entering its first FC layer; the MACs are the same either way.
    """
    branch = branch * block.scale
    out = block.se(branch, x) if block.se is not None else x + branch
    return block.relu(out)


class InceptionResNetA(nn.Module):
    """The 35x35 Inception-ResNet-A block of Inception-ResNet-v2 (Fig. 16)."""

    def __init__(self, channels: int = 384, scale: float = 0.17, se: SEConfig | None = None):
        super().__init__()
        self.branch1x1 = BasicConv2d(channels, 32, 1)
        self.branch3x3_1 = BasicConv2d(channels, 32, 1)
        self.branch3x3_2 = BasicConv2d(32, 32, 3, padding=1)
        self.branch3x3dbl_1 = BasicConv2d(channels, 32, 1)
        self.branch3x3dbl_2 = BasicConv2d(32, 48, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(48, 64, 3, padding=1)
        # "1x1 Conv (384 Linear)": restores the width for the addition; no BN, no ReLU.
        self.project = nn.Conv2d(32 + 32 + 64, channels, 1)
        self.scale = scale
        self.se = se.block(channels) if se is not None else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch = self.project(torch.cat([branch1x1, branch3x3, branch3x3dbl], 1))
        return _residual(self, x, branch)


class ReductionA(nn.Module):
    """35x35 -> 17x17 reduction (Fig. 7), with k, l, m, n = 256, 256, 384, 384 (Table 1)."""

    def __init__(self, in_channels: int = 384, k: int = 256, l: int = 256, m: int = 384, n: int = 384):
        super().__init__()
        self.branch_pool = nn.MaxPool2d(3, 2)
        self.branch3x3 = BasicConv2d(in_channels, n, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, k, 1)
        self.branch3x3dbl_2 = BasicConv2d(k, l, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(l, m, 3, stride=2)
        self.out_channels = in_channels + n + m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch_pool(x), self.branch3x3(x), branch3x3dbl], 1)


class InceptionResNetB(nn.Module):
    """The 17x17 Inception-ResNet-B block of Inception-ResNet-v2 (Fig. 17)."""

    def __init__(self, channels: int = 1152, scale: float = 0.10, se: SEConfig | None = None):
        super().__init__()
        self.branch1x1 = BasicConv2d(channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(channels, 128, 1)
        self.branch7x7_2 = BasicConv2d(128, 160, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(160, 192, (7, 1), padding=(3, 0))
        # Fig. 17 prints 1154 here; only the input width (1152) can be added to the identity.
        self.project = nn.Conv2d(192 + 192, channels, 1)
        self.scale = scale
        self.se = se.block(channels) if se is not None else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch = self.project(torch.cat([branch1x1, branch7x7], 1))
        return _residual(self, x, branch)


class ReductionB(nn.Module):
    """17x17 -> 8x8 reduction of Inception-ResNet-v2 (Fig. 18)."""

    def __init__(self, in_channels: int = 1152):
        super().__init__()
        self.branch_pool = nn.MaxPool2d(3, 2)
        self.branch3x3a_1 = BasicConv2d(in_channels, 256, 1)
        self.branch3x3a_2 = BasicConv2d(256, 384, 3, stride=2)
        self.branch3x3b_1 = BasicConv2d(in_channels, 256, 1)
        self.branch3x3b_2 = BasicConv2d(256, 288, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 256, 1)
        self.branch3x3dbl_2 = BasicConv2d(256, 288, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(288, 320, 3, stride=2)
        self.out_channels = in_channels + 384 + 288 + 320

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3a = self.branch3x3a_2(self.branch3x3a_1(x))
        branch3x3b = self.branch3x3b_2(self.branch3x3b_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch_pool(x), branch3x3a, branch3x3b, branch3x3dbl], 1)


class InceptionResNetC(nn.Module):
    """The 8x8 Inception-ResNet-C block of Inception-ResNet-v2 (Fig. 19)."""

    def __init__(self, channels: int = 2144, scale: float = 0.20, se: SEConfig | None = None):
        super().__init__()
        self.branch1x1 = BasicConv2d(channels, 192, 1)
        self.branch3x3_1 = BasicConv2d(channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 224, (1, 3), padding=(0, 1))
        self.branch3x3_3 = BasicConv2d(224, 256, (3, 1), padding=(1, 0))
        # Fig. 19 prints 2048 here; the addition needs Reduction-B's 2144.
        self.project = nn.Conv2d(192 + 256, channels, 1)
        self.scale = scale
        self.se = se.block(channels) if se is not None else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        branch = self.project(torch.cat([branch1x1, branch3x3], 1))
        return _residual(self, x, branch)


class InceptionResNetV2(Classifier, nn.Module):
    """Inception-ResNet-v2 as in Fig. 15 of Szegedy et al. (2016): 5 A, 10 B and 5 C blocks.

    ``feature_info``: the outputs of the A, B and C blocks (strides 8, 16, 32).
    """

    first_conv = "stem.conv1.conv"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 blocks: tuple[int, int, int] = (5, 10, 5), se: SEConfig | None = None):
        super().__init__()
        self.stem = Stem(in_chans)
        channels = self.stem.out_channels
        self.blocks_a = nn.Sequential(*[InceptionResNetA(channels, se=se) for _ in range(blocks[0])])
        self.reduction_a = ReductionA(channels)
        channels = self.reduction_a.out_channels
        self.blocks_b = nn.Sequential(*[InceptionResNetB(channels, se=se) for _ in range(blocks[1])])
        self.reduction_b = ReductionB(channels)
        channels = self.reduction_b.out_channels
        self.blocks_c = nn.Sequential(*[InceptionResNetC(channels, se=se) for _ in range(blocks[2])])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.num_classes = num_classes
        # Fig. 15: "Dropout (keep 0.8)".
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        self.feature_info = [dict(module="blocks_a", num_chs=self.stem.out_channels, reduction=8),
                             dict(module="blocks_b", num_chs=self.reduction_a.out_channels, reduction=16),
                             dict(module="blocks_c", num_chs=channels, reduction=32)]
        he_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks_a(self.stem(x))
        x = self.blocks_b(self.reduction_a(x))
        return self.blocks_c(self.reduction_b(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _check_se(name: str, se: SEConfig) -> SEConfig:
    # The registry checks this too; repeat it for direct calls of the factory.
    se.check(name, stages=(), positions=("standard",))
    return se


@register_model(paper="Table 2")
def bn_inception(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
    """BN-Inception (Ioffe & Szegedy 2015); 2.03 GFLOPs at 224 (Table 2)."""
    return BNInception(num_classes, in_chans)


@register_model(baseline="bn_inception", paper="Table 2")
def se_bn_inception(num_classes: int = 1000, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    """SE-BN-Inception: an SE block on each Inception module's output (Section 3.3, Fig. 2, Table 2)."""
    return BNInception(num_classes, in_chans, _check_se("se_bn_inception", se))


@register_model(input_size=(3, 299, 299), min_size=75, paper="Table 2")
def inception_resnet_v2(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> nn.Module:
    """Inception-ResNet-v2 as Szegedy et al. (2016) describe it; 9.26 GMACs at 299 (Table 2: 11.75)."""
    return InceptionResNetV2(num_classes, in_chans, drop_rate)


@register_model(baseline="inception_resnet_v2", input_size=(3, 299, 299), min_size=75, paper="Table 2")
def se_inception_resnet_v2(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                           se: SEConfig = SEConfig()) -> nn.Module:
    """SE-Inception-ResNet-v2: SE on the Inception branch of every residual block, before the
    addition (Section 3.3, Table 2)."""
    return InceptionResNetV2(num_classes, in_chans, drop_rate,
                             se=_check_se("se_inception_resnet_v2", se))
