"""Execute a model's plan and score it into results.

``evaluate(config, at)`` is what ``rulesengine run`` does: per model, reference
aggregates first (a small plan), then every monitor's aggregates in one
``pl.collect_all`` (in-memory engine, so queries over the same files share the
scan), with the queries grouped by a per-row key in one of their own before it
(streaming, see :func:`execute`). A failing query is retried alone so one bad
monitor never hides the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rulesengine.engine.plan import (
    ALL,
    BUCKET,
    ROWS,
    Binding,
    MonitorPlan,
    Plan,
    Query,
    compile_model,
    first_line,
    plan_phase,
    root_names,
)
from rulesengine.engine.results import ModelResults, Result, reported
from rulesengine.engine.sources import POLARS_ERRORS, bad_file
from rulesengine.monitors.base import ROWS_BY, SEGMENTS, Scored, Undefined
from rulesengine.spec.model import Config, ModelSpec, Thresholds
from rulesengine.spec.sql import compile_sql

Segment = tuple[Any, ...]


def _columns(model: ModelSpec, q: Query, exprs: list[pl.Expr]) -> list[str]:
    """The columns a query (or some of its aggregates) reads from its sources."""
    frame = q.frame
    keys = [*q.group_keys, *([q.by] if q.by is not None else [])]
    names = set(root_names([*exprs, *keys]))
    if frame.filter:
        names.update(root_names([compile_sql(frame.filter).expr]))
    for name in [frame.source] + ([frame.join.source] if frame.join else []):
        ts = model.sources[name].timestamp
        names.update([ts] if ts else [])
    names.update(frame.join.on if frame.join else ())
    return sorted(names)


class _Culprits:
    """Names the file behind a failed query or aggregate: each file of the query's
    sources is read alone (see :func:`bad_file`); remembered per source and columns,
    so a second failing aggregate over the same columns reads nothing."""

    def __init__(self, model: ModelSpec | None) -> None:
        self.model = model
        self.found: dict[tuple[str, tuple[str, ...]], str | None] = {}

    def __call__(self, q: Query, message: str, exprs: list[pl.Expr]) -> str:
        if self.model is None:
            return message
        columns = tuple(_columns(self.model, q, exprs))
        names = [q.frame.source] + ([q.frame.join.source] if q.frame.join else [])
        for name in names:
            key = (name, columns)
            if key not in self.found:
                self.found[key] = bad_file(self.model.sources[name], columns)
            if self.found[key]:
                return self.found[key]  # type: ignore[return-value]
        return message


def execute(queries: list[Query], model: ModelSpec | None = None) -> list[pl.DataFrame | str]:
    """Collect the queries in two batches; on failure, each alone, so errors stay local.

    Queries grouped by a per-row key (``Query.by``: drift's categories, cells per
    segment) run together on the streaming engine, first, while nothing else is
    held; all others then together on the in-memory engine, whose shared scan they
    reuse. Kept in the in-memory batch, a key of strings made that scan hold whole
    string columns. A failure (a Polars panic too) is retried query by query, then
    aggregate by aggregate, and its message names the file that fails alone."""
    if not queries:
        return []
    batches = ([q for q in queries if q.by is not None], [q for q in queries if q.by is None])
    done: dict[int, pl.DataFrame | str] = {}
    culprit = _Culprits(model)
    for batch, engine in zip(batches, ("streaming", "in-memory"), strict=True):
        if not batch:
            continue
        try:
            frames = pl.collect_all([q.lazy for q in batch], engine=engine)  # type: ignore[misc]
        except POLARS_ERRORS:
            frames = [_alone(q, culprit) for q in batch]
        done.update((id(q), f) for q, f in zip(batch, frames, strict=True))
    return [done[id(q)] for q in queries]


def _alone(q: Query, culprit: _Culprits) -> pl.DataFrame | str:
    """One query collected on its own, then aggregate by aggregate (``Query.split``)."""
    try:
        return q.lazy.collect(engine="in-memory")  # type: ignore[union-attr]
    except POLARS_ERRORS:
        pass
    split = q.split()
    if isinstance(split, str):
        return culprit(q, split, [])
    for name, message in q.failed.items():
        q.failed[name] = culprit(q, message, [q.aggs[name]])
    return split


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts; list cells (samples of values) come as numpy arrays, which is
    far faster and smaller than Python lists for a million values."""
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
    if not lists:
        return list(df.iter_rows(named=True))
    rows = list(df.drop(lists).iter_rows(named=True))
    for c in lists:
        for row, cell in zip(rows, df.get_column(c), strict=True):
            row[c] = None if cell is None else cell.to_numpy()
    return rows


