"""A simulated Colab: each chapter run the way a reader opens it there.

What Colab gives a reader is a Python with torch, torchvision, numpy, pandas, matplotlib, scipy, PyYAML,
tqdm and a Jupyter kernel, and one notebook in an empty folder; senet-core is not there, nor pycocotools,
nor this repository. This module rebuilds that on this machine, under ``_build/colab``:

- a wheel of the checkout (``_build/colab/wheel``), built from a copy of its package files so that the
  build leaves nothing in the working tree;
- a fresh virtual environment (``_build/colab/venv``) holding only Colab's packages, at the versions of
  ``constraints.txt`` (pip's cache then serves torch's wheels after the first time). It is kept between
  runs (a stamp file says it is complete) and, before every chapter, put back to exactly those packages,
  so that what a previous chapter installed (senet-core itself) is gone;
- each chapter copied alone into an empty temporary folder and executed there with papermill, in that
  environment's kernel, with ``-p profile smoke`` and ``SENET_CORE_SPEC`` set to the wheel: the chapter's
  ``install`` cell must install senet-core itself, as it would on Colab.

``simulate()`` returns one :class:`ChapterRun` per chapter (ok or not, seconds, the failing cell's error
in one line, where senet_core was imported from). ``python tests/colab_sim.py --all`` (``make colab``)
runs every chapter and prints a line per chapter; tests/test_colab.py runs chapter 01.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CONSTRAINTS = ROOT / "constraints.txt"
WORK = ROOT / "_build" / "colab"
VENV = WORK / "venv"
WHEELS = WORK / "wheel"
OUT = WORK / "out"
STAMP = VENV / ".colab-complete"
KERNEL = "colab-sim"

# What Colab ships of what senet-core needs (pycocotools and senet-core itself it does not), plus the
# kernel and papermill to run a notebook. Installed at constraints.txt's versions.
COLAB_PACKAGES = ("torch", "torchvision", "numpy", "matplotlib", "pandas", "scipy", "PyYAML", "tqdm",
                  "ipykernel", "papermill")

# Variables of this process that would let the simulated kernel see this repository or this .venv.
_DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "VIRTUAL_ENV",
                "CONDA_PREFIX", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR",
                "PIP_REQUIRE_VIRTUALENV", "PIP_PREFIX", "PIP_TARGET", "PIP_USER", "SENET_CORE_SPEC")


@dataclass
class ChapterRun:
    chapter: str
    ok: bool
    seconds: float
    error: str | None           # the failing cell's error, in one line
    cells_run: int              # code cells papermill completed
    cells_total: int            # code cells of the chapter
    senet_core_file: str | None  # where the simulated kernel's Python imports senet_core from, after the run
    senet_core_source: str | None  # what pip installed it from (direct_url.json's url)
    output: str                 # the executed notebook, under _build/colab/out

    def line(self) -> str:
        status = "ok" if self.ok else "FAILED"
        text = f"{self.chapter:<28} {status:<6} {self.seconds:7.1f} s"
        return text if self.ok else f"{text}  {self.error}"


def _log(message: str) -> None:
    print(f"[colab] {message}", file=sys.stderr, flush=True)


def _one_line(text: str, limit: int = 400) -> str:
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)        # ANSI colours of IPython tracebacks
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, less what points at the repository's own Python, with the venv first."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra or {})
    return env


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@contextlib.contextmanager
def _locked():
    """One simulation at a time on this checkout (two pytest workers, or make colab beside make test)."""
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def index_reachable(timeout: float = 5.0) -> bool:
    """Whether pip's package index answers (pip's own config, else PyPI)."""
    url = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(parsed.path).exists()
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


# ---- the wheel of the checkout --------------------------------------------------------------------------

def build_wheel() -> Path:
    """A wheel of the checkout as it is now, built from a copy of the package's own files."""
    src = WORK / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "senet_core", src / "senet_core",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    shutil.rmtree(WHEELS, ignore_errors=True)
    WHEELS.mkdir(parents=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", src, "-w", WHEELS])
    shutil.rmtree(src, ignore_errors=True)
    [wheel] = WHEELS.glob("senet_core-*.whl")
    return wheel


# ---- the environment Colab gives ------------------------------------------------------------------------

def _python() -> Path:
    return VENV / "bin" / "python"


def _installed(py: Path) -> dict[str, str]:
    out = _run([py, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"], env=_env()).stdout
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}


def _stamp_key() -> str:
    digest = hashlib.sha256()
    digest.update(CONSTRAINTS.read_bytes())
    digest.update(" ".join(COLAB_PACKAGES).encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_venv() -> tuple[Path, dict[str, str], bool]:
    """The simulated Colab's Python, the packages it ships (name: version), and whether it was (re)built.

    Reused as it is when its stamp matches constraints.txt, this list of packages and this Python; else
    created (or brought up to date) with pip, which serves torch's wheels from its cache after the first
    download.
    """
    py = _python()
    key = _stamp_key()
    if STAMP.exists() and py.exists():
        stamp = json.loads(STAMP.read_text())
        if stamp.get("key") == key:
            return py, stamp["packages"], False
    if not py.exists() or subprocess.run([py, "-c", "pass"], capture_output=True).returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        _log(f"creating {VENV.relative_to(ROOT)} (Colab's packages at constraints.txt's versions)")
        _run([sys.executable, "-m", "venv", VENV])
    STAMP.unlink(missing_ok=True)
    pip = [py, "-m", "pip", "--disable-pip-version-check"]
    try:
        from importlib.metadata import version
        pip_version = version("pip")
        _run([*pip, "install", "--quiet", f"pip=={pip_version}"], env=_env())
    except Exception:   # noqa: BLE001 - keep ensurepip's pip
        pass
    _run([*pip, "install", "--quiet", "-c", CONSTRAINTS, *COLAB_PACKAGES], env=_env())
    _run([py, "-m", "ipykernel", "install", "--prefix", VENV, "--name", KERNEL,
          "--display-name", "Python 3 (simulated Colab)"], env=_env())
    packages = _installed(py)
    STAMP.write_text(json.dumps({"key": key, "packages": packages}, indent=1, sort_keys=True))
    return py, packages, True


def reset_venv(py: Path, packages: dict[str, str]) -> list[str]:
    """Put the environment back to the packages Colab ships: remove what a chapter installed."""
    now = _installed(py)
    extra = sorted(set(now) - set(packages))
    if extra:
        _run([py, "-m", "pip", "uninstall", "--quiet", "-y", *extra], env=_env())
    changed = [f"{name}=={v}" for name, v in packages.items() if now.get(name) != v]
    if changed:
        _run([py, "-m", "pip", "install", "--quiet", "--no-deps", *changed], env=_env())
    return extra + changed


# ---- one chapter ----------------------------------------------------------------------------------------

def _first_error(executed: Path) -> tuple[str | None, int, int]:
    """(the first error output of a code cell in one line, code cells completed, code cells)."""
    if not executed.exists():
        return None, 0, 0
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    completed = sum(c.get("metadata", {}).get("papermill", {}).get("status") == "completed" for c in code)
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tags = ",".join(t for t in cell.get("metadata", {}).get("tags", []) if t != "injected-parameters")
                where = f"cell {index}" + (f" [{tags}]" if tags else "")
                return _one_line(f"{where}: {out.get('ename')}: {out.get('evalue')}"), completed, len(code)
    return None, completed, len(code)


def _where_installed(py: Path, folder: Path) -> tuple[str | None, str | None]:
    """Where the simulated Python imports senet_core from, run in the chapter's folder, and its pip source."""
    probe = ("import importlib.util, importlib.metadata, json\n"
             "spec = importlib.util.find_spec('senet_core')\n"
             "try:\n"
             "    url = json.loads(importlib.metadata.distribution('senet-core').read_text('direct_url.json'))['url']\n"
             "except Exception:\n"
             "    url = None\n"
             "print(json.dumps([spec.origin if spec else None, url]))\n")
    result = subprocess.run([py, "-c", probe], cwd=folder, capture_output=True, text=True, env=_env())
    if result.returncode != 0:
        return None, None
    origin, url = json.loads(result.stdout.strip().splitlines()[-1])
    return origin, url


def run_chapter(notebook: Path, py: Path, wheel: Path, profile: str = "smoke",
                timeout: float = 900) -> ChapterRun:
    """Execute ``notebook`` alone in an empty folder, in the simulated Colab, with ``-p profile``."""
    OUT.mkdir(parents=True, exist_ok=True)
    executed = OUT / notebook.name
    executed.unlink(missing_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"colab-{notebook.stem}-"))   # no repository around it
    try:
        shutil.copy2(notebook, folder / notebook.name)
        cmd = [py, "-m", "papermill", notebook.name, executed, "-k", KERNEL, "-p", "profile", profile,
               "--cwd", folder, "--no-progress-bar", "--execution-timeout", str(int(timeout))]
        env = _env({"SENET_CORE_SPEC": str(wheel)})
        start = time.perf_counter()
        try:
            result = subprocess.run([str(c) for c in cmd], cwd=folder, env=env, capture_output=True,
                                    text=True, timeout=timeout + 60)
            returncode, stderr = result.returncode, result.stderr
        except subprocess.TimeoutExpired as expired:
            returncode = None
            stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        seconds = time.perf_counter() - start
        error, completed, total = _first_error(executed)
        if returncode is None:
            error = error or f"timed out after {timeout:.0f} s"
        elif returncode != 0 and error is None:
            lines = [ln for ln in stderr.splitlines() if ln.strip()]
            error = _one_line(lines[-1] if lines else f"papermill exited {returncode}")
        origin, url = _where_installed(py, folder)
        ok = returncode == 0 and error is None and total > 0 and completed == total
        return ChapterRun(chapter=notebook.stem, ok=ok, seconds=round(seconds, 1), error=error,
                          cells_run=completed, cells_total=total, senet_core_file=origin,
                          senet_core_source=url, output=str(executed))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chapters(names: list[str] | None = None) -> list[Path]:
    """The chapter notebooks named (``01``, ``01_se_block`` or a file name), or all of them."""
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    picked = []
    for name in names:
        stem = Path(name).stem
        match = [nb for nb in every if nb.stem == stem or nb.stem.split("_", 1)[0] == stem]
        if not match:
            raise ValueError(f"no chapter {name!r}: chapters are {', '.join(nb.stem for nb in every)}")
        picked += match
    return picked


def simulate(names: list[str] | None = None, profile: str = "smoke", timeout: float = 900,
             report=None) -> list[ChapterRun]:
    """Run the chapters named (all when None) in the simulated Colab; ``report`` gets each ChapterRun."""
    notebooks = chapters(names)
    with _locked():
        start = time.perf_counter()
        wheel = build_wheel()
        _log(f"wheel {wheel.name} built in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        py, packages, built = ensure_venv()
        _log(f"environment {'built' if built else 'reused'} in {time.perf_counter() - start:.1f} s "
             f"(torch {packages.get('torch')}, torchvision {packages.get('torchvision')})")
        runs = []
        for notebook in notebooks:
            removed = reset_venv(py, packages)
            if removed:
                _log(f"removed what the previous chapter installed: {', '.join(removed)}")
            run = run_chapter(notebook, py, wheel, profile=profile, timeout=timeout)
            runs.append(run)
            if report:
                report(run)
        reset_venv(py, packages)
        return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapters to run (01, 01_se_block, ...); default: 01")
    parser.add_argument("--all", action="store_true", help="every chapter")
    parser.add_argument("--profile", default="smoke", help="the chapters' profile parameter (default smoke)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed each chapter")
    parser.add_argument("--json", type=Path, help="also write the runs to this JSON file")
    args = parser.parse_args(argv)
    names = None if args.all else (args.chapters or ["01"])
    total = time.perf_counter()
    runs = simulate(names, profile=args.profile, timeout=args.timeout, report=lambda r: print(r.line(), flush=True))
    failed = [r for r in runs if not r.ok]
    print(f"{len(runs) - len(failed)} passed, {len(failed)} failed in the simulated Colab "
          f"({time.perf_counter() - total:.0f} s; executed notebooks in {OUT.relative_to(ROOT)})")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
