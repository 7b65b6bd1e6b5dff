"""Thresholds derived from a reference: the monitor's value chunk by chunk.

A monitor with ``thresholds_from: {source, chunk}`` is evaluated over that
source, read whole, cut into chunks: ``rows: N`` (N consecutive rows of the
source in read order, counted before ``filter`` and the label join; per segment,
N consecutive rows of the segment; a last chunk of fewer than N rows is
dropped) or ``every: 1d`` (periods of the source's timestamp aligned to the Unix
epoch; rows without a timestamp are dropped). Each chunk's value comes from the
monitor type's own ``needs`` and ``score``, bound into queries grouped by chunk
(and by segment and chunk), so a chunk means what a window means. A chunk the
window would call ``no_data`` or ``insufficient_data`` (no rows, fewer than
``min_rows``, an undefined value) has no value and is left out.

The chunk values (not the bands) are kept in ``<cache>/derived/<key>.json``,
keyed by the fingerprint (path, size, mtime) of the reference's files and of a
joined label source's, and by every setting that shapes a chunk's value; a
changed file or setting gives a new key. References on object storage are not
cached. :mod:`rulesengine.engine.thresholds` turns the values into bands.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.engine.execute import execute
from rulesengine.engine.files import local_files
from rulesengine.engine.plan import Binding, MonitorPlan, Plan, _Queries
from rulesengine.engine.results import reported
from rulesengine.engine.score import _binding_rows, _role_values
from rulesengine.engine.sources import POLARS_ERRORS, reason
from rulesengine.monitors.base import ROWS, EvalContext, MonitorType, Undefined, finite
from rulesengine.spec.model import MonitorSpec

CACHE_VERSION = 1
CHUNK = "__chunk"  # a row's chunk over the whole reference
SEG_CHUNK = "__seg_chunk"  # a row's chunk among its segment's rows
# settings that do not shape a chunk's value
_NOT_SHAPING = {"name", "thresholds", "alert", "labels", "runbook", "description"}
_NOT_SHAPING |= {"enabled", "path", "bounds", "segments", "window", "delay"}


def segment_id(segment: Sequence[Any]) -> str:
    """A segment's key as text, the same for fresh and cached chunk values."""
    return json.dumps([str(v) for v in segment])


@dataclass(frozen=True)
class ChunkValues:
    """A monitor's value per reference chunk: overall, and per segment (by
    :func:`segment_id`). ``dropped`` counts chunks without a value."""

    source: str
    chunk: Mapping[str, Any]
    overall: tuple[float, ...]
    segments: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    dropped: int = 0
    cache: str = "none"  # hit | miss | none (not cached)

    def values(self, segment: Sequence[Any]) -> tuple[float, ...] | None:
        """The chunk values of a result's segment (() overall); None if the
        reference has no rows of it."""
        return self.overall if not segment else self.segments.get(segment_id(segment))


def derive(plan: Plan) -> Plan:
    """``plan`` whose context holds, per monitor with derived thresholds, its
    :class:`ChunkValues` or why there are none (a string) in ``ctx.derived``."""
    derived: dict[str, ChunkValues | str] = {}
    for mp in plan.monitors:
        m = mp.monitor
        if not mp.ready or m.thresholds_from is None or not _derives(m):
            continue
        try:
            derived[m.name] = _chunk_values(plan, mp)
        except POLARS_ERRORS as exc:
            derived[m.name] = f"reference '{m.thresholds_from.source}': {reason(exc)}"
    if not derived:
        return plan
    return replace(plan, ctx=replace(plan.ctx, derived=derived))


def _derives(m: MonitorSpec) -> bool:
    return m.thresholds.derives or any(
        t is not None and t.derived is not None for o in m.segments for t in (o.warn, o.critical)
    )


def _chunk_values(plan: Plan, mp: MonitorPlan) -> ChunkValues | str:
    m = mp.monitor
    src = m.thresholds_from
    assert src is not None and mp.type is not None
    slot = _slot(m, plan.ctx)
    kept = _load(slot, src.source, src.chunk()) if slot else None
    if kept is not None:
        return kept
    trouble = next(filter(None, map(plan.frames.problem, _sources(m))), None)
    if trouble is not None:
        return f"reference: {trouble[1]}"
    found = _evaluate(plan, mp)
    if isinstance(found, str):
        return found
    if slot is not None:
        _save(slot, found)
        return replace(found, cache="miss")
    return found


def _sources(m: MonitorSpec) -> list[str]:
    assert m.thresholds_from is not None
    join = getattr(m, "join", None)
    return [m.thresholds_from.source] + ([join.source] if join is not None else [])


