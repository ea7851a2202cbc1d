"""The paper's 16 tables, exactly as printed (arXiv 1709.01507v4), shipped with the package.

Cells are the printed strings (``"24.80"``, ``"45.7"``); an empty string is the paper's "-".
Use :func:`paper_value` for a number.
"""
from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def paper_table(number: int) -> tuple[dict[str, str], ...]:
    """Rows of Table ``number`` (1-16) as printed in the paper."""
    folder = resources.files("senet_core") / "paper_tables"
    matches = [f for f in folder.iterdir() if f.name.startswith(f"table{number:02d}_")]
    if not matches:
        raise ValueError(f"the paper has Tables 1-16, not Table {number!r}")
    return tuple(csv.DictReader(io.StringIO(matches[0].read_text(encoding="utf-8"))))


def paper_row(number: int, column: str, value: str) -> dict[str, str]:
    """The row of Table ``number`` whose ``column`` reads ``value``."""
    rows = [r for r in paper_table(number) if r[column] == value]
    if len(rows) != 1:
        raise KeyError(f"Table {number} has {len(rows)} rows with {column}={value!r}")
    return rows[0]


def paper_value(number: int, column: str, value: str, field: str) -> float | None:
    """A number from Table ``number``: ``paper_value(2, "model", "ResNet-50", "reimpl_gflops")``."""
    cell = paper_row(number, column, value)[field]
    return float(cell) if cell else None
