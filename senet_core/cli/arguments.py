"""What the value of each ``senet`` flag may be: the ``type=`` of every argument that takes one.

Each turns the text of one argument into its value, or raises ``argparse.ArgumentTypeError`` saying
what was wrong and what is accepted, which the parser prints on one line with exit status 2, before
any work starts. Numbers are plain ASCII decimals (``int("٣")`` would take other scripts' digits);
a value quoted back is shortened (:func:`reprlib.repr`).
A name of a fixed set (a model, a recipe, a profile) is looked up where the set is defined, by
:func:`look_up_names` before the command runs, whose message names the closest known ones
(:func:`senet_core.names.lookup`).
"""
from __future__ import annotations

import argparse
import math
import re
import reprlib
import unicodedata
from pathlib import Path
from typing import Callable

from ..engine.data import dataset_info
from ..engine.recipes import recipe
from ..engine.runtime import resolve_device
from ..models import model_entry
from ..se import SEConfig
from ..study.spec import engine, profile

# The largest count or seed: torch holds them as 64-bit integers, which larger ones overflow.
LARGEST = 2**63 - 1

_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_DECIMAL = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def _quote(value: str) -> str:
    """``value`` quoted back in a message, shortened when long."""
    return reprlib.repr(value)


def _integer(value: str, least: int) -> int:
    if not _INTEGER.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{_quote(value)} is not a whole number")
    digits = value.strip()
    # int() of thousands of digits is slow, and refused past 4300: their count decides first.
    if len(digits.lstrip("+-").lstrip("0")) > len(str(LARGEST)) or int(digits) > LARGEST:
        if digits.startswith("-"):
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {_quote(digits)}")
        raise argparse.ArgumentTypeError(f"{_quote(digits)} is too large (at most {LARGEST})")
    number = int(digits)
    if number < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {number}")
    return number


def positive_int(value: str) -> int:
    """A count or a size: 1, 2, ..."""
    return _integer(value, 1)


def non_negative_int(value: str) -> int:
    """A count that may be 0 (worker processes, warm-up steps) or a seed."""
    return _integer(value, 0)


def _number(value: str) -> float:
    if not _DECIMAL.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{_quote(value)} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{_quote(value)} is beyond a float's range")
    return number


def positive_float(value: str) -> float:
    """A learning rate or an interval's half-width."""
    number = _number(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


def non_negative_float(value: str) -> float:
    """A weight decay or a momentum."""
    number = _number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {number}")
    return number


def fraction(value: str) -> float:
    """Label smoothing: a share of the target in [0, 1)."""
    number = _number(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {number}")
    return number


def _int_list(value: str, what: str, least: int) -> list[int]:
    parts = [part for part in value.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{_quote(value)} names no {what}; give e.g. 0,1,2")
    try:
        return [_integer(part, least) for part in parts]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"{_quote(value)} is not a comma-separated list of {what}: {err}") from None


def seed_list(value: str) -> list[int]:
    """``--seeds 0,1,2``: distinct seeds of at least 0."""
    seeds = _int_list(value, "seeds", 0)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{_quote(value)} names seed {twice[0]} twice")
    return seeds


def stage_list(value: str) -> tuple[int, ...]:
    """``--se-stages 2,3``: stage numbers, the stem being stage 1 (Table 13)."""
    return tuple(_int_list(value, "stage numbers", 1))


def reason(value: str) -> str:
    """Words for a record (``--discard-stale REASON``): no control characters, and not starting with
    '-' (rather a value left out before the next flag). A blank one is refused where it is kept."""
    if value.startswith("-"):
        raise argparse.ArgumentTypeError(f"{_quote(value)} starts with '-': a value was left out before it?")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise argparse.ArgumentTypeError(f"{_quote(value)} holds a control character")
    return value


def text(value: str) -> str:
    """A free value (a pattern, a split's name, weights to load), as :func:`reason` and not blank."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return reason(value)


def path(value: str) -> str:
    """A file or folder, as given (``~user`` is expanded where it is used, so it must name a user)."""
    text(value)
    try:
        Path(value).expanduser()
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{_quote(value)}: no user {_quote(value.split('/')[0])} to expand") from None
    return value


def device(value: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked by the engine's own rule, which also refuses a
    GPU that torch does not see."""
    try:
        resolve_device(value)
    except (ValueError, RuntimeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def model_or_none(value: str) -> str:
    """``profile --baseline``: a model's name, or '' for none."""
    return value if value == "" else text(value)


def name_list(value: str) -> tuple[str, ...]:
    """Comma-separated names, e.g. ``pilot --profiles pilot_base,pilot_long``."""
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{_quote(value)} names nothing")
    return tuple(text(name) for name in names)


# The flags that name one of a fixed set, by their dest, with the lookup that knows the set. Their
# values are looked up before a command starts (an unknown one is a ValueError naming the closest known
# ones: status 2, returned by main like any other bad value a command meets).
NAMED = {"model": model_entry, "models": model_entry, "baseline": model_entry, "recipe": recipe,
         "dataset": dataset_info, "profile": profile, "profiles": profile, "engine": engine}


def look_up_names(args: argparse.Namespace) -> None:
    """Look up every name ``args`` holds in its set (:data:`NAMED`)."""
    for dest, look_up in NAMED.items():
        value = getattr(args, dest, None)
        for name in value if isinstance(value, (list, tuple)) else [value]:
            if name:                                # None: not given; '' (--baseline): none
                look_up(name)


def _se_option(option: str) -> Callable[[str], str]:
    """An SE block setting (Section 6), checked by :class:`~senet_core.se.SEConfig` itself."""
    def setting(value: str) -> str:
        try:
            SEConfig.from_options({option: value})
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value
    return setting


squeeze = _se_option("squeeze")
excitation = _se_option("excitation")
se_position = _se_option("se_position")
