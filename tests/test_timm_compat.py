"""The networks in timm and torchvision workflows: released weights by name (offline, through a local
torch.hub cache), new heads, features_only, the classifier interface, tracing (torch.fx,
torchvision's feature extraction, torch.export) and torch.hub entry points."""
import dataclasses
import hashlib
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import senet_core
from senet_core import create_model, list_models, model_entry, pretrained_cfg, transforms_for
from senet_core.models.features import FeatureNet
from senet_core.models.weights import RELEASED

REPO = Path(__file__).resolve().parents[1]
MODELS = list_models()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These inputs are tiny: a second thread gains nothing, and on a busy 2-core machine two
    # threads waiting on each other make a forward pass take seconds instead of milliseconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_input(name: str, batch: int = 2) -> torch.Tensor:
    """64x64 for ImageNet networks (75 for Inception-ResNet-v2, its smallest), 32x32 for CIFAR ones;
    the 154-layer networks at 32x32 to keep the test short."""
    entry = model_entry(name)
    if entry.input_size[1] == 32 or "154" in name:
        size = 32
    else:
        size = max(64, entry.min_size)
    torch.manual_seed(0)
    return torch.randn(batch, 3, size, size)


def assert_close(got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5):
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= atol, (got - expected).abs().max().item()


# ---- every registered network: traceable, and its trunk/head split is its forward ----------------

@pytest.mark.parametrize("name", MODELS)
def test_every_model_traces_and_splits_into_trunk_and_head(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = small_input(name)
    with torch.no_grad():
        expected = model(x)
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features), expected)
        assert features.shape[1] == model.num_features == model.feature_info[-1]["num_chs"]

        # torch.fx: the graph runs the same computation (the SE block records Eqs. 2-3 unfused).
        assert_close(torch.fx.symbolic_trace(model)(x), expected)

        # torchvision's feature extraction (traces the train and eval graphs): trunk and logits.
        nodes = {model.feature_info[-1]["module"]: "features", model.classifier_name: "logits"}
        out = create_feature_extractor(model, return_nodes=nodes)(x)
        assert_close(out["features"], features)
        assert_close(out["logits"], expected)

        # features_only: every stage, the last one being the trunk's output.
        stages = FeatureNet(model)(x)
        assert [f.shape[1] for f in stages] == [i["num_chs"] for i in model.feature_info]
        assert torch.equal(stages[-1], features)

        # torch.export, as before (the eager graph, fast paths chosen for this input).
        assert_close(torch.export.export(model, (x,)).module()(x), expected)


def test_a_model_inside_another_traces_through_its_input_check():
    wrapper = nn.Sequential(create_model("se_resnet18").eval(), nn.Softmax(1))
    traced = torch.fx.symbolic_trace(wrapper)
    x = small_input("se_resnet18")
    assert_close(traced(x), wrapper(x))
    with pytest.raises(ValueError, match="expects 3 input channel"):   # still checked when run eagerly
        wrapper(torch.zeros(1, 1, 32, 32))


def test_traced_se_model_trains_with_the_same_gradients():
    torch.manual_seed(0)
    model = create_model("se_resnet20_cifar").train()
    traced = torch.fx.symbolic_trace(model)
    x = small_input("se_resnet20_cifar")
    model(x).square().sum().backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    traced(x).square().sum().backward()
    for g, p in zip(eager, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)


# ---- features_only ---------------------------------------------------------------------------------

