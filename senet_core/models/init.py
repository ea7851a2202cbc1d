"""Weight initialisation shared by every network: He et al. [66], as Section 5.1 prescribes."""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..se import SEBlock


def module_generator(seed: int, path: str) -> torch.Generator:
    """A random stream that is a function of (seed, module path) alone.

    Two networks that share a layer under the same name (a baseline and its SE version: the SE
    blocks are added modules, every other name is the same) draw the same initial weights for it,
    whatever else the networks hold, so a seed pairs them."""
    digest = hashlib.sha256(f"{int(seed)}/{path}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def he_init(model: nn.Module, seed: int | None = None) -> None:
    """He et al. [66] throughout: Kaiming-normal convs (fan-out) and SE excitation FCs (fan-in), BN
    scale 1 / shift 0, zero biases; the classifier gets small normal weights (std 0.01).

    The SE FCs are layers of the network like any conv, and get He's rule. With the classifier's
    std 0.01 instead, the two FCs of a gate start ~1e-4 in product and, under weight decay, the gate
    stays at sigmoid(0) = 0.5 for the whole of a short run: a constant scale, not an excitation.

    ``seed=None`` draws from torch's global generator, in module order. With a seed, each module
    draws from :func:`module_generator` (seed, its qualified name), so the layers a network shares
    with its baseline start from the same weights (paired training runs).
    """
    excitation = {id(fc) for m in model.modules() if isinstance(m, SEBlock) for fc in (m.fc1, m.fc2)}
    for name, m in model.named_modules():
        generator = None if seed is None else module_generator(seed, name)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if id(m) in excitation:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                init_classifier(m, generator)


def init_classifier(layer: nn.Linear, generator: torch.Generator | None = None) -> None:
    """A classifier (or other non-excitation FC layer): normal weights with std 0.01, zero bias."""
    nn.init.normal_(layer.weight, 0, 0.01, generator=generator)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
