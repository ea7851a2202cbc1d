"""The reproduction report: claims.yaml covers claims 1-100, every check is well formed, exact checks meet
the paper (or are explained misses), and reduced-scale agreement follows the records."""
import pandas as pd
import pytest
import torch

from senet_core import complexity, create_model
from senet_core.complexity import EXPLAINED_MISSES
from senet_core.models import list_models
from senet_core.study.arithmetic import evaluate
from senet_core.study.claims import KINDS, check_claim, claims
from senet_core.study.exact import COMPUTATIONS, QUANTITIES, _cost
from senet_core.study.report import conclusion, headline, reproduction_report, summary
from senet_core.study.results import write_record
from senet_core.study.spec import experiment

SECTIONS = {"A": (1, 2), "B": (3, 10), "C": (11, 21), "D": (22, 47), "E": (48, 53), "F": (54, 63),
            "G": (64, 66), "H": (67, 70), "I": (71, 76), "J": (77, 92), "K": (93, 97), "L": (98, 100)}


def by_id(number):
    return next(e for e in claims() if e["id"] == number)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return reproduction_report(tmp_path_factory.mktemp("no_results"), profile="cpu")


def test_ids_are_1_to_100_once_in_order():
    entries = claims()
    assert [e["id"] for e in entries] == list(range(1, 101))
    for e in entries:
        assert {"id", "section", "claim", "where", "check", "paper", "ours"} <= set(e), e["id"]
        low, high = SECTIONS[e["section"]]
        assert low <= e["id"] <= high, f"claim {e['id']} is not in section {e['section']}"


def _models_of(item):
    names = list(item.get("models", []))
    names += [item[k] for k in ("model", "baseline") if k in item]
    return names


@pytest.mark.parametrize("entry", claims(), ids=lambda e: f"claim{e['id']}")
def test_every_check_is_well_formed(entry):
    ours = entry["ours"]
    assert ours["kind"] in KINDS
    if ours["kind"] == "exact":
        for item in ours.get("items", [ours]):
            compute = item.get("compute", "complexity")
            assert compute in COMPUTATIONS, compute
            for name in _models_of(item):
                assert name in list_models(), name
            if compute == "complexity":
                assert item["quantity"] in QUANTITIES
                assert "paper" in item
    elif ours["kind"] == "reduced_scale":
        exp = experiment(ours["experiment"])
        pairs = ours.get("pairs") or [{"row": ours["row"], "baseline": ours["baseline"]}]
        for pair in pairs:
            exp.row(pair["row"]), exp.row(pair["baseline"])
            assert pair.get("expect", ours.get("expect", "better")) in ("better", "worse")
    elif ours["kind"] == "arithmetic":
        value = evaluate(ours["expression"])
        assert isinstance(ours["expect"], list) == isinstance(value, list)
    elif ours["kind"] == "measured_elsewhere":
        assert ours["chapter"]
    else:
        assert ours["reason"]


def test_exact_claims_agree_or_are_explained_misses(report):
    exact = {e["id"]: e for e in claims() if e["ours"]["kind"] == "exact"}
    rows = report.set_index("#")
    explained_used = set()
    for number, entry in exact.items():
        items = entry["ours"].get("items", [entry["ours"]])
        keys = {(item["table"], str(item["row"]), item["quantity"]) for item in items if "table" in item}
        misses = keys & set(EXPLAINED_MISSES)
        explained_used |= misses
        expected = "no (explained)" if misses else "yes"
        assert rows.loc[number, "agrees"] == expected, (number, rows.loc[number, "ours"])
        assert rows.loc[number, "status"] == "exact"
    assert explained_used == set(EXPLAINED_MISSES)


def test_arithmetic_claims_reproduce_the_printed_numbers(report):
    arithmetic = report[report["status"] == "arithmetic"]
    assert len(arithmetic) == 8 and (arithmetic["agrees"] == "yes").all()


def test_report_builds_with_an_empty_results_dir(report):
    assert list(report.columns) == ["#", "claim", "paper", "status", "ours", "agrees", "provenance"]
    assert len(report) == 100
    waiting = report[[e["ours"]["kind"] == "reduced_scale" for e in claims()]]
    assert (waiting["status"] == "reduced scale: not run yet").all()
    assert (waiting["agrees"] == "n/a").all()
    table = summary(report)
    assert table.loc["total", "total"] == 100
    assert "**Not run yet** at reduced scale" in conclusion(report)
    assert headline(report).loc["Needs the paper's data or compute", "n"] == 43 + 15   # 15 training claims wait


def test_meta_device_counts_equal_a_real_forward_pass():
    for name, options in (("se_resnet18", {}), ("se_resnet29_cifar", {"squeeze": "none", "se_stages": [3]})):
        real = complexity(create_model(name, **options), (3, 32, 32))
        meta = _cost(name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())), 32)
        assert meta == real


