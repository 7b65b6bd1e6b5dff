"""A partial result read column by column (``states_by_row``, ``AdditiveOf.states``)
gives each row the same states, of the same types and bits, as reading it row by
row (``_rows`` and each part's ``state``), the path it replaced."""

from __future__ import annotations

import math
from decimal import Decimal
from types import SimpleNamespace

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulesengine.engine.partial_units import AdditiveOf, states_by_row
from rulesengine.partials import MomentsOf, ValuesOf
from rulesengine.partials.collect import _rows
from rulesengine.partials.scalars import Sum


def same_sum(a: Sum, b: Sum) -> bool:
    def bits(x: int | float) -> tuple[type, object]:
        return type(x), (math.copysign(1.0, x), x) if not math.isnan(x) else "nan"

    return bits(a.value) == bits(b.value) and bits(a.error) == bits(b.error)


def by_rows(of: AdditiveOf, df: pl.DataFrame, name: str) -> list[Sum]:
    return [of.state(row, name) for row in _rows(df)]


@pytest.mark.parametrize(
    "series",
    [
        pl.Series("p.v", [3, None, -(2**63), 2**63 - 1], dtype=pl.Int64),
        pl.Series("p.v", [7, None, 2**64 - 1], dtype=pl.UInt64),
        pl.Series("p.v", [True, None, False], dtype=pl.Boolean),
        pl.Series("p.v", [0.1, None, -0.0, math.nan, math.inf], dtype=pl.Float64),
        pl.Series("p.v", [0.1, None, -0.0, math.nan], dtype=pl.Float32),
        pl.Series("p.v", [None, None], dtype=pl.Int32),
        pl.Series("p.v", [], dtype=pl.Float64),
    ],
    ids=lambda s: str(s.dtype),
)
def test_additive_columns_as_rows(series: pl.Series) -> None:
    of = AdditiveOf(pl.col("x").sum())
    df = series.to_frame()
    want, got = by_rows(of, df, "p"), of.states(df, "p")
    assert len(got) == len(want) == df.height
    assert all(same_sum(a, b) for a, b in zip(got, want, strict=True)), (got, want)
    if series.dtype == pl.Boolean:
        assert [type(s.value) for s in got] == [int] * 3  # True counts 1, not True


def test_a_column_of_another_kind_fails_as_by_rows() -> None:
    of = AdditiveOf(pl.col("x").sum())
    df = pl.Series("p.v", [Decimal("1.5")], dtype=pl.Decimal(10, 2)).to_frame()
    with pytest.raises(TypeError, match="additive aggregate gave Decimal"):
        by_rows(of, df, "p")
    with pytest.raises(TypeError, match="additive aggregate gave Decimal"):
        of.states(df, "p")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.one_of(st.none(), st.integers(-(2**40), 2**40)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False)),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_mixed_parts_as_rows(rows, keyed) -> None:
    """Column parts and row parts in one unit: each row gets its own states, in
    the part order, with its own keys."""
    df = pl.DataFrame(rows, schema={"seg": pl.String, "n": pl.Int64, "x": pl.Float64}, orient="row")
    parts = {
        "c": AdditiveOf(pl.col("n").sum()),
        "m": MomentsOf(pl.col("x")),
        "f": AdditiveOf(pl.col("x").sum()),
        "v": ValuesOf(pl.col("x")),
    }
    part = df.group_by("seg").agg(
        [e.alias(c) for pid, of in parts.items() for c, e in of.exprs(pid).items()]
    )
    key_names = ["seg"] if keyed else []
    keys, states = states_by_row(SimpleNamespace(parts=parts), part, key_names)
    want = _rows(part)
    assert len(keys) == len(states) == len(want) == part.height
    for key, got, row in zip(keys, states, want, strict=True):
        assert key == ((row["seg"],) if keyed else ())
        assert list(got) == list(parts)
        for pid, of in parts.items():
            expected = of.state(row, pid)
            if isinstance(expected, Sum):
                assert same_sum(got[pid], expected)
            else:
                assert type(got[pid]) is type(expected)
                assert repr(got[pid]) == repr(expected)


def test_no_parts_and_no_keys() -> None:
    part = pl.DataFrame({"a": [1, 2]})
    assert states_by_row(SimpleNamespace(parts={}), part, []) == ([(), ()], [{}, {}])
