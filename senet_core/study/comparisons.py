"""The study's comparisons decided from its records, and the tables that show them (Sections 5-6).

A comparison is a row against its baseline over paired seeds, decided with
:mod:`senet_core.study.stats`: the paired t interval of the gain, Holm's correction over the distinct
comparisons of a table, and the paper's gain as the equivalence margin. :func:`experiment_table` sets
one experiment beside the paper, :func:`conclusions` counts every distinct comparison of the study
once, and :func:`effects` compares SE's gain between two comparisons of one experiment.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .records import errors_by_row
from .results import load_records, mean_std
from .spec import declared_effects, experiment, list_experiments, paper_gain
from .stats import OUTCOMES, Comparison, correlation, expected_direction, holm, outcome, paired


@dataclass(frozen=True)
class Decision:
    """One comparison of one experiment, decided: ``row`` against ``baseline`` over paired seeds.

    ``runs`` names the two networks by their run fingerprints (row, baseline): the same comparison
    shown by several tables has the same ``runs``. ``p_adjusted`` is Holm's adjustment over the
    distinct comparisons of the experiment; ``outcome`` is one of :data:`senet_core.study.stats.OUTCOMES`.
    """

    experiment: str
    row: str
    baseline: str
    runs: tuple[str, str]
    comparison: Comparison
    paper_gain: float | None
    expected: str
    p_adjusted: float | None
    outcome: str
    pairing: float | None = None         # correlation of the two networks' errors over the seeds


@dataclass(frozen=True)
class Pair:
    """A comparison to decide: ``row`` against ``baseline`` (row labels of one experiment).

    ``expect`` is the paper's direction for ``row`` (default: the sign of the paper's gain, see
    :func:`senet_core.study.stats.expected_direction`); ``margin`` the equivalence margin in points
    (default: the paper's gain, its size)."""

    row: str
    baseline: str
    expect: str | None = None
    margin: float | None = None


def decisions(name: str, records: list[dict], pairs: list[Pair] | None = None) -> list[Decision]:
    """The comparisons ``pairs`` of experiment ``name`` (default: every row against its baseline)
    that its ``records`` can make, decided with :mod:`senet_core.study.stats`: paired t interval, Holm's
    correction over the distinct comparisons, the paper's gain as the equivalence margin."""
    exp, errors = experiment(name), errors_by_row(records)
    runs = {r["row"]: r["fingerprint"] for r in records}
    if pairs is None:
        pairs = [Pair(row.label, row.baseline) for row in exp.rows if row.baseline is not None]
    made = []
    for pair in pairs:
        row, base = errors.get(pair.row, {}), errors.get(pair.baseline, {})
        if not set(row) & set(base):
            continue
        made.append((pair, paired(base, row), paper_gain(exp, pair.row, pair.baseline), correlation(base, row)))
    # Holm over the distinct comparisons: rows that are the same run (r = 16 and SE) count once.
    distinct: dict[tuple[str, str], float | None] = {}
    for pair, cmp, _, _ in made:
        distinct.setdefault((runs[pair.row], runs[pair.baseline]), cmp.p)
    adjusted = dict(zip(distinct, holm(list(distinct.values()))))
    out = []
    for pair, cmp, gain, pairing in made:
        key = (runs[pair.row], runs[pair.baseline])
        expected = pair.expect or expected_direction(gain)
        margin = pair.margin if pair.margin is not None else gain and abs(gain)
        out.append(Decision(name, pair.row, pair.baseline, key, cmp, gain, expected, adjusted[key],
                            outcome(cmp, expected, margin, adjusted[key]), pairing))
    return out


def all_decisions(results_dir: str | Path = "results", profile_name: str = "cpu",
                  names: list[str] | None = None) -> list[Decision]:
    """The decisions of every experiment (or of ``names``) that has records under ``results_dir/profile_name``."""
    out = []
    for name in names or list_experiments():
        records = load_records(results_dir, profile_name, name)
        if records:
            out.extend(decisions(name, records))
    return out


def gain_text(cmp: Comparison) -> str:
    """A paired gain as the book prints it: mean and 95 % interval, in points."""
    return f"{cmp.mean:+.2f}" if cmp.ci is None else f"{cmp.mean:+.2f} [{cmp.ci[0]:+.2f}, {cmp.ci[1]:+.2f}]"


def experiment_table(name: str, results_dir: str | Path = "results", profile_name: str = "cpu") -> pd.DataFrame:
    """Paper beside ours for one experiment, from its records: a pandas DataFrame.

    Columns: the paper's top-1 error and ours (mean ± standard deviation over seeds, n seeds); the
    paper's gain over the row's baseline (baseline error minus row error, points) and ours, paired
    over seeds, with its 95 % interval; the outcome (:func:`decisions`); exact params and MFLOPs at
    our input size.
    """
    exp = experiment(name)
    records = load_records(results_dir, profile_name, name)
    if not records:
        raise FileNotFoundError(f"no records of {name} under {Path(results_dir) / profile_name}: run "
                                f"`senet experiments --only {name} --profile {profile_name}` first")
    by_row = errors_by_row(records)
    decided = {d.row: d for d in decisions(name, records)}
    cost = {r["row"]: r["complexity"] for r in records}
    lines = []
    for row in exp.rows:
        errors = by_row.get(row.label, {})
        line = {"row": row.label, "paper err (%)": row.paper_number()}
        if errors:
            mean, std = mean_std(list(errors.values()))
            spread = f" ± {std:.2f}" if len(errors) > 1 else ""
            line["ours err (%)"] = f"{mean:.2f}{spread}"
            line["n"] = len(errors)
        else:
            line["ours err (%)"] = "not run"
        if row.label in decided:
            d = decided[row.label]
            line["paper gain"] = "" if d.paper_gain is None else f"{d.paper_gain:+.2f}"
            line["ours gain [95 % CI]"] = gain_text(d.comparison)
            line["outcome"] = d.outcome
        if row.label in cost:
            line["params (M)"] = round(cost[row.label]["params"] / 1e6, 3)
            line["MFLOPs"] = round(cost[row.label]["macs"] / 1e6, 1)
        lines.append(line)
    return pd.DataFrame(lines).set_index("row").rename_axis(None).astype(object).fillna("")


def conclusions(results_dir: str | Path = "results", profile_name: str = "cpu",
                names: list[str] | None = None) -> pd.DataFrame:
    """Every distinct comparison of the study (or of experiments ``names``), counted once, with its
    outcome (a pandas DataFrame).

    A comparison shown by several tables (SE vs no SE is in each ablation table) is one line naming
    them all; its outcome is the most cautious of its tables' (the largest Holm-adjusted p-value).
    Columns: tables, comparison, paper gain, ours gain [95 % CI], seeds, outcome, and pairing (the
    correlation of the two networks' errors over seeds: what pairing by seed removes from the noise).
    """
    grouped: dict[tuple[str, str], list[Decision]] = {}
    for d in all_decisions(results_dir, profile_name, names):
        grouped.setdefault(d.runs, []).append(d)
    lines = []
    for same in grouped.values():
        first = same[0]
        judged = max(same, key=lambda d: -1.0 if d.p_adjusted is None else d.p_adjusted)
        tables = sorted({experiment(d.experiment).paper_table for d in same})
        labels = list(dict.fromkeys(d.row for d in same))
        lines.append({"tables": ", ".join(map(str, tables)),
                      "comparison": f"{' = '.join(labels)} vs {first.baseline}",
                      "paper gain": "" if first.paper_gain is None else f"{first.paper_gain:+.2f}",
                      "ours gain [95 % CI]": gain_text(first.comparison), "seeds": first.comparison.n,
                      "outcome": judged.outcome,
                      "pairing": "" if first.pairing is None else f"{first.pairing:+.2f}"})
    return pd.DataFrame(lines, columns=["tables", "comparison", "paper gain", "ours gain [95 % CI]", "seeds",
                                        "outcome", "pairing"])


def outcome_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many distinct comparisons of :func:`conclusions` end in each outcome (all four named)."""
    return {o: int((table["outcome"] == o).sum()) for o in OUTCOMES}


def effects(name: str, records: list[dict]) -> pd.DataFrame:
    """The effects an experiment declares (experiments.yaml: ``effects``), each the change in SE's
    gain from one comparison to another, paired over seeds: gain(``to``) - gain(``from``), where a
    row's gain is its baseline's error minus its own. A pandas DataFrame: effect, from, to, change
    [95 % CI], n, Holm-adjusted p over the experiment's effects."""
    exp, errors = experiment(name), errors_by_row(records)

    def gains(label: str) -> dict[int, float]:
        base = errors.get(exp.row(label).baseline, {})
        return {s: base[s] - e for s, e in errors.get(label, {}).items() if s in base}

    made = []
    for effect in declared_effects(name):
        before, after = gains(effect["from"]), gains(effect["to"])
        if set(before) & set(after):
            made.append((effect, paired(after, before)))   # paired(a, b) is a - b: gain(to) - gain(from)
    adjusted = holm([cmp.p for _, cmp in made])
    return pd.DataFrame([{"effect": e["effect"], "from": e["from"], "to": e["to"],
                          "change in SE's gain": gain_text(cmp), "n": cmp.n,
                          "p (Holm)": "" if p is None else f"{p:.3f}"}
                         for (e, cmp), p in zip(made, adjusted)],
                        columns=["effect", "from", "to", "change in SE's gain", "n", "p (Holm)"])
