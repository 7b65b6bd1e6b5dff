"""Label joins from partials: a delayed label file invalidates exactly the request
files whose rows it labels (as of the label cutoff), and the results equal a
full rescan at every tick."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulesengine.engine.evaluate import cache_warning, plan_model
from rulesengine.engine.incremental import Report, execute_incremental
from rulesengine.engine.partial_cache import SUFFIX
from rulesengine.engine.partial_labels import LabelWatch, Version, key_dtypes, meets
from rulesengine.spec.model import ModelSpec
from tests.incremental.helpers import (
    AT,
    HIGH,
    assert_same,
    both,
    hour_frame,
    load_model,
    write_hour,
)

ROWS = 150


def _spec(root: Path) -> dict[str, Any]:
    def metric(name: str, type_: str, **kw: Any) -> dict[str, Any]:
        join = {"source": "labels", "on": "request_id"}
        return {"name": name, "source": "req", "type": type_, "join": join, **kw, **HIGH}

    return {
        "version": 1,
        "model": "m",
        "sources": {
            "req": {"path": str(root / "logs" / "*.parquet"), "timestamp": "ts"},
            "labels": {"path": str(root / "labels" / "*.parquet"), "timestamp": "ts"},
        },
        "evaluation": {"every": "15m", "window": "3h", "segment_by": ["model_version"]},
        "checks": [{"name": "rows", "source": "req", "type": "row_count", **HIGH}],
        "metrics": [
            metric("acc", "accuracy", prediction="score >= 0.5", target="label"),
            metric("recall", "recall", prediction="score >= 0.5", target="label"),
            metric("auc", "roc_auc", score="score", target="label"),
            metric("labelled", "count", min_label_coverage=0.2),
            metric("acc-hoh", "accuracy", prediction="score >= 0.5", target="label")
            | {"compare": {"offset": "1h"}},
        ],
    }


def _ids(hour: int) -> np.ndarray:
    """The request ids of the hour file written with seed ``hour``."""
    return np.arange(ROWS) + hour * 1_000_000


def write_labels(
    root: Path, name: str, ids: np.ndarray, when: datetime, seed: int, spread_s: float = 600
) -> Path:
    """Labels for ``ids``, known at times in (when, when + spread]."""
    rng = np.random.default_rng(seed)
    folder = root / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    offsets = (rng.uniform(1, spread_s * 1e6, len(ids))).astype("timedelta64[us]")
    base = np.datetime64(when.replace(tzinfo=None), "us")
    pl.DataFrame(
        {
            "request_id": ids.astype(np.int64),
            "label": rng.random(len(ids)) < 0.4,
            "ts": base + offsets,
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC")).write_parquet(path)
    return path


def _touch(path: Path) -> None:
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))


def _setup(root: Path) -> tuple[ModelSpec, list[Path]]:
    files = [write_hour(root / "logs", AT - timedelta(hours=4 - h), ROWS, h) for h in range(4)]
    write_labels(
        root, "a", np.concatenate([_ids(0)[::2], _ids(1)[::2]]), AT - timedelta(hours=2), 1
    )
    return load_model(root, _spec(root)), files


def _tick(model: ModelSpec, root: Path, at: datetime = AT) -> Report:
    report = Report()
    full, inc = both(model, root / "cache", at, report)
    assert_same(full, inc)
    assert set(report.queries.values()) == {"partials"}
    return report


@pytest.mark.parametrize("spill", [False, True])
def test_a_delayed_label_file_invalidates_exactly_the_files_it_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spill: bool
) -> None:
    """The labels here are known long before the compare's cutoff (at - 1h) moves
    past them, or after every cutoff of the test: only the current window's
    cutoff admits new labels. With ``spill`` the deduplicated labels go to disk
    in parts and each batch (and edge) reads the labels of its own keys."""
    from rulesengine.engine import partial_run

    narrowed: list[int] = []
    if spill:
        real = partial_run.Run.batch_labels

        def spy(self, source, files, members):  # type: ignore[no-untyped-def]
            got = real(self, source, files, members)
            narrowed.append(len(got))
            return got

        monkeypatch.setattr(partial_run, "LABELS_IN_MEMORY", 0)
        monkeypatch.setattr(partial_run, "LABEL_PART_BYTES", 2048)
        monkeypatch.setattr(partial_run.Run, "batch_labels", spy)
    model, files = _setup(tmp_path)
    assert _tick(model, tmp_path).scanned == {"req": sorted(map(str, files))}
    assert _tick(model, tmp_path).scanned == {}  # nothing new: nothing read

    # labels for some rows of the third file arrive: that file alone is read again
    new = write_labels(tmp_path, "b", _ids(2)[:40], AT - timedelta(minutes=20), 2)
    report = _tick(model, tmp_path)
    assert report.scanned == {"req": [str(files[2])]}
    assert report.labels == {"labels": [str(new)]}  # only the new label file is read

    # labels known only after the cutoff change nothing until the cutoff passes them
    write_labels(tmp_path, "c", _ids(3)[:30], AT + timedelta(minutes=20), 3, spread_s=60)
    assert _tick(model, tmp_path).scanned == {}
    at = AT + timedelta(minutes=15)
    assert _tick(model, tmp_path, at).scanned == {}
    at = AT + timedelta(minutes=30)  # the cutoff passes them: the fourth file
    assert _tick(model, tmp_path, at).scanned == {"req": [str(files[3])]}

    # a relabelled request (a later label for a labelled key) reaches its file only
    write_labels(tmp_path, "d", _ids(1)[:2], at - timedelta(minutes=12), 4, spread_s=60)
    assert _tick(model, tmp_path, at).scanned == {"req": [str(files[1])]}

    # a rewritten label file: its old keys (files 0 and 1) and its new ones (file 1)
    write_labels(tmp_path, "a", _ids(1)[1::2], AT - timedelta(hours=2), 5)
    _touch(tmp_path / "labels" / "a.parquet")
    assert _tick(model, tmp_path, at).scanned == {"req": sorted(map(str, files[:2]))}

    # a deleted label file: the files it labelled
    (tmp_path / "labels" / "b.parquet").unlink()
    assert _tick(model, tmp_path, at).scanned == {"req": [str(files[2])]}

    # off the grid, with new labels for the second file: that file, and edges
    write_labels(tmp_path, "e", _ids(1)[10:20], at, 6, spread_s=60)
    report = _tick(model, tmp_path, at + timedelta(minutes=4, seconds=2))
    assert report.scanned == {"req": [str(files[1])]} and report.edges > 0
    assert (sum(narrowed) > 0) == spill
    assert not list((tmp_path / "cache").glob("*/.spill-*"))  # deleted after each call


def test_spilled_labels_of_a_dead_process_are_deleted(tmp_path: Path, monkeypatch) -> None:
    """A folder of spilled labels left by a process that died is deleted by the
    next call that spills; a live process's folder is left alone."""
    import subprocess
    import sys

    from rulesengine.engine import partial_run

    monkeypatch.setattr(partial_run, "LABELS_IN_MEMORY", 0)
    model, _ = _setup(tmp_path)
    _tick(model, tmp_path)
    folder = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    (folder / f".spill-{dead}-x").mkdir()
    (folder / f".spill-{dead}-x" / "part-00000.parquet").write_bytes(b"old")
    (folder / f".spill-{os.getppid()}-y").mkdir()  # alive
    write_labels(tmp_path, "b", _ids(2)[:40], AT - timedelta(minutes=20), 2)
    _tick(model, tmp_path)
    assert not (folder / f".spill-{dead}-x").exists()
    assert (folder / f".spill-{os.getppid()}-y").exists()


