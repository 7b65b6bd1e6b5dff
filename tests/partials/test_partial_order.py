"""Order statistics under the size bound: value counts per random partition,
through the Polars aggregates (in a ``group_by().agg()`` and keyed by value),
merged in random order and grouping, give exactly what NumPy, Polars and scipy
give on the raw rows; the switch to a sketch above the bound, and never with
``exact=True``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from partial_helpers import split_rows, through_keyed, through_partials, values_st
from scipy import stats

from rulesengine.partials import ValueCounts, ValuesOf, auc, ks_statistic, mann_whitney_u, order

SETTINGS = settings(max_examples=60, deadline=None)
LEVELS = [0.0, 0.01, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0]


@SETTINGS
@given(split_rows(), st.lists(st.floats(0, 1), max_size=3), st.booleans())
def test_quantiles_and_cdf_exact(case, extra_levels, keyed) -> None:
    values, parts, seed = case
    df = pl.DataFrame({"x": values}, schema={"x": pl.Float64})
    agg = ValuesOf(pl.col("x"))
    if keyed:
        state = through_keyed(df, parts, agg, seed)
    else:
        state = through_partials(df, parts, {"v": agg}, seed)["v"]
    raw = np.array([v for v in values if v is not None], dtype=float)
    assert state.n == raw.size and not state.approximate
    if raw.size == 0:
        assert state.quantile(0.5).value is None
        return
    for q in LEVELS + extra_levels:
        numpy_q = state.quantile(q, lerp="numpy")
        # bit for bit: NumPy's linear method, and Polars' (today's engine)
        assert numpy_q.value == float(np.quantile(raw, q, method="linear")), q
        nulls = len(values) - raw.size
        assert state.quantile(q, nulls=nulls).value == df["x"].quantile(q, "linear"), q
        assert numpy_q.details() == {}
    for x in [*raw[:5], -7.5, 0.0, 1e7]:
        assert state.cdf(float(x)).value == np.count_nonzero(raw <= x) / raw.size


@pytest.mark.parametrize("offsets", [True, False])
def test_the_null_offset_of_each_polars(monkeypatch, offsets) -> None:
    """Polars up to 2.1 positions a linear quantile past the nulls, 2.2 among
    the values alone: over [null, 0, 1] at q = 0.01 the fraction is 1.01 − 1 in
    the first and 0.01 in the second (by hand), and the state follows the probe."""
    monkeypatch.setattr(order, "polars_offsets_nulls", lambda: offsets)
    state = ValueCounts.of([0.0, 1.0])
    assert (1.0 + 0.01) - 1.0 == 0.010000000000000009  # the fraction past one null
    want = 0.010000000000000009 if offsets else 0.01
    assert state.quantile(0.01, nulls=1).value == want
    assert state.quantile(0.01, nulls=0).value == 0.01
    assert state.quantile(0.01, lerp="numpy", nulls=1).value == 0.01


def test_the_probe_matches_the_installed_polars() -> None:
    order.polars_offsets_nulls.cache_clear()
    single = pl.Series([None, None, 0.0, 0.5, 1.0]).quantile(0.01, "linear")
    assert ValueCounts.of([0.0, 0.5, 1.0]).quantile(0.01, nulls=2).value == single
    assert order.polars_offsets_nulls() == (single != 0.01)  # 0.5 · 0.02, or 0.5 · (2.02 − 2)


def test_nan_sorts_last_as_in_polars() -> None:
    x = [1.0, float("nan"), 3.0, 3.0, float("nan")]
    state = ValueCounts.of(x)
    assert state.nans == 2 and state.n == 3
    for q in LEVELS:
        want = pl.Series(x).quantile(q, "linear")
        got = state.quantile(q).value
        assert (np.isnan(got) and np.isnan(want)) or got == want, q
    assert np.isnan(ks_statistic(state, ValueCounts.of([1.0])).value)


two_samples_st = st.tuples(
    st.lists(values_st, min_size=1, max_size=40),
    st.lists(values_st, min_size=1, max_size=40),
    st.integers(1, 5),
    st.integers(0, 2**32),
)


def _split(values: list[float], k: int, seed: int) -> ValueCounts:
    """Value counts of ``values`` built from ``k`` interleaved slices, merged
    right to left (a different grouping than the other side's)."""
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, k, size=len(values))
    states = [
        ValueCounts.of([v for v, p in zip(values, parts, strict=True) if p == i]) for i in range(k)
    ]
    out = states[-1]
    for s in reversed(states[:-1]):
        out = s.merge(out)
    return out


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@SETTINGS
@given(two_samples_st)
def test_ks_and_mann_whitney_exact(case) -> None:
    a, b, k, seed = case
    sa, sb = _split(a, k, seed), _split(b, k, seed + 1)
    assert ks_statistic(sa, sb).value == stats.ks_2samp(a, b).statistic
    assert mann_whitney_u(sa, sb).value == stats.mannwhitneyu(a, b).statistic
    # AUC against every (positive, negative) pair, ties counting half, in exact fractions
    pairs = sum(Fraction(1) if p > n else Fraction(1, 2) if p == n else 0 for p in a for n in b)
    got = auc(sa, sb)
    assert got.value == pytest.approx(float(pairs / (len(a) * len(b))), rel=1e-15, abs=0)
    assert not got.approximate and got.rank_error == 0.0


