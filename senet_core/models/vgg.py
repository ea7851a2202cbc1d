"""VGG-16 with batch normalisation and SE-VGG-16 (Section 3.3, Section 5.1, Table 2).

VGG-16 is configuration D of Simonyan & Zisserman (2015): thirteen 3x3 convolutions in five
groups separated by 2x2 max pooling, then three fully connected layers. The paper trains it
"with batch normalization layers after each convolution" (Section 5.1, Table 2 caption), since
plain VGG-16 does not train well from scratch with the paper's recipe.

SE-VGG-16 has no residual branch, so the SE block is "inserted after the non-linearity following
each convolution" (Section 3.3): 13 SE blocks. At 224x224 this gives 15.470 / 15.484 GMACs
(paper: 15.47 / 15.48 GFLOPs, Table 2).
"""
from __future__ import annotations

import torch
from torch import nn

from ..se import SEConfig
from .head import Classifier
from .init import he_init
from .registry import register_model

# Configuration D: output channels of each 3x3 conv, "M" for a 2x2/2 max pool.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512, "M")


class ConvUnit(nn.Module):
    """3x3 conv + BN + ReLU, followed by an SE block in SE-VGG (Section 3.3)."""

    def __init__(self, in_channels: int, out_channels: int, se: SEConfig | None = None):
        super().__init__()
        # BN follows, so a conv bias would only duplicate BN's shift.
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.se = se.block(out_channels) if se is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.conv(x)))
        if self.se is not None:
            out = self.se(out)
        return out


class VGG(Classifier, nn.Module):
    """VGG with BN. ``features`` holds the conv units and pools, ``classifier`` the FC stack.

    The 7x7 adaptive pool keeps VGG's 512*7*7 -> 4096 classifier (and its 102.8 M MACs, part of
    the paper's 15.47 G) while accepting any input size: smaller maps are upsampled by repetition.
    The head is that pool and all three FC layers; ``get_classifier()`` is the last one, which
    reads ``head_hidden_size`` = 4096 units. ``feature_info``: the last conv unit before each pool
    (strides 1-16) and the last pool (stride 32, the trunk's output).
    """

    first_conv = "features.0.conv"
    classifier_name = "classifier.6"

    def __init__(self, layers=VGG16_LAYERS, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.5, se: SEConfig | None = None):
        super().__init__()
        units: list[nn.Module] = []
        self.feature_info = []
        channels = in_chans
        for spec in layers:
            if spec == "M":
                self.feature_info.append(dict(module=f"features.{len(units) - 1}", num_chs=channels,
                                              reduction=2 ** len(self.feature_info)))
                units.append(nn.MaxPool2d(2, 2))
            else:
                units.append(ConvUnit(channels, spec, se))
                channels = spec
        self.feature_info.append(dict(module=f"features.{len(units) - 1}", num_chs=channels,
                                      reduction=2 ** len(self.feature_info)))
        self.features = nn.Sequential(*units)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(4096, num_classes),
        )
        self.num_features, self.head_hidden_size, self.num_classes = channels, 4096, num_classes
        he_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        if not pre_logits:
            return self.classifier(x)
        for layer in list(self.classifier)[:-1]:    # the 4096 units the last FC layer reads
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _vgg(name: str, num_classes: int, in_chans: int, drop_rate: float,
         se: SEConfig | None) -> VGG:
    if se is not None:
        # The registry checks this too; repeat it for direct calls of the factory.
        se.check(name, stages=(), positions=("standard",))
    return VGG(VGG16_LAYERS, num_classes, in_chans, drop_rate, se)


@register_model(paper="Table 2")
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> nn.Module:
    """VGG-16 (configuration D) with BN after every conv; 15.47 GFLOPs at 224 (Table 2)."""
    return _vgg("vgg16_bn", num_classes, in_chans, drop_rate, None)


@register_model(baseline="vgg16_bn", se_stages=(), paper="Table 2")
def se_vgg16_bn(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5,
                se: SEConfig = SEConfig()) -> nn.Module:
    """SE-VGG-16: an SE block after the ReLU of each of the 13 convs (Section 3.3, Table 2)."""
    return _vgg("se_vgg16_bn", num_classes, in_chans, drop_rate, se)
