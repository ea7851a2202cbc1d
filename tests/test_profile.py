"""Section 4 timings: the fast SE path computes what the plain one does, and profile_models."""
import json
import statistics
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from senet_core import NoSqueeze, SEBlock, SEConfig, capture_gates, create_model, se_modules
from senet_core.models.cifar import PreActBasicBlock, PreActBottleneck
from senet_core.models.resnet import Bottleneck
from senet_core.engine.profile import ProfileReport, paired_times, profile_models
from senet_core.study.timing import (PAPER_MS, benchmark_results_path, committed_timing_table, measure_timing_table,
                                     timing_table)


def plain_se(block, u, residual=None):
    """Eqs. 2-4 and the residual addition, unfused, through the block's modules: u * s, then + residual."""
    if isinstance(block, NoSqueeze):
        s = block.gate(block.fc2(F.relu(block.fc1(u))))
    else:
        z = u.mean((2, 3)) if block.squeeze == "avg" else u.amax((2, 3))
        s = block.gate(block.fc2(F.relu(block.fc1(z))))[:, :, None, None]
    out = u * s
    return out if residual is None else out + residual


def use_plain_se(model):
    """Swap every SE block's forward for :func:`plain_se` (an instance attribute, so only here)."""
    for block in se_modules(model).values():
        block.forward = types.MethodType(plain_se, block)
    return model


def twins(module_factory, seed=0):
    torch.manual_seed(seed)
    fast = module_factory()
    plain = module_factory()
    plain.load_state_dict(fast.state_dict())
    return fast, use_plain_se(plain)


