"""Build the evaluation plan of one model at one time.

Monitors state their needs (aggregates over frames). Frames with equal keys share
one LazyFrame object; needs on the same frame and segmentation merge into one
``group_by().agg()`` query whose identical aggregates are computed once. Histograms
over fixed cells (``Need.cells``) are different: overall, their per-row cell
indices go into one ``select`` per frame and NumPy's ``bincount`` counts them,
which is several times faster than grouping by the cell; per segment they group
by segment and cell.

:func:`compile_model` gives a plan with its frames and monitors and no queries yet;
:func:`reference_plan` and :func:`window_plan` each return a new plan holding the
queries of one phase: the reference aggregates (``MonitorType.prepare``), run
first as their own small plan, then the window's (``MonitorType.needs``).
Nothing here runs a query: see :mod:`rulesengine.engine.execute`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import polars as pl

from rulesengine.engine.frames import Frames
from rulesengine.engine.sources import POLARS_ERRORS, dtype_conflicts, reason
from rulesengine.monitors.base import (
    ROWS,
    Cells,
    EvalContext,
    FrameKey,
    MonitorType,
    Need,
    lookup,
)
from rulesengine.spec.model import ModelSpec, MonitorSpec

ALL = "__all"  # the constant key an overall query groups by
BUCKET = "__bucket"  # the per-row key of a histogram query
# a select query's frame may come as counts per cell (the incremental executor):
# index column ``c`` then has a column ``c + CELL_COUNT`` with each cell's rows
CELL_COUNT = "__cell_count"
APPROX = "__rank_error"  # suffix of an aggregate's column of sketch rank errors


def approx_column(name: str) -> str:
    """The column beside aggregate ``name`` in a frame built from partial states
    holding, per group, the rank error of a value estimated from a sketch (null
    where exact; the column is absent when every value is exact)."""
    return f"{name}{APPROX}"


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
    base: pl.LazyFrame | None = None  # the frame, before grouping
    group_keys: list[pl.Expr] = field(default_factory=list)
    select: bool = False  # per-row columns (cell indices, weights), not aggregates

    def add(self, expr: pl.Expr) -> str:
        """The global name of ``expr`` in this query, added if it is new."""
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


@dataclass(frozen=True)
class MonitorPlan:
    """One monitor in a plan: where its aggregates land, or why it has none."""

    monitor: MonitorSpec
    type: MonitorType | None
    bindings: tuple[Binding, ...] = ()
    error: str | None = None
    no_data: str | None = None  # why there is nothing to evaluate

    @property
    def ready(self) -> bool:
        """Whether this monitor can still be planned (no error, data, a known type)."""
        return not self.error and not self.no_data and self.type is not None


@dataclass(frozen=True)
class Plan:
    """A model compiled as of ``at``: its sources as frames, its monitors, and the
    queries of one phase (none in the plan :func:`compile_model` returns)."""

    model: ModelSpec
    at: datetime
    ctx: EvalContext
    frames: Frames
    monitors: tuple[MonitorPlan, ...]
    queries: tuple[Query, ...] = ()


def _segment_keys(segment_by: tuple[str, ...]) -> list[pl.Expr]:
    return [pl.col(c) for c in segment_by] if segment_by else [pl.lit(1).alias(ALL)]


def _cell_index(cells: Cells) -> pl.Expr:
    """The cell index with missing values in the extra last slot, as small ints."""
    dtype = pl.UInt16 if cells.n < 2**16 - 1 else pl.UInt32
    return cells.index.fill_null(cells.n).cast(dtype)


def _schema_problem(lf: pl.LazyFrame) -> str | None:
    """A message if the query cannot run on its frame (e.g. a missing column)."""
    try:
        lf.collect_schema()
    except POLARS_ERRORS as exc:
        return reason(exc)
    return None


def _check_cells(lf: pl.LazyFrame, cells: Cells) -> str | None:
    exprs = [_cell_index(cells).alias("i")]
    if cells.weights is not None:
        exprs.append(cells.weights.alias("w"))
    return _schema_problem(lf.select(exprs))


def _check_expr(lf: pl.LazyFrame, expr: pl.Expr, by: pl.Expr | None = None) -> str | None:
    """A message if the aggregate cannot run on this frame (e.g. a missing column)."""
    keys = [pl.lit(1).alias(ALL)] + ([by.alias(BUCKET)] if by is not None else [])
    return _schema_problem(lf.group_by(keys).agg(expr.alias("x")))


class _Queries:
    """The queries of one phase as needs are bound to them: one per frame,
    segmentation and per-row key."""

    def __init__(self, frames: Frames) -> None:
        self.frames = frames
        self.queries: list[Query] = []
        self.index: dict[tuple[FrameKey, tuple[str, ...], str], int] = {}

    def _at(self, key: tuple[FrameKey, tuple[str, ...], str], make: Query) -> int:
        """The position of the query for ``key``, adding ``make`` if there is none yet."""
        if key not in self.index:
            self.index[key] = len(self.queries)
            self.queries.append(make)
        return self.index[key]

    def problem(self, need: Need, segment_by: tuple[str, ...]) -> str | None:
        """Why ``need`` cannot run on its frame (a missing column, a dtype), if so."""
        lf = self.frames.frame(need.frame)
        for expr in [*need.aggs.values(), *([pl.len()] if need.by is not None else [])]:
            problem = _check_expr(lf, expr, need.by)
            if problem:
                source = self.frames.model.sources[need.frame.source]
                note = dtype_conflicts(source, root_names([expr]))
                return f"{note}: {problem}" if note else problem
        if need.cells is not None:
            problem = _check_cells(lf, need.cells)
            if problem:
                return problem
        if need.segmented and segment_by:
            schema = lf.collect_schema()
            missing = [c for c in segment_by if c not in schema]
            if missing:
                return f"segment column '{missing[0]}' not found in source '{need.frame.source}'"
        return None

    def bind(self, need: Need, segment_by: tuple[str, ...]) -> Binding:
        """Add ``need``'s aggregates to the queries of its frame (overall, and per
        segment unless the need is overall only)."""
        if need.cells is not None:
            return self._bind_cells(need, need.cells, segment_by)
        slots = [()] + ([segment_by] if need.segmented and segment_by else [])
        positions = []
        names: list[dict[str, str]] = []
        by_text = expr_key(need.by) if need.by is not None else ""
        for seg in slots:
            at = self._at((need.frame, seg, by_text), Query(need.frame, seg, need.by))
            q = self.queries[at]
            names.append({local: q.add(expr) for local, expr in need.aggs.items()})
            positions.append(at)
        segmented = positions[1] if len(positions) > 1 else None
        seg_names = names[1] if segmented is not None else {}
        return Binding(need.role, positions[0], segmented, names[0], seg_names, need.by is not None)

    def _bind_cells(self, need: Need, cells: Cells, segment_by: tuple[str, ...]) -> Binding:
        """Overall: index (and weights) columns in the frame's one select query.
        Per segment: a group_by on segment and cell, with the weights' sum."""
        idx = _cell_index(cells)
        at = self._at((need.frame, (), "select"), Query(need.frame, (), select=True))
        q = self.queries[at]
        names = {"index": q.add(idx)}
        if cells.weights is not None:
            names["weights"] = q.add(cells.weights)
        binding = Binding(need.role, at, None, names, cells=cells.n)
        if need.segmented and segment_by:
            key = (need.frame, segment_by, expr_key(idx))
            binding.segmented = self._at(key, Query(need.frame, segment_by, idx))
            q = self.queries[binding.segmented]
            if cells.weights is not None:
                w = cells.weights.cast(pl.Float64)
                binding.segmented_names = {"sums": q.add((w - cells.origin).sum())}
                if cells.outer:
                    edge = idx.is_in([0, cells.n - 1])
                    binding.segmented_names["outer"] = q.add(w.filter(edge))
        binding.outer, binding.origin = cells.outer, cells.origin
        return binding

    def finish(self) -> tuple[Query, ...]:
        """Every query with its lazy frame: a select, or a group_by on its keys."""
        for q in self.queries:
            lf = self.frames.frame(q.frame)
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
        return tuple(self.queries)


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


