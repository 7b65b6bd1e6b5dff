"""Incremental evaluation: a window's queries answered from cached partial states.

:func:`execute_incremental` is a drop-in for
:func:`~rulesengine.engine.execute.execute` over a window plan. For each query
whose aggregates have declared decompositions (:mod:`rulesengine.monitors.aggs`)
and whose frame can be cached, it computes partial states per (source file,
time bucket, segment keys[, per-row key]) for the files that are new or changed
since they were cached, reads the cached states of the others, merges the
buckets inside the window, finalises each aggregate, and builds the DataFrame
``execute`` would have returned for that query: the same key columns,
``__rows`` and aggregate names, so ``score`` runs unchanged. Every other query
runs through ``execute`` as before. See docs/scaling.md, "Incremental
evaluation".

Wiring (one call)::

    plan = plan_model(model, at, profile_cache_dir)
    # instead of execute(plan.queries, model):
    frames = execute_incremental(plan, model, partials_dir)
    results = score(plan, frames)

with ``partials_dir = Path(config.engine.state).parent / "partials"`` beside the
profile cache, and ``execute(plan.queries, model)`` kept for ``run --no-cache``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.engine.execute import Collected, execute
from rulesengine.engine.partial_cache import (
    DEFAULT_MAX_BYTES,
    SUFFIX,
    enforce_bound,
    entry_path,
)
from rulesengine.engine.partial_labels import (
    Ledger,
    key_dtypes,
    write_ledger,
)
from rulesengine.engine.partial_run import (
    _STORE,
    Collect,
    Report,
    Run,
    _schema_text,
    local_collect,
    spans,
)
from rulesengine.engine.partial_scan import (
    current_files,
)
from rulesengine.engine.partial_units import (
    ROWS_PART,
    Unit,
    units_of,
)
from rulesengine.engine.plan import CELL_COUNT, ROWS, Plan, Query, expr_key
from rulesengine.engine.sources import POLARS_ERRORS, NoFiles
from rulesengine.monitors.aggs import NotExact
from rulesengine.spec.model import ModelSpec

Whole = Callable[[Sequence[Query], ModelSpec], Collected]
CACHE_FORMAT = 2  # part of every fingerprint: a new format never reads old entries
SWEEP_EVERY = 600.0  # seconds between two measurements of a model's cache folder
_SWEPT: dict[Path, tuple[float, int]] = {}  # model folder → (when measured, bytes then)
_WRITTEN: dict[Path, int] = {}  # model folder → bytes written since


def _frame_problem(plan: Plan, q: Query, width: Any) -> str | None:
    """Why ``q``'s frame cannot be cached, if so."""
    from rulesengine.engine.partial_scan import etag_listable

    f = q.frame
    source = plan.model.sources[f.source]
    if source.timestamp is None:
        return "static source"
    if source.is_remote and not etag_listable(source):
        return "remote path without an ETag listing (not S3, GCS or Azure)"
    if f.start is None or f.end is None:
        return "open window"
    _, inner_lo, inner_hi, _ = spans(f, width)
    if inner_lo > inner_hi:  # a bucket holds both edges: nothing to take from the cache
        return f"window inside one {width} bucket"
    if f.join is not None:
        labels = plan.model.sources[f.join.source]
        if f.join.source == f.source:
            return "labels from the window's own source"
        if labels.is_remote and not etag_listable(labels):
            return "labels at a remote path without an ETag listing (not S3, GCS or Azure)"
        schemas = plan.frames.schemas
        if key_dtypes(schemas.get(f.source), schemas.get(f.join.source), f.join.on) is None:
            return "join keys without a common dtype"
    return None


def _fingerprint(plan: Plan, unit: Unit, width: Any) -> str:
    f = unit.query.frame
    source = plan.model.sources[f.source]
    shape = {
        "format": CACHE_FORMAT,
        "source": [source.name, source.path, source.format, source.separator],
        "timestamp": [source.timestamp, source.timezone, source.timestamp_unit],
        "hive": [source.hive_partitioning, source.partition_date],
        "schema": _schema_text(plan, source.name),
        "filter": f.filter,
        "segments": list(unit.query.segment_by),
        "by": expr_key(unit.by) if unit.by is not None else None,
        "parts": unit.part_ids,
        "width": width.total_seconds(),
    }
    if f.join is not None:  # which labels, joined how, known how long before `at`
        labels = plan.model.sources[f.join.source]
        lag = None if f.label_cutoff is None else (plan.at - f.label_cutoff).total_seconds()
        shape["join"] = {
            "on": list(f.join.on),
            "how": f.how,
            "lag": lag,
            "source": [labels.name, labels.path, labels.format, labels.separator],
            "timestamp": [labels.timestamp, labels.timezone, labels.timestamp_unit],
            "hive": [labels.hive_partitioning, labels.partition_date],
            "schema": _schema_text(plan, labels.name),
            "polars": pl.__version__,  # key hashes are stable within one version
        }
    return hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()[:24]


