"""The registry and its errors for bad input (unknown names, impossible options, wrong inputs)."""
import pytest
import torch

from senet_core import create_model, list_models, model_entry


def test_every_se_model_has_a_registered_baseline():
    for name in list_models():
        entry = model_entry(name)
        if entry.is_se:
            assert entry.baseline in list_models(), f"{name}'s baseline {entry.baseline} is not registered"


def test_list_models_filters():
    assert "se_resnet50" in list_models("se_*")
    assert "resnet50" not in list_models("se_*")


def test_list_models_with_released_weights():
    assert list_models(pretrained=True) == ["se_resnet101", "se_resnet152", "se_resnet50", "se_resnext101_32x4d",
                                            "se_resnext50_32x4d", "senet154"]
    assert list_models("se_resnet1*", pretrained=True) == ["se_resnet101", "se_resnet152"]


def test_unknown_model_names_the_closest():
    with pytest.raises(ValueError, match="unknown model 'se_resnet5'.*se_resnet50"):
        create_model("se_resnet5")


def test_se_options_on_a_baseline_are_refused():
    with pytest.raises(ValueError, match="resnet50 has no SE blocks, so reduction do not apply; its SE version is 'se_resnet50'"):
        create_model("resnet50", reduction=8)


def test_stage_out_of_range():
    with pytest.raises(ValueError, match=r"se_stages=\[1, 6\] is out of range for se_resnet50.*\[1, 6\]"):
        create_model("se_resnet50", se_stages=(1, 6))


def test_position_a_block_does_not_have():
    with pytest.raises(ValueError, match="se_position='3x3' does not apply to se_resnet18"):
        create_model("se_resnet18", se_position="3x3")


def test_unknown_option():
    with pytest.raises(ValueError, match="se_resnet50 does not take option\\(s\\) depth"):
        create_model("se_resnet50", depth=3)


def test_reduction_larger_than_channels():
    with pytest.raises(ValueError, match="reduction=32 is larger than the 16 channels"):
        create_model("se_resnet20_cifar", reduction=32)


def test_wrong_input_channels_names_expected_and_got():
    model = create_model("resnet18", num_classes=3, in_chans=1)
    with pytest.raises(ValueError, match="expects 1 input channel\\(s\\), got 3"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\), got \(1, 32, 32\)"):
        model(torch.zeros(1, 32, 32))


def test_too_small_input():
    model = create_model("vgg16_bn", num_classes=3)
    with pytest.raises(ValueError, match="at least 32x32, got 16x16"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="at least 16x16, got 15x15"):
        create_model("resnet18", num_classes=3)(torch.zeros(1, 3, 15, 15))


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet18", num_classes=bad)


def test_models_pickle_and_keep_their_input_check(tmp_path):
    model = create_model("se_resnet18", num_classes=3)
    torch.save(model, tmp_path / "whole.pt")
    loaded = torch.load(tmp_path / "whole.pt", weights_only=False)
    with pytest.raises(ValueError, match="expects 3 input channel"):
        loaded(torch.zeros(1, 1, 32, 32))


def test_default_num_classes_is_the_models_own():
    assert create_model("resnet20_cifar").fc.out_features == 10
    assert create_model("resnet18").fc.out_features == 1000
