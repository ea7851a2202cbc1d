"""Where and how a computation runs: the rules every engine shares, written once.

Training, evaluation, detection and profiling all take their device, precision, process group,
checkpoint writes and provenance from here:

* :func:`resolve_device`: ``auto`` (the GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``;
  under torchrun each process takes its local GPU.
* :func:`autocast`: the mixed-precision policy (``bf16``, ``fp16`` or ``None`` for float32).
* :class:`Distributed`: the process group torchrun sets up (RANK, WORLD_SIZE, LOCAL_RANK).
* A run's folder: the file names (:data:`CHECKPOINT`, :data:`METRICS`, :data:`CONFIG`), the writer's
  lock (:func:`run_lock`), atomic writes (a crash or a full disk never leaves a truncated file under
  the final name), the last two checkpoints kept (:func:`save_checkpoint`, :func:`resume_checkpoint`)
  and the stop at a step boundary on SIGINT/SIGTERM (:func:`stop_on_signals`).
* :func:`provenance`: device, threads, torch, commit and date, stamped on every measurement.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from ..models.weights import CheckpointError, load_file

PACKAGE = Path(__file__).resolve().parent.parent   # senet_core/
BOOK_ROOT = "SENET_BOOK_ROOT"                       # set by a chapter's install cell to the repository it cloned

# ---- a run's folder ---------------------------------------------------------------------------------
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"      # the checkpoint before the newest, kept in case the newest is damaged
METRICS = "metrics.jsonl"
CONFIG = "config.json"
LOCK = "LOCK"

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def repo_root() -> Path:
    """The book's repository: ``$SENET_BOOK_ROOT`` (a chapter opened alone, in Colab, clones it there),
    else the repository this package was installed from (``pip install -e``), else the working directory.

    Jupyter, Binder and nbval run a chapter from ``notebooks/``, ``senet reproduce`` from the
    repository root: both find the same records and the same committed benchmarks."""
    if os.environ.get(BOOK_ROOT):
        return Path(os.environ[BOOK_ROOT]).expanduser().resolve()
    here = PACKAGE.parent
    return here if (here / "pyproject.toml").exists() and (here / "notebooks").is_dir() else Path.cwd()


# ---- device and precision -----------------------------------------------------------------------------
@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """The process group set up by torchrun (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


DEVICE_NAMES = r"auto|cpu|cuda(:[0-9]{1,4})?"      # what a user may write for a device (ASCII digits)


def is_device_name(text) -> bool:
    """Whether ``text`` is spelled as a device: auto, cpu, cuda or cuda:N."""
    return isinstance(text, str) and re.fullmatch(DEVICE_NAMES, text, flags=re.ASCII) is not None


def resolve_device(device: str | torch.device = "auto", dist_env: Distributed | None = None) -> torch.device:
    """``auto`` picks the GPU when there is one; under torchrun each process takes its local GPU."""
    if isinstance(device, torch.device):
        device = str(device)
    if not is_device_name(device):
        raise ValueError(f"device={device!r} is not one of cpu, cuda, cuda:N, auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if device == "cuda" and dist_env is not None and dist_env.enabled:
        return torch.device("cuda", dist_env.local_rank)
    return torch.device(device)


def check_amp(amp: str | None) -> None:
    """Raise a one-line ValueError unless ``amp`` is ``bf16``, ``fp16`` or ``None``."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp={amp!r} is not one of bf16, fp16 (or none)")


def autocast(device: torch.device, amp: str | None):
    """Mixed precision for ``amp`` in ("bf16", "fp16"), or a no-op context for ``None``."""
    check_amp(amp)
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler:
    """The loss scaler fp16 training needs (a pass-through for bf16 and float32)."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


# ---- writing a run's files ----------------------------------------------------------------------------
def _atomic(path: Path, write) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise _write_error(path, err, tmp) from None


def _write_error(path: Path, err: OSError, *partial: Path) -> WriteError:
    for leftover in partial:
        leftover.unlink(missing_ok=True)
    kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
    error = WriteError(f"could not write {path} ({err.strerror or err}); {kept}")
    error.errno = err.errno            # one line when printed, the cause still there for a caller to test
    return error


def atomic_save(obj, path: Path) -> None:
    """Write ``obj`` so that ``path`` always holds either the old or the new complete file; a failed
    write (a full disk) raises :class:`WriteError` and leaves the old file as it was."""
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_save` for a text file."""
    _atomic(path, lambda tmp: tmp.write_text(text))


def save_checkpoint(state: dict, out: Path) -> None:
    """Write ``out/checkpoint.pt`` atomically, keeping the one it replaces as ``checkpoint.prev.pt``:
    a run whose newest checkpoint is damaged resumes from the one before."""
    path, previous = out / CHECKPOINT, out / PREVIOUS
    new, kept = out / (CHECKPOINT + ".tmp"), out / (PREVIOUS + ".tmp")
    try:
        torch.save(state, new)
        if path.exists():
            # A hard link: checkpoint.pt stays in place until the new one replaces it.
            kept.unlink(missing_ok=True)
            _link_or_copy(path, kept)
            os.replace(kept, previous)
        os.replace(new, path)
    except OSError as err:
        raise _write_error(path, err, new, kept) from None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def has_checkpoint(out: Path) -> bool:
    return (out / CHECKPOINT).exists() or (out / PREVIOUS).exists()


def resume_checkpoint(out: Path, map_location: str | torch.device = "cpu") -> dict:
    """The newest readable checkpoint of the run in ``out``: ``checkpoint.pt``, or, when that one is
    damaged or missing, ``checkpoint.prev.pt`` with a notice. One line names both when neither reads."""
    try:
        return load_file(out / CHECKPOINT, map_location)
    except (CheckpointError, FileNotFoundError) as newest:
        if not (out / PREVIOUS).exists():
            raise
        try:
            state = load_file(out / PREVIOUS, map_location)
        except CheckpointError as older:
            raise CheckpointError(f"{newest}; and the one before: {older}") from None
        print(f"{newest}; resuming from {PREVIOUS} (after epoch {state.get('epoch', '?')}) instead",
              file=sys.stderr)
        return state


def read_metrics(out: Path) -> list[dict]:
    """The per-epoch lines of ``out/metrics.jsonl``; a last line cut short by a crash is dropped with a
    notice, any other unreadable line is named."""
    path = out / METRICS
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if number == len(lines):
                print(f"{path}: its last line was cut short (a crash while writing it); dropped", file=sys.stderr)
                break
            raise ValueError(f"{path}: line {number} is not JSON; the file is damaged") from None
    return rows


@contextlib.contextmanager
def stop_on_signals():
    """While training: SIGINT and SIGTERM set a flag the training loop reads between steps, so the run
    stops at a step boundary (:class:`TrainingStopped`) with its last checkpoint intact, rather than
    wherever the signal lands. Outside the main thread, signals cannot be caught: a no-op."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if received:                      # a second signal: the user insists
            signal.signal(signum, previous[signum] if callable(previous[signum]) else signal.SIG_DFL)
            raise KeyboardInterrupt
        received.append(signum)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class TrainingStopped(RuntimeError):
    """SIGINT or SIGTERM stopped a run at a step boundary; its last checkpoint is kept for ``--resume``."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class WriteError(OSError):
    """A run's file could not be written (a full disk, say); the previous version of it is intact."""


class RunLockedError(FileExistsError):
    """Another live process is writing the run folder (the CLI reports it on one line, exit 2)."""


@contextlib.contextmanager
def run_lock(out: Path, take: bool = True):
    """Hold ``out/LOCK`` (holder's pid and host inside) while a process writes the run folder.

    A second writer stops at once with :class:`RunLockedError` naming the holder. A lock left by a
    process that no longer runs on this host is stale: it is taken over, with a notice.
    """
    if not take:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == me["host"] and holder.get("pid") and not _alive(holder["pid"]):
                print(f"{out}: taking over the lock of process {holder['pid']}, which no longer runs",
                      file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            raise RunLockedError(f"{out} is being written by another process (pid {holder.get('pid', '?')} on "
                                 f"{holder.get('host', '?')}); wait for it to finish, or use another --out")
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise RunLockedError(f"{out}: its lock was taken over twice in a row; try again")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


# ---- provenance -----------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=PACKAGE)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_version() -> str:
    """senet_core's version, as pyproject.toml declares it (read from the installed distribution)."""
    try:
        return metadata.version("senet-core")
    except metadata.PackageNotFoundError:    # imported from a source tree that was never installed
        return "unknown"


def git_commit() -> str:
    """The commit of the code that ran, or "unknown" outside a git checkout."""
    return _git("rev-parse", "--short", "HEAD") or "unknown"


def git_dirty() -> bool | None:
    """Whether the package's files differ from the commit (None outside a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", str(PACKAGE))
    return None if status is None else bool(status)


def provenance(device: torch.device, world_size: int = 1) -> dict:
    """What a measurement ran on and with: device, threads, processes, torch, commit, date."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return {"device": name, "threads": torch.get_num_threads(), "world_size": world_size, "torch": torch.__version__,
            "commit": git_commit(), "dirty": git_dirty(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
