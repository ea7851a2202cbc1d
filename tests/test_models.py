"""Every registered model: builds, runs forward and backward, and has SE on its forward path."""
import pytest
import torch

from senet_core import create_model, list_models, model_entry, se_modules

MODELS = list_models()
SE_MODELS = [n for n in MODELS if model_entry(n).is_se]


def small_input(name: str, in_chans: int, batch: int = 2) -> torch.Tensor:
    size = max(model_entry(name).min_size, 32)
    return torch.randn(batch, in_chans, size, size)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=1).train()
    logits = model(small_input(name, 1))
    assert logits.shape == (2, 5)
    logits.logsumexp(1).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters outside the forward path: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", SE_MODELS)
def test_se_blocks_are_on_the_forward_path(name):
    torch.manual_seed(0)
    # Training mode: batch statistics keep activations at unit scale in a freshly initialised net
    # (with untrained running statistics, eval-mode activations of some nets vanish to ~1e-24).
    model = create_model(name, num_classes=5).train()
    blocks = se_modules(model)
    assert blocks, f"{name} has no SE blocks"
    called = set()
    handles = [b.register_forward_hook(lambda m, i, o, n=n: called.add(n)) for n, b in blocks.items()]
    x = small_input(name, 3)

    def run():
        torch.manual_seed(1)          # the same dropout masks in both passes
        return model(x)

    with torch.no_grad():
        before = run()
        assert called == set(blocks), f"SE blocks never called: {sorted(set(blocks) - called)[:5]}"
        for block in blocks.values():
            block.fc2.weight.add_(torch.randn_like(block.fc2.weight))
        after = run()
    for h in handles:
        h.remove()
    change = (before - after).abs().max() / before.abs().max()
    assert change > 1e-3, f"perturbing {name}'s SE blocks changes its output by only {change:.1e} (relative)"


@pytest.mark.parametrize("name", SE_MODELS)
def test_baseline_is_the_se_model_without_se(name):
    """Removing the SE blocks' parameters from the SE model leaves exactly the baseline's."""
    se_model = create_model(name)
    baseline = create_model(model_entry(name).baseline)
    se_params = sum(p.numel() for b in se_modules(se_model).values() for p in b.parameters())
    total = sum(p.numel() for p in se_model.parameters())
    assert total - se_params == sum(p.numel() for p in baseline.parameters())


@pytest.mark.parametrize("name", ["se_resnet50", "se_resnet29_cifar", "se_mobilenet_v1"])
def test_he_initialisation_reaches_the_excitation_but_not_the_classifier(name):
    import math

    from senet_core.se import SEBlock

    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, SEBlock)]
    widest = max(blocks, key=lambda b: b.channels)
    for fc in (widest.fc1, widest.fc2):
        he = math.sqrt(2.0 / fc.in_features)                  # Kaiming normal, fan-in, ReLU gain
        assert 0.8 * he < fc.weight.std().item() < 1.2 * he
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier.out_features == 10 and abs(classifier.weight.std().item() - 0.01) < 0.002


@pytest.mark.parametrize("model,options", [
    ("se_resnet18", {}), ("se_mobilenet_v1", {}), ("se_shufflenet_v1_g3", {}), ("se_resnet20_cifar", {}),
    ("se_resnet110_cifar", {"se_position": "pre"}), ("se_resnet29_cifar", {"se_position": "3x3"}),
    ("se_resnet29_cifar", {"squeeze": "none", "se_bias": False}), ("se_resnet29_cifar", {"se_stages": (3,)}),
])
def test_keyed_initialisation_pairs_a_network_with_its_baseline(model, options):
    from senet_core.models import model_entry
    from senet_core.models.init import he_init
    se = create_model(model, num_classes=10, in_chans=1, **options)
    base = create_model(model_entry(model).baseline, num_classes=10, in_chans=1)
    for net in (se, base):
        he_init(net, seed=7)
    se_state, base_state = se.state_dict(), base.state_dict()
    assert set(base_state) < set(se_state)
    assert all(torch.equal(base_state[k], se_state[k]) for k in base_state), model
    other = create_model(model, num_classes=10, in_chans=1, **options)
    he_init(other, seed=8)
    conv = next(k for k, v in base_state.items() if v.dim() == 4)
    assert not torch.equal(other.state_dict()[conv], se_state[conv])      # another seed, other weights