def _rows_by_segment(
    df: pl.DataFrame, segment_by: tuple[str, ...], by: bool = False
) -> dict[Segment, dict]:
    """Rows of a result frame keyed by segment. With a per-row ``by`` key, a
    segment's rows fold into one: each aggregate becomes {bucket: value} (row
    counts per bucket under ``__rows_by``) and ``__rows`` is their total."""
    out: dict[Segment, dict] = {}
    for row in _rows(df):
        key = tuple(row[c] for c in segment_by) if segment_by else ()
        if not by:
            out[key] = row
            continue
        bucket = row[BUCKET]
        folded = out.setdefault(key, {ROWS: 0, ROWS_BY: {}})
        folded[ROWS] += row[ROWS]
        folded[ROWS_BY][bucket] = row[ROWS]
        for name, value in row.items():
            if name not in (ROWS, BUCKET, ALL, *segment_by):
                folded.setdefault(name, {})[bucket] = value
    return out


def _cells_overall(df: pl.DataFrame, b: Binding) -> dict[Segment, dict]:
    """A Cells binding's histogram from its select query: NumPy counts the cells.
    (``to_numpy`` copies the chunked columns into fresh arrays; counting the chunks
    in place was measured slower: reading Polars' pages the first time costs more
    than the copy.)"""
    assert b.cells is not None
    slots = b.cells + 1
    index = df.get_column(b.names["index"]).to_numpy()
    row: dict[str, Any] = {
        ROWS: df.height,
        "counts": np.bincount(index, minlength=slots).astype(float),
        "sums": None,
    }
    if "weights" in b.names:
        weights = df.get_column(b.names["weights"]).to_numpy()
        if b.outer:
            edge = (index == 0) | (index == b.cells - 1)
            row["outer"] = np.sort(weights[edge].astype(float))
        if b.origin and weights.flags.writeable and weights.dtype == np.float64:
            weights = np.subtract(weights, b.origin, out=weights)  # our copy: in place
        elif b.origin:
            weights = weights - b.origin
        row["sums"] = np.bincount(index, weights=weights, minlength=slots)
    return {(): row}


def _cells_by_segment(
    df: pl.DataFrame, segment_by: tuple[str, ...], b: Binding
) -> dict[Segment, dict]:
    """A Cells binding's histograms per segment, from its group_by query (one row
    per segment and cell), folded with NumPy per segment."""
    assert b.cells is not None
    slots = b.cells + 1
    sums = b.segmented_names.get("sums")
    outer = b.segmented_names.get("outer")
    out: dict[Segment, dict] = {}
    for key, part in df.partition_by(list(segment_by), as_dict=True).items():
        cells = part.get_column(BUCKET).to_numpy().astype(np.intp)
        counts = np.zeros(slots)
        counts[cells] = part.get_column(ROWS).to_numpy()
        row: dict[str, Any] = {ROWS: int(counts.sum()), "counts": counts, "sums": None}
        if sums:
            row["sums"] = np.zeros(slots)
            row["sums"][cells] = part.get_column(sums).fill_null(0.0).to_numpy()
        if outer:
            edge = part.filter(pl.col(BUCKET).is_in([0, b.cells - 1])).get_column(outer)
            values = edge.explode().drop_nulls().cast(pl.Float64).to_numpy()
            row["outer"] = np.sort(values)
        out[key] = row
    return out


def _binding_rows(
    df: pl.DataFrame, b: Binding, segment_by: tuple[str, ...] = ()
) -> dict[Segment, dict]:
    """A binding's result frame as rows keyed by segment."""
    if b.cells is None:
        return _rows_by_segment(df, segment_by, b.by)
    if segment_by:
        return _cells_by_segment(df, segment_by, b)
    return _cells_overall(df, b)


def _role_values(b: Binding, row: Mapping[str, Any] | None, names: Mapping[str, str]) -> dict:
    """What a monitor's role sees: its aggregates, with per-bucket rows or cells."""
    if b.cells is not None:
        if row is None:
            return {"counts": np.zeros(b.cells + 1), "sums": None, "outer": np.empty(0)}
        return {"counts": row["counts"], "sums": row["sums"], "outer": row.get("outer")}
    values = _values(row, names)
    if b.by:
        values[ROWS_BY] = row[ROWS_BY] if row else {}
    return values


