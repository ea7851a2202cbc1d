"""The reproduction report: each checkable claim of the paper beside our check of it (``claims.yaml``).

:func:`reproduction_report` works out every "ours" value when it is called
(:func:`senet_core.study.claims.check_claim`); :func:`summary`, :func:`claims_table` and
:func:`headline` condense it for a page, and :func:`conclusion` writes the closing synthesis from its
rows: what agrees exactly, what held at reduced scale, what did not, and what this project cannot test.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..paper import format_table
from .claims import check_claim, claims
from .stats import OUTCOMES

AGREES = ("yes", "no (explained)", "no") + OUTCOMES + ("n/a",)


def reproduction_report(results_dir: str | Path = "results", profile: str = "cpu"):
    """Every claim of ``claims.yaml`` with the paper's number and ours, computed now: a pandas DataFrame.

    Columns: ``#``, ``claim``, ``paper``, ``status``, ``ours``, ``agrees`` (yes / no (explained) / no
    for exact and arithmetic claims, an outcome of :data:`senet_core.study.stats.OUTCOMES` for reduced-scale
    ones, n/a) and ``provenance``. Reduced-scale rows read the ``profile`` records under
    ``results_dir``; without them their status is "reduced scale: not run yet" and they show no number.
    """
    rows = [check_claim(entry, results_dir, profile) for entry in claims()]
    return pd.DataFrame(rows, columns=["#", "claim", "paper", "status", "ours", "agrees", "provenance"])


def markdown_table(table) -> str:
    """A DataFrame (the report, or its summary) as a Markdown table, with the project's one table helper."""

    frame = table if table.index.name is None else table.reset_index()
    rows = [[str(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    return format_table([str(c) for c in frame.columns], rows, markdown=True)


def claims_table(report):
    """The report narrow enough for a page: ``#``, claim, paper, ours, and whether ours agrees, with where
    it comes from (*exact*, *arithmetic*, a chapter, or a numbered note for measured records); returns
    ``(table, notes)``, the notes giving the provenance of each kind of source, measured ones numbered."""
    notes: list[str] = []
    agrees = []
    for status, agree, provenance in zip(report["status"], report["agrees"], report["provenance"]):
        if status == "measured at reduced scale":
            if provenance not in notes:
                notes.append(provenance)
            agrees.append(f"{agree} [{notes.index(provenance) + 1}]")
        elif status in ("exact", "arithmetic"):
            agrees.append(f"{agree}, {status}")
        elif status.startswith("measured in chapter"):
            agrees.append(status.removeprefix("measured in "))
        else:
            agrees.append({"not run here": "not run", "reduced scale: not run yet": "not run yet"}.get(status, status))
    table = report[["#", "claim", "paper", "ours"]].copy()
    table["agrees"] = agrees
    kinds = {status: provenance for status, provenance in zip(report["status"], report["provenance"])
             if status in ("exact", "arithmetic")}
    return table, [f"*{status}*: {provenance}" for status, provenance in sorted(kinds.items(), reverse=True)] + \
        [f"[{i}] {note}" for i, note in enumerate(notes, 1)]


def _status_order(statuses) -> list[str]:
    first = ["exact", "arithmetic", "measured at reduced scale", "reduced scale: not run yet"]
    rest = sorted(s for s in set(statuses) if s not in first and s != "not run here")
    last = ["not run here"] if "not run here" in set(statuses) else []
    return [s for s in first if s in set(statuses)] + rest + last


def summary(report):
    """Claims per status (rows) and agreement (columns), with totals."""
    table = pd.crosstab(report["status"], report["agrees"])
    table = table.reindex(index=_status_order(report["status"]),
                          columns=[a for a in AGREES if a in set(report["agrees"])], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.index.name, table.columns.name = "status", "agrees"
    return table


# What a claim we do not run would need, by its check type: (tag, said of one claim, said of several).
_NEEDS = (("TRAIN-COCO", "needs COCO detection training", "need COCO detection training"),
          ("TRAIN-IN", "needs ImageNet training or a trained ImageNet model",
           "need ImageNet training or a trained ImageNet model"),
          ("TRAIN-C", "needs CIFAR training", "need CIFAR training"),
          ("TRAIN-P", "needs Places365 training", "need Places365 training"),
          ("CITED", "is a number cited from other work", "are numbers cited from other work"),
          ("DATA", "is a dataset statistic (needs the dataset)", "are dataset statistics (need the dataset)"),
          ("NOT-REPRO", "is a test-server result of an unspecified ensemble",
           "are test-server results"))
_PROTOCOL = ("describes a protocol, not a result", "describe protocols, not results")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _ids(report, mask) -> str:
    ids = [str(i) for i in report.loc[mask, "#"]]
    return ", ".join(ids) if ids else "none"


# How the closing synthesis words each outcome of a training claim: (lead-in, what it means).
_OUTCOME_SAID = {
    "holds": ("Held at reduced scale", "the interval of SE's gain excludes 0 in the paper's direction"),
    "contradicted": ("Contradicted at reduced scale", "the interval excludes 0 the other way"),
    "equivalent": ("Within the paper's effect of 0",
                   "no gain as large as the paper's, or, for an 'about equal' claim, equal as the paper says"),
    "inconclusive": ("Not decided at reduced scale", "the interval is too wide to say either"),
}


def _claim_list(report, mask) -> list[str]:
    """A claim a line, in the paper's words, with its number and, where one stands in, our network."""
    notes = {e["id"]: e["ours"].get("note") for e in claims()}
    return [f"  * {claim.rstrip('.')} (claim {i}" + (f"; {notes[i]}" if notes.get(i) else "") + ")"
            for i, claim in zip(report.loc[mask, "#"], report.loc[mask, "claim"])]


def conclusion(report) -> str:
    """The report's closing synthesis (Markdown), written from its rows: what agrees exactly, what held
    at reduced scale, what did not, what could not be decided, and what this project cannot test."""
    entries = {e["id"]: e for e in claims()}
    status, agrees = report["status"], report["agrees"]
    lines = []
    exact, arithmetic = status == "exact", status == "arithmetic"
    if exact.any() or arithmetic.any():
        explained = _ids(report, exact & (agrees == "no (explained)"))
        unexplained = exact & (agrees == "no")
        lines.append(
            f"**The architectures are the paper's.** Of {_count(int(exact.sum()), 'claim', 'claims')} about "
            f"architecture and complexity, checked exactly on our models, "
            f"{int((exact & (agrees == 'yes')).sum())} agree within the project's tolerances"
            + (f"; the misses ({explained}) are networks whose sources do not give the paper's budget, and "
               f"chapter 3 says why" if explained != "none" else "")
            + (f"; {int(unexplained.sum())} disagree without explanation ({_ids(report, unexplained)})"
               if unexplained.any() else "; none disagrees without an explanation")
            + f". {int((arithmetic & (agrees == 'yes')).sum())} of {int(arithmetic.sum())} figures derived from "
              f"the paper's own numbers follow from them.")
    measured = status == "measured at reduced scale"
    if measured.any():
        lines.append(
            f"**Training, at reduced scale** ({_count(int(measured.sum()), 'claim', 'claims')}; Fashion-MNIST, "
            f"the direction and rough size of SE's effect, never the paper's ImageNet number):")
        for outcome in OUTCOMES:
            mask = measured & (agrees == outcome)
            if mask.any():
                lead, meaning = _OUTCOME_SAID[outcome]
                lines.append(f"* *{lead}* ({meaning}):\n" + "\n".join(_claim_list(report, mask)))
    waiting = status == "reduced scale: not run yet"
    if waiting.any():
        lines.append(
            f"**Not run yet** at reduced scale: claims {_ids(report, waiting)}. Their records are not in the "
            f"results folder (`senet experiments --profile cpu` writes them), so this report says nothing "
            f"about them.")
    timing = status.str.startswith("measured in chapter")
    if timing.any():
        lines.append(f"**Timing** (claims {_ids(report, timing)}) depends on the hardware: chapter 3 sets the "
                     f"measured ratio of SE-ResNet-50 to ResNet-50 beside the paper's.")
    not_run = report.loc[status == "not run here", "#"]
    if len(not_run):
        needs: dict[tuple[str, str], list[int]] = {}
        for i in not_run:
            check = str(entries[int(i)]["check"])
            why = next((tuple(n[1:]) for n in _NEEDS if check.startswith(n[0])), _PROTOCOL)
            needs.setdefault(why, []).append(int(i))
        parts = "; ".join(f"{_count(len(ids), one, many)} ({', '.join(map(str, ids))})"
                          for (one, many), ids in needs.items())
        lines.append(f"**What this project cannot test** ({len(not_run)} claims): {parts}. The paper's ImageNet, "
                     f"Places365 and COCO numbers, and the ensemble's test-set result, stay the paper's.")
    return "\n\n".join(lines)


def headline(report, outcomes=None):
    """The landing page's table (a DataFrame): each kind of claim, how it is checked, how many there
    are and what came out; ``outcomes`` (:func:`senet_core.study.comparisons.conclusions`) adds the distinct
    training comparisons by outcome."""
    status, agrees = report["status"], report["agrees"]

    def tally(mask, order) -> str:
        counts = agrees[mask].value_counts()
        said = {"yes": "agree", "holds": "hold", "no (explained)": "explained misses"}
        return ", ".join(f"{counts[a]} {said.get(a, a)}" for a in order if counts.get(a, 0))

    exact, arithmetic = status == "exact", status == "arithmetic"
    measured = status == "measured at reduced scale"
    timing = status.str.startswith("measured in chapter")
    not_run = status.isin(["not run here", "reduced scale: not run yet"])
    trained = tally(measured, OUTCOMES)
    if outcomes is not None and len(outcomes):
        per = (outcomes["outcome"].value_counts())
        trained += ("; of the " + str(len(outcomes)) + " distinct comparisons behind them: "
                    + ", ".join(f"{per[o]} {'hold' if o == 'holds' else o}" for o in OUTCOMES if per.get(o, 0)))
    rows = [
        ("Architecture and complexity", "exact: counted from our models", int(exact.sum()),
         tally(exact, ("yes", "no (explained)", "no"))),
        ("Arithmetic on the paper's numbers", "exact: computed from the printed numbers", int(arithmetic.sum()),
         tally(arithmetic, ("yes", "no"))),
        ("Training results", "measured at reduced scale: Fashion-MNIST, paired seeds", int(measured.sum()), trained),
        ("Timing", "measured: ratios on a CPU", int(timing.sum()), "chapter 3"),
        ("Needs the paper's data or compute", "not run here", int(not_run.sum()), "the paper's numbers stand"),
    ]
    return pd.DataFrame([r for r in rows if r[2]], columns=["claims", "checked", "n", "result"]).set_index("claims")
