"""The reproduction report: each checkable claim of the paper beside our check of it.

The claims and how each is checked are data (``claims.yaml``, one entry per numbered claim of the
project's claim list). :func:`reproduction_report` works out every "ours" value when it is called:

* ``exact``: counted from our models (``create_model`` + :func:`senet_core.complexity.complexity`)
  or from a named computation on them (:data:`COMPUTATIONS`), compared with the printed number
  using the project's tolerances. Misses are marked "explained" only where
  :data:`senet_core.complexity.EXPLAINED_MISSES` gives the reason.
* ``reduced_scale``: the direction of an SE comparison from the committed records of
  ``experiments.yaml``, as a paired difference over seeds. It speaks to the direction of a claim,
  never to its ImageNet number.
* ``arithmetic``: an expression over the paper's printed numbers (a small whitelist of operations).
* ``measured_elsewhere``: timing, measured on the reader's hardware in a chapter.
* ``not_run``: with the reason (ImageNet training, cited numbers, test server, datasets).

Complexity counts run the network on PyTorch's ``meta`` device: shapes only, no memory or arithmetic,
the same counts as a real forward pass (``tests/test_report.py`` checks that), and cached per
(model, options, input size).
"""
from __future__ import annotations

import ast
import copy
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .experiments import Pair, decisions, gain_text
from .results import format_table, load_records, provenance_label
from .stats import OUTCOMES

KINDS = ("exact", "reduced_scale", "arithmetic", "measured_elsewhere", "not_run")
QUANTITIES = ("gflops", "mflops", "params_M", "params", "se_params")
AGREES = ("yes", "no (explained)", "no") + OUTCOMES + ("n/a",)
DATASETS = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


@lru_cache(maxsize=None)
def _claims_text() -> str:
    return (resources.files("senet_core.study") / "claims.yaml").read_text(encoding="utf-8")


def claims() -> list[dict]:
    """The 100 numbered claims with their paper location, check type and how we check them."""
    return copy.deepcopy(yaml.safe_load(_claims_text()))


# ---- Exact checks ---------------------------------------------------------------------------------------

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
    import torch

    from ..complexity import complexity
    from ..models import create_model

    with torch.device("meta"):
        net = create_model(model, **dict(options))
    return complexity(net, (3, size, size))


def _size(model: str, item: dict) -> int:
    from ..models import model_entry

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


def _decimals(printed) -> int:
    text = str(printed)
    return len(text.split(".")[1]) if "." in text else 0


def _printed_match(value: float, printed) -> bool:
    """Ours rounded to the precision the paper printed equals the printed number."""
    return round(float(value), _decimals(printed)) == float(printed)


def _within(quantity: str, value: float, paper, tolerance) -> bool:
    from ..complexity import PaperCell

    if tolerance is not None:
        return abs(value - float(paper)) <= float(tolerance) + 1e-9
    if quantity in ("gflops", "mflops", "params_M"):
        # The project's one definition of the tolerances (senet_core.complexity.TOLERANCES).
        return PaperCell(0, "", "", (), quantity, str(paper), value).within_tolerance
    return int(value) == int(paper)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<!et al)\. ", text)[0].rstrip(".") + "."


def _complexity_item(item: dict) -> Check:
    from ..complexity import EXPLAINED_MISSES

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
          else _printed_match(value, item["paper"]))
    what = {"params": "params", "gflops": "GFLOPs", "mflops": "MFLOPs", "se_params": "SE params"}[quantity]
    shown = f"{value:.2f}x {what}" if as_ratio else f"{value:+.2f} % {what}"
    pair = f"{_name(item['model'], item.get('options'))} vs {_name(item['baseline'], item.get('baseline_options'))}"
    return Check(f"{pair}: {shown}", ok)


def _ratio(item: dict) -> Check:
    return _increase(item, as_ratio=True)


def _resnet_stages(model: str) -> list[tuple[int, int]]:
    """(N_s, C_s) of each residual stage of a ResNet-family baseline, read from the model."""
    import torch

    from ..models import create_model

    with torch.device("meta"):
        net = create_model(model)
    stages = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(net, name)
        stages.append((len(layer), layer[-1].conv3.out_channels))
    return stages


