"""Build the evaluation plan of one model at one time.

Monitors state their needs (aggregates over frames). Frames with equal keys share
one LazyFrame object; needs on the same frame and segmentation merge into one
``group_by().agg()`` query whose identical aggregates are computed once. Histograms
over fixed cells (``Need.cells``) are different: overall, their per-row cell
indices go into one ``select`` per frame and NumPy's ``bincount`` counts them,
which is several times faster than grouping by the cell; per segment they group
by segment and cell. Reference aggregates (``prepare``) run first, as their own
small plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.engine.sources import (
    POLARS_ERRORS,
    NoFiles,
    bad_file,
    dtype_conflicts,
    reason,
    scan,
    with_timestamp,
)
from rulesengine.errors import DataError
from rulesengine.monitors.base import (
    ROWS,
    Cells,
    EvalContext,
    FrameKey,
    MonitorType,
    Need,
)
from rulesengine.spec.model import ModelSpec, MonitorSpec, SourceSpec
from rulesengine.spec.sql import compile_sql

ALL = "__all"


def first_line(exc: BaseException) -> str:
    """One line for a result's error (see :func:`rulesengine.engine.sources.reason`)."""
    return reason(exc)


def expr_key(expr: pl.Expr) -> str:
    """An exact identity for an expression: its printed form hides literal
    arguments (bin edges, long value lists), its serialisation does not."""
    try:
        return expr.meta.serialize().hex()
    except POLARS_ERRORS:  # an expression Polars cannot serialise: fall back to its text
        return str(expr)


def root_names(exprs: list[pl.Expr]) -> list[str]:
    """The columns some expressions read (a label column also by its own name)."""
    names: set[str] = set()
    for e in exprs:
        try:
            found = e.meta.root_names()
        except POLARS_ERRORS:
            continue
        names.update(found)
        names.update(n.removesuffix("_label") for n in found)
    return sorted(names)


@dataclass
class Query:
    """One lazy aggregation: every aggregate over one frame and segmentation."""

    frame: FrameKey
    segment_by: tuple[str, ...]
    by: pl.Expr | None = None  # an extra per-row grouping key (histogram bucket)
    aggs: dict[str, pl.Expr] = field(default_factory=dict)  # global name → expression
    keys: dict[str, str] = field(default_factory=dict)  # expression text → global name
    lazy: pl.LazyFrame | None = None
    error: str | None = None
    base: pl.LazyFrame | None = None  # the frame, before grouping
    group_keys: list[pl.Expr] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # aggregate → why it failed
    select: bool = False  # per-row columns (cell indices, weights), not aggregates

    def split(self) -> pl.DataFrame | str:
        """Collect aggregate by aggregate, after the whole query failed: only the
        aggregates that fail are lost (recorded in ``failed``)."""
        assert self.base is not None
        if self.select:
            return self._split_select()
        try:
            out = self.base.group_by(self.group_keys).agg(pl.len().alias(ROWS)).collect()
        except POLARS_ERRORS as exc:  # the frame itself cannot be read
            return first_line(exc)
        on = [c for c in out.columns if c != ROWS]
        for name, expr in self.aggs.items():
            try:
                part = self.base.group_by(self.group_keys).agg(expr.alias(name)).collect()
            except POLARS_ERRORS as exc:
                self.failed[name] = first_line(exc)
                continue
            out = out.join(part, on=on, how="left", nulls_equal=True)
        return out

    def _split_select(self) -> pl.DataFrame | str:
        assert self.base is not None
        try:
            out = self.base.select(pl.len()).collect()
        except POLARS_ERRORS as exc:  # the frame itself cannot be read
            return first_line(exc)
        columns = []
        for name, expr in self.aggs.items():
            try:
                columns.append(self.base.select(expr.alias(name)).collect().to_series())
            except POLARS_ERRORS as exc:
                self.failed[name] = first_line(exc)
        return pl.DataFrame(columns) if columns else out.clear()

    def add(self, expr: pl.Expr) -> str:
        text = expr_key(expr)
        if text not in self.keys:
            name = f"a{len(self.aggs)}"
            self.keys[text] = name
            self.aggs[name] = expr
        return self.keys[text]


