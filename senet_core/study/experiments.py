"""The paper's training experiments as reduced-scale miniatures (Sections 5-6), defined in ``experiments.yaml``.

:func:`run_experiment` trains every row of an experiment for every seed of a profile and writes one
JSON record per (row, seed) with its provenance. It is resumable: a record whose settings match is
kept, an interrupted run continues from its checkpoint, and rows with identical settings in different
tables (the ablation baseline, the reference SE model) share one training run.
"""
from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
import yaml

from ..complexity import complexity
from ..engine.data import dataset_info
from ..models import create_model
from ..names import lookup
from ..paper import paper_row
from ..engine.recipes import Recipe, recipe
from .results import load_records, read_record, write_record
from ..se import SEConfig
from .stats import OUTCOMES, Comparison, correlation, expected_direction, holm, outcome, paired
from ..engine.runtime import CHECKPOINT, CONFIG, METRICS, RunLockedError, git_commit, git_dirty
from ..engine.train import TrainConfig, train


@dataclass(frozen=True)
class Row:
    """One row of an experiment: a network with its options, and the paper row it stands for."""

    label: str
    model: str
    options: dict = field(default_factory=dict, hash=False)
    baseline: str | None = None          # label of the row it is compared with
    recipe: dict = field(default_factory=dict, hash=False)   # recipe fields this row sets (after the protocol)
    paper_table: int = 0
    paper_key: str = ""
    paper_value: str | None = None
    paper_column: str = "top1_err"

    def paper_number(self) -> float | None:
        """The paper's top-1 error for this row, or None if the paper has no such row."""
        if self.paper_value is None:
            return None
        cell = paper_row(self.paper_table, self.paper_key, self.paper_value)[self.paper_column]
        return float(cell) if cell else None


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    paper_table: int
    conclusion: str
    ablation: bool
    rows: tuple[Row, ...]
    image_size: int | None = None        # overrides the profile's (e.g. networks that need 28x28)
    study_seeds: int | None = None       # the study's seeds for every comparison (default: the profile's rule)

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        raise ValueError(f"{self.name} has no row {label!r}; rows: {', '.join(r.label for r in self.rows)}")


@dataclass(frozen=True)
class Profile:
    """The scale of a run: which data, how much of it, how long, how many seeds."""

    name: str
    dataset: str
    epochs: int
    batch_size: int
    limit_train: int | None
    limit_val: int | None
    seeds: tuple[int, ...]
    image_size: int | None = None        # small datasets downsampled to this side; None: native
    recipe: dict = field(default_factory=dict, hash=False)   # recipe fields this profile sets for every row
    engine: str = "eager"                # how its runs execute (experiments.yaml's engines)
    jobs: int = 1                        # runs trained at a time, each in its own process
    study: dict = field(default_factory=dict, hash=False)    # seeds per comparison for `--study`


@lru_cache(maxsize=None)
def _spec() -> dict:
    return yaml.safe_load((resources.files("senet_core.study") / "experiments.yaml").read_text(encoding="utf-8"))


def list_experiments() -> list[str]:
    return sorted(_spec()["experiments"])


def experiment(name: str) -> Experiment:
    e = lookup("experiment", name, _spec()["experiments"])
    rows = tuple(Row(label=r["label"], model=r["model"], options=dict(r.get("options", {})),
                     baseline=r.get("baseline"), recipe=dict(r.get("recipe", {})),
                     paper_table=r.get("paper_table", e["paper_table"]), paper_key=r.get("paper_key", e["key"]), paper_value=r.get("paper_value"),
                     paper_column=r.get("paper_column", "top1_err")) for r in e["rows"])
    return Experiment(name, e["title"], e["paper_table"], e["conclusion"], bool(e.get("ablation")), rows,
                      e.get("image_size"), e.get("study_seeds"))


def list_engines() -> list[str]:
    return sorted(_spec()["engines"])


def engine(name: str) -> dict:
    """How a run executes: ``channels_last`` and ``compile``, the TrainConfig fields of that name."""
    return dict(lookup("engine", name, _spec()["engines"]))


def profile_names(pilot: bool = False) -> tuple[str, ...]:
    """The profiles of experiments.yaml, in its order: the study's (smoke, cpu, gpu) or the pilot's."""
    return tuple(name for name in _spec()["profiles"] if name.startswith("pilot_") == pilot)


