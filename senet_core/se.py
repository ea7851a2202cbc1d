"""Section 3 of the paper: the Squeeze-and-Excitation block and its variants.

* :class:`SEBlock` is Eqs. 2-4: squeeze ``z = mean_{H,W}(u)`` (Eq. 2), excitation
  ``s = sigma(W2 delta(W1 z))`` (Eq. 3) and scale ``x~_c = s_c u_c`` (Eq. 4).
* :class:`NoSqueeze` is the Section 7.1 / Table 16 control: the two FC layers become 1x1
  convolutions of the same width applied at every position, with no pooling.
* :class:`SEConfig` holds every knob the paper ablates (Section 6: reduction ratio, squeeze and
  excitation operators, integration position, stages) so that models, recipes and the CLI share
  one description of an SE variant.
* :func:`capture_gates` records the gate values ``s`` of every SE block during a forward pass
  (Section 7.2, Figs. 6-7) without running the network twice.
"""
from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass, fields
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

SQUEEZE_OPERATORS = ("avg", "max", "none")
EXCITATION_OPERATORS = ("sigmoid", "tanh", "relu")
# Section 6.5: where the SE block sits in a residual unit (Fig. 5, Tables 14-15).
POSITIONS = ("standard", "pre", "post", "identity", "3x3")


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{option}={value!r} is not one of {', '.join(map(repr, allowed))}{hint}")
    return value


