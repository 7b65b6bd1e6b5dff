"""The aggregates the drift monitor asks the plan for, column by column.

Phase 1 reads the reference: each numeric column's sorted values and nulls, each
other column's rows per label; :func:`reference_profile` reduces them to a
:class:`~rulesengine.monitors.drift.profiles.Profile`. Phase 2 reads the window
against that profile: histogram counts over the reference's cells (a per-row cell
index that NumPy counts, see :class:`~rulesengine.monitors.base.Cells`), category
counts (``group_by`` on the label), or the window's values for exact tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from rulesengine.monitors.aggs import additive, mean, sample, sorted_values, squared_deviations
from rulesengine.monitors.base import (
    ROWS,
    ROWS_BY,
    SEGMENTS,
    Cells,
    EvalContext,
    FrameKey,
    Need,
)
from rulesengine.monitors.columns import select_columns, skipped_columns
from rulesengine.monitors.drift.choices import Choices, ColumnChoice
from rulesengine.monitors.drift.columns import (
    Role,
    Use,
    as_array,
    as_float,
    changed_type,
    labels,
    numbers,
    numeric_dtype,
)
from rulesengine.monitors.drift.methods import ESTIMATED_METHODS
from rulesengine.monitors.drift.profiles import (
    GRID_CELLS,
    SKETCH_POINTS,
    ColumnProfile,
    Profile,
    categorical_profile,
    grid_expr,
    numeric_profile,
)
from rulesengine.monitors.drift.vocabulary import SAMPLE_METHODS
from rulesengine.spec.model import DriftSpec


def drift_columns(m: DriftSpec, ctx: EvalContext) -> list[str]:
    """The listed columns, or every column of the source except the timestamp,
    segment columns, ``exclude``, temporal and nested columns (the ``all``
    selector of :mod:`rulesengine.monitors.columns`)."""
    if m.columns:
        return list(m.columns)
    skip = skipped_columns(ctx.model, m.source, m.segment_by)
    return select_columns(ctx.schemas[m.source], "all", skip=skip, exclude=m.exclude)


def reference_frame(m: DriftSpec, ctx: EvalContext) -> FrameKey:
    ref = m.reference
    if ref.offset is None:
        same = ref.source == m.source
        return FrameKey(ref.source, None, None, m.filter if same else None)
    _, end = ctx.window(m)
    end = (end or ctx.at) - ref.offset
    return FrameKey(ref.source, end - (ref.window or m.window), end, m.filter)


def split_baseline(m: DriftSpec, frame: FrameKey, ref_schema: Mapping[str, Any]) -> bool:
    """A trailing baseline is split like the window when it has the segment columns:
    each segment is then compared with the same segment of the baseline."""
    return (
        frame.end is not None and bool(m.segment_by) and all(c in ref_schema for c in m.segment_by)
    )


def _need(frame: FrameKey, use: Use, column: str, aggs: Mapping[str, pl.Expr], **kw: Any) -> Need:
    return Need(frame, aggs, role=Role(use, column).key, **kw)


# ------------------------------------------------------------------ reference


def reference_needs(
    m: DriftSpec, frame: FrameKey, columns: list[str], ref_schema: Mapping[str, pl.DataType]
) -> list[Need]:
    """What profiling the reference needs: its rows, and per column present in it
    its numbers or its rows per label (a column it lacks is reported when scoring)."""
    split = split_baseline(m, frame, ref_schema)
    needs = [Need(frame, {}, role="main", segmented=split)]
    for c in columns:
        if c not in ref_schema:
            continue
        if numeric_dtype(ref_schema[c]):
            x = numbers(c, ref_schema[c])
            aggs = {"values": x.drop_nulls().sort(), "nulls": x.null_count()}
            needs.append(_need(frame, Use.NUMBERS, c, aggs, segmented=split))
        else:
            needs.append(_need(frame, Use.CATEGORIES, c, {}, segmented=split, by=labels(c, None)))
    return needs


def reference_profile(m: DriftSpec, values: Mapping[str, Any], split: bool) -> Profile:
    """The profile from the reference aggregates; with ``split``, each segment's
    own profile too, cut by the whole baseline's bins and grid."""
    with np.errstate(all="ignore"):  # overflowing values give non-finite results
        whole = _profile(m, values)
        if not split:
            return whole
        segments = {
            key: _profile(m, seg_values, like=whole)
            for key, seg_values in values.get(SEGMENTS, {}).items()
        }
    return replace(whole, segmented=True, segments=segments)


