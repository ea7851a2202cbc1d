"""The paper's training protocols (Sections 5-6, Appendix) as data, shared by the CLI, notebooks and batch runs.

Recipes live in ``recipes.yaml``; each field says whether it comes from the paper (and where) or is our
choice (and why). :func:`recipe` returns one as a :class:`Recipe`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from importlib import resources

import yaml

from ..names import lookup

SCHEDULES = ("step", "multistep", "cosine", "plateau", "constant")


@dataclass(frozen=True)
class Recipe:
    """A training protocol. ``lr`` is the rate at batch size ``lr_batch``; other batch sizes scale it
    linearly (Goyal et al. 2017), so the paper's 0.6 at 1024 becomes 0.15 at 256."""

    name: str = "custom"
    summary: str = ""
    dataset: str = "synthetic"
    model: str = "se_resnet20_cifar"
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1
    lr_batch: int = 128
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"
    lr_step_epochs: int = 30
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0
    plateau_patience: int = 5
    max_lr_drops: int | None = None
    label_smoothing: float = 0.0
    freeze_bn_epochs: int = 0
    cutout: int = 0
    crop_size: int | None = None
    val_resize: int | None = None
    image_size: int | None = None        # small datasets: downsample to this side (reduced scale)
    se_bias: bool | None = None          # None: the model's default (on)
    paper: dict = field(default_factory=dict, compare=False)    # field -> where the paper gives it
    ours: dict = field(default_factory=dict, compare=False)     # field -> why we chose it
    explicit: tuple[str, ...] = field(default=(), compare=False)  # fields the recipe file sets

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "lr_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))

    def scaled_lr(self, batch_size: int | None = None) -> float:
        """The learning rate for ``batch_size`` (default: the recipe's), by the linear scaling rule."""
        return self.lr * (batch_size or self.batch_size) / self.lr_batch

    def with_overrides(self, **overrides) -> "Recipe":
        """A copy with some fields replaced (``None`` values are ignored); unknown fields are an error."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"recipes have no field(s) {', '.join(unknown)}")
        changed = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changed) if changed else self



@lru_cache(maxsize=None)
def _load() -> dict[str, Recipe]:
    text = (resources.files("senet_core.engine") / "recipes.yaml").read_text(encoding="utf-8")
    recipes = {}
    for name, spec in yaml.safe_load(text).items():
        explicit = tuple(k for k in spec if k not in ("summary", "paper", "ours"))
        recipes[name] = Recipe(name=name, explicit=explicit, **spec)
    return recipes


def list_recipes() -> list[str]:
    return sorted(_load())


def recipe(name: str) -> Recipe:
    """The recipe called ``name``; ``ValueError`` naming the closest ones if unknown."""
    return lookup("recipe", name, _load())
