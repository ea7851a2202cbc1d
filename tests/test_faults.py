"""Faults injected into tiny training runs, as a user's machine would inject them: a second writer, a
damaged or hostile checkpoint, a line cut by a crash, a signal, a full disk, a moved run folder, invalid
records, an unreadable image. Each must end in one line (exit 2 for bad input, 1 for a failed write,
128 + the signal for a stop), leave a resumable state, and lose nothing: a resumed run ends with the
metrics and weights of an uninterrupted one.

Every fault is recorded with ``record_property("fault", ...)``; the run ends with the tally
(tests/conftest.py).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from senet_core.cli import main
from senet_core.engine import runtime
from senet_core.engine import train as train_module
from senet_core.engine.runtime import CHECKPOINT, LOCK, METRICS, PREVIOUS, WriteError
from senet_core.study.results import load_records, write_json

TIMING = {"epoch_seconds", "eval_seconds", "images_per_second"}
EPOCHS = 3
RUN = ["--model", "se_resnet20_cifar", "--dataset", "fashion_mnist", "--batch-size", "32", "--limit-train", "128",
       "--limit-val", "64", "--seed", "1", "--device", "cpu", "--workers", "0", "--quiet"]


def train_args(out: Path, epochs: int = EPOCHS, *extra: str) -> list[str]:
    return ["train", "--out", str(out), "--epochs", str(epochs), *RUN, *extra]


def metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def weights(out: Path) -> dict:
    return torch.load(out / CHECKPOINT, weights_only=True)["model"]


def same_run(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return metrics(a) == metrics(b) and wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """The uninterrupted run every resumed one is compared with."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(train_args(out)) == 0
    return out


@pytest.fixture
def cut(tmp_path, monkeypatch) -> Path:
    """The same run killed while evaluating its last epoch: the state a crash leaves (two checkpoints)."""
    out, evaluations, evaluate = tmp_path / "run", [], train_module.evaluate

    def crash(*args, **kwargs):
        evaluations.append(1)
        if len(evaluations) == EPOCHS:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", crash)
    assert main(train_args(out)) == 130
    monkeypatch.undo()
    assert torch.load(out / PREVIOUS, weights_only=True)["epoch"] == EPOCHS - 2 and len(metrics(out)) == EPOCHS - 1
    return out


def resume(out: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(train_args(out, EPOCHS, "--resume"))
    return code, capsys.readouterr().err


# ---- one writer per run folder ------------------------------------------------------------------------

def test_a_second_writer_is_refused_in_one_line_and_the_first_run_is_whole(tmp_path, full, capsys, record_property):
    record_property("fault", "two runs, one folder")
    out = tmp_path / "same"
    cmd = [sys.executable, "-m", "senet_core", *train_args(out, 12)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / LOCK).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert (out / LOCK).exists(), first.communicate()
    code = main(train_args(out, 12, "--seed", "2"))
    line = one_line(capsys.readouterr().err)
    assert code == 2 and f"pid {first.pid}" in line and "another process" in line
    assert first.wait(timeout=300) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 1 and len(metrics(out)) == 12


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_notice(tmp_path, capsys, record_property):
    record_property("fault", "stale lock of a killed process")
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / LOCK).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    assert main(train_args(out, 1)) == 0
    assert f"taking over the lock of process {gone.pid}" in capsys.readouterr().err
    assert not (out / LOCK).exists()


# ---- damaged files ------------------------------------------------------------------------------------

def test_a_truncated_newest_checkpoint_resumes_from_the_one_before(cut, full, capsys, record_property):
    record_property("fault", "truncated checkpoint.pt")
    data = (cut / CHECKPOINT).read_bytes()
    (cut / CHECKPOINT).write_bytes(data[:len(data) // 2])
    code, err = resume(cut, capsys)
    assert code == 0 and f"resuming from {PREVIOUS} (after epoch 1)" in err
    assert same_run(cut, full)


def test_both_checkpoints_damaged_is_one_line_naming_them(cut, capsys, record_property):
    record_property("fault", "both checkpoints damaged")
    for name in (CHECKPOINT, PREVIOUS):
        (cut / name).write_bytes(b"\x00" * 100)
    code, err = resume(cut, capsys)
    line = one_line(err)
    said = line.replace(str(cut), "RUN")                    # the folder's name holds the test's name
    assert code == 2 and f"RUN/{CHECKPOINT}' is damaged" in said and f"RUN/{PREVIOUS}' is damaged" in said
    assert "not a plain checkpoint" not in said


def test_a_metrics_line_cut_by_a_crash_is_dropped_with_a_notice_and_the_run_resumes(cut, full, capsys,
                                                                                    record_property):
    record_property("fault", "metrics.jsonl cut mid-line")
    with (cut / METRICS).open("a") as stream:
        stream.write('{"epoch": 3, "train_lo')
    code, err = resume(cut, capsys)
    assert code == 0 and "cut short" in err
    assert same_run(cut, full)


@pytest.mark.parametrize("damage", ["truncated", "hostile", "shapes", "dtype", "not a run"])
def test_eval_of_a_bad_checkpoint_is_one_line(cut, tmp_path, capsys, record_property, damage):
    record_property("fault", f"eval of a {damage} checkpoint")
    path = tmp_path / "bad.pt"
    state = torch.load(cut / CHECKPOINT, weights_only=True)
    conv = next(k for k, v in state["model"].items() if v.dim() == 4)
    marker = tmp_path / "it-ran"
    if damage == "truncated":
        data = (cut / CHECKPOINT).read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif damage == "hostile":
        torch.save({"config": state["config"], "model": Payload(marker)}, path)
    elif damage == "shapes":
        state["model"][conv] = torch.zeros(3, 3, 3, 3)
        torch.save(state, path)
    elif damage == "dtype":
        state["model"][conv] = state["model"][conv].to(torch.int64)
        torch.save(state, path)
    else:
        torch.save(state["model"], path)
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(path), "--limit-val", "32", "--device", "cpu", "--workers", "0"])
    line = one_line(capsys.readouterr().err).replace(str(tmp_path), "TMP")
    assert code == 2 and "TMP/bad.pt" in line
    expected = {"truncated": "damaged", "hostile": "not a plain checkpoint", "shapes": f"shape mismatches: {conv}",
                "dtype": f"dtype mismatches: {conv}", "not a run": "not a training run's checkpoint"}[damage]
    assert expected in line
    assert not marker.exists()                              # nothing of the hostile file ran