def test_features_only_resnet_stages_and_feature_info():
    net = create_model("se_resnet50", features_only=True)
    assert net.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert net.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert net.feature_info.module_name() == ["stem.relu1", "layer1", "layer2", "layer3", "layer4"]
    x = torch.randn(2, 3, 64, 64)
    shapes = [tuple(f.shape) for f in net.eval()(x)]
    assert shapes == [(2, 64, 32, 32), (2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 4, 4), (2, 2048, 2, 2)]
    assert not any(k.startswith("fc.") for k in net.state_dict())
    traced = torch.fx.symbolic_trace(net)
    for f, g in zip(traced(x), net(x)):
        assert_close(f, g)

    some = create_model("se_resnet50", features_only=True, out_indices=(1, -1))
    assert some.feature_info.channels() == [256, 2048] and some.feature_info.reduction() == [4, 32]
    assert [tuple(f.shape) for f in some.eval()(x)] == [(2, 256, 16, 16), (2, 2048, 2, 2)]
    assert "layer4.0.conv1.weight" in some.state_dict()


@pytest.mark.parametrize("name,channels,reductions", [
    ("senet154", [128, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
    ("se_resnet18", [64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
    ("se_resnet110_cifar", [16, 16, 32, 64], [1, 1, 2, 4]),
    ("se_shake_shake26_2x96d_cifar", [16, 96, 192, 384], [1, 1, 2, 4]),
    ("se_mobilenet_v1", [32, 64, 128, 256, 512, 1024], [2, 2, 4, 8, 16, 32]),
    ("se_vgg16_bn", [64, 128, 256, 512, 512, 512], [1, 2, 4, 8, 16, 32]),
])
def test_features_only_shapes_follow_feature_info(name, channels, reductions):
    net = create_model(name, features_only=True).eval()
    assert net.feature_info.channels() == channels and net.feature_info.reduction() == reductions
    x = small_input(name)
    with torch.no_grad():
        features = net(x)
    for f, c, r in zip(features, channels, reductions):
        assert f.shape[1:] == (c, math.ceil(x.shape[2] / r), math.ceil(x.shape[3] / r))


def test_features_only_loads_the_classifiers_checkpoint_and_refuses_bad_indices(tmp_path):
    model = create_model("se_resnet18")
    torch.save(model.state_dict(), tmp_path / "se_resnet18.pth")
    net = create_model("se_resnet18", features_only=True, pretrained=str(tmp_path / "se_resnet18.pth"))
    assert torch.equal(net.state_dict()["layer4.1.se.fc2.weight"], model.state_dict()["layer4.1.se.fc2.weight"])
    with pytest.raises(ValueError, match="out_indices=\\(5,\\).*5 stages"):
        create_model("se_resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="features_only=True"):
        create_model("se_resnet18", out_indices=(1,))
    with pytest.raises(ValueError, match="expects 3 input channel"):
        net(torch.zeros(1, 1, 32, 32))


# ---- the classifier interface ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["se_resnet18", "se_resnet20_cifar", "se_shake_shake26_2x96d_cifar",
                                  "se_bn_inception", "se_inception_resnet_v2", "se_vgg16_bn", "se_mobilenet_v1",
                                  "se_shufflenet_v1_g3"])
def test_classifier_interface(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = small_input(name)
    hidden = getattr(model, "head_hidden_size", model.num_features)
    trunk_keys = {k for k in model.state_dict() if not k.startswith(model.classifier_name + ".")}
    assert model.get_classifier() is model.get_submodule(model.classifier_name)
    assert model.num_classes == model.get_classifier().out_features
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (2, hidden)
        assert torch.equal(model.get_classifier()(pooled), model(x))

        model.reset_classifier(7)
        head = model.get_classifier()
        assert model.num_classes == 7 and head.out_features == 7 and head.in_features == hidden
        assert model(x).shape == (2, 7)
        assert not head.bias.any() and abs(head.weight.std().item() - 0.01) < 0.003   # he_init's classifier rule

        with pytest.raises(ValueError, match="global_pool=''.*global average only"):
            model.reset_classifier(7, global_pool="")
        model.reset_classifier(0)             # timm: no classifier, forward gives the pooled features
        assert model.num_classes == 0 and torch.equal(model(x), pooled)
    assert set(model.state_dict()) == trunk_keys


def test_timm_style_positional_pretrained_is_refused():
    # timm's create_model(name, True) means pretrained; here the second argument is num_classes.
    with pytest.raises(ValueError, match="pass pretrained by keyword"):
        create_model("se_resnet50", True)


# ---- released weights by name, offline -------------------------------------------------------------

def port_checkpoint(path: Path) -> nn.Module:
    """SE-ResNet-50 in the released port's layout (timm keeps Cadene's model as legacy_seresnet50),
    with non-trivial BN statistics, saved as a state dict; returns the port model."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    port = timm.create_model("legacy_seresnet50").eval()
    with torch.no_grad():
        for m in port.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
            if hasattr(m, "se_module"):
                m.bn3.weight.uniform_(0.05, 0.2)
    torch.save(port.state_dict(), path)
    return port


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    """The port model and its checkpoint file, named like a release asset: hash prefix in the name."""
    folder = tmp_path_factory.mktemp("release")
    path = folder / "weights.pth"
    model = port_checkpoint(path)
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    asset = path.rename(folder / f"se_resnet50-{prefix}.pth")
    return model, asset


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch.hub cache in tmp_path; any attempt to reach the network fails the test."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def no_network(request, *args, **kwargs):
        url = getattr(request, "full_url", request)
        if not str(url).startswith("file:"):
            raise AssertionError(f"network access to {url}")
        from urllib.request import urlopen
        return urlopen(request, *args, **kwargs)
    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    return tmp_path / "hub" / "checkpoints"


def release_at(monkeypatch, url: str):
    monkeypatch.setitem(RELEASED, "se_resnet50", dataclasses.replace(RELEASED["se_resnet50"], url=url))


def test_pretrained_true_loads_the_release_from_the_hub_cache(port, hub, monkeypatch):
    port_model, asset = port
    release_at(monkeypatch, "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/"
               + asset.name)
    hub.mkdir(parents=True)
    (hub / asset.name).write_bytes(asset.read_bytes())
    model = create_model("se_resnet50", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = port_model(x)
        assert (model(x) - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert model.pretrained_cfg["file_name"] == asset.name
    assert model.pretrained_source is RELEASED["se_resnet50"]


def test_pretrained_true_downloads_with_the_hash_checked(port, hub, monkeypatch):
    port_model, asset = port
    release_at(monkeypatch, asset.as_uri())               # a file:// URL: torch.hub's download path, offline
    model = create_model("se_resnet50", pretrained=True)
    assert (hub / asset.name).read_bytes() == asset.read_bytes()    # cached by torch.hub
    assert torch.equal(model.stem.conv1.weight, port_model.layer0.conv1.weight)

    wrong = asset.with_name("se_resnet50-00000000.pth")
    wrong.write_bytes(asset.read_bytes())
    release_at(monkeypatch, wrong.as_uri())
    with pytest.raises(RuntimeError, match="is not the release.*invalid hash value"):
        create_model("se_resnet50", pretrained=True)
    assert not (hub / wrong.name).exists()


def test_new_number_of_classes_keeps_a_fresh_classifier_with_a_notice(port, hub, monkeypatch):
    port_model, asset = port
    release_at(monkeypatch, asset.as_uri())
    torch.manual_seed(3)
    notice = r"se_resnet50: classifier re-initialised for 10 classes \(checkpoint has 1000\)"
    with pytest.warns(UserWarning, match=notice):
        model = create_model("se_resnet50", pretrained=True, num_classes=10)
    assert model.fc.out_features == 10 and not model.fc.bias.any()
    assert abs(model.fc.weight.std().item() - 0.01) < 0.002
    assert torch.equal(model.layer4[2].se.fc1.bias, port_model.layer4[2].se_module.fc1.bias)


def test_one_input_channel_sums_the_rgb_stem(port, hub, monkeypatch):
    port_model, asset = port
    release_at(monkeypatch, asset.as_uri())
    with pytest.warns(UserWarning, match="se_resnet50: first conv stem.conv1 adapted to 1 input channel"):
        grey = create_model("se_resnet50", pretrained=True, in_chans=1).eval()
    rgb = create_model("se_resnet50", pretrained=True).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = rgb(x.expand(-1, 3, -1, -1))
        assert (grey(x) - expected).abs().max() <= 1e-4 * expected.abs().max()   # grey = RGB of equal channels
    with pytest.warns(UserWarning, match="adapted to 5 input channel"):
        assert create_model("se_resnet50", pretrained=True, in_chans=5).stem.conv1.weight.shape[1] == 5


def test_pretrained_true_without_released_weights():
    with pytest.raises(ValueError, match="no released weights for resnet50; released: se_resnet50"):
        create_model("resnet50", pretrained=True)


# ---- preprocessing as data -------------------------------------------------------------------------

def test_pretrained_cfg_and_eval_transform():
    from PIL import Image

    cfg = pretrained_cfg("senet154")
    assert cfg["url"].startswith("https://github.com/rwightman/pytorch-image-models/releases/download/")
    assert (cfg["input_size"], cfg["crop_pct"], cfg["interpolation"]) == ((3, 224, 224), 0.875, "bilinear")
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
    with pytest.raises(ValueError, match="no released weights for resnet18"):
        pretrained_cfg("resnet18")

    transform = transforms_for("se_resnet50")
    steps = [type(t).__name__ for t in transform.transforms]
    assert steps == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert transform.transforms[0].size == 256
    image = Image.new("RGB", (400, 300), (124, 116, 104))      # ~ the ImageNet mean
    out = transform(image)
    assert out.shape == (3, 224, 224) and out.abs().max() < 0.02

    timm_data = pytest.importorskip("timm.data")
    model = create_model("se_resnet50")
    assert transforms_for(model).transforms[1].size == (224, 224)
    resolved = timm_data.resolve_data_config({}, model=model)
    assert resolved == {"input_size": (3, 224, 224), "interpolation": "bilinear", "mean": cfg["mean"],
                        "std": cfg["std"], "crop_pct": 0.875, "crop_mode": "center"}


def test_release_urls_are_timms_https_assets():
    import timm

    for name, source in RELEASED.items():
        assert source.url.startswith("https://") and source.origin.startswith("http://data.lip6.fr/")
        timm_cfg = timm.models.get_pretrained_cfg(source.timm_name)
        assert timm_cfg.url == source.url, name
        assert len(source.hash_prefix) == 8


# ---- torch.hub ---------------------------------------------------------------------------------------

def test_hubconf_lists_every_model_and_loads_one(monkeypatch):
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(REPO))
    assert sorted(torch.hub.list("senet/local")) == MODELS          # torch.hub.list's own filter
    model = torch.hub.load(str(REPO), "se_resnet50", source="local", pretrained=False, num_classes=10)
    assert model.model_name == "se_resnet50" and model.num_classes == 10
    assert "create_model('se_resnet50'" in torch.hub.help("senet/local", "se_resnet50")


# ---- detection on the public API -------------------------------------------------------------------

def test_detector_trunk_is_a_features_only_net_with_the_old_keys():
    from senet_core.engine.detection import build_detector

    detector = build_detector("se_resnet18", num_classes=3, min_size=64, max_size=64)
    assert isinstance(detector.backbone.body, FeatureNet)
    keys = set(detector.state_dict())
    assert {"backbone.body.stem.conv1.weight", "backbone.body.layer4.1.se.fc1.weight",
            "backbone.fpn.inner_blocks.3.0.weight"} <= keys
    assert not any(k.startswith("backbone.body.fc.") for k in keys)
    single = build_detector("se_resnet18", num_classes=3, fpn=False)
    assert "backbone.layer4.1.conv2.weight" in single.state_dict() and single.backbone.out_channels == 512
    for path in (Path(senet_core.__file__).parent / "engine" / "detection").glob("*.py"):
        assert "torchvision.models._utils" not in path.read_text(), path
