"""The senet command line: output, one-line errors and exit statuses."""
import argparse
import json
import signal
import subprocess
import sys

import pytest

import senet_core
from senet_core.book.reproduce import Summary
from senet_core.cli import build_parser, commands, main
from senet_core.engine.runtime import TrainingStopped, WriteError


def test_complexity_of_one_model(capsys):
    assert main(["complexity", "--model", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032 parameters" in out and "3.858 GFLOPs" in out


def test_models_listing(capsys):
    assert main(["models", "se_resnet5*"]) == 0
    out = capsys.readouterr().out
    assert "se_resnet50" in out and "SE version of resnet50" in out


@pytest.mark.parametrize("command, spellings, dest", [
    (["train", "--model", "resnet20_cifar"], ("--out", "--output"), "out"),
    (["train-detection", "--model", "resnet50", "--data-dir", "coco"], ("--out", "--output"), "out"),
    (["eval-detection", "--checkpoint", "d.pt", "--data-dir", "coco"], ("--out", "--output"), "out"),
    (["eval-detection", "--checkpoint", "d.pt", "--data-dir", "coco"], ("--val-split", "--split"), "val_split"),
    (["eval-detection", "--checkpoint", "d.pt", "--data-dir", "coco"], ("--limit-val", "--limit"), "limit_val"),
    (["report"], ("--out", "--output"), "out"),
    (["reproduce"], ("--out", "--output"), "out"),
])
def test_one_name_for_one_thing_with_the_older_spelling_kept(command, spellings, dest):
    value = "7" if dest.startswith("limit") else "somewhere"
    parsed = [vars(build_parser().parse_args(command + [spelling, value])) for spelling in spellings]
    assert parsed[0] == parsed[1] and str(parsed[0][dest]) == value


def test_train_detection_limits_each_split_or_both(monkeypatch):
    seen = {}
    monkeypatch.setattr(commands, "train_detection", lambda *a, **kw: seen.update(kw) or {})
    base = ["train-detection", "--model", "resnet50", "--data-dir", "coco", "--out", "run"]
    assert main(base + ["--limit-train", "8", "--limit-val", "4"]) == 0
    assert (seen["limit_train"], seen["limit_val"]) == (8, 4)
    assert main(base + ["--limit", "5"]) == 0
    assert (seen["limit_train"], seen["limit_val"]) == (5, 5)


def test_models_with_released_weights_and_a_pattern_that_matches_none(capsys):
    assert main(["models", "--pretrained", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == ["se_resnet101", "se_resnet152", "se_resnet50", "se_resnext101_32x4d",
                                           "se_resnext50_32x4d", "senet154"]
    assert all(m["released_weights"] for m in listed)
    assert main(["models", "foo*"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model matches 'foo*'" in err
    assert main(["models", "--pretrained", "resnet*"]) == 2
    assert "no model with released weights matches 'resnet*'" in capsys.readouterr().err


def test_unknown_model_is_one_line_error(capsys):
    assert main(["complexity", "--model", "se_resnet5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'se_resnet5'" in err and "Traceback" not in err


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "senet_core", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "complexity" in out.stdout


def test_bad_subcommand_exits_nonzero():
    out = subprocess.run([sys.executable, "-m", "senet_core", "fly"], capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_report_headline_is_a_markdown_table_read_from_the_given_records(tmp_path, capsys):
    out = tmp_path / "book" / "headline.md"
    assert main(["report", "--headline", "--results-dir", str(tmp_path / "none"), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "| claims | checked | n | result |"
    assert any(line.startswith("| Architecture and complexity | exact") for line in lines)
    # No training records there: the 15 training claims wait, counted with the claims not run here.
    assert "| Needs the paper's data or compute | not run here | 58 |" in out.read_text()


def test_version_is_the_package_s(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"senet {senet_core.__version__}\n"


def test_help_states_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done; 1 a run failed" in text and "2 bad input" in text and "130 or 143 interrupted" in text


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x", "--epochs", "0"], "senet train: error: argument --epochs: must be at least 1, got 0"),
    (["complexity", "--input-size", "-5"], "senet complexity: error: argument --input-size: must be at least 1"),
    (["train", "--out", "x", "--lr", "nan"], "senet train: error: argument --lr: 'nan' is not a number"),
    (["train"], "senet train: error: the following arguments are required: --out"),
    (["experiments", "--seeds", "a,b"], "senet experiments: error: argument --seeds: 'a,b' is not a comma-separated"),
    (["train", "--out", "x", "--recipe=--"], "senet train: error: argument --recipe: expected one argument"),
])
def test_a_parser_error_is_one_line_without_the_usage_block(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(message) and err.count("\n") == 1 and "usage:" not in err


def test_eval_of_a_model_without_weights_says_what_to_add(capsys):
    assert main(["eval", "--model", "se_resnet50", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --pretrained imagenet" in err and "--checkpoint" in err


@pytest.mark.parametrize("raised, status, shown", [
    (WriteError("could not write run/metrics.jsonl: No space left on device"), 1,
     "senet train: error: could not write run/metrics.jsonl: No space left on device"),
    (TrainingStopped("stopped by SIGTERM after epoch 2;\nresume with --resume", signal.SIGTERM), 143,
     "senet train: stopped by SIGTERM after epoch 2; resume with --resume"),
    (TrainingStopped("stopped by SIGINT", signal.SIGINT), 130, "senet train: stopped by SIGINT"),
    (ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                '  File "x.py", line 1, in f\nValueError: image 7 is truncated\n'), 2,
     "senet train: error: ValueError: image 7 is truncated"),
    (KeyboardInterrupt(), 130, "senet train: interrupted"),
])
def test_a_failed_run_is_one_line_and_its_exit_status(raised, status, shown, monkeypatch, tmp_path, capsys):
    def fail(config):
        raise raised
    monkeypatch.setattr(commands, "train", fail)
    assert main(["train", "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet"]) == status
    assert capsys.readouterr().err == shown + "\n"


# ---- --json: one JSON document on stdout --------------------------------------------------------------

TINY_TRAIN = ["train", "--model", "resnet20_cifar", "--dataset", "fashion_mnist", "--epochs", "1",
              "--batch-size", "64", "--limit-train", "64", "--limit-val", "64", "--device", "cpu"]


def trained_run(tmp_path) -> str:
    out = str(tmp_path / "run")
    assert main(TINY_TRAIN + ["--out", out, "--quiet"]) == 0
    return out


def loud(value):
    """Work that prints a notice of its own on stdout, as training and the study do, then returns ``value``."""
    def work(*args, **kwargs):
        print("a notice of the work")
        return value
    return work


# Each command's cheap invocation, given a temporary folder; the commands whose work is long or needs
# data that is not here (COCO, the pilot's regimes, the chapters) run a stand-in that prints a notice.
JSON_CASES = {
    "complexity --model": (lambda tmp: ["complexity", "--model", "resnet20_cifar"], {}),
    "complexity": (lambda tmp: ["complexity"], {}),
    "models": (lambda tmp: ["models", "se_resnet*"], {}),
    "recipes": (lambda tmp: ["recipes"], {}),
    "experiments --list": (lambda tmp: ["experiments", "--list"], {}),
    "experiments": (lambda tmp: ["experiments", "--only", "table10_reduction_ratio", "--results-dir", "results"],
                    {"run_experiments": loud({})}),
    "report --headline": (lambda tmp: ["report", "--headline"], {}),
    "report": (lambda tmp: ["report"], {}),
    "train": (lambda tmp: TINY_TRAIN + ["--out", str(tmp / "run")], {}),
    "eval": (lambda tmp: ["eval", "--checkpoint", trained_run(tmp), "--limit-val", "64", "--device", "cpu"], {}),
    "profile": (lambda tmp: ["profile", "resnet20_cifar", "se_resnet20_cifar", "--device", "cpu", "--warmup", "0",
                             "--repeats", "1"], {}),
    "pilot": (lambda tmp: ["pilot", "--results-dir", str(tmp)], {"run_pilot": loud({"regimes": []})}),
    "reproduce": (lambda tmp: ["reproduce", "--output", str(tmp)], {"reproduce": loud(Summary(executed=["01"]))}),
    "train-detection": (lambda tmp: ["train-detection", "--model", "resnet50", "--data-dir", str(tmp), "--out",
                                     str(tmp / "det")], {"train_detection": loud({"ap": 1.0})}),
    "eval-detection": (lambda tmp: ["eval-detection", "--checkpoint", str(tmp / "detector.pt"), "--data-dir",
                                    str(tmp)], {"evaluate_detection": loud({"ap": 1.0, "ap50": 2.0})}),
}


@pytest.mark.parametrize("case", JSON_CASES)
def test_json_prints_one_json_document_on_stdout(case, tmp_path, monkeypatch, capsys):
    argv, stand_ins = JSON_CASES[case]
    for name, work in stand_ins.items():
        monkeypatch.setattr(commands, name, work)
    argv = argv(tmp_path)
    capsys.readouterr()                          # what a set-up run printed
    assert main(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)                     # one document: anything more is an error
    if stand_ins:
        assert "a notice of the work" in captured.err


def test_every_command_prints_its_result_as_json_on_request():
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subcommands.choices) <= {case.split()[0] for case in JSON_CASES}
    for name, parser in subcommands.choices.items():
        assert "--json" in parser._option_string_actions, f"senet {name} has no --json"


def test_json_of_one_model_is_its_counts(capsys):
    assert main(["complexity", "--model", "resnet50", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["params"] == 25_557_032 and counts["input_size"] == 224 and round(counts["gflops"], 3) == 3.858
