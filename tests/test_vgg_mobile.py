"""VGG-16 (Table 2) and the mobile networks of Table 3 against the paper's complexity columns.

Counts use ``senet_core.complexity`` at 3x224x224 (MACs of conv/FC + one multiply per element an
SE block scales; NOTES.md Section 3).
"""
from __future__ import annotations

import functools

import pytest
import torch

import senet_core
from senet_core.models.mobile import MOBILENET_V1_BLOCKS, SHUFFLENET_G3_STAGES
from senet_core.se import hidden_width

MODELS = ("vgg16_bn", "se_vgg16_bn", "mobilenet_v1", "se_mobilenet_v1",
          "shufflenet_v1_g3", "se_shufflenet_v1_g3")
R = 16


# Building VGG-16 (138M parameters) takes a second or two on CPU: build each variant once.
def build(name: str, se_bias: bool = True, in_chans: int = 3, num_classes: int = 1000):
    return _build(name, se_bias, in_chans, num_classes)  # one cache key however it is called


@functools.lru_cache(maxsize=None)
def _build(name, se_bias, in_chans, num_classes):
    options = {} if se_bias else {"se_bias": False}
    return senet_core.create_model(name, num_classes=num_classes, in_chans=in_chans, **options)


@functools.lru_cache(maxsize=None)
def count(name: str, se_bias: bool = True):
    return senet_core.complexity(build(name, se_bias), (3, 224, 224))


def se_weights(widths) -> int:
    """Eq. 5 for a list of gated widths, with the bottleneck C // r that SEBlock builds."""
    return sum(2 * c * hidden_width(c, R) for c in widths)


# ---- VGG-16 (Table 2) ----------------------------------------------------------------------

@pytest.mark.parametrize("name, gflops", [("vgg16_bn", 15.47), ("se_vgg16_bn", 15.48)])
def test_vgg_gflops(name, gflops):
    assert abs(round(count(name).macs / 1e9, 2) - gflops) <= 0.02


def test_vgg_exact_counts():
    assert count("vgg16_bn").macs == 15_470_264_320
    assert count("se_vgg16_bn").macs == 15_484_038_144
    assert count("vgg16_bn").params == 138_361_768
    widths = [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    # SE weights only (Eq. 5 has no biases), read off the default model to avoid a third build.
    weights = sum(m.fc1.weight.numel() + m.fc2.weight.numel()
                  for m in senet_core.se_modules(build("se_vgg16_bn")).values())
    assert weights == se_weights(widths) == 226_304


# ---- MobileNet (Table 3) -------------------------------------------------------------------

@pytest.mark.parametrize("name, mflops, params_m", [("mobilenet_v1", 569, 4.2),
                                                    ("se_mobilenet_v1", 572, 4.7)])
def test_mobilenet_complexity(name, mflops, params_m):
    c = count(name)
    assert abs(c.macs - mflops * 1e6) <= 0.01 * mflops * 1e6
    assert abs(c.params - params_m * 1e6) <= 0.1e6


def test_mobilenet_se_weights_follow_eq5():
    widths = [c for c, _ in MOBILENET_V1_BLOCKS]
    assert len(widths) == 13
    # Every width is a multiple of r, so C // r = C / r and Eq. 5 is exactly 2/r * sum(C^2).
    eq5 = 2 * sum(c * c for c in widths) // R
    assert eq5 == 479_744
    base, se = count("mobilenet_v1"), count("se_mobilenet_v1", se_bias=False)
    assert se.params - base.params == se.se_params == eq5
    assert base.params == 4_231_976 and base.macs == 568_740_352
    assert count("se_mobilenet_v1").macs == 571_929_600


# ---- ShuffleNet (Table 3) ------------------------------------------------------------------

def shufflenet_branch_widths(in_channels: int = 24):
    widths = []
    for units, out in SHUFFLENET_G3_STAGES:
        widths += [out - in_channels] + [out] * (units - 1)
        in_channels = out
    return widths


def test_shufflenet_params():
    assert abs(count("shufflenet_v1_g3").params - 1.8e6) <= 0.1e6
    assert abs(count("se_shufflenet_v1_g3").params - 2.4e6) <= 0.1e6
    assert count("shufflenet_v1_g3").params == 1_865_728
    assert count("se_shufflenet_v1_g3").params == 2_484_533


def test_shufflenet_se_weights():
    widths = shufflenet_branch_widths()
    assert len(widths) == 16 and widths[0] == 216
    base, se = count("shufflenet_v1_g3"), count("se_shufflenet_v1_g3", se_bias=False)
    assert se.params - base.params == se.se_params == se_weights(widths) == 610_416
    # NOTES.md's 610,632 is 2/r * sum(C^2) with a fractional C/r; the 216-channel branch gets
    # 216 // 16 = 13 hidden units instead of 13.5, i.e. 2 * 216 * 0.5 = 216 fewer weights.
    assert 2 * sum(c * c for c in widths) // R - se.se_params == 216


def test_shufflenet_macs():
    base, se = count("shufflenet_v1_g3"), count("se_shufflenet_v1_g3")
    assert base.macs == 137_460_672 and se.macs == 139_675_152
    # Not within 1 % of Table 3's 140 / 142: the architecture as specified by Zhang et al. is
    # 137 MFLOPs (their figure for g=3); 140 is the nominal "1x" budget. The report lists it as an
    # explained miss (senet_core.complexity.EXPLAINED_MISSES, tested in test_complexity.py).
    # The SE increment is the paper's: 142 - 140 = 2 MFLOPs (2.2 M before rounding).
    assert round((se.macs - base.macs) / 1e6) == 142 - 140


# ---- every model ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_forward_small_and_grey(name):
    model = build(name, in_chans=1, num_classes=10)
    model.train()  # batch statistics must exist even where the last map is 1x1
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, blocks", [("se_vgg16_bn", 13), ("se_mobilenet_v1", 13),
                                          ("se_shufflenet_v1_g3", 16)])
def test_every_se_block_is_on_the_forward_path(name, blocks):
    model = build(name, in_chans=1, num_classes=10).eval()
    assert len(senet_core.se_modules(model)) == blocks
    with senet_core.capture_gates(model) as gates, torch.no_grad():
        model(torch.randn(1, 1, 32, 32))
    assert len(gates) == blocks


@pytest.mark.parametrize("name", ["vgg16_bn", "mobilenet_v1", "shufflenet_v1_g3"])
def test_baselines_have_no_se(name):
    assert not senet_core.se_modules(build(name))


def test_se_options_are_validated():
    with pytest.raises(ValueError):
        senet_core.create_model("se_mobilenet_v1", se_stages=(2,))
    with pytest.raises(ValueError):
        senet_core.create_model("se_shufflenet_v1_g3", se_position="pre")
    model = senet_core.create_model("se_shufflenet_v1_g3", squeeze="none", num_classes=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