def _eq5(item: dict) -> Check:
    """Eq. 5 against the counted parameters, for each reduction ratio asked for."""
    from ..complexity import eq5_extra_weights

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
    import torch
    from torch.nn import functional as F

    from ..se import SEBlock

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
    import torch

    from ..models import create_model

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
    import torch

    from ..models import create_model
    from ..paper import paper_table

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
    import torch

    from ..models import create_model
    from ..paper import paper_table

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
    import torch
    from torch import nn

    from ..models import create_model

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


def _exact(ours: dict) -> tuple[str, str]:
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


# ---- Arithmetic on printed numbers ------------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_COMPARE = {ast.Lt: operator.lt, ast.Gt: operator.gt, ast.LtE: operator.le, ast.GtE: operator.ge,
            ast.Eq: operator.eq}
_FUNCTIONS = {"abs": abs, "sum": sum, "min": min, "max": max, "round": round}


def evaluate(expression: str):
    """Evaluate arithmetic on numbers: + - * /, comparisons, lists and abs/sum/min/max/round only."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left, result = ev(node.left), True
            for op, right_node in zip(node.ops, node.comparators):
                right = ev(right_node)
                result = result and _COMPARE[type(op)](left, right)
                left = right
            return result
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and not node.keywords):
            return _FUNCTIONS[node.func.id](*[ev(a) for a in node.args])
        raise ValueError(f"not allowed in a claim's arithmetic: {ast.dump(node)[:60]}")

    return ev(ast.parse(expression.strip(), mode="eval"))


def _arithmetic(ours: dict) -> tuple[str, str]:
    value = evaluate(ours["expression"])
    expect = ours["expect"]
    values, expects = (value, expect) if isinstance(expect, list) else ([value], [expect])
    if len(values) != len(expects):
        raise ValueError(f"expression gives {len(values)} values, expect lists {len(expects)}")
    units = ours.get("unit", "")
    units = units if isinstance(units, list) else [units] * len(values)
    shown = [(str(int(v)) if isinstance(v, (int, bool)) or float(v).is_integer() and _decimals(e) == 0
              else f"{v:.{_decimals(e) + 1}f}") + (f" {u}" if u else "") for v, e, u in zip(values, expects, units)]
    ok = all(_printed_match(v, e) for v, e in zip(values, expects))
    return ", ".join(shown), "yes" if ok else "no"


# ---- Reduced-scale directions -----------------------------------------------------------------------------

def _pairs(ours: dict) -> list[Pair]:
    pairs = ours.get("pairs") or [{"row": ours["row"], "baseline": ours["baseline"], "expect": ours.get("expect")}]
    return [Pair(p["row"], p["baseline"], p.get("expect", ours.get("expect")), p.get("margin")) for p in pairs]


def claim_outcome(outcomes: list[str]) -> str:
    """One outcome for a claim made of several comparisons: contradicted if any is, inconclusive if
    any is, else holds (every comparison as the paper says, an "about equal" one equivalent) or
    equivalent (some effect smaller than the paper's)."""
    if not outcomes:
        raise ValueError("a claim needs at least one comparison")
    for worst in ("contradicted", "inconclusive"):
        if worst in outcomes:
            return worst
    return "equivalent" if "equivalent" in outcomes and "holds" not in outcomes else "holds"


def _reduced_scale(ours: dict, results_dir, profile: str) -> tuple[str, str, str, str]:
    """(status, ours, agrees, provenance) of a reduced-scale claim from its experiment's records;
    ``agrees`` is the claim's outcome (:data:`senet_core.study.stats.OUTCOMES`)."""
    pairs = _pairs(ours)
    records = load_records(results_dir, profile, ours["experiment"])
    made = decisions(ours["experiment"], records, pairs)
    if len(made) < len(pairs):
        return ("reduced scale: not run yet",
                f"no {profile}-profile records of {ours['experiment']} under {results_dir}", "n/a", "")
    texts = []
    for d in made:
        cmp = d.comparison
        better = sum(g > 0 for g in cmp.gains)
        texts.append(f"{d.row} vs {d.baseline}: top-1 error {abs(cmp.mean):.2f} points "
                     f"{'lower' if cmp.mean >= 0 else 'higher'} (gain {gain_text(cmp)}), lower on {better} of "
                     f"{cmp.n} seeds: {d.outcome}")
    # Holm's correction within the claim: its comparisons are one family.
    agrees = claim_outcome([d.outcome for d in made])
    used = {p.row for p in pairs} | {p.baseline for p in pairs}
    provenance = provenance_label([r for r in records if r["row"] in used])
    return "measured at reduced scale", "; ".join(texts), agrees, provenance


# ---- The report -------------------------------------------------------------------------------------------

def _chapter_number(chapter: str) -> str:
    match = re.match(r"(\d+)", chapter)
    return str(int(match.group(1))) if match else chapter


def _with_note(text: str, ours: dict) -> str:
    return f"{text} ({ours['note']})" if ours.get("note") and text else text


def check_claim(entry: dict, results_dir: str | Path = "results", profile: str = "cpu") -> dict:
    """One row of the report: the claim beside ours, computed now (see :func:`reproduction_report`)."""
    import torch

    from .. import __version__

    ours = entry["ours"]
    kind = ours["kind"]
    if kind == "exact":
        text, agrees = _exact(ours)
        status = "exact"
        provenance = (f"exact: computed from the model at report time (senet_core {__version__}, torch "
                      f"{torch.__version__}; MACs counted by torch FlopCounterMode)")
    elif kind == "arithmetic":
        text, agrees = _arithmetic(ours)
        status, provenance = "arithmetic", "arithmetic on the paper's printed numbers, evaluated at report time"
    elif kind == "reduced_scale":
        status, text, agrees, provenance = _reduced_scale(ours, results_dir, profile)
    elif kind == "measured_elsewhere":
        chapter = ours["chapter"]
        status = f"measured in chapter {_chapter_number(chapter)}"
        text = f"{ours.get('what', 'timing')}: chapter {_chapter_number(chapter)}"
        agrees, provenance = "n/a", "measured on the reader's hardware when that chapter runs"
    elif kind == "not_run":
        status, text, agrees, provenance = "not run here", ours["reason"], "n/a", "paper only"
    else:
        raise ValueError(f"claim {entry['id']}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    if kind not in ("not_run", "reduced_scale") or status == "measured at reduced scale":
        text = _with_note(text, ours)
    return {"#": entry["id"], "claim": entry["claim"], "paper": str(entry["paper"]), "status": status,
            "ours": text, "agrees": agrees, "provenance": provenance}


def reproduction_report(results_dir: str | Path = "results", profile: str = "cpu"):
    """Every claim of ``claims.yaml`` with the paper's number and ours, computed now: a pandas DataFrame.

    Columns: ``#``, ``claim``, ``paper``, ``status``, ``ours``, ``agrees`` (yes / no (explained) / no
    for exact and arithmetic claims, an outcome of :data:`senet_core.study.stats.OUTCOMES` for reduced-scale
    ones, n/a) and ``provenance``. Reduced-scale rows read the ``profile`` records under
    ``results_dir``; without them their status is "reduced scale: not run yet" and they show no number.
    """
    import pandas as pd

    rows = [check_claim(entry, results_dir, profile) for entry in claims()]
    return pd.DataFrame(rows, columns=["#", "claim", "paper", "status", "ours", "agrees", "provenance"])


def markdown_table(table) -> str:
    """A DataFrame (the report, or its summary) as a Markdown table, with the project's one table helper."""

    frame = table if table.index.name is None else table.reset_index()
    rows = [[str(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    return format_table([str(c) for c in frame.columns], rows, markdown=True)


def claims_table(report):
    """The report narrow enough for a page: ``#``, claim, paper, ours, and whether ours agrees, with where
    it comes from (*exact*, *arithmetic*, a chapter, or a numbered note for measured records); returns
    ``(table, notes)``, the notes giving the provenance of each kind of source, measured ones numbered."""
    notes: list[str] = []
    agrees = []
    for status, agree, provenance in zip(report["status"], report["agrees"], report["provenance"]):
        if status == "measured at reduced scale":
            if provenance not in notes:
                notes.append(provenance)
            agrees.append(f"{agree} [{notes.index(provenance) + 1}]")
        elif status in ("exact", "arithmetic"):
            agrees.append(f"{agree}, {status}")
        elif status.startswith("measured in chapter"):
            agrees.append(status.removeprefix("measured in "))
        else:
            agrees.append({"not run here": "not run", "reduced scale: not run yet": "not run yet"}.get(status, status))
    table = report[["#", "claim", "paper", "ours"]].copy()
    table["agrees"] = agrees
    kinds = {status: provenance for status, provenance in zip(report["status"], report["provenance"])
             if status in ("exact", "arithmetic")}
    return table, [f"*{status}*: {provenance}" for status, provenance in sorted(kinds.items(), reverse=True)] + \
        [f"[{i}] {note}" for i, note in enumerate(notes, 1)]


def _status_order(statuses) -> list[str]:
    first = ["exact", "arithmetic", "measured at reduced scale", "reduced scale: not run yet"]
    rest = sorted(s for s in set(statuses) if s not in first and s != "not run here")
    last = ["not run here"] if "not run here" in set(statuses) else []
    return [s for s in first if s in set(statuses)] + rest + last


def summary(report):
    """Claims per status (rows) and agreement (columns), with totals."""
    import pandas as pd

    table = pd.crosstab(report["status"], report["agrees"])
    table = table.reindex(index=_status_order(report["status"]),
                          columns=[a for a in AGREES if a in set(report["agrees"])], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.index.name, table.columns.name = "status", "agrees"
    return table


# What a claim we do not run would need, by its check type: (tag, said of one claim, said of several).
_NEEDS = (("TRAIN-COCO", "needs COCO detection training", "need COCO detection training"),
          ("TRAIN-IN", "needs ImageNet training or a trained ImageNet model",
           "need ImageNet training or a trained ImageNet model"),
          ("TRAIN-C", "needs CIFAR training", "need CIFAR training"),
          ("TRAIN-P", "needs Places365 training", "need Places365 training"),
          ("CITED", "is a number cited from other work", "are numbers cited from other work"),
          ("DATA", "is a dataset statistic (needs the dataset)", "are dataset statistics (need the dataset)"),
          ("NOT-REPRO", "is a test-server result of an unspecified ensemble",
           "are test-server results"))
_PROTOCOL = ("describes a protocol, not a result", "describe protocols, not results")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _ids(report, mask) -> str:
    ids = [str(i) for i in report.loc[mask, "#"]]
    return ", ".join(ids) if ids else "none"


# How the closing synthesis words each outcome of a training claim: (lead-in, what it means).
_OUTCOME_SAID = {
    "holds": ("Held at reduced scale", "the interval of SE's gain excludes 0 in the paper's direction"),
    "contradicted": ("Contradicted at reduced scale", "the interval excludes 0 the other way"),
    "equivalent": ("Within the paper's effect of 0",
                   "no gain as large as the paper's, or, for an 'about equal' claim, equal as the paper says"),
    "inconclusive": ("Not decided at reduced scale", "the interval is too wide to say either"),
}


def _claim_list(report, mask) -> list[str]:
    """A claim a line, in the paper's words, with its number and, where one stands in, our network."""
    notes = {e["id"]: e["ours"].get("note") for e in claims()}
    return [f"  * {claim.rstrip('.')} (claim {i}" + (f"; {notes[i]}" if notes.get(i) else "") + ")"
            for i, claim in zip(report.loc[mask, "#"], report.loc[mask, "claim"])]


def conclusion(report) -> str:
    """The report's closing synthesis (Markdown), written from its rows: what agrees exactly, what held
    at reduced scale, what did not, what could not be decided, and what this project cannot test."""
    entries = {e["id"]: e for e in claims()}
    status, agrees = report["status"], report["agrees"]
    lines = []
    exact, arithmetic = status == "exact", status == "arithmetic"
    if exact.any() or arithmetic.any():
        explained = _ids(report, exact & (agrees == "no (explained)"))
        unexplained = exact & (agrees == "no")
        lines.append(
            f"**The architectures are the paper's.** Of {_count(int(exact.sum()), 'claim', 'claims')} about "
            f"architecture and complexity, checked exactly on our models, "
            f"{int((exact & (agrees == 'yes')).sum())} agree within the project's tolerances"
            + (f"; the misses ({explained}) are networks whose sources do not give the paper's budget, and "
               f"chapter 3 says why" if explained != "none" else "")
            + (f"; {int(unexplained.sum())} disagree without explanation ({_ids(report, unexplained)})"
               if unexplained.any() else "; none disagrees without an explanation")
            + f". {int((arithmetic & (agrees == 'yes')).sum())} of {int(arithmetic.sum())} figures derived from "
              f"the paper's own numbers follow from them.")
    measured = status == "measured at reduced scale"
    if measured.any():
        lines.append(
            f"**Training, at reduced scale** ({_count(int(measured.sum()), 'claim', 'claims')}; Fashion-MNIST, "
            f"the direction and rough size of SE's effect, never the paper's ImageNet number):")
        for outcome in OUTCOMES:
            mask = measured & (agrees == outcome)
            if mask.any():
                lead, meaning = _OUTCOME_SAID[outcome]
                lines.append(f"* *{lead}* ({meaning}):\n" + "\n".join(_claim_list(report, mask)))
    waiting = status == "reduced scale: not run yet"
    if waiting.any():
        lines.append(
            f"**Not run yet** at reduced scale: claims {_ids(report, waiting)}. Their records are not in the "
            f"results folder (`senet experiments --profile cpu` writes them), so this report says nothing "
            f"about them.")
    timing = status.str.startswith("measured in chapter")
    if timing.any():
        lines.append(f"**Timing** (claims {_ids(report, timing)}) depends on the hardware: chapter 3 sets the "
                     f"measured ratio of SE-ResNet-50 to ResNet-50 beside the paper's.")
    not_run = report.loc[status == "not run here", "#"]
    if len(not_run):
        needs: dict[tuple[str, str], list[int]] = {}
        for i in not_run:
            check = str(entries[int(i)]["check"])
            why = next((tuple(n[1:]) for n in _NEEDS if check.startswith(n[0])), _PROTOCOL)
            needs.setdefault(why, []).append(int(i))
        parts = "; ".join(f"{_count(len(ids), one, many)} ({', '.join(map(str, ids))})"
                          for (one, many), ids in needs.items())
        lines.append(f"**What this project cannot test** ({len(not_run)} claims): {parts}. The paper's ImageNet, "
                     f"Places365 and COCO numbers, and the ensemble's test-set result, stay the paper's.")
    return "\n\n".join(lines)


def headline(report, outcomes=None):
    """The landing page's table (a DataFrame): each kind of claim, how it is checked, how many there
    are and what came out; ``outcomes`` (:func:`senet_core.study.experiments.conclusions`) adds the distinct
    training comparisons by outcome."""
    import pandas as pd

    status, agrees = report["status"], report["agrees"]

    def tally(mask, order) -> str:
        counts = agrees[mask].value_counts()
        said = {"yes": "agree", "holds": "hold", "no (explained)": "explained misses"}
        return ", ".join(f"{counts[a]} {said.get(a, a)}" for a in order if counts.get(a, 0))

    exact, arithmetic = status == "exact", status == "arithmetic"
    measured = status == "measured at reduced scale"
    timing = status.str.startswith("measured in chapter")
    not_run = status.isin(["not run here", "reduced scale: not run yet"])
    trained = tally(measured, OUTCOMES)
    if outcomes is not None and len(outcomes):
        per = (outcomes["outcome"].value_counts())
        trained += ("; of the " + str(len(outcomes)) + " distinct comparisons behind them: "
                    + ", ".join(f"{per[o]} {'hold' if o == 'holds' else o}" for o in OUTCOMES if per.get(o, 0)))
    rows = [
        ("Architecture and complexity", "exact: counted from our models", int(exact.sum()),
         tally(exact, ("yes", "no (explained)", "no"))),
        ("Arithmetic on the paper's numbers", "exact: computed from the printed numbers", int(arithmetic.sum()),
         tally(arithmetic, ("yes", "no"))),
        ("Training results", "measured at reduced scale: Fashion-MNIST, paired seeds", int(measured.sum()), trained),
        ("Timing", "measured: ratios on a CPU", int(timing.sum()), "chapter 3"),
        ("Needs the paper's data or compute", "not run here", int(not_run.sum()), "the paper's numbers stand"),
    ]
    return pd.DataFrame([r for r in rows if r[2]], columns=["claims", "checked", "n", "result"]).set_index("claims")
