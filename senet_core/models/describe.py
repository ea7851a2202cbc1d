"""Table 1 of the paper, and the layers of Figs. 2-3, regenerated from the models themselves (Section 3.3).

Nothing here is typed in from the paper: every cell is read off the modules of a built network
(kernel sizes, widths, groups, SE FC sizes, block counts) and every output size off a forward pass
with hooks. :func:`paper_architecture_table` renders the paper's printed Table 1 in the same format,
and :func:`compare_architecture_table` puts the two side by side, cell by cell. :func:`trace_module`
lists the layers one module calls, in order, with their output shapes: what
:func:`senet_core.book.diagrams.draw_module` draws as Figs. 2-3.
"""
from __future__ import annotations

import re
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from ..paper import paper_table
from ..se import GATED_MODULES, NoSqueeze
from .registry import create_model

TABLE1_MODELS = ("resnet50", "se_resnet50", "se_resnext50_32x4d")
TABLE1_NAMES = {"resnet50": "ResNet-50", "se_resnet50": "SE-ResNet-50", "se_resnext50_32x4d": "SE-ResNeXt-50 (32x4d)"}


def _conv_text(conv: nn.Conv2d, stride: bool = False) -> str:
    k = "x".join(map(str, conv.kernel_size))
    text = f"conv {k}, {conv.out_channels}"
    if conv.groups > 1:
        text += f", C={conv.groups}"        # cardinality, in the paper's words
    if stride and conv.stride[0] > 1:
        text += f", stride {conv.stride[0]}"
    return text


def _block_text(block: nn.Module) -> str:
    """'[conv 1x1, 64; conv 3x3, 64; conv 1x1, 256; fc [16, 256]]' for one residual unit."""
    parts = [_conv_text(m) for name, m in block.named_children() if isinstance(m, nn.Conv2d)]
    gate = next((m for m in block.children() if isinstance(m, GATED_MODULES)), None)
    if gate is not None:
        # The two FC layers of Eq. 3: C/r and C output units (1x1 convs for NoSqueeze).
        parts.append(f"fc [{_width(gate.fc1)}, {_width(gate.fc2)}]")
    return "[" + "; ".join(parts) + "]"


