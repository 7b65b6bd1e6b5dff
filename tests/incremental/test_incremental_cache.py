"""The cache: which files a tick reads, rewritten and deleted files, damaged
entries, eviction of old buckets and the size bound."""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from datetime import timedelta
from pathlib import Path

import pytest

from rulesengine.engine.incremental import Report
from rulesengine.engine.partial_cache import SUFFIX, Entry, decode, encode
from rulesengine.partials import Moments, PartialStateError, Sum
from tests.incremental.helpers import (
    AT,
    assert_same,
    both,
    hour_frame,
    load_model,
    model_spec,
    write_hour,
    write_reference,
)

ROWS = 300


def _setup(root: Path, hours: int = 6):
    files = [
        write_hour(root / "logs", AT - timedelta(hours=hours - h), ROWS, h) for h in range(hours)
    ]
    write_reference(root / "ref.parquet")
    model = load_model(root, model_spec(root))
    report = Report()
    full, inc = both(model, root / "cache", report=report)
    assert_same(full, inc)
    assert report.scanned["req"] == sorted(str(f) for f in files)
    return model, files


def _tick(model, root: Path, at=AT) -> Report:
    report = Report()
    full, inc = both(model, root / "cache", at, report)
    assert_same(full, inc)
    return report


def _entries(root: Path) -> list[Path]:
    return sorted((root / "cache").glob(f"*/*/*{SUFFIX}"))


def test_a_tick_reads_only_new_files(tmp_path: Path) -> None:
    model, _ = _setup(tmp_path)
    assert _tick(model, tmp_path).scanned == {}  # nothing new: nothing read
    new = write_hour(tmp_path / "logs", AT, ROWS, 99)
    report = _tick(model, tmp_path, AT + timedelta(minutes=30))
    assert report.scanned == {"req": [str(new)]}
    assert report.cached > 0


def test_a_rewritten_file_is_read_again_and_a_deleted_one_drops_out(tmp_path: Path) -> None:
    model, files = _setup(tmp_path)
    victim = files[3]
    hour_frame(AT - timedelta(hours=3), ROWS + 17, 1234).write_parquet(victim)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert _tick(model, tmp_path).scanned == {"req": [str(victim)]}

    before = len(_entries(tmp_path))
    files[1].unlink()
    assert _tick(model, tmp_path).scanned == {}
    assert len(_entries(tmp_path)) < before  # the deleted file's entries are gone


