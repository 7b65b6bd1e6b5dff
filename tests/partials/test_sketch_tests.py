"""Two-sample drift tests from merged states.

Above the size bound the window's values are a KLL sketch: ks, mannw and energy
then take order statistics of the sketch (with the true count) and state a bound
on their statistic. Each trial merges sketched partitions in random order and
compares with scipy on the raw samples: the statistic must lie within the stated
bound, and the p-value between the p-values scipy's own formula gives at the
two ends of that bound. DataSketches states its rank error at 99 % confidence
and KLL's coin flips cannot be seeded, so (as in test_partial_sketch.py) at most
2 of ``TRIALS`` trials may exceed the bound: with a 1 % chance per trial, 3 or
more do with probability below 0.8 %.

t_test needs only counts, means and variances: from merged moments it equals
scipy's ``ttest_ind`` on the raw samples within 1e-12 relative."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from partial_helpers import merge_randomly, sketch_data
from scipy import special, stats

from rulesengine.monitors.drift.methods import (
    Estimated,
    Summary,
    estimated_sample_method,
    t_test,
)
from rulesengine.monitors.drift.profiles import SKETCH_POINTS
from rulesengine.partials import RANK_ERROR, Moments, ValueCounts
from rulesengine.partials.order import order_statistics

TRIALS = 30
REF_ROWS = 3_000  # an exact reference sample
CUR_ROWS = 40_000
PARTS = 5
LIMIT = 500  # a small bound, so that every partition becomes a sketch


def _estimated(values: np.ndarray, seed: int) -> Estimated:
    states = [ValueCounts.of(p, limit=LIMIT) for p in np.array_split(values, PARTS)]
    merged = merge_randomly(states, random.Random(seed))
    assert merged.approximate and merged.n == values.size
    return Estimated(order_statistics(merged, SKETCH_POINTS), merged.n, merged.bound)


def _ks_p(d: float, n1: int, n2: int) -> float:
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(stats.kstwo.sf(min(max(d, 0.0), 1.0), np.round(m * n / (m + n))))


def _mwu_p(u1: float, n1: int, n2: int, ties: float) -> float:
    """scipy's asymptotic two-sided p-value at U1 (tie term given)."""
    u = max(u1, n1 * n2 - u1)
    s = math.sqrt(n1 * n2 / 12 * ((n1 + n2 + 1) - ties / ((n1 + n2) * (n1 + n2 - 1))))
    return float(np.clip(2 * special.ndtr(-(u - n1 * n2 / 2 - 0.5) / s), 0, 1))


def _ties(ref: np.ndarray, cur: np.ndarray) -> float:
    _, t = np.unique(np.concatenate([ref, cur]), return_counts=True)
    return float(np.sum(t.astype(float) ** 3 - t))


