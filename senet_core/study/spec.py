"""The study as data (Sections 5-6): the paper's training experiments as reduced-scale miniatures, and
the profiles and engines they run under, read from ``experiments.yaml``.

An :class:`Experiment` is one table of the paper: rows of networks, each standing for a paper row and
compared with a baseline row. A :class:`Profile` is the scale of a run (data, epochs, seeds). What a
row trains with under a profile (:func:`row_recipe`) and the hash of those settings
(:func:`fingerprint`) are decided here, so a run's identity is the same wherever it is asked for.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

import yaml
from torch import nn

from ..engine.data import dataset_info
from ..engine.recipes import Recipe, recipe
from ..models import create_model
from ..names import lookup
from ..paper import paper_row
from ..se import SEConfig


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
                     paper_table=r.get("paper_table", e["paper_table"]), paper_key=r.get("paper_key", e["key"]),
                     paper_value=r.get("paper_value"), paper_column=r.get("paper_column", "top1_err"))
                 for r in e["rows"])
    return Experiment(name, e["title"], e["paper_table"], e["conclusion"], bool(e.get("ablation")), rows,
                      e.get("image_size"), e.get("study_seeds"))


def declared_effects(name: str) -> list[dict]:
    """The effects experiment ``name`` declares (experiments.yaml: ``effects``): each a ``from`` and a
    ``to`` row whose gains over their baselines are compared."""
    return list(lookup("experiment", name, _spec()["experiments"]).get("effects", []))


def list_engines() -> list[str]:
    return sorted(_spec()["engines"])


def engine(name: str) -> dict:
    """How a run executes: ``channels_last`` and ``compile``, the TrainConfig fields of that name."""
    return dict(lookup("engine", name, _spec()["engines"]))


def profile_names(pilot: bool = False) -> tuple[str, ...]:
    """The profiles of experiments.yaml, in its order: the study's (smoke, cpu, gpu) or the pilot's."""
    return tuple(name for name in _spec()["profiles"] if name.startswith("pilot_") == pilot)


def profile(name: str, engine_name: str | None = None, epochs: int | None = None) -> Profile:
    """A profile of experiments.yaml; ``engine_name`` replaces the engine it runs with, ``epochs`` its
    number of epochs."""
    p = lookup("profile", name, _spec()["profiles"])
    chosen = engine_name or p.get("engine", "eager")
    engine(chosen)                       # an unknown name fails here, with the known ones
    prof = Profile(name, p["dataset"], p["epochs"], p["batch_size"], p["limit_train"], p["limit_val"],
                   tuple(p["seeds"]), p.get("image_size"), dict(p.get("recipe", {})), chosen, p.get("jobs", 1),
                   dict(p.get("study", {})))
    return prof if epochs is None else replace(prof, epochs=epochs)


def ablation_protocol_options() -> dict:
    """The SE block options of the ablation protocol (experiments.yaml: ablation_protocol)."""
    return dict(_spec()["ablation_protocol"]["options"])


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


def row_model(exp: Experiment, row: Row, prof: Profile) -> nn.Module:
    """The network of one row under one profile, freshly initialised, for the profile's dataset."""
    _, options = row_recipe(exp, row, prof)
    info = dataset_info(prof.dataset)
    return create_model(row.model, num_classes=info.num_classes, in_chans=info.in_chans, **options)


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


def paper_gain(exp: Experiment, label: str, baseline: str) -> float | None:
    """The paper's gain of row ``label`` over row ``baseline`` (baseline error minus row error, top-1
    points), or None where the paper prints no number for either."""
    paper, paper_base = exp.row(label).paper_number(), exp.row(baseline).paper_number()
    return None if paper is None or paper_base is None else round(paper_base - paper, 2)


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
