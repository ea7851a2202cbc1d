"""How a reduced-scale comparison is decided: one vocabulary for every chapter and the report.

A comparison is a row against its baseline over paired seeds (the same seed gives both networks the
same initial weights in every shared layer and the same data). Its *gain* is baseline error minus
row error, in points: positive means the row is better.

* :func:`paired` gives the mean gain and its 95 % paired t interval ("±" in the book is the
  half-width of that interval), and the two-sided p-value.
* :func:`holm` adjusts the p-values of the distinct comparisons of one table (Holm 1979).
* :func:`tost` is the two one-sided tests of equivalence (Schuirmann 1987) within a margin.
* :func:`outcome` names the result against what the paper expects:

  - **holds**: the interval excludes 0 in the paper's direction (adjusted p < 0.05);
  - **contradicted**: it excludes 0 the other way;
  - **equivalent**: the gain is within the paper's effect of 0 (TOST passes), the answer for the
    paper's "about equal" claims; for a claimed gain, it says ours is smaller than the paper's;
  - **inconclusive**: none of these: the interval is wider than the paper's effect.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from scipy import stats as scipy_stats

OUTCOMES = ("holds", "contradicted", "equivalent", "inconclusive")
DIRECTIONS = ("better", "worse", "equal")
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """Paired gains over seeds: ``gains[seed] = baseline error - row error`` (points)."""

    gains: tuple[float, ...]
    mean: float
    sd: float | None                       # None for one seed
    ci: tuple[float, float] | None         # 95 % paired t interval; None for one seed
    p: float | None                        # two-sided paired t test of "no difference"

    @property
    def n(self) -> int:
        return len(self.gains)

    @property
    def halfwidth(self) -> float:
        return math.inf if self.ci is None else (self.ci[1] - self.ci[0]) / 2


def paired(baseline: Mapping[int, float], row: Mapping[int, float], level: float = 0.95) -> Comparison:
    """The comparison of ``row`` with ``baseline`` over the seeds both have (errors in %)."""
    seeds = sorted(set(baseline) & set(row))
    if not seeds:
        raise ValueError("no seed has both a row and a baseline record")
    gains = tuple(baseline[s] - row[s] for s in seeds)
    mean = statistics.fmean(gains)
    if len(gains) < 2:
        return Comparison(gains, mean, None, None, None)
    sd = statistics.stdev(gains)
    se = sd / math.sqrt(len(gains))
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
        return Comparison(gains, mean, sd, (mean, mean), p)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, len(gains) - 1)) * se
    p = float(2 * scipy_stats.t.sf(abs(mean) / se, len(gains) - 1))
    return Comparison(gains, mean, sd, (mean - half, mean + half), p)


def correlation(baseline: Mapping[int, float], row: Mapping[int, float]) -> float | None:
    """Pearson correlation of the two networks' errors over the seeds both have: how much pairing
    by seed removes (the paired variance is var(a) + var(b) - 2 cov(a, b)). None below 3 seeds or
    when either is constant."""
    seeds = sorted(set(baseline) & set(row))
    a, b = [baseline[s] for s in seeds], [row[s] for s in seeds]
    if len(seeds) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return statistics.correlation(a, b)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values of one family of comparisons (None stays None)."""
    known = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[i] = running
    return adjusted


def tost(comparison: Comparison, margin: float) -> float | None:
    """p-value of equivalence: the larger of the one-sided tests that the mean gain is above
    ``-margin`` and below ``+margin``. None when it cannot be tested (one seed, no margin)."""
    if comparison.sd is None or not margin or margin <= 0:
        return None
    se = comparison.sd / math.sqrt(comparison.n)
    if se == 0:
        return 0.0 if abs(comparison.mean) < margin else 1.0
    df = comparison.n - 1
    lower = scipy_stats.t.sf((comparison.mean + margin) / se, df)
    upper = scipy_stats.t.cdf((comparison.mean - margin) / se, df)
    return float(max(lower, upper))


def expected_direction(paper_gain: float | None) -> str:
    """What the paper expects of a comparison: the sign of its gain, or "better" where it prints no
    number for the row (its conclusion is that SE helps)."""
    if paper_gain is None or paper_gain > 0:
        return "better"
    return "worse" if paper_gain < 0 else "equal"


def outcome(comparison: Comparison, expected: str, margin: float | None,
            p_adjusted: float | None = None) -> str:
    """One of :data:`OUTCOMES` for ``comparison`` against the paper's ``expected`` direction.

    ``margin`` is the paper's effect size (points) used for equivalence; ``p_adjusted`` the
    comparison's p-value after :func:`holm` (default: its own)."""
    if expected not in DIRECTIONS:
        raise ValueError(f"expected={expected!r} is not one of {', '.join(DIRECTIONS)}")
    p = comparison.p if p_adjusted is None else p_adjusted
    if p is not None and p < ALPHA and comparison.mean != 0:
        observed = "better" if comparison.mean > 0 else "worse"
        if expected != "equal":
            return "holds" if observed == expected else "contradicted"
        return "contradicted"
    equivalence = tost(comparison, margin) if margin else None
    if equivalence is not None and equivalence < ALPHA:
        return "equivalent"
    return "inconclusive"
