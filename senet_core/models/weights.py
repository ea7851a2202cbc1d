"""Importing the released SENet checkpoints, and the preprocessing each expects.

The official models were released for Caffe; the widely used PyTorch port of them (Cadene's
``pretrainedmodels``, kept in timm as the ``legacy_se*`` models) stores state dicts with keys such
as ``layer0.conv1.weight``, ``layer1.0.se_module.fc1.weight`` (a 1x1 conv) and
``last_linear.weight``. :func:`load_pretrained` maps those keys onto ours, so the same weights give
the same outputs. Each source records its preprocessing (:func:`pretrained_cfg`,
:func:`transforms_for`): a number measured with other preprocessing is not the released model's
number.

Where the files come from: the port first published them on a plain-HTTP host
(``WeightSource.origin``); timm serves them as HTTPS GitHub release assets (``WeightSource.url``,
the URLs of timm 1.0.31's ``legacy_se*`` configurations), whose names end with the first hex digits
of the file's SHA-256. ``create_model(name, pretrained=True)`` downloads that asset once into
torch.hub's cache (``torch.hub.get_dir()/checkpoints``) and torch.hub checks the hash on download.
For SE-ResNet-50/101/152 timm's assets keep the port's file names (same hash prefix); for
SE-ResNeXt-50/101 and SENet-154 timm re-published them as ``legacy_*`` files with other hashes.
"""
from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import transforms

_PORT_BASE = "http://data.lip6.fr/cadene/pretrainedmodels/"
_TIMM_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightSource:
    """A released checkpoint and the preprocessing it expects (the ports' evaluation: resize the
    shorter side to ``resize``, centre-crop ``input_size``, RGB in [0, 1], ImageNet mean/std)."""

    url: str                          # HTTPS release asset; its name carries a SHA-256 prefix
    origin: str = ""                  # where the port first published the weights
    timm_name: str = ""               # the same weights in timm
    input_size: tuple[int, int, int] = (3, 224, 224)
    resize: int = 256                 # shorter side before the centre crop
    interpolation: str = "bilinear"
    input_space: str = "RGB"
    input_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    first_conv: str = "stem.conv1"    # in our names (the port's layer0.conv1)
    classifier: str = "fc"            # in our names (the port's last_linear)
    recipe: str = ("re-trained release models (batch 256, lr 0.1, longer schedule), not the paper's "
                   "Table 2 recipe; see the official README")

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The first hex digits of the file's SHA-256, as its name gives them (torch.hub's check)."""
        return torch.hub.HASH_REGEX.search(self.filename).group(1)

    @property
    def crop_pct(self) -> float:
        """Centre-crop fraction, timm's name for ``input_size / resize`` (0.875 = 224 / 256)."""
        return self.input_size[-1] / self.resize


def _release(asset: str, origin: str, timm_name: str) -> WeightSource:
    return WeightSource(_TIMM_RELEASES + asset, origin=_PORT_BASE + origin, timm_name=timm_name)


RELEASED: dict[str, WeightSource] = {
    "se_resnet50": _release("v0.1-cadene/se_resnet50-ce0d4300.pth", "se_resnet50-ce0d4300.pth",
                            "legacy_seresnet50.in1k"),
    "se_resnet101": _release("v0.1-cadene/se_resnet101-7e38fcc6.pth", "se_resnet101-7e38fcc6.pth",
                             "legacy_seresnet101.in1k"),
    "se_resnet152": _release("v0.1-cadene/se_resnet152-d17c99b7.pth", "se_resnet152-d17c99b7.pth",
                             "legacy_seresnet152.in1k"),
    "se_resnext50_32x4d": _release("v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
                                   "se_resnext50_32x4d-a260b3a4.pth", "legacy_seresnext50_32x4d.in1k"),
    "se_resnext101_32x4d": _release("v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
                                    "se_resnext101_32x4d-3b2fe3d8.pth", "legacy_seresnext101_32x4d.in1k"),
    "senet154": _release("v0.1-weights/legacy_senet154-e9eb9fe6.pth", "senet154-c7b49a05.pth",
                         "legacy_senet154.in1k"),
}


def released(name: str) -> WeightSource:
    """The released weights of ``name``; ``ValueError`` listing the released names if it has none."""
    if name not in RELEASED:
        raise ValueError(f"no released weights for {name}; released: {', '.join(RELEASED)}")
    return RELEASED[name]


