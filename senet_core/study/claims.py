"""The paper's checkable claims (``claims.yaml``), each checked now by the kind of check it names.

Each entry is one numbered claim of the project's claim list: where the paper makes it, what it says,
the printed number, and how we check it (``ours.kind``, one of :data:`KINDS`):

* ``exact``: counted from our models (:mod:`senet_core.study.exact`).
* ``reduced_scale``: the direction of an SE comparison from the committed records of
  ``experiments.yaml``, as a paired difference over seeds. It speaks to the direction of a claim,
  never to its ImageNet number.
* ``arithmetic``: an expression over the paper's printed numbers (:mod:`senet_core.study.arithmetic`).
* ``measured_elsewhere``: timing, measured on the reader's hardware in a chapter.
* ``not_run``: with the reason (ImageNet training, cited numbers, test server, datasets).
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
import yaml

from ..engine.runtime import package_version
from .arithmetic import check_arithmetic
from .comparisons import Pair, decisions, gain_text
from .exact import check_exact
from .results import load_records, provenance_label

KINDS = ("exact", "reduced_scale", "arithmetic", "measured_elsewhere", "not_run")


@lru_cache(maxsize=None)
def _claims_text() -> str:
    return (resources.files("senet_core.study") / "claims.yaml").read_text(encoding="utf-8")


def claims() -> list[dict]:
    """The 100 numbered claims with their paper location, check type and how we check them."""
    return copy.deepcopy(yaml.safe_load(_claims_text()))


def _pairs(ours: dict) -> list[Pair]:
    pairs = ours.get("pairs") or [{"row": ours["row"], "baseline": ours["baseline"], "expect": ours.get("expect")}]
    return [Pair(p["row"], p["baseline"], p.get("expect", ours.get("expect")), p.get("margin")) for p in pairs]


def claim_outcome(outcomes: list[str]) -> str:
    """One outcome for a claim made of several comparisons: contradicted if any is, inconclusive if
    any is, else holds (every comparison as the paper says, an "about equal" one equivalent) or
    equivalent (some effect smaller than the paper's)."""
    if not outcomes:
        raise ValueError("a claim needs at least one comparison")
    for worst in ("contradicted", "inconclusive"):
        if worst in outcomes:
            return worst
    return "equivalent" if "equivalent" in outcomes and "holds" not in outcomes else "holds"


def _reduced_scale(ours: dict, results_dir, profile: str) -> tuple[str, str, str, str]:
    """(status, ours, agrees, provenance) of a reduced-scale claim from its experiment's records;
    ``agrees`` is the claim's outcome (:data:`senet_core.study.stats.OUTCOMES`)."""
    pairs = _pairs(ours)
    records = load_records(results_dir, profile, ours["experiment"])
    made = decisions(ours["experiment"], records, pairs)
    if len(made) < len(pairs):
        return ("reduced scale: not run yet",
                f"no {profile}-profile records of {ours['experiment']} under {results_dir}", "n/a", "")
    texts = []
    for d in made:
        cmp = d.comparison
        better = sum(g > 0 for g in cmp.gains)
        texts.append(f"{d.row} vs {d.baseline}: top-1 error {abs(cmp.mean):.2f} points "
                     f"{'lower' if cmp.mean >= 0 else 'higher'} (gain {gain_text(cmp)}), lower on {better} of "
                     f"{cmp.n} seeds: {d.outcome}")
    # Holm's correction within the claim: its comparisons are one family.
    agrees = claim_outcome([d.outcome for d in made])
    used = {p.row for p in pairs} | {p.baseline for p in pairs}
    provenance = provenance_label([r for r in records if r["row"] in used])
    return "measured at reduced scale", "; ".join(texts), agrees, provenance


def _chapter_number(chapter: str) -> str:
    match = re.match(r"(\d+)", chapter)
    return str(int(match.group(1))) if match else chapter


def _with_note(text: str, ours: dict) -> str:
    return f"{text} ({ours['note']})" if ours.get("note") and text else text


def check_claim(entry: dict, results_dir: str | Path = "results", profile: str = "cpu") -> dict:
    """One row of the report: the claim beside ours, computed now (see :func:`reproduction_report`)."""
    ours = entry["ours"]
    kind = ours["kind"]
    if kind == "exact":
        text, agrees = check_exact(ours)
        status = "exact"
        provenance = (f"exact: computed from the model at report time (senet_core {package_version()}, torch "
                      f"{torch.__version__}; MACs counted by torch FlopCounterMode)")
    elif kind == "arithmetic":
        text, agrees = check_arithmetic(ours)
        status, provenance = "arithmetic", "arithmetic on the paper's printed numbers, evaluated at report time"
    elif kind == "reduced_scale":
        status, text, agrees, provenance = _reduced_scale(ours, results_dir, profile)
    elif kind == "measured_elsewhere":
        chapter = ours["chapter"]
        status = f"measured in chapter {_chapter_number(chapter)}"
        text = f"{ours.get('what', 'timing')}: chapter {_chapter_number(chapter)}"
        agrees, provenance = "n/a", "measured on the reader's hardware when that chapter runs"
    elif kind == "not_run":
        status, text, agrees, provenance = "not run here", ours["reason"], "n/a", "paper only"
    else:
        raise ValueError(f"claim {entry['id']}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    if kind not in ("not_run", "reduced_scale") or status == "measured at reduced scale":
        text = _with_note(text, ours)
    return {"#": entry["id"], "claim": entry["claim"], "paper": str(entry["paper"]), "status": status,
            "ours": text, "agrees": agrees, "provenance": provenance}