def test_joined_values_against_numpy_on_raw_rows(tmp_path: Path) -> None:
    """The last label known at the cutoff per request, joined by hand, gives the
    accuracy and the label coverage the incremental run reports."""
    model, files = _setup(tmp_path)
    _tick(model, tmp_path)
    write_labels(tmp_path, "b", _ids(0)[:20], AT - timedelta(minutes=30), 7)  # relabels
    at = AT + timedelta(minutes=7)
    report = Report()
    _, inc = both(model, tmp_path / "cache", at, report)
    assert report.scanned == {"req": [str(files[0])]}

    rows = pl.read_parquet(tmp_path / "logs" / "*.parquet").filter(
        (pl.col("ts") > at - timedelta(hours=3)) & (pl.col("ts") <= at)
    )
    labels = (
        pl.read_parquet(tmp_path / "labels" / "*.parquet")
        .filter(pl.col("ts") <= at)
        .sort("ts")
        .group_by("request_id")
        .agg(pl.col("label").last())
    )
    joined = rows.join(labels, on="request_id")
    pred = joined.get_column("score").to_numpy() >= 0.5
    truth = joined.get_column("label").to_numpy()
    result = {r.monitor: r for r in inc.results if not r.segment}
    assert result["acc"].value == pytest.approx(np.mean(pred == truth), rel=1e-12)
    assert result["acc"].rows == joined.height
    assert result["labelled"].details["label_coverage"] == joined.height / rows.height


