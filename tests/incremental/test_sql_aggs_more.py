"""SQL aggregates beyond sum/count/avg/min/max from partial states: variances and
standard deviations (moments), median and quantile_cont/quantile_disc (exact
value counts), count(DISTINCT x) (exact value counts). Their values through
merged partials equal a single pass (quantiles and distinct counts bit for bit,
spreads within 1e-12 relative) and independent NumPy oracles on the raw rows,
with nulls, NaN, ties, empty partitions and windows; above the size bound a bare
quantile is an estimate within the rank error and everything else falls back to
a single pass."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rulesengine.engine.incremental import Report
from rulesengine.engine.partial_units import part_of
from rulesengine.monitors.aggs import Approximate, NotExact, decomposition
from rulesengine.monitors.sql_aggs import equiprobable, sql_aggregate
from rulesengine.partials import RANK_ERROR, ValueCounts, merge_all, order, partial_states
from tests.incremental.helpers import (
    AT,
    HIGH,
    all_from_partials,
    assert_same,
    both,
    load_model,
    segment_rows,
    write_hour,
)

# ------------------------------------------------------------------ through partials


def _frame(seed: int, n: int = 3000) -> pl.DataFrame:
    """Integers with many ties, rounded floats with NaN and both zeros, a Float32
    copy, booleans, times; each with nulls."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, n).round(1)
    x[rng.random(n) < 0.01] = np.nan
    x[rng.random(n) < 0.02] = -0.0
    df = pl.DataFrame(
        {
            "a": rng.integers(-40, 40, n),
            "x": x,
            "clean": rng.normal(100, 5, n).round(3),
            "b": rng.random(n) < 0.3,
            "t": pl.datetime_range(
                pl.datetime(2026, 1, 1),
                pl.datetime(2026, 1, 1) + timedelta(minutes=n - 1),
                "1m",
                eager=True,
            ).gather(rng.integers(0, n // 3, n)),
        }
    ).with_columns(
        pl.col("x").cast(pl.Float32).alias("f"),
        pl.col("a").cast(pl.String).str.replace("^", "id-").alias("s"),
    )
    masks = {c: rng.random(n) < 0.07 for c in ("a", "x", "clean", "b", "t", "f", "s")}
    return df.with_columns(
        pl.when(pl.Series(masks[c])).then(None).otherwise(pl.col(c)).alias(c) for c in masks
    )


def _merged(expr: pl.Expr, df: pl.DataFrame, parts: int, seed: int) -> Any:
    """``expr``'s value from states of ``parts`` random partitions (some empty),
    merged in random order and grouping."""
    how = decomposition(expr)
    assert how is not None
    aggs = {name: part_of(p) for name, p in how.parts.items()}
    rng = random.Random(seed)
    labelled = df.with_columns(pl.Series("__p", [rng.randrange(parts) for _ in range(df.height)]))
    states = list(partial_states(labelled, ["__p"], aggs).values())
    if not states:  # no rows at all: each part's state of nothing
        nulls: dict[str, Any] = defaultdict(lambda: None)
        states = [{name: of.state(nulls, name) for name, of in aggs.items()}]
    rng.shuffle(states)
    while len(states) > 1:  # random pairs merged until one is left
        i = rng.randrange(len(states) - 1)
        a, b = states[i], states.pop(i + 1)
        states[i] = {k: a[k].merge(b[k]) for k in a}
    return how.finish(states[0])


def _single(text: str, df: pl.DataFrame) -> Any:
    return df.select(sql_aggregate(text, df.schema).alias("v")).item()


def _numbers(df: pl.DataFrame, column: str) -> np.ndarray:
    return df.get_column(column).drop_nulls().cast(pl.Float64).to_numpy()


def _sorted_nan_last(v: np.ndarray) -> np.ndarray:
    return np.concatenate([np.sort(v[~np.isnan(v)]), v[np.isnan(v)]])


def _linear(v: np.ndarray, q: float) -> float | None:
    """The linear quantile by hand: sorted values (NaN last), interpolated between
    the two around position (m − 1)·q."""
    s = _sorted_nan_last(v)
    if s.size == 0:
        return None
    h = (s.size - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, s.size - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (h - lo)) if s[lo] != s[hi] else float(s[lo])


def _oracle(text: str, df: pl.DataFrame) -> Any:
    """Each supported call on the raw rows with NumPy (or by hand)."""
    name, rest = text.split("(", 1)
    args = rest.rstrip(")").split(", ")
    column = args[0].removeprefix("DISTINCT ")
    if column == "s":
        return len(set(df.get_column("s").drop_nulls().to_list()))
    v = _numbers(df, column)
    if name in ("stddev", "stddev_samp"):
        return float(np.std(v, ddof=1)) if v.size > 1 else None
    if name in ("variance", "var_samp"):
        return float(np.var(v, ddof=1)) if v.size > 1 else None
    if name == "median":
        return _linear(v, 0.5)
    if name == "quantile_cont":
        return _linear(v, float(args[1]))
    if name == "quantile_disc":  # the smallest value whose share at or below reaches q
        s = _sorted_nan_last(v)
        if s.size == 0:
            return None
        if not np.isnan(s).any():
            return float(np.quantile(s, float(args[1]), method="inverted_cdf"))
        return float(s[max(math.ceil(s.size * float(args[1])) - 1, 0)])
    assert name == "count"
    return int(np.unique(v).size)  # NaN collapsed to one value, 0.0 and -0.0 one


CALLS = [
    "stddev(a)",
    "stddev(x)",
    "stddev_samp(clean)",
    "stddev(b)",
    "variance(a)",
    "var_samp(clean)",
    "variance(x)",
    "median(a)",
    "median(x)",
    "median(f)",
    "median(clean)",
    "quantile_cont(clean, 0.9)",
    "quantile_cont(a, 0.37)",
    "quantile_cont(x, 0.99)",
    "quantile_disc(a, 0.25)",
    "quantile_disc(clean, 0.5)",
    "quantile_disc(x, 0.995)",
    "quantile_disc(f, 0.1)",
    "count(DISTINCT a)",
    "count(DISTINCT s)",
    "count(DISTINCT x)",
    "count(DISTINCT f)",
    "count(DISTINCT b)",
    "count(DISTINCT t)",
]


@pytest.mark.parametrize("text", CALLS)
@pytest.mark.parametrize("seed", [1, 2])
def test_each_call_equals_the_single_pass_and_the_oracle(text: str, seed: int) -> None:
    df = _frame(seed)
    got = _merged(sql_aggregate(text, df.schema), df, 7, seed)
    single = _single(text, df)
    want = _oracle(text, df)
    if isinstance(single, float) and math.isnan(single):
        assert math.isnan(got) and math.isnan(want)
    elif "stddev" in text or "var" in text:
        assert got == pytest.approx(single, rel=1e-12)
        assert got == pytest.approx(want, rel=1e-12)
    else:
        assert got == single  # bit for bit
        if "(f" in text:  # the single pass rounds a Float32 column's quantile to Float32
            assert got == pytest.approx(want, rel=1e-6)
        else:
            assert got == want
    assert type(got) is type(single)


def test_nan_sorts_last_in_quantiles() -> None:
    """Polars sorts NaN after every number: a high quantile among the NaNs is NaN,
    one below them a number; the oracle by hand agrees."""
    df = pl.DataFrame({"x": [3.0, float("nan"), None, 1.0, float("nan"), 2.0, None]})
    for text, want in [
        ("quantile_disc(x, 0.9)", math.nan),
        ("quantile_disc(x, 0.5)", 3.0),  # position ⌈5 · 0.5⌉ − 1 = 2 of [1, 2, 3, NaN, NaN]
        ("quantile_cont(x, 0.25)", 2.0),  # position (5 − 1) · 0.25 = 1
        ("median(x)", 3.0),  # position 2
        ("count(DISTINCT x)", 4),  # 1, 2, 3, NaN
    ]:
        got = _merged(sql_aggregate(text, df.schema), df, 3, 0)
        single = _single(text, df)
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got) and math.isnan(single), text
        else:
            assert got == single == want, text


@pytest.mark.parametrize(
    "text",
    [
        "stddev(clean) / avg(clean)",
        "round(variance(a) + median(a), 3)",
        "quantile_disc(clean, 0.75) - quantile_cont(clean, 0.25)",
        "CAST(count(DISTINCT a) AS DOUBLE) / count(*)",
        "coalesce(median(x), -1) + count(DISTINCT t)",
    ],
)
def test_calls_inside_expressions(text: str) -> None:
    df = _frame(5)
    got = _merged(sql_aggregate(text, df.schema), df, 5, 5)
    assert got == pytest.approx(_single(text, df), rel=1e-12)


@pytest.mark.parametrize("text", ["stddev(a)", "median(x)", "quantile_disc(a, 0.5)"])
def test_one_value_or_none(text: str) -> None:
    """One row: a sample variance is null (as in SQL), a quantile the value itself;
    no rows: null, and a distinct count 0."""
    one = pl.DataFrame({"a": [7], "x": [2.5]})
    none = one.clear()
    assert _merged(sql_aggregate(text, one.schema), one, 2, 0) == _single(text, one)
    assert _merged(sql_aggregate(text, none.schema), none, 2, 0) is None
    assert _single(text, none) is None
    count = sql_aggregate("count(DISTINCT a)", none.schema)
    assert _merged(count, none, 2, 0) == _single("count(DISTINCT a)", none) == 0


@pytest.mark.parametrize(
    "text",
    [
        "median(s)",
        "stddev(f)",  # Polars rounds a Float32 variance to Float32
        "first(a)",  # row order
        "sum(a) FILTER (WHERE a > avg(a))",  # an aggregate in the condition
        "median(t)",  # a time
    ],
)
def test_what_stays_whole(text: str) -> None:
    schema = {"a": pl.Int64, "x": pl.Float64, "f": pl.Float32, "s": pl.String}
    schema["t"] = pl.Datetime("us")
    assert decomposition(sql_aggregate(text, schema)) is None


def _kept(rows: list[dict[str, Any]], column: str, keep: Any) -> list[Any]:
    """The non-null values of ``column`` in the rows where ``keep`` is true."""
    return [r[column] for r in rows if keep(r) and r[column] is not None]


def _gt(column: str, bound: float) -> Any:
    return lambda r: r[column] is not None and r[column] > bound


FILTERED: list[tuple[str, Any]] = [
    ("count(*) FILTER (WHERE a > 10)", lambda rows: sum(1 for r in rows if _gt("a", 10)(r))),
    ("count(x) FILTER (WHERE b)", lambda rows: len(_kept(rows, "x", lambda r: r["b"] is True))),
    ("sum(a) FILTER (WHERE clean > 100)", lambda rows: sum(_kept(rows, "a", _gt("clean", 100)))),
    ("sum(a) FILTER (WHERE a > 1000)", lambda rows: None),  # no row kept: null
    (
        "avg(clean) FILTER (WHERE a < 0)",
        lambda rows: float(
            np.mean(_kept(rows, "clean", lambda r: r["a"] is not None and r["a"] < 0))
        ),
    ),
    (
        "max(a) FILTER (WHERE x IS NULL)",
        lambda rows: max(_kept(rows, "a", lambda r: r["x"] is None)),
    ),
    (
        "stddev(clean) FILTER (WHERE b)",
        lambda rows: float(np.std(_kept(rows, "clean", lambda r: r["b"] is True), ddof=1)),
    ),
    (
        "median(a) FILTER (WHERE clean >= 100)",
        lambda rows: float(np.median(_kept(rows, "a", lambda r: (r["clean"] or 0) >= 100))),
    ),
    (
        "count(DISTINCT a) FILTER (WHERE a % 3 = 0)",
        lambda rows: len(set(_kept(rows, "a", lambda r: r["a"] is not None and r["a"] % 3 == 0))),
    ),
]


@pytest.mark.parametrize(("text", "oracle"), FILTERED, ids=[t for t, _ in FILTERED])
def test_filter_where_merges_over_the_rows_it_keeps(text: str, oracle: Any) -> None:
    """A call with FILTER (WHERE ...) over the rows whose condition is true (not
    false, not null), against pandas on the raw rows."""
    df = _frame(8)
    expr = sql_aggregate(text, df.schema)
    assert decomposition(expr) is not None
    got = _merged(expr, df, 6, 8)
    single = _single(text, df)
    want = oracle(df.rows(named=True))
    if want is None:
        assert got is None and single is None
    else:
        assert got == pytest.approx(single, rel=1e-12) and got == pytest.approx(want, rel=1e-12)
        if "stddev" not in text and "avg" not in text:
            assert got == single


def test_equiprobable_against_numpy_inverted_cdf() -> None:
    """quantile_disc from value counts equals NumPy's inverted_cdf (the smallest
    value whose cumulative share reaches q) on many random samples and q."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        v = rng.integers(0, rng.integers(2, 30), rng.integers(1, 60)).astype(float)
        q = float(rng.choice([0.0, 1.0, rng.random()]))
        want = float(np.quantile(v, q, method="inverted_cdf"))
        assert equiprobable(ValueCounts.of(v), q) == want, (v, q)
        single = pl.DataFrame({"v": v}).select(pl.col("v").quantile(q, "equiprobable")).item()
        assert single == want


def test_integers_beyond_2_53_are_not_counted_as_floats() -> None:
    """2**53 and 2**53 + 1 are one Float64: their distinct count must not come
    from value counts."""
    df = pl.DataFrame({"a": [2**53, 2**53 + 1, 5]})
    expr = sql_aggregate("count(DISTINCT a)", df.schema)
    assert _single("count(DISTINCT a)", df) == 3
    with pytest.raises(NotExact):
        _merged(expr, df, 2, 0)


def test_sketched_states_estimate_a_bare_quantile_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the bound a whole-expression quantile is an Approximate estimate with
    the sketch's rank error, within it of the truth; a quantile inside arithmetic
    and a distinct count raise NotExact."""
    monkeypatch.setattr(order, "SIZE_LIMIT", 40)
    df = _frame(9)
    v = np.sort(_numbers(df, "clean"))
    for text, q in [("median(clean)", 0.5), ("quantile_disc(clean, 0.8)", 0.8)]:
        got = _merged(sql_aggregate(text, df.schema), df, 4, 9)
        assert isinstance(got, Approximate) and got.rank_error == RANK_ERROR
        low = np.searchsorted(v, got.value, side="left") / v.size
        high = np.searchsorted(v, got.value, side="right") / v.size
        assert low - RANK_ERROR <= q <= high + RANK_ERROR, (text, low, high)
    for text in [
        "median(clean) + 1",
        "count(DISTINCT clean)",
        "count(DISTINCT a)",
        "count(DISTINCT s)",
    ]:
        with pytest.raises(NotExact):
            _merged(sql_aggregate(text, df.schema), df, 4, 9)
    # under the bound nothing is estimated: 80 distinct integers with a limit above
    monkeypatch.setattr(order, "SIZE_LIMIT", 1000)
    got = _merged(sql_aggregate("count(DISTINCT a)", df.schema), df, 4, 9)
    assert got == np.unique(_numbers(df, "a")).size


def test_merge_all_of_value_counts_keeps_distinct_values() -> None:
    """Cross-partition duplicates collapse in the merge: the distinct count is the
    union's, not the sum of the partitions'."""
    parts = [ValueCounts.of([1.0, 2.0, 2.0]), ValueCounts.of([2.0, 3.0]), ValueCounts.of([1.0])]
    assert merge_all(parts).values.size == 3


# ------------------------------------------------------------------ through the engine

HOURS = 6
KPIS = [
    "stddev(latency)",
    "variance(x)",
    "stddev_samp(x) / avg(x)",
    "median(latency)",
    "median(x)",
    "quantile_cont(x, 0.9)",
    "quantile_disc(latency, 0.25)",
    "quantile_disc(x, 0.75) - quantile_cont(x, 0.25)",
    "count(DISTINCT latency)",
    "CAST(count(DISTINCT x) AS DOUBLE) / count(*)",
    "count(DISTINCT y)",
    "count(DISTINCT ts)",
    "count(DISTINCT country)",
    "CAST(count(*) FILTER (WHERE latency > 150) AS DOUBLE) / count(*)",
    "median(x) FILTER (WHERE latency > 100)",
]


def _spec(root: Path, segments: bool) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"every": "1h", "window": f"{HOURS}h"}
    if segments:
        evaluation["segment_by"] = ["model_version"]
    kpi = [{"name": f"k{i}", "source": "req", "expr": e, **HIGH} for i, e in enumerate(KPIS)]
    return {
        "version": 1,
        "model": "m",
        "sources": {"req": {"path": str(root / "logs" / "*.parquet"), "timestamp": "ts"}},
        "evaluation": evaluation,
        "kpis": kpi,
        "checks": [
            {"name": "c", "source": "req", "type": "custom", "expr": "median(latency)", **HIGH}
        ],
        "metrics": [
            {"name": "e", "source": "req", "type": "expr", "expr": "stddev(pred - target)", **HIGH}
        ],
    }