def _values(row: Mapping[str, Any] | None, names: Mapping[str, str]) -> dict[str, Any]:
    if row is None:
        return {local: None for local in names}
    return {local: row.get(name) for local, name in names.items()}


def status_for(value: float | None, thresholds: Thresholds) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "insufficient_data"
    if thresholds.critical and thresholds.critical.violated(value):
        return "critical"
    if thresholds.warn and thresholds.warn.violated(value):
        return "warn"
    return "ok"


def _failed(queries: list[Query], b: Binding) -> str | None:
    """Why one of a binding's aggregates failed (``Query.failed``), if one did."""
    for i, names in ((b.overall, b.names), (b.segmented, b.segmented_names)):
        q = queries[i] if i is not None else None
        bad = [q.failed[n] for n in names.values() if q and n in q.failed]
        if bad:
            return bad[0]
    return None


class _Scorer:
    def __init__(self, plan: Plan, queries: list[Query], frames: list[pl.DataFrame | str]):
        self.plan = plan
        self.queries = queries
        self.frames = frames
        self.warnings: list[str] = []

    def frame(self, index: int) -> pl.DataFrame | str:
        return self.frames[index]

    def results(self, mp: MonitorPlan) -> list[Result]:
        m = mp.monitor
        base = {
            "monitor": m.name,
            "kind": m.kind,
            "type": m.type,
            "source": m.source,
            "column": mp.type.column(m) if mp.type else getattr(m, "column", None),
            "threshold": m.thresholds.as_dict(),
        }
        main = next((b for b in mp.bindings if b.role == "main"), None)
        window = {}
        if main is not None:
            frame = self.queries[main.overall].frame
            window = {"window_start": frame.start, "window_end": frame.end}
        else:
            start, end = (
                self.plan.ctx.window(m) if m.source in self.plan.model.sources else (None, None)
            )
            window = {"window_start": start, "window_end": end}
        if mp.error:
            return [Result(**base, **window, status="error", details={"error": mp.error})]
        if mp.no_data:
            return [
                Result(**base, **window, status="no_data", rows=0, details={"reason": mp.no_data})
            ]
        failed = [
            self.frame(i)
            for b in mp.bindings
            for i in (b.overall, b.segmented)
            if i is not None and isinstance(self.frame(i), str)
        ]
        failed.extend(f for f in (_failed(self.queries, b) for b in mp.bindings) if f)
        if failed:
            return [Result(**base, **window, status="error", details={"error": failed[0]})]
        per_role: dict[str, tuple[dict[Segment, dict], dict[Segment, dict] | None]] = {}
        for b in mp.bindings:
            overall = _binding_rows(self.frame(b.overall), b)  # type: ignore[arg-type]
            seg = None
            if b.segmented is not None:
                seg = _binding_rows(
                    self.frame(b.segmented),  # type: ignore[arg-type]
                    b,
                    self.queries[b.segmented].segment_by,
                )
            per_role[b.role] = (overall, seg)
        out = self.one(mp, base, window, per_role, ())
        if main is not None and main.segmented is not None:
            size: dict[Segment, int] = {}
            for _overall, seg in per_role.values():  # a segment may lack labelled rows
                for k, row in (seg or {}).items():
                    size[k] = max(size.get(k, 0), int(row[ROWS]))
            keys = sorted(size, key=lambda k: -size[k])
            cap = self.plan.model.evaluation.max_segments
            if len(keys) > cap:
                self.warnings.append(
                    f"monitor '{m.name}': {len(keys)} segments by {', '.join(m.segment_by)}; "
                    f"kept the {cap} largest (evaluation.max_segments)"
                )
                keys = keys[:cap]
            for key in sorted(keys, key=lambda k: tuple(str(x) for x in k)):
                out.extend(self.one(mp, base, window, per_role, key))
        return out

    def one(
        self, mp: MonitorPlan, base: dict, window: dict, per_role: dict, segment: Segment
    ) -> list[Result]:
        m = mp.monitor
        assert mp.type is not None
        values: dict[str, dict[str, Any]] = {}
        rows: dict[str, int] = {}
        for b in mp.bindings:
            overall, seg = per_role[b.role]
            if segment == ():
                row, names = overall.get(()), b.names
            else:
                row, names = (seg or {}).get(segment), b.segmented_names
            values[b.role] = _role_values(b, row, names)
            rows[b.role] = int(row[ROWS]) if row else 0
        seg_dict = dict(zip(m.segment_by, segment, strict=True)) if segment else {}
        common = {**base, **window, "segment": seg_dict, "rows": rows.get("main", 0)}
        empty_ok = mp.type.zero_rows_ok(m)
        if not empty_ok and rows.get("main", 0) == 0:
            status, why = mp.type.when_empty(m, rows)
            return [Result(**common, status=status, details={"reason": why})]
        if rows.get("main", 0) > 0 or not empty_ok:
            guard = mp.type.guard_rows(m, rows)
            if guard < m.min_rows and mp.type.min_rows_apply(m):
                reason = {"reason": f"{guard} rows, min_rows is {m.min_rows}"}
                return [Result(**common, status="insufficient_data", details=reason)]
        try:
            scored_all = mp.type.score_all(m, values, rows, self.plan.ctx, segment)
        except Undefined as exc:
            scored_all = [Scored(None, {"reason": str(exc)}, "insufficient_data")]
        except POLARS_ERRORS as exc:  # a scoring bug must not hide the other results
            scored_all = [Scored(None, {"error": first_line(exc)}, "error")]
        out = []
        for scored in scored_all:
            value = scored.value
            if value is not None and isinstance(value, float) and not math.isfinite(value):
                value = None
            # decided on the value as reported (12 significant digits), so that the
            # last bits of a parallel sum never flip a status at its threshold
            shown = reported(value) if isinstance(value, float) else value
            status = scored.status or status_for(shown, m.thresholds)
            fields = dict(common)
            if scored.rows is not None:
                fields["rows"] = scored.rows
            if scored.column is not None:
                fields["column"] = scored.column
            if scored.type is not None:
                fields["type"] = scored.type
            if scored.threshold is not None:
                fields["threshold"] = scored.threshold
            out.append(Result(**fields, value=value, status=status, details=scored.details))
        return out


