"""Re-run the whole book: every chapter notebook through papermill, with one profile's parameters.

``reproduce(profile="smoke")`` executes ``notebooks/*.ipynb`` into ``output``, skipping a notebook whose
executed copy is up to date (same notebook, same parameters, same ``senet_core`` source), and ends with
a summary of the failures. Profiles:

* ``smoke``: tiny data, one epoch; shows that every chapter runs (CI, about a minute a chapter).
  Its records go to ``_build/results`` (not committed).
* ``cpu``: our reduced-scale reproduction on Fashion-MNIST, laptop-sized; its records are committed in
  ``results/`` and read back (what is missing is trained). The published book is built with it.
* ``gpu``: the same protocols at full scale, and the paper's protocols where the data is given.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..study.spec import profile_names
from ..progress import progress_bar, say
from .chapters import SCRATCH, is_committed

# What a profile sends to the chapters that declare it; the chapters find the records themselves
# (senet_core.book.chapters): the committed ones in results/, the others under _build/, where the
# checkpoints of a profile that is not committed go too.
PROFILE_PARAMETERS = {name: {"profile": name, "runs_dir": "runs" if is_committed(name) else f"{SCRATCH}/runs"}
                      for name in profile_names()}
STAMPS = ".stamps"


@dataclass
class Summary:
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)     # notebook -> one-line reason

    @property
    def ok(self) -> bool:
        return not self.failed

    def render(self) -> str:
        lines = [f"{len(self.executed)} executed, {len(self.skipped)} up to date, {len(self.failed)} failed"]
        lines += [f"  FAILED {name}: {why}" for name, why in self.failed.items()]
        return "\n".join(lines)


def chapter_notebooks(root: str | Path = ".", only: str | None = None) -> list[Path]:
    """The book's notebooks in paper order; ``only`` is a shell pattern on their names (``"*ablation*"``)."""
    paths = sorted((Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        pattern = only if any(c in only for c in "*?[") else f"*{only}*"
        paths = [p for p in paths if fnmatch.fnmatch(p.stem, pattern)]
        if not paths:
            raise ValueError(f"no notebook matches {only!r}")
    if not paths:
        raise FileNotFoundError(f"no chapter notebooks in {Path(root) / 'notebooks'}")
    return paths


def _package_digest() -> str:
    """A hash of senet_core's source and data files: a change there makes every output stale."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".yaml", ".csv") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamp(notebook: Path, parameters: dict, package: str) -> str:
    digest = hashlib.sha1(notebook.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(package.encode())
    return digest.hexdigest()


def _notebook_parameters(notebook: Path, profile: str, parameters: dict | None) -> dict:
    """The profile's parameters that ``notebook`` declares, then every one the caller gave.

    A chapter that does not use, say, ``runs_dir`` is not sent it (papermill would warn about an
    unknown parameter); a caller's own parameter is always sent, so that a misspelt one is reported.
    """
    import papermill   # papermill: the book's extra, needed only to run the chapters

    declared = papermill.inspect_notebook(str(notebook))
    own = {name: value for name, value in PROFILE_PARAMETERS[profile].items() if name in declared}
    return {**own, **(parameters or {})}


def reproduce(profile: str = "smoke", only: str | None = None, jobs: int = 1, output: str | Path = "_build/executed",
              root: str | Path = ".", parameters: dict | None = None, force: bool = False,
              progress: bool = True) -> Summary:
    """Execute the chapter notebooks with ``profile``'s parameters (plus ``parameters``) into ``output``."""
    import papermill   # papermill: the book's extra, needed only to run the chapters

    if profile not in PROFILE_PARAMETERS:
        raise ValueError(f"profile={profile!r} is not one of {', '.join(PROFILE_PARAMETERS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    root = Path(root).resolve()
    output = Path(output)
    output = output if output.is_absolute() else root / output
    package = _package_digest()
    notebooks = chapter_notebooks(root, only)
    summary = Summary()
    todo = []
    for nb in notebooks:
        params = _notebook_parameters(nb, profile, parameters)
        stamp_file = output / STAMPS / f"{nb.stem}.json"
        stamp = _stamp(nb, params, package)
        if not force and (output / nb.name).exists() and stamp_file.exists() \
                and json.loads(stamp_file.read_text()).get("stamp") == stamp:
            summary.skipped.append(nb.stem)
            if progress:
                say(f"  up to date  {nb.stem}")
        else:
            todo.append((nb, params, stamp_file, stamp))
    (output / STAMPS).mkdir(parents=True, exist_ok=True)
    bar = progress_bar(show=progress and bool(todo), total=len(todo), desc="chapters", unit="chapter")

    def run(item):
        nb, params, stamp_file, stamp = item
        start = time.perf_counter()
        papermill.execute_notebook(str(nb), str(output / nb.name), parameters=params, cwd=str(root),
                                   progress_bar=False, log_output=False)
        _tag_for_the_book(output / nb.name)
        stamp_file.write_text(json.dumps({"stamp": stamp, "parameters": params}) + "\n")
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=jobs) as pool, bar:
        futures = {pool.submit(run, item): item[0].stem for item in todo}
        for done, future in enumerate(as_completed(futures), 1):
            bar.update()
            name = futures[future]
            try:
                seconds = future.result()
                summary.executed.append(name)
                if progress:
                    say(f"  [{done}/{len(todo)}] ok      {name} ({seconds:.0f} s)")
            except Exception as err:       # a failing chapter must not stop the others
                summary.failed[name] = _failure_line(err)
                if progress:
                    say(f"  [{done}/{len(todo)}] FAILED  {name}: {summary.failed[name]}")
    return summary


# How the book shows the executed copies: the install cell matters only in Colab or Binder, and the
# parameters cell (its defaults) and the check of its values are left out, and the values papermill injected
# are folded away (one click shows which profile ran).
BOOK_TAGS = {"install": "remove-cell", "parameters": "remove-cell", "check-parameters": "remove-cell",
             "injected-parameters": "hide-input"}


def _tag_for_the_book(path: Path) -> None:
    import nbformat   # nbformat: comes with papermill, the book's extra

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        tags += [BOOK_TAGS[t] for t in list(tags) if t in BOOK_TAGS and BOOK_TAGS[t] not in tags]
    nbformat.write(nb, path)


def _failure_line(err: Exception) -> str:
    """The most telling line of a papermill failure (the exception raised in the cell)."""
    text = str(err)
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and ("Error" in line or "Exception" in line):
            return line[:300]
    return (text.strip().splitlines() or [type(err).__name__])[0][:300]
