"""Section 5.1, Tables 4-5: the Shake-Shake networks of the CIFAR rows, each beside its SE version.

* Shake-Shake 26 2x96d (CIFAR-10, Table 4) and Shake-Even 29 2x4x64d (CIFAR-100, Table 5):
  Gastaldi 2017, "Shake-Shake regularization". The paper trains both with Cutout (DeVries &
  Taylor 2017), a data augmentation that leaves the networks unchanged.

SE integration and stage numbers as for the pre-activation ResNets of :mod:`senet_core.models.cifar`:
one SE block per residual unit, before the addition (Section 3.3), the Section 6.5 positions through
``se.position``, and SE in stages 2-4 (``se.stages``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..se import SEConfig, close_residual
from .cifar import (CIFAR_INPUT, CIFAR_SE_STAGES, RESIDUAL_POSITIONS, cifar_feature_info, conv1x1, conv3x3,
                    unit_se)
from .head import Classifier
from .init import he_init
from .registry import register_model

__all__ = ["Shake", "shake", "ShakeBasicBranch", "ShakeBottleneckBranch", "ShakeShortcut", "ShakeBlock",
           "ShakeResNet"]


class Shake(torch.autograd.Function):
    """The Shake-Shake combination of two residual branches (Gastaldi 2017, Section 2), training mode.

    Forward: ``alpha * a + (1 - alpha) * b`` with ``alpha ~ U(0, 1)`` drawn per image ("Image"
    level). Backward: the upstream gradient is split ``beta`` / ``1 - beta`` with an independent
    per-image ``beta ~ U(0, 1)`` ("Shake-Shake"), or ``beta = 0.5`` when ``even_backward``
    ("Shake-Even"). Use :func:`shake`, which also handles evaluation.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, even_backward: bool = False) -> torch.Tensor:
        alpha = torch.rand(a.shape[0], *([1] * (a.dim() - 1)), dtype=a.dtype, device=a.device)
        ctx.even_backward = even_backward
        return torch.lerp(b, a, alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.even_backward:
            beta = 0.5
        else:
            beta = torch.rand(grad.shape[0], *([1] * (grad.dim() - 1)), dtype=grad.dtype, device=grad.device)
        return grad * beta, grad * (1 - beta), None


def shake(a: torch.Tensor, b: torch.Tensor, training: bool, even_backward: bool = False) -> torch.Tensor:
    """Combine two branches: :class:`Shake` in training, their expectation ``0.5 (a + b)`` at test."""
    if not training:
        return 0.5 * (a + b)
    return Shake.apply(a, b, even_backward)


# A symbolic trace (torch.fx) records ``shake`` as one call, run as above when the graph runs: it
# cannot enter an autograd.Function. ``training`` is fixed in the graph, as for any traced branch.
torch.fx.wrap("shake")


class ShakeBasicBranch(nn.Module):
    """One residual branch of Shake-Shake 26 2x96d: conv3x3-BN-ReLU-conv3x3-BN.

    The branch's leading ReLU is applied once by :class:`ShakeBlock` and shared.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class ShakeBottleneckBranch(nn.Module):
    """One residual branch of Shake-Even 29 2x4x64d: a ResNeXt bottleneck (Xie et al. 2017),
    conv1x1-BN-ReLU-grouped conv3x3-BN-ReLU-conv1x1-BN.

    "4x64d": the grouped 3x3 has ``cardinality`` = 4 groups of 64 channels in the first stage,
    doubling per stage, so the middle is as wide as the output (256/512/1024). Stride on the
    grouped 3x3, as in ResNeXt. The leading ReLU is shared, as in :class:`ShakeBasicBranch`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, cardinality: int = 4):
        super().__init__()
        self.conv1 = conv1x1(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels, stride, groups=cardinality)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = conv1x1(out_channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ShakeShortcut(nn.Module):
    """Gastaldi 2017, Section 2.2: the shortcut of a unit that changes shape.

    Two paths on the (ReLU-activated) input, each a 1x1 average pool of stride ``stride`` and a
    1x1 conv to half the output channels; the second path first shifts its input by one pixel
    (down-right, zero-filled) so the two paths subsample different pixels. Concatenated, then BN.
    Also used at stride 1 where the first stage widens 16 -> 96 channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.pool = nn.AvgPool2d(1, stride=stride)
        self.conv1 = conv1x1(in_channels, out_channels // 2)
        self.conv2 = conv1x1(in_channels, out_channels - out_channels // 2)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path1 = self.conv1(self.pool(x))
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        path2 = self.conv2(self.pool(shifted))
        return self.bn(torch.cat([path1, path2], dim=1))


class ShakeBlock(nn.Module):
    """A Shake-Shake residual unit (Gastaldi 2017): ``x + shake(branch1(x), branch2(x))``.

    Both branches start with a ReLU, applied once here and shared with the projection shortcut
    (which also activates its input); no ReLU follows the addition.

    SE: the paper does not say where the SE block goes relative to the two shaken branches. We
    put one SE block on the combined (shaken) residual, before the addition: that is Section
    3.3's "residual branch before the addition", with one gate per unit and the same parameter
    cost as any other SE unit. The Section 6.5 variants follow the same reading: SE-PRE gates the
    activated input shared by both branches (the identity bypasses it), SE-Identity the shortcut,
    SE-POST the sum.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, se: SEConfig | None = None,
                 branch: type[nn.Module] = ShakeBasicBranch, even_backward: bool = False):
        super().__init__()
        self.relu = nn.ReLU()
        self.branch1 = branch(in_channels, out_channels, stride)
        self.branch2 = branch(in_channels, out_channels, stride)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ShakeShortcut(in_channels, out_channels, stride)
        self.even_backward = even_backward
        self.se_position = se.position if se is not None else None
        gated = in_channels if self.se_position == "pre" else out_channels
        self.se = unit_se(se, gated, RESIDUAL_POSITIONS, "Shake-Shake unit")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(x)
        shortcut = x if self.shortcut is None else self.shortcut(out)
        if self.se_position == "pre":
            out = self.se(out)
        out = shake(self.branch1(out), self.branch2(out), self.training, self.even_backward)
        return close_residual(out, shortcut, self.se, self.se_position)