@pytest.mark.parametrize("kept", [None, 0])
def test_touched_keys_against_a_set_oracle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int | None
) -> None:
    """The keys a label change reaches, by the watch's summaries and scans, equal
    a Python set difference of the admitted (key, label time) rows; also when no
    label rows are kept in memory (``kept`` 0, every file its own batch): the
    files a moved cutoff cuts through are then read again."""
    from rulesengine.engine import partial_labels

    if kept is not None:
        monkeypatch.setattr(partial_labels, "ROWS_KEPT", kept)
        monkeypatch.setattr(partial_labels, "BATCH_BYTES", 1)
    root = tmp_path
    write_labels(root, "a", np.arange(0, 100), AT - timedelta(hours=1), 1, spread_s=3600)
    write_labels(root, "b", np.arange(50, 150), AT - timedelta(minutes=30), 2, spread_s=3600)
    spec = load_model(root, _spec(root)).sources["labels"]
    schema = pl.read_parquet_schema(root / "labels" / "a.parquet")
    dtypes = key_dtypes(pl.Schema(schema), pl.Schema(schema), ("request_id",))
    assert dtypes is not None

    def admitted(cutoff: datetime) -> set[tuple[int, Any]]:
        df = pl.read_parquet(root / "labels" / "*.parquet", include_file_paths="f")
        df = df.filter(pl.col("ts") <= cutoff)
        return set(zip(df["request_id"], zip(df["f"], df["ts"], strict=True), strict=True))

    def version(watch: LabelWatch, cutoff: datetime) -> Version:
        from rulesengine.engine.partial_scan import micros

        return Version(micros(cutoff), watch.current())

    folder = root / "summaries"
    w0 = LabelWatch(spec, dtypes, folder)
    c0 = AT - timedelta(minutes=10)
    v0, before = version(w0, c0), admitted(c0)
    # changes: a new file, a rewritten one, and the cutoff moves on by 25 minutes
    write_labels(root, "c", np.arange(140, 160), AT - timedelta(minutes=20), 3, spread_s=2400)
    write_labels(root, "a", np.arange(0, 10), AT - timedelta(hours=1), 4, spread_s=600)
    _touch(root / "labels" / "a.parquet")
    w1 = LabelWatch(spec, dtypes, folder)
    c1 = AT + timedelta(minutes=15)
    touched = w1.touched(v0, version(w1, c1))
    after = admitted(c1)
    changed = {k for k, _ in before ^ after}
    # the rewritten file's old keys count whole (its old rows are gone)
    changed |= set(range(0, 100))
    hashes = pl.DataFrame({"request_id": sorted(changed)}, schema=dict(dtypes))
    from rulesengine.engine.partial_labels import HASH, key_hash

    expected = np.unique(hashes.select(key_hash(dtypes)).get_column(HASH).to_numpy())
    assert touched is not None
    assert np.array_equal(touched, expected)
    assert not meets(touched, np.array([2**63 + 12345], dtype=np.uint64))
    assert w1.touched(None, version(w1, c1)) is None  # no earlier version: all
    assert (len(w1.rows) == 0) == (kept == 0)


def test_labels_deduplicated_in_parts_equal_a_single_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels deduplicated part by part (by a hash of the join key) give the
    single pass's results: a key relabelled later in another file keeps its last
    label as of the cutoff, wherever its rows fall."""
    from rulesengine.engine import frames, partial_run

    root = tmp_path
    for h in range(4):
        write_hour(root / "logs", AT - timedelta(hours=4 - h), ROWS, h)
    ids = np.concatenate([_ids(h) for h in range(4)])
    write_labels(root, "a", ids, AT - timedelta(hours=3), 1, spread_s=600)
    write_labels(root, "b", ids[::3], AT - timedelta(hours=1), 2, spread_s=600)  # later
    write_labels(root, "c", ids[::5], AT + timedelta(hours=2), 3, spread_s=600)  # after cutoff
    parts: list[int] = []
    real = frames.labels_once

    def spy(*args: Any, **kw: Any) -> None:
        parts.append(args[3] if len(args) > 3 else kw.get("parts", 1))
        real(*args, **kw)

    monkeypatch.setattr(frames, "labels_once", spy)
    size = sum(f.stat().st_size for f in (root / "labels").iterdir())
    monkeypatch.setattr(partial_run, "LABEL_PART_BYTES", size // 5)
    _tick(load_model(root, _spec(root)), root)
    assert parts and min(parts) >= 5


step_st = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 2**16)),
    st.tuples(st.just("labels"), st.integers(0, 2**16)),
    st.tuples(st.just("rewrite-labels"), st.integers(0, 2**16)),
    st.tuples(st.just("delete-labels"), st.integers(0, 2**16)),
    st.tuples(st.just("rewrite-request"), st.integers(0, 2**16)),
    st.tuples(st.just("delete-request"), st.integers(0, 2**16)),
    st.tuples(st.just("tick"), st.integers(1, 3)),
    st.tuples(st.just("off-grid"), st.integers(1, 899)),
)


@pytest.mark.parametrize("in_memory", [True, False])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step_st, min_size=3, max_size=5))
def test_labels_and_requests_changing_at_random_equal_a_full_rescan(
    in_memory: bool, steps: list[tuple[str, int]]
) -> None:
    """Random changes between ticks; labels held in memory, or spilled to disk
    (in parts) and narrowed to each batch's keys."""
    from unittest import mock

    from rulesengine.engine import partial_run

    limit = partial_run.LABELS_IN_MEMORY if in_memory else 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(partial_run, "LABELS_IN_MEMORY", limit),
        mock.patch.object(partial_run, "LABEL_PART_BYTES", 4096),
    ):
        root = Path(tmp)
        model, files = _setup(root)
        labels = [root / "labels" / "a.parquet"]
        at = AT
        _tick(model, root, at)
        seeds = iter(range(100, 200))
        for op, n in steps:
            rng = np.random.default_rng(n)
            hour = n % 4
            if op == "request":
                files.append(write_hour(root / "logs", at - timedelta(minutes=40), 60, 10 + n % 7))
            elif op == "labels" or (op == "rewrite-labels" and labels):
                ids = rng.choice(_ids(hour), size=1 + n % 60, replace=False)
                when = at - timedelta(minutes=n % 120) + timedelta(minutes=n % 3 * 10)
                name = f"l{n}" if op == "labels" else labels[n % len(labels)].stem
                path = write_labels(root, name, ids, when, next(seeds), spread_s=1800)
                _touch(path)
                labels = sorted({*labels, path})
            elif op == "delete-labels" and len(labels) > 1:
                labels.pop(n % len(labels)).unlink()
            elif op == "rewrite-request" and files:
                victim = files[n % len(files)]
                hour_frame(AT - timedelta(hours=4 - hour), ROWS - 20, hour).write_parquet(victim)
                _touch(victim)
            elif op == "delete-request" and len(files) > 1:
                files.pop(n % len(files)).unlink()
            elif op == "tick":
                at += timedelta(minutes=15 * n)
            elif op == "off-grid":
                at += timedelta(seconds=n)
            _tick(model, root, at)