@pytest.fixture
def logs(tmp_path: Path) -> pl.DataFrame:
    for h in range(HOURS):  # every hour holds the same latencies: cross-file ties
        write_hour(tmp_path / "logs", AT - timedelta(hours=HOURS - h), 600, seed=70 + h)
    return pl.read_parquet(tmp_path / "logs" / "*.parquet")


def _kpi_oracle(text: str, rows: pl.DataFrame) -> Any:
    v = _numbers(rows, "x")
    if text == "CAST(count(DISTINCT x) AS DOUBLE) / count(*)":
        return np.unique(v).size / rows.height
    if text == "count(DISTINCT ts)":
        return len(set(rows.get_column("ts").drop_nulls().to_list()))
    if text == "count(DISTINCT country)":
        return len(set(rows.get_column("country").drop_nulls().to_list()))
    if text == "count(DISTINCT y)":
        return len(set(rows.get_column("y").drop_nulls().to_list()))
    if text == "stddev_samp(x) / avg(x)":
        return float(np.std(v, ddof=1) / np.mean(v))
    if text == "quantile_disc(x, 0.75) - quantile_cont(x, 0.25)":
        return _oracle("quantile_disc(x, 0.75)", rows) - _linear(v, 0.25)
    if text.startswith("CAST(count(*) FILTER"):
        return (rows.get_column("latency") > 150).sum() / rows.height
    if text.startswith("median(x) FILTER"):
        return _linear(_numbers(rows.filter(pl.col("latency") > 100), "x"), 0.5)
    return _oracle(text, rows)


