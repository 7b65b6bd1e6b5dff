"""SQL ``corr``, ``covar_samp`` and ``covar_pop`` from merged co-moments: over the
pairs where both inputs are non-null, equal to a single pass and to NumPy on the
raw pairs within 1e-12 of the scale √(Σx²·Σy²)/(n − ddof) (not of the value: a
covariance near zero has no relative precision to keep), with the single pass's nulls and NaN at the
edges (no pair, one pair, a constant side), a ``FILTER``, and through the engine's
cache."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rulesengine.monitors.aggs import decomposition
from rulesengine.monitors.sql_aggs import sql_aggregate
from rulesengine.partials import CoMoments
from tests.incremental.helpers import AT, HIGH, all_from_partials, load_model, write_hour
from tests.incremental.test_sql_aggs_more import _merged, _single


def _pairs_frame(seed: int, n: int = 2500) -> pl.DataFrame:
    """u and v correlated, k integers, w with a large mean and a small spread; each
    with nulls of its own, so pairs drop on either side."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 3, n)
    df = pl.DataFrame(
        {
            "u": u.round(2),
            "v": (0.7 * u + rng.normal(0, 1, n)).round(3),
            "k": rng.integers(-50, 50, n),
            "w": rng.normal(1e6, 1, n),
        }
    )
    return df.with_columns(
        pl.when(pl.Series(rng.random(n) < 0.06)).then(None).otherwise(pl.col(c)).alias(c)
        for c in df.columns
    )