def test_auc_matches_the_engines_rank_sum_form() -> None:
    """The engine's roc_auc: (rank sum of positives − pos(pos+1)/2) / (pos·neg)."""
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(500), 2)  # ties
    labels = rng.random(500) < 0.3
    df = pl.DataFrame({"s": scores, "y": labels})
    rank_pos = df.select(pl.col("s").rank("average").filter(pl.col("y")).sum()).item()
    pos, neg = int(labels.sum()), int((~labels).sum())
    want = (rank_pos - pos * (pos + 1) / 2) / (pos * neg)
    assert auc(ValueCounts.of(scores[labels]), ValueCounts.of(scores[~labels])).value == want


def test_switches_to_a_sketch_above_the_limit() -> None:
    a = ValueCounts.of(np.arange(6.0), limit=10)
    b = ValueCounts.of(np.arange(3.0, 9.0), limit=10)  # 9 distinct together: still exact
    assert not a.merge(b).approximate
    c = ValueCounts.of(np.arange(20.0, 30.0), limit=10)
    merged = a.merge(b).merge(c)  # 19 distinct: a sketch
    assert merged.approximate and merged.n == 22 and merged.values.size == 0
    est = merged.quantile(0.5)
    assert est.approximate and est.details() == {"approximate": True, "rank_error": est.rank_error}
    assert est.rank_error == pytest.approx(0.00142, abs=1e-5)  # k = 2000
    # a sketch's small inputs are kept whole (KLL keeps everything below k items)
    assert est.value == 7.0  # the 11th of 22: ≤ 7 holds half the values
    # merging further, either way round, stays a sketch and counts every row
    assert c.merge(merged).n == merged.merge(c).n == 32


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 50).map(float), min_size=1, max_size=80), st.integers(1, 6))
def test_exact_true_never_switches(values, k) -> None:
    """With ``exact=True`` the limit is ignored: merged states stay exact and
    equal to NumPy, however many distinct values they hold."""
    parts = [ValueCounts.of(values[i::k], exact=True, limit=2) for i in range(k)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert not merged.approximate
    assert merged.values.size == len(set(values))
    assert merged.quantile(0.9, lerp="numpy").value == np.quantile(values, 0.9)


def test_states_kept_differently_do_not_merge() -> None:
    with pytest.raises(ValueError, match="exact/limit/k"):
        ValueCounts.of([1.0], exact=True).merge(ValueCounts.of([2.0]))
    with pytest.raises(ValueError, match="exact/limit/k"):
        ValueCounts.of([1.0], k=200).merge(ValueCounts.of([2.0]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(values_st, max_size=20), min_size=1, max_size=6))
def test_merge_many_equals_merging_one_by_one(parts: list[list[float]]) -> None:
    from rulesengine.partials.order import merge_many

    states = [ValueCounts.of(p) for p in parts]
    one_by_one = states[0]
    for s in states[1:]:
        one_by_one = one_by_one.merge(s)
    assert merge_many(states) == one_by_one
