"""The exact checks of the reproduction report: architecture (Section 3, Table 1, the appendix) and
complexity (Section 4, Eq. 5) counted from our models.

A claim of kind ``exact`` in ``claims.yaml`` names one or more items, each computed now by a named
computation (:data:`COMPUTATIONS`, by default ``complexity``) and compared with the paper's printed
number using the project's tolerances (:data:`senet_core.complexity.TOLERANCES`). A miss is
"explained" only where :data:`senet_core.complexity.EXPLAINED_MISSES` gives the reason.

Complexity counts run the network on PyTorch's ``meta`` device: shapes only, no memory or arithmetic,
the same counts as a real forward pass (``tests/test_report.py`` checks that), and cached per
(model, options, input size).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from ..complexity import EXPLAINED_MISSES, PaperCell, complexity, eq5_extra_weights
from ..models import create_model, model_entry
from ..paper import paper_table
from ..se import SEBlock
from .arithmetic import printed_match

QUANTITIES = ("gflops", "mflops", "params_M", "params", "se_params")


@dataclass(frozen=True)
class Check:
    """One computed comparison: what we show, whether it meets the paper, and why if it is a known miss."""

    text: str
    ok: bool
    explained: str | None = None


def _freeze(options: dict | None) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (options or {}).items()))


@lru_cache(maxsize=None)
def _cost(model: str, options: tuple, size: int):
    """Complexity of one configuration at size x size, run on the meta device (shapes only)."""
    with torch.device("meta"):
        net = create_model(model, **dict(options))
    return complexity(net, (3, size, size))


def _size(model: str, item: dict) -> int:
    return int(item.get("input_size") or model_entry(model).input_size[1])


def _name(model: str, options: dict | None) -> str:
    if not options:
        return model
    return f"{model} ({', '.join(f'{k}={v}' for k, v in options.items())})"


def _format(quantity: str, value: float) -> str:
    if quantity == "gflops":
        return f"{value:.3f} GFLOPs"
    if quantity == "mflops":
        return f"{value:.1f} MFLOPs"
    if quantity == "params_M":
        return f"{value:.3f} M params"
    return f"{int(value):,} {'SE params' if quantity == 'se_params' else 'params'}"


def _within(quantity: str, value: float, paper, tolerance) -> bool:
    if tolerance is not None:
        return abs(value - float(paper)) <= float(tolerance) + 1e-9
    if quantity in ("gflops", "mflops", "params_M"):
        # The project's one definition of the tolerances (senet_core.complexity.TOLERANCES).
        return PaperCell(0, "", "", (), quantity, str(paper), value).within_tolerance
    return int(value) == int(paper)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<!et al)\. ", text)[0].rstrip(".") + "."


def _complexity_item(item: dict) -> Check:
    model, options, quantity = item["model"], item.get("options") or {}, item["quantity"]
    size = _size(model, item)
    c = _cost(model, _freeze(options), size)
    value = {"gflops": c.gflops, "mflops": c.mflops, "params_M": c.params_m, "params": c.params,
             "se_params": c.se_params}[quantity]
    ok = _within(quantity, value, item["paper"], item.get("tolerance"))
    explained = None
    if not ok and "table" in item:
        explained = EXPLAINED_MISSES.get((int(item["table"]), str(item["row"]), quantity))
    text = f"{_name(model, options)}: {_format(quantity, value)}" + (f" at {size}x{size}" if size != 224 else "")
    return Check(text, ok, explained)


def _raw(model: str, options: dict | None, quantity: str, size: int) -> float:
    c = _cost(model, _freeze(options), size)
    return {"params": c.params, "gflops": c.macs, "mflops": c.macs, "se_params": c.se_params}[quantity]


def _increase(item: dict, as_ratio: bool = False) -> Check:
    quantity = item["quantity"]
    size = _size(item["model"], item)
    a = _raw(item["model"], item.get("options"), quantity, size)
    b = _raw(item["baseline"], item.get("baseline_options"), quantity, size)
    value = a / b if as_ratio else 100 * (a / b - 1)
    tolerance = item.get("tolerance")
    ok = (abs(value - float(item["paper"])) <= float(tolerance) + 1e-9 if tolerance is not None
          else printed_match(value, item["paper"]))
    what = {"params": "params", "gflops": "GFLOPs", "mflops": "MFLOPs", "se_params": "SE params"}[quantity]
    shown = f"{value:.2f}x {what}" if as_ratio else f"{value:+.2f} % {what}"
    pair = f"{_name(item['model'], item.get('options'))} vs {_name(item['baseline'], item.get('baseline_options'))}"
    return Check(f"{pair}: {shown}", ok)


def _ratio(item: dict) -> Check:
    return _increase(item, as_ratio=True)


def _resnet_stages(model: str) -> list[tuple[int, int]]:
    """(N_s, C_s) of each residual stage of a ResNet-family baseline, read from the model."""
    with torch.device("meta"):
        net = create_model(model)
    stages = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(net, name)
        stages.append((len(layer), layer[-1].conv3.out_channels))
    return stages


def _eq5(item: dict) -> Check:
    """Eq. 5 against the counted parameters, for each reduction ratio asked for."""
    model, baseline = item["model"], item["baseline"]
    stages = _resnet_stages(baseline)
    base = _cost(baseline, (), 224).params
    rows, ok = [], True
    for r in item["reductions"]:
        se = _cost(model, _freeze({"reduction": r, "se_bias": False}), 224)
        counted, formula = se.params - base, eq5_extra_weights(stages, r)
        ok &= counted == formula == se.se_params
        if "paper" in item:
            ok &= counted == int(item["paper"])
        rows.append((r, counted, formula))
    with_bias = _cost(model, _freeze({"reduction": 16}), 224)
    no_bias = _cost(model, _freeze({"reduction": 16, "se_bias": False}), 224)
    bias = with_bias.params - no_bias.params
    bias_share = 100 * bias / with_bias.params
    if len(rows) == 1:
        r, counted, formula = rows[0]
        text = f"r = {r}: {counted:,} SE weights counted in {model}, Eq. 5 gives {formula:,}"
    else:
        equal = sum(c == f for _, c, f in rows)
        text = (f"counted SE weights = Eq. 5 for {equal} of {len(rows)} ratios "
                f"(r = {', '.join(str(r) for r, _, _ in rows)}); "
                + ", ".join(f"r = {r}: {c:,}" for r, c, _ in rows))
        ok &= bias_share < 1.0      # "negligible": under 1 % of the network's parameters
    text += f"; FC biases add {bias:,} ({bias_share:.2f} % of {model})"
    return Check(text, ok)


def _last_stage_share(item: dict) -> Check:
    model, stage = item["model"], int(item["last_stage"])
    total = _cost(model, _freeze({"se_bias": False}), 224).se_params
    last = _cost(model, _freeze({"se_bias": False, "se_stages": [stage]}), 224).se_params
    share = 100 * last / total
    return Check(f"stage {stage} holds {last:,} of {total:,} SE weights ({share:.1f} %)", share > 50)


def _se_block(item: dict) -> Check:
    """Eqs. 2-4 on one SE block (C = 64, r = 16) and random feature maps, checked from the outside:
    what the block returns, not how it computes it."""
    torch.manual_seed(0)
    block = SEBlock(64, reduction=16).eval()
    u = 3 * torch.randn(8, 64, 7, 9)
    with torch.no_grad():
        s = block.excite(u)
        out = block(u)
        z = u.mean((2, 3))
        manual = torch.sigmoid(F.linear(F.relu(F.linear(z, block.fc1.weight, block.fc1.bias)),
                                        block.fc2.weight, block.fc2.bias))
    prop = item["property"]
    if prop == "squeeze":
        # With a global-average squeeze the gate sees only each channel's mean: a map filled with its
        # channel means, or with its pixels shuffled, gets the same gate.
        with torch.no_grad():
            filled = block.excite(z[:, :, None, None].expand_as(u).contiguous())
            shuffled = block.excite(u.flatten(2)[:, :, torch.randperm(63)].view_as(u))
        diff = max((filled - s).abs().max().item(), (shuffled - s).abs().max().item())
        return Check(f"the gate depends on U only through its mean over H x W: the same gate for U, for U filled "
                     f"with its channel means and for U with shuffled pixels (max abs diff {diff:.1e}; 8 maps of "
                     f"64 x 7 x 9)", diff < 1e-5)
    if prop == "excitation":
        w1, w2 = tuple(block.fc1.weight.shape), tuple(block.fc2.weight.shape)
        diff = (manual - s).abs().max().item()
        low, high = s.min().item(), s.max().item()
        ok = w1 == (4, 64) and w2 == (64, 4) and diff < 1e-5 and 0 < low and high < 1
        return Check(f"C = 64, r = 16: W1 {w1[0]} x {w1[1]}, W2 {w2[0]} x {w2[1]}; s = sigmoid(W2 ReLU(W1 z)) "
                     f"(max abs diff {diff:.1e}); s in [{low:.3f}, {high:.3f}]", ok)
    if prop == "scale":
        diff = (out - u * s[:, :, None, None]).abs().max().item()
        ok = out.shape == u.shape and diff < 1e-6
        return Check(f"output {' x '.join(map(str, out.shape))}, the shape of U; equals s_c u_c "
                     f"(max abs diff {diff:.1e})", ok)
    raise ValueError(f"se_block has no property {prop!r}")


def _se_placement(item: dict) -> Check:
    """The first residual unit of an SE-ResNet: output = ReLU(identity + s(branch) * branch)."""
    torch.manual_seed(0)
    net = create_model(item["model"]).eval()
    block = net.layer1[0]
    x = torch.randn(2, block.conv1.in_channels, 16, 16)
    seen = {}

    def record(module, args, out):
        seen["args"] = args

    handle = block.se.register_forward_hook(record)
    with torch.no_grad():
        out = block(x)
        identity = block.downsample(x) if block.downsample is not None else x
        branch = block.relu(block.bn1(block.conv1(x)))
        branch = block.relu(block.bn2(block.conv2(branch)))
        branch = block.bn3(block.conv3(branch))
        s = block.se.excite(branch)[:, :, None, None]
        expected = torch.relu(identity + s * branch)
    handle.remove()
    gated = seen["args"][0]
    diff = (out - expected).abs().max().item()
    ok = diff < 1e-5 and torch.equal(gated, branch)
    positions = {m.se_position for m in net.modules() if hasattr(m, "se_position")}
    ok &= positions == {"standard"}
    return Check(f"{item['model']} layer1.0: the gate is computed from the residual branch and the output is "
                 f"ReLU(identity + s * branch) (max abs diff {diff:.1e}); every unit uses this placement", ok)


def _output_sizes(item: dict) -> Check:
    """Spatial size after each row of Table 1 for a 224 x 224 input."""
    paper = [row["output_size"] for row in paper_table(1)]
    texts, ok = [], True
    for model in item["models"]:
        with torch.device("meta"):
            net = create_model(model)
        sizes = []
        points = [net.stem.conv1, net.stem.pool, net.layer1, net.layer2, net.layer3, net.layer4]
        handles = [m.register_forward_hook(lambda m, a, out: sizes.append(f"{out.shape[-2]}x{out.shape[-1]}"))
                   for m in points]
        # The classifier sees one vector per image: the 1 x 1 of global pooling.
        handles.append(net.fc.register_forward_pre_hook(
            lambda m, a: sizes.append("1x1" if a[0].dim() == 2 else "x".join(map(str, a[0].shape[2:])))))
        with torch.no_grad():
            net(torch.zeros(1, 3, 224, 224, device="meta"))
        for h in handles:
            h.remove()
        ok &= sizes == paper
        texts.append(model)
    return Check(f"{', '.join(texts)}: {', '.join(s.split('x')[0] for s in sizes)}", ok)


def _parse_unit(cell: str) -> list[tuple]:
    """'[conv 1x1, 64; conv 3x3, 128, C=32; conv 1x1, 256; fc [16, 256]]' -> layer descriptions."""
    parts = []
    for piece in cell.strip()[1:-1].split(";"):
        piece = piece.strip()
        fc = re.fullmatch(r"fc \[(\d+), (\d+)\]", piece)
        if fc:
            parts.append(("fc", int(fc.group(1)), int(fc.group(2))))
            continue
        conv = re.fullmatch(r"conv (\d+)x\d+, (\d+)(?:, C=(\d+))?", piece)
        if not conv:
            raise ValueError(f"cannot read Table 1 cell part {piece!r}")
        parts.append(("conv", int(conv.group(1)), int(conv.group(2)), int(conv.group(3) or 1)))
    return parts


def _describe_unit(block) -> list[tuple]:
    out = [("conv", conv.kernel_size[0], conv.out_channels, conv.groups)
           for conv in (block.conv1, block.conv2, block.conv3)]
    if getattr(block, "se", None) is not None:
        out.append(("fc", block.se.fc1.out_features, block.se.fc1.in_features))
    return out


def _table1_match(item: dict) -> Check:
    """Each model's column of Table 1, row by row, against the built network."""
    table = paper_table(1)
    texts, ok = [], True
    for model in item["models"]:
        with torch.device("meta"):
            net = create_model(model)
        matched, wrong = 0, []
        for row in table:
            cell, label = row[model], f"row {row['row']}"
            if row["blocks"]:
                layer = getattr(net, f"layer{int(row['row']) - 2}")
                want = _parse_unit(cell)
                good = len(layer) == int(row["blocks"]) and all(_describe_unit(b) == want for b in layer)
            elif cell.startswith("conv"):
                k, width, stride = map(int, re.match(r"conv (\d+)x\d+, (\d+), stride (\d+)", cell).groups())
                conv = net.stem.conv1
                good = (conv.kernel_size[0], conv.out_channels, conv.stride[0]) == (k, width, stride)
            elif cell.startswith("max pool"):
                k, stride = map(int, re.match(r"max pool (\d+)x\d+, stride (\d+)", cell).groups())
                pool = net.stem.pool
                good = isinstance(pool, torch.nn.MaxPool2d) and (pool.kernel_size, pool.stride) == (k, stride)
            else:
                classes = int(re.search(r"(\d+)-d fc", cell).group(1))
                good = net.fc.out_features == classes
            matched += good
            if not good:
                wrong.append(label)
        ok &= not wrong
        texts.append(f"{model}: {matched} of {len(table)} rows match"
                     + (f" (not: {', '.join(wrong)})" if wrong else ""))
    return Check("; ".join(texts), ok)


