"""senet_core.models.cifar and .shake: the CIFAR networks of Section 5.1 (Tables 4-5) and the reduced-scale nets."""
import pytest
import torch

from senet_core import SEConfig, complexity, create_model, se_modules
from senet_core.models.cifar import PreActBasicBlock, PreActBottleneck
from senet_core.models.shake import ShakeBasicBranch, ShakeBlock, ShakeBottleneckBranch, shake
from senet_core.se import NoSqueeze, SEBlock


def build(name, num_classes=10, **options):
    # create_model defaults to ImageNet's 1000 classes; CIFAR-10 has 10.
    return create_model(name, num_classes=num_classes, **options)


def params(model):
    return sum(p.numel() for p in model.parameters())


# Exact counts at num_classes=10 beside the published ones (pre-activation ResNets: He et al.
# 2016b; WRN: Zagoruyko & Komodakis 2016; Shake-Shake/Even: Gastaldi 2017, which gives 34.4M
# for 2x4x64d, the count of ResNeXt-29 8x64d; with a 100-way classifier ours is 34,529,700).
PARAMS = {
    "resnet110_cifar": (1_730_522, 1.7e6),
    "resnet164_cifar": (1_703_258, 1.7e6),
    "wrn16_8_cifar": (10_961_370, 11.0e6),
    "shake_shake26_2x96d_cifar": (26_192_922, 26.2e6),
    "shake_even29_2x4x64d_cifar": (34_437_450, 34.4e6),
}


@pytest.mark.parametrize("name", PARAMS)
def test_param_counts_match_the_papers(name):
    exact, published = PARAMS[name]
    n = params(build(name))
    assert n == exact
    assert abs(n - published) < 0.1e6


def test_se_adds_the_gate_parameters_only():
    base = params(build("resnet110_cifar"))
    se = build("se_resnet110_cifar")
    assert params(se) == base + sum(params(b) for b in se_modules(se).values())


