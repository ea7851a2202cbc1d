"""Figures (book/charts.py, book/diagrams.py), Table 1 and traced modules from the code (models/describe.py)
and Section 7.2 statistics (role_of_se.py)."""
import matplotlib

matplotlib.use("Agg")   # tests only: no display

import pytest
import torch
from matplotlib.figure import Figure

import senet_core
from senet_core.book import charts, diagrams
from senet_core.models.describe import (architecture_table, compare_architecture_table, input_shape_of,
                                        normalise_cell, trace_module)
from senet_core.paper import paper_table
from senet_core.study.reference import (class_mean_gates, excitation_record, read_excitation_record,
                                       statistics_from_record, write_excitation_record)
from senet_core.study.role_of_se import (excitation_statistics, last_block_of_each_stage, layerwise_summary,
                                        observations, paper_block_name, trace_se_block)


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


@pytest.fixture(scope="module")
def small_se_net():
    torch.manual_seed(0)
    return senet_core.create_model("se_resnet20_cifar", num_classes=10, in_chans=1).eval()


@pytest.fixture(scope="module")
def batches():
    """The first 48 Fashion-MNIST validation images, in batches of 12, preprocessed for evaluation."""
    from senet_core.engine.data import build_loaders

    try:
        return list(build_loaders("fashion_mnist", batch_size=12, limit_val=48).val)
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def stats(small_se_net, batches):
    return excitation_statistics(small_se_net, batches, num_per_class=3)


# ---- Table 1 ------------------------------------------------------------------------------------
def test_table1_matches_the_paper_cell_by_cell():
    ours = architecture_table()
    rows = paper_table(1)
    assert list(ours["output size"]) == [r["output_size"] for r in rows]
    for i, row in enumerate(rows):
        for name in ("resnet50", "se_resnet50", "se_resnext50_32x4d"):
            printed = row[name] + (f" x {row['blocks']}" if row["blocks"] else "")
            assert normalise_cell(ours.iloc[i][name]) == normalise_cell(printed), (i, name)
    assert compare_architecture_table(ours)["match"].all()


def test_table1_reads_the_model_not_the_paper():
    # A different reduction ratio must change the SE cells: the table is derived from modules.
    from senet_core.models.describe import describe_resnet

    rows = describe_resnet(senet_core.create_model("se_resnet50", reduction=8), (3, 64, 64))
    assert rows[2][1].endswith("fc [32, 256]] x 3")


# ---- Diagrams ---------------------------------------------------------------------------------------
def test_draw_se_block_with_and_without_gates(small_se_net, batches):
    fig = diagrams.draw_se_block()
    assert isinstance(fig, Figure) and fig.axes[0].get_title().startswith("Fig. 1")
    with senet_core.capture_gates(small_se_net) as gates:
        small_se_net(batches[0][0])
    fig = diagrams.draw_se_block(gates["layer1.0.se"][0])
    assert fig.axes[0].get_title().startswith("Fig. 1")
    with pytest.raises(ValueError):
        diagrams.draw_se_block(torch.tensor([]))


def gate_strip_colours(fig):
    """Face colours of the drawn s strip (channel 1 first)."""
    return [tuple(p.get_facecolor()) for p in fig.axes[0].patches if p.get_gid() == "s"]


def test_draw_se_block_colours_are_the_gates_it_is_given():
    viridis = matplotlib.colormaps["viridis"]
    gates = [0.1, 0.9, 0.5, 0.0]
    assert gate_strip_colours(diagrams.draw_se_block(gates)) == [tuple(viridis(g)) for g in gates]
    other = gate_strip_colours(diagrams.draw_se_block([0.9, 0.1, 0.5, 1.0]))
    assert other != gate_strip_colours(diagrams.draw_se_block(gates)) and other[0] == tuple(viridis(0.9))
    assert len(gate_strip_colours(diagrams.draw_se_block(torch.rand(40), max_channels=32))) == 32