def _complete(df: pl.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    both = df.select(pl.col(a).alias("a"), pl.col(b).alias("b")).drop_nulls().cast(pl.Float64)
    return both.get_column("a").to_numpy(), both.get_column("b").to_numpy()


def _numpy(name: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """NumPy's value on the complete pairs, and the scale its rounding is relative
    to: √(Σx²·Σy²) over n − ddof for a covariance (each x − x̄ rounds to about
    1e-16·|x|, so a large mean over a small spread costs precision in any
    algorithm), and that over √(M2x·M2y) for corr (1 for centred data)."""
    raw = math.sqrt(np.sum(x * x) * np.sum(y * y))
    if name == "corr":
        spread = math.sqrt(np.sum((x - x.mean()) ** 2) * np.sum((y - y.mean()) ** 2))
        return float(np.corrcoef(x, y)[0, 1]), raw / spread
    ddof = 1 if name == "covar_samp" else 0
    return float(np.cov(x, y, ddof=ddof)[0, 1]), raw / (x.size - ddof)


CASES = [
    ("corr", "u", "v", None),
    ("covar_samp", "u", "v", None),
    ("covar_pop", "v", "k", None),
    ("covar_samp", "w", "u", None),  # a mean of 1e6: the two-pass sums keep it
    ("corr", "k", "u", "v > 0"),
    ("covar_pop", "u", "u", "k % 3 = 0"),
]


@pytest.mark.parametrize(("name", "a", "b", "where"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_equals_the_single_pass_and_numpy(
    name: str, a: str, b: str, where: str | None, seed: int
) -> None:
    df = _pairs_frame(seed)
    text = f"{name}({a}, {b})" + (f" FILTER (WHERE {where})" if where else "")
    expr = sql_aggregate(text, df.schema)
    how = decomposition(expr)
    assert how is not None and set(p.kind for p in how.parts.values()) == {"comoments"}
    rows = df.filter(pl.sql_expr(where)) if where else df
    want, scale = _numpy(name, *_complete(rows, a, b))
    single = _single(text, df)
    assert abs(single - want) <= 1e-12 * scale, (single, want)
    for parts in (2, 7, 40):
        got = _merged(expr, df, parts, seed * 100 + parts)
        assert abs(got - single) <= 1e-12 * scale, (parts, got, single)


def test_a_hand_computed_table() -> None:
    """x = [1, 2, 5], y = [2, 1, 7] (a fourth row without y): means 8/3 and 10/3,
    C = (20 + 14 + 77)/9 = 37/3, M2x = 78/9, M2y = 186/9; so covar_samp 37/6,
    covar_pop 37/9 and corr 111/√(78·186)."""
    df = pl.DataFrame({"x": [1.0, 2.0, 5.0, 4.0], "y": [2.0, 1.0, 7.0, None]})
    want = {
        "covar_samp(x, y)": 37 / 6,
        "covar_pop(x, y)": 37 / 9,
        "corr(x, y)": 111 / math.sqrt(78 * 186),
    }
    for text, value in want.items():
        expr = sql_aggregate(text, df.schema)
        assert _single(text, df) == pytest.approx(value, rel=1e-14)
        for seed in range(8):
            assert _merged(expr, df, 3, seed) == pytest.approx(value, rel=1e-14), text
    by_hand = CoMoments.of([(1.0, 2.0), (2.0, 1.0)]).merge(CoMoments.of([(5.0, 7.0), (4.0, None)]))
    assert by_hand.n == 3 and by_hand.c == pytest.approx(37 / 3, rel=1e-15)
    assert by_hand.m2x == pytest.approx(78 / 9, rel=1e-15)
    assert by_hand.m2y == pytest.approx(186 / 9, rel=1e-15)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


NAN, INF = float("nan"), float("inf")
EDGES = {
    "no rows": ([], []),
    "no complete pair": ([1.0, None], [None, 2.0]),
    "one pair": ([1.0, None], [2.0, 3.0]),
    "two pairs": ([1.0, 2.0], [2.0, 3.0]),
    "a constant side": ([1.0, 1.0, 1.0], [2.0, 3.0, 4.0]),
    "NaN": ([1.0, NAN, 3.0], [2.0, 3.0, 4.0]),
    "an infinity": ([1.0, INF, 3.0], [2.0, 3.0, 4.0]),
}


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("name", ["corr", "covar_samp", "covar_pop"])
def test_edges_give_the_single_pass_null_or_nan(edge: str, name: str) -> None:
    """Without a pair every call is null; with one pair corr is NaN, covar_samp
    null and covar_pop 0; a constant side makes corr NaN: as the single pass."""
    x, y = EDGES[edge]
    df = pl.DataFrame({"x": x, "y": y}, schema={"x": pl.Float64, "y": pl.Float64})
    text = f"{name}(x, y)"
    expr = sql_aggregate(text, df.schema)
    single = _single(text, df)
    for parts in (1, 2, 3):
        for seed in range(4):
            got = _merged(expr, df, parts, seed)
            assert _same(got, single), (edge, parts, seed, got, single)
    if edge == "one pair":
        assert math.isnan(_single("corr(x, y)", df))
        assert _single("covar_samp(x, y)", df) is None and _single("covar_pop(x, y)", df) == 0.0


@pytest.mark.parametrize(
    ("text", "schema"),
    [
        ("corr(a, b)", {"a": pl.Float32, "b": pl.Float32}),  # a Float32 result, rounded
        ("covar_samp(a, b)", {"a": pl.Float32, "b": pl.Float32}),
        ("corr(a, b)", {"a": pl.Boolean, "b": pl.Float64}),
        ("covar_pop(a, b)", {"a": pl.String, "b": pl.Float64}),
        ("corr(a, avg(b))", {"a": pl.Float64, "b": pl.Float64}),  # an aggregate inside
        ("corr(a, b) FILTER (WHERE a > avg(a))", {"a": pl.Float64, "b": pl.Float64}),
        ("corr(a, b) + b", {"a": pl.Float64, "b": pl.Float64}),  # a column outside a call
    ],
)
def test_what_stays_whole(text: str, schema: dict[str, pl.DataType]) -> None:
    assert decomposition(sql_aggregate(text, schema)) is None


HOURS = 4
KPIS = [
    "corr(score, CAST(y AS DOUBLE))",
    "covar_samp(x, x * 2 + latency)",
    "covar_pop(pred, target)",
]


def test_engine_results_from_partials_equal_numpy(tmp_path: Path) -> None:
    """Through the cache, the whole window from partials (none left to a single
    pass), each KPI equal to NumPy on the window's raw pairs."""
    for h in range(HOURS):
        write_hour(tmp_path / "logs", AT - timedelta(hours=HOURS - h), 500, seed=90 + h)
    rows = pl.read_parquet(tmp_path / "logs" / "*.parquet")
    spec = {
        "version": 1,
        "model": "m",
        "sources": {"req": {"path": str(tmp_path / "logs" / "*.parquet"), "timestamp": "ts"}},
        "evaluation": {"every": "1h", "window": f"{HOURS}h"},
        "kpis": [{"name": f"k{i}", "source": "req", "expr": e, **HIGH} for i, e in enumerate(KPIS)],
    }
    inc = all_from_partials(load_model(tmp_path, spec), tmp_path / "cache")
    frame = rows.with_columns(
        pl.col("y").cast(pl.Float64).alias("yf"),
        (pl.col("x") * 2 + pl.col("latency")).alias("x2"),
    )
    oracles = [("corr", "score", "yf"), ("covar_samp", "x", "x2"), ("covar_pop", "pred", "target")]
    assert [r.monitor for r in inc.results] == ["k0", "k1", "k2"]
    for r, (name, a, b) in zip(inc.results, oracles, strict=True):
        want, scale = _numpy(name, *_complete(frame, a, b))
        assert abs(r.value - want) <= 1e-12 * scale, (r.monitor, r.value, want)
