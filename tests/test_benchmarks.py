"""The benchmark script's plumbing (not its timings): what it measures and how RESULTS.md reads."""
import importlib.util
import re
from pathlib import Path

import pytest

import senet_core
from senet_core.study.spec import experiment, fingerprint, list_experiments, profile, row_recipe
from senet_core.se import SEConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run_benchmarks.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("run_benchmarks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_throughput_times_every_architecture_of_the_cpu_profile_weighted_by_its_runs(bench):
    prof = profile("cpu")
    runs = {fingerprint(*row_recipe(e, r, prof), prof): r.model
            for e in map(experiment, list_experiments()) for r in e.rows}
    archs = bench.study_architectures("cpu")
    assert sum(a["runs"] for a in archs) == len(runs) * len(prof.seeds)
    assert {a["model"] for a in archs} == set(runs.values())
    se29 = next(a for a in archs if a["model"] == "se_resnet29_cifar")
    # 16 SE variants in the ablation tables, and 3 more cells of the protocol factorial (FC bias,
    # label smoothing): SE-ResNet-29 trains 19 distinct runs per seed.
    assert se29["side"] == 14 and se29["batch"] == 32 and se29["runs"] == 19 * len(prof.seeds)
    # The variant timed is the ablation's standard block (r = 16 spelled out or not).
    assert SEConfig.without_defaults(se29["options"]) == {"se_bias": False}
    assert next(a for a in archs if a["model"] == "resnet18")["side"] == 28


def test_results_page_lists_every_target_with_its_threshold_measured_or_not(bench):
    targets = [bench.target("study_throughput", 1.25, None),
               bench.target("train_se_resnet29_cifar_b32_14", 1.05, (1.01, 1.09))]
    assert not targets[0]["met"] and targets[0]["missed_by"] == pytest.approx(0.05)
    assert targets[1]["met"] and targets[1]["missed_by"] is None
    section = {"name": "A section", "note": "a note", "header": ["a", "b"], "rows": [["1", "2"]], "footer": "done"}
    page = bench.markdown({"quick": True, "seconds": 3.0, "load_before": None, "load_after": None,
                           "provenance": {"date": "today", "commit": "abc", "torch": "2", "cpu": "x", "gpu": None},
                           "targets": targets, "skipped": list(bench.CUDA_TARGETS), "sections": [section]})
    assert "| Study throughput, cpu profile: two one-thread processes / one process | >= 1.30 | 1.250 | no | 0.050 |" in page
    assert "| 1.050 [1.010, 1.090] | yes |  |" in page
    assert "<= 1.05 | not measured: no CUDA device" in page and ">= 0.95 | not measured" in page
    assert "## A section\n\na note\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ndone" in page
    assert "[TRIED.md](TRIED.md)" in page and (SCRIPT.parent / "TRIED.md").is_file()


def test_the_script_runs_on_the_installed_package_and_keeps_no_measurements_of_its_own(bench):
    source = SCRIPT.read_text()
    assert "sys.path" not in source
    assert bench.create_model is senet_core.create_model
    # What was measured before lives in TRIED.md, which RESULTS.md links: no measured ratio with its
    # IQR ("1.064 [1.055, 1.076]") is written into the script.
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", (SCRIPT.parent / "TRIED.md").read_text())
    assert not re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", source)