def _chunk_columns(m: MonitorSpec, plan: Plan) -> dict[str, pl.Expr]:
    """The chunk of each reference row, overall and within its segment; null for
    a row in a dropped (short) chunk or without a timestamp."""
    src = m.thresholds_from
    assert src is not None
    if src.every is not None:
        ts = plan.model.sources[src.source].timestamp
        step = int(src.every.total_seconds() * 1_000_000)
        period = pl.col(str(ts)).dt.epoch("us") // step
        return {CHUNK: period, SEG_CHUNK: period}
    n = int(src.rows or 1)

    def chunk(over: Sequence[str]) -> pl.Expr:
        index, count = pl.int_range(pl.len()), pl.len()
        if over:
            index, count = index.over(list(over)), count.over(list(over))
        return pl.when(index // n < count // n).then(index // n)

    return {CHUNK: chunk(()), SEG_CHUNK: chunk(m.segment_by)}


def _evaluate(plan: Plan, mp: MonitorPlan) -> ChunkValues | str:
    """The chunk values computed from the reference (one ``collect_all``)."""
    m, mtype = mp.monitor, mp.type
    src = m.thresholds_from
    assert src is not None and mtype is not None
    frames = copy.copy(plan.frames)
    frames.base = {**frames.base}
    frames.base[src.source] = frames.base[src.source].with_columns(**_chunk_columns(m, plan))
    frames.frames = {}
    ref = replace(m, source=src.source)
    queries = _Queries(frames)
    overall: list[Binding] = []
    segmented: list[Binding] = []
    for need in mtype.needs(ref, plan.ctx):
        frame = replace(need.frame, source=src.source, start=None, end=None, label_cutoff=None)
        need = replace(need, frame=frame, segmented=True)
        problem = queries.problem(need, (*m.segment_by, SEG_CHUNK))
        if problem:
            return f"reference '{src.source}': {problem}"
        overall.append(queries.bind(need, (CHUNK,)))
        if m.segment_by:
            segmented.append(queries.bind(need, (*m.segment_by, SEG_CHUNK)))
    collected = execute(queries.finish(), plan.model)
    values, dropped = _score_chunks(mtype, ref, plan.ctx, collected, queries, overall)
    if isinstance(values, str):
        return f"reference '{src.source}': {values}"
    per_segment: dict[str, tuple[float, ...]] = {}
    if segmented:
        by_seg, more = _score_chunks(mtype, ref, plan.ctx, collected, queries, segmented)
        if isinstance(by_seg, str):
            return f"reference '{src.source}': {by_seg}"
        dropped += more
        groups: dict[str, list[tuple[Any, float]]] = {}
        for key, v in by_seg:
            groups.setdefault(segment_id(key[:-1]), []).append((key[-1], v))
        per_segment = {k: tuple(v for _, v in sorted(g)) for k, g in groups.items()}
    ordered = tuple(v for _, v in sorted(values, key=lambda kv: kv[0]))
    return ChunkValues(src.source, src.chunk(), ordered, per_segment, dropped)


def _score_chunks(
    mtype: MonitorType,
    m: MonitorSpec,
    ctx: EvalContext,
    collected: Any,
    queries: _Queries,
    bindings: list[Binding],
) -> tuple[Any, int]:
    """((chunk key, value) for each chunk with a value, chunks dropped); or a
    failed query's message in place of the list."""
    per_role: dict[str, dict[tuple[Any, ...], dict]] = {}
    for b in bindings:
        assert b.segmented is not None
        df = collected[b.segmented]
        if isinstance(df, str):
            return df, 0
        segment_by = queries.queries[b.segmented].segment_by
        per_role[b.role] = _binding_rows(df, b, segment_by)
    keys = {k for rows in per_role.values() for k in rows if k and k[-1] is not None}
    out: list[tuple[Any, float]] = []
    dropped = 0
    for key in keys:
        values: dict[str, dict[str, Any]] = {}
        rows: dict[str, int] = {}
        for b in bindings:
            row = per_role[b.role].get(key)
            values[b.role] = _role_values(b, row, b.segmented_names)
            rows[b.role] = int(row[ROWS]) if row else 0
        value = chunk_value(mtype, m, values, rows, ctx)
        if value is None:
            dropped += 1
        else:
            out.append((key, value))
    return out, dropped


def chunk_value(
    mtype: MonitorType,
    m: MonitorSpec,
    values: dict[str, dict[str, Any]],
    rows: dict[str, int],
    ctx: EvalContext,
) -> float | None:
    """One chunk's value, guarded as a window's is (engine/score.py): None where
    the window would be no_data or insufficient_data."""
    main = rows.get("main", 0)
    empty_ok = mtype.zero_rows_ok(m)
    if not empty_ok and main == 0:
        return None
    guarded = (main > 0 or not empty_ok) and mtype.min_rows_apply(m)
    if guarded and mtype.guard_rows(m, rows) < m.min_rows:
        return None
    try:
        scored = mtype.score_all(m, values, rows, ctx, ())[0]
    except Undefined:
        return None
    value = finite(scored.value)
    if scored.status is not None or value is None:
        return None
    return reported(value)


# ------------------------------------------------------------------ the cache


def _slot(m: MonitorSpec, ctx: EvalContext) -> Path | None:
    """The cache file of ``m``'s chunk values; None when not cached (no cache
    folder, or a source on object storage)."""
    if ctx.cache_dir is None:
        return None
    prints = []
    for name in _sources(m):
        source = ctx.model.sources[name]
        files = local_files(source)
        if files is None:
            return None
        try:
            prints.append([name, [[f, *_stat(f)] for f in files]])
        except OSError:
            return None
    shaping = {f.name: getattr(m, f.name) for f in fields(m) if f.name not in _NOT_SHAPING}
    sources = {n: ctx.model.sources[n] for n in _sources(m)}
    text = json.dumps(
        {"v": CACHE_VERSION, "files": prints, "monitor": shaping, "sources": sources},
        sort_keys=True,
        default=repr,
    )
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    return ctx.cache_dir / "derived" / f"{key}.json"


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _load(path: Path, source: str, chunk: Mapping[str, Any]) -> ChunkValues | None:
    """The kept chunk values, or None if absent or unreadable (then computed)."""
    try:
        data = json.loads(path.read_text("utf-8"))
        return ChunkValues(
            source,
            chunk,
            tuple(float(v) for v in data["overall"]),
            {k: tuple(float(v) for v in vs) for k, vs in data["segments"].items()},
            int(data["dropped"]),
            cache="hit",
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _save(path: Path, found: ChunkValues) -> None:
    """Keep the chunk values (written whole, then renamed into place)."""
    data = {
        "overall": list(found.overall),
        "segments": {k: list(v) for k, v in found.segments.items()},
        "dropped": found.dropped,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        return  # a cache that cannot be written: computed again next time
