"""Experiments as data: every row valid, runs resumable and shared, records with provenance, paper-vs-ours tables."""
import json
import os
import socket
import threading
from dataclasses import replace

import pytest

from senet_core import create_model
from senet_core.cli import main
from senet_core.study.comparisons import experiment_table
from senet_core.study.experiments import (ledger, run_dir_of, run_experiment, run_experiments, run_study,
                                          run_until_decided, study_wants_more, train_row)
from senet_core.study.records import record_path
from senet_core.study.spec import experiment, fingerprint, list_experiments, profile, row_recipe, study_seeds
from senet_core.study.results import load_records, provenance_label


@pytest.mark.parametrize("name", list_experiments())
def test_every_row_builds_and_names_a_real_paper_row(name):
    exp = experiment(name)
    labels = [r.label for r in exp.rows]
    assert len(set(labels)) == len(labels)
    assert name.startswith(f"table{exp.paper_table:02d}_")
    for row in exp.rows:
        chosen, options = row_recipe(exp, row, profile("smoke"))
        create_model(row.model, num_classes=10, in_chans=1, **options)        # options are valid
        if row.paper_value is not None:
            assert row.paper_number() is not None, f"{name}/{row.label}: no paper number"
        if row.baseline is not None:
            assert row.baseline in labels
            assert exp.row(row.baseline).model == row.model.removeprefix("se_") or not row.model.startswith("se_")


def test_one_recipe_per_experiment_and_the_ablation_protocol():
    exp = experiment("table10_reduction_ratio")
    recipes = {replace(row_recipe(exp, r, profile("cpu"))[0], model="") for r in exp.rows}
    assert len(recipes) == 1                                     # identical recipe for baseline and SE
    chosen, options = row_recipe(exp, exp.row("r = 8"), profile("cpu"))
    assert options["se_bias"] is False and chosen.label_smoothing == 0.1 and options["reduction"] == 8
    _, base_options = row_recipe(exp, exp.row("no SE"), profile("cpu"))
    assert "se_bias" not in base_options


def test_identical_rows_of_different_tables_share_a_fingerprint():
    a = experiment("table15_se_3x3")
    b = experiment("table16_nosqueeze")
    prof = profile("cpu")
    assert fingerprint(*row_recipe(a, a.row("SE"), prof), prof) == fingerprint(*row_recipe(b, b.row("SE"), prof), prof)
    assert fingerprint(*row_recipe(a, a.row("SE"), prof), prof) != fingerprint(*row_recipe(a, a.row("SE 3x3"), prof), prof)


def test_rows_that_spell_out_a_default_share_the_reference_run():
    prof = profile("cpu")
    reference = experiment("table16_nosqueeze")
    expected = fingerprint(*row_recipe(reference, reference.row("SE"), prof), prof)
    for name, label in [("table10_reduction_ratio", "r = 16"), ("table11_squeeze_operator", "Avg"),
                        ("table12_excitation_operator", "Sigmoid"), ("table13_stages", "SE all"),
                        ("table14_integration_strategy", "SE")]:
        exp = experiment(name)
        assert fingerprint(*row_recipe(exp, exp.row(label), prof), prof) == expected, (name, label)
    ratio = experiment("table10_reduction_ratio")
    assert fingerprint(*row_recipe(ratio, ratio.row("r = 8"), prof), prof) != expected
    distinct = {fingerprint(*row_recipe(e, r, prof), prof) for e in map(experiment, list_experiments())
                for r in e.rows if e.ablation}
    assert len(distinct) == 17       # 16 SE variants of ResNet-29 and the baseline


