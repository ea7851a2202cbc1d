"""Training the study (Sections 5-6): every row of the experiments of ``experiments.yaml`` for the
seeds of a profile, each finished run written as a record with its provenance.

:func:`run_experiment` trains every row of an experiment for every seed of a profile and writes one
JSON record per (row, seed) with its provenance. It is resumable: a record whose settings match is
kept, an interrupted run continues from its checkpoint, and rows with identical settings in different
tables (the ablation baseline, the reference SE model) share one training run. :func:`run_study` and
:func:`run_until_decided` add paired seeds until the comparisons are decided. Every run started,
resumed, reused or discarded is listed in the profile's ledger.
"""
from __future__ import annotations

import datetime
import itertools
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..engine.runtime import CHECKPOINT, RunLockedError, git_commit, git_dirty, read_metrics
from ..models.weights import load_file, load_state
from ..engine.train import TrainConfig, train
from ..progress import progress_bar, say
from .comparisons import decisions
from .records import build_record, errors_by_row, record_name, record_path, records_by_run, run_name
from .results import read_record, write_record
from .spec import (Experiment, Profile, Row, engine, experiment, fingerprint, paper_gain, profile, row_model,
                   row_recipe, study_seeds)
from .stats import expected_direction, outcome, paired

LEDGER = "LEDGER.jsonl"
LOCK_POLL_SECONDS = 2.0
LEDGER_EVENTS = ("started", "resumed", "reused", "finished", "discarded")


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


def trained_model(exp: Experiment, row: Row, prof: Profile, seed: int, runs_dir: str | Path = "runs/experiments",
                  device: str | torch.device = "cpu") -> nn.Module:
    """The network of one row trained for ``seed`` under ``prof``, read from its run folder's checkpoint
    onto ``device``, in eval mode."""
    model = row_model(exp, row, prof)
    path = run_dir_of(exp, row, prof, seed, runs_dir) / CHECKPOINT
    load_state(model, load_file(path, device)["model"], str(path))
    return model.to(device).eval()


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
    prof = profile(profile_name, engine_name, epochs)
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
    prof = profile(profile_name, engine_name)
    first = len(prof.seeds) if min_seeds is None else min_seeds

    def wants_more(exp: Experiment, row: Row, errors: dict[str, dict[int, float]], records: list[dict]) -> bool:
        # One seed has an infinite half-width: it always asks for a second.
        return (len(errors[row.label]) < max_seeds
                and paired(errors[row.baseline], errors[row.label]).halfwidth >= halfwidth)

    return _grow(names, prof, {name: first for name in names}, wants_more, results_dir, runs_dir, device,
                 data_dir, progress, jobs, download)


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
    prof = profile(profile_name, engine_name)
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
            exp, errors = experiment(name), errors_by_row(records[name])
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


def _train(wanted: dict[str, dict[str, list[int]]], prof: Profile, results_dir, runs_dir, device, data_dir,
           progress: bool, jobs: int | None, download: bool = False) -> dict[str, list[dict]]:
    """Train (or read back) the seeds ``wanted[experiment][row label]`` under ``prof``; the records."""
    jobs = prof.jobs if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    records: dict[str, dict[tuple[str, int], dict]] = {name: {} for name in wanted}
    pending: dict[Path, list[_Task]] = {}
    trained = records_by_run(results_dir, prof.name)
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

    bar = progress_bar(show=progress and bool(pending), total=len(pending), desc=f"{prof.name} runs", unit="run")

    def finished(tasks: list[_Task], metrics: list[dict]) -> None:
        for task in tasks:
            record = build_record(task.exp, task.row, prof, task.seed, task.run_dir, metrics)
            write_record(record_path(results_dir, prof.name, task.exp.name, task.row.label, task.seed), record)
            records[task.exp.name][(task.row.label, task.seed)] = record
        ledger(results_dir, prof.name, "finished", tasks)
        bar.update()

    if jobs == 1 or len(pending) < 2:
        with bar:
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
                with bar:
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
    done = len(read_metrics(first.run_dir))
    event = "started" if not (first.run_dir / CHECKPOINT).exists() else \
        "reused" if done >= prof.epochs else "resumed"
    ledger(results_dir, prof.name, event, tasks)
    if progress:
        say(f"{first.exp.name}: {first.row.label}, seed {first.seed} ({prof.name} profile)")
    return train_row(first.exp, first.row, prof, first.seed, runs_dir, device, data_dir, download)[0]


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
