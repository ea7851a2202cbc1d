"""The senet command line: output and one-line errors."""
import subprocess
import sys

from senet_core.cli import main


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