def profile(name: str, engine_name: str | None = None) -> Profile:
    """A profile of experiments.yaml; ``engine_name`` replaces the engine it runs with."""
    p = lookup("profile", name, _spec()["profiles"])
    chosen = engine_name or p.get("engine", "eager")
    engine(chosen)                       # an unknown name fails here, with the known ones
    return Profile(name, p["dataset"], p["epochs"], p["batch_size"], p["limit_train"], p["limit_val"],
                   tuple(p["seeds"]), p.get("image_size"), dict(p.get("recipe", {})), chosen, p.get("jobs", 1),
                   dict(p.get("study", {})))


def row_recipe(exp: Experiment, row: Row, prof: Profile) -> tuple[Recipe, dict]:
    """The recipe and model options of one row under one profile (same for every row of an experiment)."""
    spec = _spec()
    base = recipe(spec["base_recipe"])
    overrides = {**prof.recipe, **(spec["ablation_protocol"]["recipe"] if exp.ablation else {}), **row.recipe}
    chosen = base.with_overrides(dataset=prof.dataset, model=row.model, epochs=prof.epochs,
                                 batch_size=prof.batch_size, image_size=exp.image_size or prof.image_size,
                                 **overrides)
    options = dict(row.options)
    if exp.ablation and row.model.startswith("se_"):
        options = {**ablation_protocol_options(), **options}
    if "se_stages" in options:
        options["se_stages"] = tuple(options["se_stages"])
    return chosen, options


def fingerprint(chosen: Recipe, options: dict, prof: Profile) -> str:
    """A short hash of everything that decides a run's result except the seed."""
    settings = {k: v for k, v in chosen.__dict__.items() if k not in ("paper", "ours", "explicit", "name", "summary")}
    settings = {**settings, "lr_milestones": list(chosen.lr_milestones), "options": SEConfig.without_defaults(options),
                "limit_train": prof.limit_train, "limit_val": prof.limit_val,
                # Runs since the paired initialisation (train.py): each layer's weights keyed by
                # (seed, its name). Runs before it drew from one stream and pair less.
                "init": "keyed by seed and layer name"}
    text = json.dumps(settings, sort_keys=True, default=list)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def record_path(results_dir: str | Path, profile_name: str, experiment_name: str, label: str, seed: int) -> Path:
    return Path(results_dir) / profile_name / experiment_name / f"{slug(label)}__seed{seed}.json"


def run_name(fp: str, seed: int) -> str:
    """A run's name (its folder's, and the ledger's): its settings' fingerprint and its seed."""
    return f"{fp}-seed{seed}"


def record_name(experiment_name: str, label: str, seed: int) -> str:
    """How the ledger names one record: experiment/row/seed."""
    return f"{experiment_name}/{label}/seed {seed}"


def paper_gain(exp: Experiment, label: str, baseline: str) -> float | None:
    """The paper's gain of row ``label`` over row ``baseline`` (baseline error minus row error, top-1
    points), or None where the paper prints no number for either."""
    paper, paper_base = exp.row(label).paper_number(), exp.row(baseline).paper_number()
    return None if paper is None or paper_base is None else round(paper_base - paper, 2)


def run_dir_of(exp: Experiment, row: Row, prof: Profile, seed: int, runs_dir: str | Path = "runs/experiments") -> Path:
    """The run folder of one row and seed: rows with the same settings in any table share it."""
    return Path(runs_dir) / prof.name / run_name(fingerprint(*row_recipe(exp, row, prof), prof), seed)


def train_row(exp: Experiment, row: Row, prof: Profile, seed: int, runs_dir: str | Path = "runs/experiments",
              device: str = "auto", data_dir: str | None = None, download: bool = False) -> tuple[list[dict], Path]:
    """Train one row for one seed in its run folder (continuing it if it was interrupted, or just
    reading it back if it finished); return its per-epoch metrics and the folder. ``download``
    fetches a missing dataset (:func:`senet_core.engine.data.build_loaders`); like ``data_dir`` it is not
    part of the run's identity."""
    chosen, options = row_recipe(exp, row, prof)
    run_dir = run_dir_of(exp, row, prof, seed, runs_dir)
    while True:
        try:
            metrics = train(TrainConfig(recipe=chosen, out=str(run_dir), data_dir=data_dir, model_options=options,
                                        seed=seed, limit_train=prof.limit_train, limit_val=prof.limit_val,
                                        device=device, resume=(run_dir / CHECKPOINT).exists(), progress=False,
                                        download=download, **engine(prof.engine)))
            return metrics, run_dir
        except RunLockedError:
            # Another process (another chapter, another `senet experiments`) is training this very
            # run: wait for it, then read the finished run back (or continue it, if it stopped).
            time.sleep(LOCK_POLL_SECONDS)


