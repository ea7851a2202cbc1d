"""Importing the released SENet checkpoints.

The official models were released for Caffe; the widely used PyTorch port of them (Cadene's
``pretrainedmodels``, kept in timm as the ``legacy_se*`` models) stores state dicts with keys such
as ``layer0.conv1.weight``, ``layer1.0.se_module.fc1.weight`` (a 1x1 conv) and
``last_linear.weight``. :func:`load_pretrained` maps those keys onto ours, so the same weights give
the same outputs. Each source records its preprocessing: a number measured with other
preprocessing is not the released model's number.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass

import torch
from torch import nn

_PORT_BASE = "http://data.lip6.fr/cadene/pretrainedmodels/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightSource:
    """A released checkpoint and the preprocessing it expects."""

    url: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    resize: int = 256                 # shorter side before the centre crop
    input_space: str = "RGB"
    input_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    recipe: str = ("re-trained release models (batch 256, lr 0.1, longer schedule), not the paper's "
                   "Table 2 recipe; see the official README")

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


RELEASED: dict[str, WeightSource] = {
    "se_resnet50": WeightSource(_PORT_BASE + "se_resnet50-ce0d4300.pth"),
    "se_resnet101": WeightSource(_PORT_BASE + "se_resnet101-7e38fcc6.pth"),
    "se_resnet152": WeightSource(_PORT_BASE + "se_resnet152-d17c99b7.pth"),
    "se_resnext50_32x4d": WeightSource(_PORT_BASE + "se_resnext50_32x4d-a260b3a4.pth"),
    "se_resnext101_32x4d": WeightSource(_PORT_BASE + "se_resnext101_32x4d-3b2fe3d8.pth"),
    "senet154": WeightSource(_PORT_BASE + "senet154-c7b49a05.pth"),
}

# Port key -> our key. Order matters: the first matching pattern wins.
_RENAMES = [
    (re.compile(r"^layer0\."), "stem."),
    (re.compile(r"\.se_module\."), ".se."),
    (re.compile(r"^last_linear\."), "fc."),
]


def port_key_to_ours(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key)
    return key


def convert_port_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a port checkpoint's keys to ours; SE's 1x1-conv FC weights become Linear weights."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):          # saved from DataParallel
            key = key[len("module."):]
        ours = port_key_to_ours(key)
        if ".se.fc" in ours and ours.endswith(".weight") and value.dim() == 4:
            value = value.flatten(1)
        out[ours] = value
    return out


def read_checkpoint(source: str) -> dict[str, torch.Tensor]:
    """Load a state dict from a path or URL (downloaded into torch's hub cache)."""
    if re.match(r"^https?://", source):
        try:
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True,
                                                       progress=True)
        except OSError as err:
            raise RuntimeError(f"could not download weights from {source}: {err}. Download the file by "
                               f"hand and pass its path as pretrained=PATH") from None
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no checkpoint at {source!r} (pretrained= takes a file path or URL)")
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"{source!r} is not a plain checkpoint: torch.load(weights_only=True) refused to unpickle it "
                f"({str(err).splitlines()[0][:120]}). Save model.state_dict() instead of the whole model.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{source!r} does not hold a state dict (got {type(state).__name__})")
    return state


def load_pretrained(model: nn.Module, name: str, pretrained: str) -> nn.Module:
    """Load released weights (path, URL, or ``"imagenet"`` for the ports' published file) into ``model``.

    Keys in the ports' layout and in ours are both accepted. A checkpoint that does not match
    raises ``ValueError`` naming the missing and unexpected keys and the mismatched shapes.
    """
    if pretrained == "imagenet":
        if name not in RELEASED:
            raise ValueError(f"no released weights for {name}; released: {', '.join(RELEASED)}")
        pretrained = RELEASED[name].url
    state = convert_port_state_dict(read_checkpoint(pretrained))
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in own if k in state and state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", shapes)):
            if keys:
                shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
                parts.append(f"{label}: {shown}")
        raise ValueError(f"checkpoint {pretrained!r} does not match {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)   # only num_batches_tracked may be absent
    model.pretrained_source = RELEASED.get(name)
    return model