@pytest.mark.parametrize("segments", [False, True])
def test_engine_results_equal_the_single_pass_and_numpy(
    tmp_path: Path, logs: pl.DataFrame, segments: bool
) -> None:
    model = load_model(tmp_path, _spec(tmp_path, segments))
    inc = all_from_partials(model, tmp_path / "cache")  # one query, all from partials
    for r in inc.results:
        rows = segment_rows(logs, r.segment)
        if r.monitor.startswith("k"):
            want = _kpi_oracle(KPIS[int(r.monitor[1:])], rows)
        elif r.monitor == "c":
            want = _oracle("median(latency)", rows)
        else:
            d = (rows.get_column("pred") - rows.get_column("target")).drop_nulls().to_numpy()
            want = float(np.std(d, ddof=1))
        assert r.value == pytest.approx(want, rel=1e-12), (r.monitor, r.segment)


def test_an_empty_window_gives_the_single_pass_values(tmp_path: Path, logs: pl.DataFrame) -> None:
    """A window with no rows: null spreads and quantiles, distinct counts of 0,
    from partials as from a single pass."""
    model = load_model(tmp_path, _spec(tmp_path, False))
    later = AT + timedelta(days=2)
    full, inc = both(model, tmp_path / "cache", at=later)
    assert_same(full, inc)
    counts = [r for r in inc.results if r.monitor in ("k8", "k10")]
    assert counts and all(r.rows == 0 for r in counts)