def hidden_width(channels: int, reduction: int, divisor: int | None = None) -> int:
    """Width ``C/r`` of the excitation bottleneck (Eq. 3).

    The paper and the released models use ``C // r``; we keep at least one unit so that narrow
    layers (e.g. 16 channels at r=32) still get a gate. ``divisor`` rounds up to a multiple of it,
    as timm does for fp16 speed; it changes the architecture for narrow layers, so it is off by
    default.
    """
    if not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"reduction must be a positive integer, got {reduction!r}")
    if reduction > channels:
        raise ValueError(
            f"reduction={reduction} is larger than the {channels} channels it gates: "
            f"the excitation bottleneck C/r would have no units")
    width = max(1, channels // reduction)
    if divisor:
        width = max(divisor, -(-width // divisor) * divisor)
    return width


def _symbolic(x) -> bool:
    """True while torch.fx traces the network symbolically: ``x`` is then a ``Proxy`` with no batch
    size, dtype or values, so choices made on them (the fused paths below) cannot be taken."""
    return isinstance(x, torch.fx.Proxy)


class _Scale(torch.autograd.Function):
    """Eq. 4, ``x~ = s * u``, optionally plus the residual it is added to, with a backward that
    reads each tensor once.

    Autograd's own backward of ``addcmul(residual, u, s)`` multiplies the inputs by the scalar
    ``value`` and materialises ``u * value`` and ``g * u`` full-size before reducing the latter
    to the gate's shape; at the small feature maps of the reduced-scale study these passes cost
    more than the block's FCs. Here:

    * d/du = ``g * s`` (one pass);
    * d/ds = the per-channel dot product of ``g`` and ``u`` over H x W (one reduction);
    * d/dresidual = ``g`` itself, no copy.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, s: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(u, s)
        return u * s if residual is None else torch.addcmul(residual, u, s)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, s = ctx.saved_tensors
        grad_u = grad * s if ctx.needs_input_grad[0] else None
        grad_s = (grad * u).sum((2, 3), keepdim=True) if ctx.needs_input_grad[1] else None
        return grad_u, grad_s, grad if ctx.needs_input_grad[2] else None


def scale(u: torch.Tensor, s: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 4: ``s * u`` for a gate ``s`` of shape (N, C, 1, 1) (SE) or (N, C, H, W) (NoSqueeze),
    or ``residual + s * u`` in one pass over the activation, as the official Caffe code's "Axpy"
    layer fused them. Values and gradients equal ``torch.addcmul(residual, u, s)``'s."""
    if _symbolic(s) or s.shape[2:] != (1, 1) or not torch.is_grad_enabled():
        # A full-size gate (NoSqueeze) leaves autograd nothing to reduce, and inference has no
        # backward: the plain operation, without a Function call's overhead. A symbolic trace
        # (torch.fx) records it too: it cannot enter an autograd.Function, and autograd's own
        # backward of the plain operation gives the same gradients.
        return u * s if residual is None else torch.addcmul(residual, u, s)
    return _Scale.apply(u, s, residual)


def _gate(excitation: str) -> nn.Module:
    # The final non-linearity sigma of Eq. 3; Table 12 swaps it for tanh or ReLU.
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[excitation]()


class SEBlock(nn.Module):
    """The Squeeze-and-Excitation block (Section 3, Eqs. 2-4, Fig. 1).

    Args:
        channels: C, the channels of the feature map U it recalibrates.
        reduction: r, the reduction ratio of the excitation bottleneck (Section 6.1).
        squeeze: ``"avg"`` (Eq. 2, global average pooling) or ``"max"`` (Table 11).
        excitation: the gate non-linearity, ``"sigmoid"`` (Eq. 3), ``"tanh"`` or ``"relu"``
            (Table 12).
        bias: FC biases. On by default, as in the released models; the paper's ablations
            (Section 6) remove them.
        divisor: round the bottleneck width up to a multiple of this (off by default).

    ``forward(u)`` returns ``s * u``. ``forward(u, residual)`` returns ``residual + s * u`` in one
    fused operation: this is the standard SE-ResNet placement (scale, then add the identity),
    computed with one pass over the activation instead of two, as the official Caffe code did with
    its "Axpy" layer.

    Run eagerly, the gate comes from :func:`fused_excitation`: the same Eqs. 2-3 in fewer operator
    calls, chosen from the input's batch size and dtype. A symbolic trace (``torch.fx.symbolic_trace``,
    torchvision's ``create_feature_extractor``) has neither, and records Eqs. 2-4 as written: same
    gate.
    """

    def __init__(self, channels: int, reduction: int = 16, squeeze: str = "avg",
                 excitation: str = "sigmoid", bias: bool = True, divisor: int | None = None):
        super().__init__()
        _choice("squeeze", squeeze, ("avg", "max"))
        _choice("excitation", excitation, EXCITATION_OPERATORS)
        hidden = hidden_width(channels, reduction, divisor)
        self.channels, self.reduction, self.squeeze = channels, reduction, squeeze
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.gate = _gate(excitation)

    def _fused(self, u: torch.Tensor) -> bool:
        # Every eager call, training included: at the study's sizes the fused form also takes 10-20 %
        # off an SE block's forward and backward (the mean's backward is a full-size pass). A
        # symbolic trace has no batch size or dtype for fused_excitation to choose on.
        return not _symbolic(u)

    def _squeeze(self, u: torch.Tensor) -> torch.Tensor:
        """Eq. 2: the channel descriptor z, shape (N, C)."""
        return u.amax((2, 3)) if self.squeeze == "max" else u.mean((2, 3))

    def _excite(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 3: ``s = sigma(W2 delta(W1 z))``, shape (N, C)."""
        return self.gate(self.fc2(self.relu(self.fc1(z))))

    def excite(self, u: torch.Tensor) -> torch.Tensor:
        """The gate ``s`` of Eq. 3 for a feature map ``u`` of shape (N, C, H, W); shape (N, C)."""
        if self._fused(u):
            return fused_excitation(self, u).view(u.shape[0], u.shape[1])
        return self._excite(self._squeeze(u))

    def forward(self, u: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self._fused(u):
            s = fused_excitation(self, u)                                 # Eqs. 2-3, fewer calls
        else:
            z = self._squeeze(u)                                          # Eq. 2, squeeze
            s = self._excite(z)                                           # Eq. 3, excitation
        return scale(u, s.view(u.shape[0], u.shape[1], 1, 1), residual)  # Eq. 4, scale

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, squeeze={self.squeeze!r}"


def fused_excitation(block: SEBlock, u: torch.Tensor) -> torch.Tensor:
    """Eqs. 2-3 of ``block`` in as few operator calls as the products allow: its eager path.

    The same gate as the block's squeeze and excitation, up to float rounding, returned as the
    products leave it: (C,) for one image, (N, C) for a batch. At batch 1 on a CPU the gate's cost is
    operator count and reading the FC weights, not arithmetic (Section 4; benchmarks/TRIED.md), so:

    * the squeeze (Eq. 2) is a reduction over H, W, with no pooling module; one image is squeezed to
      a vector, so that the FCs are matrix-vector products;
    * for an average, the division by H*W rides in fc1's product as its alpha (see :func:`_linear`);
      in training this also spares the backward a full-size pass (a sum's gradient is a broadcast
      view, a mean's a new tensor);
    * the FCs and the ReLU are functions, not modules (same parameters, fewer calls).
    """
    n, _, h, w = u.shape
    dims = (0, 2, 3) if n == 1 else (2, 3)
    if block.squeeze == "max":
        z, alpha = u.amax(dims), 1.0
    elif u.dtype in (torch.float32, torch.float64):
        z, alpha = u.sum(dims), 1.0 / (h * w)
    else:
        # A half-precision sum over a 56x56 map can overflow where the mean cannot.
        z, alpha = u.mean(dims), 1.0
    hidden = _linear(z, block.fc1, alpha).relu_()
    # The gate stays a module call: capture_gates hooks it to record s.
    return block.gate(_linear(hidden, block.fc2))


def _linear(x: torch.Tensor, layer: nn.Linear, alpha: float = 1.0) -> torch.Tensor:
    """``layer(alpha * x)`` as one BLAS call: ``alpha`` is the product's own, so no extra pass over
    ``x`` and no extra operator call.

    ``x`` is (N, in), or (in,) for a single image: then the layer is a matrix-vector product,
    which costs less than a one-row matrix product when the weights have to come from memory.
    """
    weight, bias = layer.weight, layer.bias
    if x.dim() == 1:
        if bias is None:
            out = torch.mv(weight, x)
            return out if alpha == 1.0 else out.mul_(alpha)
        return torch.addmv(bias, weight, x, alpha=alpha)
    if alpha == 1.0:
        return F.linear(x, weight, bias)
    if bias is None:
        return F.linear(x, weight).mul_(alpha)
    return torch.addmm(bias, x, weight.t(), alpha=alpha)


class NoSqueeze(nn.Module):
    """The NoSqueeze control of Section 7.1 (Table 16).

    The two FC layers of the excitation become 1x1 convolutions of the same sizes (C -> C/r -> C)
    applied at every position, and there is no global pooling: the gate is H x W x C and depends
    only on local information. Same parameters as :class:`SEBlock`, far more multiply-adds.
    """

    def __init__(self, channels: int, reduction: int = 16, excitation: str = "sigmoid",
                 bias: bool = True, divisor: int | None = None):
        super().__init__()
        _choice("excitation", excitation, EXCITATION_OPERATORS)
        hidden = hidden_width(channels, reduction, divisor)
        self.channels, self.reduction = channels, reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = _gate(excitation)

    def excite(self, u: torch.Tensor) -> torch.Tensor:
        """The per-position gate, shape (N, C, H, W)."""
        return self.gate(self.fc2(self.relu(self.fc1(u))))

    def forward(self, u: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return scale(u, self.excite(u), residual)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


GATED_MODULES = (SEBlock, NoSqueeze)


@dataclass(frozen=True)
class SEConfig:
    """One SE variant of the paper: what :func:`senet_core.create_model` builds into a network.

    ``stages`` are numbered like the paper's ResNet stages, the stem being stage 1: SE-ResNet-50's
    residual stages are 2, 3, 4, 5 (conv2_x ... conv5_x, Table 13), a CIFAR ResNet's are 2, 3, 4.
    ``None`` means every stage. ``squeeze="none"`` builds the NoSqueeze control (Table 16).
    """

    reduction: int = 16
    squeeze: str = "avg"
    excitation: str = "sigmoid"
    bias: bool = True
    divisor: int | None = None
    position: str = "standard"
    stages: tuple[int, ...] | None = None

    # create_model's keyword for each field (the paper's words, prefixed where ambiguous).
    OPTION_NAMES = {"reduction": "reduction", "squeeze": "squeeze", "excitation": "excitation",
                    "se_bias": "bias", "se_divisor": "divisor", "se_position": "position",
                    "se_stages": "stages"}

    def __post_init__(self):
        if not isinstance(self.reduction, int) or isinstance(self.reduction, bool) or self.reduction < 1:
            raise ValueError(f"reduction must be a positive integer, got {self.reduction!r}")
        _choice("squeeze", self.squeeze, SQUEEZE_OPERATORS)
        _choice("excitation", self.excitation, EXCITATION_OPERATORS)
        _choice("se_position", self.position, POSITIONS)
        if self.divisor is not None and (not isinstance(self.divisor, int) or self.divisor < 1):
            raise ValueError(f"se_divisor must be a positive integer or None, got {self.divisor!r}")
        if self.stages is not None:
            stages = (self.stages,) if isinstance(self.stages, int) else tuple(self.stages)
            if not stages or not all(isinstance(s, int) for s in stages):
                raise ValueError(f"se_stages must be a non-empty sequence of stage numbers, got {self.stages!r}")
            object.__setattr__(self, "stages", tuple(sorted(set(stages))))

    @classmethod
    def without_defaults(cls, options: dict) -> dict:
        """create_model keywords minus the SE settings equal to the default block's (r=16, avg, ...):
        two option sets that differ only there build the same network."""
        default = cls()
        return {k: v for k, v in options.items()
                if not (k in cls.OPTION_NAMES and getattr(default, cls.OPTION_NAMES[k]) == v)}

    @classmethod
    def from_options(cls, options: dict) -> "SEConfig":
        """Build from create_model keywords (``reduction``, ``se_position``, ...)."""
        return cls(**{cls.OPTION_NAMES[k]: v for k, v in options.items()})

    def check(self, model: str, stages: tuple[int, ...], positions: tuple[str, ...] = ("standard",)):
        """Raise ValueError if this variant does not apply to ``model``.

        ``stages`` are the model's stage numbers that can hold SE blocks, ``positions`` the
        integration positions its blocks implement.
        """
        if self.position not in positions:
            raise ValueError(
                f"se_position={self.position!r} does not apply to {model}: it supports "
                f"{', '.join(map(repr, positions))}")
        if self.stages is not None:
            bad = [s for s in self.stages if s not in stages]
            if bad:
                raise ValueError(
                    f"se_stages={list(self.stages)} is out of range for {model}: stage(s) {bad} do not "
                    f"exist; its stages with SE blocks are {list(stages)}")

    def in_stage(self, stage: int) -> bool:
        return self.stages is None or stage in self.stages

    def block(self, channels: int) -> nn.Module:
        """The gating module for a feature map of ``channels`` channels."""
        if self.squeeze == "none":
            return NoSqueeze(channels, self.reduction, self.excitation, self.bias, self.divisor)
        return SEBlock(channels, self.reduction, self.squeeze, self.excitation, self.bias, self.divisor)

    def as_options(self) -> dict:
        names = {v: k for k, v in self.OPTION_NAMES.items()}
        return {names[f.name]: getattr(self, f.name) for f in fields(self)}


def se_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every SE (or NoSqueeze) block of ``model`` by qualified name, in forward order of definition."""
    return {name: m for name, m in model.named_modules() if isinstance(m, GATED_MODULES)}


@contextlib.contextmanager
def capture_gates(model: nn.Module, detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the gate values ``s`` (Eq. 3) of every SE block during the forward passes inside.

    >>> with capture_gates(model) as gates:
    ...     logits = model(images)
    >>> gates["layer4.2.se"].shape   # (N, 2048) for SE-ResNet-50

    The dict maps block names to the gate of the last forward pass: (N, C) for SE blocks,
    (N, C, H, W) for NoSqueeze. Hooks are removed on exit.
    """
    gates: dict[str, torch.Tensor] = {}
    handles = []
    for name, block in se_modules(model).items():
        def record(module, inputs, output, name=name):
            if output.dim() == 1:  # an SE block's gate for a single image is a vector
                output = output.unsqueeze(0)
            gates[name] = output.detach() if detach else output
        handles.append(block.gate.register_forward_hook(record))
    try:
        yield gates
    finally:
        for handle in handles:
            handle.remove()


def close_residual(branch: torch.Tensor, identity: torch.Tensor, se: nn.Module | None, position: str | None,
                   activation: nn.Module | None = None) -> torch.Tensor:
    """The addition that closes a residual unit, with the SE block where Section 6.5 puts it.

    * standard (Fig. 5b): ``identity + s(branch) * branch``, fused in the SE block;
    * identity (SE-Identity, Fig. 5e): the gate rescales the identity path instead, fused too;
    * post (SE-POST, Fig. 5d): on the sum, after ``activation`` when the unit has one (the ReLU of
      a post-activation ResNet; a pre-activation unit has none);
    * pre and 3x3 act inside the branch, and ``position=None`` is a unit without SE: a plain addition.
    """
    if position == "standard":
        out = se(branch, identity)
    elif position == "identity":
        out = se(identity, branch)
    else:
        out = branch + identity
    if activation is not None:
        out = activation(out)
    return se(out) if position == "post" else out