def pretrained_cfg(name: str) -> dict:
    """The released weights of ``name`` and their preprocessing as data, in timm's ``pretrained_cfg``
    keys (``timm.data.resolve_data_config`` reads them from ``model.pretrained_cfg``)."""
    source = released(name)
    return {"architecture": name, "tag": "in1k", "url": source.url, "file_name": source.filename,
            "hash_prefix": source.hash_prefix, "origin_url": source.origin, "timm_name": source.timm_name,
            "num_classes": source.num_classes, "input_size": source.input_size,
            "interpolation": source.interpolation, "crop_pct": source.crop_pct, "crop_mode": "center",
            "mean": source.mean, "std": source.std, "input_space": source.input_space,
            "input_range": source.input_range, "first_conv": source.first_conv,
            "classifier": source.classifier, "recipe": source.recipe}


def transforms_for(name) -> transforms.Compose:
    """The evaluation transform of ``name``'s released weights (a name or a model from create_model):
    resize the shorter side, centre crop, to a tensor in [0, 1], normalise with the mean/std.
    Apply it to PIL images."""
    source = released(getattr(name, "model_name", name))
    size = source.input_size[-1]
    resize = transforms.Resize(source.resize, interpolation=transforms.InterpolationMode(source.interpolation))
    return transforms.Compose([resize, transforms.CenterCrop(size), transforms.ToTensor(),
                               transforms.Normalize(source.mean, source.std)])


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


def read_release(source: WeightSource) -> dict[str, torch.Tensor]:
    """The state dict of a released checkpoint, from torch.hub's cache or downloaded into it.

    torch.hub checks the SHA-256 prefix in the file name when it downloads; a file already in the
    cache is trusted as it is (delete it to fetch it again).
    """
    try:
        return torch.hub.load_state_dict_from_url(source.url, map_location="cpu", progress=True, check_hash=True,
                                                  file_name=source.filename, weights_only=True)
    except OSError as err:
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", source.filename)
        raise RuntimeError(f"could not download {source.url}: {err}. Download it by hand and put it at "
                           f"{cached}, or pass its path as pretrained=PATH") from None
    except RuntimeError as err:
        if "invalid hash value" not in str(err):
            raise
        raise RuntimeError(f"the file downloaded from {source.url} is not the release ({err}); nothing was "
                           f"cached, try again") from None


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, not a torch file, not a plain (weights-only) one, or
    not matching the network it is loaded into. The message is one line naming the file."""


def load_file(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """``torch.load(path, weights_only=True)``, failing in one line that names the file.

    A file holding Python objects other than tensors and plain containers is refused before anything
    in it runs (a pickle can execute code): it is named as such, and nothing of it was unpickled. A
    truncated or otherwise unreadable file (a full disk, a copy cut short) is named as damaged."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():     # it names a Python object to import: code, not tensors
            raise CheckpointError(
                f"{path!r} is not a plain checkpoint: it holds Python objects that torch.load(weights_only=True) "
                f"refused to unpickle, so nothing in it ran; save model.state_dict() instead") from None
        raise CheckpointError(f"{path!r} is damaged: not a readable torch file") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{path!r} is damaged (truncated, or not a torch file): "
                              f"{_first_line(err) or type(err).__name__}") from None


def _first_line(err: BaseException) -> str:
    """The first sentence of an error's message (torch's run to several lines of advice)."""
    text = str(err).strip()
    return text.splitlines()[0].split(". ")[0][:160] if text else ""


def state_dict_mismatches(own: dict[str, torch.Tensor], state: dict) -> list[str]:
    """What keeps ``state`` from loading into a network whose state dict is ``own``: missing and
    unexpected keys, other shapes, and tensors of another kind (integer for floating point, say)."""
    if not isinstance(state, dict):
        return [f"not a state dict (got {type(state).__name__})"]
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own)
    present = [k for k in own if k in state]
    not_tensors = sorted(k for k in present if not isinstance(state[k], torch.Tensor))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in present if k not in not_tensors and state[k].shape != own[k].shape)
    kinds = sorted(f"{k}: checkpoint {state[k].dtype} vs model {own[k].dtype}" for k in present
                   if k not in not_tensors and state[k].is_floating_point() != own[k].is_floating_point())
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("not tensors", not_tensors),
                        ("shape mismatches", shapes), ("dtype mismatches", kinds)):
        if keys:
            shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
            parts.append(f"{label}: {shown}")
    return parts