def test_arithmetic_evaluator_refuses_anything_but_arithmetic():
    assert evaluate("sum([1 < 2, 3 > 4]) + abs(-0.5)") == 1.5
    for bad in ("__import__('os')", "open('x')", "(1).real", "[x for x in [1]]"):
        with pytest.raises(ValueError, match="not allowed"):
            evaluate(bad)


def _write(root, exp, row, seed, top1, model="m"):
    write_record(root / "cpu" / exp / f"{row}__seed{seed}.json".replace(" ", "-"), {
        "experiment": exp, "row": row, "model": model, "seed": seed, "config": {}, "fingerprint": f"run of {row}",
        "metrics": {"top1_err": top1, "top5_err": 0.0},
        "provenance": {"profile": "cpu", "dataset": "fashion_mnist", "device": "cpu", "torch": torch.__version__,
                       "commit": "abc1234", "date": "2025-01-01T00:00:00", "epochs": 3,
                       "train_images": 6000, "val_images": 10000}})


@pytest.mark.parametrize("se_errors, agrees", [
    ((10.0, 11.0, 12.0), "holds"),          # SE better on every seed, by a steady 2 points
    ((11.0, 13.5, 12.5), "inconclusive"),   # better on two seeds, worse on one
    ((14.0, 15.0, 16.1), "contradicted"),   # SE worse on every seed
])
def test_reduced_scale_agreement_follows_the_records(tmp_path, se_errors, agrees):
    exp = "table02_imagenet_families"
    for seed, (base, se) in enumerate(zip((12.0, 13.0, 14.0), se_errors)):
        _write(tmp_path, exp, "ResNet-18", seed, base)
        _write(tmp_path, exp, "SE-ResNet-18", seed, se)
    row = check_claim(by_id(30), tmp_path, "cpu")
    assert row["status"] == "measured at reduced scale"
    assert row["agrees"] == agrees
    assert row["provenance"].startswith("measured at reduced scale: cpu profile, fashion_mnist")
    assert "seeds 0, 1, 2" in row["provenance"]
    said = conclusion(pd.DataFrame([row]))
    lead = {"holds": "Held", "inconclusive": "Not decided", "contradicted": "Contradicted"}[agrees]
    assert f"* *{lead} at reduced scale*" in said and "(claim 30; ResNet-18 stands in" in said
    assert said.count("(claim ") == 1
    top = headline(pd.DataFrame([row]))
    assert list(top.index) == ["Training results"] and top.loc["Training results", "result"] == \
        f"1 {'hold' if agrees == 'holds' else agrees}"
    assert "SE-ResNet-18 vs ResNet-18: top-1 error" in row["ours"] and f"3 seeds: {agrees}" in row["ours"]


def test_a_claim_that_expects_worse_agrees_when_the_row_is_worse(tmp_path):
    exp = "table12_excitation_operator"
    for seed in range(3):
        _write(tmp_path, exp, "no SE", seed, 12.0 + seed)
        _write(tmp_path, exp, "ReLU", seed, 13.0 + seed + 0.1 * seed)
    assert check_claim(by_id(84), tmp_path, "cpu")["agrees"] == "holds"


def test_missing_rows_leave_a_claim_not_run_yet(tmp_path):
    _write(tmp_path, "table02_imagenet_families", "ResNet-18", 0, 12.0)
    row = check_claim(by_id(30), tmp_path, "cpu")
    assert row["status"] == "reduced scale: not run yet" and row["agrees"] == "n/a"


@pytest.mark.parametrize("outcomes, said", [
    (["holds", "holds"], "holds"), (["holds", "equivalent"], "holds"), (["equivalent"], "equivalent"),
    (["holds", "inconclusive"], "inconclusive"), (["inconclusive", "contradicted"], "contradicted"),
])
def test_a_claim_of_several_comparisons_has_one_outcome(outcomes, said):
    from senet_core.study.claims import claim_outcome

    assert claim_outcome(outcomes) == said


def test_the_claims_table_is_narrow_and_numbers_each_measured_provenance_once(tmp_path, report):
    from senet_core.study.report import claims_table

    exp = "table02_imagenet_families"
    for seed, (base, se) in enumerate(zip((12.0, 13.0, 14.0), (10.0, 11.0, 12.0))):
        _write(tmp_path, exp, "ResNet-18", seed, base)
        _write(tmp_path, exp, "SE-ResNet-18", seed, se)
    rows = [check_claim(by_id(i), tmp_path, "cpu") for i in (3, 30, 1, 14)]
    table, notes = claims_table(pd.DataFrame(rows))
    assert list(table.columns) == ["#", "claim", "paper", "ours", "agrees"]
    assert list(table["agrees"]) == ["yes, exact", "holds [1]", "not run", "chapter 3"]
    assert notes[0].startswith("*exact*: exact: computed from the model")
    assert notes[-1] == "[1] " + rows[1]["provenance"] and len(notes) == 2
    whole, whole_notes = claims_table(report)            # no records: no measured source
    assert len(whole) == 100 and not any(n.startswith("[") for n in whole_notes)