@dataclass
class Binding:
    """Where a need's aggregates land: the overall query, the segmented query."""

    role: str
    overall: int
    segmented: int | None
    names: dict[str, str]  # local → global name in the overall query
    segmented_names: dict[str, str] = field(default_factory=dict)  # … in the segmented one
    by: bool = False  # values arrive per bucket: {bucket: value}
    cells: int | None = None  # a Cells need with this many cells
    outer: bool = False  # … that also keeps the values of its outer cells
    origin: float = 0.0  # … whose sums are of the weights minus this


@dataclass
class MonitorPlan:
    monitor: MonitorSpec
    type: MonitorType | None
    bindings: list[Binding] = field(default_factory=list)
    error: str | None = None
    no_data: str | None = None  # why there is nothing to evaluate


@dataclass
class Plan:
    model: ModelSpec
    at: datetime
    ctx: EvalContext
    monitors: list[MonitorPlan]
    queries: list[Query]
    warnings: list[str] = field(default_factory=list)


class _Frames:
    """LazyFrames per source and per frame key, built once and shared."""

    def __init__(self, model: ModelSpec) -> None:
        self.model = model
        self.base: dict[str, pl.LazyFrame] = {}
        self.schemas: dict[str, pl.Schema] = {}
        self.missing: dict[str, str] = {}  # source → why it has no data
        self.errors: dict[str, str] = {}  # source → why it cannot be read
        self.frames: dict[FrameKey, pl.LazyFrame] = {}

    def load(self, name: str) -> None:
        source: SourceSpec = self.model.sources[name]
        try:
            frame = scan(source)
            raw_schema = frame.collect_schema()
            frame = with_timestamp(frame, source, raw_schema)
            self.schemas[name] = frame.collect_schema()
            self.base[name] = frame
        except NoFiles as exc:
            self.missing[name] = str(exc)
        except DataError as exc:
            self.errors[name] = str(exc)
        except FileNotFoundError:
            self.missing[name] = f"no files match {source.path}"
        except POLARS_ERRORS as exc:
            text = first_line(exc)
            missing = "expanded paths were empty" in text or (
                source.is_remote and "not found" in text.lower()
            )
            if missing:
                self.missing[name] = f"no files match {source.path}"
            else:  # name the file, not the glob, when one file alone fails
                self.errors[name] = (
                    bad_file(source) or f"source '{name}': cannot read {source.path}: {text}"
                )

    def problem(self, name: str) -> tuple[str, str] | None:
        """('error'|'no_data', message) if the source cannot give rows."""
        if name not in self.base and name not in self.missing and name not in self.errors:
            self.load(name)
        if name in self.errors:
            return "error", self.errors[name]
        if name in self.missing:
            source = self.model.sources[name]
            return ("error" if source.required else "no_data"), self.missing[name]
        return None

    def frame(self, key: FrameKey) -> pl.LazyFrame:
        if key in self.frames:
            return self.frames[key]
        source = self.model.sources[key.source]
        lf = self.base[key.source]
        if source.timestamp and (key.start is not None or key.end is not None):
            from rulesengine.engine.sources import in_window

            lf = lf.filter(in_window(source, key.start, key.end, self.schemas[key.source]))
        if key.filter:
            lf = lf.filter(compile_sql(key.filter).expr.fill_null(False))
        if key.join is not None:
            labels_src = self.model.sources[key.join.source]
            labels = self.base[key.join.source]
            if labels_src.timestamp:
                ts = pl.col(labels_src.timestamp)
                if key.label_cutoff is not None:
                    labels = labels.filter(ts <= key.label_cutoff)
                labels = labels.sort(ts, nulls_last=False)
            labels = labels.unique(subset=list(key.join.on), keep="last", maintain_order=False)
            labels = labels.with_columns(pl.lit(True).alias("__labelled"))
            # the left rows' order, so sums over joined rows add up in one order and
            # a run's numbers are the same to the last bit every time
            lf = lf.join(
                labels,
                on=list(key.join.on),
                how=key.how,
                suffix="_label",
                nulls_equal=False,
                maintain_order="left",
            )
        self.frames[key] = lf
        return lf


def _segment_keys(segment_by: tuple[str, ...]) -> list[pl.Expr]:
    return [pl.col(c) for c in segment_by] if segment_by else [pl.lit(1).alias(ALL)]


BUCKET = "__bucket"