def _senet154_design(item: dict) -> Check:
    """Appendix (a)-(d) of the paper, read off the built SENet-154."""
    with torch.device("meta"):
        net = create_model(item["model"])
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    blocks = [b for layer in layers for b in layer]
    stem_convs = [m for m in net.stem.modules() if isinstance(m, nn.Conv2d)]
    half = sum(b.conv1.out_channels * 2 == b.conv2.out_channels for b in blocks)
    projections = [layer[0].downsample[0] for layer in layers[1:]]
    proj_ok = all(p.kernel_size == (3, 3) and p.stride == (2, 2) for p in projections)
    drop = net.dropout.p if isinstance(net.dropout, nn.Dropout) else 0.0
    counts = [len(layer) for layer in layers]
    first = net.layer1[0].conv2
    with_se = sum(getattr(b, "se", None) is not None for b in blocks)
    ok = (len(stem_convs) == 3 and all(c.kernel_size == (3, 3) for c in stem_convs) and half == len(blocks)
          and proj_ok and drop == 0.2 and counts == [3, 8, 36, 3] and first.groups == 64
          and first.out_channels == 256 and with_se == len(blocks))
    return Check(f"stem of {len(stem_convs)} 3x3 convs; first 1x1 at half width in {half} of {len(blocks)} units; "
                 f"3x3 stride-2 projections in stages 3-5: {'yes' if proj_ok else 'no'}; dropout {drop}; "
                 f"units {counts}; stage 2 groups {first.groups} x {first.out_channels // first.groups}d; "
                 f"SE in {with_se} of {len(blocks)} units", ok)