def _profile(
    m: DriftSpec, values: Mapping[str, Mapping[str, Any]], like: Profile | None = None
) -> Profile:
    columns: dict[str, ColumnProfile] = {}
    for key, v in values.items():
        role = Role.parse(key)
        if role is None:
            continue
        name = role.column
        if role.use is Use.NUMBERS:
            base = like.columns.get(name) if like is not None else None
            columns[name] = numeric_profile(
                name, as_array(v["values"]), int(v["nulls"] or 0), m.bins, like=base
            )
        elif role.use is Use.CATEGORIES:
            columns[name] = categorical_profile(name, v.get(ROWS_BY, {}))
    return Profile(int(values.get("main", {}).get(ROWS, 0)), columns)


# ------------------------------------------------------------------ window


def window_needs(m: DriftSpec, ctx: EvalContext, choices: Choices) -> list[Need]:
    """What comparing the window with the reference needs: its rows, the counts of
    columns the reference has no values of, and each compared column's side."""
    start, end = ctx.window(m)
    frame = FrameKey(m.source, start, end, m.filter)
    needs = [Need(frame, {})]
    schema = ctx.schemas[m.source]
    for name in choices.empty:
        if name in schema:
            x = numbers(name, schema[name]) if numeric_dtype(schema[name]) else pl.col(name)
            aggs = {"n": additive(x.count()), "nulls": additive(x.null_count())}
            needs.append(_need(frame, Use.EMPTY, name, aggs))
    for name, choice in choices.columns.items():
        if name in schema and not changed_type(choice.profile, name, schema):
            needs.extend(_compared(frame, name, choice, schema[name], m.exact))
    return needs


def _compared(
    frame: FrameKey, name: str, choice: ColumnChoice, dtype: pl.DataType, exact: bool = False
) -> list[Need]:
    """One compared column's needs: its side of the comparison, and for numbers read
    from text, how many values are not numbers; with ``exact`` a sample test's
    values never come from a sketch."""
    col, method = choice.profile, choice.method
    needs = []
    if col.kind == "numeric" and dtype == pl.String:
        not_numbers = pl.col(name).is_not_null() & as_float(name, pl.String).is_null()
        needs.append(_need(frame, Use.NOT_NUMBERS, name, {"bad": additive(not_numbers.sum())}))
    if col.kind == "categorical":
        needs.append(_need(frame, Use.CATEGORIES, name, {}, by=labels(name, dtype)))
    elif method == "t_test":  # counts, means and variances: mergeable moments
        x = numbers(name, dtype)
        aggs = {
            "n": additive(x.count()),
            "mean": mean(x),
            "m2": squared_deviations(x),
            "nulls": additive(x.null_count()),
        }
        needs.append(_need(frame, Use.SAMPLE, name, aggs))
    elif method in SAMPLE_METHODS:
        x = numbers(name, dtype)
        # sorted, so that the values come from mergeable value counts too (the
        # tests do not depend on the order of the sample); above the exact size
        # bound, ks, mannw and energy take order statistics of the sketch with
        # the true count, the others are computed in a single pass
        if exact:
            values = sorted_values(x, exact=True)
        elif method in ESTIMATED_METHODS:
            values = sample(x, SKETCH_POINTS)
        else:
            values = sorted_values(x)
        aggs = {"values": values, "n": additive(x.count()), "nulls": additive(x.null_count())}
        needs.append(_need(frame, Use.SAMPLE, name, aggs))
    elif method == "wasserstein":
        needs.extend(_fine_cells(frame, col, name, dtype))
    else:
        x = numbers(name, dtype)
        bucket = x.bin_intervals(list(col.edges), labels=False, right_closed=True)
        cells = Cells(bucket, len(col.edges) + 1)
        needs.append(_need(frame, Use.CELLS, name, {}, cells=cells))
    return needs


def _fine_cells(frame: FrameKey, col: ColumnProfile, name: str, dtype: pl.DataType) -> list[Need]:
    """The window's side over the reference's fine grid (wasserstein), as
    mergeable states: rows and sums of x − origin per cell (grouped by the cell,
    the sums compensated when merged), and the values in the two outer cells
    (value counts; above their size bound the query runs in a single pass).
    The weights are the raw column: null and NaN rows land in the null cell,
    whose sum is not used, and ±inf in the outer cells (the scorer moves them
    to nulls)."""
    x = as_float(name, dtype)
    index = grid_expr(x, col.grid_lo, col.grid_scale)
    weights = pl.col(name) if dtype == pl.Float64 or dtype.is_integer() else x
    sums = {"sums": additive((weights - col.sum_origin).sum())}
    outer = weights.cast(pl.Float64).filter(index.is_in([0, GRID_CELLS + 1]))
    return [
        _need(frame, Use.CELLS, name, sums, by=index),
        _need(frame, Use.TAILS, name, {"outer": sorted_values(outer)}),
    ]
