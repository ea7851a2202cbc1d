"""`senet reproduce`: papermill with a profile's parameters, resumable, failures summarised."""
from pathlib import Path

import nbformat
import pytest

from senet_core.cli import main
from senet_core.book.reproduce import chapter_notebooks, reproduce


def write_notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "none"\nruns_dir = "none"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def book(tmp_path):
    (tmp_path / "notebooks").mkdir()
    write_notebook(tmp_path / "notebooks" / "01_good.ipynb", "print(profile, runs_dir)")
    write_notebook(tmp_path / "notebooks" / "02_other.ipynb", "x = 1")
    return tmp_path


def outputs(path):
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_profile_parameters_reach_the_notebooks_and_reruns_skip(book):
    summary = reproduce("smoke", root=book, output="out", progress=False)
    assert summary.ok and sorted(summary.executed) == ["01_good", "02_other"]
    assert outputs(book / "out" / "01_good.ipynb").strip() == "smoke _build/runs"
    again = reproduce("smoke", root=book, output="out", progress=False)
    assert again.executed == [] and sorted(again.skipped) == ["01_good", "02_other"]
    other_profile = reproduce("cpu", root=book, output="out", progress=False, only="01")
    assert other_profile.executed == ["01_good"]
    assert outputs(book / "out" / "01_good.ipynb").strip() == "cpu runs"


def test_executed_copies_hide_the_install_and_parameters_cells_and_fold_the_injected_parameters(book):
    nb = nbformat.read(book / "notebooks" / "01_good.ipynb", as_version=4)
    install = nbformat.v4.new_code_cell("import json")
    install.metadata["tags"] = ["install"]
    nb.cells.insert(0, install)
    nbformat.write(nb, book / "notebooks" / "01_good.ipynb")
    reproduce("smoke", root=book, output="out", progress=False, only="01")
    tags = [c.metadata.get("tags", []) for c in nbformat.read(book / "out" / "01_good.ipynb", as_version=4).cells]
    assert ["install", "remove-cell"] in tags
    assert ["parameters", "remove-cell"] in tags             # the defaults: the injected values say what ran
    assert ["injected-parameters", "hide-input"] in tags


def test_a_chapter_gets_the_profile_parameters_it_declares_and_every_one_the_caller_gives(book):
    # The fixture's notebooks declare profile and runs_dir, not seeds.
    reproduce("smoke", root=book, output="out", progress=False, only="01", parameters={"seeds": 3})
    cells = nbformat.read(book / "out" / "01_good.ipynb", as_version=4).cells
    injected = next(c.source for c in cells if "injected-parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in injected.splitlines() if "=" in line}
    assert names == {"profile", "runs_dir", "seeds"}


def test_a_failing_chapter_is_reported_and_the_others_still_run(book, capsys):
    write_notebook(book / "notebooks" / "03_broken.ipynb", "raise RuntimeError('chapter three is broken')")
    summary = reproduce("smoke", root=book, output="out", progress=False, jobs=2)
    assert not summary.ok and set(summary.executed) == {"01_good", "02_other"}
    assert "chapter three is broken" in summary.failed["03_broken"]
    assert "1 failed" in summary.render()


def test_only_and_bad_arguments(book):
    assert [p.stem for p in chapter_notebooks(book, "02")] == ["02_other"]
    with pytest.raises(ValueError, match="no notebook matches 'zzz'"):
        chapter_notebooks(book, "zzz")
    with pytest.raises(ValueError, match="profile='fast'"):
        reproduce("fast", root=book, progress=False)


def test_the_books_chapters_are_found_in_paper_order():
    names = [p.stem for p in chapter_notebooks(Path(__file__).resolve().parents[1])]
    assert names == sorted(names) and names[0].startswith("01_")


def test_cli_exit_status_on_failure(book, monkeypatch, capsys):
    write_notebook(book / "notebooks" / "03_broken.ipynb", "1 / 0")
    monkeypatch.chdir(book)
    assert main(["reproduce", "--profile", "smoke", "--output", "out"]) == 1
    assert "FAILED 03_broken" in capsys.readouterr().out