def test_run_records_resume_and_table(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    records = run_experiment("table15_se_3x3", "smoke", results_dir=results, runs_dir=runs, device="cpu")
    assert [r["row"] for r in records] == ["SE", "SE 3x3", "no SE"]
    for r in records:
        assert {"experiment", "config", "seed", "metrics", "provenance"} <= set(r)
        assert r["provenance"]["profile"] == "smoke" and r["provenance"]["dataset"] == "fashion_mnist"
        assert r["provenance"]["engine"] == {"name": "eager", "channels_last": False, "compile": False}
        assert len(r["metrics"]["curve"]) == 1 and 0 <= r["metrics"]["top1_err"] <= 100
    stamps = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    again = run_experiment("table15_se_3x3", "smoke", results_dir=results, runs_dir=runs, device="cpu")
    assert again == records and {p: p.stat().st_mtime_ns for p in results.rglob("*.json")} == stamps
    # Table 16 shares "SE" and "no SE" with Table 15: only NoSqueeze trains.
    before = len(list((runs / "smoke").iterdir()))
    run_experiment("table16_nosqueeze", "smoke", results_dir=results, runs_dir=runs, device="cpu")
    assert len(list((runs / "smoke").iterdir())) == before + 1
    events = [json.loads(line) for line in (results / "smoke" / "LEDGER.jsonl").read_text().splitlines()]
    # Table 15's three runs; Table 16 trains NoSqueeze and takes SE and no SE from Table 15's records.
    assert [e["event"] for e in events] == ["started", "finished"] * 3 + ["reused", "reused", "started", "finished"]
    assert events[0]["rows"] == ["table15_se_3x3/SE/seed 0"] and {"commit", "dirty", "date"} <= set(events[0])
    table = experiment_table("table15_se_3x3", results, "smoke")
    assert table.loc["SE 3x3", "paper err (%)"] == 22.48
    assert table.loc["SE", "outcome"] == "inconclusive"                # one seed decides nothing
    assert table.loc["SE", "n"] == 1 and "±" not in table.loc["SE", "ours err (%)"]
    assert "smoke profile, fashion_mnist (256 train / 256 val images at 28x28, 1 epoch)" in provenance_label(records)
    assert len(load_records(results, "smoke")) == 6          # three rows in each table
    # A shared row points to the run that trained it, even once the run folders are gone.
    shared = {(r["experiment"], r["row"]): r for r in load_records(results, "smoke")}
    for label in ("SE", "no SE"):
        one, other = shared[("table15_se_3x3", label)], shared[("table16_nosqueeze", label)]
        assert other["provenance"] == one["provenance"] and other["metrics"] == one["metrics"]
    import shutil
    shutil.rmtree(runs)
    run_experiment("table14_integration_strategy", "smoke", results_dir=results, runs_dir=runs, device="cpu",
                   seeds=[0])
    assert len(list((runs / "smoke").iterdir())) == 3       # SE-PRE, SE-POST, SE-Identity; SE and no SE reused


def test_an_engine_is_named_in_the_record_and_is_not_part_of_a_runs_identity(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    records = run_experiment("table15_se_3x3", "smoke", results_dir=results, runs_dir=runs, device="cpu",
                             engine_name="channels_last")
    assert {r["provenance"]["engine"]["name"] for r in records} == {"channels_last"}
    assert all(r["provenance"]["engine"]["channels_last"] for r in records)
    # Asked again with the eager engine, the records are kept: same settings, same run.
    assert run_experiment("table15_se_3x3", "smoke", results_dir=results, runs_dir=runs, device="cpu",
                          engine_name="eager") == records
    assert profile("cpu").engine == "eager" and profile("gpu").engine == "compiled"
    assert profile("cpu", "compiled").engine == "compiled"
    assert (profile("smoke").jobs, profile("cpu").jobs) == (1, 2)
    with pytest.raises(ValueError, match="unknown engine 'fastest'.*engines: channels_last, compiled, eager"):
        profile("cpu", "fastest")


def test_parallel_jobs_train_each_shared_run_once_and_write_every_record(tmp_path):
    serial = run_experiments(["table15_se_3x3"], "smoke", results_dir=tmp_path / "a", runs_dir=tmp_path / "ra",
                             device="cpu")["table15_se_3x3"]
    both = run_experiments(["table15_se_3x3", "table16_nosqueeze"], "smoke", results_dir=tmp_path / "b",
                           runs_dir=tmp_path / "rb", device="cpu", jobs=2)
    assert len(list((tmp_path / "rb" / "smoke").iterdir())) == 4     # SE and no SE are shared by both tables
    parallel = both["table15_se_3x3"]
    assert [(r["row"], r["seed"]) for r in parallel] == [(r["row"], r["seed"]) for r in serial]
    assert [r["row"] for r in both["table16_nosqueeze"]] == ["no SE", "NoSqueeze", "SE"]
    for one, other in zip(serial, parallel):
        assert other["provenance"]["threads"] == max(1, (os.cpu_count() or 1) // 2)
        assert other["fingerprint"] == one["fingerprint"]
        assert other["metrics"]["train_loss"] == pytest.approx(one["metrics"]["train_loss"], rel=1e-3)
    # The ledger says a run started when it did: with two workers, the third run starts once a first
    # one is done (seconds later), not when it was queued.
    lines = [json.loads(x) for x in (tmp_path / "b" / "smoke" / "LEDGER.jsonl").read_text().splitlines()]
    started = [x["date"] for x in lines if x["event"] == "started"]
    assert len(started) == 4 and started[2] > started[0]
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        run_experiments(["table15_se_3x3"], "smoke", results_dir=tmp_path / "b", jobs=0)


def test_seeds_are_added_until_each_comparison_is_decided(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    records = run_until_decided(["table15_se_3x3"], "smoke", halfwidth=1e-6, max_seeds=3, results_dir=results,
                                runs_dir=runs, device="cpu")["table15_se_3x3"]
    assert sorted((r["row"], r["seed"]) for r in records) == sorted(
        (label, s) for label in ("SE", "SE 3x3", "no SE") for s in range(3))
    # Decided at once (a wide enough interval): nothing more trains, and what exists is read back.
    again = run_until_decided(["table15_se_3x3"], "smoke", halfwidth=1e6, max_seeds=20, results_dir=results,
                              runs_dir=runs, device="cpu", min_seeds=2)["table15_se_3x3"]
    assert len(again) == 6 and len(list((runs / "smoke").iterdir())) == 9
    assert main(["experiments", "--only", "table15", "--profile", "smoke", "--until-halfwidth", "1",
                 "--seeds", "0,1", "--quiet"]) == 2
    with pytest.raises(ValueError, match="max_seeds must be an integer of at least 2"):
        run_until_decided(["table15_se_3x3"], "smoke", halfwidth=1.0, max_seeds=1)


def test_the_protocol_factorial_shares_its_cells_with_the_tables():
    prof = profile("cpu")
    factorial, ablation, depth = (experiment(n) for n in ("table16_protocol", "table16_nosqueeze",
                                                          "table04_cifar_depth"))

    def fp(exp, label):
        return fingerprint(*row_recipe(exp, exp.row(label), prof), prof)

    # Its ablation-protocol cell is Table 16's SE vs no SE; its CIFAR-protocol ResNet-20 cell is Table 4's.
    assert fp(factorial, "SE-ResNet-29, LS, no bias") == fp(ablation, "SE")
    assert fp(factorial, "ResNet-29, LS") == fp(ablation, "no SE")
    assert fp(factorial, "SE-ResNet-20, bias") == fp(depth, "SE-ResNet-20")
    assert fp(factorial, "ResNet-20") == fp(depth, "ResNet-20")
    # A row's own recipe reaches its run: label smoothing is the only difference of these two.
    smoothed, plain = (row_recipe(factorial, factorial.row(label), prof)[0]
                       for label in ("ResNet-29, LS", "ResNet-29"))
    assert smoothed.label_smoothing == 0.1 and plain.label_smoothing == 0.0
    assert replace(smoothed, label_smoothing=0.0) == plain
    assert len({fp(factorial, r.label) for r in factorial.rows}) == len(factorial.rows)


def test_the_study_gives_the_papers_comparison_more_seeds_than_a_variant():
    prof = profile("cpu")
    ratio, depth, factorial = (experiment(n) for n in ("table10_reduction_ratio", "table04_cifar_depth",
                                                       "table16_protocol"))
    # r = 16 is the standard block: under the ablation protocol it is SE against its baseline.
    assert study_seeds(ratio, ratio.row("r = 16"), prof) == 10
    assert study_seeds(ratio, ratio.row("r = 8"), prof) == 5
    assert study_seeds(depth, depth.row("SE-ResNet-110"), prof) == 10
    assert study_seeds(factorial, factorial.row("SE-ResNet-29, no bias"), prof) == 10   # the experiment says
    with pytest.raises(ValueError, match="no study rule"):
        study_seeds(ratio, ratio.row("r = 8"), profile("smoke"))


def test_the_study_adds_seeds_while_the_comparison_is_inconclusive():
    prof = profile("cpu")
    exp = experiment("table10_reduction_ratio")
    row = exp.row("r = 8")                 # paper: a gain of 1.04; 5 seeds first

    def errors(gains):
        return {"no SE": {s: 20.0 for s in range(len(gains))},
                "r = 8": {s: 20.0 - g for s, g in enumerate(gains)}}

    assert study_wants_more(exp, row, prof, errors([0.5, -0.5, 0.9, 0.1]))            # 4 < 5 seeds
    assert study_wants_more(exp, row, prof, errors([1.0, -0.8, 1.5, -0.2, 0.6]))      # holds 0 and 1.04
    assert not study_wants_more(exp, row, prof, errors([0.9, 0.8, 1.0, 0.7, 0.9]))    # excludes 0: holds
    assert not study_wants_more(exp, row, prof, errors([0.1, -0.1, 0.0, 0.05, -0.05]))  # within 1.04 of 0: equivalent
    assert not study_wants_more(exp, row, prof, errors([1.0, -0.8, 1.5, -0.2, 0.6] * 4))  # 20: the most
    # The table decides with Holm's correction: an interval that excludes 0 on its own is still
    # inconclusive when the adjusted p-value is not below 0.05, and the study goes on.
    clear = errors([1.5, 1.4, 1.6, 1.3, 1.5])          # beyond the paper's 1.04: never "equivalent"
    assert not study_wants_more(exp, row, prof, clear, p_adjusted=0.01)
    assert study_wants_more(exp, row, prof, clear, p_adjusted=0.2)


def test_a_study_reads_its_seeds_from_the_profile(tmp_path, monkeypatch):
    from senet_core.study import experiments

    small = replace(profile("smoke"), study={"se_vs_baseline": 3, "other": 2, "max": 3})
    monkeypatch.setattr(experiments, "profile", lambda *a: small)
    records = run_study(["table15_se_3x3"], "smoke", results_dir=tmp_path / "results", runs_dir=tmp_path / "runs",
                        device="cpu")["table15_se_3x3"]
    seeds = {label: sorted(r["seed"] for r in records if r["row"] == label) for label in ("SE", "SE 3x3", "no SE")}
    # SE vs no SE gets 3 seeds; SE 3x3 at least 2, and a third only if its interval held 0 and the paper's gain.
    assert seeds["SE"] == [0, 1, 2] and seeds["no SE"] == [0, 1, 2]
    assert seeds["SE 3x3"] in ([0, 1], [0, 1, 2])
    monkeypatch.undo()
    assert main(["experiments", "--only", "table15", "--profile", "smoke", "--study", "--quiet"]) == 2
    assert main(["experiments", "--only", "table15", "--profile", "cpu", "--study", "--until-halfwidth", "1",
                 "--quiet"]) == 2


def test_a_run_another_process_is_training_is_waited_for_then_read_back(tmp_path, monkeypatch):
    import senet_core.study.experiments as experiments
    from senet_core.engine.runtime import LOCK
    exp, prof = experiment("table15_se_3x3"), profile("smoke")
    run_dir = run_dir_of(exp, exp.row("SE"), prof, 0, tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / LOCK).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live holder
    monkeypatch.setattr(experiments, "LOCK_POLL_SECONDS", 0.05)
    threading.Timer(1.0, (run_dir / LOCK).unlink).start()
    metrics, folder = train_row(exp, exp.row("SE"), prof, 0, tmp_path, "cpu")
    assert folder == run_dir and len(metrics) == 1 and not (run_dir / LOCK).exists()


def test_a_discarded_run_is_listed_with_its_reason(tmp_path):
    with pytest.raises(ValueError, match="needs its reason"):
        ledger(tmp_path, "cpu", "discarded", run="abc-seed0")
    with pytest.raises(ValueError, match="event='lost'"):
        ledger(tmp_path, "cpu", "lost", run="abc-seed0")
    ledger(tmp_path, "cpu", "discarded", run="abc-seed0", reason="trained with a bug")
    (line,) = (tmp_path / "cpu" / "LEDGER.jsonl").read_text().splitlines()
    assert json.loads(line)["reason"] == "trained with a bug" and json.loads(line)["run"] == "abc-seed0"


def test_missing_records_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="senet experiments --only table10_reduction_ratio"):
        experiment_table("table10_reduction_ratio", tmp_path, "cpu")


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown experiment 'table10'.*table10_reduction_ratio"):
        experiment("table10")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        profile("fast")


def test_profile_image_size_and_recipe_reach_every_row_unless_the_experiment_overrides():
    cpu = profile("cpu")
    ablation = experiment("table10_reduction_ratio")
    chosen, _ = row_recipe(ablation, ablation.row("r = 8"), cpu)
    assert chosen.image_size == cpu.image_size == 14 and chosen.lr_batch == 32 and chosen.batch_size == 32
    families = experiment("table02_imagenet_families")
    assert {row_recipe(families, r, cpu)[0].image_size for r in families.rows} == {28}
    smoke = profile("smoke")
    assert row_recipe(ablation, ablation.row("r = 8"), smoke)[0].image_size is None


def test_reference_model_trains_its_row_when_only_records_exist(tmp_path):
    from senet_core.study.reference import reference_model, reference_run_dir, reference_val_loader

    runs = tmp_path / "fresh_runs"
    model = reference_model(runs, "smoke", "cpu")
    assert [p.name for p in (runs / "smoke").iterdir()] == [reference_run_dir(runs, "smoke").name]
    images, _ = next(iter(reference_val_loader("smoke", batch_size=4)))
    assert model(images).shape == (4, 10) and not model.training
    cpu_images, _ = next(iter(reference_val_loader("cpu", batch_size=4)))
    assert cpu_images.shape[-1] == profile("cpu").image_size


def _write_errors(results_dir, experiment_name, errors, fingerprints={}):
    from senet_core.study.results import write_record

    for label, values in errors.items():
        for seed, err in enumerate(values):
            write_record(record_path(results_dir, "cpu", experiment_name, label, seed),
                         {"experiment": experiment_name, "row": label, "config": {}, "seed": seed,
                          "fingerprint": fingerprints.get(label, f"run of {label}"),
                          "metrics": {"top1_err": err}, "complexity": {"params": 1, "macs": 1},
                          "provenance": {"profile": "cpu", "dataset": "fashion_mnist", "device": "cpu",
                                         "torch": "x", "commit": "c", "date": "2026-01-01"}})


# Table 12: the paper has Sigmoid better than no SE and ReLU worse. Ours, three seeds each:
TABLE12_ERRORS = {"no SE": [20.0, 21.0, 20.5], "Sigmoid": [19.0, 20.1, 19.4],    # better: holds
                  "ReLU": [19.0, 20.0, 19.6],                                    # better: contradicted
                  "Tanh": [21.0, 20.0, 20.6]}                                    # mixed: inconclusive


def test_conclusions_compare_each_row_with_its_baseline_in_the_papers_direction(tmp_path):
    from senet_core.study.comparisons import conclusions, outcome_counts

    _write_errors(tmp_path, "table12_excitation_operator", TABLE12_ERRORS)
    table = conclusions(tmp_path, "cpu").set_index("comparison")
    assert list(table.index) == ["ReLU vs no SE", "Tanh vs no SE", "Sigmoid vs no SE"]
    assert table.loc["Sigmoid vs no SE", "outcome"] == "holds"
    assert table.loc["ReLU vs no SE", "paper gain"] == "-0.17"                   # the paper: ReLU is worse
    assert table.loc["ReLU vs no SE", "outcome"] == "contradicted"
    assert table.loc["Tanh vs no SE", "outcome"] == "inconclusive"
    assert table.loc["Sigmoid vs no SE", "ours gain [95 % CI]"].startswith("+1.00 [")
    assert set(table["tables"]) == {"12"}
    assert outcome_counts(table) == {"holds": 1, "contradicted": 1, "equivalent": 0, "inconclusive": 1}


def test_a_comparison_shown_by_several_tables_is_counted_once(tmp_path):
    from senet_core.study.comparisons import conclusions, outcome_counts

    same = {"no SE": "baseline run", "SE": "SE run", "Sigmoid": "SE run"}
    _write_errors(tmp_path, "table12_excitation_operator", TABLE12_ERRORS, same)
    _write_errors(tmp_path, "table15_se_3x3", {"no SE": TABLE12_ERRORS["no SE"], "SE": TABLE12_ERRORS["Sigmoid"],
                                               "SE 3x3": [20.1, 20.9, 20.4]}, same)
    table = conclusions(tmp_path, "cpu").set_index("comparison")
    assert table.loc["Sigmoid = SE vs no SE", "tables"] == "12, 15"
    assert len(table) == 4 and sum(outcome_counts(table).values()) == 4


def test_chapter_tables_judge_each_comparison_as_the_conclusions_do(tmp_path):
    from senet_core.study.comparisons import conclusions, experiment_table

    _write_errors(tmp_path, "table12_excitation_operator", TABLE12_ERRORS)
    # Table 2's miniature adds ResNet-18, which the paper does not print: the expected direction is
    # the paper's conclusion (SE helps). SE-ResNet-18 is worse on every seed here.
    _write_errors(tmp_path, "table02_imagenet_families",
                  {"ResNet-18": [10.0, 11.0, 12.0], "SE-ResNet-18": [11.0, 12.2, 13.1]})
    report = conclusions(tmp_path, "cpu").set_index("comparison")
    assert tuple(report.loc["SE-ResNet-18 vs ResNet-18", ["paper gain", "outcome"]]) == ("", "contradicted")
    for name in ("table12_excitation_operator", "table02_imagenet_families"):
        chapter = experiment_table(name, tmp_path, "cpu")
        judged = chapter[chapter["outcome"] != ""]
        assert len(judged) == len(report[report["tables"] == str(experiment(name).paper_table)])
        for label, line in judged.iterrows():
            comparison = f"{label} vs {experiment(name).row(label).baseline}"
            assert line["outcome"] == report.loc[comparison, "outcome"], comparison
            assert line["ours gain [95 % CI]"] == report.loc[comparison, "ours gain [95 % CI]"]


def test_nosqueeze_against_se_is_decided_with_the_papers_gain_as_margin(tmp_path):
    from senet_core.study.reference import nosqueeze_vs_se

    _write_errors(tmp_path, "table16_nosqueeze", {"no SE": [20.0] * 4, "NoSqueeze": [19.5, 19.6, 19.4, 19.5],
                                                  "SE": [19.0, 19.2, 18.9, 19.1]})
    cmp, said = nosqueeze_vs_se(load_records(tmp_path, "cpu", "table16_nosqueeze"))
    assert cmp.n == 4 and cmp.mean == pytest.approx(0.45) and said == "holds"
    _write_errors(tmp_path, "table16_nosqueeze", {"no SE": [20.0] * 4, "NoSqueeze": [19.5, 19.6, 19.4, 19.5],
                                                  "SE": [19.5, 19.55, 19.45, 19.5]})
    assert nosqueeze_vs_se(load_records(tmp_path, "cpu", "table16_nosqueeze"))[1] == "equivalent"


def test_every_declared_effect_compares_two_comparisons_of_its_experiment():
    from senet_core.study.spec import _spec

    for name in list_experiments():
        for effect in _spec()["experiments"][name].get("effects", []):
            for label in (effect["from"], effect["to"]):
                assert experiment(name).row(label).baseline is not None, (name, label)


def test_effects_are_changes_in_ses_gain_paired_over_seeds(tmp_path):
    from senet_core.study.comparisons import conclusions, effects

    # SE loses 0.475 points on average with label smoothing and no bias, and gains 0.475 with bias.
    errors = {"ResNet-29, LS": [20.0, 21.0, 20.5, 20.2], "SE-ResNet-29, LS, no bias": [20.5, 21.4, 21.1, 20.6],
              "SE-ResNet-29, LS, bias": [19.5, 20.6, 19.9, 19.8]}
    _write_errors(tmp_path, "table16_protocol", errors)
    table = effects("table16_protocol", load_records(tmp_path, "cpu", "table16_protocol")).set_index("effect")
    assert list(table.index) == ["FC bias, with label smoothing"]         # the only one with records
    assert table.loc["FC bias, with label smoothing", "change in SE's gain"].startswith("+0.95 [")
    assert table.loc["FC bias, with label smoothing", "n"] == 4
    pairing = conclusions(tmp_path, "cpu").set_index("comparison")["pairing"]
    assert float(pairing["SE-ResNet-29, LS, no bias vs ResNet-29, LS"]) > 0.9   # errors move together


def test_records_of_another_protocol_are_discarded_with_their_reason(tmp_path):
    from senet_core.study.experiments import discard_stale

    exp, prof = experiment("table15_se_3x3"), profile("cpu")
    current = fingerprint(*row_recipe(exp, exp.row("SE"), prof), prof)
    _write_errors(tmp_path, "table15_se_3x3", {"SE": [20.0, 21.0], "no SE": [21.0, 22.0]}, {"SE": current})
    with pytest.raises(ValueError, match="needs a reason"):
        discard_stale("table15_se_3x3", "cpu", " ", tmp_path)
    removed = discard_stale("table15_se_3x3", "cpu", "evaluated on fewer images", tmp_path)
    assert sorted(p.name for p in removed) == ["no-se__seed0.json", "no-se__seed1.json"]
    assert {r["row"] for r in load_records(tmp_path, "cpu", "table15_se_3x3")} == {"SE"}   # the current run stays
    lines = [json.loads(x) for x in (tmp_path / "cpu" / "LEDGER.jsonl").read_text().splitlines()]
    assert [x["rows"] for x in lines] == [["table15_se_3x3/no SE/seed 0"], ["table15_se_3x3/no SE/seed 1"]]
    assert {x["event"] for x in lines} == {"discarded"} and lines[0]["reason"] == "evaluated on fewer images"
    assert lines[0]["trained"] == {"commit": "c", "date": "2026-01-01"}
    assert main(["experiments", "--only", "table15", "--profile", "cpu", "--results-dir", str(tmp_path),
                 "--discard-stale", "", "--quiet"]) == 2
