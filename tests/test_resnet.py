"""SE-ResNet / SE-ResNeXt / SENet-154 structure (Table 1, Section 6.5, Appendix)."""
import pytest
import torch

from senet_core import SEBlock, create_model, se_modules
from senet_core.models.resnet import Bottleneck


def gated_channels(model):
    return [b.channels for b in se_modules(model).values()]


def test_table1_output_sizes_and_gate_sizes():
    model = create_model("se_resnet50").eval()
    x = torch.zeros(1, 3, 224, 224)
    sizes = []
    with torch.no_grad():
        x = model.stem.relu1(model.stem.bn1(model.stem.conv1(x)))
        sizes.append(x.shape[-1])
        x = model.stem.pool(x)
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            x = layer(x)
            sizes.append(x.shape[-1])
    assert sizes == [112, 56, 28, 14, 7]
    fc = [(b.fc1.out_features, b.fc1.in_features) for b in se_modules(model).values()]
    assert sorted(set(fc)) == [(16, 256), (32, 512), (64, 1024), (128, 2048)]   # Table 1 "fc [16, 256]" ...
    assert len(fc) == 16


def test_resnext_widths_table1():
    model = create_model("se_resnext50_32x4d")
    firsts = [model.layer1[0], model.layer2[0], model.layer3[0], model.layer4[0]]
    assert [(b.conv1.out_channels, b.conv2.out_channels, b.conv2.groups, b.conv3.out_channels) for b in firsts] == [
        (128, 128, 32, 256), (256, 256, 32, 512), (512, 512, 32, 1024), (1024, 1024, 32, 2048)]


def test_stride_placement():
    paper = create_model("resnet50")
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    tv = create_model("resnet50", stride_in_1x1=False)
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)
    resnext = create_model("resnext50_32x4d")
    assert resnext.layer2[0].conv2.stride == (2, 2)


def test_senet154_appendix():
    model = create_model("senet154")
    assert [m.out_channels for m in (model.stem.conv1, model.stem.conv2, model.stem.conv3)] == [64, 64, 128]
    assert model.stem.conv1.stride == (2, 2) and model.stem.conv1.kernel_size == (3, 3)
    block = model.layer1[0]
    assert (block.conv1.out_channels, block.conv2.out_channels, block.conv2.groups, block.conv3.out_channels) == (
        128, 256, 64, 256)                                            # (a): first 1x1 at half width
    assert model.layer1[0].downsample[0].kernel_size == (1, 1)
    assert all(getattr(model, f"layer{i}")[0].downsample[0].kernel_size == (3, 3) for i in (2, 3, 4))   # (c)
    assert model.dropout.p == 0.2                                     # (d)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 8, 36, 3]


@pytest.mark.parametrize("position,channels", [
    ("standard", [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3),
    ("post", [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3),
    ("identity", [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3),
    ("pre", [64, 256, 256, 256, 512, 512, 512, 512, 1024, 1024, 1024, 1024, 1024, 1024, 2048, 2048]),
    ("3x3", [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3),
])
def test_integration_positions_gate_the_right_tensors(position, channels):
    model = create_model("se_resnet50", se_position=position, num_classes=4)
    assert gated_channels(model) == channels
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4)


def _run_block(position):
    torch.manual_seed(0)
    from senet_core import SEConfig
    block = Bottleneck(8, 4, 8, se=SEConfig(reduction=2, position=position)).eval()
    return block, torch.randn(2, 8, 5, 5)


def test_positions_compute_what_fig5_draws():
    with torch.no_grad():
        block, x = _run_block("standard")
        branch = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
        torch.testing.assert_close(block(x), torch.relu(block.se(branch) + x))

        block, x = _run_block("identity")
        branch = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
        torch.testing.assert_close(block(x), torch.relu(branch + block.se(x)))

        block, x = _run_block("post")
        branch = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
        torch.testing.assert_close(block(x), block.se(torch.relu(branch + x)))

        block, x = _run_block("pre")
        y = block.se(x)
        branch = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(y))))))))
        torch.testing.assert_close(block(x), torch.relu(branch + x))


def test_se_stages_select_paper_stages():
    model = create_model("se_resnet50", se_stages=(3,))
    names = list(se_modules(model))
    assert len(names) == 4 and all(n.startswith("layer2.") for n in names)   # stage 3 = conv3_x = layer2


def test_nosqueeze_model():
    model = create_model("se_resnet50", squeeze="none", num_classes=3)
    assert all(type(b).__name__ == "NoSqueeze" for b in se_modules(model).values())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert not any(isinstance(b, SEBlock) for b in se_modules(model).values())