def test_above_the_bound_estimates_or_falls_back(
    tmp_path: Path, logs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Value counts above a lowered bound: the bare medians are estimates within
    the rank error (details say so); distinct counts and quantiles inside
    arithmetic run in a single pass and equal it exactly."""
    monkeypatch.setattr(order, "SIZE_LIMIT", 60)
    model = load_model(tmp_path, _spec(tmp_path, False))
    report = Report()
    full, inc = both(model, tmp_path / "cache", report=report)
    single = {r.monitor: r for r in full.results}
    got = {r.monitor: r for r in inc.results}
    assert any("single pass for" in q for q in report.queries.values()), report.queries
    for name in ("k4", "k5", "c"):  # median(x), quantile_cont(x, 0.9), median(latency)
        assert got[name].details["approximate"] is True, name
        assert got[name].details["rank_error"] == RANK_ERROR
    x = np.sort(_numbers(logs, "x"))
    for name, q in (("k4", 0.5), ("k5", 0.9)):
        low = np.searchsorted(x, got[name].value, side="left") / x.size
        high = np.searchsorted(x, got[name].value, side="right") / x.size
        assert low - RANK_ERROR <= q <= high + RANK_ERROR, (name, low, high)
    for name in ("k7", "k8", "k9", "k11"):  # in arithmetic, or distinct counts: exact
        assert "approximate" not in got[name].details, name
        assert got[name].value == single[name].value, name
    assert got["k8"].value == np.unique(logs.get_column("latency").to_numpy()).size


def test_a_rounded_share_at_a_tie_rounds_as_the_single_pass() -> None:
    """``round(avg(...), 4)`` of a share of exactly 15/32 = 0.46875: merged from any
    split it is the single pass's value bit for bit (a merged mean one ulp below
    the tie rounded to 0.4687 where the single pass gives 0.4688)."""
    rows = pl.DataFrame({"b": [True] * 150 + [False] * 170}).sample(
        fraction=1.0, shuffle=True, seed=3
    )
    text = "round(avg(CAST(b AS DOUBLE)), 4)"
    expr = sql_aggregate(text, rows.schema)
    want = _single(text, rows)
    assert want == 0.4688
    for seed in range(60):
        assert _merged(expr, rows, 2 + seed % 9, seed) == want, seed
