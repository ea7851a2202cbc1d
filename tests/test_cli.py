"""The senet command line: output, one-line errors and exit statuses."""
import signal
import subprocess
import sys

import pytest

import senet_core
from senet_core.cli import commands, main
from senet_core.engine.runtime import TrainingStopped, WriteError


def test_complexity_of_one_model(capsys):
    assert main(["complexity", "--model", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032 parameters" in out and "3.858 GFLOPs" in out


def test_models_listing(capsys):
    assert main(["models", "se_resnet5*"]) == 0
    out = capsys.readouterr().out
    assert "se_resnet50" in out and "SE version of resnet50" in out


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
