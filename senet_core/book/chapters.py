"""What a chapter of the book shows of an experiment, in one call.

A chapter notebook holds the narrative; the calls here find the records (the committed ones from the
repository, wherever the notebook runs), train what is missing, and display the paper beside ours
with the provenance and the outcome of every comparison, in the book's vocabulary
(:mod:`senet_core.study.stats`). Where the records live is decided here, once:

* the committed profiles (``cpu`` and the pilot's) are read from ``results/`` at the repository root,
  and never retrained when their records exist;
* every other profile (``smoke``, ``gpu``) writes to ``_build/results`` and ``_build/runs`` there.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from ..engine.runtime import repo_root as root   # the repository's root: one rule, kept with the engine
from ..study import reference
from ..study.comparisons import Decision, conclusions, decisions, effects, experiment_table, gain_text
from ..study.experiments import run_experiment
from ..study.pilot import pilot_provenance, pilot_table
from ..study.results import load_records, provenance_label
from ..study.role_of_se import observations
from ..study.spec import experiment, profile
from ..study.stats import OUTCOMES
from .charts import plot_excitation_spread, plot_excitations

COMMITTED = "results"                    # the committed records, relative to the repository root
SCRATCH = "_build"                       # everything else a chapter makes (not committed)
SMOKE_WARNING = ("smoke profile: tiny data and one epoch, a check that the code runs; these numbers are not "
                 "results")


def is_committed(profile_name: str) -> bool:
    """Whether ``profile_name``'s records are committed with the book (the study and the pilot)."""
    return profile_name == "cpu" or profile_name.startswith("pilot_")


def results_dir(profile_name: str = "cpu") -> Path:
    """Where ``profile_name``'s records are read and written."""
    return root() / (COMMITTED if is_committed(profile_name) else Path(SCRATCH) / "results")


def runs_dir(profile_name: str = "cpu") -> Path:
    """Where ``profile_name``'s run folders (checkpoints, metrics; never committed) go."""
    return root() / ("runs/experiments" if is_committed(profile_name) else Path(SCRATCH) / "runs")


def records_of(name: str, profile_name: str = "cpu", *, device: str = "auto", seeds: list[int] | None = None,
               epochs: int | None = None, data_dir: str | None = None, results: str | Path | None = None,
               runs: str | Path | None = None, download: bool = False) -> list[dict]:
    """The records of experiment ``name`` under ``profile_name``: the committed ones read back as they
    are, otherwise trained (what is missing; resumable; ``download`` fetches a missing dataset)."""
    return _records_and_folder(name, profile_name, device=device, seeds=seeds, epochs=epochs, data_dir=data_dir,
                               results=results, runs=runs, download=download)[0]


def _records_and_folder(name: str, profile_name: str, *, device: str = "auto", seeds: list[int] | None = None,
                        epochs: int | None = None, data_dir: str | None = None, results: str | Path | None = None,
                        runs: str | Path | None = None, download: bool = False) -> tuple[list[dict], Path]:
    """:func:`records_of`'s records, and the folder they are in. A reader's own runs (other seeds or
    epochs than the profile's) go to ``_build/``, never beside the committed records."""
    own = seeds is not None or epochs is not None
    scratch = root() / SCRATCH
    results = Path(results) if results is not None else (scratch / "results" if own else results_dir(profile_name))
    runs = Path(runs) if runs is not None else (scratch / "runs" if own else runs_dir(profile_name))
    committed = load_records(results, profile_name, name) if is_committed(profile_name) and not own else []
    if committed:
        return committed, results
    run_experiment(name, profile_name, results_dir=results, runs_dir=runs, device=device, seeds=seeds,
                   epochs=epochs, data_dir=data_dir, download=download)
    return load_records(results, profile_name, name), results


