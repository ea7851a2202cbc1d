"""``features_only``: a network's trunk returning the outputs of its stages (for FPNs, U-Nets, probes).

Every network lists the stage outputs it offers in ``feature_info``: a list of
``{"module": name, "num_chs": channels, "reduction": stride}`` in forward order, as timm's models
do. :class:`FeatureNet` keeps the network's modules up to the last stage asked for, under their own
names (so a checkpoint of the classifier loads into it without renaming), runs them in order and
returns the chosen stage outputs as a list, or as a dict keyed ``"0"``, ``"1"``, ... (torchvision's
detection convention). ``create_model(name, features_only=True, out_indices=...)`` builds one.

This needs the network's ``forward_features`` to be its top-level modules applied one after the
other (a stage inside an ``nn.Sequential`` child is reached by its dotted name, e.g.
``"stem.relu1"``): true of every network here, and checked by ``tests/test_timm_compat.py``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn


class FeatureInfo(list):
    """The returned stages' ``{"module", "num_chs", "reduction"}`` dicts, with timm's accessors."""

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def module_name(self) -> list[str]:
        return [info["module"] for info in self]


def _steps(module: nn.Module, wanted: set[str], prefix: str = "") -> list[str]:
    """Qualified names of the modules that compute ``module``'s trunk, in forward order: its
    children, opening the ``nn.Sequential`` ones that contain a wanted stage."""
    steps = []
    for name, child in module.named_children():
        path = prefix + name
        if isinstance(child, nn.Sequential) and any(w.startswith(path + ".") for w in wanted):
            steps += _steps(child, wanted, path + ".")
        else:
            steps.append(path)
    return steps


class FeatureNet(nn.Module):
    """The trunk of ``model`` returning the outputs of stages ``out_indices`` of its ``feature_info``.

    Args:
        model: a network of this package (it has ``feature_info``); its modules are shared, not copied.
        out_indices: positions in ``model.feature_info``; negative ones count from the end.
        as_dict: return an ordered dict ``{"0": first returned stage, ...}`` instead of a list.

    ``feature_info`` describes the returned stages (``.channels()``, ``.reduction()``).
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None = None, as_dict: bool = False):
        super().__init__()
        available = getattr(model, "feature_info", None)
        if not available:
            raise NotImplementedError(f"{type(model).__name__} does not list its stages (feature_info), so it "
                                      f"has no features_only form")
        count = len(available)
        indices = tuple(range(count)) if out_indices is None else tuple(out_indices)
        bad = [i for i in indices if not isinstance(i, int) or not -count <= i < count]
        if not indices or bad:
            raise ValueError(f"out_indices={out_indices!r}: {type(model).__name__} has {count} stages, indices "
                             f"0..{count - 1} ({', '.join(i['module'] for i in available)})")
        indices = tuple(sorted({i % count for i in indices}))
        self.out_indices = indices
        self.feature_info = FeatureInfo(dict(available[i]) for i in indices)
        self.as_dict = as_dict
        self.return_modules = tuple(info["module"] for info in self.feature_info)

        steps = _steps(model, set(self.return_modules))
        last = steps.index(self.return_modules[-1])
        self.steps = tuple(steps[:last + 1])
        kept = {step.split(".")[0] for step in self.steps}
        for name, child in model.named_children():     # the model's own names: its state dict keys
            if name in kept:
                self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | dict[str, torch.Tensor]:
        features = []
        for step in self.steps:
            x = self.get_submodule(step)(x)
            if step in self.return_modules:
                features.append(x)
        if self.as_dict:
            return OrderedDict((str(i), f) for i, f in enumerate(features))
        return features
