"""One call of the incremental executor (:mod:`rulesengine.engine.incremental`):
:class:`Run` finds each unit's cached entries, computes the partial states of the
files that are new or changed (batch by batch, or on a cluster's collector),
stores them, reads the window's edge buckets fresh, and merges the states of the
window's buckets per key into the frame ``execute`` would have returned."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.engine.partial_cache import (
    KEEP_BYTES,
    PDATE,
    TB,
    Entry,
    EntryStore,
    Identity,
    entry_path,
)
from rulesengine.engine.partial_labels import (
    HASH,
    LabelWatch,
    Version,
    has_key,
    key_hash,
    meets,
    read_ledger,
    unique_sorted,
)
from rulesengine.engine.partial_scan import (
    BATCH_BYTES,
    EPOCH,
    LABEL_PART_BYTES,
    US,
    ScanShape,
    bucket_expr,
    bucket_width,
    current_files,
    micros,
    raw_schema_text,
    scan_shape,
    size_batches,
    subset_scan,
)
from rulesengine.engine.partial_units import (
    Unit,
    frame_from_states,
    group_keys,
    merge_list,
    part_exprs,
    states_by_row,
)
from rulesengine.engine.plan import ALL, BUCKET, Plan
from rulesengine.engine.sources import FILE_COLUMN, POLARS_ERRORS, NoFiles
from rulesengine.errors import DataError
from rulesengine.monitors.aggs import NotExact
from rulesengine.monitors.base import FrameKey
from rulesengine.spec.model import ModelSpec
from rulesengine.spec.sql import compile_sql

Collect = Callable[[list[pl.LazyFrame]], list[pl.DataFrame]]
_STORE = EntryStore()  # decoded entries, kept across calls (a daemon's ticks)
FOLD = 4  # states of one key merged into one whenever this many wait
# label files' bytes on disk up to which a label join's deduplicated labels are
# held in memory for every batch; above, they are written to disk and each batch
# reads the labels of its own keys (see Run.batch_labels)
LABELS_IN_MEMORY = 128 * 2**20
SPILL = ".spill-"  # the prefix of a call's folder of spilled labels
PART = "__label_part"  # a label row's part while the labels are split


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def local_collect(lazies: list[pl.LazyFrame]) -> list[pl.DataFrame]:
    """Collect partial queries in this process, in one ``collect_all`` (the caller
    hands it one batch of files at a time: see ``BATCH_BYTES``)."""
    return pl.collect_all(lazies, engine="in-memory")


@dataclass
class Report:
    """What one call did: per query index, ``"partials"`` or why it ran in a
    single pass; the files whose partials were computed, per source; damaged
    entries that were recomputed."""

    queries: dict[int, str] = field(default_factory=dict)
    scanned: dict[str, list[str]] = field(default_factory=dict)
    edges: int = 0  # window edges off the bucket grid, scanned fresh
    labels: dict[str, list[str]] = field(default_factory=dict)  # label files read for keys
    cached: int = 0  # entries read from the cache
    corrupt: list[str] = field(default_factory=list)
    evicted: int = 0
    shared: int = 0  # overall queries answered from their segmented twin's states
    # (entries of this window deleted, bytes of its entries, the bound) when the
    # bound is below what the window needs
    starved: tuple[int, int, int] | None = None


def _in_order(df: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """``df``'s rows sorted by those of ``columns`` it has: a group_by gives its
    groups in any order, and floating states merged in another order differ in
    the last bits, so two evaluations of the same files would not give the same
    values (nor round or cross a threshold at a tie alike). A key of a dtype
    Polars cannot sort leaves the rows as they came."""
    by = [c for c in columns if c in df.columns]
    if not by or df.height < 2:
        return df
    try:
        return df.sort(by, nulls_last=True, maintain_order=True)
    except POLARS_ERRORS:
        return df


def spans(f: FrameKey, width: Any) -> tuple[int, int, int, int]:
    """The buckets of ``f``'s window (start, end]: those it touches are
    [cover_lo, cover_hi), those inside it whole [inner_lo, inner_hi). On the grid
    both are the same; off it, the buckets cover_lo (when start is off) and
    inner_hi (when end is off) hold its edges."""
    assert f.start is not None and f.end is not None
    step = width // US
    s, e = micros(f.start), micros(f.end)
    return s // step, -(-s // step), e // step, (e - 1) // step + 1


def _schema_text(plan: Plan, source: str) -> str:
    """The full scan's columns of ``source`` (once per plan)."""
    memo = plan.frames.__dict__.setdefault("_incremental_schema", {})
    if source not in memo:
        memo[source] = raw_schema_text(plan.model.sources[source])
    return memo[source]


