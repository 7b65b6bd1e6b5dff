"""Counts, sums, moments, extremes, categories, confusion and cell histograms:
raw rows split into random partitions, partial states per partition through the
Polars aggregates, merged in random order and grouping, equal the single-pass
oracle on the raw rows (Python, NumPy; Polars for today's single pass)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from partial_helpers import split_rows, through_keyed, through_partials

from rulesengine.partials import (
    CategoriesOf,
    CategoryCounts,
    CellCounts,
    CellsOf,
    Confusion,
    ConfusionOf,
    CountsOf,
    ExtremesOf,
    Moments,
    MomentsOf,
    Sum,
    SumOf,
)

SETTINGS = settings(max_examples=60, deadline=None)


def close(got: float | None, want: float, scale: float) -> bool:
    """Within 1e-12 of ``scale`` (the size the rounding errors are relative to)."""
    assert got is not None
    return abs(got - want) <= 1e-12 * max(scale, abs(want), 1e-300)


@SETTINGS
@given(split_rows())
def test_counts_sums_moments_extremes(case) -> None:
    values, parts, seed = case
    df = pl.DataFrame({"x": values}, schema={"x": pl.Float64})
    x = pl.col("x")
    aggs = {
        "counts": CountsOf.column("x"),
        "sum": SumOf(x),
        "moments": MomentsOf(x),
        "extremes": ExtremesOf(x),
    }
    got = through_partials(df, parts, aggs, seed)
    raw = np.array([v for v in values if v is not None], dtype=float)

    nulls = sum(v is None for v in values)
    assert got["counts"].counts == {"rows": len(values), "non_null": raw.size, "nulls": nulls}
    assert got["counts"].rate("nulls", "rows") == nulls / len(values)

    scale = float(np.abs(raw).sum())
    assert close(got["sum"].total, math.fsum(raw), scale)

    m = got["moments"]
    assert m.n == raw.size
    if raw.size == 0:
        assert m.average() is None and m.variance(0) is None
        assert got["extremes"].minimum is None and got["extremes"].maximum is None
        return
    big = float(np.max(np.abs(raw)))
    assert close(m.average(), float(np.mean(raw)), big)
    assert close(m.variance(ddof=0), float(np.var(raw)), big**2)
    assert close(m.std(ddof=0), float(np.std(raw)), big)
    if raw.size > 1:
        assert close(m.variance(ddof=1), float(np.var(raw, ddof=1)), big**2)
        # and today's single pass, Polars' std as the engine's `std` metric runs it
        assert close(m.std(ddof=1), df["x"].std(ddof=1), big)
    else:
        assert m.variance(ddof=1) is None and df["x"].std(ddof=1) is None
    assert close(m.average(), df["x"].mean(), big)
    assert got["extremes"].minimum == raw.min() == df["x"].min()
    assert got["extremes"].maximum == raw.max() == df["x"].max()


@SETTINGS
@given(split_rows(st.one_of(st.none(), st.integers(-(2**40), 2**40))))
def test_integer_sums_and_extremes_are_exact(case) -> None:
    values, parts, seed = case
    df = pl.DataFrame({"x": values}, schema={"x": pl.Int64})
    got = through_partials(df, parts, {"s": SumOf(pl.col("x")), "e": ExtremesOf(pl.col("x"))}, seed)
    raw = [v for v in values if v is not None]
    assert got["s"].total == sum(raw) and isinstance(got["s"].total, int)
    assert got["e"].minimum == (min(raw) if raw else None)
    assert got["e"].maximum == (max(raw) if raw else None)


def test_float_sum_merge_is_compensated() -> None:
    """Merging adds no rounding of its own: 1e16 + 1 − 1e16 in partials gives 1."""
    merged = Sum(1e16).merge(Sum(1.0)).merge(Sum(-1e16))
    assert merged.total == 1.0
    assert Sum.of([0.1] * 10).total == math.fsum([0.1] * 10)


def test_moments_chan_merge_by_hand() -> None:
    """[1, 2] and [4]: n 3, mean 7/3, M2 = 1/2 + 0 + (4 − 1.5)²·2·1/3 = 14/3."""
    m = Moments.of([1.0, 2.0]).merge(Moments.of([4.0]))
    assert m.n == 3
    assert m.mean == pytest.approx(7 / 3, rel=1e-15)
    assert m.m2 == pytest.approx(14 / 3, rel=1e-15)
    assert Moments().merge(m) == m == m.merge(Moments())


labels_st = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "é"]))


@SETTINGS
@given(split_rows(labels_st))
def test_category_counts_both_ways(case) -> None:
    labels, parts, seed = case
    df = pl.DataFrame({"c": labels}, schema={"c": pl.String})
    want = Counter(labels)
    in_agg = through_partials(df, parts, {"c": CategoriesOf(pl.col("c"))}, seed)["c"]
    keyed = through_keyed(df, parts, CategoriesOf(pl.col("c")), seed)
    assert dict(in_agg.counts) == dict(want) == dict(keyed.counts)
    vector, other, nulls = in_agg.aligned(["a", "b"])
    assert list(vector) == [want["a"], want["b"]]
    assert other == want["c"] + want["d"] + want["é"] and nulls == want[None]


@SETTINGS
@given(split_rows(st.tuples(st.one_of(st.none(), st.booleans()), st.booleans())))
def test_confusion_counts(case) -> None:
    rows, parts, seed = case
    df = pl.DataFrame(
        {"y": [r[0] for r in rows], "p": [r[1] for r in rows]},
        schema={"y": pl.Boolean, "p": pl.Boolean},
    )
    got = through_partials(df, parts, {"c": ConfusionOf(pl.col("y"), pl.col("p"))}, seed)["c"]
    tp = sum(1 for y, p in rows if y is True and p)
    fp = sum(1 for y, p in rows if y is False and p)
    fn = sum(1 for y, p in rows if y is True and not p)
    tn = sum(1 for y, p in rows if y is False and not p)
    assert got == Confusion(tp, fp, fn, tn)
    assert got.metric("recall") == (tp / (tp + fn) if tp + fn else None)
    assert got.metric("f1") == (2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None)


def test_confusion_metrics_by_hand() -> None:
    c = Confusion(3, 2, 1, 4)
    assert c.metric("accuracy") == 0.7 and c.metric("precision") == 0.6
    assert c.metric("recall") == 0.75 and c.metric("fpr") == 2 / 6 and c.metric("fnr") == 0.25


@SETTINGS
@given(split_rows(), st.sampled_from([0.0, 1e6]))
def test_cell_histogram_counts_sums_and_outer(case, origin) -> None:
    """Cells of width 1e5 over [-1e6, 1e6] (20 cells), the null slot, sums of
    weight − origin and the outer cells' values, against NumPy's bincount."""
    values, parts, seed = case
    df = pl.DataFrame({"x": values}, schema={"x": pl.Float64})
    n = 20
    index = ((pl.col("x") + 1e6) / 1e5).floor().clip(0, n - 1).cast(pl.Int64)
    agg = CellsOf(index, n, pl.col("x"), outer=True, origin=origin, grid="g")
    got = through_keyed(df, parts, agg, seed)

    raw = np.array([np.nan if v is None else v for v in values])
    idx = np.where(np.isnan(raw), n, np.clip(np.floor((raw + 1e6) / 1e5), 0, n - 1)).astype(int)
    assert got.counts.tolist() == np.bincount(idx, minlength=n + 1).tolist()
    present = ~np.isnan(raw)
    want = np.bincount(idx[present], weights=raw[present] - origin, minlength=n + 1)
    scale = float(np.abs(raw[present] - origin).sum())
    assert all(
        close(float(g), float(w), scale) for g, w in zip(got.sums[:-1], want[:-1], strict=True)
    )
    edge = present & ((idx == 0) | (idx == n - 1))
    assert got.outer.tolist() == np.sort(raw[edge]).tolist()
    # the overall path (NumPy's bincount over per-row indices) gives the same state
    direct = CellCounts.of(np.where(idx == n, -1, idx), n, raw, outer=True, origin=origin)
    assert direct.counts.tolist() == got.counts.tolist()
    assert direct.outer.tolist() == got.outer.tolist()


def test_cells_over_different_grids_do_not_merge() -> None:
    a = CellCounts.of(np.array([0, 1]), 2, grid="one")
    with pytest.raises(ValueError, match="different cells"):
        a.merge(CellCounts.of(np.array([0, 1]), 2, grid="two"))
    with pytest.raises(ValueError, match="different cells"):
        a.merge(CellCounts.of(np.array([0]), 3, grid="one"))


def test_category_counts_by_hand() -> None:
    merged = CategoryCounts.of(["a", None]).merge(CategoryCounts.of(["a", "b"]))
    assert dict(merged.counts) == {"a": 2, None: 1, "b": 1}


def test_a_merged_mean_of_shares_is_k_over_n_exactly() -> None:
    """The mean is the compensated sum over n, not Chan's running mean, which
    rounds at each merge: for 0/1 values (a share) the merged mean is exactly
    k/n as the single pass divides it, whatever the split; one ulp off would flip
    a threshold or a ``round()`` at a tie."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        parts = [rng.random(rng.integers(1, 130)) < 0.4 for _ in range(rng.integers(2, 7))]
        merged = Moments()
        for p in parts:
            merged = merged.merge(Moments.of(p.astype(float)))
        rows = np.concatenate(parts)
        assert merged.average() == int(rows.sum()) / rows.size
        assert merged.average() == pl.Series(rows.astype(float)).mean()