def test_draw_se_block_several_gate_vectors_one_row_each():
    torch.manual_seed(0)
    a, b = torch.rand(40), torch.rand(40)
    fig = diagrams.draw_se_block({"class a": a, "class b": b}, title="Fig. 1: trained")
    assert fig.axes[0].get_title() == "Fig. 1: trained"
    # The diagram is coloured by the first vector; the panel holds every channel of both, in order.
    viridis = matplotlib.colormaps["viridis"]
    assert gate_strip_colours(fig) == [tuple(viridis(float(g))) for g in a[:32]]
    panel = fig.axes[1]
    assert panel.images[0].get_array().shape == (2, 40)
    torch.testing.assert_close(torch.as_tensor(panel.images[0].get_array().data, dtype=torch.float32),
                               torch.stack([a, b]))
    assert [t.get_text() for t in panel.get_yticklabels()] == ["class a", "class b"]
    assert any("class a" in t.get_text() and "C=40" in t.get_text() for t in fig.axes[0].texts)
    single = diagrams.draw_se_block({"only": a})      # one vector: no panel
    assert not any(ax.images for ax in single.axes)
    with pytest.raises(ValueError, match="same number of channels"):
        diagrams.draw_se_block({"a": torch.rand(8), "b": torch.rand(9)})
    with pytest.raises(ValueError, match="empty"):
        diagrams.draw_se_block({})


def test_class_mean_gates_picks_the_most_class_specific_block(small_se_net, stats):
    classes = {0: "a", 1: "b", 2: "c", 3: "d"}
    summary = layerwise_summary(stats, list(classes), small_se_net)
    record = excitation_record(stats, summary, classes, {b: b for b in stats}, {"profile": "cpu"})
    block, gates = class_mean_gates(record, [3, 1])
    assert block == summary["between-class spread"].idxmax()
    assert list(gates) == ["d", "b"]
    torch.testing.assert_close(gates["d"], stats[block]["classes"][3]["mean"], atol=1e-5, rtol=0)
    first = list(stats)[0]
    chosen, every = class_mean_gates(record, block=first)
    assert chosen == first and list(every) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="no class"):
        class_mean_gates(record, [7])
    with pytest.raises(ValueError, match="no block"):
        class_mean_gates(record, block="layer9.0.se")


def test_draw_module_resnet_bottleneck():
    model = senet_core.create_model("se_resnet50")
    shape = input_shape_of(model, "layer1.1")
    assert shape == (256, 56, 56)
    fig = diagrams.draw_module(model.layer1[1], shape)
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title().startswith("Fig. 3: SE-ResNet module")
    calls = trace_module(model.layer1[1], shape)
    se = [(c["layer"], c["shape"]) for c in calls if c["part"] == "se"]
    assert se == [("global pooling", (1, 256)), ("FC", (1, 16)), ("ReLU", (1, 16)), ("FC", (1, 256)),
                  ("Sigmoid", (1, 256))]


def test_draw_module_inception_and_projection():
    model = senet_core.create_model("se_bn_inception")
    fig = diagrams.draw_module(model.inception3a, input_shape_of(model, "inception3a"))
    assert fig.axes[0].get_title().startswith("Fig. 2: SE-Inception module")
    resnet = senet_core.create_model("se_resnet50")
    calls = trace_module(resnet.layer2[0], (256, 56, 56))
    assert [c["layer"] for c in calls if c["part"] == "identity"] == ["conv 1x1, 512, /2", "BN"]


def test_draw_integration_variants_has_five_panels():
    fig = diagrams.draw_integration_variants()
    assert len(fig.axes) == 5
    assert fig._suptitle.get_text().startswith("Fig. 5")


# ---- Curves and statistics ------------------------------------------------------------------------
def fake_records():
    # Record-shaped data (what run_experiment writes), two seeds per row.
    return [{"row": row, "seed": seed, "metrics": {"curve": [
        {"epoch": e, "val_top1_err": 30.0 - 2 * e - (1.0 if row.startswith("SE") else 0.0) + seed}
        for e in (1, 2, 3)]}} for row in ("ResNet-20", "SE-ResNet-20", "no SE", "SE") for seed in (0, 1)]


def test_plot_training_curves_one_panel_per_pair():
    fig = charts.plot_training_curves(fake_records(), [("ResNet-20", "SE-ResNet-20"), ("no SE", "SE")])
    axes = visible_axes(fig)
    assert len(axes) == 2 and fig._suptitle.get_text().startswith("Fig. 4")
    assert axes[0].get_title() == "ResNet-20 vs SE-ResNet-20"
    assert len(axes[0].get_lines()) == 2
    with pytest.raises(ValueError, match="no record"):
        charts.plot_training_curves(fake_records(), [("ResNet-20", "missing")])


def test_last_block_of_each_stage_se_resnet50():
    model = senet_core.create_model("se_resnet50")
    blocks = last_block_of_each_stage(model)
    assert blocks == ["layer1.2.se", "layer2.3.se", "layer3.5.se", "layer4.0.se", "layer4.1.se", "layer4.2.se"]
    assert [paper_block_name(b, model) for b in blocks] == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2",
                                                             "SE_5_3"]


