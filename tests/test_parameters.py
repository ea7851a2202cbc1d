"""Chapter parameters: declared alike in every chapter, typed for papermill, checked in one line, and
the install cell that lets a chapter run alone (Colab, Binder) naming the book's own repository."""
import json
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from senet_core.book.parameters import DECLARATIONS, ParameterError, check_parameters

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(path, tag):
    return [c for c in nbformat.read(path, as_version=4).cells if tag in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_declares_its_parameters_as_the_package_does_and_checks_them_next(path):
    (cell,) = _cells(path, "parameters")
    lines = cell.source.splitlines()
    assert lines and all(line in DECLARATIONS.values() for line in lines), lines
    cells = nbformat.read(path, as_version=4).cells
    after = cells[cells.index(cell) + 1]
    assert "check-parameters" in after.metadata.get("tags", []) and "check_parameters(globals())" in after.source
    declared = papermill.inspect_notebook(str(path))
    assert declared and all(p["inferred_type_name"] not in ("None", "") for p in declared.values()), declared


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_install_cell_names_the_repository_the_launch_buttons_use(path):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    (cell,) = _cells(path, "install")
    assert f'"{url}"' in cell.source and 'os.environ.get("SENET_CORE_SPEC")' in cell.source
    assert '"SENET_BOOK_ROOT"' in cell.source             # where the clone is: chapters.root() reads it
    assert "senet-core==" not in cell.source                   # never a version that is not published
    meta = nbformat.read(path, as_version=4).metadata
    assert meta["accelerator"] == "GPU"                        # Colab opens it with a GPU runtime


@pytest.mark.parametrize("values, named", [
    ({"profile": "nonsense"}, "profile='nonsense' is not accepted: unknown profile 'nonsense'"),
    ({"device": "gpu"}, "device='gpu' is not accepted; device takes auto, cpu, cuda or cuda:N"),
    ({"seeds": [0, "1"]}, "seeds=[0, '1'] is not accepted"),
    ({"seeds": 3}, "seeds=3 is not accepted"),
    ({"epochs": 0}, "epochs=0 is not accepted"),
    ({"download": "yes"}, "download='yes' is not accepted; download takes True or False"),
    ({"dataset": "mnist"}, "dataset='mnist' is not accepted; dataset takes None or one of cifar10"),
    ({"data_dir": "/no/such/folder"}, "data_dir='/no/such/folder' is not a folder on this machine"),
])
def test_a_bad_value_is_named_with_what_is_accepted(values, named):
    with pytest.raises(ParameterError) as err:
        check_parameters({"profile": "cpu", **values})
    assert str(err.value).startswith(named)
    assert err.value._render_traceback_() == [f"ParameterError: {err.value}"]


def test_good_values_pass_and_other_globals_are_ignored(tmp_path):
    check_parameters({"profile": "smoke", "device": "cuda:1", "dataset": None, "data_dir": str(tmp_path),
                      "download": False, "epochs": 2, "seeds": [0, 3], "runs_dir": "runs",
                      "measure_timing": True, "__name__": "__main__", "pd": object()})


def test_a_chapter_run_with_a_bad_profile_stops_in_the_check_with_one_line(tmp_path):
    chapter = nbformat.read(ROOT / "notebooks" / "09_ablations.ipynb", as_version=4)
    first = [c for c in chapter.cells if set(c.metadata.get("tags", [])) & {"install", "parameters", "check-parameters"}]
    chapter.cells = first + [nbformat.v4.new_code_cell("print('not reached')")]
    nbformat.write(chapter, tmp_path / "in.ipynb")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "nonsense"}, kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ParameterError" and "profile='nonsense'" in err.value.evalue
    out = json.loads((tmp_path / "out.ipynb").read_text())
    (error,) = [o for c in out["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(error["traceback"]) == 1 and error["traceback"][0].startswith("ParameterError: profile='nonsense'")
