"""The column notation against hand-written rows."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest

from rulesengine.ruletest.generate import NotationError, expand_columns, parse_column, times_of


def t(h: int, m: int = 0, s: int = 0) -> datetime:
    return datetime(2026, 11, 27, h, m, s, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("100+10x4", [100, 110, 120, 130]),
        ("5-2x3", [5, 3, 1]),
        ("0.5+0.25x3", [0.5, 0.75, 1.0]),
        ("7x3", [7, 7, 7]),
        ("nullx2", [None, None]),
        ("DEx2", ["DE", "DE"]),
        ("cycle(DE,FR,null)x5", ["DE", "FR", None, "DE", "FR"]),
        ("cycle(1,2.5)x3", [1, 2.5, 1]),
        (["1x2", "nullx1", "cycle(a,b)x3"], [1, 1, None, "a", "b", "a"]),
        ("2026-11-27T10:00:00Z+1mx3", [t(10), t(10, 1), t(10, 2)]),
        ("2026-11-27T12:00:00+02:00+30sx2", [t(10), t(10, 0, 30)]),
        ("2026-11-27T10:00:00Z-1hx2", [t(10), t(9)]),
    ],
)
def test_fixed_parts(spec: object, values: list[object]) -> None:
    col = parse_column(spec)
    assert col.fixed
    assert col.expand(0) == values


def test_fill_parts_take_the_other_columns_length() -> None:
    rows = expand_columns({"n": "1+1x4", "c": "cycle(x,y,z)", "k": 3, "s": "on", "z": "null"})
    assert rows == {
        "n": [1, 2, 3, 4],
        "c": ["x", "y", "z", "x"],
        "k": [3, 3, 3, 3],
        "s": ["on", "on", "on", "on"],
        "z": [None, None, None, None],
    }


def test_seeded_distributions_repeat_and_look_right() -> None:
    a = parse_column("normal(10,2)x4000 seed 7").expand(0)
    assert a == parse_column("normal(10,2)x4000 seed 7").expand(0)
    assert a != parse_column("normal(10,2)x4000 seed 8").expand(0)
    assert abs(statistics.fmean(a) - 10) < 0.15  # 4 standard errors (2/sqrt(4000)=0.032)
    assert abs(statistics.stdev(a) - 2) < 0.1
    u = parse_column("uniform(0,1)x2000 seed 1").expand(0)
    assert min(u) >= 0 and max(u) <= 1 and abs(statistics.fmean(u) - 0.5) < 0.03
    c = parse_column("choice(a,b)x1000 seed 3").expand(0)
    assert set(c) == {"a", "b"} and 400 < c.count("a") < 600


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"a": "1+1x3", "b": "2x4"}, "columns differ in length: 'a' has 3, 'b' has 4"),
        ({"a": "cycle(x,y)"}, "no column has a count"),
        ({"a": "normal(0,1)x10"}, "needs a count and a seed"),
        ({"a": "normal(0,-1)x10 seed 1"}, "sd >= 0"),
        ({"a": "uniform(a,b)x3 seed 1"}, "takes two numbers"),
        ({"a": "1+1x0"}, "between 1 and"),
        ({"a": ["1x2", "cycle(a,b)"]}, "needs a count (xN) inside a list"),
        ({"a": "2026-11-27T10:00:00+1mx3"}, "needs a time zone"),
        ({"a": "2026-11-27T10:00:00Z+1qx3"}, "2026-11-27T10:00:00Z+1qx3"),
        ({"a": "cycle()x3"}, "needs comma-separated values"),
        ({"a": {"x": 1}}, "a notation string or a single value"),
    ],
)
def test_bad_notation_is_one_line(columns: dict[str, object], message: str) -> None:
    with pytest.raises(NotationError) as err:
        expand_columns(columns)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert (
        str(err.value).startswith("column 'a'")
        or "columns differ" in str(err.value)
        or ("no column" in str(err.value))
    )


def test_times() -> None:
    assert times_of("2026-11-27T10:00:00Z+15mx3") == [t(10), t(10, 15), t(10, 30)]
    assert times_of(["2026-11-27T10:00:00Z", "2026-11-27T11:00:00+01:00"]) == [t(10), t(10)]
    with pytest.raises(NotationError):
        times_of("1+1x3")