def _without_rows(frames: Frames, mp: MonitorPlan, sources: list[str]) -> MonitorPlan | None:
    """``mp`` with an error or no_data if one of ``sources`` cannot give rows."""
    trouble = next((t for t in map(frames.problem, sources) if t), None)
    if trouble is None:
        return None
    kind, message = trouble
    if kind == "error":
        return replace(mp, bindings=(), error=message)
    return replace(mp, bindings=(), no_data=message)


def _rows_only(need: Need, frames: Frames, segment_by: tuple[str, ...]) -> Need:
    """``need`` over its rows without the join, when it only counts the rows of a
    left join of labels (a metric's label coverage): the labels hold one row per
    join key (the latest, see :meth:`Frames._labels`), so that join neither drops
    nor repeats a row. The count then lands in the window's plain query instead of
    costing a join of its own (2-4 s at 7.2M rows). Kept as it is when a segment
    column comes from the labels."""
    f = need.frame
    if f.join is None or f.how != "left" or need.aggs or need.by is not None:
        return need
    schema = frames.schemas.get(f.source)
    segments = segment_by if need.segmented else ()
    if need.cells is not None or schema is None or any(c not in schema for c in segments):
        return need
    return replace(need, frame=FrameKey(f.source, f.start, f.end, f.filter))


