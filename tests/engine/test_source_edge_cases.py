"""Sources that are missing, empty, corrupt, drifting in shape or hive-partitioned."""

from __future__ import annotations

import os
from datetime import date, timedelta

import polars as pl
import pytest
from conftest import AT, get, minutes_ago, one, src, stamps, write_frame, write_ndjson_rows


def rc(name: str = "rc", source: str = "s", **kw) -> dict:
    return {"name": name, "source": source, "type": "row_count", "critical": {"below": 1}, **kw}


def null_rate(name: str, column: str, source: str = "s", **kw) -> dict:
    return {
        "name": name,
        "source": source,
        "type": "null_rate",
        "column": column,
        "critical": {"above": 0.99},
        **kw,
    }


# ------------------------------------------------------------------ missing files


@pytest.mark.parametrize("path", ["nothing.parquet", "logs/*.parquet", "logs/**/*.ndjson"])
def test_missing_files_give_no_data(h, path):
    (h.root / "logs").mkdir()
    res = h.run(
        {
            "sources": {"s": src(path)},
            "checks": [rc(), null_rate("nr", "x")],
            "metrics": [
                {
                    "name": "mean",
                    "source": "s",
                    "type": "mean",
                    "column": "x",
                    "critical": {"above": 1},
                }
            ],
        }
    )
    for name in ("rc", "nr", "mean"):
        r = one(res, name)
        assert r.status == "no_data", r
        assert r.value is None


def test_missing_files_of_a_required_source_are_an_error(h):
    h.frame("ok.parquet", pl.DataFrame({"ts": stamps(2)}))
    res = h.run(
        {
            "sources": {
                "s": src("logs/*.parquet", required=True),
                "t": src("ok.parquet"),
            },
            "checks": [rc(), rc("rc-t", source="t")],
        }
    )
    r = one(res, "rc")
    assert r.status == "error"
    assert r.value is None
    assert one(res, "rc-t").value == 2.0


def test_missing_label_source_gives_no_data(h):
    h.frame("p.parquet", pl.DataFrame({"ts": stamps(2), "id": [1, 2], "pred": [True, False]}))
    res = h.run(
        {
            "sources": {"s": src("p.parquet"), "labels": src("labels/*.ndjson", timestamp="lt")},
            "checks": [rc()],
            "metrics": [
                {
                    "name": "acc",
                    "source": "s",
                    "type": "accuracy",
                    "prediction": "pred",
                    "target": "y",
                    "join": {"source": "labels", "on": "id"},
                    "critical": {"below": 0.5},
                }
            ],
        }
    )
    assert one(res, "acc").status == "no_data"
    assert one(res, "rc").value == 2.0


# ------------------------------------------------------------------ empty files


def test_parquet_file_with_zero_rows_alone(h):
    empty = pl.DataFrame(
        {"ts": [], "x": []}, schema={"ts": pl.Datetime("us", "UTC"), "x": pl.Float64}
    )
    write_frame(h.root / "logs" / "a.parquet", empty)
    res = h.run(
        {
            "sources": {"s": src("logs/*.parquet")},
            "checks": [rc(), null_rate("nr", "x")],
        }
    )
    assert one(res, "rc").value == 0.0
    assert one(res, "rc").status == "critical"
    assert one(res, "nr").status == "no_data"


def test_parquet_file_with_zero_rows_among_others(h):
    empty = pl.DataFrame(
        {"ts": [], "x": []}, schema={"ts": pl.Datetime("us", "UTC"), "x": pl.Float64}
    )
    write_frame(h.root / "logs" / "a.parquet", empty)
    write_frame(
        h.root / "logs" / "b.parquet", pl.DataFrame({"ts": stamps(4), "x": [1.0, None, 3.0, 4.0]})
    )
    write_frame(h.root / "logs" / "c.parquet", empty)
    res = h.run({"sources": {"s": src("logs/*.parquet")}, "checks": [rc(), null_rate("nr", "x")]})
    assert one(res, "rc").value == 4.0
    assert one(res, "nr").value == pytest.approx(1 / 4)


def test_csv_header_only_file_among_others(h):
    (h.root / "c").mkdir()
    (h.root / "c" / "a.csv").write_text("ts,x\n2026-11-27T14:30:00Z,1\n2026-11-27T14:40:00Z,\n")
    (h.root / "c" / "b.csv").write_text("ts,x\n")  # header only
    res = h.run(
        {
            "sources": {"c": src("c/*.csv")},
            "checks": [rc("rc-c", source="c"), null_rate("nr-c", "x", source="c")],
        }
    )
    assert one(res, "rc-c").value == 2.0
    assert one(res, "nr-c").value == pytest.approx(0.5)


