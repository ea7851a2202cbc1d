"""Section 4: our complexity counts against the paper's columns (Tables 2, 3, 10, 13, 15, 16) and Eq. 5."""
import pytest
import torch
from torch import nn

from senet_core import complexity, create_model
from senet_core.complexity import EXPLAINED_MISSES, complexity_report, eq5_extra_weights

RESNET50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]


@pytest.fixture(scope="module")
def report():
    return complexity_report()


def test_every_paper_cell_is_met_or_explained(report):
    misses = [f"Table {c.table} {c.row} {c.quantity}: paper {c.paper}, ours {c.ours:.4f}"
              for c in report.cells if c.status == "MISS"]
    assert not misses, "\n".join(misses)


def test_explained_misses_really_miss(report):
    """An explanation must not outlive the miss it explains."""
    cells = {(c.table, c.row, c.quantity): c for c in report.cells}
    for key in EXPLAINED_MISSES:
        assert key in cells, f"explained miss {key} is not a cell of the report"
        assert not cells[key].within_tolerance, f"{key} is within tolerance now: drop its explanation"


def test_report_covers_the_tables(report):
    tables = {c.table for c in report.cells}
    assert tables == {2, 3, 10, 13, 15, 16}
    assert sum(1 for c in report.cells if c.table == 2) == 16      # 8 baselines + 8 SE models


def test_exact_parameter_counts():
    assert complexity(create_model("resnet50")).params == 25_557_032
    assert complexity(create_model("se_resnet50")).params == 28_088_024


def test_eq5_exact():
    assert eq5_extra_weights(RESNET50_STAGES) == 2_514_944
    base = complexity(create_model("resnet50")).params
    se = complexity(create_model("se_resnet50", se_bias=False))
    assert se.params - base == 2_514_944
    assert se.se_params == 2_514_944
    for r in (2, 4, 8, 32):
        extra = complexity(create_model("se_resnet50", reduction=r, se_bias=False)).params - base
        assert extra == eq5_extra_weights(RESNET50_STAGES, r)


def test_resnet50_macs_depend_on_stride_placement():
    """3.86 G only with the stride on the first 1x1 conv (paper layout); 4.09 G with torchvision's."""
    assert round(complexity(create_model("resnet50")).gflops, 3) == 3.858
    assert round(complexity(create_model("resnet50", stride_in_1x1=False)).gflops, 3) == 4.089


def test_se_macs_are_gate_fcs_plus_one_multiply_per_scaled_element():
    c = complexity(create_model("se_resnet50"))
    fc_macs = 2_514_944                                   # the FC weights, one MAC each per image
    scaled = sum(n * ch * s * s for (n, ch), s in zip(RESNET50_STAGES, (56, 28, 14, 7)))
    assert c.se_macs == fc_macs + scaled
    assert c.macs - complexity(create_model("resnet50")).macs == c.se_macs


def test_nosqueeze_costs_its_1x1_convs_at_every_position():
    ns = complexity(create_model("se_resnet50", squeeze="none", se_bias=False))
    se = complexity(create_model("se_resnet50", se_bias=False))
    assert ns.params == se.params
    per_position = sum(n * 2 * (ch // 16) * ch * s * s for (n, ch), s in zip(RESNET50_STAGES, (56, 28, 14, 7)))
    assert ns.se_macs - se.se_macs == per_position - 2_514_944
    assert round(ns.gflops, 2) == 4.27


def test_complexity_leaves_the_model_as_it_was():
    model = create_model("se_resnet18").train()
    complexity(model, (3, 64, 64))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_complexity_rejects_a_bad_input_size():
    with pytest.raises(ValueError, match="input_size must be \\(channels, height, width\\)"):
        complexity(create_model("resnet18"), (224, 224))


def test_counter_counts_what_the_convention_says():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 10))
    c = complexity(model, (3, 8, 8))
    assert c.macs == 8 * 3 * 9 * 36 + 8 * 36 * 10
    assert c.params == 8 * 27 + 16 + 288 * 10 + 10