def run_experiment(name: str, profile_name: str = "smoke", results_dir: str | Path = "results",
                   runs_dir: str | Path = "runs/experiments", device: str = "auto", seeds: list[int] | None = None,
                   epochs: int | None = None, data_dir: str | None = None, progress: bool = False,
                   engine_name: str | None = None, jobs: int | None = None, download: bool = False) -> list[dict]:
    """Train every row of experiment ``name`` for every seed of the profile; return the records.

    ``seeds``, ``epochs`` and ``engine_name`` override the profile's (a record remembers its epochs:
    records of another length are not reused; it also names its engine, which does not decide
    whether it is reused). ``jobs``: see :func:`run_experiments`. ``download``: fetch a missing
    dataset with torchvision (into ``data_dir``, default :func:`senet_core.engine.data.default_data_dir`);
    neither it nor ``data_dir`` changes a run's identity (:func:`fingerprint`).
    """
    return run_experiments([name], profile_name, results_dir, runs_dir, device, seeds, epochs, data_dir,
                           progress, engine_name, jobs, download=download)[name]


@dataclass(frozen=True)
class _Task:
    """One (row, seed) of one experiment, and the run folder that trains it."""
    exp: Experiment
    row: Row
    seed: int
    run_dir: Path


def run_experiments(names: list[str], profile_name: str = "smoke", results_dir: str | Path = "results",
                    runs_dir: str | Path = "runs/experiments", device: str = "auto",
                    seeds: list[int] | None = None, epochs: int | None = None, data_dir: str | None = None,
                    progress: bool = False, engine_name: str | None = None,
                    jobs: int | None = None, download: bool = False) -> dict[str, list[dict]]:
    """:func:`run_experiment` for several experiments at once; returns their records by name.

    Runs shared by rows of several tables train once. ``jobs`` (default: the profile's) > 1 trains
    that many runs at a time, each in its own process with ``cpu_count // jobs`` threads: on a small
    CPU two one-thread runs get through more images per second than one two-thread run
    (benchmarks/RESULTS.md), and each run computes what it would alone, to float rounding (its
    threads are in its provenance). A record is written as soon as its run finishes, so an
    interrupted study keeps every finished run.
    """
    prof = _profile_for(profile_name, engine_name, epochs)
    chosen = list(seeds if seeds is not None else prof.seeds)
    wanted = {name: {row.label: chosen for row in experiment(name).rows} for name in names}
    return _train(wanted, prof, results_dir, runs_dir, device, data_dir, progress, jobs, download)


def run_until_decided(names: list[str], profile_name: str, halfwidth: float, max_seeds: int,
                      results_dir: str | Path = "results", runs_dir: str | Path = "runs/experiments",
                      device: str = "auto", data_dir: str | None = None, progress: bool = False,
                      engine_name: str | None = None, jobs: int | None = None,
                      min_seeds: int | None = None, download: bool = False) -> dict[str, list[dict]]:
    """Add seeds to each comparison (a row against its baseline) until its 95 % paired interval is
    narrower than +/- ``halfwidth`` points or it has ``max_seeds`` seeds.

    Every row starts with ``min_seeds`` seeds (default: the profile's); each round gives every
    undecided comparison the next seed, for its row and its baseline alike (a pair needs both), and
    trains what is missing. Resumable: the state is the records, so a rerun continues where an
    interrupted one stopped.
    """
    if not halfwidth > 0:
        raise ValueError(f"halfwidth must be positive, got {halfwidth!r}")
    if not isinstance(max_seeds, int) or max_seeds < 2:
        raise ValueError(f"max_seeds must be an integer of at least 2, got {max_seeds!r}")
    prof = _profile_for(profile_name, engine_name, None)
    first = len(prof.seeds) if min_seeds is None else min_seeds

    def wants_more(exp: Experiment, row: Row, errors: dict[str, dict[int, float]], records: list[dict]) -> bool:
        # One seed has an infinite half-width: it always asks for a second.
        return (len(errors[row.label]) < max_seeds
                and paired(errors[row.baseline], errors[row.label]).halfwidth >= halfwidth)

    return _grow(names, prof, {name: first for name in names}, wants_more, results_dir, runs_dir, device,
                 data_dir, progress, jobs, download)


