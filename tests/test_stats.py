"""One statistics vocabulary: paired t intervals, Holm, TOST, and the four outcomes."""
import math

import pytest
from scipy import stats as scipy_stats

from senet_core.study.stats import OUTCOMES, expected_direction, holm, outcome, paired, tost

BASE = {0: 10.0, 1: 11.0, 2: 10.5, 3: 10.2, 4: 10.9}


def test_paired_interval_and_p_value_are_scipys():
    row = {0: 9.1, 1: 10.4, 2: 9.2, 3: 9.9, 4: 10.1, 9: 1.0}         # seed 9 has no baseline: ignored
    c = paired(BASE, row)
    gains = [BASE[s] - row[s] for s in range(5)]
    assert c.n == 5 and c.mean == pytest.approx(sum(gains) / 5)
    low, high = scipy_stats.t.interval(0.95, 4, loc=c.mean, scale=scipy_stats.sem(gains))
    assert c.ci == pytest.approx((low, high)) and c.halfwidth == pytest.approx((high - low) / 2)
    assert c.p == pytest.approx(scipy_stats.ttest_rel(list(BASE.values()), [row[s] for s in range(5)]).pvalue)
    one = paired({0: 1.0}, {0: 0.5})
    assert one.n == 1 and one.ci is None and one.p is None and one.halfwidth == math.inf
    with pytest.raises(ValueError, match="no seed has both"):
        paired({0: 1.0}, {1: 1.0})


def test_holm_adjusts_in_step_down_order():
    adjusted = holm([0.01, 0.04, 0.03, None])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and adjusted[3] is None
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_tost_passes_only_when_the_interval_sits_inside_the_margin():
    tight = paired(BASE, {s: e - 0.01 * (s % 2) for s, e in BASE.items()})
    assert tost(tight, 0.5) < 0.05
    wide = paired(BASE, {0: 8.0, 1: 12.5, 2: 9.0, 3: 11.8, 4: 10.0})
    assert tost(wide, 0.5) > 0.05
    assert tost(paired({0: 1.0}, {0: 1.0}), 0.5) is None and tost(tight, 0) is None


@pytest.mark.parametrize("row,expected,margin,result", [
    ({0: 9.0, 1: 10.1, 2: 9.4, 3: 9.1, 4: 9.8}, "better", 1.0, "holds"),
    ({0: 11.0, 1: 12.2, 2: 11.4, 3: 11.3, 4: 12.0}, "better", 1.0, "contradicted"),
    ({0: 11.0, 1: 12.2, 2: 11.4, 3: 11.3, 4: 12.0}, "equal", 1.0, "contradicted"),
    ({0: 10.0, 1: 11.05, 2: 10.45, 3: 10.2, 4: 10.92}, "equal", 0.5, "equivalent"),
    ({0: 8.0, 1: 12.5, 2: 9.0, 3: 11.8, 4: 10.0}, "better", 0.5, "inconclusive"),
])
def test_outcomes(row, expected, margin, result):
    assert outcome(paired(BASE, row), expected, margin) == result
    assert result in OUTCOMES


def test_adjusted_p_value_and_direction():
    c = paired(BASE, {0: 9.0, 1: 10.1, 2: 9.4, 3: 9.1, 4: 9.8})
    assert outcome(c, "better", None, p_adjusted=0.2) == "inconclusive"
    assert outcome(paired({0: 1.0}, {0: 0.0}), "better", 1.0) == "inconclusive"
    assert [expected_direction(g) for g in (None, 0.5, -0.2, 0.0)] == ["better", "better", "worse", "equal"]
    with pytest.raises(ValueError, match="expected='up'"):
        outcome(c, "up", None)


def test_correlation_says_how_much_pairing_removes():
    from senet_core.study.stats import correlation

    base = {0: 10.0, 1: 11.0, 2: 12.0, 3: 13.0}
    assert correlation(base, {s: e - 1 for s, e in base.items()}) == pytest.approx(1.0)
    assert correlation(base, {0: 12.0, 1: 11.0, 2: 10.0, 3: 9.0}) == pytest.approx(-1.0)
    assert correlation(base, {0: 1.0, 1: 2.0}) is None                  # fewer than 3 pairs
    assert correlation(base, {s: 5.0 for s in base}) is None            # constant