def _width(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _pool_text(pool: nn.Module) -> str:
    kind = "max" if isinstance(pool, nn.MaxPool2d) else "avg"
    k = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
    s = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
    return f"{kind} pool {k}x{k}, stride {s}"


def describe_resnet(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> list[tuple[str, str]]:
    """(output size, layer description) per row of Table 1, for one network of the ResNet family."""
    stem = model.stem
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    watched = [stem.conv1, stem.pool] + stages
    sizes: dict[int, tuple[int, int]] = {}
    _forward_with_hooks(model, torch.zeros((1,) + tuple(input_size)), [
        m.register_forward_hook(lambda mod, i, out, k=k: sizes.__setitem__(k, tuple(out.shape[2:])))
        for k, m in enumerate(watched)])

    def size(k: int) -> str:
        return "x".join(map(str, sizes[k]))

    rows = [(size(0), _conv_text(stem.conv1, stride=True)), (size(1), _pool_text(stem.pool))]
    for k, stage in enumerate(stages, start=2):
        rows.append((size(k), f"{_block_text(stage[0])} x {len(stage)}"))
    head = "global average pool, " + f"{model.fc.out_features}-d fc, softmax"
    rows.append(("1x1", head))   # global average pooling leaves 1 x 1 whatever the input size
    return rows


def architecture_table(names: Sequence[str] = TABLE1_MODELS, input_size: Sequence[int] = (3, 224, 224)):
    """Table 1 (exact): rows = output sizes, one column per network, read off the built models.

    Cells follow the paper: ``"conv 7x7, 64, stride 2"``, ``"max pool 3x3, stride 2"``,
    ``"[conv 1x1, 64; conv 3x3, 64; conv 1x1, 256; fc [16, 256]] x 3"``, ``"..., C=32"`` for a
    grouped convolution, ``"global average pool, 1000-d fc, softmax"``.
    """
    columns, sizes = {}, None
    for name in names:
        rows = describe_resnet(create_model(name), input_size)
        these = [s for s, _ in rows]
        if sizes is not None and these != sizes:
            raise ValueError(f"{name}'s output sizes {these} differ from the other columns' {sizes}")
        sizes = these
        columns[name] = [text for _, text in rows]
    return pd.DataFrame({"output size": sizes, **columns})


def paper_architecture_table():
    """The paper's Table 1 as printed (``senet_core.paper.paper_table(1)``), in our cell format."""
    rows = paper_table(1)
    names = [k for k in rows[0] if k not in ("row", "output_size", "blocks", "footnote")]
    data = {"output size": [r["output_size"] for r in rows]}
    for name in names:
        data[name] = [r[name] + (f" x {r['blocks']}" if r["blocks"] else "") for r in rows]
    return pd.DataFrame(data)


def normalise_cell(text: str) -> str:
    """Formatting only: whitespace, the multiplication sign and letter case."""
    text = text.replace("×", "x").replace("\u2009", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


def compare_architecture_table(ours=None):
    """Paper beside ours for every cell of Table 1: a long DataFrame with a ``match`` column."""
    paper = paper_architecture_table()
    ours = architecture_table(tuple(c for c in paper.columns if c != "output size")) if ours is None else ours
    if len(ours) != len(paper):
        raise ValueError(f"ours has {len(ours)} rows, the paper's Table 1 {len(paper)}")
    lines = []
    for i in range(len(paper)):
        for column in paper.columns:
            p, o = str(paper.iloc[i][column]), str(ours.iloc[i][column])
            lines.append({"row": i + 1, "column": column, "paper": p, "ours (exact)": o,
                          "match": normalise_cell(p) == normalise_cell(o)})
    return pd.DataFrame(lines)


def _stacked(cell: str) -> str:
    """A Table 1 cell with one layer a line, as the paper prints it: "[a; b] x 3" -> "a\\nb\\n× 3"."""
    match = re.fullmatch(r"\[(.*)\] x (\d+)", cell)
    if not match:
        return cell
    layers = re.split(r"; (?![^\[]*\])", match.group(1))       # not inside "fc [16, 256]"
    return "\n".join(layers + [f"× {match.group(2)}"])


def table1_beside_paper(ours=None):
    """Table 1 once: our cells (one layer a line) and, per row, how many of its cells match the paper's
    as printed (:func:`compare_architecture_table`); a cell that differs shows the paper's beside ours."""
    comparison = compare_architecture_table(ours)
    table = {}
    for (row, column), cell in comparison.groupby(["row", "column"], sort=False):
        cell = cell.iloc[0]
        text = _stacked(cell["ours (exact)"])
        table.setdefault(row, {})[column] = text if cell["match"] else f"{text}\n(paper: {cell['paper']})"
    frame = pd.DataFrame.from_dict(table, orient="index").rename(columns=TABLE1_NAMES)
    matched = comparison.groupby("row", sort=False)["match"]
    frame["cells as printed"] = [f"{int(m.sum())} of {len(m)}" for _, m in matched]
    return frame.set_index("output size")


def input_shape_of(model: nn.Module, name: str, input_size: Sequence[int] = (3, 224, 224)) -> tuple[int, ...]:
    """The (C, H, W) input of submodule ``name`` when ``model`` sees one image of ``input_size``."""
    seen = {}

    def record(module, args):
        seen.setdefault("shape", tuple(args[0].shape[1:]))   # returns None: the input is left as is

    _forward_with_hooks(model, torch.zeros((1,) + tuple(input_size)),
                        [model.get_submodule(name).register_forward_pre_hook(record)])
    return seen["shape"]


def _forward_with_hooks(model: nn.Module, x: torch.Tensor, handles: list) -> None:
    """One eval-mode, no-grad pass of ``x`` so that ``handles``' hooks record; then restore the model's
    mode and remove the hooks."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


# ---- Figs. 2-3: the layers of one module, traced ----------------------------------------------------
def _layer_text(module: nn.Module) -> str:
    """A leaf layer as a box of Figs. 2-3 labels it: "conv 3x3, 64, /2, C=32", "FC", "BN"."""
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        extra = f", /{module.stride[0]}" if module.stride[0] > 1 else ""
        extra += f", C={module.groups}" if module.groups > 1 else ""
        return f"conv {k}, {module.out_channels}{extra}"
    if isinstance(module, nn.Linear):
        return "FC"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return f"{kind} pool {k}x{k}" + (f", /{s}" if s > 1 else "")
    if isinstance(module, nn.BatchNorm2d):
        return "BN"
    return type(module).__name__


def _se_steps(gate, u_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The steps of an SE (or NoSqueeze) block on an input of ``u_shape``, from its parameters.

    The block computes its squeeze, FCs and ReLU as tensor functions rather than module calls (see
    :func:`senet_core.se.fused_excitation`), so hooks cannot see them; their sizes are read off the
    block instead.
    """
    n, c = u_shape[0], u_shape[1]
    hidden = gate.fc1.weight.shape[0]
    name = type(gate.gate).__name__
    if isinstance(gate, NoSqueeze):   # Table 16: 1x1 convs at every position, no pooling
        h, w = u_shape[2:]
        return [(f"conv 1x1, {hidden}", (n, hidden, h, w)), ("ReLU", (n, hidden, h, w)),
                (f"conv 1x1, {c}", (n, c, h, w)), (name, (n, c, h, w))]
    pool = "global max pooling" if getattr(gate, "squeeze", "avg") == "max" else "global pooling"
    return [(pool, (n, c)), ("FC", (n, hidden)), ("ReLU", (n, hidden)), ("FC", (n, c)), (name, (n, c))]


def trace_module(block, input_shape: Sequence[int]) -> list[dict]:
    """One forward pass of ``block`` on zeros of ``input_shape``, with hooks on every leaf layer.

    Returns the calls in order: ``{"name", "layer", "shape", "part", "parent"}`` where ``part`` is
    ``"se"`` (a step of an SE block: squeeze, FC, ReLU, FC, gate; read off the block, see
    :func:`_se_steps`), ``"identity"`` (a projection shortcut: ``downsample`` or ``shortcut``) or
    ``"main"``, and ``parent`` the index of the call that produced this call's input (-1 for the
    block input, None when it came from an operation that is not a module, such as a
    concatenation or the SE block's scaling).
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    gated = {name for name, m in block.named_modules() if isinstance(m, GATED_MODULES)}
    calls: list[dict] = []
    outputs: list = []
    handles = []
    x = torch.zeros(shape)

    def inside_se(name: str) -> bool:
        return any(name.startswith(g + ".") for g in gated)

    def part_of(name: str) -> str:
        return "identity" if name.split(".")[0] in ("downsample", "shortcut") else "main"

    def record_gate(module, inputs, output, name):
        for layer, step_shape in _se_steps(module, tuple(inputs[0].shape)):
            calls.append({"name": name, "layer": layer, "shape": step_shape, "part": "se", "parent": None})
            outputs.append(None)

    def record(module, inputs, output, name):
        source = inputs[0] if inputs else None
        parent = -1 if source is x else None
        for i in reversed(range(len(outputs))):
            if outputs[i] is source:
                parent = i
                break
        calls.append({"name": name, "layer": _layer_text(module), "shape": tuple(output.shape),
                      "part": part_of(name), "parent": parent})
        outputs.append(output)

    for name, module in block.named_modules():
        if name in gated:
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: record_gate(m, i, o, name)))
        elif not inside_se(name) and not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: record(m, i, o, name)))
    _forward_with_hooks(block, x, handles)
    return calls