class ShakeResNet(Classifier, nn.Module):
    """Shake-Shake networks for 32x32 inputs (Gastaldi 2017, Section 2.2).

    ``widths`` = (stem, stage 2, stage 3, stage 4) output channels; stages 3 and 4 halve the
    resolution. Stem: 3x3 conv + BN; then ReLU, global average pooling, ``fc``. The trunk ends with
    that ReLU (the last ``feature_info`` stage).
    """

    def __init__(self, branch: type[nn.Module], blocks_per_stage: int, widths: tuple[int, int, int, int],
                 num_classes: int = 10, in_chans: int = 3, se: SEConfig | None = None,
                 even_backward: bool = False):
        super().__init__()
        self.conv1 = conv3x3(in_chans, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_stage(branch, widths[0], widths[1], blocks_per_stage, 1, 2, se, even_backward)
        self.layer2 = self._make_stage(branch, widths[1], widths[2], blocks_per_stage, 2, 3, se, even_backward)
        self.layer3 = self._make_stage(branch, widths[2], widths[3], blocks_per_stage, 2, 4, se, even_backward)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        self.num_features, self.num_classes = widths[3], num_classes
        self.feature_info = cifar_feature_info("bn1", widths, "relu")
        he_init(self)

    @staticmethod
    def _make_stage(branch, in_channels, out_channels, blocks, stride, stage, se, even_backward):
        se = se if se is not None and se.in_stage(stage) else None
        layers = [ShakeBlock(in_channels, out_channels, stride, se, branch, even_backward)]
        layers += [ShakeBlock(out_channels, out_channels, 1, se, branch, even_backward)
                   for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.relu(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _shake_shake26_2x96d(num_classes: int, in_chans: int, se: SEConfig | None = None) -> ShakeResNet:
    """Shake-Shake 26 2x96d: depth 6n+2 with n=4 units of two basic branches, 96/192/384 channels."""
    return ShakeResNet(ShakeBasicBranch, 4, (16, 96, 192, 384), num_classes, in_chans, se)


def _shake_even29_2x4x64d(num_classes: int, in_chans: int, se: SEConfig | None = None) -> ShakeResNet:
    """Shake-Even 29 2x4x64d: depth 9n+2 with n=3 units of two ResNeXt branches (4 groups of 64
    channels first), an even split of the gradient between the branches."""
    return ShakeResNet(ShakeBottleneckBranch, 3, (64, 256, 512, 1024), num_classes, in_chans, se,
                       even_backward=True)


@register_model(**CIFAR_INPUT, paper="Table 4")
def shake_shake26_2x96d_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    return _shake_shake26_2x96d(num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="Table 4", baseline="shake_shake26_2x96d_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=RESIDUAL_POSITIONS)
def se_shake_shake26_2x96d_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _shake_shake26_2x96d(num_classes, in_chans, se)


@register_model(**CIFAR_INPUT, paper="Table 5")
def shake_even29_2x4x64d_cifar(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    return _shake_even29_2x4x64d(num_classes, in_chans)


@register_model(**CIFAR_INPUT, paper="Table 5", baseline="shake_even29_2x4x64d_cifar", se_stages=CIFAR_SE_STAGES,
                se_positions=RESIDUAL_POSITIONS)
def se_shake_even29_2x4x64d_cifar(num_classes: int = 10, in_chans: int = 3, se: SEConfig = SEConfig()) -> nn.Module:
    return _shake_even29_2x4x64d(num_classes, in_chans, se)
