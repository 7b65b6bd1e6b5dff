"""Per-column checks with ``columns:`` (a list or a selector): one result per
column, against values counted by hand or with NumPy on small real files."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from conftest import AT, get, src, stamps

from rulesengine.engine.evaluate import plan_model
from rulesengine.spec.loader import load

# 10 rows in the window; every column's content is known
A = [1.5, None, 12.0, -3.0, 4.0, None, 7.0, 0.0, 11.0, 2.0]  # float, 2 nulls
B = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # int, no nulls
S = ["ab", None, "Cd", "ab", "zz", None, None, "x1", "ab", "cd"]  # string, 3 nulls
T = ["x", "y", "x", "q", None, "y", "x", "x", "r", "y"]  # string, 1 null
FLAG = [True, False, None, True, True, False, True, True, True, False]  # boolean


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": stamps(10), "a": A, "b": B, "s": S, "t": T, "flag": FLAG},
        schema_overrides={"a": pl.Float64, "b": pl.Int64},
    )


def checks_model(h, checks: list[dict], name: str = "d.parquet", **extra) -> list:
    df = frame()
    if name.endswith(".csv"):  # a CSV of the same content: its dtypes are inferred
        df = df.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
    h.frame(name, df)
    return h.run({"sources": {"s": src(name), **extra.pop("sources", {})}, "checks": checks})


def chk(name: str, type_: str, **kw) -> dict:
    return {"name": name, "source": "s", "type": type_, "critical": {"above": 0.25}, **kw}


def results_of(res: list, monitor: str) -> dict:
    return {r.column: r for r in res if r.monitor == monitor}


def nulls(xs: list) -> int:
    return sum(x is None for x in xs)


@pytest.mark.parametrize("name", ["d.parquet", "d.csv"])
def test_null_rate_and_count_per_listed_column(h, name):
    res = checks_model(
        h,
        [
            chk("nr", "null_rate", columns=["a", "s", "t", "b"]),
            {**chk("nc", "null_count", columns=["s", "a"]), "critical": {"above": 2}},
        ],
        name,
    )
    nr = results_of(res, "nr")
    assert list(nr) == ["a", "s", "t", "b"]  # the order given
    # a: 2/10, s: 3/10, t: 1/10, b: 0/10
    assert {c: r.value for c, r in nr.items()} == {"a": 0.2, "s": 0.3, "t": 0.1, "b": 0.0}
    assert {c: r.status for c, r in nr.items()} == {
        "a": "ok",
        "s": "critical",
        "t": "ok",
        "b": "ok",
    }
    assert all(r.rows == 10 and r.kind == "check" for r in nr.values())
    nc = results_of(res, "nc")
    assert {c: (r.value, r.status) for c, r in nc.items()} == {
        "s": (3.0, "critical"),
        "a": (2.0, "ok"),
    }
    assert nc["s"].details == {"nulls": 3}


def test_out_of_range_per_numeric_column_vs_numpy(h):
    res = checks_model(h, [chk("oor", "out_of_range", columns="numeric", min=0, max=10)])
    got = results_of(res, "oor")
    assert sorted(got) == ["a", "b"]  # flag is boolean, not numeric; s, t are text
    for col, values in (("a", A), ("b", B)):
        x = np.array([v for v in values if v is not None], dtype=float)
        outside = int(np.count_nonzero((x < 0) | (x > 10)))
        assert got[col].value == pytest.approx(outside / x.size, abs=1e-12)
        assert got[col].details == {"outside": outside, "non_null": x.size}
    # by hand: a → -3, 12, 11 of 8 values; b → 11, 12, 13, 14 of 10
    assert (got["a"].value, got["b"].value) == (3 / 8, 4 / 10)
    assert (got["a"].status, got["b"].status) == ("critical", "critical")


def test_allowed_values_and_pattern_per_column(h):
    res = checks_model(
        h,
        [
            chk("allowed", "allowed_values", columns=["t", "s"], values=["x", "y", "ab"]),
            chk("pat", "pattern", columns=["s", "t"], regex="^[a-z]+$"),
        ],
    )
    allowed = results_of(res, "allowed")
    for col, values in (("t", T), ("s", S)):
        present = [v for v in values if v is not None]
        bad = sum(v not in ("x", "y", "ab") for v in present)
        assert allowed[col].value == pytest.approx(bad / len(present), abs=1e-12)
    assert allowed["t"].value == 2 / 9  # q, r
    assert allowed["s"].value == 4 / 7  # Cd, zz, x1, cd
    pat = results_of(res, "pat")
    for col, values in (("s", S), ("t", T)):
        present = [v for v in values if v is not None]
        non_matching = sum(re.fullmatch("[a-z]+", v) is None for v in present)
        assert pat[col].value == pytest.approx(non_matching / len(present), abs=1e-12)
    assert (pat["s"].value, pat["t"].value) == (2 / 7, 0.0)  # Cd, x1


def test_new_categories_per_column_against_the_reference(h):
    h.frame("ref.parquet", pl.DataFrame({"s": ["ab", "cd", "zz"], "t": ["x", "y", None]}))
    res = checks_model(
        h,
        [chk("new", "new_categories", columns=["s", "t"], reference="ref")],
        sources={"ref": src("ref.parquet", timestamp=None)},
    )
    new = results_of(res, "new")
    # s: Cd and x1 are unseen of 7 non-null; t: q and r of 9
    assert (new["s"].value, new["t"].value) == (2 / 7, 2 / 9)
    assert new["s"].details == {"unseen": 2, "non_null": 7, "reference_categories": 3}
    assert new["t"].details["reference_categories"] == 2


def test_selectors_resolve_by_dtype_without_segment_or_time_columns(h):
    res = checks_model(
        h,
        [
            chk("all", "null_count", columns="all"),
            chk("cat", "null_count", columns="categorical", segment_by=["t"]),
            chk("num", "null_count", columns="numeric", exclude=["b"]),
            chk("rest", "null_count", columns="all", exclude=["a", "s"]),
        ],
    )
    assert list(results_of(res, "all")) == ["a", "b", "s", "t", "flag"]  # no ts
    # segment columns are not checked; booleans are categories
    cat = [r for r in res if r.monitor == "cat" and not r.segment]
    assert [r.column for r in cat] == ["s", "flag"]
    assert list(results_of(res, "num")) == ["a"]
    assert list(results_of(res, "rest")) == ["b", "t", "flag"]
    got = {c: r.value for c, r in results_of(res, "all").items()}
    assert got == {"a": nulls(A), "b": 0, "s": nulls(S), "t": nulls(T), "flag": nulls(FLAG)}
    # per segment too: t == "x" holds rows 0, 2, 6, 7 → s: ab, Cd, None, x1
    seg = get(res, "cat", {"t": "x"}, column="s")
    assert (seg.value, seg.rows) == (1.0, 4)


def test_a_selector_that_picks_nothing_is_an_error(h):
    res = checks_model(h, [chk("none", "null_rate", columns="numeric", exclude=["a", "b"])])
    (r,) = [r for r in res if r.monitor == "none"]
    assert r.status == "error"
    assert r.details["error"] == "columns: numeric picks no column of source 's' (after exclude)"


def test_undefined_column_does_not_hide_the_others(h):
    df = frame().with_columns(pl.lit(None, dtype=pl.Float64).alias("empty"))
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "checks": [chk("oor", "out_of_range", columns=["empty", "b"], max=10)],
        }
    )
    got = results_of(res, "oor")
    assert got["empty"].status == "insufficient_data"
    assert "no rows in its denominator" in got["empty"].details["reason"]
    assert (got["b"].value, got["b"].status) == (0.4, "critical")


def test_all_columns_in_one_query(h):
    h.frame("d.parquet", frame())
    path = h.model_yaml(
        {
            "sources": {"s": src("d.parquet")},
            "checks": [
                chk("nr", "null_rate", columns="all"),
                chk("oor", "out_of_range", columns=["a", "b"], min=0),
            ],
        }
    )
    (model,) = load([path], env={}).models
    plan = plan_model(model, AT)
    assert len(plan.queries) == 1
    (query,) = plan.queries
    # 5 null counts, and per column of out_of_range its bad count and non-null count
    assert len(query.aggs) == 5 + 2 * 2
    nr = next(mp for mp in plan.monitors if mp.monitor.name == "nr")
    assert sorted(nr.bindings[0].names) == [f"nulls:{c}" for c in ["a", "b", "flag", "s", "t"]]


def test_duplicate_rate_keeps_columns_as_its_key(h):
    res = checks_model(
        h, [{**chk("dup", "duplicate_rate", columns=["t"]), "critical": {"above": 0.9}}]
    )
    (r,) = [r for r in res if r.monitor == "dup"]
    # t has 5 distinct values (x, y, q, None, r) among 10 rows: 5 repeats
    assert (r.column, r.value) == (None, 0.5)