class Payload:
    """A pickle that would run a command when loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_invalid_record_is_named_and_the_others_still_load(tmp_path, record_property):
    record_property("fault", "invalid records in results/")
    committed = sorted(Path(__file__).resolve().parent.parent.glob("results/cpu/*/*.json"))[:2]
    folder = tmp_path / "results" / "cpu" / committed[0].parent.name
    folder.mkdir(parents=True)
    for path in committed:
        shutil.copy(path, tmp_path / "results" / "cpu" / committed[0].parent.name / path.name)
    (folder / "broken.json").write_text('{"experiment": "x", ')
    incomplete = json.loads(committed[0].read_text())
    del incomplete["provenance"]
    (folder / "incomplete.json").write_text(json.dumps(incomplete))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_records(tmp_path / "results", "cpu")
    assert len(records) == len(committed)
    said = [str(w.message) for w in caught]
    assert any("broken.json" in s and "not JSON" in s for s in said)
    assert any("incomplete.json" in s and "provenance" in s for s in said)


# ---- signals ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_a_step_boundary_and_the_run_resumes_to_the_same_end(tmp_path, capsys, signum,
                                                                              record_property):
    record_property("fault", f"{signal.Signals(signum).name} during training")
    epochs = 8
    reference = tmp_path / "reference"
    assert main(train_args(reference, epochs)) == 0
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "senet_core", *train_args(out, epochs)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while child.poll() is None and time.time() < deadline:
        if (out / METRICS).exists() and (out / METRICS).read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    line = one_line(err)
    assert child.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in line and "--resume" in line
    assert len(metrics(out)) < epochs
    capsys.readouterr()
    assert main(train_args(out, epochs, "--resume")) == 0
    assert same_run(out, reference)


# ---- a full disk --------------------------------------------------------------------------------------

def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_resumes(tmp_path, full, capsys, monkeypatch,
                                                                          record_property):
    record_property("fault", "ENOSPC writing checkpoint.pt")
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def full_disk(obj, target, *args, **kwargs):
        calls.append(target)
        if len(calls) == 2:                                  # the checkpoint of epoch 2
            Path(target).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, target, *args, **kwargs)

    monkeypatch.setattr(runtime.torch, "save", full_disk)
    code = main(train_args(out))
    line = one_line(capsys.readouterr().err)
    assert code == 1 and "No space left on device" in line and "intact" in line
    assert torch.load(out / CHECKPOINT, weights_only=True)["epoch"] == 1
    assert not list(out.glob("*.tmp"))                      # nothing half-written is left to be read back
    monkeypatch.setattr(runtime.torch, "save", real_save)
    code, _ = resume(out, capsys)
    assert code == 0 and same_run(out, full)


def test_a_full_disk_while_writing_a_record_keeps_the_previous_one(tmp_path, monkeypatch, record_property):
    record_property("fault", "ENOSPC writing a record")
    path = tmp_path / "record.json"
    write_json(path, {"v": 1})

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(WriteError, match="No space left on device.*previous record.json is intact"):
        write_json(path, {"v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1} and not list(tmp_path.glob("*.tmp"))


# ---- portable runs ------------------------------------------------------------------------------------

def test_a_moved_run_folder_resumes_from_its_new_place(cut, full, tmp_path, capsys, record_property):
    record_property("fault", "run folder moved")
    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(cut), moved)
    code, err = resume(moved, capsys)
    assert code == 0, err
    assert same_run(moved, full)


# ---- an unreadable image ------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_unreadable_image_in_an_image_folder_is_named_in_one_line(tmp_path, capsys, workers, record_property):
    record_property("fault", f"unreadable image ({workers} loader workers)")
    for split in ("train", "val"):
        for label in ("n01", "n02"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "a.JPEG")
    bad = tmp_path / "train" / "n02" / "b.JPEG"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    capsys.readouterr()
    code = main(["train", "--out", str(tmp_path / "run"), "--model", "se_resnet20_cifar", "--dataset", "imagenet",
                 "--data-dir", str(tmp_path), "--epochs", "1", "--batch-size", "3", "--device", "cpu",
                 "--workers", workers, "--quiet"])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and str(bad) in line and "not a readable image" in line
