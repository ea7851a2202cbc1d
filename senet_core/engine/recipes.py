"""The paper's training protocols (Sections 5-6, Appendix) as data, shared by the CLI, notebooks and batch runs.

Recipes live in ``recipes.yaml``, each with where its numbers come from. :func:`recipe` returns an
image-classification protocol as a :class:`Recipe`, each field marked as the paper's (and where it
says so) or ours (and why). :data:`TABLE7_RECIPE` is the object-detection protocol of Table 7
(Section 5.3) as a :class:`DetectionRecipe`, each number with its ``sources``. Both are read and
checked by the same loader, and both scale the learning rate with the batch by one rule,
:func:`linear_scaled_lr`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from importlib import resources

import yaml

from ..names import lookup

SCHEDULES = ("step", "multistep", "cosine", "plateau", "constant")


def check_positive_int(name: str, value, optional: bool = False) -> None:
    """``ValueError`` unless ``value`` is an integer >= 1 (or ``None`` when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_numbers(protocol, counts: tuple[str, ...], rate: str) -> None:
    """What every protocol must hold: positive integer ``counts`` and a positive learning ``rate``."""
    for name in counts:
        check_positive_int(name, getattr(protocol, name))
    if not getattr(protocol, rate) > 0:
        raise ValueError(f"{rate} must be positive, got {getattr(protocol, rate)!r}")


def linear_scaled_lr(lr: float, batch_size: int, reference_batch: int) -> float:
    """The learning rate for ``batch_size`` when ``lr`` is the rate at ``reference_batch``: the linear
    scaling rule (Goyal et al. 2017), which Detectron's schedules follow too."""
    return lr * batch_size / reference_batch


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
        _check_numbers(self, ("epochs", "batch_size", "lr_batch"), "lr")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))

    def scaled_lr(self, batch_size: int | None = None) -> float:
        """The learning rate for ``batch_size`` (default: the recipe's), by the linear scaling rule."""
        return linear_scaled_lr(self.lr, batch_size or self.batch_size, self.lr_batch)

    def with_overrides(self, **overrides) -> "Recipe":
        """A copy with some fields replaced (``None`` values are ignored); unknown fields are an error."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"recipes have no field(s) {', '.join(unknown)}")
        changed = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changed) if changed else self


@dataclass(frozen=True)
class DetectionRecipe:
    """An object-detection protocol (Section 5.3): Faster R-CNN's schedule in iterations of
    ``images_per_batch`` images; ``sources`` says where each number comes from.

    The paper gives the detector, the data split, the initialisation and the schedule's name ("2x");
    Table 7's numbers are Detectron's (``configs/12_2017_baselines/e2e_faster_rcnn_R-50-FPN_2x.yaml``
    and ``core/config.py``) for a minibatch of 16 images on 8 GPUs.
    """

    detector: str
    train_split: str
    val_split: str
    images_per_batch: int
    base_lr: float
    iterations: int
    lr_steps: tuple[int, ...]
    lr_gamma: float
    warmup_iters: int
    warmup_factor: float
    momentum: float
    weight_decay: float
    bias_lr_factor: float
    bias_weight_decay: float
    min_size: int
    max_size: int
    trainable_layers: int
    horizontal_flip: bool
    sources: dict[str, str]

    def __post_init__(self):
        _check_numbers(self, ("images_per_batch", "iterations", "warmup_iters", "min_size", "max_size"), "base_lr")
        object.__setattr__(self, "lr_steps", tuple(self.lr_steps))
        if any(not 0 < step <= self.iterations for step in self.lr_steps):
            raise ValueError(f"lr_steps must lie in (0, iterations={self.iterations}], got {self.lr_steps!r}")

    @property
    def lr_milestones(self) -> tuple[float, ...]:
        """The learning-rate steps as fractions of training (2/3 and 8/9 for 2x)."""
        return tuple(step / self.iterations for step in self.lr_steps)

    def lr_for(self, batch_size: int) -> float:
        """Base learning rate for ``batch_size`` images per step (Detectron's linear scaling rule)."""
        return linear_scaled_lr(self.base_lr, batch_size, self.images_per_batch)

    def warmup_iters_for(self, batch_size: int) -> int:
        """Warm-up length for ``batch_size``: the same number of images as 500 steps of 16."""
        return max(1, round(self.warmup_iters * self.images_per_batch / batch_size))

    def epochs_for(self, num_train_images: int) -> int:
        """Epochs that see as many images as the schedule (25 for train2017's 117,266 images with boxes)."""
        return math.ceil(self.iterations * self.images_per_batch / num_train_images)


# What a recipe's ``task`` names: the protocol it is read as.
TASKS = {"classification": Recipe, "detection": DetectionRecipe}


def _read(name: str, spec: dict) -> Recipe | DetectionRecipe:
    spec = dict(spec)
    protocol = lookup("task", spec.pop("task", "classification"), TASKS)
    if protocol is DetectionRecipe:
        return DetectionRecipe(**spec)
    explicit = tuple(k for k in spec if k not in ("summary", "paper", "ours"))
    return Recipe(name=name, explicit=explicit, **spec)


@lru_cache(maxsize=None)
def _load() -> dict[str, Recipe | DetectionRecipe]:
    text = (resources.files("senet_core.engine") / "recipes.yaml").read_text(encoding="utf-8")
    return {name: _read(name, spec) for name, spec in yaml.safe_load(text).items()}


def _of_kind(protocol: type) -> dict:
    return {name: r for name, r in _load().items() if isinstance(r, protocol)}


# The recipe a dataset trains with when none is named.
DEFAULT_RECIPES = {"imagenet": "imagenet", "places365": "imagenet", "cifar10": "cifar_resnet",
                   "cifar100": "cifar_resnet", "fashion_mnist": "fashion_mnist", "synthetic": "smoke"}


def default_recipe(dataset: str) -> str:
    """The name of the recipe ``dataset`` trains with when none is named (``smoke`` for an unknown one)."""
    return DEFAULT_RECIPES.get(dataset, "smoke")


def list_recipes() -> list[str]:
    """The names of the training (image-classification) recipes."""
    return sorted(_of_kind(Recipe))


def recipe(name: str) -> Recipe:
    """The training recipe called ``name``; ``ValueError`` naming the closest ones if unknown."""
    return lookup("recipe", name, _of_kind(Recipe))


def detection_recipe(name: str) -> DetectionRecipe:
    """The detection recipe called ``name``; ``ValueError`` naming the closest ones if unknown."""
    return lookup("detection recipe", name, _of_kind(DetectionRecipe))


TABLE7_RECIPE = detection_recipe("coco_detection")