def test_excitation_statistics_shapes_and_range(small_se_net, batches, stats):
    assert list(stats) == last_block_of_each_stage(small_se_net)
    for name, block in stats.items():
        channels = senet_core.se_modules(small_se_net)[name].channels
        assert block["all"].shape == (channels,)
        labels = torch.cat([y for _, y in batches])
        assert sorted(block["classes"]) == sorted(set(labels.tolist()))
        for label, c in block["classes"].items():
            n = min(3, int((labels == label).sum()))
            assert c["n"] == n and c["gates"].shape == (n, channels)
            assert c["mean"].shape == c["std"].shape == (channels,)
            assert ((c["gates"] > 0) & (c["gates"] < 1)).all()
        assert torch.allclose(block["all"], torch.cat([c["gates"] for c in block["classes"].values()]).mean(0))


def test_excitation_statistics_rejects_unknown_block(small_se_net, batches):
    with pytest.raises(ValueError, match="no SE block"):
        excitation_statistics(small_se_net, batches, blocks=["layer9.0.se"])


def test_plot_excitations_and_spread(stats):
    blocks = list(stats)
    fig = charts.plot_excitations(stats, {0: "a", 1: "b", 2: "c", 3: "d"}, blocks, channels=10)
    assert len(stats[blocks[-1]]["all"]) > 10
    axes = visible_axes(fig)
    assert len(axes) == len(blocks) and fig._suptitle.get_text().startswith("Fig. 6")
    assert len(axes[0].get_lines()) == 5                       # 4 classes + "all"
    assert len(axes[-1].get_lines()[0].get_xdata()) == 10      # sampled channels
    fig = charts.plot_excitation_spread(stats, [0, 3], blocks)
    assert len(visible_axes(fig)) == len(blocks) and fig._suptitle.get_text().startswith("Fig. 7")


def test_layerwise_summary_and_observations(small_se_net, stats):
    summary = layerwise_summary(stats, [0, 1, 2, 3], small_se_net)
    assert list(summary.index) == list(stats)
    assert (summary["gates > 0.9"] >= 0).all() and (summary["mean gate"] < 1).all()
    lines = observations(summary)
    assert len(lines) == 3 and "Saturation" in lines[1]


def test_excitation_record_round_trip_draws_the_same_figures(small_se_net, stats, tmp_path):
    import json

    classes = {0: "a", 1: "b", 2: "c", 3: "d"}
    summary = layerwise_summary(stats, list(classes), small_se_net)
    names = {b: b.upper() for b in stats}
    record = excitation_record(stats, summary, classes, names, {"profile": "cpu"})
    assert read_excitation_record(tmp_path, "cpu") is None
    path = write_excitation_record(tmp_path, "cpu", record)
    assert path.parent.name == "cpu" and json.loads(path.read_text()) == record
    back, back_classes, back_names, back_summary = statistics_from_record(read_excitation_record(tmp_path, "cpu"))
    assert back_classes == classes and back_names == names and list(back) == list(stats)
    block = list(stats)[-1]
    torch.testing.assert_close(back[block]["classes"][2]["mean"], stats[block]["classes"][2]["mean"], atol=1e-5, rtol=0)
    torch.testing.assert_close(back[block]["all"], stats[block]["all"], atol=1e-5, rtol=0)
    assert back_summary.loc[block, "channels"] == summary.loc[block, "channels"]
    assert abs(back_summary.loc[block, "gates > 0.9"] - summary.loc[block, "gates > 0.9"]) < 1e-9
    fig = charts.plot_excitations(back, back_classes, list(back), channels=10, names=back_names)
    assert len(visible_axes(fig)) == len(back)
    assert len(observations(back_summary)) == 3


def test_show_samples():
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    fig = charts.show_samples(images, torch.tensor([3, 3, 1, 1, 7, 7]), {1: "one", 3: "three", 7: "seven"})
    assert fig._suptitle.get_text().startswith("Fig. 8")
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["(a) three", "(b) one", "(c) seven"]


def test_trace_se_block_checks_equations(small_se_net, batches):
    t = trace_se_block(small_se_net, "layer1.0", batches[0][0])
    z = t["U"].mean((2, 3))
    s = torch.sigmoid(torch.relu(z @ t["W1"].T + t["b1"]) @ t["W2"].T + t["b2"])
    assert torch.allclose(s, t["s"], atol=1e-6)
    assert torch.allclose(t["out"], t["X"] + s[:, :, None, None] * t["U"], atol=1e-5)
