"""What a chapter shows: committed records found from anywhere, read back without training, a
reader's own runs kept apart, and findings generated from the decisions."""
from pathlib import Path

import pytest

from senet_core.book import chapters
from senet_core.study.comparisons import Decision, decisions
from senet_core.study.results import load_records
from senet_core.study.stats import paired

REPO = Path(__file__).resolve().parent.parent


def test_the_committed_records_are_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert chapters.root() == REPO
    assert chapters.results_dir("cpu") == REPO / "results"
    assert chapters.results_dir("pilot_long") == REPO / "results"
    assert chapters.results_dir("smoke") == REPO / "_build" / "results"
    assert chapters.runs_dir("smoke") == REPO / "_build" / "runs"
    monkeypatch.chdir(REPO / "notebooks")
    assert chapters.results_dir("cpu") == REPO / "results"


def test_committed_records_are_read_back_and_never_retrained(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a committed experiment was retrained")

    monkeypatch.setattr(chapters, "run_experiment", no_training)
    records = chapters.records_of("table15_se_3x3", "cpu")
    assert records == load_records(REPO / "results", "cpu", "table15_se_3x3") and records


def test_a_readers_own_seeds_or_epochs_train_under_build_not_beside_the_committed_records(monkeypatch, tmp_path):
    seen = {}

    def fake_run(name, profile_name, results_dir, runs_dir, **kwargs):
        seen.update(results=Path(results_dir), runs=Path(runs_dir), **kwargs)

    monkeypatch.setattr(chapters, "run_experiment", fake_run)
    monkeypatch.setattr(chapters, "root", lambda: tmp_path)
    chapters.records_of("table15_se_3x3", "cpu", seeds=[7])
    assert seen["results"] == tmp_path / "_build" / "results" and seen["runs"] == tmp_path / "_build" / "runs"
    assert seen["seeds"] == [7]
    chapters.records_of("table15_se_3x3", "cpu", epochs=1)
    assert seen["results"] == tmp_path / "_build" / "results" and seen["epochs"] == 1
    chapters.records_of("table15_se_3x3", "smoke")            # smoke is never committed: it always runs
    assert seen["results"] == tmp_path / "_build" / "results"


def _decision(row, gains, outcome, runs):
    return Decision("table10_reduction_ratio", row, "no SE", runs, paired({s: 20.0 for s in range(len(gains))},
                    {s: 20.0 - g for s, g in enumerate(gains)}), 1.0, "better", 0.01, outcome)


def test_findings_name_each_comparison_once_under_its_outcome():
    made = [_decision("r = 16", [1.0, 1.2, 0.8], "holds", ("a", "b")),
            _decision("SE", [1.0, 1.2, 0.8], "holds", ("a", "b")),           # the same runs: said once
            _decision("r = 2", [-1.0, 0.5, 0.1], "inconclusive", ("c", "b"))]
    text = chapters.findings(made)
    assert text.startswith("*holds*: r = 16 vs no SE +1.00 [")
    assert "SE vs no SE" not in text.replace("r = 16 vs no SE", "")
    assert "*inconclusive*: r = 2 vs no SE -0.13 [" in text and "(n=3)" in text
    assert chapters.findings([]) == "no comparison has paired seeds yet."


def test_show_experiment_shows_the_table_the_outcomes_and_the_provenance(capsys, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    assert chapters.show_experiment("table15_se_3x3", "cpu") is None     # a cell shows only what is displayed
    records = chapters.records_of("table15_se_3x3", "cpu")
    texts = [getattr(obj, "data", None) or obj.to_string() for obj in shown]
    assert "reduced scale, cpu profile" in texts[0]
    table = shown[1]
    assert "MFLOPs" not in table.columns and "params" not in table.columns
    assert any("(n=" in str(v) for v in table.to_numpy().ravel())
    for d in decisions("table15_se_3x3", records):
        assert f"*{d.outcome}*" in texts[-1]
    assert "measured at reduced scale: cpu profile" in capsys.readouterr().out


def test_the_committed_excitation_record_belongs_to_the_current_reference_run():
    from senet_core.study import reference as rs

    record = rs.read_excitation_record(REPO / "results", "cpu")
    assert record is not None, "results/cpu has no excitation record: run chapter 10 with profile='cpu'"
    assert record["provenance"]["run"] == rs.reference_run_dir("runs/experiments", "cpu").name
    trained = [r for r in load_records(REPO / "results", "cpu", rs.REFERENCE_EXPERIMENT)
               if r["row"] == rs.REFERENCE_ROW and r["seed"] == rs.REFERENCE_SEED]
    assert record["provenance"]["commit"] == trained[0]["provenance"]["commit"]


@pytest.mark.parametrize("profile_name", ["smoke", "gpu"])
def test_only_the_study_and_the_pilot_are_committed(profile_name):
    assert not chapters.is_committed(profile_name)
    assert chapters.is_committed("cpu") and chapters.is_committed("pilot_28px")


def test_table1_is_shown_once_with_a_layer_a_line_and_the_papers_cell_where_ours_differs(monkeypatch):
    import IPython.display

    from senet_core.models.describe import architecture_table, table1_beside_paper

    table = table1_beside_paper()
    assert list(table.columns) == ["ResNet-50", "SE-ResNet-50", "SE-ResNeXt-50 (32x4d)", "cells as printed"]
    assert table.iloc[2]["SE-ResNet-50"] == "conv 1x1, 64\nconv 3x3, 64\nconv 1x1, 256\nfc [16, 256]\n× 3"
    assert set(table["cells as printed"]) == {"4 of 4"}
    ours = architecture_table()
    ours.iloc[3, 2] = "[conv 1x1, 128; conv 3x3, 128; conv 1x1, 512; fc [16, 512]] x 4"   # a wrong SE width
    wrong = table1_beside_paper(ours)
    assert wrong.iloc[3]["cells as printed"] == "3 of 4"
    assert wrong.iloc[3]["SE-ResNet-50"].endswith("(paper: [conv 1x1, 128; conv 3x3, 128; conv 1x1, 512; fc [32, 512]] x 4)")

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    chapters.show_table(wrong)
    html = shown[0].data
    assert html.count("<tr>") == len(wrong) + 1 and "fc [16, 512]<br>× 4<br>(paper: " in html


def test_the_papers_tables_print_narrow_with_pairs_in_one_cell_and_words_for_headers():
    from senet_core.paper import paper_row, printed_table

    table = printed_table(2)
    assert list(table.columns) == ["original top-1 / top-5", "re-impl. top-1 / top-5", "re-impl. GFLOPs",
                                   "SE top-1 / top-5 (gain)", "SE GFLOPs"]
    row = paper_row(2, "model", "ResNet-50")
    assert table.loc["ResNet-50 [13]", "SE top-1 / top-5 (gain)"] == \
        f"{row['senet_top1_err']} / {row['senet_top5_err']} ({row['senet_top1_improvement']} / {row['senet_top5_improvement']})"
    assert "Inception-ResNet-v2 [21] †" in table.index or any(i.endswith("†") for i in table.index)
    assert list(printed_table(8).columns) == ["top-1 / top-5 at 224", "top-1 / top-5 at 320 / 299"]
    assert list(printed_table(7).columns) == ["AP@0.5", "AP"]
    for n in range(2, 17):
        assert not any("_" in c for c in printed_table(n).columns), n


def test_an_unfinished_inconclusive_comparison_says_the_study_wants_more_seeds():
    made = [_decision("r = 2", [-1.0, 0.5, 0.1], "inconclusive", ("c", "b")),
            _decision("r = 16", [1.0, 1.2, 0.8], "holds", ("a", "b"))]
    text = chapters.findings(made, max_seeds=20)
    assert "(n=3; the study's rule asks for more seeds, up to 20)" in text
    assert text.count("asks for more") == 1                      # a decided comparison is finished
    assert "asks for more" not in chapters.findings(made, max_seeds=3)


class _Stop(Exception):
    """Raised by a stand-in once it has seen its arguments."""


def test_download_is_passed_from_a_chapter_to_run_experiment(monkeypatch, tmp_path):
    import IPython.display

    seen = []

    def fake_run(name, profile_name, results_dir, runs_dir, **kwargs):
        seen.append(kwargs["download"])
        raise _Stop

    monkeypatch.setattr(chapters, "run_experiment", fake_run)
    monkeypatch.setattr(chapters, "root", lambda: tmp_path)
    monkeypatch.setattr(IPython.display, "display", lambda obj: None)
    for call, kwargs in [(chapters.records_of, dict(download=True)), (chapters.records_of, {}),
                         (chapters.show_experiment, dict(download=True)), (chapters.show_experiment, {})]:
        with pytest.raises(_Stop):
            call("table15_se_3x3", "smoke", **kwargs)
    assert seen == [True, False, True, False]


def test_download_is_passed_from_chapter_10_to_the_data(monkeypatch, tmp_path):
    from senet_core.engine import data
    from senet_core.study import reference as rs

    seen = {}

    def record(name):
        def stand_in(*args, **kwargs):
            seen[name] = kwargs.get("download", args[-1] if args else None)
            raise _Stop
        return stand_in

    monkeypatch.setattr(rs, "excitations", record("excitations"))
    with pytest.raises(_Stop):
        chapters.show_excitations("smoke", device="cpu", download=True)
    monkeypatch.undo()
    monkeypatch.setattr(rs, "reference_model", record("reference_model"))
    with pytest.raises(_Stop):
        rs.excitations("smoke", tmp_path / "results", tmp_path / "runs", "cpu", download=True)
    monkeypatch.undo()
    monkeypatch.setattr(rs, "train_row", record("train_row"))
    with pytest.raises(_Stop):
        rs.reference_model(tmp_path / "runs", "smoke", "cpu", download=True)
    monkeypatch.setattr(data, "build_loaders", record("build_loaders"))
    with pytest.raises(_Stop):
        rs.reference_val_loader("smoke", download=True)
    monkeypatch.setattr(data, "read_fashion_mnist", record("read_fashion_mnist"))
    with pytest.raises(_Stop):
        rs.sample_images([0, 9], download=True)
    assert seen == dict.fromkeys(["excitations", "reference_model", "train_row", "build_loaders",
                                  "read_fashion_mnist"], True)


def test_download_reaches_training_and_is_not_part_of_a_runs_identity(monkeypatch, tmp_path):
    import shutil

    import senet_core.study.experiments as experiments
    from senet_core.engine.train import TrainConfig, _check_resumable

    configs = []

    def fake_train(config, model=None):
        configs.append(config)
        raise _Stop

    monkeypatch.setattr(experiments, "train", fake_train)
    for download in (True, False):
        with pytest.raises(_Stop):
            experiments.run_experiment("table15_se_3x3", "smoke", results_dir=tmp_path / "results",
                                       runs_dir=tmp_path / "runs", device="cpu", jobs=1, download=download)
    with_download, without = configs
    assert with_download.download is True and without.download is False
    # The same run folder (named by the fingerprint), and the same settings but for the resumable ones.
    exp, prof = experiments.experiment("table15_se_3x3"), experiments.profile("smoke")
    first = experiments.run_dir_of(exp, exp.rows[0], prof, prof.seeds[0], tmp_path / "runs")
    assert with_download.out == without.out == str(first)
    identity = [{k: v for k, v in c.as_dict().items() if k not in TrainConfig.RESUMABLE} for c in configs]
    assert identity[0] == identity[1] and "download" in TrainConfig.RESUMABLE
    _check_resumable(without.as_dict(), with_download.as_dict())      # a run may be resumed with download

    # The committed records (a copy) are read back, not retrained, when download=True: their
    # fingerprints are still their runs'.
    committed = load_records(REPO / "results", "cpu", "table15_se_3x3")
    assert committed
    shutil.copytree(REPO / "results" / "cpu" / "table15_se_3x3", tmp_path / "copy" / "cpu" / "table15_se_3x3")
    wanted = {}
    for r in committed:
        wanted.setdefault(r["row"], []).append(r["seed"])
    configs.clear()
    records = experiments._train({"table15_se_3x3": wanted}, experiments.profile("cpu"), tmp_path / "copy",
                                 tmp_path / "runs", "cpu", None, False, 1, download=True)
    assert not configs and len(records["table15_se_3x3"]) == len(committed)


def test_a_chapter_opened_alone_finds_the_repository_its_install_cell_cloned(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SENET_BOOK_ROOT", str(tmp_path))
    assert chapters.root() == tmp_path and chapters.results_dir("cpu") == tmp_path / "results"
    chapters.show_pilot()                    # nothing committed there: one line, no traceback
    assert capsys.readouterr().out.startswith(f"No committed pilot summary under {tmp_path / 'results'}")


def test_every_reference_number_the_papers_tables_print_is_in_the_books_references():
    import re

    from senet_core.paper import paper_table

    listed = set(re.findall(r"^- \[(\d+)\]", (REPO / "book" / "references.md").read_text(), flags=re.M))
    cited = {n for t in range(1, 17) for row in paper_table(t) for n in re.findall(r"\[(\d+)\]", row.get("ref", ""))}
    assert cited and cited <= listed, sorted(cited - listed, key=int)