def test_an_unreadable_label_file_falls_back_to_the_single_pass(tmp_path: Path) -> None:
    """The single pass names the file; the incremental run gives the same results
    (the label joins' queries run there) and still caches the rest."""
    model, _ = _setup(tmp_path)
    _tick(model, tmp_path)
    (tmp_path / "labels" / "zz.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    report = Report()
    full, inc = both(model, tmp_path / "cache", AT, report)
    assert_same(full, inc)
    assert any(r.status == "error" and "zz.parquet" in str(r.details) for r in inc.results)
    assert "partials failed" in report.queries.values() and "partials" in report.queries.values()


def test_a_new_joined_monitor_off_the_grid_keeps_the_others_cached(tmp_path: Path) -> None:
    """A monitor added over the same label join (reading another label column) has
    every file to compute while the others are cached; the labels deduplicated
    once for that computation keep the columns of every unit over the join, so the
    cached units' edge buckets (off the grid) still find theirs."""
    join = {"source": "labels", "on": "request_id"}

    def kpi(name: str, expr: str) -> dict[str, Any]:
        return {"name": name, "source": "req", "expr": expr, "join": join, **HIGH}

    _setup(tmp_path)
    spec = _spec(tmp_path)
    spec["kpis"] = [kpi("positives", "sum(CAST(label AS INT))")]
    _tick(load_model(tmp_path, spec), tmp_path)
    # a frame of its own (filtered), so a unit of its own with every file to compute
    spec["kpis"].append(kpi("labelled-at", "count(ts_label)") | {"filter": "score > 0.5"})
    report = _tick(load_model(tmp_path, spec), tmp_path, AT + timedelta(minutes=7))
    assert report.edges > 0


def test_the_label_summaries_read_count_as_used_by_the_bound(tmp_path: Path) -> None:
    """Under a bound below the window's needs, the report says how much the
    evaluation's own files take: its entries and the summaries of the label files
    it read (which the bound deletes last, as the entries, not first as another
    configuration's); and the results still equal a single pass."""
    model, _files = _setup(tmp_path)
    plan = plan_model(model, AT)
    report = Report()
    execute_incremental(plan, model, tmp_path / "cache", max_bytes=1 << 62, report=report)
    assert report.starved is None  # room for everything: nothing deleted
    on_disk = {str(p): p.stat().st_size for p in (tmp_path / "cache").rglob(f"*{SUFFIX}")}
    summaries = [p for p in on_disk if "/labels-" in p]
    assert summaries and len(summaries) < len(on_disk)
    report = Report()
    execute_incremental(plan, model, tmp_path / "cache", max_bytes=1, report=report)
    assert report.starved == (len(on_disk), sum(on_disk.values()), 1)
    assert "executor.cache_mib (0 MiB)" in cache_warning(report.starved)
    _tick(model, tmp_path)  # recomputed from the files, equal to a single pass
