"""Bad log data: symlink loops, duplicate files, ragged CSV, truncated or corrupt
parquet, dtypes that change between files, and Polars panics.

Each case runs the real engine (``rulesengine.engine.evaluate`` on a loaded spec, or the
``rulesengine run`` command in a subprocess) over files written into ``tmp_path``.
Expected counts come from the rows the test wrote; expected line numbers from
where the test put the bad row, cross-checked with Python's ``csv`` module.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import AT, one, src, stamps, write_frame

from rulesengine.engine.csvrows import ragged_row
from rulesengine.engine.execute import execute
from rulesengine.engine.plan import Query
from rulesengine.monitors import kpis
from rulesengine.monitors.base import FrameKey

AT_TEXT = "2026-11-27T15:00:00Z"


def rc(name: str = "rc", source: str = "s", **kw) -> dict:
    return {"name": name, "source": source, "type": "row_count", "critical": {"below": 1}, **kw}


def kpi(name: str, expr: str, source: str = "s", **kw) -> dict:
    return {"name": name, "source": source, "expr": expr, "critical": {"above": 1e12}, **kw}


def run_json(cli, folder: Path, spec_name: str = "model.yaml"):
    """``rulesengine run`` in ``folder``: (exit code, results by monitor, stderr)."""
    out = cli("run", spec_name, "--at", AT_TEXT, "--format", "json", cwd=folder, timeout=90)
    doc = json.loads(out.stdout)
    (model,) = doc["models"]
    return out.returncode, {r["monitor"]: r for r in model["results"]}, out.stderr


def five_hundred(path: Path) -> pl.DataFrame:
    df = pl.DataFrame({"ts": stamps(500), "x": [float(i) for i in range(500)]})
    write_frame(path, df)
    return df


# ------------------------------------------------------------------ symlinks


def test_symlink_loop_through_double_star_reads_the_file_once(h):
    five_hundred(h.root / "logs" / "sub" / "a.parquet")
    os.symlink("..", h.root / "logs" / "sub" / "back")  # logs/sub/back/sub/back/…
    # the loop is real: Python's own recursive glob finds the file many times
    found = glob.glob(str(h.root / "logs" / "**" / "*.parquet"), recursive=True)
    assert len(found) > 10
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet")},
            "checks": [rc()],
            "kpis": [kpi("sum", "sum(x)")],
        }
    )
    assert one(res, "rc").value == 500
    assert one(res, "sum").value == sum(range(500))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_symlinked_duplicate_file_and_folder_are_read_once(h, fmt):
    logs = h.root / "logs"
    five_hundred(logs / "dt=2026-11-27" / f"a.{fmt}")
    extra = pl.DataFrame({"ts": stamps(7), "x": [1000.0] * 7})
    write_frame(h.root / "elsewhere" / f"b.{fmt}", extra)
    os.symlink(f"a.{fmt}", logs / "dt=2026-11-27" / f"copy.{fmt}")  # same file twice
    os.symlink("dt=2026-11-27", logs / "latest")  # same folder twice
    os.symlink(h.root / "elsewhere" / f"b.{fmt}", logs / f"b.{fmt}")  # a file outside: followed
    res = h.run(
        {
            "sources": {"s": src(f"logs/**/*.{fmt}")},
            "checks": [rc()],
            "kpis": [kpi("sum", "sum(x)")],
        }
    )
    assert one(res, "rc").value == 507
    assert one(res, "sum").value == sum(range(500)) + 7000


def test_hive_partitions_still_parse_through_our_file_list(h):
    for day, n in (("2026-11-26", 3), ("2026-11-27", 4)):
        ts = [
            AT - timedelta(hours=20 if day.endswith("26") else 0, minutes=5 + i) for i in range(n)
        ]
        write_frame(h.root / "logs" / f"dt={day}" / "p.parquet", pl.DataFrame({"ts": ts}))
    os.symlink(h.root / "logs", h.root / "logs" / "dt=2026-11-27" / "loop")
    # a link that sorts before the real folder: the file keeps its dt= path
    os.symlink("dt=2026-11-27", h.root / "logs" / "current")
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet", partition_date="dt")},
            "checks": [rc(window="1d", segment_by=["dt"])],
        }
    )
    by_day = {str(r.segment["dt"]): r.value for r in res if r.segment}
    assert by_day == {"2026-11-26": 3, "2026-11-27": 4}


# ------------------------------------------------------------------ ragged CSV


def _csv(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _good_rows(n: int) -> list[str]:
    return [f"{t.isoformat()},{i},a,{i * 2}" for i, t in enumerate(stamps(n))]


def _csv_oracle(path: Path) -> tuple[int, int] | None:
    """(line, fields) of the first row whose field count differs from the header's,
    by Python's csv module."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = len(next(reader))
        start = 2
        for row in reader:
            if len(row) != header:
                return start, len(row)
            start = reader.line_num + 1
    return None