def ablation_protocol_options() -> dict:
    """The SE block options of the ablation protocol (experiments.yaml: ablation_protocol)."""
    return dict(_spec()["ablation_protocol"]["options"])


def is_se_vs_baseline(exp: Experiment, row: Row) -> bool:
    """Whether ``row`` is an SE network against its own baseline under its table's protocol (the
    paper's headline comparison), rather than a variant of the block: its model is the baseline's
    with SE, and it sets no block option of its own beyond the table's protocol."""
    if row.baseline is None:
        return False
    base = exp.row(row.baseline)
    protocol = ablation_protocol_options() if exp.ablation else {}
    own = {k: v for k, v in row.options.items() if protocol.get(k, object()) != v}
    return row.model == f"se_{base.model}" and not SEConfig.without_defaults(own)


def study_seeds(exp: Experiment, row: Row, prof: Profile) -> int:
    """The seeds the study gives ``row``'s comparison before the data may ask for more."""
    if not prof.study:
        raise ValueError(f"profile {prof.name!r} has no study rule (experiments.yaml: study)")
    if exp.study_seeds is not None:
        return exp.study_seeds
    return prof.study["se_vs_baseline" if is_se_vs_baseline(exp, row) else "other"]


def study_wants_more(exp: Experiment, row: Row, prof: Profile, errors: dict[str, dict[int, float]],
                     p_adjusted: float | None = None) -> bool:
    """The study's rule for one comparison: its seeds (:func:`study_seeds`) first; then more, up to
    the profile's ``max``, while the comparison is *inconclusive* as its table decides it (``p_adjusted``:
    its Holm-adjusted p-value there, see :func:`decisions`), i.e. while the data can say neither
    that the effect exists in either direction nor that it is smaller than the paper's."""
    n = len(set(errors.get(row.label, {})) & set(errors.get(row.baseline, {})))
    if n < study_seeds(exp, row, prof):
        return True
    if n >= prof.study["max"]:
        return False
    comparison = paired(errors[row.baseline], errors[row.label])
    if comparison.ci is None:
        return True
    gain = paper_gain(exp, row.label, row.baseline)
    return outcome(comparison, expected_direction(gain), gain and abs(gain), p_adjusted) == "inconclusive"


def run_study(names: list[str], profile_name: str = "cpu", results_dir: str | Path = "results",
              runs_dir: str | Path = "runs/experiments", device: str = "auto", data_dir: str | None = None,
              progress: bool = False, engine_name: str | None = None,
              jobs: int | None = None, download: bool = False) -> dict[str, list[dict]]:
    """Train experiments ``names`` under the profile's study rule (:func:`study_wants_more`), adding
    paired seeds round by round; resumable like :func:`run_until_decided`."""
    prof = _profile_for(profile_name, engine_name, None)
    first = {name: min(study_seeds(experiment(name), row, prof) for row in experiment(name).rows
                       if row.baseline is not None) for name in names}

    def wants_more(exp: Experiment, row: Row, errors: dict[str, dict[int, float]], records: list[dict]) -> bool:
        adjusted = {d.row: d.p_adjusted for d in decisions(exp.name, records)}
        return study_wants_more(exp, row, prof, errors, adjusted.get(row.label))

    return _grow(names, prof, first, wants_more, results_dir, runs_dir, device, data_dir, progress, jobs, download)


def _grow(names: list[str], prof: Profile, first: dict[str, int], wants_more, results_dir, runs_dir, device,
          data_dir, progress: bool, jobs: int | None, download: bool = False) -> dict[str, list[dict]]:
    """Rounds of training: every row of experiment ``name`` starts with seeds ``range(first[name])``;
    after each round every comparison for which ``wants_more(exp, row, errors, records)`` gets the next seed,
    for its row and its baseline alike (a pair needs both)."""
    wanted = {name: {row.label: list(range(first[name])) for row in experiment(name).rows} for name in names}
    while True:
        records = _train(wanted, prof, results_dir, runs_dir, device, data_dir, progress, jobs, download)
        grown = False
        for name in names:
            exp, errors = experiment(name), _errors_by_row(records[name])
            for row in exp.rows:
                if row.baseline is None or not wants_more(exp, row, errors, records[name]):
                    continue
                have = wanted[name][row.label]
                # The row's first missing seed: the baseline may have it already (it pairs with
                # every row of its table), else it gets it too.
                following = next(s for s in itertools.count() if s not in have)
                for label in (row.label, row.baseline):
                    if following not in wanted[name][label]:
                        wanted[name][label] = wanted[name][label] + [following]
                grown = True
        if not grown:
            return records


