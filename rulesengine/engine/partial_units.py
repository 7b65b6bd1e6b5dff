"""What a query becomes for the partial-state executors: units of parts.

Each aggregate a monitor declared (:mod:`rulesengine.monitors.aggs`) splits into
parts, each a mergeable state (:mod:`rulesengine.partials`); a query's parts
form one :class:`Unit` (a select query: one unit per cell-index column). The
incremental executor (:mod:`rulesengine.engine.incremental`) computes a unit's
states per file and bucket, the Dask executor
(:mod:`rulesengine.engine.distributed`) per partition; both merge them
(:func:`merge_list`) and build from them the frame ``execute`` would have
returned (:func:`frame_from_states`), so ``score`` runs unchanged.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from rulesengine.engine.partial_labels import LabelWatch, Version
from rulesengine.engine.plan import (
    ALL,
    APPROX,
    BUCKET,
    ROWS,
    Plan,
    Query,
    approx_column,
    expr_key,
)
from rulesengine.monitors.aggs import Approximate, Decomposition, NotExact, Part, decomposition

ROWS_PART = "rows"  # the row count every unit carries


class AdditiveOf:
    """The ``*Of`` of an additive part: the aggregate itself per group, merged as
    a :class:`~rulesengine.partials.Sum` (integers exactly)."""

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        return {f"{name}.v": self.expr}

    def state(self, row: Mapping[str, Any], name: str) -> Any:
        return _additive(row[f"{name}.v"])

    def states(self, df: pl.DataFrame, name: str) -> list[Any]:
        """:meth:`state` of every row of ``df``, read as one column: a histogram's
        cells are hundreds of thousands of rows, and a dict per row cost seconds."""
        from rulesengine.partials.scalars import Sum

        column = df.get_column(f"{name}.v")
        values = column.to_list()
        if column.dtype.is_integer() or column.dtype.is_float():
            empty = Sum()
            return [empty if v is None else Sum(v) for v in values]
        return [_additive(v) for v in values]


def _additive(value: Any) -> Any:
    from rulesengine.partials.scalars import Sum

    if value is None:
        return Sum()
    if isinstance(value, bool | int):
        return Sum(int(value))
    if isinstance(value, float):
        return Sum(value)
    raise TypeError(f"an additive aggregate gave {type(value).__name__}")


def states_by_row(
    u: Unit, df: pl.DataFrame, key_names: list[str]
) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """Each row's keys (``key_names``, in order) and its states by part id: the
    parts that read a column at once (``states``) read it so, the others row by
    row."""
    from rulesengine.partials.collect import _rows

    rows: list[dict[str, Any]] | None = None
    columns: dict[str, list[Any]] = {}
    for pid, of in u.parts.items():
        if hasattr(of, "states"):
            columns[pid] = of.states(df, pid)
            continue
        if rows is None:
            rows = _rows(df)
        columns[pid] = [of.state(row, pid) for row in rows]
    # zip() of no columns is empty: no keys (or no parts) is one empty one per row
    keys = (
        list(zip(*(df.get_column(k).to_list() for k in key_names), strict=True))
        if key_names
        else [()] * df.height
    )
    states = (
        [dict(zip(columns, got, strict=True)) for got in zip(*columns.values(), strict=True)]
        if columns
        else [{} for _ in range(df.height)]
    )
    return keys, states


def part_of(part: Part) -> Any:
    from rulesengine.partials import CoMomentsOf, ExtremesOf, MomentsOf, ValuesOf

    if part.kind == "values":
        from rulesengine.partials import order

        # the bound read now, not at import: tests lower it to reach sketches
        return ValuesOf(part.expr, exact=part.exact, limit=order.SIZE_LIMIT)
    if part.kind == "keys":
        from rulesengine.partials import order
        from rulesengine.partials.histograms import KeysOf

        return KeysOf(part.expr, limit=order.SIZE_LIMIT)  # the same bound as value counts
    kinds = {
        "additive": AdditiveOf,
        "moments": MomentsOf,
        "comoments": CoMomentsOf,
        "extremes": ExtremesOf,
    }
    return kinds[part.kind](part.expr)


def part_id(part: Part) -> str:
    kind = f"{part.kind}-exact" if part.exact else part.kind
    return hashlib.sha256(f"{kind}:{expr_key(part.expr)}".encode()).hexdigest()[:20]


@dataclass
class Unit:
    """One cached computation: a query's groups (or, for a select query, one
    cell-index column's counts per cell)."""

    index: int
    query: Query
    decomposed: dict[str, Decomposition]  # aggregate name → decomposition
    names: dict[str, dict[str, str]]  # aggregate name → {part name: part id}
    parts: dict[str, Any]  # part id → *Of
    by: pl.Expr | None
    column: str | None = None  # a select query's index column
    fingerprint: str = ""
    keys: dict[str, pl.DataType] | None = None  # a label join's key dtypes
    watch: LabelWatch | None = None  # … its label source
    version: Version | None = None  # … the labels as of this call

    @property
    def part_ids(self) -> list[str]:
        return sorted(self.parts)


