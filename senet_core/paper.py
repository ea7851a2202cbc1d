"""The paper's 16 tables, exactly as printed (arXiv 1709.01507v4), shipped with the package.

Cells are the printed strings (``"24.80"``, ``"45.7"``); an empty string is the paper's "-".
Use :func:`paper_value` for a number, :func:`printed_table` for a table as the paper lays it out,
and :func:`format_table` to print any table beside them as text or Markdown.
"""
from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources
from typing import Sequence

import pandas as pd


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


# How :func:`printed_table` names the paper's column groups and quantities.
_GROUPS = {"original": "original", "reimpl": "re-impl.", "senet": "SE"}
_QUANTITIES = {"gflops": "GFLOPs", "mflops": "MFLOPs", "params_M": "params (M)", "err": "error",
               "ap": "AP", "ap_iou0.5": "AP@0.5", "extra_data": "extra data", "crop_size": "crop"}


def _pair(row: dict, top1: str, top5: str, gain1: str | None = None, gain5: str | None = None) -> str:
    """ "24.80 / 7.48", with the paper's improvement in brackets where it prints one: "23.29 / 6.62 (1.51 / 0.86)"."""
    cell = " / ".join(row[c] or "-" for c in (top1, top5))
    if gain1 and row.get(gain1):
        cell += f" ({row[gain1]} / {row[gain5] or '-'})"
    return cell


def printed_table(number: int):
    """Table ``number`` (2-16) as the paper prints it, narrow enough for a page: each top-1 / top-5 pair
    in one cell (with the SE model's improvement in brackets), the reference beside the name, columns
    named in words, and a footnote mark kept on its cell. A DataFrame indexed by the first column."""
    rows = paper_table(number)
    columns = list(rows[0])
    key = columns[0]
    out = []
    for row in rows:
        line = {key: " ".join(v for v in (row[key], row.get("ref", "")) if v)}
        done = {key, "ref", "senet_model", "paper_model_name"}
        for column in columns:
            if column in done or column.endswith("footnote"):
                continue
            group, _, rest = column.partition("_")
            if column.endswith("top1_err") or column.startswith("top1_err"):
                top5 = column.replace("top1", "top5")
                gain1 = column.replace("_err", "_improvement") if column.endswith("_err") else None
                gain1 = gain1 if gain1 in row else None
                prefix = f"{_GROUPS.get(group, group)} " if column.endswith("_top1_err") else ""
                suffix = column.removeprefix("top1_err").replace("_or_", " / ").replace("_", " at ", 1) \
                    if column.startswith("top1_err") else ""
                label = f"{prefix}top-1 / top-5{suffix}" + (" (gain)" if gain1 else "")
                line[label] = _pair(row, column, top5, gain1, gain1 and gain1.replace("top1", "top5"))
                done |= {column, top5} | ({gain1, gain1.replace("top1", "top5")} if gain1 else set())
            elif group in _GROUPS and rest in _QUANTITIES:
                line[f"{_GROUPS[group]} {_QUANTITIES[rest]}"] = row[column]
            else:
                line[_QUANTITIES.get(column, column.replace("_", " "))] = row[column]
            done.add(column)
        marks = [row[c] for c in columns if c.endswith("footnote") and row[c]]
        if marks:
            line[key] += " " + " ".join(marks)
        out.append(line)
    return pd.DataFrame(out).set_index(key)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """A plain-text (aligned) or Markdown table of ``rows`` under ``headers``."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
