"""Looking up the package's named things (models, datasets, recipes, experiments, profiles).

One rule for all of them: an unknown name is a ``ValueError`` that names it, the closest known names,
and where to see them all.
"""
from __future__ import annotations

import difflib
from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(kind: str, name: str, known: Mapping[str, T], see: str | None = None) -> T:
    """``known[name]``, or ``ValueError("unknown <kind> 'name'; closest: ...; <kind>s: ...")``."""
    try:
        return known[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        listing = see or f"{kind}s: {', '.join(sorted(known))}"
        raise ValueError(f"unknown {kind} {name!r}{hint}; {listing}") from None