def show_table(frame) -> None:
    """Display a DataFrame whose cells may hold several lines ("\\n"), each on its own line."""
    from IPython.display import HTML, display   # IPython: only where a notebook displays (the book's extra)

    def cell(value) -> str:
        return escape(str(value)).replace("\n", "<br>")

    head = "".join(f"<th>{cell(c)}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    body = "".join("<tr><th>" + cell(i) + "</th>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for i, row in zip(frame.index, frame.itertuples(index=False)))
    display(HTML(f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'))


def show_experiment(name: str, profile_name: str = "cpu", **kwargs) -> None:
    """Show experiment ``name`` as a chapter does: its table (paper beside ours, paired gains and
    outcomes), its effects if it declares any, the paper's conclusion beside ours, and where the
    numbers come from. Keyword arguments go to :func:`records_of`, which gives the records themselves.
    Returns nothing, so that a chapter's cell shows only what is displayed."""
    from IPython.display import Markdown, display   # IPython: only where a notebook displays (the book's extra)

    records, results = _records_and_folder(name, profile_name, **kwargs)
    exp = experiment(name)
    display(Markdown(f"**{exp.title}** ({_scale(profile_name)})"))
    display(narrow(experiment_table(name, results, profile_name)))
    if (changes := effects(name, records)).shape[0]:
        display(changes.set_index("effect").drop(columns=["from", "to"]))
    rule = profile(profile_name).study.get("max") if is_committed(profile_name) else None
    display(Markdown(f"*Paper:* {exp.conclusion}\n\n*Ours:* {findings(decisions(name, records), rule)}"))
    print(provenance_label(records))


def narrow(table):
    """An experiment table that fits the book's column: error with its spread and seeds in one cell,
    the gains and the outcome; complexity stays where it is asked for (chapter 3)."""
    table = table.copy()
    if "n" in table:
        table["ours err (%)"] = [f"{e} (n={n})" if n != "" else e for e, n in zip(table["ours err (%)"], table["n"])]
    return table.drop(columns=[c for c in ("n", "params (M)", "MFLOPs") if c in table])


def findings(made: list[Decision], max_seeds: int | None = None) -> str:
    """What a set of decided comparisons says, in the book's words: one clause per outcome, each
    comparison with its paired gain (points, 95 % interval) and seeds. Generated, never typed in.
    With ``max_seeds`` (the study's rule), an inconclusive comparison with fewer seeds says that the
    study has not finished it."""
    if not made:
        return "no comparison has paired seeds yet."
    seen, parts = set(), []
    for outcome in OUTCOMES:
        same = []
        for d in made:
            if d.outcome == outcome and d.runs not in seen:
                seen.add(d.runs)
                n = d.comparison.n
                open_ = outcome == "inconclusive" and max_seeds is not None and n < max_seeds
                same.append(f"{d.row} vs {d.baseline} {gain_text(d.comparison)} (n={n}"
                            + (f"; the study's rule asks for more seeds, up to {max_seeds})" if open_ else ")"))
        if same:
            parts.append(f"*{outcome}*: " + "; ".join(same))
    return ". ".join(parts) + "."


def show_pilot() -> None:
    """The training-regime pilot's committed summary (:func:`senet_core.study.pilot.pilot_table`) and its
    provenance, or one line saying where it was looked for."""
    from IPython.display import display   # IPython: only where a notebook displays (the book's extra)

    where = results_dir("cpu")
    try:
        display(pilot_table(where))
    except FileNotFoundError:
        print(f"No committed pilot summary under {where}: it comes with the book's repository "
              f"(`senet pilot` trains the pilot and writes it).")
        return
    print(pilot_provenance(where))


def show_conclusions(names: list[str], profile_name: str = "cpu") -> None:
    """Show every distinct comparison of experiments ``names`` under ``profile_name``, counted once,
    with its outcome (:func:`senet_core.study.experiments.conclusions` gives the table) and the provenance."""
    from IPython.display import display   # IPython: only where a notebook displays (the book's extra)

    table = conclusions(results_dir(profile_name), profile_name, names)
    if not len(table):
        print(f"No {profile_name}-profile records of these experiments under {results_dir(profile_name)}.")
        return
    display(table.set_index("comparison"))
    print(provenance_label([r for n in names for r in load_records(results_dir(profile_name), profile_name, n)]))


def _scale(profile_name: str) -> str:
    if profile_name == "smoke":
        return SMOKE_WARNING
    return f"reduced scale, {profile_name} profile; gains in points, paired over seeds, with the 95 % interval"


def show_excitations(profile_name: str = "cpu", device: str = "auto", data_dir: str | None = None,
                     download: bool = False):
    """Figs. 6-7 and Section 7.2's observations for the reference model of ``profile_name`` (Table 16's
    SE row, seed 0): the committed record read back, or measured (and, for a committed profile,
    written) from the trained model. Returns the record."""
    from IPython.display import display   # IPython: only where a notebook displays (the book's extra)

    stats, classes, names, summary, record = reference.excitations(
        profile_name, results_dir(profile_name), runs_dir(profile_name), device, data_dir,
        write=is_committed(profile_name), download=download)
    blocks, scale = list(stats), _scale(profile_name).split(";")[0]
    first, last = list(classes)[0], list(classes)[-1]
    display(plot_excitations(stats, classes, blocks, channels=50, names=names,
                             title=f"Fig. 6: excitations per class at several depths ({scale})"))
    display(plot_excitation_spread(stats, {first: classes[first], last: classes[last]}, blocks, channels=50,
                                   names=names, title=f"Fig. 7: mean and std within a class ({scale})"))
    display(summary.round(3))
    print("\n".join("- " + line for line in observations(summary)))
    if record["provenance"].get("profile"):
        print(provenance_label([{"provenance": record["provenance"], "seed": record["seed"]}]))
    return record