def _cell_index(cells: Cells) -> pl.Expr:
    """The cell index with missing values in the extra last slot, as small ints."""
    dtype = pl.UInt16 if cells.n < 2**16 - 1 else pl.UInt32
    return cells.index.fill_null(cells.n).cast(dtype)


def _schema_problem(lf: pl.LazyFrame) -> str | None:
    """A message if the query cannot run on its frame (e.g. a missing column)."""
    try:
        lf.collect_schema()
    except POLARS_ERRORS as exc:
        return first_line(exc)
    return None


def _check_cells(lf: pl.LazyFrame, cells: Cells) -> str | None:
    exprs = [_cell_index(cells).alias("i")]
    if cells.weights is not None:
        exprs.append(cells.weights.alias("w"))
    return _schema_problem(lf.select(exprs))


QueryIndex = dict[tuple[FrameKey, tuple[str, ...], str], int]


def _query(plan_queries: list[Query], index: QueryIndex, key: tuple, make: Query) -> int:
    """The position of the query for ``key``, adding ``make`` if there is none yet."""
    if key not in index:
        index[key] = len(plan_queries)
        plan_queries.append(make)
    return index[key]


def _bind_cells(
    plan_queries: list[Query],
    index: QueryIndex,
    need: Need,
    cells: Cells,
    segment_by: tuple[str, ...],
) -> Binding:
    """Overall: index (and weights) columns in the frame's one select query.
    Per segment: a group_by on segment and cell, with the weights' sum."""
    idx = _cell_index(cells)
    at = _query(plan_queries, index, (need.frame, (), "select"), Query(need.frame, (), select=True))
    q = plan_queries[at]
    names = {"index": q.add(idx)}
    if cells.weights is not None:
        names["weights"] = q.add(cells.weights)
    binding = Binding(need.role, at, None, names, cells=cells.n)
    if need.segmented and segment_by:
        key = (need.frame, segment_by, expr_key(idx))
        binding.segmented = _query(plan_queries, index, key, Query(need.frame, segment_by, idx))
        q = plan_queries[binding.segmented]
        if cells.weights is not None:
            w = cells.weights.cast(pl.Float64)
            binding.segmented_names = {"sums": q.add((w - cells.origin).sum())}
            if cells.outer:
                edge = idx.is_in([0, cells.n - 1])
                binding.segmented_names["outer"] = q.add(w.filter(edge))
    binding.outer, binding.origin = cells.outer, cells.origin
    return binding


def _check_expr(lf: pl.LazyFrame, expr: pl.Expr, by: pl.Expr | None = None) -> str | None:
    """A message if the aggregate cannot run on this frame (e.g. a missing column)."""
    keys = [pl.lit(1).alias(ALL)] + ([by.alias(BUCKET)] if by is not None else [])
    return _schema_problem(lf.group_by(keys).agg(expr.alias("x")))


def _bind(
    plan_queries: list[Query],
    index: QueryIndex,
    frames: _Frames,
    need: Need,
    segment_by: tuple[str, ...],
) -> tuple[Binding | None, str | None]:
    lf = frames.frame(need.frame)
    for expr in [*need.aggs.values(), *([pl.len()] if need.by is not None else [])]:
        problem = _check_expr(lf, expr, need.by)
        if problem:
            source = frames.model.sources[need.frame.source]
            note = dtype_conflicts(source, root_names([expr]))
            return None, f"{note}: {problem}" if note else problem
    if need.cells is not None:
        problem = _check_cells(lf, need.cells)
        if problem:
            return None, problem
    if need.segmented and segment_by:
        schema = lf.collect_schema()
        missing = [c for c in segment_by if c not in schema]
        if missing:
            return None, f"segment column '{missing[0]}' not found in source '{need.frame.source}'"
    if need.cells is not None:
        return _bind_cells(plan_queries, index, need, need.cells, segment_by), None
    slots = [()] + ([segment_by] if need.segmented and segment_by else [])
    positions = []
    names: list[dict[str, str]] = []
    by_text = expr_key(need.by) if need.by is not None else ""
    for seg in slots:
        at = _query(
            plan_queries, index, (need.frame, seg, by_text), Query(need.frame, seg, need.by)
        )
        q = plan_queries[at]
        names.append({local: q.add(expr) for local, expr in need.aggs.items()})
        positions.append(at)
    segmented = positions[1] if len(positions) > 1 else None
    seg_names = names[1] if segmented is not None else {}
    binding = Binding(need.role, positions[0], segmented, names[0], seg_names, need.by is not None)
    return binding, None


