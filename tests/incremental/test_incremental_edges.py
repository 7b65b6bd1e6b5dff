"""Windows off the bucket grid (``rulesengine run`` at the current time): the
buckets inside the window come from the cache, the two edge buckets are read
fresh, and the results equal a single pass."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulesengine.engine.evaluate import plan_model
from rulesengine.engine.incremental import Report, spans
from rulesengine.engine.partial_scan import bucket_width
from tests.incremental.helpers import (
    AT,
    assert_same,
    both,
    load_model,
    model_spec,
    write_hour,
    write_reference,
)

ROWS = 200


def _setup(root: Path, fmt: str = "parquet", hours: int = 5) -> list[Path]:
    files = [
        write_hour(root / "logs", AT - timedelta(hours=hours - h), ROWS, h, fmt)
        for h in range(hours)
    ]
    write_reference(root / "ref.parquet")
    return files


def test_spans_split_a_window_into_cached_buckets_and_two_edges() -> None:
    from rulesengine.engine.partial_scan import micros
    from rulesengine.monitors.base import FrameKey

    width = timedelta(minutes=15)
    step = width // timedelta(microseconds=1)
    on = FrameKey("s", AT - timedelta(hours=1), AT)
    cover_lo, inner_lo, inner_hi, cover_hi = spans(on, width)
    assert (
        (cover_lo, cover_hi)
        == (inner_lo, inner_hi)
        == (micros(on.start) // step, micros(AT) // step)
    )
    off = FrameKey("s", AT - timedelta(hours=1, minutes=7), AT - timedelta(minutes=7))
    cover_lo, inner_lo, inner_hi, cover_hi = spans(off, width)
    assert (inner_lo - cover_lo, cover_hi - inner_hi, inner_hi - inner_lo) == (1, 1, 3)
    # bucket b holds (b·width, (b + 1)·width]: the edge buckets hold start and end
    assert cover_lo * step < micros(off.start) < inner_lo * step
    assert inner_hi * step < micros(off.end) < cover_hi * step


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(1, 15 * 60 * 10**6 - 1), min_size=2, max_size=3),
    fmt=st.sampled_from(["parquet", "csv"]),
)
def test_off_grid_ticks_equal_a_single_pass(offsets: list[int], fmt: str) -> None:
    """At random off-grid times (to the microsecond), after a new file, the
    results equal a full rescan; only the new file's partials are computed and
    every query is answered from partials plus edges."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _setup(root, fmt, hours=4)
        model = load_model(root, model_spec(root, fmt, window="2h"))
        both(model, root / "cache")  # on the grid: fill the cache
        at = AT
        for k, offset in enumerate(offsets):
            new = write_hour(root / "logs", at, 60 + 10 * k, 50 + k, fmt)
            at = at + timedelta(minutes=15 * k, microseconds=offset)
            report = Report()
            full, inc = both(model, root / "cache", at, report)
            assert_same(full, inc)
            assert set(report.queries.values()) == {"partials"}
            assert report.scanned == {"req": [str(new)]}
            assert report.edges > 0


def test_an_edge_reads_only_the_files_with_rows_in_its_bucket(tmp_path: Path) -> None:
    """The edges are read from the files whose entries hold rows in the edge
    buckets: for the window, the head's hour (no file has rows in its tail's
    bucket yet); for the compare's window an hour earlier, both edges' hours."""
    files = _setup(tmp_path, hours=4)
    model = load_model(tmp_path, model_spec(tmp_path, window="2h"))
    both(model, tmp_path / "cache", AT)
    at = AT + timedelta(minutes=7, seconds=3)
    plan = plan_model(model, at)
    read: list[list[str]] = []
    import rulesengine.engine.partial_run as inc

    original = inc.subset_scan

    def spy(source, paths, shape=None):  # type: ignore[no-untyped-def]
        read.append(sorted(paths))
        return original(source, paths, shape)

    inc.subset_scan = spy  # type: ignore[assignment]
    try:
        report = Report()
        full, got = both(model, tmp_path / "cache", at, report)
    finally:
        inc.subset_scan = original  # type: ignore[assignment]
    assert_same(full, got)
    assert report.scanned == {}
    # window (10:07:03, 12:07:03]: its head lies in the hour of files[2]; the
    # earlier window (9:07:03, 11:07:03] has its head in files[1], its tail in files[3]
    assert {tuple(r) for r in read} == {(str(files[2]),), (str(files[1]),), (str(files[3]),)}
    assert report.edges == len(read)  # one fresh scan per edge of each cached unit
    assert len(plan.queries) == len(report.queries)


