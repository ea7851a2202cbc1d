"""Section 3: the SE block (Eqs. 2-4), NoSqueeze (Section 7.1), SEConfig and gate capture."""
import pytest
import torch
from torch import nn

from senet_core import NoSqueeze, SEBlock, SEConfig, capture_gates, create_model
from senet_core.se import fused_excitation, hidden_width


def reference_se(block: SEBlock, u: torch.Tensor) -> torch.Tensor:
    """Eqs. 2-4 written out literally, for comparison with the module."""
    z = u.sum(dim=(2, 3)) / (u.shape[2] * u.shape[3])                        # Eq. 2
    s = torch.sigmoid(block.fc2(torch.relu(block.fc1(z))))                   # Eq. 3
    return s[:, :, None, None] * u                                           # Eq. 4


def test_se_block_is_equations_2_to_4():
    torch.manual_seed(0)
    block = SEBlock(32, reduction=4)
    u = torch.randn(3, 32, 5, 7)
    torch.testing.assert_close(block(u), reference_se(block, u))
    assert block.fc1.weight.shape == (8, 32) and block.fc2.weight.shape == (32, 8)


def test_fused_residual_path_matches_scale_then_add_with_gradients():
    torch.manual_seed(0)
    block = SEBlock(16, reduction=4)
    u1 = torch.randn(2, 16, 6, 6, requires_grad=True)
    r1 = torch.randn(2, 16, 6, 6, requires_grad=True)
    u2, r2 = u1.detach().clone().requires_grad_(), r1.detach().clone().requires_grad_()
    fused = block(u1, r1)
    plain = block(u2) + r2
    torch.testing.assert_close(fused, plain)
    g = torch.randn_like(fused)
    fused.backward(g)
    grads_fused = [u1.grad, r1.grad] + [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    plain.backward(g)
    grads_plain = [u2.grad, r2.grad] + [p.grad for p in block.parameters()]
    for a, b in zip(grads_fused, grads_plain):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("excitation,low,high", [("sigmoid", 0, 1), ("tanh", -1, 1), ("relu", 0, float("inf"))])
def test_excitation_operators_have_their_ranges(excitation, low, high):
    torch.manual_seed(0)
    block = SEBlock(8, reduction=2, excitation=excitation)
    s = block.excite(torch.randn(4, 8, 3, 3) * 5)
    assert s.shape == (4, 8)
    assert (s >= low).all() and (s <= high).all()


@pytest.mark.parametrize("squeeze", ["avg", "max"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_excitation_is_equations_2_and_3_with_their_gradients(squeeze, batch):
    torch.manual_seed(0)
    block = SEBlock(24, reduction=4, squeeze=squeeze).double()
    u = torch.randn(batch, 24, 7, 5, dtype=torch.float64, requires_grad=True)
    z = u.amax((2, 3)) if squeeze == "max" else u.sum((2, 3)) / (7 * 5)      # Eq. 2
    expected = torch.sigmoid(block.fc2(torch.relu(block.fc1(z))))            # Eq. 3
    s = fused_excitation(block, u)
    assert s.shape == ((24,) if batch == 1 else (batch, 24))                 # one image: a vector
    torch.testing.assert_close(s.view(batch, 24), expected)
    assert torch.autograd.gradcheck(lambda x: fused_excitation(block, x), (u,))


def test_max_squeeze_uses_the_channel_maximum():
    block = SEBlock(4, reduction=2, squeeze="max")
    u = torch.zeros(1, 4, 3, 3)
    u[0, :, 1, 2] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    expected = torch.sigmoid(block.fc2(torch.relu(block.fc1(torch.tensor([[1.0, 2.0, 3.0, 4.0]])))))
    torch.testing.assert_close(block.excite(u), expected)


def test_hidden_width_rules():
    assert hidden_width(256, 16) == 16
    assert hidden_width(16, 16) == 1          # narrow CIFAR layers keep one unit
    assert hidden_width(16, 16, divisor=8) == 8
    assert hidden_width(2048, 16, divisor=8) == 128
    with pytest.raises(ValueError, match="reduction=32 is larger than the 16 channels"):
        hidden_width(16, 32)
    with pytest.raises(ValueError, match="positive integer"):
        hidden_width(16, 0)


def test_bias_switch():
    assert SEBlock(64, bias=False).fc1.bias is None
    assert SEBlock(64).fc1.bias is not None


def test_nosqueeze_has_se_parameters_and_a_per_position_gate():
    torch.manual_seed(0)
    se, ns = SEBlock(64, 16), NoSqueeze(64, 16)
    assert sum(p.numel() for p in se.parameters()) == sum(p.numel() for p in ns.parameters())
    u = torch.randn(2, 64, 5, 5)
    s = ns.excite(u)
    assert s.shape == u.shape
    assert not torch.allclose(s[:, :, 0, 0], s[:, :, 4, 4])   # local, not global
    torch.testing.assert_close(ns(u), u * s)
    torch.testing.assert_close(ns(u, u), u + u * s)


def test_seconfig_validates_options_with_hints():
    with pytest.raises(ValueError, match="squeeze='mean'.*'avg'"):
        SEConfig(squeeze="mean")
    with pytest.raises(ValueError, match="excitation='softmax'"):
        SEConfig(excitation="softmax")
    with pytest.raises(ValueError, match="se_position='before'"):
        SEConfig(position="before")
    with pytest.raises(ValueError, match="reduction must be a positive integer"):
        SEConfig(reduction=0)
    assert SEConfig(stages=[4, 2, 2]).stages == (2, 4)
    assert isinstance(SEConfig(squeeze="none").block(32), NoSqueeze)
    assert isinstance(SEConfig().block(32), SEBlock)


def test_capture_gates_records_every_block_and_removes_its_hooks():
    torch.manual_seed(0)
    model = create_model("se_resnet20_cifar", num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    with capture_gates(model) as gates:
        model(x)
    assert len(gates) == 9
    first = next(iter(gates.values()))
    assert first.shape == (3, 16) and (first > 0).all() and (first < 1).all()
    assert all(len(m._forward_hooks) == 0 for m in model.modules() if isinstance(m, nn.Sigmoid))


# ---- Eq. 4's scale and its cheaper backward -------------------------------------------------------

@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_scale_gradients_are_exact(residual, channels_last):
    from senet_core.se import scale
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    u = torch.randn(3, 5, 4, 6, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    s = torch.rand(3, 5, 1, 1, dtype=torch.float64, requires_grad=True)
    inputs = (u, s, torch.randn_like(u).requires_grad_()) if residual else (u, s)
    assert torch.autograd.gradcheck(scale, inputs)


def test_training_takes_the_cheaper_backward_and_inference_the_plain_operation():
    torch.manual_seed(0)
    block = SEBlock(16, reduction=4)
    u, r = torch.randn(2, 16, 5, 5, requires_grad=True), torch.randn(2, 16, 5, 5)
    assert "_Scale" in type(block(u, r).grad_fn).__name__
    with torch.no_grad():
        torch.testing.assert_close(block(u, r), torch.addcmul(r, u, block.excite(u)[:, :, None, None]))
    # NoSqueeze's gate is full size: autograd's own product rule, nothing to reduce.
    assert "_Scale" not in type(NoSqueeze(16, 4)(u).grad_fn).__name__


def test_symbolic_trace_records_equations_2_to_4_for_any_batch():
    torch.manual_seed(0)
    block = SEBlock(32, reduction=4)
    plain = torch.fx.symbolic_trace(block, concrete_args={"residual": None})
    fused = torch.fx.symbolic_trace(block)
    called = {str(n.target) for n in plain.graph.nodes if n.op == "call_module"}
    assert {"fc1", "relu", "fc2", "gate"} <= called          # the excitation's layers, as modules
    for n in (1, 3):                                          # the eager batch-1 fast path gives the same gate
        u, r = torch.randn(n, 32, 5, 7), torch.randn(n, 32, 5, 7)
        torch.testing.assert_close(plain(u), block(u))
        torch.testing.assert_close(fused(u, r), block(u, r))
        torch.testing.assert_close(plain(u), reference_se(block, u))