def _select_frame(q: Query, units: list[Unit], run: Run) -> pl.DataFrame:
    """A select query's index columns as counts per cell: per index column ``c``
    the cells and, in ``c + CELL_COUNT``, their rows (the scorer only counts the
    cells; repeating each index by its count held 1.6 GB at 200M rows). Columns
    with fewer cells are padded with cells of no rows."""
    schema = q.lazy.collect_schema()  # type: ignore[union-attr]
    found: list[tuple[str, list[int], list[int]]] = []
    for u in units:
        merged = run.merged(u)
        cells = sorted(k[0] for k in merged)
        counts = [int(merged[(c,)][ROWS_PART].total) for c in cells]
        assert u.column is not None
        found.append((u.column, cells, counts))
    height = max((len(cells) for _, cells, _ in found), default=0)
    cols = []
    for name, cells, counts in found:
        pad = height - len(cells)
        cols.append(pl.Series(name, [*cells, *([0] * pad)]).cast(schema[name]))
        cols.append(pl.Series(name + CELL_COUNT, [*counts, *([0] * pad)], dtype=pl.Int64))
    return pl.DataFrame(cols)


def execute_incremental(
    plan: Plan,
    model: ModelSpec,
    cache_dir: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    report: Report | None = None,
    collect: Collect = local_collect,
    files_per_task: int | None = None,
    whole: Whole = execute,
) -> Collected:
    """The window plan's queries collected as :func:`execute` collects them, from
    cached partial states where possible (see the module's docstring for the
    wiring). ``cache_dir`` holds one folder per model, at most ``max_bytes``
    each; ``report`` (if given) says what ran how and which files were read.

    ``collect`` runs the partial queries of the new files (default: in this
    process, :func:`local_collect`; a cluster's collector runs each on a worker),
    each over at most ``files_per_task`` files (default: one query over all of
    them). It returns one frame per query, in order, or raises a Polars error.
    ``whole`` runs the queries that need a single pass (default :func:`execute`,
    with its retries and culprit files)."""
    report = report if report is not None else Report()
    run = Run(plan, model, cache_dir, report, collect, files_per_task)
    try:
        return _execute(run, plan, model, report, max_bytes, whole)
    finally:
        run.close()


def _execute(
    run: Run, plan: Plan, model: ModelSpec, report: Report, max_bytes: int, whole: Whole
) -> Collected:
    """:func:`execute_incremental`'s body (its caller deletes spilled labels)."""
    single: list[int] = []
    units: list[Unit] = []
    leftovers: dict[int, dict[str, pl.Expr]] = {}
    for i, q in enumerate(plan.queries):
        why = _frame_problem(plan, q, run.width)
        got = why or units_of(plan, i, q)
        if isinstance(got, str):
            report.queries[i] = got
            single.append(i)
            continue
        qunits, left = got
        for u in qunits:
            u.fingerprint = _fingerprint(plan, u, run.width)
            if q.frame.join is not None:
                schemas = plan.frames.schemas
                u.keys = key_dtypes(
                    schemas.get(q.frame.source), schemas.get(q.frame.join.source), q.frame.join.on
                )
        units += qunits
        if left:
            leftovers[i] = left
    hosts = _hosts(plan, run, units)
    hosted = [u for u in units if id(u) not in hosts]
    run.units = hosted
    failed = _compute_all(run, hosted)
    failed += _edges_all(run, [u for u in hosted if id(u) not in {id(x) for x in failed}])
    down = {id(u) for u in failed}
    failed += [u for u in units if id(u) in hosts and id(hosts[id(u)]) in down]
    run.hosts = hosts
    report.shared = len(hosts)
    for u in failed:
        report.queries[u.index] = "partials failed"
        if u.index not in single:
            single.append(u.index)
    frames: dict[int, pl.DataFrame | str] = {}
    lost: dict[int, dict[str, str]] = {}
    by_query: dict[int, list[Unit]] = {}
    for u in units:
        if u.index not in single:
            by_query.setdefault(u.index, []).append(u)
    for i, qunits in list(by_query.items()):
        q = plan.queries[i]
        try:
            inexact: set[str] = set()  # aggregates whose states cannot give their value
            frames[i] = (
                _select_frame(q, qunits, run) if q.select else run.frame_of(qunits[0], inexact)
            )
            report.queries[i] = "partials"
            if inexact:  # those alone in a single pass, joined to the rest
                leftovers[i] = {**leftovers.get(i, {}), **{n: q.aggs[n] for n in inexact}}
            if leftovers.get(i):  # undecomposed or inexact aggregates
                report.queries[i] = f"partials; single pass for {', '.join(sorted(leftovers[i]))}"
        except (NotExact, *POLARS_ERRORS) as exc:
            report.queries[i] = f"single pass: {type(exc).__name__}"
            single.append(i)
            del by_query[i]
    _single_pass(plan, model, single, leftovers, by_query, frames, lost, whole)
    _ledgers(run, [u for u in hosted if id(u) not in {id(x) for x in failed}])
    _evict(run, hosted, max_bytes)
    report.corrupt = list(_STORE.corrupt)
    _STORE.corrupt.clear()
    return Collected([frames[i] for i in range(len(plan.queries))], lost)


