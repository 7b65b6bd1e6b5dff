"""Which SQL aggregates decompose into partial states (sum, count, avg, min, max
over numbers, combined by scalar arithmetic), and which stay whole. The values
are checked against the single pass in every incremental test (helpers.py's
KPIs, expr metric and custom check)."""

from __future__ import annotations

import polars as pl
import pytest

from rulesengine.monitors.aggs import decomposition
from rulesengine.monitors.sql_aggs import sql_aggregate
from rulesengine.partials.scalars import Sum

SCHEMA = {
    "__sql_part_0": pl.Int64,
    "a": pl.Int64,
    "x": pl.Float64,
    "s": pl.String,
    "b": pl.Boolean,
    "t": pl.Datetime("us"),
}


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("sum(a) / count(*)", ["additive", "additive", "additive"]),
        ("avg(CAST(a >= 500 AS DOUBLE))", ["moments"]),
        ("round(sum(a * 2) / nullif(count(s), 0), 2)", ["additive", "additive", "additive"]),
        ("max(x) - min(x)", ["extremes", "extremes"]),
        ("sum(b)", ["additive", "additive"]),
        ("count(*)", ["additive"]),
        ("count(DISTINCT a)", ["values", "extremes"]),  # value counts, range-checked
        ("median(x)", ["values", "additive"]),  # value counts and the null count
        ("first(a)", None),  # row order: no merge
        ("sum(a) + a", None),  # a column outside every aggregate
        ('sum(a) + "__sql_part_0"', None),  # … even one named like a placeholder
        ("sum(avg(x))", None),  # an aggregate inside an aggregate
        ("min(s)", None),  # extremes of text
        ("max(t)", None),  # … and of times
    ],
)
def test_what_decomposes(text: str, kinds: list[str] | None) -> None:
    how = decomposition(sql_aggregate(text, SCHEMA))
    if kinds is None:
        assert how is None
    else:
        assert how is not None and [p.kind for p in how.parts.values()] == kinds


def test_without_a_schema_nothing_decomposes() -> None:
    assert decomposition(sql_aggregate("sum(a) / count(*)")) is None


def test_the_same_text_over_other_dtypes_is_another_aggregate() -> None:
    """Decompositions are declared by expression: a sum of integers and a sum of
    floats must not share one (its finaliser keeps the dtype)."""
    ints = sql_aggregate("sum(v)", {"v": pl.Int64})
    floats = sql_aggregate("sum(v)", {"v": pl.Float64})
    text = sql_aggregate("sum(v)", {"v": pl.String})  # no merge for text
    assert decomposition(ints) is not decomposition(floats)
    assert decomposition(text) is None
    assert decomposition(ints).finish({"p0": Sum(3), "p0n": Sum(2)}) == 3  # type: ignore[union-attr]
    assert decomposition(floats).finish({"p0": Sum(2.5), "p0n": Sum(1)}) == 2.5  # type: ignore[union-attr]
    # SQL's sum of no non-null value is null, as Polars gives it over the rows
    assert decomposition(floats).finish({"p0": Sum(), "p0n": Sum()}) is None  # type: ignore[union-attr]


def test_the_outer_arithmetic_runs_on_the_merged_values() -> None:
    """``sum(a) / count(*)`` from states: 10 / 4 in the dtypes the single pass
    gives (Int64 / UInt32), as Polars computes it over the rows."""
    how = decomposition(sql_aggregate("sum(a) / count(*)", SCHEMA))
    assert how is not None
    got = how.finish({"p0": Sum(10), "p0n": Sum(4), "p1": Sum(4)})
    rows = pl.DataFrame({"a": [1, 2, 3, 4]})
    assert got == rows.select(pl.sql_expr("sum(a) / count(*)")).item() == 2.5
