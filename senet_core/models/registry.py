"""One registry for every network of the paper: ``create_model``, ``list_models``, ``model_entry``.

A model file registers each public factory with :func:`register_model`. SE models name their
baseline, the stages that can hold SE blocks and the integration positions they implement, so that
:func:`create_model` can validate SE options (Section 6 ablations) before building anything.
"""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..names import lookup
from ..se import SEConfig


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    input_size: tuple[int, int, int]       # (C, H, W) the paper evaluates at
    min_size: int                          # smallest H = W the network accepts
    baseline: str | None                   # SE models: the network it adds SE blocks to
    se_stages: tuple[int, ...]             # stages that can hold SE blocks (stem = stage 1)
    se_positions: tuple[str, ...]          # integration positions of Section 6.5 it implements
    paper: str                             # where the paper uses it, e.g. "Table 2"

    @property
    def is_se(self) -> bool:
        return self.baseline is not None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(*, input_size=(3, 224, 224), min_size=32, baseline=None, se_stages=(),
                   se_positions=("standard",), paper=""):
    """Register a model factory under its function name.

    An SE model's factory takes an ``se: SEConfig`` keyword; a baseline's does not.
    """
    def wrap(factory):
        name = factory.__name__
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, tuple(input_size), min_size, baseline,
                                     tuple(se_stages), tuple(se_positions), paper)
        return factory
    return wrap


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style filter such as ``"se_*"``."""
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` naming the closest names if unknown."""
    return lookup("model", name, _REGISTRY, see="see senet_core.list_models() or `senet models`")


def create_model(name: str, num_classes: int | None = None, in_chans: int = 3, pretrained: str | None = None,
                 **options) -> nn.Module:
    """Build a registered network.

    Args:
        name: a name from :func:`list_models`, e.g. ``"se_resnet50"``.
        num_classes: size of the classifier; ``None`` keeps the model's default (1000 for
            ImageNet networks, 10 for the CIFAR ones).
        in_chans: input channels (3 for RGB, 1 for Fashion-MNIST).
        pretrained: a path or URL to a checkpoint of the released models (see ``senet_core.weights``).
        options: SE options for SE models (``reduction``, ``squeeze``, ``excitation``, ``se_bias``,
            ``se_divisor``, ``se_position``, ``se_stages``) and the model's own keywords.
    """
    entry = model_entry(name)
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
    se_options = {k: options.pop(k) for k in list(options) if k in SEConfig.OPTION_NAMES}
    kwargs = dict(in_chans=in_chans) if num_classes is None else dict(num_classes=num_classes, in_chans=in_chans)
    if entry.is_se:
        se = SEConfig.from_options(se_options)
        se.check(name, entry.se_stages, entry.se_positions)
        kwargs["se"] = se
    elif se_options:
        twin = f"; its SE version is {'se_' + name!r}" if "se_" + name in _REGISTRY else ""
        raise ValueError(f"{name} has no SE blocks, so {', '.join(sorted(se_options))} do not apply{twin}")
    accepted = set(inspect.signature(entry.factory).parameters) - {"se", "num_classes", "in_chans"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = sorted(accepted | (set(SEConfig.OPTION_NAMES) if entry.is_se else set()))
        raise ValueError(f"{name} does not take option(s) {', '.join(unknown)}; "
                         f"it takes {', '.join(takes) or 'no further options'}")
    model = entry.factory(**kwargs, **options)
    model.model_name = name
    model.in_chans = in_chans
    model.register_forward_pre_hook(InputCheck(name, in_chans, entry.min_size))
    if pretrained:
        from ..weights import load_pretrained
        load_pretrained(model, name, pretrained)
    return model


class InputCheck:
    """Forward pre-hook: a wrong input fails with a message naming what was expected and what came.

    A class rather than a closure so that models built by create_model can be pickled.
    """

    def __init__(self, name: str, in_chans: int, min_size: int):
        self.name, self.in_chans, self.min_size = name, in_chans, min_size

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.name} expects a batch of images of shape (N, {self.in_chans}, H, W), "
                             f"got {shape}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"{self.name} expects {self.in_chans} input channel(s), got {x.shape[1]} "
                             f"(input shape {tuple(x.shape)}); build it with in_chans={x.shape[1]}")
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(f"{self.name} needs inputs of at least {self.min_size}x{self.min_size}, got "
                             f"{x.shape[2]}x{x.shape[3]}")