def test_a_window_inside_one_bucket_runs_in_a_single_pass(tmp_path: Path) -> None:
    _setup(tmp_path, hours=2)
    spec = model_spec(tmp_path, window="30s")
    spec["evaluation"]["every"] = "1m"
    model = load_model(tmp_path, spec)
    assert bucket_width(model) == timedelta(minutes=1)
    report = Report()
    at = AT - timedelta(minutes=3, seconds=10)  # (11:56:20, 11:56:50]: inside one minute
    full, inc = both(model, tmp_path / "cache", at, report)
    assert_same(full, inc)
    assert set(report.queries.values()) == {"window inside one 0:01:00 bucket"}
    # on a minute with 30 s windows: half a bucket on each side of a grid point
    report = Report()
    full, inc = both(model, tmp_path / "cache", AT + timedelta(seconds=15), report)
    assert_same(full, inc)
    assert set(report.queries.values()) == {"partials"}


def test_partition_dates_at_the_edges_count_as_in_a_single_pass(tmp_path: Path) -> None:
    """With ``partition_date``, a row filed under another day is kept or dropped at
    an edge exactly as the single pass keeps it (the window's dates, not the
    edge's)."""
    logs = tmp_path / "logs"
    midnight = AT.replace(hour=0)
    for h, (start, day) in enumerate(
        [
            (midnight - timedelta(hours=1), "2026-11-26"),
            (midnight, "2026-11-27"),  # (00:00, 01:00] filed under the 27th
            (midnight - timedelta(minutes=30), "2026-11-27"),  # rows of the 26th filed on the 27th
            (midnight + timedelta(hours=1), "2026-11-28"),  # misfiled a day late
        ]
    ):
        folder = logs / f"dt={day}"
        write_hour(folder, start, ROWS, h)
    write_reference(tmp_path / "ref.parquet")
    spec = model_spec(tmp_path, window="2h")
    spec["sources"]["req"] = {
        "path": str(logs / "**" / "*.parquet"),
        "timestamp": "ts",
        "partition_date": "dt",
    }
    model = load_model(tmp_path, spec)
    both(model, tmp_path / "cache", midnight + timedelta(hours=2))
    for at in (midnight + timedelta(minutes=67, seconds=1), midnight + timedelta(minutes=31)):
        report = Report()
        full, inc = both(model, tmp_path / "cache", at, report)
        assert_same(full, inc)
        assert "partials" in report.queries.values() and report.edges > 0
        assert next(r.rows for r in full.results if r.monitor == "rows") > ROWS
    assert pl.read_parquet(logs / "dt=2026-11-28" / "*.parquet").height == ROWS


def test_a_failing_batch_of_edges_is_retried_unit_by_unit(tmp_path: Path) -> None:
    """The edge queries of every unit go to the collector in one batch; when that
    batch fails (a cluster task lost, one unreadable edge), each unit's edges are
    collected alone, so that only a unit whose own edges fail runs in a single
    pass. Here the batch fails and every unit alone succeeds: all from partials."""
    from rulesengine.engine.execute import execute
    from rulesengine.engine.incremental import execute_incremental, local_collect
    from rulesengine.engine.score import score

    _setup(tmp_path, hours=4)
    model = load_model(tmp_path, model_spec(tmp_path, window="2h"))
    both(model, tmp_path / "cache", AT)  # the cache, filled on the grid
    at = AT + timedelta(minutes=7)
    plan = plan_model(model, at)
    batches: list[int] = []

    def flaky(lazies: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        batches.append(len(lazies))
        if len(lazies) > 2:  # the batch of every unit's edges (a unit has two)
            raise pl.exceptions.ComputeError("the batch failed")
        return local_collect(lazies)

    report = Report()
    frames = execute_incremental(plan, model, tmp_path / "cache", report=report, collect=flaky)
    assert_same(score(plan, execute(plan.queries, model)), score(plan, frames))
    assert batches[0] > 2 and len(batches) > 1  # the batch, then unit by unit
    assert set(report.queries.values()) == {"partials"}