@pytest.mark.parametrize(
    ("bad", "fields"),
    [("2026-11-27T14:40:00+00:00,1,a,2,EXTRA", 5), ("2026-11-27T14:40:00+00:00,1,a", 3)],
    ids=["too-many", "too-few"],
)
def test_ragged_csv_row_is_an_error_naming_file_and_line(cli, tmp_path, bad, fields):
    rows = ["ts,x,c,y", *_good_rows(15)]
    rows.insert(16, bad)  # line 17 of the file: header + 15 rows before it
    _csv(tmp_path / "logs" / "a.csv", ["ts,x,c,y", *_good_rows(3)])
    bad_file = _csv(tmp_path / "logs" / "x.csv", [*rows, *_good_rows(2)])
    assert _csv_oracle(bad_file) == (17, fields)
    write_frame(tmp_path / "ok.parquet", pl.DataFrame({"ts": stamps(3)}))
    (tmp_path / "model.yaml").write_text(
        json.dumps(
            {
                "version": 1,
                "model": "m",
                "sources": {"s": src("logs/*.csv"), "t": src("ok.parquet")},
                "checks": [rc(), rc("rc-t", source="t")],
                "kpis": [kpi("sum", "sum(y)")],
            }
        )
    )
    code, results, stderr = run_json(cli, tmp_path)
    assert code == 4, stderr
    want = f"source 's': logs/x.csv:17: row has {fields} fields, the header has 4"
    for name in ("rc", "sum"):
        assert results[name]["status"] == "error"
        assert results[name]["details"] == {"error": want}
    assert results["rc-t"]["value"] == 3  # other sources are still evaluated
    assert "Traceback" not in stderr


def test_blank_line_in_csv_is_an_error(h):
    # Polars would read a blank line as a row of nulls: one row too many
    path = _csv(h.root / "c.csv", ["ts,x,c,y", *_good_rows(3), "", *_good_rows(2)])
    res = h.run({"sources": {"s": src("c.csv")}, "checks": [rc()]})
    r = one(res, "rc")
    assert r.status == "error"
    assert r.details["error"] == f"source 's': {path}:5: empty line, the header has 4"


def test_quoted_separators_and_newlines_are_not_ragged(h):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["ts", "note", "x"])
    notes = ["a, b", "two\nlines, here", 'quote "inside", ok', "plain"]
    for i, t in enumerate(stamps(400)):
        writer.writerow([t.isoformat(), notes[i % 4], i])
    path = h.root / "q.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    assert _csv_oracle(path) is None
    assert ragged_row(str(path)) is None
    res = h.run({"sources": {"s": src("q.csv")}, "checks": [rc()], "kpis": [kpi("sx", "sum(x)")]})
    assert one(res, "rc").value == 400
    assert one(res, "sx").value == sum(range(400))


def test_ragged_row_finder_agrees_with_python_csv_across_block_edges(tmp_path, monkeypatch):
    import random

    from rulesengine.engine import csvrows

    rng = random.Random(7)
    cells = ["1", "ab", '"x,y"', '"multi\nline"', '"q""q"', ""]
    for block in (1, 3, 64):
        monkeypatch.setattr(csvrows, "CSV_CHUNK", block)
        for _ in range(150):
            width = rng.randint(2, 4)
            lines = [",".join(f"h{i}" for i in range(width))]
            for _ in range(rng.randint(0, 6)):
                k = width if rng.random() < 0.8 else rng.randint(1, 6)
                lines.append(",".join(rng.choice(cells) for _ in range(k)))
            path = tmp_path / "r.csv"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
            want = _csv_oracle(path)
            got = ragged_row(str(path))
            assert (got[:2] if got else None) == want, (lines, block)


