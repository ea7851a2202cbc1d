"""The three places that say what senet-core needs agree: pyproject.toml (lower bounds), constraints.txt
(the exact versions `make` and CI install) and environment.yml (Binder's CPU environment)."""
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text())

# PyPI name -> the conda-forge packages that provide it (torch: the CPU build only).
CONDA_NAMES = {"torch": {"pytorch-cpu"}, "matplotlib": {"matplotlib", "matplotlib-base"}}


def requirements(group: str | None = None) -> list[Requirement]:
    specs = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return [Requirement(s) for s in specs]


def lower_bound(specifier) -> Version | None:
    bounds = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def conda_dependencies() -> dict[str, str]:
    """environment.yml's conda packages: name -> version spec ("" when none)."""
    out = {}
    for dep in ENVIRONMENT["dependencies"]:
        if isinstance(dep, str):
            name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep).groups()
            out[name.lower()] = spec.replace(" ", "")
    return out


def pip_dependencies() -> list[str]:
    return next(d["pip"] for d in ENVIRONMENT["dependencies"] if isinstance(d, dict) and "pip" in d)


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_runtime_dependencies_are_lower_bounds_that_admit_an_older_torch():
    for req in requirements():
        assert all(s.operator == ">=" for s in req.specifier), f"{req}: runtime dependencies are lower bounds"
        assert lower_bound(req.specifier) is not None, f"{req} has no lower bound"
    torch = next(r for r in requirements() if r.name == "torch")
    assert torch.specifier.contains("2.4.0") and torch.specifier.contains("2.15.0")


def test_constraints_pin_every_dependency_of_make_s_install_inside_pyproject_s_bounds():
    pins = constraints()
    assert pins[canonicalize_name("torch")] == Version("2.15.0")
    assert pins[canonicalize_name("torchvision")] == Version("0.29.2")
    assert canonicalize_name(PROJECT["name"]) not in pins
    for req in requirements() + requirements("test") + requirements("book"):
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject.toml's {req}"


def test_binder_environment_matches_pyproject():
    conda = conda_dependencies()
    # The Python version: one that requires-python admits.
    python = conda["python"].lstrip("=")
    assert re.fullmatch(r"3\.\d+", python), f"environment.yml should pin python=3.X, has {conda['python']!r}"
    assert Version(python) in SpecifierSet(PROJECT["requires-python"]), \
        f"python={python} is outside requires-python {PROJECT['requires-python']}"
    # Every runtime dependency comes from conda-forge (torch as its CPU build) with the same lower bound,
    # so that pip's `-e .` finds it there and does not fetch PyPI's CUDA build beside it.
    for req in requirements():
        names = CONDA_NAMES.get(req.name.lower(), {req.name.lower()})
        found = [n for n in names if n in conda]
        assert found, f"environment.yml lists none of {sorted(names)} for {req}"
        spec = conda[found[0]]
        assert spec.startswith(">="), f"{found[0]}{spec}: expected a lower bound like pyproject's {req}"
        assert Version(spec[2:]) == lower_bound(req.specifier), \
            f"environment.yml has {found[0]}{spec}, pyproject.toml {req}"
    assert "pytorch" not in conda, "torch comes as pytorch-cpu (conda-forge's CPU build), not pytorch"
    # The package itself from the repository's own files; torch never from pip; the book's tools with
    # pyproject's specifiers.
    pip = pip_dependencies()
    assert "-e ." in pip or "." in pip, "environment.yml must install senet-core from the repository (-e .)"
    pip_reqs = [Requirement(p) for p in pip if not p.startswith(("-", "."))]
    assert not {canonicalize_name(r.name) for r in pip_reqs} & {"torch", "torchvision"}, \
        "torch and torchvision come from conda-forge (CPU builds), not from pip (PyPI: the CUDA build)"
    book = {canonicalize_name(r.name): r for r in requirements("book")}
    for req in pip_reqs:
        if canonicalize_name(req.name) in book:
            assert req.specifier == book[canonicalize_name(req.name)].specifier, \
                f"environment.yml's {req} differs from pyproject.toml's {book[canonicalize_name(req.name)]}"
    for name, req in book.items():
        listed = name in {canonicalize_name(r.name) for r in pip_reqs} or name in conda
        assert listed, f"the book's {req} is missing from environment.yml"
        if name in conda:
            assert Version(conda[name].lstrip(">=")) == lower_bound(req.specifier)


def index_reachable(timeout: float = 5.0) -> bool:
    url = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def test_binder_pip_part_resolves_against_the_index():
    """pip's part of environment.yml resolves (--no-deps: its dependencies come from conda-forge, which the
    machines here cannot reach; torch's CPU build is not on PyPI)."""
    if not index_reachable():
        pytest.skip("the package index (PIP_INDEX_URL or pypi.org) is unreachable from this machine")
    pip = pip_dependencies()
    args = [a for p in pip for a in (["-e", str(ROOT)] if p.startswith("-e") else [p])]
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                             "--disable-pip-version-check", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    would = next(line for line in result.stdout.splitlines() if line.startswith("Would install"))
    names = {canonicalize_name(w.rsplit("-", 1)[0]) for w in would.split()[2:]}
    assert names == {canonicalize_name(PROJECT["name"])} | {
        canonicalize_name(Requirement(p).name) for p in pip if not p.startswith(("-", "."))}