def _profile_for(profile_name: str, engine_name: str | None, epochs: int | None) -> Profile:
    prof = profile(profile_name, engine_name)
    return prof if epochs is None else replace(prof, epochs=epochs)


def _train(wanted: dict[str, dict[str, list[int]]], prof: Profile, results_dir, runs_dir, device, data_dir,
           progress: bool, jobs: int | None, download: bool = False) -> dict[str, list[dict]]:
    """Train (or read back) the seeds ``wanted[experiment][row label]`` under ``prof``; the records."""
    jobs = prof.jobs if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    records: dict[str, dict[tuple[str, int], dict]] = {name: {} for name in wanted}
    pending: dict[Path, list[_Task]] = {}
    trained = _records_by_run(results_dir, prof.name)
    for name, rows in wanted.items():
        exp = experiment(name)
        for row in exp.rows:
            fp = fingerprint(*row_recipe(exp, row, prof), prof)
            for seed in rows.get(row.label, ()):
                path = record_path(results_dir, prof.name, name, row.label, seed)
                if path.exists():
                    kept = read_record(path)
                    if kept.get("fingerprint") == fp:
                        records[name][(row.label, seed)] = kept
                        continue
                if (fp, seed) in trained:
                    # The same run already recorded for another table's row: this row points to it,
                    # with its provenance (the run folder need not exist any more).
                    record = {**trained[(fp, seed)], "experiment": name, "row": row.label}
                    write_record(path, record)
                    records[name][(row.label, seed)] = record
                    ledger(results_dir, prof.name, "reused", run=run_name(fp, seed),
                           rows=[record_name(name, row.label, seed)])
                    continue
                task = _Task(exp, row, seed, run_dir_of(exp, row, prof, seed, runs_dir))
                pending.setdefault(task.run_dir, []).append(task)

    def finished(tasks: list[_Task], metrics: list[dict]) -> None:
        for task in tasks:
            record = _record(task, prof, metrics)
            write_record(record_path(results_dir, prof.name, task.exp.name, task.row.label, task.seed), record)
            records[task.exp.name][(task.row.label, task.seed)] = record
        ledger(results_dir, prof.name, "finished", tasks)

    if jobs == 1 or len(pending) < 2:
        for tasks in pending.values():
            finished(tasks, _run_tasks(tasks, prof, results_dir, runs_dir, device, data_dir, progress, download))
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=torch.set_num_threads,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(_run_tasks, tasks, prof, results_dir, runs_dir, device, data_dir, progress,
                                   download): tasks for tasks in pending.values()}
            try:
                for future in as_completed(futures):
                    finished(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    # Records in the order of the experiments' rows, then seeds.
    return {name: [records[name][key] for key in sorted(records[name], key=lambda k: (
        [r.label for r in experiment(name).rows].index(k[0]), k[1]))] for name in wanted}


def _run_tasks(tasks: list[_Task], prof: Profile, results_dir, runs_dir, device, data_dir,
               progress: bool, download: bool = False) -> list[dict]:
    """Train (or continue, or read back) the one run that ``tasks`` share; its metrics. The ledger
    says so when it actually begins: in the process that trains it."""
    first = tasks[0]
    metrics = first.run_dir / METRICS
    done = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    event = "started" if not (first.run_dir / CHECKPOINT).exists() else \
        "reused" if done >= prof.epochs else "resumed"
    ledger(results_dir, prof.name, event, tasks)
    if progress:
        print(f"{first.exp.name}: {first.row.label}, seed {first.seed} ({prof.name} profile)", flush=True)
    return train_row(first.exp, first.row, prof, first.seed, runs_dir, device, data_dir, download)[0]


def _records_by_run(results_dir: str | Path, profile_name: str) -> dict[tuple[str, int], dict]:
    """Every record of a profile, by the run that made it: (fingerprint, seed)."""
    return {(r["fingerprint"], r["seed"]): r for r in load_records(results_dir, profile_name)
            if "fingerprint" in r}


LEDGER = "LEDGER.jsonl"
LOCK_POLL_SECONDS = 2.0
LEDGER_EVENTS = ("started", "resumed", "reused", "finished", "discarded")


def ledger(results_dir: str | Path, profile_name: str, event: str, tasks: list[_Task] | None = None,
           reason: str | None = None, run: str | None = None, rows: list[str] | None = None,
           trained: dict | None = None) -> None:
    """Append one line to ``results_dir/<profile>/LEDGER.jsonl``, the list of every run started for
    a profile's results. Written as runs go: ``started``, ``resumed`` (an interrupted run continues),
    ``reused`` (a finished run gives a record to another table's row: the same run) and
    ``finished``; ``discarded`` (with its reason) is said by whoever throws a run away. ``rows``
    names the records concerned where there are no tasks; ``trained`` the commit and date of a
    discarded run (the line's own commit and date are those of the event)."""
    if event not in LEDGER_EVENTS:
        raise ValueError(f"event={event!r} is not one of {', '.join(LEDGER_EVENTS)}")
    if event == "discarded" and not reason:
        raise ValueError("a discarded run needs its reason")
    line = {"event": event, "run": run or (tasks[0].run_dir.name if tasks else None),
            "rows": rows if rows is not None else [record_name(t.exp.name, t.row.label, t.seed) for t in tasks or ()],
            "commit": git_commit(), "dirty": git_dirty(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if reason:
        line["reason"] = reason
    if trained:
        line["trained"] = trained
    path = Path(results_dir) / profile_name / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")


def discard_stale(name: str, profile_name: str, reason: str, results_dir: str | Path = "results") -> list[Path]:
    """Remove the records of experiment ``name`` whose run no longer is its row's run under the
    profile (another fingerprint: the protocol or the regime changed), each listed in the ledger as
    discarded with ``reason`` and the commit and date it was trained at. Returns the removed paths."""
    if not reason or not reason.strip():
        raise ValueError("discarding records needs a reason")
    exp, prof = experiment(name), profile(profile_name)
    current = {row.label: fingerprint(*row_recipe(exp, row, prof), prof) for row in exp.rows}
    removed = []
    for path in sorted((Path(results_dir) / prof.name / name).glob("*.json")):
        record = read_record(path)
        if current.get(record.get("row")) == record.get("fingerprint"):
            continue
        made = record.get("provenance", {})
        ledger(results_dir, prof.name, "discarded", reason=reason,
               run=run_name(record.get("fingerprint"), record.get("seed")),
               rows=[record_name(name, record.get("row"), record.get("seed"))],
               trained={"commit": made.get("commit"), "date": made.get("date")})
        path.unlink()
        removed.append(path)
    return removed


def _record(task: _Task, prof: Profile, metrics: list[dict]) -> dict:
    """The JSON record of one finished run, from its metrics and its run folder's config.json."""
    exp, row = task.exp, task.row
    chosen, options = row_recipe(exp, row, prof)
    info = dataset_info(prof.dataset)
    run = json.loads((task.run_dir / CONFIG).read_text())
    side = chosen.image_size or info.input_size
    size = (info.in_chans, side, side)
    cost = complexity(create_model(row.model, num_classes=info.num_classes, in_chans=info.in_chans, **options),
                      size)
    last = metrics[-1]
    return {
        "experiment": exp.name, "row": row.label, "model": row.model,
        "fingerprint": fingerprint(chosen, options, prof), "seed": task.seed,
        "config": {**run["recipe"], "model_options": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in options.items()},
                   "limit_train": prof.limit_train, "limit_val": prof.limit_val},
        "metrics": {"top1_err": last["val_top1_err"], "top5_err": last["val_top5_err"],
                    "train_loss": last["train_loss"],
                    "curve": [{k: m[k] for k in ("epoch", "train_loss", "val_loss", "val_top1_err",
                                                  "val_top5_err")} for m in metrics]},
        "complexity": {"params": cost.params, "macs": cost.macs, "input_size": list(size)},
        "provenance": {"profile": prof.name, "dataset": prof.dataset, "epochs": prof.epochs,
                       "image_size": side,
                       "train_images": run["train_images"], "val_images": run["val_images"],
                       "engine": {"name": prof.engine, "channels_last": run["channels_last"],
                                  "compile": run["compile"]},
                       "wall_seconds": round(sum(m["epoch_seconds"] + m.get("eval_seconds", 0.0)
                                                 for m in metrics), 1),
                       **run["provenance"],
                       **({"resumed": run["resumed"]} if run.get("resumed") else {})},
    }


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
    exp, errors = experiment(name), _errors_by_row(records)
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


def gain_text(cmp: Comparison) -> str:
    """A paired gain as the book prints it: mean and 95 % interval, in points."""
    return f"{cmp.mean:+.2f}" if cmp.ci is None else f"{cmp.mean:+.2f} [{cmp.ci[0]:+.2f}, {cmp.ci[1]:+.2f}]"


def experiment_table(name: str, results_dir: str | Path = "results", profile_name: str = "cpu"):
    """Paper beside ours for one experiment, from its records: a pandas DataFrame.

    Columns: the paper's top-1 error and ours (mean ± standard deviation over seeds, n seeds); the
    paper's gain over the row's baseline (baseline error minus row error, points) and ours, paired
    over seeds, with its 95 % interval; the outcome (:func:`decisions`); exact params and MFLOPs at
    our input size.
    """
    import pandas as pd

    from .results import mean_std

    exp = experiment(name)
    records = load_records(results_dir, profile_name, name)
    if not records:
        raise FileNotFoundError(f"no records of {name} under {Path(results_dir) / profile_name}: run "
                                f"`senet experiments --only {name} --profile {profile_name}` first")
    by_row = _errors_by_row(records)
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


def all_decisions(results_dir: str | Path = "results", profile_name: str = "cpu",
                  names: list[str] | None = None) -> list[Decision]:
    """The decisions of every experiment (or of ``names``) that has records under ``results_dir/profile_name``."""
    out = []
    for name in names or list_experiments():
        records = load_records(results_dir, profile_name, name)
        if records:
            out.extend(decisions(name, records))
    return out


def conclusions(results_dir: str | Path = "results", profile_name: str = "cpu", names: list[str] | None = None):
    """Every distinct comparison of the study (or of experiments ``names``), counted once, with its
    outcome (a pandas DataFrame).

    A comparison shown by several tables (SE vs no SE is in each ablation table) is one line naming
    them all; its outcome is the most cautious of its tables' (the largest Holm-adjusted p-value).
    Columns: tables, comparison, paper gain, ours gain [95 % CI], seeds, outcome, and pairing (the
    correlation of the two networks' errors over seeds: what pairing by seed removes from the noise).
    """
    import pandas as pd

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


def effects(name: str, records: list[dict]):
    """The effects an experiment declares (experiments.yaml: ``effects``), each the change in SE's
    gain from one comparison to another, paired over seeds: gain(``to``) - gain(``from``), where a
    row's gain is its baseline's error minus its own. A pandas DataFrame: effect, from, to, change
    [95 % CI], n, Holm-adjusted p over the experiment's effects."""
    import pandas as pd

    exp, errors = experiment(name), _errors_by_row(records)

    def gains(label: str) -> dict[int, float]:
        base = errors.get(exp.row(label).baseline, {})
        return {s: base[s] - e for s, e in errors.get(label, {}).items() if s in base}

    made = []
    for effect in _spec()["experiments"][name].get("effects", []):
        before, after = gains(effect["from"]), gains(effect["to"])
        if set(before) & set(after):
            made.append((effect, paired(after, before)))   # paired(a, b) is a - b: gain(to) - gain(from)
    adjusted = holm([cmp.p for _, cmp in made])
    return pd.DataFrame([{"effect": e["effect"], "from": e["from"], "to": e["to"], "change in SE's gain": gain_text(cmp),
                          "n": cmp.n, "p (Holm)": "" if p is None else f"{p:.3f}"}
                         for (e, cmp), p in zip(made, adjusted)],
                        columns=["effect", "from", "to", "change in SE's gain", "n", "p (Holm)"])


def outcome_counts(table) -> dict[str, int]:
    """How many distinct comparisons of :func:`conclusions` end in each outcome (all four named)."""
    return {o: int((table["outcome"] == o).sum()) for o in OUTCOMES}


def _errors_by_row(records: list[dict]) -> dict[str, dict[int, float]]:
    """Top-1 error of each row of an experiment's records, by seed."""
    errors: dict[str, dict[int, float]] = {}
    for r in records:
        errors.setdefault(r["row"], {})[r["seed"]] = r["metrics"]["top1_err"]
    return errors


