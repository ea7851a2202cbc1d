"""One registry for every network of the paper: ``create_model``, ``list_models``, ``model_entry``.

A model file registers each public factory with :func:`register_model`. SE models name their
baseline, the stages that can hold SE blocks and the integration positions they implement, so that
:func:`create_model` can validate SE options (Section 6 ablations) before building anything.

``create_model`` and ``list_models`` take timm's keywords (``pretrained``, ``num_classes``,
``in_chans``, ``features_only``, ``out_indices``; ``list_models(pretrained=True)``), so the networks
drop into timm-style code; the released weights are loaded by ``senet_core.models.weights``.
"""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..names import lookup
from ..se import SEConfig
from .features import FeatureNet
from .weights import RELEASED, load_pretrained, pretrained_cfg


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


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style filter such as ``"se_*"``.

    ``pretrained=True`` keeps the names with released weights (``create_model(name, pretrained=True)``).
    """
    names = sorted(_REGISTRY)
    if pretrained:
        names = [n for n in names if n in RELEASED]
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` naming the closest names if unknown."""
    return lookup("model", name, _REGISTRY, see="see senet_core.list_models() or `senet models`")


def create_model(name: str, num_classes: int | None = None, in_chans: int = 3,
                 pretrained: bool | str | None = False, features_only: bool = False,
                 out_indices: Sequence[int] | None = None, **options) -> nn.Module:
    """Build a registered network.

    Args:
        name: a name from :func:`list_models`, e.g. ``"se_resnet50"``.
        num_classes: size of the classifier; ``None`` keeps the model's default (1000 for
            ImageNet networks, 10 for the CIFAR ones). With ``pretrained``, a number different from
            the checkpoint's keeps a freshly initialised classifier (with a warning).
        in_chans: input channels (3 for RGB, 1 for Fashion-MNIST). With ``pretrained``, the
            checkpoint's RGB stem conv is summed (1 channel) or repeated (more), as timm does.
        pretrained: ``True`` (or ``"imagenet"``) loads the released weights of ``name`` (see
            ``list_models(pretrained=True)``), downloaded once into torch.hub's cache with their
            hash checked; a path or URL loads that checkpoint; ``False``/``None``: random init.
        features_only: return the trunk as a :class:`~senet_core.models.features.FeatureNet`, whose
            forward gives the stage outputs as a list and whose ``feature_info`` describes them.
        out_indices: which stages ``features_only`` returns (positions in the model's
            ``feature_info``); ``None``: all.
        options: SE options for SE models (``reduction``, ``squeeze``, ``excitation``, ``se_bias``,
            ``se_divisor``, ``se_position``, ``se_stages``) and the model's own keywords.

    The model carries ``model_name``, ``in_chans``, ``num_classes`` and, for names with released
    weights, ``pretrained_cfg`` (their preprocessing, read by ``timm.data.resolve_data_config``).
    """
    entry = model_entry(name)
    if isinstance(num_classes, bool):   # create_model(name, True): timm's second argument is pretrained
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}; pass pretrained "
                         f"by keyword: create_model({name!r}, pretrained={num_classes!r})")
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
    if out_indices is not None and not features_only:
        raise ValueError("out_indices chooses the stages of features_only=True; pass that too")
    model = entry.factory(**kwargs, **options)
    model.model_name = name
    model.in_chans = in_chans
    model.register_forward_pre_hook(InputCheck(name, in_chans, entry.min_size))
    if name in RELEASED:
        model.pretrained_cfg = pretrained_cfg(name)
    if pretrained:
        load_pretrained(model, name, pretrained, num_classes=num_classes)
    if features_only:
        return _features_only(model, name, in_chans, entry.min_size, out_indices)
    return model


def _features_only(model: nn.Module, name: str, in_chans: int, min_size: int,
                   out_indices: Sequence[int] | None) -> nn.Module:
    features = FeatureNet(model, out_indices)
    features.model_name, features.in_chans = name, in_chans
    if hasattr(model, "pretrained_cfg"):
        features.pretrained_cfg = model.pretrained_cfg
    features.register_forward_pre_hook(InputCheck(name, in_chans, min_size))
    return features


class InputCheck:
    """Forward pre-hook: a wrong input fails with a message naming what was expected and what came.

    A class rather than a closure so that models built by create_model can be pickled.
    """

    def __init__(self, name: str, in_chans: int, min_size: int):
        self.name, self.in_chans, self.min_size = name, in_chans, min_size

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if isinstance(x, torch.fx.Proxy):
            return   # a symbolic trace (torch.fx) has no shape to check
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