def assert_same_with_gradients(fast, plain, *inputs):
    """Forward outputs, input gradients and parameter gradients agree to float rounding."""
    a = [x.detach().clone().requires_grad_() for x in inputs]
    b = [x.detach().clone().requires_grad_() for x in inputs]
    out_fast, out_plain = fast(*a), plain(*b)
    torch.testing.assert_close(out_fast, out_plain)
    weights = torch.randn_like(out_fast)
    (out_fast * weights).sum().backward()
    (out_plain * weights).sum().backward()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.grad, y.grad)
    named = dict(plain.named_parameters())
    for name, p in fast.named_parameters():
        assert (p.grad is None) == (named[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, named[name].grad, msg=name)


@pytest.mark.parametrize("squeeze", ["avg", "max"])
@pytest.mark.parametrize("excitation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("batch", [1, 3])  # one image takes the matrix-vector path
def test_se_block_fast_path_matches_plain(squeeze, excitation, bias, residual, batch):
    fast, plain = twins(lambda: SEBlock(24, reduction=4, squeeze=squeeze, excitation=excitation, bias=bias))
    u = torch.randn(batch, 24, 7, 5)
    inputs = (u, torch.randn_like(u)) if residual else (u,)
    assert_same_with_gradients(fast, plain, *inputs)


@pytest.mark.parametrize("residual", [False, True])
def test_no_squeeze_matches_plain(residual):
    fast, plain = twins(lambda: NoSqueeze(16, reduction=4))
    u = torch.randn(2, 16, 5, 5)
    inputs = (u, torch.randn_like(u)) if residual else (u,)
    assert_same_with_gradients(fast, plain, *inputs)


@pytest.mark.parametrize("batch", [1, 2])
def test_fast_path_in_double_and_channels_last(batch):
    fast, plain = twins(lambda: SEBlock(32, reduction=8).double())
    u = torch.randn(batch, 32, 6, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert_same_with_gradients(fast, plain, u, torch.randn_like(u))


def test_half_precision_squeeze_does_not_overflow():
    # A float16 sum over 64x64 positions of values ~20 exceeds 65504; the mean does not.
    block = SEBlock(8, reduction=2).half()
    u = torch.full((1, 8, 64, 64), 20.0, dtype=torch.float16)
    s = block.excite(u)
    assert s.shape == (1, 8) and torch.isfinite(s).all()
    torch.testing.assert_close(s.float(), plain_gate(block.float(), u.float()), atol=2e-3, rtol=2e-3)


def plain_gate(block, u):
    return block.gate(block.fc2(F.relu(block.fc1(u.mean((2, 3))))))


def reference_bottleneck(block, x):
    """Bottleneck with SE where Section 6.5 (Fig. 5) puts it, written with the plain SE formulation."""
    position, se = block.se_position, getattr(block, "se", None)
    identity = x if block.downsample is None else block.downsample(x)
    out = plain_se(se, x) if position == "pre" else x
    out = F.relu(block.bn1(block.conv1(out)))
    out = F.relu(block.bn2(block.conv2(out)))
    if position == "3x3":
        out = plain_se(se, out)
    out = block.bn3(block.conv3(out))
    if position == "standard":
        out = plain_se(se, out) + identity
    elif position == "identity":
        out = out + plain_se(se, identity)
    else:
        out = out + identity
    out = F.relu(out)
    return plain_se(se, out) if position == "post" else out


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity", "3x3"])
@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_every_position_matches_reference(position, stride):
    def build():
        downsample = torch.nn.Sequential(torch.nn.Conv2d(32, 64, 1, stride, bias=False), torch.nn.BatchNorm2d(64))
        return Bottleneck(32, 16, 64, stride=stride, downsample=downsample,
                          se=SEConfig(reduction=4, position=position)).double()
    torch.manual_seed(0)
    fast = build()
    x = torch.randn(2, 32, 8, 8, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = fast(xa)
    expected = reference_bottleneck(fast, xb)
    torch.testing.assert_close(out, expected)
    weights = torch.randn_like(out)
    grads_fast = torch.autograd.grad((out * weights).sum(), [xa, *fast.parameters()])
    grads_plain = torch.autograd.grad((expected * weights).sum(), [xb, *fast.parameters()])
    for g1, g2 in zip(grads_fast, grads_plain):
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity", "3x3"])
def test_se_resnet50_every_position_matches_plain(position):
    fast, plain = twins(lambda: create_model("se_resnet50", num_classes=10, se_position=position))
    fast.eval(), plain.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), capture_gates(fast) as gates:
        out = fast(x)
        expected = plain(x)
    torch.testing.assert_close(out, expected)
    assert len(gates) == 16 and all(g.dim() == 2 and g.shape[0] == 1 for g in gates.values())


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity"])
def test_cifar_preact_block_matches_plain(position):
    fast, plain = twins(lambda: PreActBasicBlock(16, 32, stride=2, se=SEConfig(reduction=4, position=position)))
    assert_same_with_gradients(fast, plain, torch.randn(4, 16, 8, 8))


@pytest.mark.parametrize("position", ["standard", "pre", "post", "identity", "3x3"])
@pytest.mark.parametrize("stride", [1, 2])
def test_cifar_preact_bottleneck_matches_plain(position, stride):
    # The unit of the reduced-scale ablation network (ResNet-29), where training speed matters most.
    fast, plain = twins(lambda: PreActBottleneck(32, 64, stride=stride,
                                                 se=SEConfig(reduction=4, position=position)).double())
    assert_same_with_gradients(fast, plain, torch.randn(3, 32, 8, 8, dtype=torch.float64))


# ---- profile_models -------------------------------------------------------------------------------

FIELDS = {"model", "mode", "batch_size", "input_size", "device", "amp", "channels_last", "compile",
          "median_ms", "iqr_ms", "min_ms", "max_ms", "images_per_second", "peak_memory_mb", "ratio",
          "ratio_iqr", "rounds"}


def test_profile_models_latency_fields_and_baseline_ratio():
    report = profile_models(["resnet20_cifar", "se_resnet20_cifar"], baseline="resnet20_cifar",
                            batch_size=2, input_size=(3, 32, 32), device="cpu", warmup=1, repeats=3)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["baseline"] == "resnet20_cifar"
    assert {"device", "torch", "threads", "commit", "date"} <= set(data["provenance"])
    rows = {r["model"]: r for r in data["rows"]}
    assert list(rows) == ["resnet20_cifar", "se_resnet20_cifar"]
    for row in rows.values():
        assert set(row) == FIELDS
        assert row["mode"] == "latency" and row["batch_size"] == 2 and row["input_size"] == [3, 32, 32]
        assert row["device"] == "cpu" and row["rounds"] == 3 and row["peak_memory_mb"] is None
        assert row["iqr_ms"][0] <= row["median_ms"] <= row["iqr_ms"][1]
        assert row["images_per_second"] == pytest.approx(2 / (row["median_ms"] / 1e3))
    assert rows["resnet20_cifar"]["ratio"] == 1.0 and rows["resnet20_cifar"]["ratio_iqr"] == [1.0, 1.0]
    assert rows["se_resnet20_cifar"]["ratio"] > 0
    assert len(report.rows[0].times_ms) == 3
    text = report.render()
    assert "se_resnet20_cifar" in text and "ratio to resnet20_cifar" in text


def test_profile_models_train_mode_leaves_a_given_module_untouched():
    torch.manual_seed(0)
    module = create_model("resnet20_cifar", in_chans=1).eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    report = profile_models([("mine", module), "se_resnet20_cifar"], baseline="mine", mode="train",
                            batch_size=2, input_size=(1, 16, 16), device="cpu", warmup=0, repeats=2, threads=1)
    assert [r.model for r in report.rows] == ["mine", "se_resnet20_cifar"]
    assert report.rows[0].mode == "train" and report.provenance["threads"] == 1
    assert not module.training
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_paired_times_rotates_the_order():
    calls = []
    steps = {label: (lambda label=label: calls.append(label)) for label in "abc"}
    times = paired_times(steps, warmup=0, repeats=3)
    assert "".join(calls) == "abcbcacab"
    assert all(len(t) == 3 for t in times.values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(models=["resnet50x"]), "unknown model"),
    (dict(models=["resnet20_cifar"], mode="inference"), "mode="),
    (dict(models=["resnet20_cifar"], amp="fp8"), "amp="),
    (dict(models=["resnet20_cifar"], batch_size=0), "batch_size"),
    (dict(models=["resnet20_cifar"], repeats=0), "repeats"),
    (dict(models=["resnet20_cifar"], baseline="resnet50"), "baseline="),
    (dict(models=["resnet20_cifar", "resnet20_cifar"]), "unique"),
    (dict(models=[]), "non-empty"),
    (dict(models=["resnet20_cifar"], input_size=(32, 32)), "input_size"),
    (dict(models=["resnet20_cifar"], device="tpu"), "device="),
    (dict(models=[("mine", torch.nn.Linear(2, 2))]), "input_size=None"),
])
def test_profile_models_rejects_bad_input(kwargs, message):
    models = kwargs.pop("models")
    with pytest.raises(ValueError, match=message):
        profile_models(models, **{"device": "cpu", "warmup": 0, "repeats": 1, **kwargs})


def test_cli_profile_json_emits_the_documented_fields(capsys):
    import json

    from senet_core.cli import main

    assert main(["profile", "resnet20_cifar", "se_resnet20_cifar", "--input-size", "32", "--repeats", "3",
                 "--warmup", "1", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["baseline"] == "resnet20_cifar"
    assert {"device", "torch", "commit", "date", "threads"} <= set(report["provenance"])
    fields = {"model", "mode", "batch_size", "input_size", "device", "amp", "channels_last", "compile", "median_ms",
              "iqr_ms", "images_per_second", "peak_memory_mb", "ratio", "ratio_iqr"}
    for row in report["rows"]:
        assert fields <= set(row)
    assert report["rows"][0]["ratio"] == 1.0
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "resnet20_cifar", "--mode", "inference"])
    assert exit_.value.code == 2


# ---- Section 4's timing table -------------------------------------------------------------------------

def ratio_text(ratios):
    """'median [q1, q3]' of per-round ratios, computed here independently of senet_core."""
    import numpy as np

    q1, q3 = np.percentile(ratios, [25, 75])       # numpy's default is the inclusive method
    return f"{statistics.median(ratios):.3f} [{q1:.3f}, {q3:.3f}]"


def test_committed_timing_table_is_the_benchmark_files_raw_numbers():
    path = benchmark_results_path()
    assert path == Path(__file__).resolve().parent.parent / "benchmarks" / "results.json" and path.exists()
    results = json.loads(path.read_text())
    table, provenance = committed_timing_table()
    checked = 0
    for section in results["sections"]:
        data = section["data"]
        rows = {r["model"]: r for r in data.get("rows", [])}
        base = data.get("baseline")
        if f"se_{base}" not in rows:
            continue
        se = rows[f"se_{base}"]
        row = table.loc[[m for m in table.index if m[1] == f"{base} → se_{base}" and
                         f"batch {se['batch_size']}," in m[0] and "x".join(map(str, se["input_size"])) in m[0]
                         and f"{data['provenance']['threads']} thread" in m[0]][0]]
        ratios = [x / y for x, y in zip(se["times_ms"], rows[base]["times_ms"])]
        assert row["ours ratio [IQR]"] == ratio_text(ratios), section["name"]
        claim = "latency" if se["mode"] == "latency" else "train"
        assert row["paper ratio"] == round(PAPER_MS[claim][1] / PAPER_MS[claim][0], 3)
        checked += 1
    assert checked == len(table) - (results["provenance"].get("gpu") is None) >= 1
    assert table.loc[table.index[0], "paper ms"] == "164 → 167" and table.loc[table.index[0], "paper ratio"] == 1.018
    p = results["provenance"]
    assert p["cpu"] in provenance and f"torch {p['torch']}" in provenance and p["commit"] in provenance
    assert p["date"][:10] in provenance


def report_from(times_s, *, mode="latency", batch=1, steps=1, baseline="resnet20_cifar"):
    labels = list(times_s)
    return ProfileReport.from_times(times_s, baseline=baseline, mode=mode, images_per_call=batch * steps,
                                    batch_size=batch, input_sizes={k: (3, 32, 32) for k in labels},
                                    device=torch.device("cpu"))


def test_timing_table_from_reports_per_step_times_and_paired_ratios():
    latency = report_from({"resnet20_cifar": [0.010] * 4, "se_resnet20_cifar": [0.011, 0.012, 0.013, 0.0105]})
    # A timed call of 3 SGD steps: the table shows ms per step.
    train = report_from({"resnet20_cifar": [0.300] * 3, "se_resnet20_cifar": [0.330, 0.360, 0.390]},
                        mode="train", batch=8, steps=3)
    unpaired = report_from({"resnet20_cifar": [0.01], "resnet56_cifar": [0.02]})
    batched = report_from({"resnet20_cifar": [0.01], "se_resnet20_cifar": [0.02]}, batch=8)  # no claim
    table = timing_table([train, unpaired, batched, latency.as_dict()])
    assert len(table) == 2
    first, second = table.index
    assert first[0].startswith("inference, batch 1, 3x32x32, CPU") and second[0].startswith("training step, batch 8")
    assert table.loc[first, "ours ratio [IQR]"] == ratio_text([1.1, 1.2, 1.3, 1.05])
    assert table.loc[first, "ours ms"] == "10.0 → 11.5" and table.loc[first, "paper ms"] == "164 → 167"
    assert table.loc[second, "ours ms"] == "100.0 → 120.0" and table.loc[second, "paper ratio"] == 1.1
    assert table.loc[second, "ours ratio [IQR]"] == ratio_text([1.1, 1.2, 1.3])


def test_committed_timing_table_from_a_file(tmp_path):
    sections = [{"name": "CPU", "data": report_from({"resnet20_cifar": [0.01, 0.01],
                                                     "se_resnet20_cifar": [0.02, 0.03]}).as_dict(times=True)},
                {"name": "study", "data": {"architectures": [], "overall": 1.3}}]
    results = {"provenance": {"cpu": "Some CPU, 4 cores", "gpu": None, "torch": "9.9", "commit": "abc1234",
                              "date": "2030-01-02T00:00:00+00:00"}, "sections": sections}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    table, provenance = committed_timing_table(path)
    assert table["ours ratio [IQR]"].iloc[0] == ratio_text([2.0, 3.0])
    assert table["ours ms"].iloc[-1] == "not measured (no GPU)" and table["paper ms"].iloc[-1] == "190 → 209"
    assert "Some CPU, 4 cores" in provenance and "2030-01-02" in provenance and "abc1234" in provenance
    # A run that timed the training step on a GPU needs no "not measured" row.
    gpu = report_from({"resnet50": [0.19] * 2, "se_resnet50": [0.21] * 2}, mode="train", batch=256,
                      baseline="resnet50").as_dict()
    for row in gpu["rows"]:
        row["device"] = "cuda:0"
    sections.append({"name": "CUDA", "data": gpu})
    path.write_text(json.dumps({**results, "provenance": {**results["provenance"], "gpu": "A GPU"}}))
    table, _ = committed_timing_table(path)
    assert len(table) == 2 and not table["ours ms"].str.startswith("not measured").any()
    with pytest.raises(FileNotFoundError, match="measure_timing"):
        committed_timing_table(tmp_path / "absent.json")


def test_measure_timing_table_times_each_claim_where_it_can(monkeypatch):
    import senet_core.study.timing as profile

    calls = []

    def fake_profile_models(models, **settings):
        calls.append(settings)
        se = [0.0105] * 3 if settings["mode"] == "latency" else [0.21] * 3
        report = report_from({"resnet50": [0.01] * 3 if settings["mode"] == "latency" else [0.19] * 3,
                              "se_resnet50": se}, mode=settings["mode"], batch=settings["batch_size"],
                             baseline="resnet50")
        return report

    monkeypatch.setattr(profile, "profile_models", fake_profile_models)
    table, provenance = measure_timing_table("cpu", repeats=3)
    assert [(c["mode"], c["batch_size"], c["device"]) for c in calls] == [("latency", 1, "cpu")]
    assert len(table) == 1 and table["ours ratio [IQR]"].iloc[0].startswith("1.050")
    assert "measured now" in provenance
    calls.clear()
    monkeypatch.setattr(profile, "resolve_device", lambda device: torch.device("cuda:0"))
    table, _ = measure_timing_table("auto", repeats=4)
    assert [(c["mode"], c["batch_size"], c["device"]) for c in calls] == [("latency", 1, "cpu"),
                                                                         ("train", 256, "cuda:0")]
    assert len(table) == 2