def _hosts(plan: Plan, run: Run, units: list[Unit]) -> dict[int, Unit]:
    """Overall units that need no states of their own: per overall unit (by
    identity), a segmented unit of the same frame and per-row key. Its groups
    partition the same rows (Polars keeps null segment keys as a group), so
    merging its states across segments gives the overall states; it takes on the
    overall unit's parts it lacks, and its fingerprint follows. Value counts are
    then computed and cached once instead of twice."""
    twins: dict[tuple[Any, ...], Unit] = {}
    for u in units:
        if u.query.segment_by and u.column is None:
            by = expr_key(u.by) if u.by is not None else None
            twins.setdefault((u.query.frame, by), u)
    hosts: dict[int, Unit] = {}
    for u in units:
        if u.query.segment_by or u.column is not None:
            continue
        host = twins.get((u.query.frame, expr_key(u.by) if u.by is not None else None))
        if host is None:
            continue
        for pid, of in u.parts.items():
            host.parts.setdefault(pid, of)
        hosts[id(u)] = host
    for host in {id(h): h for h in hosts.values()}.values():
        host.fingerprint = _fingerprint(plan, host, run.width)
    return hosts


def _edges_all(run: Run, units: list[Unit]) -> list[Unit]:
    """Scan the edges of every window off the bucket grid, in one batch; the units
    whose edges failed (their queries run in a single pass)."""
    lazies: list[pl.LazyFrame] = []
    owners: list[Unit] = []
    failed: list[Unit] = []
    for u in units:
        try:
            got = run.edge_queries(u)
        except (NoFiles, OSError, *POLARS_ERRORS):
            failed.append(u)
            continue
        lazies += got
        owners += [u] * len(got)
    if not lazies:
        return failed
    per_unit: dict[int, list[pl.DataFrame]] = {}
    try:
        results = run.collect(lazies)
    except POLARS_ERRORS:  # unit by unit, so that one failing edge fails its unit only
        results = None
        for u in {id(u): u for u in owners}.values():
            mine = [lf for lf, o in zip(lazies, owners, strict=True) if o is u]
            try:
                per_unit[id(u)] = run.collect(mine)
            except POLARS_ERRORS:
                failed.append(u)
    if results is not None:
        for u, df in zip(owners, results, strict=True):
            per_unit.setdefault(id(u), []).append(df)
    for u in {id(u): u for u in owners}.values():
        if id(u) not in per_unit:
            continue
        try:
            run.take_edges(u, per_unit[id(u)])
        except (NotExact, *POLARS_ERRORS):
            failed.append(u)
    run.report.edges += len(lazies)
    bad = {u.index for u in failed}
    return [u for u in units if u.index in bad]


def _ledgers(run: Run, units: list[Unit]) -> None:
    """For each label join's folder: the label version its entries were checked
    against now, and the tokens of those entries; then drop the summaries of
    label files that are gone."""
    for u in units:
        if u.version is None or id(u) not in run.entries:
            continue
        claims = {path: e.token for path, e in run.entries[id(u)].items()}
        with contextlib.suppress(OSError):  # no ledger: the next call recomputes, never trusts
            write_ledger(run.folder(u), Ledger(u.version, claims))
    for watch in run.watches.values():
        watch.sweep()
        if watch.read:
            source = watch.spec.name
            run.report.labels[source] = sorted({*run.report.labels.get(source, []), *watch.read})
        run.written += watch.written


