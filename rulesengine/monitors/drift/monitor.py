"""Drift monitors: each column of the window against a reference profile.

Phase 1 (``prepare``) reduces the reference to a
:class:`~rulesengine.monitors.drift.profiles.Profile` once, or loads it from the
cache. Phase 2 adds the current side to the fused
plan: histogram counts over the reference's cells (a per-row cell index that
NumPy counts, see :class:`~rulesengine.monitors.base.Cells`), category counts
(``group_by`` on the label), or the window's values for exact tests. Scoring gives one result
per column and one ``drift_share`` result per segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rulesengine.engine.sources import FILE_COLUMN, local_files
from rulesengine.monitors.base import (
    ROWS_BY,
    SEGMENTS,
    Cells,
    EvalContext,
    FrameKey,
    MonitorType,
    Need,
    Scored,
    register,
)
from rulesengine.monitors.drift.methods import (
    CATEGORICAL_ONLY,
    HISTOGRAM_METHODS,
    METHODS,
    NUMERIC_ONLY,
    SAMPLE_METHODS,
    Outcome,
    auto_method,
    categorical_test,
    drifted,
    histogram_method,
    sample_method,
    threshold_op,
    two_sided_normal_p,
    wasserstein_cells,
)
from rulesengine.monitors.drift.profiles import (
    GRID_CELLS,
    ColumnProfile,
    Profile,
    as_categorical,
    cache_key,
    categorical_profile,
    fingerprint,
    grid_edges,
    grid_expr,
    numeric_profile,
)
from rulesengine.monitors.drift.profiles import load as load_profile
from rulesengine.monitors.drift.profiles import save as save_profile
from rulesengine.spec.model import DriftSpec

NULL_SHARE_ALPHA = 0.05


def _numeric_dtype(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and dtype != pl.Boolean


def _array(values: Any) -> np.ndarray:
    """A list aggregate (numpy array, list or None) as a float array."""
    return np.empty(0) if values is None else np.asarray(values, dtype=float)


def _text(dtype: pl.DataType | None) -> bool:
    """A window column that may hold numbers as text (a CSV column read as strings),
    or only nulls (a Parquet column of type Null)."""
    return dtype in (pl.String, pl.Null)


def _float(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """The column as Float64; text that is not a number gives null (counted apart:
    see the ``u:`` need), anything else must cast."""
    return pl.col(name).cast(pl.Float64, strict=not _text(dtype))


def _numbers(name: str, dtype: pl.DataType | None = None) -> pl.Expr:
    """A numeric column as Float64 with NaN and ±inf as missing (as Evidently drops
    them), so both sides and every method see the same values. Integers cannot be
    NaN or infinite: they are only cast."""
    x = _float(name, dtype)
    if dtype is not None and dtype.is_integer():
        return x
    return pl.when(x.is_finite()).then(x).otherwise(None)


def _labels(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """Category labels; numbers are labelled as their Float64 text on both sides."""
    if dtype is not None and _numeric_dtype(dtype):
        return _numbers(name, dtype).cast(pl.String)
    return pl.col(name).cast(pl.String)


def drift_columns(m: DriftSpec, ctx: EvalContext) -> list[str]:
    """The listed columns, or every column of the source except the timestamp,
    segment columns, ``exclude``, temporal and nested columns."""
    if m.columns:
        return list(m.columns)
    source = ctx.model.sources[m.source]
    schema = ctx.schemas[m.source]
    skip = {source.timestamp, FILE_COLUMN, *m.segment_by, *m.exclude}
    return [
        c for c, t in schema.items() if c not in skip and not t.is_temporal() and not t.is_nested()
    ]


def reference_frame(m: DriftSpec, ctx: EvalContext) -> FrameKey:
    ref = m.reference
    if ref.offset is None:
        same = ref.source == m.source
        return FrameKey(ref.source, None, None, m.filter if same else None)
    _, end = ctx.window(m)
    end = (end or ctx.at) - ref.offset
    return FrameKey(ref.source, end - (ref.window or m.window), end, m.filter)


class _Plan:
    """Per column: kind, method, threshold, decided from the reference profile.

    Kind: the override's ``type``; else a method that only fits one kind decides;
    else numeric dtypes with more than 5 distinct reference values are numeric and
    everything else categorical (as Evidently). ``auto`` counts the reference's
    non-null values, as Evidently does after dropping missing ones.
    """

    def __init__(self, m: DriftSpec, profile: Profile) -> None:
        self.columns: dict[str, tuple[ColumnProfile, str, float]] = {}
        self.errors: dict[str, str] = {}
        self.empty: dict[str, str] = {}
        for name, col in profile.columns.items():
            override = m.overrides.get(name)
            method = override.method if override and override.method else m.method
            if col.n == 0:
                self.empty[name] = "the reference has no non-null values"
                continue
            if override and override.type:
                kind = override.type
            elif col.kind == "numeric" and method in NUMERIC_ONLY:
                kind = "numeric"
            elif method in CATEGORICAL_ONLY:
                kind = "categorical"
            else:
                kind = "numeric" if col.kind == "numeric" and col.unique > 5 else "categorical"
            if kind == "categorical" and col.kind == "numeric":
                col = as_categorical(col)
            elif kind == "numeric" and col.kind == "categorical":
                self.errors[name] = (
                    f"column '{name}' is not numeric: it cannot be treated as numeric"
                )
                continue
            if method == "auto":
                # a column declared numeric stays numeric whatever its distinct values
                unique = max(col.unique, 6) if kind == "numeric" else col.unique
                method = auto_method(kind == "numeric", col.n, unique)
            if kind == "categorical" and method in NUMERIC_ONLY:
                self.errors[name] = (
                    f"method '{method}' needs a numeric column; '{name}' is categorical"
                )
                continue
            if kind == "numeric" and method in CATEGORICAL_ONLY:
                self.errors[name] = (
                    f"method '{method}' needs a categorical column; '{name}' is numeric"
                )
                continue
            if override and override.threshold is not None:
                threshold = override.threshold
            elif m.threshold is not None:
                threshold = m.threshold
            else:
                threshold = METHODS[method][1]
            self.columns[name] = (col, method, float(threshold))


def _plan(m: DriftSpec, profile: Profile) -> _Plan:
    """The per-column choices, decided once per profile (``needs`` and every
    segment's ``score_all`` read them; deciding converts samples to categories)."""
    if profile.decided is None:
        profile.decided = _Plan(m, profile)
    return profile.decided


@register
class Drift(MonitorType):
    kind = "drift"
    names = ("drift",)

    # ------------------------------------------------------------ reference
    def _cache_path(
        self, m: DriftSpec, ctx: EvalContext, columns: list[str], frame: FrameKey
    ) -> Path | None:
        if ctx.cache_dir is None or frame.end is not None:
            return None  # a trailing baseline moves every tick: not worth keeping
        source = ctx.model.sources[frame.source]
        files = local_files(source)
        fp = fingerprint(files)
        if fp is None:
            return None
        dtypes = {c: str(ctx.schemas[frame.source].get(c)) for c in columns}
        key = cache_key(
            {
                "files": fp,
                "path": source.path,
                "columns": dtypes,
                "bins": m.bins,
                "filter": frame.filter,
                "start": frame.start,
                "end": frame.end,
                "timestamp": source.timestamp,
            }
        )
        return ctx.cache_dir / f"{key}.npz"

    def prepare(self, m, ctx):
        columns = drift_columns(m, ctx)
        frame = reference_frame(m, ctx)
        path = self._cache_path(m, ctx, columns, frame)
        ref_schema = ctx.schemas[frame.source]
        if path is not None and path.exists():
            profile = load_profile(path)
            present = {c for c in columns if c in ref_schema}
            if profile is not None and set(profile.columns) == present:
                ctx.prepared[m.name] = profile
                return []
        split = _split_baseline(m, frame, ref_schema)
        needs = [Need(frame, {}, role="main", segmented=split)]
        for c in columns:
            if c not in ref_schema:
                continue  # reported when scoring
            if _numeric_dtype(ref_schema[c]):
                needs.append(
                    Need(
                        frame,
                        {
                            "values": _numbers(c, ref_schema[c]).drop_nulls().sort(),
                            "nulls": _numbers(c, ref_schema[c]).null_count(),
                        },
                        role=f"n:{c}",
                        segmented=split,
                    )
                )
            else:
                needs.append(Need(frame, {}, role=f"c:{c}", segmented=split, by=_labels(c, None)))
        return needs

    def prepared(self, m, values, ctx) -> Profile:
        with np.errstate(all="ignore"):  # overflowing values give non-finite results
            profile = _profile(m, values)
        frame = reference_frame(m, ctx)
        if _split_baseline(m, frame, ctx.schemas[frame.source]):
            profile.segmented = True
            for key, seg_values in values.get(SEGMENTS, {}).items():
                with np.errstate(all="ignore"):
                    profile.segments[key] = _profile(m, seg_values, like=profile)
        path = self._cache_path(m, ctx, drift_columns(m, ctx), reference_frame(m, ctx))
        if path is not None and profile.rows > 0:
            save_profile(profile, path)
        return profile

    # ------------------------------------------------------------ current
    def needs(self, m, ctx):
        start, end = ctx.window(m)
        frame = FrameKey(m.source, start, end, m.filter)
        profile: Profile = ctx.prepared[m.name]
        plan = _plan(m, profile)
        needs = [Need(frame, {})]
        schema = ctx.schemas[m.source]
        for name in plan.empty:
            if name in schema:
                x = _numbers(name, schema[name]) if _numeric_dtype(schema[name]) else pl.col(name)
                needs.append(
                    Need(frame, {"n": x.count(), "nulls": x.null_count()}, role=f"e:{name}")
                )
        for name, (col, method, _t) in plan.columns.items():
            if name not in schema or _changed_type(col, name, schema):
                continue  # reported when scoring
            c = _numbers(name, schema[name])
            if col.kind == "numeric" and schema[name] == pl.String:
                not_numbers = pl.col(name).is_not_null() & _float(name, pl.String).is_null()
                needs.append(Need(frame, {"bad": not_numbers.sum()}, role=f"u:{name}"))
            if col.kind == "categorical":
                needs.append(Need(frame, {}, role=f"c:{name}", by=_labels(name, schema[name])))
            elif method in SAMPLE_METHODS:
                needs.append(
                    Need(
                        frame,
                        {"values": c.drop_nulls(), "nulls": c.null_count()},
                        role=f"s:{name}",
                    )
                )
            elif method == "wasserstein":
                needs.append(
                    Need(frame, {}, role=f"h:{name}", cells=_fine_cells(col, name, schema))
                )
            else:
                bucket = c.bin_intervals(list(col.edges), labels=False, right_closed=True)
                needs.append(
                    Need(frame, {}, role=f"h:{name}", cells=Cells(bucket, len(col.edges) + 1))
                )
        return needs

    # ------------------------------------------------------------ scoring
    def score(self, m, values, rows, ctx) -> Scored:
        """The monitor's summary: its drift_share result (score_all gives every one)."""
        return self.score_all(m, values, rows, ctx)[-1]

    def score_all(self, m, values, rows, ctx, segment=()) -> list[Scored]:
        profile: Profile = ctx.prepared[m.name]
        plan = _plan(m, profile)  # kinds and methods: the whole reference's, every segment
        own = profile.segmented and segment != ()  # the segment's own baseline
        schema = ctx.schemas[m.source]
        results: list[Scored] = []
        p_values: dict[str, float] = {}
        wanted = drift_columns(m, ctx)
        for name in wanted:
            if name in plan.errors:
                results.append(Scored(None, {"error": plan.errors[name]}, "error", column=name))
                continue
            if name in plan.empty:
                v = values.get(f"e:{name}", {})
                n_cur = int(v.get("n") or 0)
                details = {"reason": plan.empty[name], "reference_rows": 0, "current_rows": n_cur}
                ref_col = profile.columns[name]
                details.update(_null_share(0, ref_col.nulls, n_cur, int(v.get("nulls") or 0)))
                results.append(Scored(None, details, "insufficient_data", rows=n_cur, column=name))
                continue
            if name not in profile.columns or name not in plan.columns:
                where = "reference" if name not in profile.columns else "window"
                results.append(
                    Scored(
                        None,
                        {"error": f"column '{name}' not found in the {where} source"},
                        "error",
                        column=name,
                    )
                )
                continue
            if name not in schema:
                results.append(
                    Scored(
                        None,
                        {"error": f"column '{name}' not found in source '{m.source}'"},
                        "error",
                        column=name,
                    )
                )
                continue
            col, method, threshold = plan.columns[name]
            changed = _changed_type(col, name, schema)
            bad = int(values.get(f"u:{name}", {}).get("bad") or 0)
            if bad:
                changed = _changed_type(col, name, schema, bad)
            if changed:
                results.append(Scored(None, {"error": changed}, "error", column=name))
                continue
            if own:
                seg_profile = profile.segments.get(segment)
                seg_col = _segment_column(col, seg_profile, name)
                if seg_col is None:
                    own_col = seg_profile.columns.get(name) if seg_profile else None
                    ref_nulls = own_col.nulls if own_col is not None else 0
                    results.append(self._no_baseline(name, col, method, values, ref_nulls))
                    continue
                col = seg_col
            try:
                results.append(self._column(m, name, col, method, threshold, values, profile))
            except (ValueError, ArithmeticError) as exc:  # e.g. z on a non-binary column
                results.append(
                    Scored(None, {"error": str(exc), "method": method}, "error", column=name)
                )
                continue
            last = results[-1]
            if last.status is None and METHODS[method][0] == "p":
                p_values[name] = last.details["p_value"]
        self._correct(m, results, p_values)
        return [*results, self._share(m, results, rows)]

    def _no_baseline(
        self,
        name: str,
        col: ColumnProfile,
        method: str,
        values: Mapping[str, Any],
        ref_nulls: int,
    ) -> Scored:
        _, n_cur, nulls_cur = self._current(name, col, method, values)
        details: dict[str, Any] = {
            "reason": "the segment has no values of this column in the baseline window",
            "method": method,
            "reference_rows": 0,
            "current_rows": n_cur,
        }
        details.update(_null_share(0, ref_nulls, n_cur, nulls_cur))
        return Scored(None, details, "insufficient_data", rows=n_cur, column=name)

    def _current(
        self, name: str, col: ColumnProfile, method: str, values: Mapping[str, Mapping[str, Any]]
    ) -> tuple[Any, int, int]:
        """(current side, non-null rows, null rows) for one column."""
        if col.kind == "categorical":
            counts = dict(values[f"c:{name}"].get(ROWS_BY, {}))
            nulls = int(counts.pop(None, 0))
            return counts, sum(counts.values()), nulls
        if method in SAMPLE_METHODS:
            v = values[f"s:{name}"]
            sample = _array(v["values"])
            return sample, int(sample.size), int(v["nulls"] or 0)
        v = values[f"h:{name}"]
        counts, sums = v["counts"], v["sums"]
        cells, nulls = counts[:-1], counts[-1]  # the last slot: nulls
        outer = v.get("outer")
        if outer is not None and sums is not None:
            cells, sums, outer, nulls = _move_infinities(
                cells, sums[:-1], outer, nulls, col.sum_origin
            )
        current = (cells, sums, outer)
        return current, int(cells.sum()), int(nulls)

    def _column(
        self,
        m: DriftSpec,
        name: str,
        col: ColumnProfile,
        method: str,
        threshold: float,
        values: Mapping[str, Mapping[str, Any]],
        profile: Profile,
    ) -> Scored:
        current, n_cur, nulls_cur = self._current(name, col, method, values)
        details: dict[str, Any] = {
            "method": method,
            "threshold": threshold,
            "reference_rows": col.n,
            "current_rows": n_cur,
            "column_type": col.kind,
        }
        details.update(_null_share(col.n, col.nulls, n_cur, nulls_cur))
        sev = {m.column_severity: {threshold_op(method): threshold}}
        min_rows = max(m.min_rows, 1)
        if n_cur < min_rows or col.n < 1:
            details["reason"] = (
                f"{n_cur} non-null values in the window, min_rows is {min_rows}"
                if n_cur < min_rows
                else "the reference has no non-null values"
            )
            return Scored(
                None, details, "insufficient_data", rows=n_cur, column=name, threshold=sev
            )
        with np.errstate(all="ignore"):
            outcome = _outcome(col, method, current)
        if not np.isfinite(outcome.value) and METHODS[method][0] == "p":
            details["reason"] = (
                f"the {method} test is undefined for these values (e.g. both samples constant)"
            )
            return Scored(
                None, details, "insufficient_data", rows=n_cur, column=name, threshold=sev
            )
        if not np.isfinite(outcome.value):
            details["error"] = (
                f"the {method} statistic is not a finite number: the values are too "
                "large for float64 arithmetic"
            )
            return Scored(None, details, "error", rows=n_cur, column=name, threshold=sev)
        details["statistic"] = outcome.statistic
        if outcome.p_value is not None:
            details["p_value"] = outcome.p_value
        if outcome.bound is not None:
            details["approximation_bound"] = outcome.bound
        if not col.exact and method in SAMPLE_METHODS:
            details["reference_sketch"] = True
        is_drift = drifted(method, outcome.value, threshold)
        details["drifted"] = is_drift
        return Scored(outcome.value, details, None, rows=n_cur, column=name, threshold=sev)

    def _correct(self, m: DriftSpec, results: list[Scored], p_values: dict[str, float]) -> None:
        """Finalise per-column statuses, with the multiple-testing correction."""
        adjusted = _adjust(p_values, m.correction)
        for r in results:
            if r.status is not None:
                continue
            name = r.column or ""
            method = r.details["method"]
            if name in adjusted:
                r.details["adjusted_p_value"] = adjusted[name]
                r.details["correction"] = m.correction
                r.details["drifted"] = drifted(method, adjusted[name], r.details["threshold"])
            r.status = m.column_severity if r.details["drifted"] else "ok"

    def _share(self, m: DriftSpec, results: list[Scored], rows: Mapping[str, int]) -> Scored:
        judged = [r for r in results if r.status in ("ok", "warn", "critical")]
        drifted_cols = [r.column for r in results if r.details.get("drifted")]
        details = {"drifted_columns": drifted_cols, "columns": len(judged), "top": _top(results)}
        if not judged:
            details["reason"] = "no column could be compared"
            return Scored(
                None, details, "insufficient_data", type="drift_share", rows=rows.get("main", 0)
            )
        return Scored(
            len(drifted_cols) / len(judged), details, type="drift_share", rows=rows.get("main", 0)
        )


def _split_baseline(m: DriftSpec, frame: FrameKey, ref_schema: Mapping[str, Any]) -> bool:
    """A trailing baseline is split like the window when it has the segment columns:
    each segment is then compared with the same segment of the baseline."""
    return (
        frame.end is not None and bool(m.segment_by) and all(c in ref_schema for c in m.segment_by)
    )


def _profile(
    m: DriftSpec, values: Mapping[str, Mapping[str, Any]], like: Profile | None = None
) -> Profile:
    """The profile from the reference aggregates; with ``like`` (the whole baseline),
    one segment's, cut by the whole baseline's bins and grid."""
    columns: dict[str, ColumnProfile] = {}
    for role, v in values.items():
        if role.startswith("n:"):
            name = role[2:]
            base = like.columns.get(name) if like is not None else None
            columns[name] = numeric_profile(
                name, _array(v["values"]), int(v["nulls"] or 0), m.bins, like=base
            )
        elif role.startswith("c:"):
            name = role[2:]
            columns[name] = categorical_profile(name, v.get(ROWS_BY, {}))
    return Profile(int(values.get("main", {}).get("__rows", 0)), columns)


def _segment_column(
    whole: ColumnProfile, segment: Profile | None, name: str
) -> ColumnProfile | None:
    """The segment's own baseline of a column, seen as the whole baseline's kind;
    None when the segment has no values of it in the baseline."""
    col = segment.columns.get(name) if segment is not None else None
    if col is None or col.n == 0:
        return None
    if whole.kind == "categorical" and col.kind == "numeric":
        col = as_categorical(col)
    return col


def _changed_type(
    col: ColumnProfile, name: str, schema: Mapping[str, pl.DataType], not_numbers: int = 0
) -> str | None:
    """Why a column compared as numeric cannot be read as numbers in the window
    (its type changed since the reference), so that only this column fails. Text
    columns are read as numbers unless ``not_numbers`` of their values are not."""
    dtype = schema[name]
    if col.kind != "numeric" or _numeric_dtype(dtype) or (_text(dtype) and not not_numbers):
        return None
    what = f"holds {not_numbers} values that are not numbers" if not_numbers else f"is {dtype}"
    return (
        f"column '{name}' {what} in the window but is numeric in the reference: "
        f"its type changed; fix the data, or compare it as categories with "
        f"overrides: {{{name}: {{type: categorical}}}}"
    )


def _fine_cells(col: ColumnProfile, name: str, schema: Mapping[str, pl.DataType]) -> Cells:
    """The window's counts and sums over the reference's fine grid (wasserstein).
    The weights are the raw column: null and NaN rows land in the null slot, whose
    sum is not used, and ±inf in the outer cells (see :func:`_move_infinities`)."""
    dtype = schema[name]
    x = _float(name, dtype)
    index = grid_expr(x, col.grid_lo, col.grid_scale)
    weights = pl.col(name) if dtype == pl.Float64 or dtype.is_integer() else x
    return Cells(index, GRID_CELLS + 2, weights, outer=True, origin=col.sum_origin)


def _move_infinities(
    cells: np.ndarray, sums: np.ndarray, outer: np.ndarray, nulls: float, origin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """±inf values are missing values (as Evidently drops them). The fine grid
    puts them in its outer cells, whose sorted values show them at either end:
    count them as nulls there, and take the outer sums from the finite values."""
    start = int(np.searchsorted(outer, -np.inf, side="right"))
    stop = int(np.searchsorted(outer, np.inf, side="left"))
    if start == 0 and stop == outer.size and np.isfinite(sums[[0, -1]]).all():
        return cells, sums, outer, nulls
    infinite = start + (outer.size - stop)
    cells, sums = cells.copy(), sums.copy()
    cells[0] -= start
    cells[-1] -= outer.size - stop
    outer = outer[start:stop]
    low = int(cells[0])
    sums[0], sums[-1] = (outer[:low] - origin).sum(), (outer[low:] - origin).sum()
    return cells, sums, outer, nulls + infinite


def _top(results: list[Scored], n: int = 5) -> list[dict[str, Any]]:
    """The most drifted columns, for notifications."""
    drifted_rows = [r for r in results if r.details.get("drifted")]

    def severity(r: Scored) -> float:
        kind = METHODS[r.details["method"]][0]
        return -(r.value or 0.0) if kind == "d" else (r.value or 0.0)

    return [
        {"column": r.column, "method": r.details["method"], "value": r.value}
        for r in sorted(drifted_rows, key=severity)[:n]
    ]


def _outcome(col: ColumnProfile, method: str, current: Any) -> Outcome:
    if col.kind == "categorical":
        counts: dict[str, int] = current
        ref = [*col.counts.tolist(), 0.0]
        cur = [float(counts.get(c, 0)) for c in col.categories]
        cur.append(float(sum(v for k, v in counts.items() if k not in set(col.categories))))
        ref_arr, cur_arr = np.asarray(ref), np.asarray(cur)
        if method in HISTOGRAM_METHODS:
            return histogram_method(method, ref_arr, cur_arr)
        return categorical_test(method, ref_arr, cur_arr)
    if method in SAMPLE_METHODS:
        return sample_method(method, col.sample, current)
    counts, sums, outer = current
    if method == "wasserstein":
        # in coordinates relative to the sums' origin (precision for values far
        # from 0); the outer cells are integrated exactly from their values: the
        # cells below the first and above the last edge, sorted
        origin = col.sum_origin
        edges = grid_edges(col.grid_lo - origin, col.grid_scale)
        low = int(counts[0])
        tails = tuple(t - origin for t in (col.tail_low, col.tail_high, outer[:low], outer[low:]))
        lo, hi = float(edges[0]), float(edges[-1])  # the outer widths are not used
        return wasserstein_cells(
            edges, col.fine_counts, col.fine_sums, counts, sums, lo, hi, col.std, tails
        )
    return histogram_method(method, col.bin_counts, counts)


def _null_share(n_ref: int, nulls_ref: int, n_cur: int, nulls_cur: int) -> dict[str, Any]:
    """Null shares of both sides and a two-proportion z-test on them."""
    tot_ref, tot_cur = n_ref + nulls_ref, n_cur + nulls_cur
    out: dict[str, Any] = {
        "null_share_reference": nulls_ref / tot_ref if tot_ref else None,
        "null_share_current": nulls_cur / tot_cur if tot_cur else None,
    }
    if tot_ref and tot_cur:
        pooled = (nulls_ref + nulls_cur) / (tot_ref + tot_cur)
        se = (pooled * (1 - pooled) * (1 / tot_ref + 1 / tot_cur)) ** 0.5
        z = 0.0 if se == 0 else (nulls_ref / tot_ref - nulls_cur / tot_cur) / se
        p = two_sided_normal_p(float(z))
        out["null_share_p_value"] = p
        out["null_share_drift"] = p < NULL_SHARE_ALPHA
    return out


def _adjust(p_values: dict[str, float], correction: str) -> dict[str, float]:
    if correction == "none" or not p_values:
        return {}
    names = list(p_values)
    p = np.array([p_values[n] for n in names])
    k = len(p)
    if correction == "bonferroni":
        adj = np.minimum(p * k, 1.0)
    else:  # benjamini_hochberg step-up
        order = np.argsort(p)
        ranked = p[order] * k / np.arange(1, k + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(k)
        adj[order] = np.minimum(ranked, 1.0)
    return dict(zip(names, adj.tolist(), strict=True))