# Named computations an exact claim may use, each named for what it computes.
COMPUTATIONS = {
    "complexity": _complexity_item,
    "increase": _increase,
    "ratio": _ratio,
    "eq5": _eq5,
    "last_stage_share": _last_stage_share,
    "se_block": _se_block,
    "se_placement": _se_placement,
    "output_sizes": _output_sizes,
    "table1_match": _table1_match,
    "senet154_design": _senet154_design,
}


def _items(ours: dict) -> list[dict]:
    return ours["items"] if "items" in ours else [ours]


def check_exact(ours: dict) -> tuple[str, str]:
    """``(what we computed, agrees)`` of an exact claim: each of its items computed on our models
    (:data:`COMPUTATIONS`), agreeing ("yes"), missing only where the reason is known ("no (explained)"),
    or not ("no")."""
    texts, checks = [], []
    for item in _items(ours):
        check = COMPUTATIONS[item.get("compute", "complexity")](item)
        checks.append(check)
        # A single-item claim's note is the claim's own and is added once by the report.
        texts.append(f"{check.text} ({item['note']})" if "items" in ours and item.get("note") else check.text)
    if all(c.ok for c in checks):
        agrees = "yes"
    elif all(c.ok or c.explained for c in checks):
        agrees = "no (explained)"
    else:
        agrees = "no"
    reasons = dict.fromkeys(c.explained for c in checks if c.explained and not c.ok)
    texts += [f"explained miss: {_first_sentence(why)}" for why in reasons]
    return "; ".join(texts), agrees