def cell_columns(plan: Plan, i: int) -> dict[str, int] | None:
    """A select query's index columns with their cell counts; None if it also
    holds weights (those need the rows themselves)."""
    cells: dict[str, int] = {}
    for mp in plan.monitors:
        for b in mp.bindings:
            if b.cells is None or b.overall != i:
                continue
            if "weights" in b.names:
                return None
            cells[b.names["index"]] = b.cells
    if set(cells) != set(plan.queries[i].aggs):
        return None
    return cells


def units_of(plan: Plan, i: int, q: Query) -> tuple[list[Unit], dict[str, pl.Expr]] | str:
    """The cached units of query ``i`` and its aggregates left to a single pass;
    or why the whole query runs in a single pass."""
    rows = Part("additive", pl.len())
    if q.select:
        cells = cell_columns(plan, i)
        if cells is None:
            return "per-row weights"
        units = []
        for name in cells:
            key = q.aggs[name]
            units.append(Unit(i, q, {}, {}, {ROWS_PART: part_of(rows)}, key, column=name))
        return units, {}
    decomposed: dict[str, Decomposition] = {}
    left: dict[str, pl.Expr] = {}
    for name, expr in q.aggs.items():
        how = decomposition(expr)
        if how is None:
            left[name] = expr
        else:
            decomposed[name] = how
    if left and not decomposed:
        return "no decomposable aggregate"
    parts: dict[str, Any] = {ROWS_PART: part_of(rows)}
    names: dict[str, dict[str, str]] = {}
    for name, how in decomposed.items():
        names[name] = {}
        for local, part in how.parts.items():
            pid = part_id(part)
            parts.setdefault(pid, part_of(part))
            names[name][local] = pid
    return [Unit(i, q, decomposed, names, parts, q.by)], left


def group_keys(u: Unit) -> list[pl.Expr]:
    """``u``'s keys besides file and bucket: segments, then the per-row key."""
    keys = [pl.col(c) for c in u.query.segment_by]
    return keys + ([u.by.alias(BUCKET)] if u.by is not None else [])


def part_exprs(u: Unit) -> list[pl.Expr]:
    return [e.alias(c) for pid, of in u.parts.items() for c, e in of.exprs(pid).items()]


def merge_list(states: list[Any]) -> Any:
    """One state from several: value counts and key sets in one sort, the others
    pairwise."""
    from rulesengine.partials.histograms import DistinctKeys
    from rulesengine.partials.order import ValueCounts, merge_many

    if len(states) > 2 and isinstance(states[0], ValueCounts):
        return merge_many(states)
    if len(states) > 2 and isinstance(states[0], DistinctKeys):
        return DistinctKeys.union(states)
    out = states[0]
    for state in states[1:]:
        out = out.merge(state)
    return out


def frame_from_states(
    u: Unit,
    merged: Mapping[tuple[Any, ...], Mapping[str, Any]],
    failed: set[str] | None = None,
) -> pl.DataFrame:
    """The frame ``execute`` gives for ``u``'s query (its decomposed aggregates),
    from one merged state per part and key (segments, then the per-row key).
    With ``failed``, an aggregate whose finaliser raises
    :class:`~rulesengine.monitors.aggs.NotExact` is left out and its name added
    there (for a single pass of its own); without, the error propagates."""
    q = u.query
    schema = q.lazy.collect_schema()  # type: ignore[union-attr]
    key_names = [*q.segment_by, *([BUCKET] if q.by is not None else [])]
    if not key_names and not merged:
        # Polars groups an empty frame by a constant into one row (a count of 0, a
        # sum of 0, a mean of null), so an overall query always has its row
        nulls: dict[str, Any] = defaultdict(lambda: None)
        merged = {(): {pid: of.state(nulls, pid) for pid, of in u.parts.items()}}
    keys = sorted(merged, key=lambda k: tuple((x is None, str(x)) for x in k))
    data: dict[str, list[Any]] = {k: [key[i] for key in keys] for i, k in enumerate(key_names)}
    if not key_names:
        data[ALL] = [1] * len(keys)
    data[ROWS] = [merged[k][ROWS_PART].total for k in keys]
    for name, how in u.decomposed.items():
        try:
            got = [
                how.finish({local: merged[k][pid] for local, pid in u.names[name].items()})
                for k in keys
            ]
        except NotExact:
            if failed is None:
                raise
            failed.add(name)
            continue
        data[name] = [g.value if isinstance(g, Approximate) else g for g in got]
        if any(isinstance(g, Approximate) for g in got):
            data[approx_column(name)] = [
                g.rank_error if isinstance(g, Approximate) else None for g in got
            ]
    return pl.DataFrame(
        [
            pl.Series(c, v, dtype=pl.Float64 if c.endswith(APPROX) else schema.get(c), strict=False)
            for c, v in data.items()
        ]
    )