def test_sketched_tests_within_their_bounds() -> None:
    rng = np.random.default_rng(20261208)
    worst = {"ks": 0.0, "mannw": 0.0, "energy": 0.0}
    over = dict.fromkeys(worst, 0)
    for trial in range(TRIALS):
        ref = np.sort(sketch_data(rng, trial, REF_ROWS, 0.0))
        cur = sketch_data(rng, trial, CUR_ROWS, 0.05 * (trial % 4))
        est = _estimated(cur, trial)
        assert est.cdf_error == RANK_ERROR + 1 / SKETCH_POINTS
        n1, n2 = ref.size, cur.size

        ks = estimated_sample_method("ks", ref, n1, 0.0, est)
        truth = stats.ks_2samp(ref, cur)  # asymptotic: the window has > 10,000 values
        ks_err = abs(ks.statistic - truth.statistic)
        assert ks.bound == est.cdf_error
        # the p-value: Smirnov's at the estimate, between its values at the bound's ends
        assert ks.p_value == pytest.approx(_ks_p(ks.statistic, n1, n2), rel=1e-12)
        if ks_err <= ks.bound:
            low = _ks_p(truth.statistic + ks.bound, n1, n2)
            high = _ks_p(truth.statistic - ks.bound, n1, n2)
            assert low * (1 - 1e-9) <= ks.p_value <= high * (1 + 1e-9)

        mw = estimated_sample_method("mannw", ref, n1, 0.0, est)
        truth = stats.mannwhitneyu(ref, cur)
        mw_err = abs(mw.statistic - truth.statistic) / (n1 * n2)
        assert mw.bound == pytest.approx(est.cdf_error * n1 * n2, rel=1e-12)
        if mw_err * n1 * n2 <= mw.bound:
            ties = _ties(ref, cur)
            ends = [_mwu_p(truth.statistic + s * mw.bound, n1, n2, ties) for s in (-1, 1)]
            # p is largest at U = n·m/2: inside the bound's range, it may reach 1
            middle = abs(truth.statistic - n1 * n2 / 2) <= mw.bound
            # the tie term is estimated from the sketch too: allow it 0.1 %
            assert min(ends) * (1 - 1e-3) <= mw.p_value
            assert mw.p_value <= (1.0 if middle else max(ends) * (1 + 1e-3))

        en = estimated_sample_method("energy", ref, n1, 0.0, est)
        en_err = abs(en.statistic - stats.energy_distance(ref, cur))
        span = cur.max() - cur.min()
        assert en.bound == pytest.approx(math.sqrt(2 * span) * est.cdf_error, rel=1e-12)

        for name, err, bound in (
            ("ks", ks_err, ks.bound),
            ("mannw", mw_err * n1 * n2, mw.bound),
            ("energy", en_err, en.bound),
        ):
            worst[name] = max(worst[name], err / bound)
            over[name] += err > bound
    print(f"\nworst error / bound over {TRIALS} trials:", worst)
    assert all(n <= 2 for n in over.values()), over


def test_order_statistics_stand_for_the_values_within_one_over_their_number() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.lognormal(0, 1, 20_000), 2)  # ties too
    state = ValueCounts.of(x)
    xs = np.sort(x)
    for points in (2, 7, 1000, 50_001):
        sample = order_statistics(state, points)
        assert sample[0] == xs[0] and sample[-1] == xs[-1]
        probes = np.concatenate([xs, xs - 1e-9])
        f = np.searchsorted(xs, probes, side="right") / xs.size
        g = np.searchsorted(sample, probes, side="right") / points
        assert np.max(np.abs(f - g)) <= 1 / points + 1e-15, points
    sketched = ValueCounts.of(x, limit=LIMIT)
    sample = order_statistics(sketched, 1000)
    assert sample[0] == xs[0] and sample[-1] == xs[-1]  # a sketch keeps min and max
    with pytest.raises(ValueError):
        order_statistics(state, 1)


@pytest.mark.parametrize("shift", [0.0, 0.3, -2.0])
def test_t_test_from_merged_moments_equals_scipy(shift: float) -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(10.0, 2.0, 5_000)
    cur = rng.normal(10.0 + shift, 2.5, 7_000)
    parts = [Moments.of(p) for p in np.array_split(cur, 9)]
    merged = merge_randomly(parts, random.Random(3))
    got = t_test(Summary.of(ref), Summary(merged.n, merged.mean, merged.m2))
    want = stats.ttest_ind(ref, cur)
    assert math.isclose(got.statistic, want.statistic, rel_tol=1e-12)
    assert math.isclose(got.p_value, want.pvalue, rel_tol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_t_test_edges_give_what_scipy_gives() -> None:
    one, two = np.ones(20), np.ones(30)
    assert math.isnan(t_test(Summary.of(one), Summary.of(two)).statistic)
    assert math.isnan(stats.ttest_ind(one, two).statistic)
    a, b = np.array([1.0, 2.0, 4.0]), np.array([3.0])  # one value: no variance
    want = stats.ttest_ind(a, b)
    got = t_test(Summary.of(a), Summary.of(b))
    assert math.isclose(got.statistic, want.statistic, rel_tol=1e-12)
    assert math.isclose(got.p_value, want.pvalue, rel_tol=1e-12)