def _block_types(model):
    return [m for m in model.modules() if isinstance(m, (PreActBasicBlock, PreActBottleneck, ShakeBlock))]


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity"])
def test_resnet20_every_position_runs_forward_and_backward(position):
    torch.manual_seed(0)
    model = build("se_resnet20_cifar", se_position=position)
    x = torch.randn(2, 3, 28, 28)
    out = model(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    for block in se_modules(model).values():
        assert block.fc1.weight.grad is not None, f"{position}: an SE block is off the forward path"


# Channels gated by each of the 9 units of ResNet-20 (3 per stage, widths 16/32/64).
RESNET20_GATED = {
    "standard": [16, 16, 16, 32, 32, 32, 64, 64, 64],
    "post": [16, 16, 16, 32, 32, 32, 64, 64, 64],
    "identity": [16, 16, 16, 32, 32, 32, 64, 64, 64],
    "pre": [16, 16, 16, 16, 32, 32, 32, 64, 64],   # the unit's input: the first of a stage is narrower
}


@pytest.mark.parametrize("position", RESNET20_GATED)
def test_resnet20_positions_place_one_gate_per_unit(position):
    model = build("se_resnet20_cifar", se_position=position)
    blocks = _block_types(model)
    assert len(blocks) == 9
    assert [b.se.channels for b in blocks] == RESNET20_GATED[position]
    assert all(b.se_position == position for b in blocks)


def test_identity_gate_scales_the_shortcut_and_standard_the_branch():
    torch.manual_seed(0)
    block = PreActBasicBlock(16, 16, se=SEConfig(position="standard")).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        branch = block.conv2(block.relu(block.bn2(block.conv1(block.relu(block.bn1(x))))))
        torch.testing.assert_close(block(x), x + block.se(branch))
        block.se_position = "identity"
        torch.testing.assert_close(block(x), branch + block.se(x))
        block.se_position = "post"
        torch.testing.assert_close(block(x), block.se(branch + x))


def test_resnet164_positions_including_3x3():
    expected = {  # first unit of stage 2, of stage 3, last unit
        "standard": (64, 128, 256), "post": (64, 128, 256), "identity": (64, 128, 256),
        "pre": (16, 64, 256), "3x3": (16, 32, 64),
    }
    for position, (first, stage3, last) in expected.items():
        model = build("se_resnet164_cifar", se_position=position)
        assert len(se_modules(model)) == 54
        assert model.layer1[0].se.channels == first
        assert model.layer2[0].se.channels == stage3
        assert model.layer3[-1].se.channels == last


def test_3x3_is_for_bottlenecks_only():
    with pytest.raises(ValueError, match="3x3"):
        build("se_resnet110_cifar", se_position="3x3")
    with pytest.raises(ValueError, match="3x3"):
        PreActBasicBlock(16, 16, se=SEConfig(position="3x3"))


def test_bottleneck_3x3_runs():
    block = PreActBottleneck(64, 128, stride=2, se=SEConfig(position="3x3"))
    block(torch.randn(2, 64, 8, 8)).sum().backward()
    assert block.se.fc1.weight.grad is not None


def test_se_stages_selects_stages():
    model = build("se_resnet20_cifar", se_stages=(3,))
    assert [name.split(".")[0] for name in se_modules(model)] == ["layer2"] * 3
    assert model.layer1[0].se is None and model.layer3[0].se is None
    with pytest.raises(ValueError, match="se_stages"):
        build("se_resnet20_cifar", se_stages=(5,))


def test_nosqueeze_builds():
    model = build("se_resnet20_cifar", squeeze="none", se_position="identity")
    assert all(isinstance(b, NoSqueeze) for b in se_modules(model).values())
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_shake_eval_is_the_mean():
    a, b = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(shake(a, b, training=False), 0.5 * (a + b))


def test_shake_training_forward_draws_alpha_per_image():
    torch.manual_seed(0)
    a, b = torch.ones(64, 2, 3, 3), torch.zeros(64, 2, 3, 3)
    out = shake(a, b, training=True)
    alpha = out[:, 0, 0, 0]
    assert (out == alpha[:, None, None, None]).all()   # one alpha per image
    assert ((alpha >= 0) & (alpha <= 1)).all()
    assert alpha.std() > 0.1                            # drawn anew for each image


@pytest.mark.parametrize("even", [True, False])
def test_shake_backward(even):
    torch.manual_seed(0)
    a = torch.randn(64, 2, 3, 3, requires_grad=True)
    b = torch.randn(64, 2, 3, 3, requires_grad=True)
    grad = torch.randn(64, 2, 3, 3)
    shake(a, b, training=True, even_backward=even).backward(grad)
    if even:
        assert torch.equal(a.grad, 0.5 * grad) and torch.equal(b.grad, 0.5 * grad)
    else:
        torch.testing.assert_close(a.grad + b.grad, grad)
        beta = a.grad[:, 0, 0, 0] / grad[:, 0, 0, 0]
        torch.testing.assert_close(a.grad, beta[:, None, None, None] * grad)
        assert ((beta >= 0) & (beta <= 1)).all() and beta.std() > 0.1


def test_shake_nets_use_their_backward():
    assert not build("shake_shake26_2x96d_cifar").layer1[0].even_backward
    assert build("shake_even29_2x4x64d_cifar").layer1[0].even_backward


def test_se_shake_shake_gates_the_combined_residual():
    model = build("se_shake_shake26_2x96d_cifar")
    gates = se_modules(model)
    assert len(gates) == 12 and all(isinstance(g, SEBlock) for g in gates.values())
    assert [model.layer1[0].se.channels, model.layer2[0].se.channels, model.layer3[0].se.channels] == [96, 192, 384]


@pytest.mark.parametrize("branch", [ShakeBasicBranch, ShakeBottleneckBranch])
@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity"])
def test_shake_block_positions(branch, position):
    # One unit of each Shake network, narrowed so that the test stays fast.
    torch.manual_seed(0)
    block = ShakeBlock(16, 32, stride=2, se=SEConfig(position=position, reduction=4), branch=branch)
    assert block.se.channels == (16 if position == "pre" else 32)
    out = block(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 32, 4, 4)
    out.sum().backward()
    assert block.se.fc1.weight.grad is not None


@pytest.mark.parametrize("name", ["resnet20_cifar", "se_resnet20_cifar", "se_resnet164_cifar", "se_wrn16_8_cifar",
                                  "se_shake_shake26_2x96d_cifar", "se_shake_even29_2x4x64d_cifar"])
def test_fashion_mnist_one_channel(name):
    model = build(name, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_min_size_and_classes():
    model = build("se_resnet110_cifar", num_classes=100).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 100)
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.randn(1, 3, 7, 7))


def test_wrn_dropout_option():
    model = build("wrn16_8_cifar", drop_rate=0.3)
    assert model.layer1[0].dropout.p == 0.3


def test_complexity_at_32():
    # MACs at 32x32 (conv + FC, plus SE's channel scaling; Section 4 convention).
    assert complexity(build("resnet110_cifar"), (3, 32, 32)).macs == pytest.approx(253.15e6, rel=1e-3)
    se = complexity(build("se_resnet110_cifar"), (3, 32, 32))
    assert se.macs == pytest.approx(253.68e6, rel=1e-3)