def load_state(model: nn.Module, state: dict, source: str) -> nn.Module:
    """``model.load_state_dict(state)``, or one :class:`CheckpointError` line saying what does not match."""
    problems = state_dict_mismatches(model.state_dict(), state)
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)   # only num_batches_tracked may be absent
    return model


def read_checkpoint(source: str) -> dict[str, torch.Tensor]:
    """Load a state dict from a path or URL (downloaded into torch's hub cache)."""
    if re.match(r"^(https?|file)://", source):
        try:
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True,
                                                       progress=True)
        except OSError as err:
            raise RuntimeError(f"could not download weights from {source}: {err}. Download the file by "
                               f"hand and pass its path as pretrained=PATH") from None
    else:
        try:
            state = load_file(source)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err} (pretrained= takes a file path or URL)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{source!r} does not hold a state dict (got {type(state).__name__})")
    return state


def load_pretrained(model: nn.Module, name: str, pretrained: bool | str,
                    num_classes: int | None = None) -> nn.Module:
    """Load weights into ``model`` (built by ``create_model(name, ...)``).

    ``pretrained`` is ``True`` or ``"imagenet"`` (the released weights of ``name``, see
    :func:`read_release`), or a path or URL. Keys in the ports' layout and in ours are both
    accepted. When ``num_classes`` is given and differs from the checkpoint's classifier, the
    model keeps its freshly initialised classifier; a model with other than 3 input channels gets
    the checkpoint's RGB stem conv adapted (:func:`adapt_input_conv`); each with a warning. Any
    other mismatch raises ``ValueError`` naming the missing and unexpected keys and the mismatched
    shapes.
    """
    if isinstance(pretrained, os.PathLike):
        pretrained = os.fspath(pretrained)
    if pretrained is True or pretrained == "imagenet":
        source = released(name)
        state, pretrained = read_release(source), source.url
    else:
        state = read_checkpoint(pretrained)
    state = convert_port_state_dict(state)
    own = model.state_dict()
    _adapt_classifier(model, name, state, own, num_classes)
    _adapt_first_conv(model, name, state, own)
    parts = state_dict_mismatches(own, state)
    if parts:
        raise CheckpointError(f"checkpoint {pretrained!r} does not match {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)   # only num_batches_tracked may be absent
    model.pretrained_source = RELEASED.get(name)
    return model


def _adapt_classifier(model: nn.Module, name: str, state: dict, own: dict, num_classes: int | None) -> None:
    """Drop the checkpoint's classifier when the model was asked for another number of classes."""
    prefix = getattr(model, "classifier_name", "fc") + "."
    weight = state.get(prefix + "weight")
    if num_classes is None or weight is None or prefix + "weight" not in own:
        return
    if weight.shape[0] == own[prefix + "weight"].shape[0]:
        return
    for key in [k for k in state if k.startswith(prefix)]:
        del state[key]
        state[key] = own[key]          # the model's own fresh initialisation
    warnings.warn(f"{name}: classifier re-initialised for {num_classes} classes (checkpoint has {weight.shape[0]})",
                  stacklevel=4)


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """An RGB first-conv weight (O, 3, k, k) for ``in_chans`` input channels, as timm adapts it: summed
    over the colours for one channel (a grey image then gives the RGB response to the same grey),
    else the RGB filters repeated and scaled by 3 / in_chans (the response to a uniform input is kept)."""
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / 3)
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (3 / in_chans)


def _adapt_first_conv(model: nn.Module, name: str, state: dict, own: dict) -> None:
    key = getattr(model, "first_conv", "") + ".weight"
    weight = state.get(key)
    if weight is None or key not in own or weight.dim() != 4:
        return
    in_chans = own[key].shape[1]
    if weight.shape[1] == in_chans or weight.shape[1] != 3:
        return   # nothing to adapt, or nothing we know how to adapt (reported as a shape mismatch)
    state[key] = adapt_input_conv(weight, in_chans).to(weight.dtype)
    how = "summed over RGB" if in_chans == 1 else "RGB filters repeated, scaled by 3/" + str(in_chans)
    warnings.warn(f"{name}: first conv {key[:-len('.weight')]} adapted to {in_chans} input channel(s) "
                  f"from the checkpoint's 3 ({how})", stacklevel=4)
