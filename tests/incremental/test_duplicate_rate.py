"""duplicate_rate from partial states: the distinct keys of one column of numbers,
booleans or times merge exactly across files (rows of different files duplicate
each other), so the rate equals a single pass and a hand count with Python sets
on the raw rows; above a lowered size bound, or for integers beyond 2**53, the
aggregate falls back to a single pass rather than estimate; text and
multi-column keys stay whole."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rulesengine.engine.incremental import Report
from rulesengine.engine.partial_units import part_of
from rulesengine.monitors.aggs import NotExact, decomposition
from rulesengine.monitors.checks import distinct_rows
from rulesengine.monitors.sql_aggs import key_text
from rulesengine.partials import PartialStateError, dumps, loads, order, partial_states
from rulesengine.partials.histograms import DistinctKeys, KeysOf
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


def _key(v: Any) -> Any:
    """A value as a set member the way Polars counts distinct values: every NaN
    one value, 0.0 and -0.0 one value, null one value."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return 0.0 if v == 0 and isinstance(v, float) else v


def _hand_distinct(values: list[Any]) -> int:
    return len({_key(v) for v in values})


def _merged(expr: pl.Expr, df: pl.DataFrame, parts: int, seed: int) -> Any:
    """``expr``'s value from the states of ``parts`` random partitions, merged in
    random order; with no rows, each part's state of nothing."""
    how = decomposition(expr)
    assert how is not None
    aggs = {name: part_of(p) for name, p in how.parts.items()}
    rng = random.Random(seed)
    labelled = df.with_columns(pl.Series("__p", [rng.randrange(parts) for _ in range(df.height)]))
    states = list(partial_states(labelled, ["__p"], aggs).values())
    if not states:
        nulls: dict[str, Any] = defaultdict(lambda: None)
        states = [{name: of.state(nulls, name) for name, of in aggs.items()}]
    rng.shuffle(states)
    merged = states[0]
    for other in states[1:]:
        merged = {k: merged[k].merge(other[k]) for k in merged}
    return how.finish(merged)


def _columns(seed: int, n: int = 2000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.integers(-30, 30, n) / 4
    f[rng.random(n) < 0.02] = np.nan
    f[rng.random(n) < 0.03] = -0.0
    start = datetime(2026, 3, 1)
    df = pl.DataFrame(
        {
            "i": rng.integers(0, 300, n),
            "u": rng.integers(0, 50, n).astype(np.uint8),
            "f": f,
            "b": rng.random(n) < 0.5,
            "d": [date(2026, 1, 1) + timedelta(days=int(k)) for k in rng.integers(0, 90, n)],
            "t": [start + timedelta(microseconds=int(k)) for k in rng.integers(0, 500, n)],
        }
    ).with_columns(pl.col("f").cast(pl.Float32).alias("f32"))
    masks = {c: rng.random(n) < 0.05 for c in df.columns}
    return df.with_columns(
        pl.when(pl.Series(masks[c])).then(None).otherwise(pl.col(c)).alias(c) for c in df.columns
    )


@pytest.mark.parametrize("column", ["i", "u", "f", "f32", "b", "d", "t"])
@pytest.mark.parametrize("parts", [1, 3, 11])
def test_distinct_rows_equal_a_hand_count_and_the_single_pass(column: str, parts: int) -> None:
    df = _columns(parts)
    expr = distinct_rows([column], df.schema)
    got = _merged(expr, df, parts, parts)
    single = df.select(expr).item()
    assert got == single == _hand_distinct(df.get_column(column).to_list())


def test_empty_frames_and_only_nulls() -> None:
    df = pl.DataFrame({"k": pl.Series([], dtype=pl.Int64)})
    expr = distinct_rows(["k"], df.schema)
    assert _merged(expr, df, 3, 0) == df.select(expr).item() == 0
    nulls = pl.DataFrame({"k": pl.Series([None, None], dtype=pl.Int64)})
    assert _merged(expr, nulls, 2, 0) == nulls.select(expr).item() == 1


def test_integers_beyond_2_53_fall_back() -> None:
    df = pl.DataFrame({"k": [2**53, 2**53 + 1, 3]})
    expr = distinct_rows(["k"], df.schema)
    assert df.select(expr).item() == 3
    with pytest.raises(NotExact):
        _merged(expr, df, 2, 0)


def test_above_the_bound_falls_back_never_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order, "SIZE_LIMIT", 100)
    df = _columns(4)
    expr = distinct_rows(["i"], df.schema)  # ~300 distinct values
    with pytest.raises(NotExact):
        _merged(expr, df, 4, 4)
    small = distinct_rows(["u"], df.schema)  # 50: still exact
    assert _merged(small, df, 4, 4) == _hand_distinct(df.get_column("u").to_list())


@pytest.mark.parametrize(
    ("columns", "schema"),
    [
        (["l"], {"l": pl.List(pl.Int64)}),
        (["a", "m"], {"a": pl.Int64, "m": pl.Decimal(10, 2)}),
        (["gone"], {}),
    ],
)
def test_what_stays_whole(columns: list[str], schema: dict[str, pl.DataType]) -> None:
    assert decomposition(distinct_rows(columns, schema)) is None