def _prepare(plan: Plan) -> None:
    queries = plan_phase(plan, "prepare")
    frames = execute(queries, plan.model)
    for mp in plan.monitors:
        if mp.error or mp.no_data or not mp.bindings:
            continue
        prepared: dict[str, Any] = {}
        for b in mp.bindings:
            df = frames[b.overall]
            seg_df = frames[b.segmented] if b.segmented is not None else None
            if isinstance(df, str) or isinstance(seg_df, str):
                mp.error = df if isinstance(df, str) else seg_df
                break
            lost = _failed(queries, b)
            if lost:  # a reference aggregate failed alone: never score without it
                mp.error = lost
                break
            row = _binding_rows(df, b).get(())
            values = _role_values(b, row, b.names)
            values[ROWS] = int(row[ROWS]) if row else 0
            prepared[b.role] = values
            if seg_df is None or b.segmented is None:
                continue
            segment_by = queries[b.segmented].segment_by
            for key, seg_row in _binding_rows(seg_df, b, segment_by).items():
                seg_values = _role_values(b, seg_row, b.segmented_names)
                seg_values[ROWS] = int(seg_row[ROWS])
                prepared.setdefault(SEGMENTS, {}).setdefault(key, {})[b.role] = seg_values
        if not mp.error and mp.type is not None:
            try:
                prepared = mp.type.prepared(mp.monitor, prepared, plan.ctx)
            except POLARS_ERRORS as exc:  # a reference that cannot be profiled
                mp.error = f"reference: {first_line(exc)}"
        if not mp.error:
            plan.ctx.prepared[mp.monitor.name] = prepared
        mp.bindings = []  # they point into the reference queries, not the window's


def evaluate_model(model: ModelSpec, at: datetime, cache_dir: Path | None = None) -> ModelResults:
    """Evaluate every enabled monitor of ``model`` as of ``at``. Reference profiles
    are cached in ``cache_dir`` when given."""
    plan = compile_model(model, at, cache_dir=cache_dir)
    _prepare(plan)
    queries = plan_phase(plan, "needs")
    frames = execute(queries, model)
    scorer = _Scorer(plan, queries, frames)
    results: list[Result] = []
    for mp in plan.monitors:
        results.extend(scorer.results(mp))
    return ModelResults(model.model, at, tuple(results), tuple(scorer.warnings))


def evaluate(config: Config, at: datetime | None = None) -> list[ModelResults]:
    """Evaluate every model of ``config`` as of ``at`` (default: now)."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    cache = Path(config.engine.state).parent / "profiles"
    return [evaluate_model(model, at, cache) for model in config.models]


__all__ = ["ALL", "evaluate", "evaluate_model", "execute", "status_for"]
