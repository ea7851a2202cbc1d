"""Chapter 01 as a Colab reader runs it: alone in an empty folder, in a fresh environment holding only
Colab's packages, its install cell installing senet-core from a wheel of this checkout (tests/colab_sim.py).

The first run builds _build/colab/venv (torch's CUDA wheels from the package index, about 2 minutes and
6 GB); later runs reuse it and take about 15 s.
"""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().with_name("colab_sim.py")


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("colab_sim", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_chapter_01_runs_to_the_end_in_a_simulated_colab_with_senet_core_installed_from_the_wheel(sim):
    notebook = sim.NOTEBOOKS / "01_se_block.ipynb"
    install = next(c for c in json.loads(notebook.read_text())["cells"]
                   if "install" in c.get("metadata", {}).get("tags", []))
    assert "SENET_CORE_SPEC" in "".join(install["source"]), \
        "chapter 01's install cell does not read $SENET_CORE_SPEC: the simulation could not hand it the wheel"
    if not (sim.STAMP.exists() or sim.index_reachable()):
        pytest.skip("the simulated Colab's environment is not built yet and the package index is unreachable")

    [run] = sim.simulate(["01_se_block"])

    assert run.ok, f"{run.chapter} failed in the simulated Colab: {run.error} (executed copy: {run.output})"
    assert run.cells_run == run.cells_total > 0
    # senet_core came from the wheel, installed by the chapter into the fresh environment: the chapter's
    # folder has no repository around it, so nothing else could have provided it.
    assert run.senet_core_file is not None
    assert Path(run.senet_core_file).resolve().is_relative_to(sim.VENV.resolve())
    assert run.senet_core_source and run.senet_core_source.startswith("file://")
    assert run.senet_core_source.endswith(".whl")
    assert Path(run.senet_core_source.removeprefix("file://")).parent == sim.WHEELS