def test_a_damaged_entry_is_ignored_and_recomputed(tmp_path: Path) -> None:
    model, _ = _setup(tmp_path)
    entries = _entries(tmp_path)
    damaged = entries[0]
    blob = bytearray(damaged.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    damaged.write_bytes(bytes(blob))
    entries[1].write_bytes(entries[1].read_bytes()[:40])  # truncated
    report = _tick(model, tmp_path)
    assert sorted(report.corrupt) == sorted([damaged.name, entries[1].name])
    assert 1 <= len(report.scanned["req"]) <= 2  # only the files behind them
    assert _tick(model, tmp_path).corrupt == []


def test_old_buckets_are_evicted_and_the_size_is_bounded(tmp_path: Path) -> None:
    model, files = _setup(tmp_path, hours=8)
    sizes = {p: p.stat().st_size for p in _entries(tmp_path)}
    # 14 hours later the oldest files lie more than a window beyond the horizon
    later = AT + timedelta(hours=14)
    write_hour(tmp_path / "logs", later - timedelta(hours=1), ROWS, 77)
    report = _tick(model, tmp_path, later)
    assert report.evicted > 0
    shrunk = [p for p in _entries(tmp_path) if p in sizes and p.stat().st_size < sizes[p]]
    assert shrunk
    assert _tick(model, tmp_path, later).scanned == {}  # trimmed entries still count

    report = Report()
    from rulesengine.engine.evaluate import plan_model
    from rulesengine.engine.execute import execute
    from rulesengine.engine.incremental import execute_incremental
    from rulesengine.engine.score import score

    plan = plan_model(model, later)
    inc = score(plan, execute_incremental(plan, model, tmp_path / "cache", max_bytes=1))
    assert_same(score(plan, execute(plan.queries, model)), inc)
    assert _entries(tmp_path) == []  # over the bound: every entry deleted
    report = _tick(model, tmp_path, later)
    assert len(report.scanned["req"]) == len(files) + 1  # recomputed, same results


def test_files_computed_in_partitions_give_the_same_results(tmp_path: Path) -> None:
    """A collector that sees each partial query (as a cluster would, one task per
    run of ``files_per_task`` files) gets runs of at most that many files, and the
    merged results equal a single pass."""
    from rulesengine.engine.evaluate import plan_model
    from rulesengine.engine.execute import execute
    from rulesengine.engine.incremental import execute_incremental, local_collect
    from rulesengine.engine.score import score

    files = [write_hour(tmp_path / "logs", AT - timedelta(hours=5 - h), ROWS, h) for h in range(5)]
    write_reference(tmp_path / "ref.parquet")
    model = load_model(tmp_path, model_spec(tmp_path))
    batches: list[int] = []

    def collect(lazies):
        batches.append(len(lazies))
        return local_collect(lazies)

    plan = plan_model(model, AT)
    report = Report()
    frames = execute_incremental(
        plan, model, tmp_path / "cache", report=report, collect=collect, files_per_task=2
    )
    assert_same(score(plan, execute(plan.queries, model)), score(plan, frames))
    assert report.scanned["req"] == sorted(str(f) for f in files)
    # overall queries ride on their segmented twins' states: no query of their own
    assert report.shared > 0
    units = len([q for q in report.queries.values() if q == "partials"]) - report.shared
    # five files in runs of two: three partial queries per unit, in one batch
    assert batches and batches[0] % 3 == 0 and batches[0] >= 3 * units > 0


def test_local_batches_are_collected_one_after_another(tmp_path: Path, monkeypatch) -> None:
    """The local collector reads the new files in batches of at most
    ``BATCH_BYTES`` on disk (a larger file alone), one ``collect_all`` per batch,
    each stored before the next: the results equal a single pass, and every file
    gets its entry (none is left empty by another batch's store)."""
    import polars as pl

    from rulesengine.engine import partial_run
    from rulesengine.engine.evaluate import plan_model
    from rulesengine.engine.execute import execute
    from rulesengine.engine.incremental import execute_incremental
    from rulesengine.engine.score import score

    files = [write_hour(tmp_path / "logs", AT - timedelta(hours=5 - h), ROWS, h) for h in range(5)]
    write_reference(tmp_path / "ref.parquet")
    model = load_model(tmp_path, model_spec(tmp_path))
    plan = plan_model(model, AT)
    whole = score(plan, execute(plan.queries, model))
    calls: list[int] = []
    collect_all = pl.collect_all

    def spy(lazies, **kw):
        calls.append(len(lazies))
        return collect_all(lazies, **kw)

    monkeypatch.setattr(partial_run, "BATCH_BYTES", 1)  # every file a batch of its own
    monkeypatch.setattr(pl, "collect_all", spy)
    report = Report()
    frames = execute_incremental(plan, model, tmp_path / "cache", report=report)
    assert_same(whole, score(plan, frames))
    assert report.scanned["req"] == sorted(str(f) for f in files)
    assert len(calls) >= len(files)  # one collect per file (plus single-pass queries)
    # a second run reads every entry from the cache and gives the same results
    partial_run._STORE.memory.clear()
    again = Report()
    frames = execute_incremental(plan, model, tmp_path / "cache", report=again)
    assert_same(whole, score(plan, frames))
    assert again.scanned.get("req", []) == []


def test_footers_are_read_once_per_evaluation_not_per_batch(tmp_path: Path, monkeypatch) -> None:
    """The subset scans of every batch share the source's shape (its columns, the
    files' schemas): each file's footer is read once per evaluation, not once per
    batch (96 files in 96 batches would read 9,216 footers)."""
    from rulesengine.engine import partial_run, partial_scan
    from rulesengine.engine.evaluate import plan_model
    from rulesengine.engine.incremental import execute_incremental

    files = [write_hour(tmp_path / "logs", AT - timedelta(hours=5 - h), ROWS, h) for h in range(5)]
    write_reference(tmp_path / "ref.parquet")
    model = load_model(tmp_path, model_spec(tmp_path))
    footers: list[str] = []
    real = partial_scan.file_schema

    def counted(source, path):  # type: ignore[no-untyped-def]
        footers.append(path)
        return real(source, path)

    monkeypatch.setattr(partial_run, "BATCH_BYTES", 1)  # every file a batch of its own
    monkeypatch.setattr(partial_scan, "file_schema", counted)
    report = Report()
    execute_incremental(plan_model(model, AT), model, tmp_path / "cache", report=report)
    assert len(report.scanned["req"]) == len(files)
    assert sorted(footers) == sorted(str(f) for f in files)


def test_entries_beyond_the_memory_bound_are_read_again_from_disk(
    tmp_path: Path, monkeypatch
) -> None:
    """With room for no decoded entry (``KEEP_BYTES`` 1), every entry's states
    are released once stored or loaded and read again from disk for the merge
    and for trimming: results still equal a single pass at each tick, and the
    decoded entries kept across ticks stay within their bound. States are merged
    as they come (``FOLD``), not all listed first."""
    from rulesengine.engine import partial_run
    from rulesengine.engine.partial_cache import Entry

    released: list[str] = []
    real = Entry.release

    def spy(self: Entry) -> None:
        released.append(self.path)
        real(self)

    monkeypatch.setattr(partial_run, "KEEP_BYTES", 1)
    monkeypatch.setattr(partial_run._STORE, "max_bytes", 1)
    monkeypatch.setattr(partial_run, "FOLD", 2)  # states merged as soon as two wait
    monkeypatch.setattr(Entry, "release", spy)
    model, files = _setup(tmp_path)
    assert set(released) == {str(f) for f in files}  # every file's entries, computed
    released.clear()
    new = write_hour(tmp_path / "logs", AT, ROWS, 99)
    report = _tick(model, tmp_path, AT + timedelta(minutes=30))
    assert report.scanned == {"req": [str(new)]} and report.cached > 0
    assert set(report.queries.values()) == {"partials"}  # merged from the disk's states
    assert {str(f) for f in files} <= set(released)  # loaded, then released
    assert len(partial_run._STORE.memory) <= 1
    # far enough on that old buckets are trimmed: each trimmed entry read again
    sizes = {p: p.stat().st_size for p in _entries(tmp_path)}
    later = AT + timedelta(hours=14)
    write_hour(tmp_path / "logs", later - timedelta(hours=1), ROWS, 77)
    report = _tick(model, tmp_path, later)
    assert report.evicted > 0 and set(report.queries.values()) == {"partials"}
    assert [p for p in _entries(tmp_path) if p in sizes and p.stat().st_size < sizes[p]]
    assert _tick(model, tmp_path, later).scanned == {}  # the trimmed entries still count


def test_an_entry_changed_on_disk_after_release_runs_its_query_in_a_single_pass(
    tmp_path: Path, monkeypatch
) -> None:
    """A released entry whose file on disk is replaced before the merge (another
    process) is not merged: its queries run in a single pass."""
    from rulesengine.engine import partial_run

    model, _ = _setup(tmp_path)
    monkeypatch.setattr(partial_run, "KEEP_BYTES", 1)
    real = partial_run.Run.merged

    damaged: list[Path] = []

    def swap(self, u):  # type: ignore[no-untyped-def]
        for entry in _entries(tmp_path)[:1]:
            if not damaged:  # once, meanwhile: the checksum's last byte flipped
                data = entry.read_bytes()
                entry.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
                damaged.append(entry)
        return real(self, u)

    monkeypatch.setattr(partial_run.Run, "merged", swap)
    report = _tick(model, tmp_path, AT)
    assert any(q.startswith("single pass") for q in report.queries.values())


def _entry(states: list[dict]) -> Entry:
    n = len(states)
    return Entry("/logs/a.parquet", (10, 7), 0, {}, list(range(n)), [None] * n, [()] * n, states)


def _bits(x: object) -> object:
    return struct.pack("<d", x) if isinstance(x, float) else x


def test_sums_are_stored_as_columns_and_read_back_bit_for_bit() -> None:
    """Integer sums as an Int64 column, float sums as two Float64 columns (NaN,
    -0.0 and the compensation kept), anything else (a sum beyond Int64, a mix of
    kinds, another state) as one blob per state; all read back equal."""
    cases = {
        "ints": [Sum(3), Sum(-(2**63)), Sum(2**63 - 1), Sum(0)],
        "floats": [Sum(1e16, 1.0), Sum(math.nan), Sum(-0.0), Sum(math.inf)],
        "huge": [Sum(2**63), Sum(1)],
        "mixed": [Sum(1), Sum(1.5)],
        "moments": [Moments.of([1.0, 2.0]), Moments()],
    }
    for name, values in cases.items():
        entry = _entry([{"p": v} for v in values])
        blob = encode(entry, ["p"])
        header = json.loads(blob[10 : 10 + struct.unpack_from("<I", blob, 6)[0]])
        kind = header["native"].get("p")
        assert kind == {"ints": "sum-int", "floats": "sum-float"}.get(name), name
        back = [s["p"] for s in decode(blob, ["p"]).states]
        for got, want in zip(back, values, strict=True):
            assert type(got) is type(want), name
            for field_ in ("value", "error", "n", "mean", "m2"):
                if hasattr(want, field_):
                    assert _bits(getattr(got, field_)) == _bits(getattr(want, field_)), name


def test_a_native_column_of_the_wrong_kind_is_a_damaged_entry() -> None:
    """A header that says Int64 over a column that is not (a crafted or damaged
    entry with a valid checksum) is refused, and so recomputed, never misread."""
    blob = encode(_entry([{"p": Sum(1.5)}, {"p": Sum(2.5)}]), ["p"])
    n = struct.unpack_from("<I", blob, 6)[0]
    header = blob[10 : 10 + n].replace(b'"sum-float"', b'"sum-int"  ')
    body = blob[:10] + header + blob[10 + n : -4]
    with pytest.raises(PartialStateError, match="not a sum-int column"):
        decode(body + struct.pack("<I", zlib.crc32(body)), ["p"])
