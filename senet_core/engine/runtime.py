"""Where and how a computation runs: the rules every engine shares, written once.

Training, evaluation, detection and profiling all take their device, precision, process group,
checkpoint writes and provenance from here:

* :func:`resolve_device`: ``auto`` (the GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``;
  under torchrun each process takes its local GPU.
* :func:`autocast`: the mixed-precision policy (``bf16``, ``fp16`` or ``None`` for float32).
* :class:`Distributed`: the process group torchrun sets up (RANK, WORLD_SIZE, LOCAL_RANK).
* A run's folder: the file names (:data:`CHECKPOINT`, :data:`METRICS`, :data:`CONFIG`), the writer's
  lock (:func:`run_lock`) and atomic writes, so a crash never leaves a truncated file.
* :func:`provenance`: device, threads, torch, commit and date, stamped on every measurement.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

PACKAGE = Path(__file__).resolve().parent.parent   # senet_core/
BOOK_ROOT = "SENET_BOOK_ROOT"                       # set by a chapter's install cell to the repository it cloned

# ---- a run's folder ---------------------------------------------------------------------------------
CHECKPOINT = "checkpoint.pt"
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


def resolve_device(device: str | torch.device = "auto", dist_env: Distributed | None = None) -> torch.device:
    """``auto`` picks the GPU when there is one; under torchrun each process takes its local GPU."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"device={device!r} is not one of cpu, cuda, cuda:N, auto")
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
def atomic_save(obj, path: Path) -> None:
    """Write ``obj`` so that ``path`` always holds either the old or the new complete file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_save` for a text file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
