"""The ``schema`` check on logs in hive folders (``dt=YYYY-MM-DD/``): a partition
column is neither required nor unexpected unless ``expected_columns`` names it;
when named, it is checked like any column, with the dtype the scan gives it."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from conftest import AT, one, src, write_frame

DAYS = 8


@pytest.fixture(autouse=True)
def _in_root(h, monkeypatch):
    monkeypatch.chdir(h.root)  # file names in problems are shown relative to here


def _daily(h, fmt: str = "parquet", extra: dict[int, dict] | None = None) -> None:
    """One file per day for the 8 days before AT, in ``logs/dt=YYYY-MM-DD/``."""
    for i in range(DAYS):
        ts = AT - timedelta(days=i, hours=1)
        df = pl.DataFrame({"ts": [ts, ts - timedelta(minutes=5)], "score": [0.1 * i, 0.5]})
        for col, values in (extra or {}).get(i, {}).items():
            df = df.with_columns(pl.Series(col, values))
        write_frame(h.root / "logs" / f"dt={ts.date().isoformat()}" / f"part-0.{fmt}", df)


def _schema(expected: dict[str, str], **kw) -> dict:
    return {
        "name": "schema",
        "source": "s",
        "type": "schema",
        "strict": True,
        "window": f"{DAYS}d",
        "expected_columns": expected,
        **kw,
    }


def _run(h, expected: dict[str, str], path: str = "logs/**/*.parquet", **source):
    res = h.run({"sources": {"s": src(path, **source)}, "checks": [_schema(expected)]})
    return one(res, "schema")


def test_strict_schema_passes_on_daily_hive_folders(h):
    _daily(h)
    r = _run(h, {"ts": "datetime", "score": "float"}, partition_date="dt")
    assert r.details == {"problems": [], "files": DAYS}
    assert (r.value, r.status) == (0.0, "ok")


def test_a_real_extra_column_is_still_unexpected_and_the_partition_is_not(h):
    _daily(h, extra={3: {"debug": ["x", "y"]}})
    r = _run(h, {"ts": "datetime", "score": "float"})
    day = (AT - timedelta(days=3, hours=1)).date().isoformat()
    assert r.details["problems"] == [
        f"unexpected column 'debug' in 1 of {DAYS} file(s): logs/dt={day}/part-0.parquet"
    ]
    assert (r.value, r.status) == (1.0, "critical")


def test_a_named_partition_column_is_checked_with_the_dtype_the_scan_gives_it(h):
    _daily(h)
    assert _run(h, {"ts": "datetime", "score": "float", "dt": "date"}).value == 0.0
    wrong = _run(h, {"ts": "datetime", "score": "float", "dt": "string"})
    (problem,) = wrong.details["problems"]
    assert problem.startswith(f"column 'dt' is Date, expected string in {DAYS} of {DAYS} file(s)")


def test_a_named_partition_column_is_missing_when_folders_are_not_parsed(h):
    _daily(h)
    r = _run(h, {"ts": "datetime", "score": "float", "dt": "any"}, hive_partitioning=False)
    (problem,) = r.details["problems"]
    assert problem.startswith(f"missing column 'dt' in {DAYS} of {DAYS} file(s)")


def test_a_column_the_file_stores_itself_is_not_a_partition_column(h):
    # a file that also writes 'dt' as a column: that column is the file's own
    _daily(h, extra={0: {"dt": ["2026-11-27", "2026-11-27"]}})
    r = _run(h, {"ts": "datetime", "score": "float"})
    day = (AT - timedelta(hours=1)).date().isoformat()
    assert r.details["problems"] == [
        f"unexpected column 'dt' in 1 of {DAYS} file(s): logs/dt={day}/part-0.parquet"
    ]


def test_csv_folders_are_never_parsed_so_dt_is_no_column(h):
    _daily(h, fmt="csv")
    ok = _run(h, {"ts": "string", "score": "float"}, path="logs/**/*.csv")
    assert (ok.value, ok.details["files"]) == (0.0, DAYS)
    named = _run(h, {"ts": "string", "score": "float", "dt": "any"}, path="logs/**/*.csv")
    (problem,) = named.details["problems"]
    assert problem.startswith(f"missing column 'dt' in {DAYS} of {DAYS} file(s)")