def _finish(queries: list[Query], frames: _Frames) -> None:
    for q in queries:
        lf = frames.frame(q.frame)
        if q.select:
            q.base = lf
            q.lazy = lf.select([e.alias(n) for n, e in q.aggs.items()])
            continue
        exprs = [pl.len().alias(ROWS), *(e.alias(n) for n, e in q.aggs.items())]
        if q.by is not None:  # histogram queries need no constant key to group by
            keys = [pl.col(c) for c in q.segment_by] + [q.by.alias(BUCKET)]
        else:
            keys = _segment_keys(q.segment_by)
        q.base, q.group_keys = lf, keys
        q.lazy = lf.group_by(keys).agg(exprs)


def _sources_of(m: MonitorSpec) -> list[str]:
    """Every source a monitor reads: its own, a joined one, a reference."""
    names = [m.source]
    join = getattr(m, "join", None)
    if join is not None:
        names.append(join.source)
    ref = getattr(m, "reference", None)
    if isinstance(ref, str):
        names.append(ref)
    elif ref is not None:
        names.append(ref.source)
    return names


def _plan_needs(
    model: ModelSpec, ctx: EvalContext, frames: _Frames, phase: str, monitors: list[MonitorPlan]
) -> list[Query]:
    queries: list[Query] = []
    index: QueryIndex = {}
    for mp in monitors:
        if mp.error or mp.no_data or mp.type is None:
            continue
        m = mp.monitor
        trouble = next((t for t in map(frames.problem, _sources_of(m)) if t), None)
        if trouble:  # a source without rows or unreadable: nothing to plan
            if trouble[0] == "error":
                mp.error = trouble[1]
            else:
                mp.no_data = trouble[1]
            continue
        try:
            needs = mp.type.prepare(m, ctx) if phase == "prepare" else mp.type.needs(m, ctx)
        except POLARS_ERRORS as exc:
            mp.error = first_line(exc)
            continue
        bindings = []
        for need in needs:
            sources = [need.frame.source] + ([need.frame.join.source] if need.frame.join else [])
            trouble = next((t for t in map(frames.problem, sources) if t), None)
            if trouble:
                if trouble[0] == "error":
                    mp.error = trouble[1]
                else:
                    mp.no_data = trouble[1]
                break
            try:
                binding, problem = _bind(queries, index, frames, need, m.segment_by)
            except POLARS_ERRORS as exc:  # a frame or check that Polars refuses: this monitor's
                binding, problem = None, first_line(exc)
            if problem:
                mp.error = problem
                break
            bindings.append(binding)
        else:
            if phase == "needs":
                mp.bindings = bindings
            else:
                mp.bindings = bindings  # reused by the evaluator for the prepare phase
    _finish(queries, frames)
    return queries


def compile_model(
    model: ModelSpec,
    at: datetime,
    *,
    prepared: dict[str, Any] | None = None,
    cache_dir: Path | None = None,
) -> Plan:
    """Compile ``model`` as of ``at``; :func:`plan_phase` then builds the reference
    (``prepare``) and main (``needs``) queries. Profiles are cached in ``cache_dir``."""
    from rulesengine.monitors.base import lookup

    frames = _Frames(model)
    for name in model.sources:
        frames.problem(name)
    ctx = EvalContext(
        model,
        at,
        frames.schemas,
        prepared if prepared is not None else {},
        cache_dir=cache_dir,
    )
    monitors = []
    for m in model.monitors():
        if not m.enabled:
            continue
        try:
            mtype = lookup(m)
        except KeyError:
            monitors.append(
                MonitorPlan(m, None, error=f"{m.kind} type '{m.type}' is not supported yet")
            )
            continue
        monitors.append(MonitorPlan(m, mtype))
    plan = Plan(model, at, ctx, monitors, [])
    plan.frames = frames  # type: ignore[attr-defined]
    return plan


def plan_phase(plan: Plan, phase: str) -> list[Query]:
    """Build the queries of one phase (``prepare`` or ``needs``) into the plan."""
    frames: _Frames = plan.frames  # type: ignore[attr-defined]
    queries = _plan_needs(plan.model, plan.ctx, frames, phase, plan.monitors)
    return queries