def _model_dir(cache_dir: Path, model: ModelSpec) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", model.model)[:60]
    return cache_dir / f"{name}-{hashlib.sha256(model.model.encode()).hexdigest()[:8]}"


def _pdate_bounds(plan: Plan, f: FrameKey) -> tuple[Any, Any] | None:
    """The partition dates the full scan keeps for ``f`` (see ``in_window``)."""
    source = plan.model.sources[f.source]
    part = source.partition_date
    schema = plan.frames.schemas.get(f.source)
    if not part or schema is None or part not in schema:
        return None
    assert f.start is not None and f.end is not None

    def day(t: datetime) -> date | str:
        d = t.date()
        return d.isoformat() if schema[part] == pl.String else d

    return day(f.start), day(f.end)


class Run:
    """One call of :func:`execute_incremental`."""

    def __init__(
        self,
        plan: Plan,
        model: ModelSpec,
        cache_dir: Path,
        report: Report,
        collect: Collect = local_collect,
        files_per_task: int | None = None,
    ) -> None:
        self.plan, self.model, self.report = plan, model, report
        self.collect, self.files_per_task = collect, files_per_task
        self.width = bucket_width(model)
        self.w = self.width.total_seconds()
        self.dir = _model_dir(cache_dir, model)
        self.entries: dict[int, dict[str, Entry]] = {}  # unit id → file → entry
        self.files: dict[str, Identity] = {}  # the current source's files, as listed
        self.used: set[str] = set()
        self.written = 0  # bytes of entries written by this call
        self.edges: dict[int, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        self.watches: dict[str, LabelWatch] = {}  # per label folder
        self.broken: list[Unit] = []  # label joins whose labels could not be looked at
        self.units: list[Unit] = []  # every unit with states of its own in this call
        self.shapes: dict[str, ScanShape] = {}  # per source, once per call
        self.hosts: dict[int, Unit] = {}  # an overall unit → its segmented twin
        self.merges: dict[int, dict[tuple[Any, ...], dict[str, Any]]] = {}  # unit → merged
        self.held = 0  # bytes (on disk) of the entries this call holds decoded
        self.spilled: dict[tuple[Any, Any], pl.LazyFrame] = {}  # labels on disk, per join
        self.spills: list[Path] = []  # this call's folders of spilled labels

    def spans(self, f: FrameKey) -> tuple[int, int, int, int]:
        return spans(f, self.width)

    def shape(self, source: str) -> ScanShape:
        """The source's :func:`scan_shape`, once per call (it reads every footer)."""
        if source not in self.shapes:
            self.shapes[source] = scan_shape(self.model.sources[source])
        return self.shapes[source]

    def folder(self, unit: Unit) -> Path:
        return self.dir / unit.fingerprint

    def watch(self, u: Unit) -> None:
        """Set up ``u``'s label source (once per call per label folder) and the
        label version as of its cutoff."""
        f = u.query.frame
        assert f.join is not None and u.keys is not None
        labels = self.model.sources[f.join.source]
        shape = [labels.name, labels.path, labels.format, labels.timestamp, labels.timezone]
        shape += [labels.timestamp_unit, labels.hive_partitioning]
        shape += [_schema_text(self.plan, labels.name)]
        shape += [str(u.keys), pl.__version__]
        digest = hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()[:24]
        folder = self.dir / f"labels-{digest}"
        if str(folder) not in self.watches:
            self.watches[str(folder)] = LabelWatch(labels, u.keys, folder)
        u.watch = self.watches[str(folder)]
        cutoff = None if labels.timestamp is None else f.label_cutoff
        u.version = Version(None if cutoff is None else micros(cutoff), u.watch.current())

    def load(self, units: list[Unit], files: dict[str, Identity]) -> dict[int, list[str]]:
        """Cached entries of ``units``; per unit, the files to compute. An entry of
        a label join also needs its ledger's word and no join key whose labels
        changed since (see :mod:`rulesengine.engine.partial_labels`)."""
        self.files = files
        need: dict[int, list[str]] = {}
        for u in units:
            cover_lo = self.spans(u.query.frame)[0]
            got: dict[str, Entry] = {}
            need[id(u)] = []
            ledger, touched = None, None
            if u.query.frame.join is not None:
                try:
                    self.watch(u)
                    assert u.watch is not None and u.version is not None
                    ledger = read_ledger(self.folder(u))
                    touched = u.watch.touched(ledger.version if ledger else None, u.version)
                except (NoFiles, OSError, DataError, *POLARS_ERRORS):
                    # the single pass reports an unreadable label file by its name
                    self.broken.append(u)
                    self.entries[id(u)] = {}
                    continue
            for path, ident in files.items():
                where = entry_path(self.folder(u), path)
                entry = _STORE.load(where, u.part_ids)
                same = entry is not None and entry.path == path and entry.identity == ident
                if same and u.query.frame.join is not None:
                    assert entry is not None
                    same = (
                        ledger is not None
                        and touched is not None
                        and ledger.claims.get(path) == entry.token
                        and not meets(entry.join_keys, touched)
                    )
                if same and entry.lo <= cover_lo:  # type: ignore[union-attr]
                    got[path] = entry  # type: ignore[assignment]
                    self.hold(where, entry)  # type: ignore[arg-type]
                    self.report.cached += 1
                    continue
                need[id(u)].append(path)
            self.entries[id(u)] = got
        return need

    def compute(self, source: str, units: list[Unit], need: dict[int, list[str]]) -> list[Unit]:
        """Partials of the needed files; the units that failed (they run in a
        single pass). A cluster's collector gets every query at once, each over at
        most ``files_per_task`` files; the local collector gets them batch by batch
        (see :func:`~rulesengine.engine.partial_scan.size_batches`), each batch
        stored before the next is read, so that memory follows the largest batch
        rather than the number of files."""
        lo_b = min(self.spans(u.query.frame)[0] for u in units)
        groups: dict[tuple[str, ...], list[Unit]] = {}
        for u in units:
            if need[id(u)]:
                groups.setdefault(tuple(need[id(u)]), []).append(u)
        if not groups:
            return []
        lo = EPOCH + (self.width * lo_b)
        local = self.collect is local_collect
        if local:
            self.labels_once()
        tasks = []
        for files, members in groups.items():
            if local and self.files_per_task is None:
                parts = size_batches(list(files), self.files, BATCH_BYTES)
            else:
                parts = _partitions(list(files), self.files_per_task)
            tasks += [(part, members) for part in parts]
        failed: list[Unit] = []
        for batch in [[t] for t in tasks] if local else [tasks]:
            lost = self.compute_batch(source, batch, lo, lo_b)
            if lost is None:
                return units
            failed += [u for u in lost if id(u) not in {id(x) for x in failed}]
        bad = {id(u) for u in failed}  # by identity: units hold expressions
        computed = sorted({f for u in units if id(u) not in bad for f in need[id(u)]})
        self.report.scanned.setdefault(source, [])
        self.report.scanned[source] = sorted({*self.report.scanned[source], *computed})
        return failed

    def labels_once(self) -> None:
        """Deduplicate each label join's labels once for all batches (each batch
        would otherwise read and deduplicate every label again), keeping the label
        columns that any unit of this call over that join reads: the edge queries
        of the units whose entries were all cached read them too."""
        units = self.units
        from rulesengine.engine.frames import labels_once
        from rulesengine.engine.plan import root_names

        joined: dict[tuple[Any, Any], tuple[FrameKey, set[str]]] = {}
        sizes: dict[tuple[Any, Any], int] = {}  # the label files' bytes on disk
        for u in units:
            f = u.query.frame
            if f.join is None:
                continue
            exprs = [e for of in u.parts.values() for e in of.exprs("x").values()]
            names = set(root_names(exprs + group_keys(u)))
            if f.filter:
                names |= set(root_names([compile_sql(f.filter).expr]))
            _, seen = joined.setdefault((f.join, f.label_cutoff), (f, set()))
            seen |= names
            if u.watch is not None and u.watch.files is not None:
                on_disk = sum(info.size for info in u.watch.files.values())
                sizes[(f.join, f.label_cutoff)] = on_disk
        for key, names in joined.values():
            at = (key.join, key.label_cutoff)
            if at in self.plan.frames.known_labels or at in self.spilled:
                continue
            size = sizes.get(at, 0)
            parts = max(1, -(-size // LABEL_PART_BYTES))
            # unreadable labels: each batch then reads them lazily and fails, and
            # its units run in a single pass, whose error names the file
            with contextlib.suppress(NoFiles, DataError, OSError, *POLARS_ERRORS):
                if size <= LABELS_IN_MEMORY:
                    labels_once(self.plan.frames, key, sorted(names), parts)
                else:  # on disk, narrowed to each batch's keys
                    spill = self.spill_dir()
                    split = self.split_labels(key, sorted(names), parts, spill)
                    self.spilled[at] = labels_once(
                        self.plan.frames, key, sorted(names), parts, spill, split
                    )

    def split_labels(
        self, key: FrameKey, names: list[str], parts: int, spill: Path
    ) -> list[pl.LazyFrame]:
        """The label rows of ``key``'s join (its key, time and the columns in
        ``names``) split into ``parts`` by :func:`~rulesengine.engine.frames.label_part`,
        in one pass over the label files (batch by batch) written to ``spill``: one
        scan per part, instead of a filtered scan of every file for each part."""
        from rulesengine.engine.frames import label_part

        assert key.join is not None
        source = self.model.sources[key.join.source]
        on = list(key.join.on)
        have = self.plan.frames.schemas[source.name]
        keep = [c for c in dict.fromkeys([*on, source.timestamp, *names]) if c and c in have]
        files = current_files(source)
        shape = self.shape(source.name)
        chunks: list[list[Path]] = [[] for _ in range(parts)]
        for i, batch in enumerate(size_batches(sorted(files), files, BATCH_BYTES)):
            rows = subset_scan(source, batch, shape).select(keep)
            rows = rows.with_columns(label_part(on, parts).alias(PART)).collect()
            for (p,), piece in rows.partition_by(PART, as_dict=True, include_key=False).items():
                path = spill / f"raw-{p:05d}-{i:05d}.parquet"
                piece.write_parquet(path)
                chunks[p].append(path)
            del rows
        empty = pl.LazyFrame(schema={c: have[c] for c in keep})
        return [pl.scan_parquet(c) if c else empty for c in chunks]

    def spill_dir(self) -> Path:
        """A folder of this call's own under the model's cache folder (deleted by
        :meth:`close`; one left by a process that died is deleted by the next
        call that finds it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob(f"{SPILL}*"):
            pid = old.name[len(SPILL) :].split("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{SPILL}{os.getpid()}-", dir=self.dir))
        self.spills.append(folder)
        return folder

    def close(self) -> None:
        """Delete this call's spilled labels."""
        for folder in self.spills:
            shutil.rmtree(folder, ignore_errors=True)
        self.spills.clear()

    def batch_labels(self, source: str, files: list[str], members: list[Unit]) -> dict[Any, Any]:
        """For the label joins of ``members`` whose labels were spilled to disk,
        the labels of the join keys found in ``files`` alone (a semi-join on the
        streaming engine, which holds the keys rather than the labels), to stand
        in for all labels in the batch's frames."""
        out: dict[Any, Any] = {}
        spec = self.model.sources[source]
        for u in members:
            f = u.query.frame
            at = (f.join, f.label_cutoff)
            if f.join is None or at not in self.spilled or at in out:
                continue
            on = list(f.join.on)
            keys = subset_scan(spec, files, self.shape(source)).select(on).unique().collect()
            labels = self.spilled[at]
            if len(on) == 1 and keys.height and keys.schema[on[0]].is_integer():
                # the batch's key range: row groups of spilled labels outside it
                # are skipped by their statistics (the parts are sorted by key)
                k = pl.col(on[0])
                low, high = keys.get_column(on[0]).min(), keys.get_column(on[0]).max()
                if low is not None and high is not None:
                    labels = labels.filter(k.is_between(low, high))
            got = labels.join(keys.lazy(), on=on, how="semi", nulls_equal=False)
            out[at] = got.collect(engine="streaming").lazy()
        return out

    def compute_batch(
        self, source: str, tasks: list[tuple[list[str], list[Unit]]], lo: datetime, lo_b: int
    ) -> list[Unit] | None:
        """Collect one batch of (files, units) and store each unit's entries for
        those files; the units whose entries failed, or None when the batch as a
        whole failed. The local collector gets one query per file and unit, each
        grouped without the file's path (a query over several files grouped by
        each row's path held six times the memory at 20M rows, see docs/scaling.md
        "Memory at scale"); a cluster's collector one query per task."""
        spec = self.model.sources[source]
        per_file = self.collect is local_collect
        lazies, owners = [], []
        files_of: dict[int, list[str]] = {}
        for part, members in tasks:
            try:
                if per_file:
                    scans = [(p, subset_scan(spec, [p], self.shape(source))) for p in part]
                else:
                    scans = [(None, subset_scan(spec, part, self.shape(source)))]
            except (NoFiles, *POLARS_ERRORS):
                return None
            try:
                labels = self.batch_labels(source, part, members) if self.spilled else {}
            except (NoFiles, OSError, *POLARS_ERRORS):
                return None
            for path, scan in scans:
                frames = copy.copy(self.plan.frames)
                frames.base = {**frames.base, source: scan}
                frames.frames = {}
                frames.known_labels = {**frames.known_labels, **labels}
                for u in members:
                    files_of.setdefault(id(u), []).extend(part if path is None else [path])
                    try:
                        lazies.append(self.partial_query(frames, u, lo, path))
                        owners.append((u, False, path))
                        if u.keys is not None:  # a label join: each file's join keys
                            lazies.append(self.keys_query(frames, u, lo, path))
                            owners.append((u, True, path))
                    except POLARS_ERRORS:
                        return None
        try:
            big = per_file and len(tasks) == 1 and len(tasks[0][0]) == 1
            if big and self.files[tasks[0][0][0]][0] >= BATCH_BYTES // 2:
                # a large file alone: its queries one after another (each unit's
                # columns in memory at a time: 20 % less peak at 2M rows a file)
                results = [df for lf in lazies for df in self.collect([lf])]
            else:
                results = self.collect(lazies)
        except POLARS_ERRORS:
            return None
        states: dict[int, list[pl.DataFrame]] = {}
        hashes: dict[int, dict[str, Any]] = {}
        for (u, keys, path), df in zip(owners, results, strict=True):
            if not keys:
                states.setdefault(id(u), []).append(df)
            elif path is not None:
                hashes.setdefault(id(u), {})[path] = df.get_column(HASH)
            else:
                by_file = df.partition_by(FILE_COLUMN, as_dict=True, include_key=False)
                got = {k[0]: v.get_column(HASH) for k, v in by_file.items()}
                hashes.setdefault(id(u), {}).update(got)
        del results
        failed = []
        for u in {id(u): u for u, _, _ in owners}.values():
            try:
                df = pl.concat(states.pop(id(u)), how="vertical")
                keyed = hashes.pop(id(u), {}) if u.keys is not None else None
                self.store(u, df, lo_b, keyed, files_of[id(u)])
            except (NotExact, *POLARS_ERRORS):
                failed.append(u)
        return failed

    def partial_query(
        self, frames: Any, u: Unit, lo: datetime, path: str | None = None
    ) -> pl.LazyFrame:
        """``u``'s partial states per file (``path``: of the one file scanned),
        time bucket[, partition date] and ``u``'s keys."""
        f = u.query.frame
        source = self.model.sources[f.source]
        assert source.timestamp is not None
        lf = frames.frame(replace(f, start=lo, end=None))
        keys = [bucket_expr(source.timestamp, self.width).alias(TB)]
        if _pdate_bounds(self.plan, f) is not None:
            keys.append(pl.col(source.partition_date).alias(PDATE))  # type: ignore[arg-type]
        if path is None:
            return lf.group_by([pl.col(FILE_COLUMN), *keys, *group_keys(u)]).agg(part_exprs(u))
        out = lf.group_by(keys + group_keys(u)).agg(part_exprs(u))
        return out.with_columns(pl.lit(path, dtype=pl.String).alias(FILE_COLUMN))

    def keys_query(
        self, frames: Any, u: Unit, lo: datetime, path: str | None = None
    ) -> pl.LazyFrame:
        """The join keys (as hashes) of the rows an entry covers: of the one file
        ``path``, or per file."""
        f = u.query.frame
        assert u.keys is not None
        lf = frames.frame(FrameKey(f.source, lo, None, f.filter)).filter(has_key(u.keys))
        if path is not None:
            return lf.select(key_hash(u.keys)).unique()
        return lf.select(pl.col(FILE_COLUMN), key_hash(u.keys)).unique()

    def store(
        self,
        u: Unit,
        df: pl.DataFrame,
        lo_b: int,
        keys: Mapping[str, Any] | None,
        files: Sequence[str],
    ) -> None:
        """Split a partial result over ``files`` by file into entries and write them
        (a file without rows gets an empty entry); ``keys``: per file, the join
        keys' hashes (a label join)."""
        key_names = [*u.query.segment_by, *([BUCKET] if u.by is not None else [])]
        key_schema = {k: df.schema[k] for k in key_names}
        made: dict[str, Entry] = {}
        df = _in_order(df, [FILE_COLUMN, TB, PDATE, *key_names])
        keys_of, states_of = states_by_row(u, df, key_names)
        pdates = df.get_column(PDATE).to_list() if PDATE in df.columns else [None] * df.height
        groups = zip(
            df.get_column(FILE_COLUMN).to_list(),
            df.get_column(TB).to_list(),
            pdates,
            keys_of,
            states_of,
            strict=True,
        )
        for path, bucket, pdate, key, states in groups:
            entry = made.get(path)
            if entry is None:
                entry = made[path] = Entry(path, (0, 0), lo_b, key_schema)
            entry.buckets.append(bucket)
            entry.pdates.append(pdate)
            entry.keys.append(key)
            entry.states.append(states)
        # the identities seen before the scan: a file changed since is recomputed next time
        for path in files:
            entry = made.get(path) or Entry(path, (0, 0), lo_b, key_schema)
            entry.identity = self.files[path]
            entry.token = secrets.token_hex(8)
            if keys is not None:
                got = keys.get(path)
                entry.join_keys = unique_sorted([] if got is None else got)
            self.entries[id(u)][path] = entry
            where = entry_path(self.folder(u), path)
            self.written += _STORE.save(where, entry, u.part_ids)
            self.hold(where, entry)

    def edge_queries(self, u: Unit) -> list[pl.LazyFrame]:
        """The rows of ``u``'s window in its edge buckets (off the grid), read
        fresh from the files whose entries hold rows in those buckets, grouped by
        ``u``'s keys: the window's frame (its filter, partition dates and label
        join as the single pass has them) over those files and times alone."""
        f = u.query.frame
        assert f.start is not None and f.end is not None
        source = self.model.sources[f.source]
        assert source.timestamp is not None
        cover_lo, inner_lo, inner_hi, _ = self.spans(f)
        step = self.width // US
        edges = []
        if cover_lo < inner_lo:  # start off the grid: (start, inner_lo·width]
            edges.append((cover_lo, f.start, EPOCH + US * (inner_lo * step)))
        if micros(f.end) % step:  # end off the grid: (inner_hi·width, end]
            edges.append((inner_hi, EPOCH + US * (inner_hi * step), f.end))
        out = []
        ts = pl.col(source.timestamp)
        for bucket, lo, hi in edges:
            files = sorted(p for p, e in self.entries[id(u)].items() if bucket in e.buckets)
            if not files:
                continue
            frames = copy.copy(self.plan.frames)
            scan = subset_scan(source, files, self.shape(f.source))
            frames.base = {**frames.base, f.source: scan.filter((ts > lo) & (ts <= hi))}
            frames.frames = {}
            if self.spilled:
                labels = self.batch_labels(f.source, files, [u])
                frames.known_labels = {**frames.known_labels, **labels}
            keys = group_keys(u) or [pl.lit(1).alias(ALL)]
            out.append(frames.frame(f).group_by(keys).agg(part_exprs(u)))
        return out

    def take_edges(self, u: Unit, dfs: list[pl.DataFrame]) -> None:
        key_names = [*u.query.segment_by, *([BUCKET] if u.by is not None else [])]
        edges: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for df in dfs:
            keys, states = states_by_row(u, _in_order(df, key_names), key_names)
            edges.extend(zip(keys, states, strict=True))
        self.edges[id(u)] = edges

    def hold(self, where: Path, entry: Entry) -> None:
        """Count ``entry`` as held in memory by this call; beyond ``KEEP_BYTES``
        release its states and join keys (they stay on disk, and :meth:`merged`
        reads them again one entry at a time), so a window of many large entries
        does not hold them all at once."""
        if entry.released:
            return
        self.held += entry.nbytes
        if self.held > KEEP_BYTES:
            _STORE.drop(where)
            entry.release()

    def full(self, u: Unit, entry: Entry) -> Entry:
        """``entry`` with its states: itself, or (released) read again from disk;
        NotExact (a single pass) when the file on disk is no longer that entry."""
        if not entry.released:
            return entry
        got = _STORE.read(entry_path(self.folder(u), entry.path), u.part_ids)
        if got is None or got.token != entry.token or got.identity != entry.identity:
            raise NotExact("a cache entry changed on disk during the evaluation")
        return got

    def needed_files(self, u: Unit, files: dict[str, Identity]) -> list[str]:
        return [p for p in files if p not in self.entries[id(u)]]

    def merged(self, u: Unit) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The states of the window's buckets, merged per key, with the edges' (see
        :meth:`edge_queries`). An entry whose buckets all lie in the window adds
        its states merged once per key (kept with the entry: a file inside the
        window costs one merge per key)."""
        if id(u) in self.merges:
            return self.merges[id(u)]
        f = u.query.frame
        _, lo_b, hi_b, _ = self.spans(f)
        days = _pdate_bounds(self.plan, f)

        def inside(b: int, pd: Any) -> bool:
            if not lo_b <= b < hi_b:
                return False
            return days is None or (pd is not None and days[0] <= pd <= days[1])

        found: dict[tuple[Any, ...], dict[str, list[Any]]] = {}

        def add(key: tuple[Any, ...], states: Mapping[str, Any]) -> None:
            target = found.setdefault(key, {})
            for pid, state in states.items():
                xs = target.setdefault(pid, [])
                xs.append(state)
                if len(xs) >= FOLD:  # merged as they come: a bounded list per key
                    xs[:] = [merge_list(xs)]

        entries = self.entries[id(u)]
        for kept in (entries[path] for path in sorted(entries)):  # one order, every call
            if not any(inside(b, pd) for b, pd in zip(kept.buckets, kept.pdates, strict=True)):
                continue
            entry = self.full(u, kept)
            rows = list(zip(entry.buckets, entry.pdates, entry.keys, entry.states, strict=True))
            if rows and all(inside(b, pd) for b, pd, _, _ in rows):
                collapsed = entry.collapsed
                if collapsed is None:
                    groups: dict[tuple[Any, ...], dict[str, list[Any]]] = {}
                    for _, _, key, states in rows:
                        for pid, state in states.items():
                            groups.setdefault(key, {}).setdefault(pid, []).append(state)
                    collapsed = {
                        key: {pid: merge_list(xs) for pid, xs in parts.items()}
                        for key, parts in groups.items()
                    }
                    if entry is kept:  # kept with an entry held in memory
                        entry.collapsed = collapsed
                for key, states in collapsed.items():
                    add(key, states)
                continue
            for b, pd, key, states in rows:
                if inside(b, pd):
                    add(key, states)
        for key, states in self.edges.get(id(u), []):
            add(key, states)
        self.merges[id(u)] = {
            key: {pid: merge_list(xs) for pid, xs in parts.items()} for key, parts in found.items()
        }
        return self.merges[id(u)]

    def frame_of(self, u: Unit, failed: set[str] | None = None) -> pl.DataFrame:
        """The DataFrame ``execute`` gives for ``u``'s query (its decomposed part):
        an overall query hosted by its segmented twin (see :func:`_hosts`) from the
        twin's merged states, merged again across segments."""
        host = self.hosts.get(id(u))
        if host is None:
            return frame_from_states(u, self.merged(u), failed)
        segments = len(host.query.segment_by)
        found: dict[tuple[Any, ...], dict[str, list[Any]]] = {}
        for key, states in self.merged(host).items():
            target = found.setdefault(key[segments:], {})  # () or (bucket,)
            for pid in u.parts:
                target.setdefault(pid, []).append(states[pid])
        return frame_from_states(
            u,
            {key: {p: merge_list(xs) for p, xs in parts.items()} for key, parts in found.items()},
            failed,
        )


def _partitions(files: list[str], size: int | None) -> list[list[str]]:
    """``files`` in runs of at most ``size`` (all together without a size)."""
    if not size or len(files) <= size:
        return [files]
    return [files[i : i + size] for i in range(0, len(files), size)]