def test_the_same_column_over_other_dtypes_is_another_aggregate() -> None:
    ints = distinct_rows(["k"], {"k": pl.Int64})
    floats = distinct_rows(["k"], {"k": pl.Float64})
    assert decomposition(ints) is not None and decomposition(floats) is not None
    assert set(decomposition(ints).parts) == {"v", "ve", "nulls"}  # type: ignore[union-attr]
    assert set(decomposition(floats).parts) == {"v", "nulls"}  # type: ignore[union-attr]
    for columns, schema in [
        (["s"], {"s": pl.String}),
        (["a", "s"], {"a": pl.Int64, "s": pl.String}),
    ]:
        how = decomposition(distinct_rows(columns, schema))
        assert how is not None and [p.kind for p in how.parts.values()] == ["keys"]


# ------------------------------------------------------------------ through the engine

HOURS = 5
ROWS = 400


def _spec(root: Path, segments: bool) -> dict[str, Any]:
    def check(name: str, columns: list[str]) -> dict[str, Any]:
        return {"name": name, "source": "req", "type": "duplicate_rate", "columns": columns}

    evaluation: dict[str, Any] = {"every": "1h", "window": f"{HOURS}h"}
    if segments:
        evaluation["segment_by"] = ["model_version"]
    return {
        "version": 1,
        "model": "m",
        "sources": {"req": {"path": str(root / "logs" / "*.parquet"), "timestamp": "ts"}},
        "evaluation": evaluation,
        "checks": [
            {**check("key", ["key"]), **HIGH},  # unique in each file, repeated across files
            {**check("lat", ["latency"]), **HIGH},
            {**check("x", ["x"]), **HIGH},  # floats with nulls
            {**check("id", ["request_id"]), **HIGH},  # no duplicates at all
            {**check("country", ["country"]), **HIGH},  # text keys
            {**check("pair", ["country", "latency"]), **HIGH},  # several columns
        ],
    }


@pytest.fixture
def logs(tmp_path: Path) -> pl.DataFrame:
    """Hourly files; ``key`` is 0..ROWS-1 in every file, so every duplicate of it
    is between files, none inside one."""
    for h in range(HOURS):
        path = write_hour(tmp_path / "logs", AT - timedelta(hours=HOURS - h), ROWS, seed=20 + h)
        pl.read_parquet(path).with_columns(key=pl.int_range(ROWS, dtype=pl.Int64)).write_parquet(
            path
        )
    return pl.read_parquet(tmp_path / "logs" / "*.parquet")


def _hand_rate(rows: pl.DataFrame, column: str) -> float:
    values = rows.get_column(column).to_list()
    return (len(values) - _hand_distinct(values)) / len(values)


@pytest.mark.parametrize("segments", [False, True])
def test_engine_rates_equal_the_single_pass_and_a_hand_count(
    tmp_path: Path, logs: pl.DataFrame, segments: bool
) -> None:
    model = load_model(tmp_path, _spec(tmp_path, segments))
    inc = all_from_partials(model, tmp_path / "cache")  # one query, all from partials
    for r in inc.results:
        rows = segment_rows(logs, r.segment)
        column = {"key": "key", "lat": "latency", "x": "x", "id": "request_id"}
        column["country"] = "country"
        if r.monitor == "pair":
            pairs = rows.select("country", "latency").rows()
            assert r.value == (len(pairs) - len(set(pairs))) / len(pairs)
            continue
        assert r.value == _hand_rate(rows, column[r.monitor]), (r.monitor, r.segment)
    overall = {r.monitor: r.value for r in inc.results if not r.segment}
    if not segments:
        assert overall["key"] == (HOURS - 1) / HOURS  # every file repeats the others
        assert overall["id"] == 0.0