# what a monitor type asks for in one phase: its prepare or its needs
NeedsOf = Callable[[MonitorType, MonitorSpec, EvalContext], list[Need]]


def _plan_monitor(
    queries: _Queries, mp: MonitorPlan, needs_of: NeedsOf, ctx: EvalContext
) -> MonitorPlan:
    """``mp`` with its needs bound into ``queries``, or with why they cannot be."""
    assert mp.type is not None
    m = mp.monitor
    troubled = _without_rows(queries.frames, mp, _sources_of(m))
    if troubled:  # a source without rows or unreadable: nothing to plan
        return troubled
    try:
        needs = needs_of(mp.type, m, ctx)
    except POLARS_ERRORS as exc:
        return replace(mp, bindings=(), error=reason(exc))
    bindings = []
    for need in (_rows_only(n, queries.frames, m.segment_by) for n in needs):
        sources = [need.frame.source] + ([need.frame.join.source] if need.frame.join else [])
        troubled = _without_rows(queries.frames, mp, sources)
        if troubled:
            return troubled
        try:
            problem = queries.problem(need, m.segment_by)
            if problem is None:
                bindings.append(queries.bind(need, m.segment_by))
        except POLARS_ERRORS as exc:  # a frame or check that Polars refuses: this monitor's
            problem = reason(exc)
        if problem:
            return replace(mp, bindings=(), error=problem)
    return replace(mp, bindings=tuple(bindings))


def _plan_phase(plan: Plan, needs_of: NeedsOf) -> Plan:
    queries = _Queries(plan.frames)
    monitors = tuple(
        _plan_monitor(queries, mp, needs_of, plan.ctx) if mp.ready else mp for mp in plan.monitors
    )
    return replace(plan, monitors=monitors, queries=queries.finish())


def reference_plan(plan: Plan) -> Plan:
    """A new plan holding the reference aggregates (``MonitorType.prepare``) of the
    monitors whose reference is not prepared already (kept from an earlier run); a
    monitor whose reference cannot be read has its error in it."""
    return _plan_phase(
        plan, lambda mtype, m, ctx: [] if m.name in ctx.prepared else mtype.prepare(m, ctx)
    )


def window_plan(plan: Plan) -> Plan:
    """A new plan holding the window's aggregates (``MonitorType.needs``), planned
    once the references are prepared into ``plan.ctx``."""
    return _plan_phase(plan, lambda mtype, m, ctx: mtype.needs(m, ctx))


def compile_model(model: ModelSpec, at: datetime, *, cache_dir: Path | None = None) -> Plan:
    """Compile ``model`` as of ``at``: its frames and monitors, no queries yet
    (see :func:`reference_plan`, :func:`window_plan`). Profiles are cached in
    ``cache_dir``."""
    frames = Frames(model)
    ctx = EvalContext(model, at, frames.schemas, {}, cache_dir=cache_dir)
    monitors = []
    for m in model.monitors():
        if not m.enabled:
            continue
        try:
            monitors.append(MonitorPlan(m, lookup(m)))
        except KeyError:
            error = f"{m.kind} type '{m.type}' is not supported yet"
            monitors.append(MonitorPlan(m, None, error=error))
    return Plan(model, at, ctx, frames, tuple(monitors))