# ------------------------------------------------------------------ broken parquet


def _window_parquet(path: Path, n: int = 4) -> pl.DataFrame:
    df = pl.DataFrame({"ts": stamps(n), "x": [float(i) for i in range(n)]})
    write_frame(path, df)
    return df


@pytest.mark.parametrize("which", ["a", "m", "z"])  # first, middle, last in sorted order
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_broken_parquet_error_names_that_file(cli, tmp_path, which, damage):
    logs = tmp_path / "logs" / "deep"
    for name in "amz":
        _window_parquet(logs / f"{name}.parquet")
    target = logs / f"{which}.parquet"
    data = target.read_bytes()
    if damage == "truncated":
        target.write_bytes(data[: len(data) // 2])  # an interrupted copy
    else:
        target.write_bytes(b"PAR1" + bytes(range(256)) * 3 + b"PAR1")
    write_frame(tmp_path / "ok.parquet", pl.DataFrame({"ts": stamps(3)}))
    (tmp_path / "model.yaml").write_text(
        json.dumps(
            {
                "version": 1,
                "model": "m",
                "sources": {"s": src("logs/**/*.parquet"), "t": src("ok.parquet")},
                "checks": [rc(), rc("rc-t", source="t")],
                "kpis": [kpi("sum", "sum(x)")],
            }
        )
    )
    code, results, stderr = run_json(cli, tmp_path)
    assert code == 4, stderr
    for name in ("rc", "sum"):
        error = results[name]["details"]["error"]
        assert results[name]["status"] == "error"
        assert error.startswith(f"source 's': cannot read logs/deep/{which}.parquet: "), error
        assert "**" not in error
    assert results["rc-t"]["value"] == 3
    assert "Traceback" not in stderr


def _two_row_groups(path: Path) -> pl.DataFrame:
    """1000 rows two days old, then 1000 rows in the window, one row group each,
    uncompressed so that the dictionary entries can be found in the bytes."""
    n = 1000
    old = [AT - timedelta(days=2) + timedelta(seconds=i) for i in range(n)]
    new = [AT - timedelta(minutes=50) + timedelta(seconds=i) for i in range(n)]
    words = ["alpha", "bravo", "charlie"]
    df = pl.DataFrame(
        {
            "ts": old + new,
            "c": [words[i % 3] + ("old" if i < n else "new") for i in range(2 * n)],
            "x": [float(i) for i in range(2 * n)],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path, compression="uncompressed", row_group_size=n)
    return df


def _corrupt_dictionary(path: Path, word: bytes) -> None:
    """Give one PLAIN dictionary entry (4-byte length, then the bytes) an impossible
    length: a page that cannot be decoded."""
    data = bytearray(path.read_bytes())
    entry = len(word).to_bytes(4, "little") + word
    (at,) = [m.start() for m in re.finditer(re.escape(bytes(entry)), bytes(data))]
    data[at : at + 4] = (0x7FFFFF00).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _dictionary_spec() -> dict:
    return {
        "sources": {"s": src("logs/*.parquet")},
        "checks": [
            rc(),
            {
                "name": "words",
                "source": "s",
                "type": "allowed_values",
                "column": "c",
                "values": ["alphanew", "bravonew", "charlienew"],
                "critical": {"above": 0},
            },
        ],
        "kpis": [
            kpi("sx", "sum(x)"),
            kpi("distinct-3d", "count(DISTINCT c)", window="3d"),
        ],
    }


def test_corrupt_page_in_a_column_that_is_read_is_an_error(h):
    path = h.root / "logs" / "p.parquet"
    df = _two_row_groups(path)
    _window_parquet(h.root / "logs" / "o.parquet")  # a good file beside it
    _corrupt_dictionary(path, b"alphanew")  # in the window's row group
    res = h.run(_dictionary_spec())
    for name in ("words", "distinct-3d"):
        r = one(res, name)
        assert r.status == "error", r
        assert r.details["error"].startswith(f"source 's': cannot read {path}: "), r
    # column x and the row count do not read the broken page: right and ok
    window = df.filter(pl.col("ts") > AT - timedelta(hours=1))
    assert one(res, "rc").value == window.height + 4
    assert one(res, "sx").value == window["x"].sum() + sum(range(4))


def test_corrupt_page_in_a_row_group_outside_the_window(h):
    # the window's filter skips that row group by its statistics, so the window's
    # results are right; a window that reaches it gets an error
    path = h.root / "logs" / "p.parquet"
    df = _two_row_groups(path)
    _corrupt_dictionary(path, b"alphaold")
    res = h.run(_dictionary_spec())
    assert one(res, "words").status == "ok"
    assert one(res, "words").value == 0.0
    assert one(res, "rc").value == df.filter(pl.col("ts") > AT - timedelta(hours=1)).height
    r = one(res, "distinct-3d")
    assert r.status == "error"
    assert str(path) in r.details["error"]


def test_corrupt_ndjson_line_names_the_file(h):
    (h.root / "j").mkdir()
    (h.root / "j" / "a.ndjson").write_text('{"ts": "2026-11-27T14:30:00Z", "x": 1}\n')
    bad = h.root / "j" / "b.ndjson"
    bad.write_text('{"ts": "2026-11-27T14:40:00Z", "x": 2}\n{"ts": \n')
    res = h.run({"sources": {"s": src("j/*.ndjson")}, "checks": [rc()]})
    r = one(res, "rc")
    assert r.status == "error"
    assert str(bad) in r.details["error"]


# ------------------------------------------------------------------ dtype changes


def test_parquet_column_int_in_one_file_string_in_another(h):
    write_frame(h.root / "p" / "a.parquet", pl.DataFrame({"ts": stamps(3), "x": [1, 2, 3]}))
    write_frame(h.root / "p" / "b.parquet", pl.DataFrame({"ts": stamps(2), "x": ["u", "v"]}))
    res = h.run(
        {
            "sources": {"s": src("p/*.parquet")},
            "checks": [
                rc(),
                {
                    "name": "nr",
                    "source": "s",
                    "type": "null_rate",
                    "column": "x",
                    "critical": {"above": 0.5},
                },
            ],
            "kpis": [kpi("distinct", "count(DISTINCT x)")],
        }
    )
    assert one(res, "rc").value == 5  # x is not read
    for name in ("nr", "distinct"):
        r = one(res, name)
        assert r.status == "error"
        error = r.details["error"]
        assert str(h.root / "p" / "a.parquet") in error
        assert "Int64" in error and "String" in error


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_text_column_number_in_one_file_text_in_another(h, fmt):
    write_frame(h.root / "t" / f"a.{fmt}", pl.DataFrame({"ts": stamps(3), "x": [1, 2, 3]}))
    write_frame(h.root / "t" / f"b.{fmt}", pl.DataFrame({"ts": stamps(2), "x": ["u", "v"]}))
    res = h.run({"sources": {"s": src(f"t/*.{fmt}")}, "kpis": [kpi("mean", "avg(x)")]})
    r = one(res, "mean")
    assert r.status == "error"
    error = r.details["error"]
    assert f"column 'x' is Int64 in {h.root / 't' / f'a.{fmt}'}" in error
    assert f"String in {h.root / 't' / f'b.{fmt}'}" in error


# ------------------------------------------------------------------ Polars panics


def _panicking() -> pl.Expr:
    # valid to plan, panics while it runs: the largest i64 is no datetime to print
    big = (pl.col("x").cast(pl.Int64) * 0 + 9223372036854775807).cast(pl.Datetime("us"))
    return big.cast(pl.String).n_unique()


def test_a_panic_while_collecting_is_caught(tmp_path):
    frame = pl.LazyFrame({"x": [1, 2, 3]})
    with pytest.raises(pl.exceptions.PanicException):  # the real thing, uncaught
        frame.select(_panicking()).collect()
    key = FrameKey("s", None, None)
    good = Query(key, ())
    good.lazy = good.base = frame
    good.aggs = {"a0": pl.col("x").sum()}
    good.group_keys = [pl.lit(1).alias("__all")]
    good.lazy = frame.group_by(good.group_keys).agg(pl.len().alias("__rows"), pl.col("x").sum())
    bad = Query(key, ())
    bad.base, bad.group_keys = frame, [pl.lit(1).alias("__all")]
    bad.aggs = {"a0": _panicking()}
    bad.lazy = frame.group_by(bad.group_keys).agg(_panicking().alias("a0"))
    out = execute([good, bad])
    assert isinstance(out[0], pl.DataFrame)
    assert out[0]["x"].to_list() == [6]
    assert out.lost == {1: {"a0": "Polars panicked: invalid or out-of-range datetime"}}


def test_a_panic_is_an_error_of_that_monitor_only(cli, h, monkeypatch):
    # the SQL allowlist refuses every known panicking SQL construct, so the panic
    # comes from a KPI whose compiled expression is replaced by a Polars call that
    # really panics at run time
    real = kpis.sql_aggregate
    monkeypatch.setattr(
        kpis,
        "sql_aggregate",
        lambda text, schema=None: _panicking() if text == "max(x) + 0" else real(text, schema),
    )
    _window_parquet(h.root / "a.parquet")
    res = h.run(
        {
            "sources": {"s": src("a.parquet")},
            "checks": [rc()],
            "kpis": [kpi("panics", "max(x) + 0"), kpi("sx", "sum(x)")],
        }
    )
    r = one(res, "panics")
    assert r.status == "error"
    assert r.details == {"error": "Polars panicked: invalid or out-of-range datetime"}
    assert one(res, "sx").value == 6.0
    assert one(res, "rc").value == 4


def test_garbage_file_in_a_pruned_hive_partition(h):
    # partition_date prunes the old folder, whose broken file is then never opened;
    # a window that reaches it is an error naming it
    logs = h.root / "logs"
    write_frame(logs / "dt=2026-11-27" / "p.parquet", pl.DataFrame({"ts": stamps(5)}))
    old = [AT - timedelta(days=2, minutes=i) for i in range(3)]
    write_frame(logs / "dt=2026-11-25" / "p.parquet", pl.DataFrame({"ts": old}))
    broken = logs / "dt=2026-11-25" / "q.parquet"
    broken.write_bytes(b"PAR1" + bytes(500) + b"PAR1")
    res = h.run(
        {
            "sources": {"s": src("logs/**/*.parquet", partition_date="dt")},
            "checks": [rc(), rc("rc-3d", window="3d")],
        }
    )
    assert one(res, "rc").value == 5
    r = one(res, "rc-3d")
    assert r.status == "error"
    assert r.details["error"].startswith(f"source 's': cannot read {broken}: ")


@pytest.mark.parametrize("step", ["prepared", "score_all"])  # reference profile, scoring
def test_a_panic_in_drift_is_an_error_of_that_monitor_only(h, monkeypatch, step):
    from rulesengine.monitors.base import builtin_types

    drift_type = type(builtin_types()[("drift", "drift")])

    def panics(*args, **kwargs):  # a real Polars call that panics inside the step
        return pl.LazyFrame({"x": [1]}).select(_panicking()).collect()

    monkeypatch.setattr(drift_type, step, panics)
    _window_parquet(h.root / "cur.parquet")
    h.frame("ref.parquet", pl.DataFrame({"x": [0.5, 1.5, 2.5, 3.5]}))
    res = h.run(
        {
            "sources": {"s": src("cur.parquet"), "ref": src("ref.parquet", timestamp=None)},
            "checks": [rc()],
            "drift": [{"name": "d", "source": "s", "reference": "ref", "columns": ["x"]}],
        }
    )
    (r,) = [r for r in res if r.monitor == "d"]
    assert r.status == "error"
    assert r.details["error"].endswith("Polars panicked: invalid or out-of-range datetime")
    assert one(res, "rc").value == 4