def test_empty_ndjson_file_among_others(h):
    write_ndjson_rows(h.root / "j" / "a.ndjson", [{"ts": "2026-11-27T14:30:00Z", "x": 1}])
    (h.root / "j" / "b.ndjson").write_text("")
    res = h.run({"sources": {"j": src("j/*.ndjson")}, "checks": [rc("rc-j", source="j")]})
    assert one(res, "rc-j").value == 1.0


# ------------------------------------------------------------------ corrupt files


def test_corrupt_parquet_is_an_error_naming_the_file(h):
    logs = h.root / "logs"
    write_frame(logs / "a.parquet", pl.DataFrame({"ts": stamps(2), "x": [1.0, 2.0]}))
    (logs / "b.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 3 + b"PAR1")
    write_frame(h.root / "ok.parquet", pl.DataFrame({"ts": stamps(3), "x": [1.0, 2.0, None]}))
    broken = {
        "model": "broken",
        "sources": {"s": src("logs/*.parquet"), "t": src("ok.parquet")},
        "checks": [rc(), null_rate("nr", "x"), null_rate("nr-t", "x", source="t")],
    }
    fine = {
        "model": "fine",
        "sources": {"t": src("ok.parquet")},
        "checks": [rc(source="t")],
    }
    models = h.run_all(broken, fine)
    by_model = {m.model: list(m.results) for m in models}
    for name in ("rc", "nr"):
        r = one(by_model["broken"], name)
        assert r.status == "error", r
        assert "b.parquet" in r.details["error"]
    # the model's monitors on another source, and other models, are still evaluated
    assert one(by_model["broken"], "nr-t").value == pytest.approx(1 / 3)
    assert one(by_model["fine"], "rc").value == 3.0


def test_corrupt_ndjson_line_is_an_error_not_ok(h):
    write_ndjson_rows(h.root / "j" / "a.ndjson", [{"ts": "2026-11-27T14:30:00Z", "x": 1}])
    (h.root / "j" / "b.ndjson").write_text('{"ts": "2026-11-27T14:40:00Z", "x": 2}\n{"ts": \n')
    res = h.run({"sources": {"s": src("j/*.ndjson")}, "checks": [rc()]})
    r = one(res, "rc")
    assert r.status == "error"
    assert r.value is None


def test_missing_timestamp_column_is_an_error_for_that_source_only(h):
    h.frame("a.parquet", pl.DataFrame({"time": stamps(2)}))
    h.frame("b.parquet", pl.DataFrame({"ts": stamps(3)}))
    res = h.run(
        {
            "sources": {"s": src("a.parquet"), "t": src("b.parquet")},
            "checks": [rc(), rc("rc-t", source="t")],
        }
    )
    assert one(res, "rc").status == "error"
    assert "ts" in one(res, "rc").details["error"]
    assert one(res, "rc-t").value == 3.0


# ------------------------------------------------------------ columns that differ between files


def _renamed_rows():
    day1 = [
        {"ts": "2026-11-27T14:10:00Z", "amount": 1.5, "country": "DE"},
        {"ts": "2026-11-27T14:20:00Z", "amount": None, "country": "FR"},
    ]
    day2 = [
        {"ts": "2026-11-27T14:40:00Z", "amt": 2.5, "country": "DE"},
        {"ts": "2026-11-27T14:50:00Z", "amt": 3.5, "country": "IT"},
        {"ts": "2026-11-27T14:55:00Z", "amt": None, "country": "IT"},
    ]
    return day1, day2


def _renamed_checks() -> list[dict]:
    return [
        rc(),
        null_rate("nr-amount", "amount"),
        null_rate("nr-amt", "amt"),
        null_rate("nr-country", "country"),
        {
            "name": "schema",
            "source": "s",
            "type": "schema",
            "expected_columns": {"ts": "any", "amount": "float", "country": "string"},
        },
        {
            "name": "total",
            "source": "s",
            "type": "custom",
            "expr": "sum(coalesce(amount, amt))",
            "critical": {"above": 1e9},
        },
    ]


def _assert_renamed(res, suffix: str):
    assert one(res, "rc").value == 5.0
    # amount: null in day1 row 2 and in all three day2 rows
    assert one(res, "nr-amount").value == pytest.approx(4 / 5)
    # amt: null in both day1 rows and one day2 row
    assert one(res, "nr-amt").value == pytest.approx(3 / 5)
    assert one(res, "nr-country").value == 0.0
    schema = one(res, "schema")
    assert schema.value == 1.0
    assert schema.status == "critical"
    (problem,) = schema.details["problems"]
    assert "amount" in problem and f"day2.{suffix}" in problem and f"day1.{suffix}" not in problem
    assert one(res, "total").value == pytest.approx(1.5 + 2.5 + 3.5)


def test_ndjson_renamed_column_between_days(h):
    day1, day2 = _renamed_rows()
    write_ndjson_rows(h.root / "logs" / "day1.ndjson", day1)
    write_ndjson_rows(h.root / "logs" / "day2.ndjson", day2)
    res = h.run({"sources": {"s": src("logs/*.ndjson")}, "checks": _renamed_checks()})
    _assert_renamed(res, "ndjson")


def test_csv_renamed_column_between_days(h):
    day1, day2 = _renamed_rows()
    for name, rows in (("day1", day1), ("day2", day2)):
        cols = list(rows[0])
        lines = [",".join(cols)] + [
            ",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows
        ]
        path = h.root / "logs" / f"{name}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    res = h.run({"sources": {"s": src("logs/*.csv")}, "checks": _renamed_checks()})
    _assert_renamed(res, "csv")


def test_parquet_renamed_column_between_days(h):
    day1, day2 = _renamed_rows()
    for name, rows in (("day1", day1), ("day2", day2)):
        df = pl.DataFrame(rows).with_columns(
            pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us")
        )
        write_frame(h.root / "logs" / f"{name}.parquet", df.cast({pl.Float64: pl.Float64}))
    res = h.run({"sources": {"s": src("logs/*.parquet")}, "checks": _renamed_checks()})
    _assert_renamed(res, "parquet")


def test_csv_columns_in_different_order_and_new_column(h):
    (h.root / "logs").mkdir()
    (h.root / "logs" / "a.csv").write_text("ts,x,y\n2026-11-27T14:10:00Z,1,a\n")
    (h.root / "logs" / "b.csv").write_text("y,ts,x,z\nb,2026-11-27T14:20:00Z,2,9\n")
    res = h.run(
        {
            "sources": {"s": src("logs/*.csv")},
            "checks": [
                rc(),
                {
                    "name": "sx",
                    "source": "s",
                    "type": "custom",
                    "expr": "sum(x)",
                    "critical": {"above": 100},
                },
                null_rate("nz", "z"),
                {
                    "name": "yv",
                    "source": "s",
                    "type": "allowed_values",
                    "column": "y",
                    "values": ["a", "b"],
                    "critical": {"above": 0},
                },
            ],
        }
    )
    assert one(res, "rc").value == 2.0
    assert one(res, "sx").value == 3
    assert one(res, "nz").value == pytest.approx(0.5)
    assert one(res, "yv").value == 0.0


def test_csv_separator(h):
    (h.root / "d.csv").write_text("ts;x\n2026-11-27T14:10:00Z;1,5\n2026-11-27T14:20:00Z;\n")
    res = h.run(
        {
            "sources": {"s": src("d.csv", separator=";")},
            "checks": [rc(), null_rate("nr", "x")],
        }
    )
    assert one(res, "rc").value == 2.0
    assert one(res, "nr").value == pytest.approx(0.5)


def test_jsonl_extension_is_ndjson(h):
    write_ndjson_rows(
        h.root / "d.jsonl",
        [{"ts": "2026-11-27T14:10:00Z", "x": 1}, {"ts": "2026-11-27T14:20:00Z", "x": None}],
    )
    res = h.run({"sources": {"s": src("d.jsonl")}, "checks": [rc(), null_rate("nr", "x")]})
    assert one(res, "rc").value == 2.0
    assert one(res, "nr").value == pytest.approx(0.5)


# ------------------------------------------------------------------ hive partitions


def _hive(h, days: dict[str, list], extra: dict[str, dict] | None = None):
    for day, ts in days.items():
        df = pl.DataFrame({"ts": ts, "x": [float(i) for i in range(len(ts))]})
        for col, values in (extra or {}).get(day, {}).items():
            df = df.with_columns(pl.Series(col, values))
        write_frame(h.root / "logs" / f"dt={day}" / "part-0.parquet", df)


def test_hive_partition_column_in_segment_by(h):
    days = {
        "2026-11-25": [AT - timedelta(days=2, hours=1)],
        "2026-11-26": [AT - timedelta(hours=20), AT - timedelta(hours=18)],
        "2026-11-27": [minutes_ago(30), minutes_ago(20), minutes_ago(10)],
    }
    _hive(h, days)
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet")},
            "checks": [
                rc(window="1d", segment_by=["dt"]),
                rc("rc-hour", segment_by=["dt"]),
                {
                    "name": "mean-by-dt",
                    "source": "s",
                    "type": "custom",
                    "expr": "avg(x)",
                    "window": "3d",
                    "segment_by": ["dt"],
                    "critical": {"above": 100},
                },
            ],
        }
    )
    assert get(res, "rc").value == 5
    day = {r.segment["dt"]: r.value for r in res if r.monitor == "rc" and r.segment}
    keys = {str(k) for k in day}
    assert keys == {"2026-11-26", "2026-11-27"}
    assert {str(k): v for k, v in day.items()} == {"2026-11-26": 2, "2026-11-27": 3}
    hour = [r for r in res if r.monitor == "rc-hour" and r.segment]
    assert [(str(r.segment["dt"]), r.value) for r in hour] == [("2026-11-27", 3)]
    means = {str(r.segment["dt"]): r.value for r in res if r.monitor == "mean-by-dt" and r.segment}
    assert means == {"2026-11-25": 0.0, "2026-11-26": 0.5, "2026-11-27": 1.0}


def test_hive_partition_value_is_a_date_or_string_segment(h):
    _hive(h, {"2026-11-27": [minutes_ago(5)]})
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet")},
            "checks": [rc(segment_by=["dt"])],
        }
    )
    (seg,) = [r.segment["dt"] for r in res if r.segment]
    assert seg in (date(2026, 11, 27), "2026-11-27")


def test_hive_partitions_whose_files_differ(h):
    days = {
        "2026-11-26": [AT - timedelta(hours=20)],
        "2026-11-27": [minutes_ago(30), minutes_ago(20)],
    }
    _hive(h, days, extra={"2026-11-27": {"latency": [5.0, 7.0]}})
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet")},
            "checks": [
                rc(window="1d", segment_by=["dt"]),
                null_rate("nr-latency", "latency", window="1d"),
                {
                    "name": "schema",
                    "source": "s",
                    "type": "schema",
                    "strict": True,
                    "window": "1d",
                    "expected_columns": {
                        "ts": "datetime",
                        "x": "float",
                        "latency": "float",
                        "dt": "any",
                    },
                },
            ],
        }
    )
    assert {str(r.segment["dt"]): r.value for r in res if r.monitor == "rc" and r.segment} == {
        "2026-11-26": 1,
        "2026-11-27": 2,
    }
    assert one(res, "nr-latency").value == pytest.approx(1 / 3)
    schema = one(res, "schema")
    (problem,) = schema.details["problems"]
    assert "latency" in problem and "2026-11-26" in problem


def test_hive_partitioning_off_for_parquet(h):
    _hive(h, {"2026-11-27": [minutes_ago(5)]})
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet", hive_partitioning=False)},
            "checks": [rc(segment_by=["dt"]), rc("plain")],
        }
    )
    assert one(res, "rc").status == "error"
    assert one(res, "plain").value == 1.0


# ------------------------------------------------------------------ static sources


def test_static_source_is_read_whole(h):
    h.frame("ref.parquet", pl.DataFrame({"x": [1.0, None, 3.0, 4.0]}))
    res = h.run(
        {
            "sources": {"ref": src("ref.parquet", timestamp=None)},
            "checks": [rc(source="ref"), null_rate("nr", "x", source="ref")],
        }
    )
    r = one(res, "rc")
    assert r.value == 4.0
    assert (r.window_start, r.window_end) == (None, None)
    assert one(res, "nr").value == pytest.approx(1 / 4)


def test_files_are_not_modified(h):
    write_frame(h.root / "logs" / "a.parquet", pl.DataFrame({"ts": stamps(2)}))
    before = {p: os.stat(p).st_mtime_ns for p in (h.root / "logs").iterdir()}
    h.run({"sources": {"s": src("logs/*.parquet")}, "checks": [rc()]})
    after = {p: os.stat(p).st_mtime_ns for p in (h.root / "logs").iterdir()}
    assert before == after


@pytest.mark.parametrize("partition_date", [None, "dt"])
def test_hive_window_across_midnight_with_and_without_partition_date(h, partition_date):
    at = AT.replace(day=28, hour=0, minute=30)
    rows = {
        "2026-11-27": [at - timedelta(hours=2, minutes=30), at - timedelta(hours=1, minutes=30)],
        "2026-11-28": [at - timedelta(minutes=20), at + timedelta(minutes=10)],
    }
    _hive(h, rows)
    extra = {"partition_date": partition_date} if partition_date else {}
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet", **extra)},
            "checks": [rc(window="2h", segment_by=["dt"])],
        },
        at=at,
    )
    # (27th 22:00, 28th 00:30]: 27th 23:00 and 28th 00:10
    assert get(res, "rc").value == 2
    assert {str(r.segment["dt"]): r.value for r in res if r.segment} == {
        "2026-11-27": 1,
        "2026-11-28": 1,
    }
