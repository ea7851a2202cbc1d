"""Importing the released checkpoints in the layout of the public PyTorch ports (Cadene / timm legacy)."""
import pytest
import timm
import torch

from senet_core import create_model
from senet_core.models.weights import RELEASED, convert_port_state_dict

# Our model and the port's definition of the same network (timm keeps Cadene's as legacy_*).
PORTS = {
    "se_resnet50": "legacy_seresnet50",
    "se_resnet101": "legacy_seresnet101",
    "se_resnet152": "legacy_seresnet152",
    "se_resnext50_32x4d": "legacy_seresnext50_32x4d",
    "se_resnext101_32x4d": "legacy_seresnext101_32x4d",
    "senet154": "legacy_senet154",
}


def port_checkpoint(port_name: str, path) -> torch.nn.Module:
    """A port model with non-trivial BN statistics, saved as a state dict in the port's layout."""
    torch.manual_seed(0)
    port = timm.create_model(port_name).eval()
    with torch.no_grad():
        for m in port.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
                m.weight.uniform_(0.9, 1.1)
                m.bias.uniform_(-0.1, 0.1)
        # Small residual branches, as in trained ResNets: a random 150-layer net otherwise amplifies
        # float rounding until two exact implementations differ by percents.
        for m in port.modules():
            if hasattr(m, "se_module"):
                m.bn3.weight.uniform_(0.05, 0.2)
    torch.save(port.state_dict(), path)
    return port


@pytest.mark.parametrize("ours", sorted(PORTS))
def test_port_checkpoint_gives_the_ports_outputs(ours, tmp_path):
    path = tmp_path / "weights.pth"
    port = port_checkpoint(PORTS[ours], path)
    assert any(k.startswith("layer0.") for k in torch.load(path, weights_only=True))   # really the port's layout
    model = create_model(ours, pretrained=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = port(x), model(x)
    # Deep random networks amplify float rounding; compare relative to the output scale.
    assert (expected - got).abs().max() <= 1e-4 * expected.abs().max()
    assert model.pretrained_source is RELEASED[ours]


def test_mismatched_checkpoint_names_missing_and_unexpected_keys(tmp_path):
    state = create_model("se_resnet50").state_dict()
    state.pop("layer1.0.se.fc1.weight")
    state["layer9.extra.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(10, 2048)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        create_model("se_resnet50", pretrained=str(path))
    message = str(err.value)
    assert "missing keys: layer1.0.se.fc1.weight" in message
    assert "unexpected keys: layer9.extra.weight" in message
    assert "fc.weight: checkpoint (10, 2048) vs model (1000, 2048)" in message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        create_model("se_resnet50", pretrained=str(tmp_path / "absent.pth"))


def test_checkpoints_are_loaded_without_unpickling_code(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"model": create_model("resnet18")}, path)     # a whole module, not a state dict
    with pytest.raises(ValueError, match="is not a plain checkpoint: it holds Python objects that torch.load\\(weights_only=True\\) refused"):
        create_model("resnet18", pretrained=str(path))


def test_key_conversion():
    state = {"layer0.conv1.weight": torch.zeros(64, 3, 7, 7),
             "layer1.0.se_module.fc1.weight": torch.zeros(16, 256, 1, 1),
             "module.last_linear.bias": torch.zeros(1000)}
    out = convert_port_state_dict(state)
    assert set(out) == {"stem.conv1.weight", "layer1.0.se.fc1.weight", "fc.bias"}
    assert out["layer1.0.se.fc1.weight"].shape == (16, 256)


def test_released_files_are_https_assets_with_hash_prefixes_and_keep_their_origin():
    assert RELEASED["se_resnet50"].url == ("https://github.com/rwightman/pytorch-image-models/releases/download/"
                                           "v0.1-cadene/se_resnet50-ce0d4300.pth")
    assert RELEASED["se_resnet50"].hash_prefix == "ce0d4300"
    assert RELEASED["senet154"].filename == "legacy_senet154-e9eb9fe6.pth"      # timm's re-published copy
    assert RELEASED["senet154"].origin.endswith("/senet154-c7b49a05.pth")        # the port's own file
    assert all(s.url.startswith("https://") for s in RELEASED.values())
    assert RELEASED["se_resnet50"].mean == (0.485, 0.456, 0.406)
    assert RELEASED["se_resnet50"].crop_pct == 0.875


def test_checkpoint_with_another_head_needs_num_classes(tmp_path):
    path = tmp_path / "ten.pth"
    torch.save(create_model("se_resnet18", num_classes=10).state_dict(), path)
    with pytest.raises(ValueError, match=r"fc.weight: checkpoint \(10, 512\) vs model \(1000, 512\)"):
        create_model("se_resnet18", pretrained=str(path))       # the default 1000: a mismatch, not a choice
    with pytest.warns(UserWarning, match="classifier re-initialised for 4 classes \\(checkpoint has 10\\)"):
        model = create_model("se_resnet18", pretrained=path, num_classes=4)
    assert model.fc.out_features == 4
