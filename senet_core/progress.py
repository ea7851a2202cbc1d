"""Progress as every long step of the package shows it: one tqdm bar, drawn only on a terminal (so
logs and the notebooks' captured output stay clean), and lines written above it."""
from __future__ import annotations

import sys
from typing import Iterable

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **options) -> tqdm:
    """A tqdm bar over ``iterable`` (or of ``total=``), transient and as wide as the terminal.

    ``show=False`` turns it off; otherwise tqdm's ``disable=None`` draws it only when its stream is a
    terminal. ``options`` are tqdm's (``desc``, ``unit``, ``total``, ...)."""
    return tqdm(iterable, leave=False, dynamic_ncols=True, disable=None if show else True, **options)


def say(line: str) -> None:
    """Write ``line`` to stdout above any bar, at once (logs read through a pipe see it when it happens)."""
    tqdm.write(line)
    sys.stdout.flush()