def test_engine_falls_back_above_the_bound(
    tmp_path: Path, logs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 distinct keys against a bound of 100: the merged value counts are a
    sketch, so the distinct count runs in a single pass, exactly."""
    monkeypatch.setattr(order, "SIZE_LIMIT", 100)
    model = load_model(tmp_path, _spec(tmp_path, False))
    report = Report()
    full, inc = both(model, tmp_path / "cache", report=report)
    assert_same(full, inc)
    assert any("single pass for" in q for q in report.queries.values()), report.queries
    got = {r.monitor: r for r in inc.results}
    assert got["key"].value == (HOURS - 1) / HOURS
    assert not any("approximate" in r.details for r in inc.results)


# ------------------------------------------------------------------ text and multi-column keys


def _keys_count(df: pl.DataFrame, columns: list[str], parts: int, seed: int, limit: int) -> Any:
    """The distinct keys of ``columns`` from the DistinctKeys states of random
    partitions, merged in random order (None above ``limit``)."""
    key = key_text(columns, df.schema)
    assert key is not None
    rng = random.Random(seed)
    labelled = df.with_columns(pl.Series("__p", [rng.randrange(parts) for _ in range(df.height)]))
    states = [s["k"] for s in partial_states(labelled, ["__p"], {"k": KeysOf(key, limit)}).values()]
    rng.shuffle(states)
    merged = DistinctKeys(limit=limit)
    for state in states:
        merged = merged.merge(state)
    assert loads(dumps(merged)) == merged  # as the cache keeps it
    return merged.count


def _texts(seed: int, n: int = 1500) -> pl.DataFrame:
    """Text with separators and digits that a plain concatenation would confuse
    ("1:" + "x" and "1" + ":x"), floats with NaN and both zeros, nulls."""
    rng = np.random.default_rng(seed)
    words = ["", "1:", "x", "1", ":x", "é", "a b", "-", "0"]
    f = rng.integers(-3, 3, n) / 2
    f[rng.random(n) < 0.1] = np.nan
    f[rng.random(n) < 0.1] = -0.0
    df = pl.DataFrame(
        {
            "s": rng.choice(words, n),
            "t": rng.choice(words, n),
            "f": f,
            "i": rng.integers(0, 4, n),
            "d": [date(2026, 1, 1) + timedelta(days=int(k)) for k in rng.integers(0, 3, n)],
        }
    ).with_columns(pl.col("s").cast(pl.Categorical).alias("c"))
    masks = {c: rng.random(n) < 0.1 for c in df.columns}
    return df.with_columns(
        pl.when(pl.Series(masks[c])).then(None).otherwise(pl.col(c)).alias(c) for c in df.columns
    )


@pytest.mark.parametrize(
    "columns",
    [["s"], ["c"], ["s", "t"], ["t", "s"], ["s", "f"], ["f", "i", "d"], ["f"], ["i", "s"]],
)
@pytest.mark.parametrize("parts", [1, 4, 13])
def test_text_keys_equal_a_hand_count_and_the_single_pass(columns: list[str], parts: int) -> None:
    """The key text of each row is one-to-one with the row's values as Polars
    compares them, so the merged key set counts the single pass's distinct rows."""
    df = _texts(parts)
    rows = df.select(columns).rows()
    hand = len({tuple(_key(v) for v in row) for row in rows})
    assert _keys_count(df, columns, parts, parts, 10_000) == hand
    assert df.select(pl.struct(columns).n_unique()).item() == hand


def test_key_sets_overflow_above_their_limit_and_stay_so() -> None:
    """Above the limit only the overflow is kept: no count, whatever merges next."""
    df = _texts(2)
    assert _keys_count(df, ["s", "t", "f"], 5, 2, limit=20) is None
    small = DistinctKeys.of(["a", "b"], limit=2)
    assert small.count == 2
    over = small.merge(DistinctKeys.of(["c"], limit=2))
    assert over.count is None and over.keys == ()
    assert over.merge(DistinctKeys.of([], limit=2)).count is None
    with pytest.raises(ValueError, match="different limits"):
        small.merge(DistinctKeys.of(["a"], limit=3))


def test_a_union_of_many_key_sets_equals_their_pairwise_merge() -> None:
    """``DistinctKeys.union`` (what the executor's merge uses for more than two)
    gives the pairwise merge's state, below and above the limit."""
    import random

    from rulesengine.engine.partial_units import merge_list

    rng = random.Random(5)
    sets = [
        DistinctKeys.of([f"k{rng.randrange(40)}" for _ in range(12)], limit=30) for _ in range(6)
    ]
    for states in (sets[:3], sets):
        pairwise = states[0]
        for s in states[1:]:
            pairwise = pairwise.merge(s)
        assert DistinctKeys.union(states) == pairwise == merge_list(states)
    assert sets[0].count is not None and DistinctKeys.union(sets).count is None  # over 30
    with pytest.raises(ValueError, match="different limits"):
        DistinctKeys.union([sets[0], DistinctKeys.of(["a"], limit=3)])


def test_key_sets_from_bytes_are_checked() -> None:
    state = DistinctKeys.of(["b", "a", "é"])
    assert loads(dumps(state)) == state and state.keys == ("a", "b", "é")
    meta, arrays = state._fields()
    arrays["ends"] = arrays["ends"][::-1].copy()  # not sorted, not pairing
    with pytest.raises(PartialStateError):
        DistinctKeys._from_fields(meta, arrays)
    with pytest.raises(PartialStateError):
        DistinctKeys._from_fields({**meta, "overflow": True}, state._fields()[1])


def test_key_text_takes_dtype_classes_and_instances() -> None:
    for dtype in (pl.String, pl.String(), pl.Categorical, pl.Enum(["a"]), pl.Int8, pl.Date):
        assert key_text(["k", "n"], {"k": dtype, "n": pl.Float32()}) is not None, dtype


def test_key_text_refuses_what_it_cannot_write() -> None:
    assert key_text(["gone"], {}) is None
    assert key_text(["l"], {"l": pl.List(pl.Int64)}) is None
    assert key_text(["m"], {"m": pl.Decimal(10, 2)}) is None