def _compute_all(run: Run, units: list[Unit]) -> list[Unit]:
    """Compute the missing partials of every unit, source by source; the units
    that failed."""
    failed: list[Unit] = []
    by_source: dict[str, list[Unit]] = {}
    for u in units:
        by_source.setdefault(u.query.frame.source, []).append(u)
    for source, members in by_source.items():
        try:
            files = current_files(run.model.sources[source])
        except (NoFiles, OSError):
            failed += members
            continue
        need = run.load(members, files)
        for watch in run.watches.values():  # what load needed them for is done
            watch.rows.clear()
        members = [u for u in members if id(u) not in {id(x) for x in run.broken}]
        failed += run.broken + run.compute(source, members, need)
        run.broken = []
    bad = {id(u) for u in failed}
    failed_queries = {u.index for u in failed}
    return [u for u in units if id(u) in bad or u.index in failed_queries]


def _single_pass(
    plan: Plan,
    model: ModelSpec,
    single: Sequence[int],
    leftovers: Mapping[int, Mapping[str, pl.Expr]],
    by_query: Mapping[int, list[Unit]],
    frames: dict[int, pl.DataFrame | str],
    lost: dict[int, dict[str, str]],
    whole: Whole = execute,
) -> None:
    """Run the queries (and the leftover aggregates) that need a single pass,
    through ``whole`` (:func:`execute`, or a cluster's)."""
    todo: list[tuple[int, Query, bool]] = [(i, plan.queries[i], False) for i in single]
    for i, left in leftovers.items():
        if i in by_query:
            todo.append((i, _leftover_query(plan.queries[i], left), True))
    if not todo:
        return
    got = whole([q for _, q, _ in todo], model)
    for k, (i, _q, partial) in enumerate(todo):
        frame = got[k]
        if got.lost.get(k):
            lost[i] = dict(got.lost[k])
        if not partial or isinstance(frame, str):
            frames[i] = frame
            continue
        mine = frames[i]
        assert isinstance(mine, pl.DataFrame)
        on = [c for c in frame.columns if c in mine.columns and c != ROWS]
        frames[i] = frame.join(mine.drop(ROWS), on=on, how="left", nulls_equal=True)


def _leftover_query(q: Query, left: Mapping[str, pl.Expr]) -> Query:
    """``q`` with only the aggregates that have no decomposition."""
    assert q.base is not None
    exprs = [pl.len().alias(ROWS), *(e.alias(n) for n, e in left.items())]
    lazy = q.base.group_by(q.group_keys).agg(exprs)
    return Query(q.frame, q.segment_by, q.by, dict(left), {}, lazy, q.base, q.group_keys)


def _evict(run: Run, units: list[Unit], max_bytes: int) -> None:
    """Trim old buckets, drop entries of files that are gone, bound the size."""
    if not units:
        return
    horizon = min(run.spans(u.query.frame)[0] for u in units)
    span = max(sp[3] - sp[0] for sp in (run.spans(u.query.frame) for u in units))
    used: set[str] = set()
    for u in units:
        folder = run.folder(u)
        for path, entry in run.entries.get(id(u), {}).items():
            where = entry_path(folder, path)
            used.add(str(where))
            # trimmed once its oldest bucket is a further span old, so an entry
            # is rewritten about once per longest window, not at every tick
            if entry.buckets and min(entry.buckets) < horizon - span:
                try:
                    trimmed = run.full(u, entry).trimmed(horizon)
                except NotExact:  # changed on disk meanwhile: its next reader decides
                    continue
                run.written += _STORE.save(where, trimmed, u.part_ids)
                run.report.evicted += 1
    for folder in {run.folder(u) for u in units}:
        for stale in folder.glob(f"*{SUFFIX}"):
            if str(stale) not in used:
                stale.unlink(missing_ok=True)
                run.report.evicted += 1
        _STORE.forget(used, folder)
    for watch in run.watches.values():  # the label summaries this call read
        used |= watch.in_use()
    # the whole folder is measured at the first call of a process, then again only
    # when the bytes written since may have crossed the bound, or after SWEEP_EVERY
    written = run.written + _WRITTEN.get(run.dir, 0)
    last = _SWEPT.get(run.dir)
    if last is None or written > max_bytes - last[1] or time.monotonic() - last[0] > SWEEP_EVERY:
        bounded = enforce_bound(run.dir, max_bytes, used)
        run.report.evicted += len(bounded.deleted)
        if bounded.used_deleted:  # the window's own entries: recomputed next time
            run.report.starved = (bounded.used_deleted, bounded.used_bytes, max_bytes)
        _SWEPT[run.dir] = (time.monotonic(), bounded.total)
        _WRITTEN[run.dir] = 0
    else:
        _WRITTEN[run.dir] = written
