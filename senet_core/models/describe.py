"""Table 1 of the paper regenerated from the models themselves (Section 3.3).

Nothing here is typed in from the paper: every cell is read off the modules of a built network
(kernel sizes, widths, groups, SE FC sizes, block counts) and every output size off a forward pass
with hooks. :func:`paper_architecture_table` renders the paper's printed Table 1 in the same format,
and :func:`compare_architecture_table` puts the two side by side, cell by cell.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from ..se import GATED_MODULES
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
    _forward_one_image(model, input_size, [
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
    import pandas as pd

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
    import pandas as pd

    from ..paper import paper_table

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
    import pandas as pd

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
    import pandas as pd

    frame = pd.DataFrame.from_dict(table, orient="index").rename(columns=TABLE1_NAMES)
    matched = comparison.groupby("row", sort=False)["match"]
    frame["cells as printed"] = [f"{int(m.sum())} of {len(m)}" for _, m in matched]
    return frame.set_index("output size")


def input_shape_of(model: nn.Module, name: str, input_size: Sequence[int] = (3, 224, 224)) -> tuple[int, ...]:
    """The (C, H, W) input of submodule ``name`` when ``model`` sees one image of ``input_size``."""
    seen = {}

    def record(module, args):
        seen.setdefault("shape", tuple(args[0].shape[1:]))   # returns None: the input is left as is

    _forward_one_image(model, input_size, [model.get_submodule(name).register_forward_pre_hook(record)])
    return seen["shape"]


def _forward_one_image(model: nn.Module, input_size, handles: list) -> None:
    """One eval-mode, no-grad pass of a zero image so that ``handles``' hooks record; then restore the
    model's mode and remove the hooks."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_size)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
