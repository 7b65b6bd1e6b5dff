"""Unit tests of rulesengine.monitors.drift.methods against scipy on raw samples and
hand-computed tables.

Exact methods must agree with scipy (called here on the raw, unsorted samples)
to 1e-9 relative; where a brute-force definition is cheap (KS, Mann–Whitney U,
Welch-free t, energy, two-proportion z) it is written out here as well, so the
check does not rest on the same scipy call the engine makes. Histogram
distances (PSI, KL, Jensen–Shannon, Hellinger, TVD) are checked on small tables
whose values are worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from rulesengine.monitors.drift.methods import (
    auto_method,
    categorical_test,
    cell_integrals,
    drifted,
    histogram_method,
    sample_method,
    smooth,
    threshold_op,
    wasserstein_cells,
)
from rulesengine.monitors.drift.vocabulary import (
    CATEGORICAL_ONLY,
    HISTOGRAM_METHODS,
    METHODS,
    NUMERIC_ONLY,
    SAMPLE_METHODS,
)

REL = 1e-9


def close(actual: float, expected: float, rel: float = REL, abs_: float = 0.0) -> bool:
    return math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_)


# ------------------------------------------------------------------ method table

# The issue's table: (p-value or distance, default threshold, comparison meaning drift)
ISSUE_DEFAULTS = {
    "ks": ("p", 0.05, "le"),
    "chisquare": ("p", 0.05, "lt"),
    "z": ("p", 0.05, "lt"),
    "g_test": ("p", 0.1, "lt"),
    "fisher_exact": ("p", 0.1, "lt"),
    "anderson": ("p", 0.1, "lt"),
    "cramer_von_mises": ("p", 0.1, "le"),
    "mannw": ("p", 0.05, "lt"),
    "t_test": ("p", 0.05, "lt"),
    "psi": ("d", 0.1, "ge"),
    "kl_div": ("d", 0.1, "ge"),
    "jensenshannon": ("d", 0.1, "ge"),
    "hellinger": ("d", 0.1, "ge"),
    "tvd": ("d", 0.1, "ge"),
    "energy": ("d", 0.1, "ge"),
    "wasserstein": ("d", 0.1, "ge"),
}


def test_method_table_matches_the_issue():
    assert dict(METHODS) == ISSUE_DEFAULTS
    assert {"ks", "anderson", "cramer_von_mises", "mannw", "t_test", "energy"} == SAMPLE_METHODS
    assert {"psi", "kl_div", "jensenshannon", "hellinger", "tvd"} == HISTOGRAM_METHODS
    assert {"chisquare", "z", "g_test", "fisher_exact"} == CATEGORICAL_ONLY
    assert SAMPLE_METHODS | {"wasserstein"} == NUMERIC_ONLY


@pytest.mark.parametrize("method", sorted(ISSUE_DEFAULTS))
def test_drifted_at_exactly_the_threshold(method):
    kind, t, rule = ISSUE_DEFAULTS[method]
    # at the threshold: drift for <=, >=; no drift for <
    assert drifted(method, t, t) is (rule != "lt")
    if kind == "p":
        assert drifted(method, t / 2, t) is True
        assert drifted(method, min(1.0, t * 2), t) is False
        assert threshold_op(method) == {"le": "at_or_below", "lt": "below"}[rule]
    else:
        assert drifted(method, t * 2, t) is True
        assert drifted(method, t / 2, t) is False
        assert threshold_op(method) == "at_or_above"


@pytest.mark.parametrize(
    ("numeric", "rows", "unique", "expected"),
    [
        (True, 1000, 6, "ks"),
        (True, 10, 1000, "ks"),
        (True, 1000, 5, "chisquare"),  # numeric with <= 5 values: categorical
        (True, 1000, 3, "chisquare"),
        (True, 1000, 2, "z"),
        (False, 1000, 3, "chisquare"),
        (False, 1000, 2, "z"),
        (False, 1000, 1, "z"),
        (True, 1001, 6, "wasserstein"),
        (True, 1001, 5, "jensenshannon"),
        (True, 10**6, 2, "jensenshannon"),
        (False, 1001, 2, "jensenshannon"),
        (False, 1001, 50, "jensenshannon"),
    ],
)
def test_auto_method_as_evidently(numeric, rows, unique, expected):
    assert auto_method(numeric, rows, unique) == expected


# ------------------------------------------------------------------ smoothing


def test_smooth_fills_zeros_with_1e_4():
    shares = np.array([0.5, 0.5, 0.0])
    out = smooth(shares)
    assert out.tolist() == [0.5, 0.5, 1e-4]
    assert shares.tolist() == [0.5, 0.5, 0.0]  # input untouched


def test_smooth_uses_a_millionth_of_the_smallest_share_when_it_is_tiny():
    # smallest nonzero share 1e-5 <= 1e-4: zeros become 1e-5 / 1e6 = 1e-11
    out = smooth(np.array([0.99999, 1e-5, 0.0, 0.0]))
    assert out[:2].tolist() == [0.99999, 1e-5]
    assert out[2:] == pytest.approx([1e-11, 1e-11], rel=1e-12)
    # exactly 1e-4 counts as "<= 1e-4"
    out = smooth(np.array([1 - 1e-4, 1e-4, 0.0]))
    assert out[2] == pytest.approx(1e-10, rel=1e-12)
    # just above: plain 1e-4
    out = smooth(np.array([1 - 2e-4, 2e-4, 0.0]))
    assert out[2] == 1e-4


def test_smooth_leaves_all_zero_and_zero_free_vectors():
    assert smooth(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert smooth(np.array([0.25, 0.75])).tolist() == [0.25, 0.75]


# ------------------------------------------------------------------ histogram tables

# Table A: ref 30/50/20, current 20/50/30 -> p = (.3, .5, .2), q = (.2, .5, .3).
#   PSI = (.2-.3) ln(.2/.3) + 0 + (.3-.2) ln(.3/.2) = 0.2 ln 1.5
#   KL(p||q) = .3 ln(.3/.2) + .2 ln(.2/.3) = 0.1 ln 1.5
#   JS: m = (.25, .5, .25); JSD = ½KL(p||m) + ½KL(q||m) = .3 ln 1.2 + .2 ln 0.8,
#       distance = sqrt(JSD)
#   Hellinger: BC = 2 sqrt(.06) + .5; H = sqrt(1 - BC)
#   TVD = ½ (.1 + 0 + .1) = 0.1
TABLE_A = (
    [30, 50, 20],
    [20, 50, 30],
    {
        "psi": 0.2 * math.log(1.5),
        "kl_div": 0.1 * math.log(1.5),
        "jensenshannon": math.sqrt(0.3 * math.log(1.2) + 0.2 * math.log(0.8)),
        "hellinger": math.sqrt(0.5 - 2 * math.sqrt(0.06)),
        "tvd": 0.1,
    },
)


@pytest.mark.parametrize("method", sorted(HISTOGRAM_METHODS))
def test_histogram_table_a(method):
    ref, cur, expected = TABLE_A
    out = histogram_method(method, np.array(ref), np.array(cur))
    assert close(out.value, expected[method])
    assert out.statistic == out.value
    assert out.p_value is None and out.bound is None


def test_histogram_table_a_literal_values():
    # the same numbers, as decimals worked out on paper
    ref, cur, _ = TABLE_A
    got = {m: histogram_method(m, np.array(ref), np.array(cur)).value for m in HISTOGRAM_METHODS}
    assert got["psi"] == pytest.approx(0.0810930216, abs=1e-10)
    assert got["kl_div"] == pytest.approx(0.0405465108, abs=1e-10)
    assert got["jensenshannon"] == pytest.approx(0.1003382120, abs=1e-9)
    assert got["hellinger"] == pytest.approx(0.1005089620, abs=1e-9)
    assert got["tvd"] == pytest.approx(0.1, abs=1e-15)


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def _js(p, q):
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return math.sqrt(0.5 * _kl(p, m) + 0.5 * _kl(q, m))


# Table B: a category the reference never had. ref 50/50/0, current 40/40/20.
#   p = (.5, .5, 0) -> smoothed (.5, .5, 1e-4); q = (.4, .4, .2) (nothing to smooth)
#   PSI = 2 (.4-.5) ln(.4/.5) + (.2-1e-4) ln(.2/1e-4)
#   KL and JS normalise the smoothed vector first (as scipy's entropy and
#   jensenshannon do): P = (.5, .5, 1e-4) / 1.0001
#   Hellinger and TVD use the raw shares: BC = 2 sqrt(.2); TVD = ½(.1+.1+.2) = .2
def test_histogram_table_b_zero_in_reference():
    ref, cur = np.array([50, 50, 0]), np.array([40, 40, 20])
    big_p = [0.5 / 1.0001, 0.5 / 1.0001, 1e-4 / 1.0001]
    q = [0.4, 0.4, 0.2]
    expected = {
        "psi": 2 * (-0.1) * math.log(0.8) + (0.2 - 1e-4) * math.log(0.2 / 1e-4),
        "kl_div": _kl(big_p, q),
        "jensenshannon": _js(big_p, q),
        "hellinger": math.sqrt(1 - 2 * math.sqrt(0.2)),
        "tvd": 0.2,
    }
    for method, value in expected.items():
        assert close(histogram_method(method, ref, cur).value, value), method
    # and the same through scipy, on the smoothed shares
    ps, qs = np.array([0.5, 0.5, 1e-4]), np.array(q)
    assert close(histogram_method("kl_div", ref, cur).value, stats.entropy(ps, qs))
    assert close(histogram_method("jensenshannon", ref, cur).value, distance.jensenshannon(ps, qs))


# Table C: a tiny reference share. ref 999990/10/0 -> (.99999, 1e-5, 0): the zero
# becomes 1e-5/1e6 = 1e-11. current 500/400/100 -> (.5, .4, .1), nothing to smooth.
#   PSI = (.5-.99999) ln(.5/.99999) + (.4-1e-5) ln(.4/1e-5) + (.1-1e-11) ln(.1/1e-11)
def test_histogram_table_c_tiny_share_smoothing():
    ref, cur = np.array([999990, 10, 0]), np.array([500, 400, 100])
    p = [0.99999, 1e-5, 1e-11]
    q = [0.5, 0.4, 0.1]
    psi = sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True))
    assert close(histogram_method("psi", ref, cur).value, psi)
    total = sum(p)
    big_p = [a / total for a in p]
    assert close(histogram_method("kl_div", ref, cur).value, _kl(big_p, q))


# Table D: zero on the current side. ref 30/50/20, current 60/40/0.
#   q = (.6, .4, 0) -> (.6, .4, 1e-4); PSI = (.6-.3) ln 2 + (.4-.5) ln .8 + (1e-4-.2) ln(5e-4)
def test_histogram_table_d_zero_in_current():
    ref, cur = np.array([30, 50, 20]), np.array([60, 40, 0])
    psi = 0.3 * math.log(2) + (-0.1) * math.log(0.8) + (1e-4 - 0.2) * math.log(1e-4 / 0.2)
    assert close(histogram_method("psi", ref, cur).value, psi)
    assert close(histogram_method("tvd", ref, cur).value, 0.5 * (0.3 + 0.1 + 0.2))
    # Hellinger: BC = sqrt(.18) + sqrt(.2) + 0
    bc = math.sqrt(0.18) + math.sqrt(0.2)
    assert close(histogram_method("hellinger", ref, cur).value, math.sqrt(1 - bc))


@pytest.mark.parametrize("method", sorted(HISTOGRAM_METHODS))
def test_cells_empty_on_both_sides_are_ignored(method):
    a = histogram_method(method, np.array([30, 50, 20]), np.array([20, 50, 30])).value
    b = histogram_method(method, np.array([30, 0, 50, 20, 0]), np.array([20, 0, 50, 30, 0])).value
    assert close(a, b)


@pytest.mark.parametrize("method", sorted(HISTOGRAM_METHODS))
def test_identical_tables_have_zero_distance(method):
    counts = np.array([3, 7, 11, 0, 5])
    assert histogram_method(method, counts, counts * 4).value == pytest.approx(0.0, abs=1e-7)


def test_histogram_method_rejects_other_methods():
    with pytest.raises(ValueError):
        histogram_method("ks", np.array([1, 2]), np.array([2, 1]))


# ------------------------------------------------------------------ categorical tests


def test_chisquare_against_scipy_and_by_hand():
    ref = np.array([120, 80, 50, 10])
    cur = np.array([40, 30, 25, 5])
    out = categorical_test("chisquare", ref, cur)
    expected = ref * cur.sum() / ref.sum()
    sp = stats.chisquare(cur, expected)
    assert close(out.value, sp.pvalue) and close(out.p_value, sp.pvalue)
    assert close(out.statistic, sp.statistic)
    by_hand = float(np.sum((cur - expected) ** 2 / expected))
    assert close(out.statistic, by_hand)
    assert close(out.p_value, stats.chi2.sf(by_hand, df=3))


def test_chisquare_ignores_categories_absent_on_both_sides():
    a = categorical_test("chisquare", np.array([120, 80, 50]), np.array([40, 30, 30]))
    b = categorical_test("chisquare", np.array([120, 0, 80, 50, 0]), np.array([40, 0, 30, 30, 0]))
    assert close(a.statistic, b.statistic) and close(a.p_value, b.p_value)


@pytest.mark.parametrize("method", ["chisquare", "g_test"])
def test_category_unseen_in_reference_is_drift(method):
    # the reference never saw the last category: expected 0, observed 3
    out = categorical_test(method, np.array([10, 20, 0]), np.array([5, 5, 3]))
    assert out.value == 0.0 and out.p_value == 0.0
    assert out.statistic == math.inf


def test_g_test_against_power_divergence_and_by_hand():
    ref = np.array([120, 80, 50, 10])
    cur = np.array([40, 30, 25, 0])  # an empty category on the current side
    out = categorical_test("g_test", ref, cur)
    expected = ref * cur.sum() / ref.sum()
    sp = stats.power_divergence(cur, expected, lambda_="log-likelihood")
    assert close(out.statistic, sp.statistic) and close(out.p_value, sp.pvalue)
    g = 2 * sum(o * math.log(o / e) for o, e in zip(cur, expected, strict=True) if o > 0)
    assert close(out.statistic, g)
    assert close(out.p_value, stats.chi2.sf(g, df=3))


def test_z_two_proportions_by_hand_and_against_chi2_contingency():
    ref = np.array([300, 200])  # reference: 200 / 500 in the second category
    cur = np.array([130, 170])  # current: 170 / 300
    out = categorical_test("z", ref, cur)
    p1, p2 = 200 / 500, 170 / 300
    pooled = 370 / 800
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 300))
    assert close(out.statistic, z)
    assert close(out.p_value, 2 * stats.norm.sf(abs(z)))
    # the two-proportion z-test is the uncorrected 2x2 chi-squared test: z² = χ²
    chi2 = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert close(out.statistic**2, chi2.statistic)
    assert close(out.p_value, chi2.pvalue, rel=1e-8)
    assert out.value == out.p_value


@pytest.mark.parametrize(
    ("ref", "cur"), [([500, 500], [360, 640]), ([500, 500], [300, 700]), ([900, 100], [300, 200])]
)
def test_z_p_value_in_the_far_tail(ref, cur):
    out = categorical_test("z", np.array(ref), np.array(cur))
    chi2 = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert chi2.pvalue < 1e-9
    assert close(out.p_value, chi2.pvalue)


def test_z_one_value_on_both_sides_is_no_drift():
    assert categorical_test("z", np.array([10]), np.array([5])).p_value == 1.0
    # an empty "unseen" bucket is dropped, leaving one category
    out = categorical_test("z", np.array([10, 0]), np.array([5, 0]))
    assert (out.value, out.statistic, out.p_value) == (1.0, 0.0, 1.0)


def test_z_one_reference_category_and_an_unseen_one():
    # reference: all "a"; current: 30 "a" and 10 unseen
    out = categorical_test("z", np.array([50, 0]), np.array([30, 10]))
    p1, p2, pooled = 0.0, 10 / 40, 10 / 90
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 50 + 1 / 40))
    assert close(out.statistic, z)
    assert close(out.p_value, 2 * stats.norm.sf(abs(z)))


def test_fisher_exact_against_scipy():
    ref = np.array([30, 20])
    cur = np.array([10, 25])
    out = categorical_test("fisher_exact", ref, cur)
    sp = stats.fisher_exact([[30, 20], [10, 25]])
    assert close(out.p_value, sp.pvalue) and close(out.value, sp.pvalue)
    # odds ratio (30·25)/(20·10), whichever way round the table is laid out
    assert close(out.statistic, 3.75)
    assert close(out.statistic, sp.statistic)


@pytest.mark.parametrize("method", ["z", "fisher_exact"])
def test_binary_tests_refuse_three_categories(method):
    with pytest.raises(ValueError, match="binary"):
        categorical_test(method, np.array([1, 2, 3]), np.array([3, 2, 1]))


# ------------------------------------------------------------------ sample methods

RNG = np.random.default_rng(20240607)
REF = RNG.normal(0.0, 1.0, 400)
CUR = RNG.normal(0.25, 1.3, 300)
REF_TIES = RNG.integers(0, 30, 400).astype(float)
CUR_TIES = RNG.integers(2, 33, 250).astype(float)


def scipy_sample(method: str, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    if method == "ks":
        r = stats.ks_2samp(ref, cur)
    elif method == "anderson":
        r = stats.anderson_ksamp([ref, cur], variant="midrank")
    elif method == "cramer_von_mises":
        r = stats.cramervonmises_2samp(ref, cur)
    elif method == "mannw":
        r = stats.mannwhitneyu(ref, cur, alternative="two-sided")
    elif method == "t_test":
        r = stats.ttest_ind(ref, cur, equal_var=True)
    elif method == "energy":
        return float(stats.energy_distance(ref, cur)), None
    else:  # pragma: no cover
        raise AssertionError(method)
    return float(r.statistic), float(r.pvalue)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("data", ["continuous", "ties"])
@pytest.mark.parametrize("method", sorted(SAMPLE_METHODS))
def test_sample_methods_against_scipy_on_raw_samples(method, data):
    ref, cur = (REF, CUR) if data == "continuous" else (REF_TIES, CUR_TIES)
    # the engine hands over the sorted reference; scipy here sees the raw order
    out = sample_method(method, np.sort(ref), cur)
    statistic, p = scipy_sample(method, ref, cur)
    assert close(out.statistic, statistic)
    if p is None:
        assert out.p_value is None and out.value == out.statistic
    else:
        assert close(out.p_value, p) and out.value == out.p_value


def test_ks_statistic_is_the_largest_ecdf_gap():
    out = sample_method("ks", REF_TIES, CUR_TIES)
    grid = np.union1d(REF_TIES, CUR_TIES)
    f_ref = np.array([np.mean(np.less_equal(REF_TIES, x)) for x in grid])
    f_cur = np.array([np.mean(np.less_equal(CUR_TIES, x)) for x in grid])
    assert close(out.statistic, float(np.max(np.abs(f_ref - f_cur))))


def test_mann_whitney_u_counts_pairs():
    out = sample_method("mannw", REF_TIES, CUR_TIES)
    diff = REF_TIES[:, None] - CUR_TIES[None, :]
    u = float(np.sum(diff > 0) + 0.5 * np.sum(diff == 0))
    assert close(out.statistic, u)


def test_t_statistic_pooled_variance():
    out = sample_method("t_test", REF, CUR)
    n1, n2 = len(REF), len(CUR)
    sp2 = ((n1 - 1) * REF.var(ddof=1) + (n2 - 1) * CUR.var(ddof=1)) / (n1 + n2 - 2)
    t = (REF.mean() - CUR.mean()) / math.sqrt(sp2 * (1 / n1 + 1 / n2))
    assert close(out.statistic, t)
    assert close(out.p_value, 2 * stats.t.sf(abs(t), n1 + n2 - 2))


def test_energy_distance_pairwise_definition():
    # scipy's energy distance: sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)
    out = sample_method("energy", REF, CUR)
    xy = np.abs(REF[:, None] - CUR[None, :]).mean()
    xx = np.abs(REF[:, None] - REF[None, :]).mean()
    yy = np.abs(CUR[:, None] - CUR[None, :]).mean()
    assert close(out.value, math.sqrt(2 * xy - xx - yy), rel=1e-9)


def test_sample_method_rejects_other_methods():
    with pytest.raises(ValueError):
        sample_method("psi", REF, CUR)


# ------------------------------------------------------------------ wasserstein


def test_cell_integrals_by_hand():
    # reference values 0.5, 1, 2 over (0, 3] with one edge at 1: cells (0,1], (1,3]
    #   ∫_0^1 F = 0.5 · 1/3 = 1/6  (F = 1/3 on [0.5, 1))
    #   ∫_1^3 F = 1 · 2/3 + 1 · 1 = 5/3
    values = np.array([0.5, 1.0, 2.0])
    widths, cdf_left, integrals = cell_integrals(
        np.array([1.0]), np.array([2.0, 1.0]), np.array([1.5, 2.0]), 0.0, 3.0
    )
    assert widths.tolist() == [1.0, 2.0]
    assert np.allclose(cdf_left, [0.0, 2 / 3], rtol=0, atol=1e-15)
    assert np.allclose(integrals, [1 / 6, 5 / 3], rtol=1e-12)
    # the integrals add up to ∫_0^3 F = 3 - mean(values)
    assert close(float(integrals.sum()), 3.0 - values.mean(), rel=1e-12)


def fine_cells(ref: np.ndarray, cur: np.ndarray, cells: int = 1000):
    """Independent cells: reference quantiles at k/cells, right-closed, outer
    cells open-ended; counts and sums on both sides."""
    edges = np.unique(np.quantile(ref, np.arange(1, cells) / cells))
    k = len(edges) + 1
    ir = np.digitize(ref, edges, right=True)
    ic = np.digitize(cur, edges, right=True)
    return (
        edges,
        np.bincount(ir, minlength=k).astype(float),
        np.bincount(ir, weights=ref, minlength=k),
        np.bincount(ic, minlength=k).astype(float),
        np.bincount(ic, weights=cur, minlength=k),
        float(min(ref.min(), cur.min())),
        float(max(ref.max(), cur.max())),
    )


def scipy_wasserstein_normed(ref: np.ndarray, cur: np.ndarray) -> float:
    return stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)


def test_wasserstein_exact_when_the_cdfs_do_not_cross_inside_a_cell():
    # every current value lies above every reference value: F_ref - F_cur >= 0
    # everywhere, so the cell integrals give W1 exactly
    rng = np.random.default_rng(7)
    ref = rng.normal(0, 1, 2000)
    cur = rng.normal(10, 1, 1500)
    assert cur.min() > ref.max()
    out = wasserstein_cells(*fine_cells(ref, cur), float(np.std(ref)))
    assert close(out.value, scipy_wasserstein_normed(ref, cur))
    assert out.p_value is None and out.statistic == out.value


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3, 1.0])
def test_wasserstein_within_its_bound_on_smooth_data(shift):
    rng = np.random.default_rng(11)
    ref = rng.normal(0, 2, 5000)
    cur = rng.normal(shift, 2.2, 3000)
    out = wasserstein_cells(*fine_cells(ref, cur), float(np.std(ref)))
    expected = scipy_wasserstein_normed(ref, cur)
    assert out.bound is not None and 0 <= out.bound < 0.01  # small next to 0.1
    assert abs(out.value - expected) <= out.bound + 1e-12
    assert out.value <= expected + 1e-12  # Σ|∫D| never exceeds ∫|D|


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_wasserstein_outer_cells_are_integrated_exactly_from_their_values(seed):
    # no value falls in the inner cells, so every bit of the distance lies in the
    # two outer cells, which the tails give exactly: scipy's value, to 1e-9
    rng = np.random.default_rng(seed)
    ref = np.r_[rng.normal(-3, 1, 700), rng.normal(4, 2, 1300)]
    cur = np.r_[rng.normal(-2, 1.5, 900), rng.normal(3.5, 1, 600)]
    ref, cur = ref[np.abs(ref) > 1], cur[np.abs(cur) > 1]
    edges = np.array([-0.5, 0.0, 0.5])

    def side(x):
        cell = np.searchsorted(edges, x, side="right")  # left-closed cells
        counts = np.bincount(cell, minlength=4).astype(float)
        sums = np.bincount(cell, weights=x, minlength=4)
        return counts, sums, np.sort(x[cell == 0]), np.sort(x[cell == 3])

    rc, rs, r_low, r_high = side(ref)
    cc, cs, c_low, c_high = side(cur)
    out = wasserstein_cells(
        edges, rc, rs, cc, cs, -0.5, 0.5, float(np.std(ref)), (r_low, r_high, c_low, c_high)
    )
    assert out.bound == 0.0
    assert close(out.value, scipy_wasserstein_normed(ref, cur))


def test_wasserstein_norm_floor_is_0_001():
    # a reference with std below 0.001 is normed by 0.001 (Evidently)
    ref = np.array([1.0, 1.0, 1.0, 1.0001])
    cur = np.array([2.0, 2.0])
    out = wasserstein_cells(*fine_cells(ref, cur, cells=4), float(np.std(ref)))
    assert np.std(ref) < 0.001
    assert close(out.value, stats.wasserstein_distance(ref, cur) / 0.001)


@pytest.mark.parametrize("case", ["constant", "two_values"])
def test_wasserstein_bound_holds_for_point_masses(case):
    rng = np.random.default_rng(5)
    ref = rng.normal(0, 1, 5000)
    cur = np.full(2000, 0.1234) if case == "constant" else rng.choice([-0.5, 0.7], 3000)
    out = wasserstein_cells(*fine_cells(ref, cur), float(np.std(ref)))
    expected = scipy_wasserstein_normed(ref, cur)
    assert abs(out.value - expected) <= out.bound + 1e-12
