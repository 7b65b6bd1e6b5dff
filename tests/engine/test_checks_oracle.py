"""Data checks against closed-form answers (small hand-made frames) and numpy
(random data with fixed seeds). The engine is never its own oracle."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from conftest import AT, get, minutes_ago, one, src, stamps, write_frame

# ------------------------------------------------------------------ helpers


def check_model(h, df: pl.DataFrame, checks: list[dict], *, name: str = "d.parquet", **extra):
    h.frame(name, df)
    spec = {"sources": {"s": src(name)}, "checks": checks, **extra}
    return h.run(spec)


def chk(name: str, type_: str, **kw) -> dict:
    out = {"name": name, "source": "s", "type": type_}
    out.update(kw)
    if "warn" not in out and "critical" not in out:
        out["critical"] = {"above": 1e9}
    return out


# ------------------------------------------------------------------ row_count


def test_row_count_counts_only_window_rows(h):
    # 7 rows inside (at-1h, at], 3 outside (one exactly at at-1h, one older, one future)
    inside = stamps(7)
    outside = [AT - timedelta(hours=1), AT - timedelta(hours=3), AT + timedelta(seconds=1)]
    df = pl.DataFrame({"ts": inside + outside, "x": list(range(10))})
    res = check_model(
        h,
        df,
        [
            {"name": "rc", "source": "s", "type": "row_count", "critical": {"below": 8}},
            {"name": "rc-ok", "source": "s", "type": "row_count", "critical": {"below": 7}},
            {
                "name": "rc-filtered",
                "source": "s",
                "type": "row_count",
                "filter": "x >= 3",
                "warn": {"at_or_below": 4},
            },
        ],
    )
    rc = one(res, "rc")
    assert (rc.value, rc.rows, rc.status) == (7.0, 7, "critical")
    assert one(res, "rc-ok").status == "ok"
    # x in 0..6 inside the window; x >= 3 → 3,4,5,6
    f = one(res, "rc-filtered")
    assert (f.value, f.status) == (4.0, "warn")


def test_row_count_of_empty_window_is_zero_not_ok_silently(h):
    df = pl.DataFrame({"ts": [AT - timedelta(hours=5)], "x": [1]})
    res = check_model(
        h, df, [{"name": "rc", "source": "s", "type": "row_count", "critical": {"below": 1}}]
    )
    r = one(res, "rc")
    # a count means something without rows: 0 rows violates "below 1"
    assert r.value == 0.0
    assert r.status == "critical"


# ------------------------------------------------------------------ nulls


def test_null_count_and_null_rate(h):
    x = [1.0, None, 3.0, None, None, 6.0, 7.0, 8.0]
    s = ["a", "b", None, "d", "e", "f", "g", "h"]
    df = pl.DataFrame({"ts": stamps(8), "x": x, "s": s})
    res = check_model(
        h,
        df,
        [
            chk("nc", "null_count", column="x", critical={"at_or_above": 3}),
            chk("nr", "null_rate", column="x", warn={"above": 0.3}, critical={"above": 0.4}),
            chk("nr-s", "null_rate", column="s", critical={"above": 0.125}),
            chk("nr-s-edge", "null_rate", column="s", critical={"at_or_above": 0.125}),
        ],
    )
    assert one(res, "nc").value == 3.0
    assert one(res, "nc").status == "critical"
    nr = one(res, "nr")
    assert nr.value == pytest.approx(3 / 8)
    assert nr.status == "warn"
    assert one(res, "nr-s").value == pytest.approx(1 / 8)
    assert one(res, "nr-s").status == "ok"  # above is strict
    assert one(res, "nr-s-edge").status == "critical"


def test_null_rate_random_vs_numpy(h):
    rng = np.random.default_rng(7)
    n = 2000
    x = rng.normal(size=n)
    mask = rng.random(n) < 0.137
    ts = [minutes_ago(59.9 * (i + 0.5) / n) for i in range(n)]
    df = pl.DataFrame({"ts": ts, "x": pl.Series(np.where(mask, np.nan, x)).fill_nan(None)})
    res = check_model(h, df, [chk("nr", "null_rate", column="x")])
    assert one(res, "nr").value == pytest.approx(mask.mean(), abs=1e-12)
    assert one(res, "nr").rows == n


# ------------------------------------------------------------------ freshness


def test_freshness_age_and_duration_thresholds(h):
    # newest row 17 minutes old; one future row (after at) must not count
    df = pl.DataFrame(
        {"ts": [minutes_ago(40), minutes_ago(17), minutes_ago(25), AT + timedelta(minutes=5)]}
    )
    res = check_model(
        h,
        df,
        [
            chk("fresh", "freshness", warn={"above": "10m"}, critical={"above": "30m"}),
            chk("fresh-s", "freshness", critical={"above": 1019}),
            chk("fresh-edge", "freshness", critical={"above": "17m"}),
            chk("fresh-edge-incl", "freshness", critical={"at_or_above": "17m"}),
        ],
    )
    r = one(res, "fresh")
    assert r.value == pytest.approx(17 * 60)
    assert r.status == "warn"
    assert r.threshold == {"warn": {"above": 600.0}, "critical": {"above": 1800.0}}
    assert one(res, "fresh-s").status == "critical"
    assert one(res, "fresh-edge").status == "ok"
    assert one(res, "fresh-edge-incl").status == "critical"


def test_freshness_of_stalled_log_is_old_not_missing(h):
    # no row in the last hour; the newest is 3 hours old
    df = pl.DataFrame({"ts": [AT - timedelta(hours=5), AT - timedelta(hours=3)]})
    res = check_model(h, df, [chk("fresh", "freshness", critical={"above": "1h"})])
    r = one(res, "fresh")
    assert r.value == pytest.approx(3 * 3600)
    assert r.status == "critical"


def test_freshness_on_other_column_epoch_ms(h):
    # event time in ts, ingestion time in epoch milliseconds in another column
    ingested = [minutes_ago(30), minutes_ago(12)]
    df = pl.DataFrame(
        {
            "ts": [minutes_ago(31), minutes_ago(13)],
            "ingested_ms": [int(t.timestamp() * 1000) for t in ingested],
        }
    )
    res = check_model(h, df, [chk("fresh", "freshness", column="ingested_ms")])
    assert one(res, "fresh").value == pytest.approx(12 * 60)


# ------------------------------------------------------------------ schema


def _schema_frame(n: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": stamps(n),
            "i": pl.Series(range(n), dtype=pl.Int32),
            "f": [0.5] * n,
            "s": ["x"] * n,
            "b": [True] * n,
            "d": [date(2026, 11, 1)] * n,
        }
    )


def test_schema_families_and_exact_dtypes_all_fit(h):
    res = check_model(
        h,
        _schema_frame(),
        [
            {
                "name": "schema",
                "source": "s",
                "type": "schema",
                "expected_columns": {
                    "ts": "datetime",
                    "i": "integer",
                    "f": "float",
                    "s": "string",
                    "b": "boolean",
                    "d": "date",
                },
            },
            {
                "name": "schema-families",
                "source": "s",
                "type": "schema",
                "expected_columns": {
                    "ts": "temporal",
                    "i": "numeric",
                    "f": "numeric",
                    "s": "any",
                    "b": "any",
                    "d": "temporal",
                },
            },
            {
                "name": "schema-exact",
                "source": "s",
                "type": "schema",
                "expected_columns": {
                    "i": "Int32",
                    "f": "Float64",
                    "s": "String",
                    "b": "Boolean",
                    "d": "Date",
                    "ts": "Datetime",
                },
            },
        ],
    )
    for name in ("schema", "schema-families", "schema-exact"):
        r = one(res, name)
        assert (r.value, r.status) == (0.0, "ok"), r
        # default threshold: critical above 0
        assert r.threshold == {"critical": {"above": 0}}


def test_schema_counts_missing_and_wrong_dtypes(h):
    res = check_model(
        h,
        _schema_frame(),
        [
            {
                "name": "schema",
                "source": "s",
                "type": "schema",
                "expected_columns": {
                    "i": "float",  # wrong family
                    "f": "integer",  # wrong family
                    "s": "numeric",  # wrong family
                    "b": "Int64",  # wrong exact dtype
                    "d": "datetime",  # a Date is not a Datetime
                    "gone": "any",  # missing
                    "ts": "temporal",  # fine
                },
            }
        ],
    )
    r = one(res, "schema")
    assert r.value == 6.0
    assert r.status == "critical"
    assert len(r.details["problems"]) == 6
    assert any("gone" in p for p in r.details["problems"])


def test_schema_strict_counts_undeclared_columns(h):
    res = check_model(
        h,
        _schema_frame(),
        [
            {
                "name": "lenient",
                "source": "s",
                "type": "schema",
                "expected_columns": {"ts": "datetime", "i": "integer"},
            },
            {
                "name": "strict",
                "source": "s",
                "type": "schema",
                "strict": True,
                "expected_columns": {"ts": "datetime", "i": "integer"},
                "warn": {"above": 0},
                "critical": {"above": 3},
            },
        ],
    )
    assert one(res, "lenient").value == 0.0
    strict = one(res, "strict")
    # f, s, b, d are not declared
    assert strict.value == 4.0
    assert strict.status == "critical"


def test_schema_of_a_source_whose_files_differ(h):
    day1 = pl.DataFrame({"ts": [minutes_ago(50)], "amount": [1.5], "country": ["DE"]})
    day2 = pl.DataFrame({"ts": [minutes_ago(10)], "amt": [2.5], "country": ["FR"]})
    write_frame(h.root / "logs" / "a.parquet", day1)
    write_frame(h.root / "logs" / "b.parquet", day2)
    res = h.run(
        {
            "sources": {"s": src("logs/*.parquet")},
            "checks": [
                {
                    "name": "schema",
                    "source": "s",
                    "type": "schema",
                    "expected_columns": {"ts": "datetime", "amount": "float", "country": "string"},
                },
                {
                    "name": "strict",
                    "source": "s",
                    "type": "schema",
                    "strict": True,
                    "expected_columns": {"ts": "datetime", "amount": "float", "country": "string"},
                },
                chk("rc", "row_count"),
            ],
        }
    )
    r = one(res, "schema")
    assert r.value == 1.0
    assert r.status == "critical"
    (problem,) = r.details["problems"]
    assert "amount" in problem and "b.parquet" in problem and "a.parquet" not in problem
    # strict: 'amount' missing in b, 'amt' unexpected in b
    assert one(res, "strict").value == 2.0
    assert one(res, "rc").value == 2.0


# ------------------------------------------------------------------ out_of_range


def test_out_of_range_min_only_max_only_both(h):
    # non-null values: -1, 0, 5, 10, 11, 10.5 ; one null
    x = [-1.0, 0.0, 5.0, 10.0, 11.0, None, 10.5]
    df = pl.DataFrame({"ts": stamps(7), "x": x})
    res = check_model(
        h,
        df,
        [
            chk("min", "out_of_range", column="x", min=0),
            chk("max", "out_of_range", column="x", max=10),
            chk("both", "out_of_range", column="x", min=0, max=10, warn={"above": 0.4}),
            chk("tight", "out_of_range", column="x", min=-1, max=11),
        ],
    )
    assert one(res, "min").value == pytest.approx(1 / 6)  # -1
    assert one(res, "max").value == pytest.approx(2 / 6)  # 11, 10.5
    both = one(res, "both")
    assert both.value == pytest.approx(3 / 6)
    assert both.status == "warn"
    assert one(res, "tight").value == 0.0  # both bounds inclusive


def test_out_of_range_random_vs_numpy(h):
    rng = np.random.default_rng(11)
    n = 1500
    x = rng.normal(50, 20, size=n).round(1)
    ts = [minutes_ago(59 * (i + 0.5) / n) for i in range(n)]
    df = pl.DataFrame({"ts": ts, "x": x})
    res = check_model(h, df, [chk("r", "out_of_range", column="x", min=20.0, max=80.0)])
    expected = np.mean((x < 20.0) | (x > 80.0))
    assert one(res, "r").value == pytest.approx(expected, abs=1e-12)


def test_out_of_range_on_integer_column(h):
    df = pl.DataFrame({"ts": stamps(5), "n": [0, 1, 2, 3, 4]})
    res = check_model(h, df, [chk("r", "out_of_range", column="n", min=0.5, max=3)])
    assert one(res, "r").value == pytest.approx(2 / 5)  # 0 and 4


# ------------------------------------------------------------------ allowed_values


def test_allowed_values_numeric_and_string(h):
    df = pl.DataFrame(
        {
            "ts": stamps(8),
            "status": [200, 200, 404, 500, None, 200, 503, 429],
            "country": ["DE", "FR", "de", None, "DE", "XX", "FR", "FR"],
            "flag": [True, False, None, True, True, True, False, True],
        }
    )
    res = check_model(
        h,
        df,
        [
            chk("codes", "allowed_values", column="status", values=[200, 404, 429]),
            chk("countries", "allowed_values", column="country", values=["DE", "FR"]),
            chk("flags", "allowed_values", column="flag", values=[True]),
        ],
    )
    # non-null statuses: 7, not allowed: 500, 503
    assert one(res, "codes").value == pytest.approx(2 / 7)
    # non-null countries: 7, not allowed: 'de' (case matters), 'XX'
    assert one(res, "countries").value == pytest.approx(2 / 7)
    # non-null flags: 7, not allowed: two False
    assert one(res, "flags").value == pytest.approx(2 / 7)


def test_allowed_values_integers_on_float_column(h):
    df = pl.DataFrame({"ts": stamps(4), "label": [0.0, 1.0, 1.0, 2.5]})
    res = check_model(h, df, [chk("labels", "allowed_values", column="label", values=[0, 1])])
    r = one(res, "labels")
    assert r.status == "ok"
    assert r.value == pytest.approx(1 / 4)


def test_two_allowed_values_checks_with_long_lists_are_independent(h):
    # regression: aggregates were once deduplicated by str(expr), which abbreviates
    # long list literals ([0, 1, … 11]), so these two checks shared one aggregate
    a = list(range(12))
    b = list(range(12))
    b[5] = 100  # differs only in the middle
    df = pl.DataFrame({"ts": stamps(4), "x": [5, 5, 100, 1]})
    res = check_model(
        h,
        df,
        [
            chk("a", "allowed_values", column="x", values=a),
            chk("b", "allowed_values", column="x", values=b),
        ],
    )
    assert one(res, "a").value == pytest.approx(1 / 4)  # 100 not in a
    assert one(res, "b").value == pytest.approx(2 / 4)  # the two 5s not in b


# ------------------------------------------------------------------ new_categories


def test_new_categories_against_reference_source(h):
    h.frame("train.parquet", pl.DataFrame({"country": ["DE", "FR", "IT", None, "DE"]}))
    df = pl.DataFrame({"ts": stamps(7), "country": ["DE", "ES", "FR", None, "ES", "PL", "IT"]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet"), "train": src("train.parquet", timestamp=None)},
            "checks": [
                {
                    "name": "new",
                    "source": "s",
                    "type": "new_categories",
                    "column": "country",
                    "reference": "train",
                    "warn": {"above": 0.25},
                    "critical": {"above": 0.5},
                }
            ],
        }
    )
    r = one(res, "new")
    # non-null: 6; unseen: ES, ES, PL
    assert r.value == pytest.approx(3 / 6)
    assert r.status == "warn"


def test_new_categories_random_vs_python_sets(h):
    rng = np.random.default_rng(3)
    ref = rng.choice([f"c{i}" for i in range(20)], size=300)
    cur = rng.choice([f"c{i}" for i in range(25)], size=400)
    h.frame("train.parquet", pl.DataFrame({"c": ref}))
    h.frame(
        "d.parquet",
        pl.DataFrame({"ts": [minutes_ago(59 * (i + 0.5) / 400) for i in range(400)], "c": cur}),
    )
    res = h.run(
        {
            "sources": {"s": src("d.parquet"), "train": src("train.parquet", timestamp=None)},
            "checks": [chk("new", "new_categories", column="c", reference="train")],
        }
    )
    known = set(ref.tolist())
    expected = np.mean([c not in known for c in cur])
    assert one(res, "new").value == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------ duplicate_rate


def test_duplicate_rate_over_several_columns(h):
    rows = [
        ("s1", "a", 1),
        ("s1", "a", 1),  # dup
        ("s1", "a", 2),
        ("s1", "b", 1),
        ("s2", "a", 1),
        ("s1", "a", 1),  # dup
        ("s2", "a", 1),  # dup
        ("s3", None, 1),
        ("s3", None, 1),  # dup (nulls equal)
        ("s3", "c", None),
    ]
    df = pl.DataFrame(
        {
            "ts": stamps(len(rows)),
            "store": [r[0] for r in rows],
            "sku": [r[1] for r in rows],
            "h": [r[2] for r in rows],
        },
        strict=False,
    )
    res = check_model(
        h,
        df,
        [
            chk("dup", "duplicate_rate", columns=["store", "sku", "h"], warn={"above": 0.3}),
            chk("dup1", "duplicate_rate", columns=["store"]),
        ],
    )
    assert one(res, "dup").value == pytest.approx(4 / 10)
    assert one(res, "dup").status == "warn"
    # store alone: s1 ×5, s2 ×2, s3 ×3 → 10 - 3 = 7 repeats
    assert one(res, "dup1").value == pytest.approx(7 / 10)


def test_duplicate_rate_random_vs_python(h):
    rng = np.random.default_rng(5)
    n = 800
    a = rng.integers(0, 15, size=n)
    b = rng.choice(["x", "y", "z"], size=n)
    ts = [minutes_ago(59 * (i + 0.5) / n) for i in range(n)]
    res = check_model(
        h,
        pl.DataFrame({"ts": ts, "a": a, "b": b}),
        [chk("dup", "duplicate_rate", columns=["a", "b"])],
    )
    expected = (n - len(set(zip(a.tolist(), b.tolist(), strict=True)))) / n
    assert one(res, "dup").value == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------ pattern


def test_pattern_matching_and_non_matching(h):
    ids = ["req-001", "req-002", "REQ-003", "req-x", None, "req-0042", ""]
    df = pl.DataFrame({"ts": stamps(7), "id": ids})
    res = check_model(
        h,
        df,
        [
            chk("bad-ids", "pattern", column="id", regex="^req-[0-9]+$", warn={"above": 0.4}),
            chk(
                "good-ids",
                "pattern",
                column="id",
                regex="^req-[0-9]+$",
                rate_of="matching",
                critical={"below": 0.5},
            ),
            chk("empty", "pattern", column="id", regex="\\S"),
        ],
    )
    # non-null: 6; matching: req-001, req-002, req-0042
    bad = one(res, "bad-ids")
    assert bad.value == pytest.approx(3 / 6)
    assert bad.status == "warn"
    good = one(res, "good-ids")
    assert good.value == pytest.approx(3 / 6)
    assert good.status == "ok"  # 0.5 is not below 0.5
    assert one(res, "empty").value == pytest.approx(1 / 6)  # the empty string


# ------------------------------------------------------------------ outlier_rate


def _outlier_setup(h, ref: np.ndarray, cur: np.ndarray):
    h.frame("train.parquet", pl.DataFrame({"x": ref}))
    n = len(cur)
    ts = [minutes_ago(59 * (i + 0.5) / n) for i in range(n)]
    h.frame("d.parquet", pl.DataFrame({"ts": ts, "x": cur}))
    return {"s": src("d.parquet"), "train": src("train.parquet", timestamp=None)}


def test_outlier_rate_zscore_vs_numpy(h):
    rng = np.random.default_rng(42)
    ref = rng.normal(10, 2, size=500)
    cur = rng.normal(10.5, 2.6, size=1000)
    sources = _outlier_setup(h, ref, cur)
    res = h.run(
        {
            "sources": sources,
            "checks": [
                chk("z3", "outlier_rate", column="x", reference="train"),
                chk("z2", "outlier_rate", column="x", reference="train", method="zscore", factor=2),
            ],
        }
    )
    mu, sd = ref.mean(), ref.std(ddof=1)
    z = np.abs((cur - mu) / sd)
    assert one(res, "z3").value == pytest.approx(np.mean(z > 3), abs=1e-12)
    assert one(res, "z2").value == pytest.approx(np.mean(z > 2), abs=1e-12)
    assert np.mean(z > 2) > 0.05  # the oracle is not trivially 0


def test_outlier_rate_iqr_vs_numpy(h):
    rng = np.random.default_rng(43)
    ref = rng.exponential(3.0, size=401)
    cur = rng.exponential(3.5, size=900)
    sources = _outlier_setup(h, ref, cur)
    res = h.run(
        {
            "sources": sources,
            "checks": [
                chk("iqr", "outlier_rate", column="x", reference="train", method="iqr"),
                chk(
                    "iqr3", "outlier_rate", column="x", reference="train", method="iqr", factor=0.5
                ),
            ],
        }
    )
    q1, q3 = np.quantile(ref, [0.25, 0.75], method="linear")
    for name, k in (("iqr", 1.5), ("iqr3", 0.5)):
        lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
        expected = np.mean((cur < lo) | (cur > hi))
        assert one(res, name).value == pytest.approx(expected, abs=1e-12), name


def test_outlier_rate_iqr_closed_form_with_nulls(h):
    h.frame("train.parquet", pl.DataFrame({"x": [float(v) for v in range(1, 10)]}))
    h.frame(
        "d.parquet",
        pl.DataFrame({"ts": stamps(6), "x": [-3.0, -3.5, 13.0, 13.01, 5.0, None]}),
    )
    res = h.run(
        {
            "sources": {"s": src("d.parquet"), "train": src("train.parquet", timestamp=None)},
            "checks": [chk("iqr", "outlier_rate", column="x", reference="train", method="iqr")],
        }
    )
    # fences [-3, 13] are inside; -3.5 and 13.01 are outliers among 5 non-null values
    assert one(res, "iqr").value == pytest.approx(2 / 5)


# ------------------------------------------------------------------ custom


def test_custom_sql_aggregate(h):
    amount = [10.0, -5.0, 20.0, -1.0, 0.0]
    df = pl.DataFrame(
        {"ts": stamps(5), "amount": amount, "country": ["DE", "DE", "FR", "FR", "IT"]}
    )
    res = check_model(
        h,
        df,
        [
            chk(
                "neg",
                "custom",
                expr="avg(CAST(amount < 0 AS DOUBLE))",
                critical={"above": 0},
            ),
            chk("total", "custom", expr="sum(amount) / count(*)", warn={"below": 5}),
            chk(
                "de-share",
                "custom",
                expr="sum(CASE WHEN country = 'DE' THEN 1 ELSE 0 END)",
                critical={"between": [2, 3]},
            ),
        ],
    )
    assert one(res, "neg").value == pytest.approx(2 / 5)
    assert one(res, "neg").status == "critical"
    assert one(res, "total").value == pytest.approx(24 / 5)
    assert one(res, "total").status == "warn"
    assert one(res, "de-share").value == 2
    assert one(res, "de-share").status == "critical"


# ------------------------------------------------------------------ many checks at once


def test_many_checks_on_random_data_vs_numpy(h):
    """Every rate check of one model over the same random frame, each vs numpy;
    fusing them into one query must not mix their values."""
    rng = np.random.default_rng(2026)
    n = 3000
    x = rng.normal(0, 1, size=n)
    null = rng.random(n) < 0.05
    cat = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    ts = [minutes_ago(59.5 * (i + 0.5) / n) for i in range(n)]
    xs = pl.Series(np.where(null, np.nan, x)).fill_nan(None)
    df = pl.DataFrame({"ts": ts, "x": xs, "cat": cat})
    res = check_model(
        h,
        df,
        [
            chk("nulls", "null_count", column="x"),
            chk("null-rate", "null_rate", column="x"),
            chk("range", "out_of_range", column="x", min=-1.5, max=1.0),
            chk("allowed", "allowed_values", column="cat", values=["a", "b"]),
            chk("dup", "duplicate_rate", columns=["cat"]),
            chk("pat", "pattern", column="cat", regex="^[ab]$", rate_of="matching"),
            chk("custom", "custom", expr="avg(x)"),
            chk("rows", "row_count"),
        ],
    )
    xv = x[~null]
    assert one(res, "nulls").value == null.sum()
    assert one(res, "null-rate").value == pytest.approx(null.mean(), abs=1e-12)
    assert one(res, "range").value == pytest.approx(np.mean((xv < -1.5) | (xv > 1.0)), abs=1e-12)
    assert one(res, "allowed").value == pytest.approx(np.mean(~np.isin(cat, ["a", "b"])), abs=1e-12)
    assert one(res, "dup").value == pytest.approx((n - 4) / n, abs=1e-12)
    assert one(res, "pat").value == pytest.approx(np.mean(np.isin(cat, ["a", "b"])), abs=1e-12)
    assert one(res, "custom").value == pytest.approx(xv.mean(), rel=1e-9)
    assert one(res, "rows").value == n


# ------------------------------------------------------------------ thresholds


@pytest.mark.parametrize(
    ("cond", "value", "expected"),
    [
        ({"above": 4}, 4, "ok"),
        ({"above": 3}, 4, "critical"),
        ({"at_or_above": 4}, 4, "critical"),
        ({"at_or_above": 5}, 4, "ok"),
        ({"below": 4}, 4, "ok"),
        ({"below": 5}, 4, "critical"),
        ({"at_or_below": 4}, 4, "critical"),
        ({"at_or_below": 3}, 4, "ok"),
        ({"outside": [4, 9]}, 4, "ok"),
        ({"outside": [5, 9]}, 4, "critical"),
        ({"outside": [1, 3]}, 4, "critical"),
        ({"between": [4, 9]}, 4, "critical"),
        ({"between": [1, 4]}, 4, "critical"),
        ({"between": [5, 9]}, 4, "ok"),
    ],
)
def test_threshold_ops_and_edges(h, cond, value, expected):
    df = pl.DataFrame({"ts": stamps(value)})
    res = check_model(h, df, [{"name": "rc", "source": "s", "type": "row_count", "critical": cond}])
    r = one(res, "rc")
    assert r.value == value
    assert r.status == expected


@pytest.mark.parametrize(
    ("warn", "critical", "expected"),
    [
        ({"above": 2}, {"above": 5}, "warn"),
        ({"above": 2}, {"above": 3}, "critical"),
        ({"above": 4}, {"above": 5}, "ok"),
        ({"below": 5}, {"below": 2}, "warn"),
        ({"outside": [2, 3]}, {"outside": [1, 5]}, "warn"),
        ({"outside": [2, 3]}, {"outside": [1, 3.5]}, "critical"),
        ({"between": [0, 10]}, {"between": [3, 4]}, "critical"),
        ({"between": [0, 10]}, {"between": [5, 6]}, "warn"),
    ],
)
def test_warn_and_critical_severities(h, warn, critical, expected):
    df = pl.DataFrame({"ts": stamps(4)})
    res = check_model(
        h,
        df,
        [{"name": "rc", "source": "s", "type": "row_count", "warn": warn, "critical": critical}],
    )
    assert one(res, "rc").status == expected


# ------------------------------------------------------------------ statuses


def test_no_data_and_min_rows(h):
    df = pl.DataFrame(
        {"ts": [minutes_ago(10), minutes_ago(20), AT - timedelta(hours=3)], "x": [1.0, None, 2.0]}
    )
    res = check_model(
        h,
        df,
        [
            chk("nr", "null_rate", column="x", min_rows=3),
            chk("nr-ok", "null_rate", column="x", min_rows=2),
            chk("nr-old", "null_rate", column="x", filter="x > 100"),
        ],
    )
    assert one(res, "nr").status == "insufficient_data"
    assert one(res, "nr").value is None
    assert one(res, "nr-ok").value == pytest.approx(0.5)
    assert one(res, "nr-ok").status == "ok"
    old = one(res, "nr-old")
    assert old.status == "no_data"
    assert old.value is None


def test_rate_without_non_null_values_is_insufficient_data(h):
    df = pl.DataFrame({"ts": stamps(3), "x": pl.Series([None, None, None], dtype=pl.Float64)})
    res = check_model(h, df, [chk("range", "out_of_range", column="x", min=0)])
    r = one(res, "range")
    assert r.status == "insufficient_data"
    assert r.value is None


def test_missing_column_errors_only_its_own_monitor(h):
    df = pl.DataFrame({"ts": stamps(4), "x": [1.0, 2.0, None, 4.0]})
    res = check_model(
        h,
        df,
        [
            chk("nr-missing", "null_rate", column="nope"),
            chk("nr", "null_rate", column="x"),
            chk("range-missing", "out_of_range", column="nope2", min=0),
            chk("rc", "row_count"),
            chk("custom-missing", "custom", expr="avg(nope3)"),
        ],
    )
    for name in ("nr-missing", "range-missing", "custom-missing"):
        r = one(res, name)
        assert r.status == "error", r
        assert r.value is None
    assert one(res, "nr").value == pytest.approx(1 / 4)
    assert one(res, "nr").status == "ok"
    assert one(res, "rc").value == 4.0


def test_result_fields(h):
    df = pl.DataFrame({"ts": stamps(4), "x": [1.0, 2.0, None, 4.0]})
    res = check_model(
        h, df, [chk("nr", "null_rate", column="x", warn={"above": 0.1}, critical={"above": 0.5})]
    )
    r = one(res, "nr")
    assert (r.kind, r.type, r.source, r.column) == ("check", "null_rate", "s", "x")
    assert r.segment == {}
    assert r.window_start == AT - timedelta(hours=1)
    assert r.window_end == AT
    assert r.rows == 4
    assert r.threshold == {"warn": {"above": 0.1}, "critical": {"above": 0.5}}
    assert isinstance(r.window_end, datetime)


def test_freshness_is_measured_at_at_even_with_delay(h):
    df = pl.DataFrame({"ts": [minutes_ago(30), minutes_ago(120)]})
    res = check_model(h, df, [chk("fresh", "freshness")], evaluation={"delay": "1h"})
    assert one(res, "fresh").value == pytest.approx(30 * 60)


def test_freshness_per_segment(h):
    df = pl.DataFrame(
        {"ts": [minutes_ago(5), minutes_ago(50), minutes_ago(20)], "k": ["a", "b", "b"]}
    )
    res = check_model(h, df, [chk("fresh", "freshness", segment_by=["k"])])
    assert get(res, "fresh").value == pytest.approx(300)
    assert get(res, "fresh", {"k": "a"}).value == pytest.approx(300)
    assert get(res, "fresh", {"k": "b"}).value == pytest.approx(1200)


def test_min_rows_per_segment(h):
    df = pl.DataFrame(
        {"ts": stamps(5), "k": ["a", "a", "a", "b", "b"], "x": [1.0, None, 3.0, None, 5.0]}
    )
    res = check_model(h, df, [chk("nr", "null_rate", column="x", segment_by=["k"], min_rows=3)])
    assert get(res, "nr").value == pytest.approx(2 / 5)
    assert get(res, "nr", {"k": "a"}).value == pytest.approx(1 / 3)
    b = get(res, "nr", {"k": "b"})
    assert b.status == "insufficient_data"
    assert b.value is None


def test_disabled_monitor_is_not_evaluated(h):
    df = pl.DataFrame({"ts": stamps(2)})
    res = check_model(h, df, [chk("on", "row_count"), chk("off", "row_count", enabled=False)])
    assert [r.monitor for r in res] == ["on"]


def test_cli_json_matches_the_contract(h, tmp_path):
    import json
    import subprocess
    import sys

    h.frame("d.parquet", pl.DataFrame({"ts": stamps(4), "x": [1.0, None, 3.0, 4.0]}))
    path = h.model_yaml(
        {
            "sources": {"s": src("d.parquet")},
            "checks": [
                chk("nr", "null_rate", column="x", warn={"above": 0.1}, critical={"above": 0.5})
            ],
        }
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rulesengine.cli",
            "run",
            str(path),
            "--at",
            "2026-11-27T15:00:00Z",
            "--format",
            "json",
            "--fail-on",
            "never",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (model,) = doc["models"]
    assert model["at"] == "2026-11-27T15:00:00Z"
    (r,) = model["results"]
    assert r["monitor"] == "nr" and r["kind"] == "check" and r["type"] == "null_rate"
    assert r["column"] == "x" and r["segment"] == {}
    assert r["window"] == {"start": "2026-11-27T14:00:00Z", "end": "2026-11-27T15:00:00Z"}
    assert r["value"] == pytest.approx(0.25)
    assert r["status"] == "warn"
    assert r["rows"] == 4


def test_runtime_error_in_one_monitor_does_not_hide_the_others(h):
    df = pl.DataFrame({"ts": stamps(3), "country": ["DE", "12", "FR"], "x": [1.0, None, 3.0]})
    res = check_model(
        h,
        df,
        [
            chk("bad", "custom", expr="sum(CAST(country AS INTEGER))"),
            chk("nr", "null_rate", column="x"),
            chk("rc", "row_count"),
        ],
    )
    assert one(res, "bad").status == "error"
    assert one(res, "nr").value == pytest.approx(1 / 3)
    assert one(res, "rc").value == 3.0


def test_missing_column_in_a_metric_does_not_stop_the_others(h):
    df = pl.DataFrame({"ts": stamps(3), "pred": [True, False, True], "y": [True, True, False]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "checks": [chk("rc", "row_count")],
            "metrics": [
                {
                    "name": "bad",
                    "source": "s",
                    "type": "recall",
                    "prediction": "pred",
                    "target": "nope",
                    "critical": {"below": 0.5},
                },
                {
                    "name": "good",
                    "source": "s",
                    "type": "recall",
                    "prediction": "pred",
                    "target": "y",
                    "critical": {"below": 0.1},
                },
            ],
            "kpis": [
                {"name": "kbad", "source": "s", "expr": "sum(nope)", "critical": {"above": 1}}
            ],
        }
    )
    assert one(res, "bad").status == "error"
    assert one(res, "kbad").status == "error"
    assert one(res, "good").value == pytest.approx(1 / 2)
    assert one(res, "rc").value == 3.0
