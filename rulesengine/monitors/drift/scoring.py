"""Scoring one segment of a drift monitor: one result per column, then one
``drift_share`` result over the columns that could be compared.

A column is compared with the whole reference's profile, or with the segment's
own baseline when a trailing baseline is split like the window. p-values may be
corrected for multiple testing (Bonferroni, Benjamini-Hochberg) before the
statuses are set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from rulesengine.monitors.aggs import RANK_ERRORS
from rulesengine.monitors.base import ROWS_BY, Scored
from rulesengine.monitors.drift.choices import ColumnChoice, Reference
from rulesengine.monitors.drift.columns import Role, Use, as_array, changed_type
from rulesengine.monitors.drift.methods import (
    Estimated,
    Outcome,
    Summary,
    categorical_test,
    drifted,
    estimated_sample_method,
    histogram_method,
    sample_method,
    t_test,
    threshold_op,
    two_sided_normal_p,
    wasserstein_cells,
)
from rulesengine.monitors.drift.profiles import (
    GRID_CELLS,
    SKETCH_POINTS,
    ColumnProfile,
    Profile,
    as_categorical,
    grid_edges,
)
from rulesengine.monitors.drift.vocabulary import HISTOGRAM_METHODS, METHODS, SAMPLE_METHODS
from rulesengine.spec.model import DriftSpec

NULL_SHARE_ALPHA = 0.05

Values = Mapping[str, Mapping[str, Any]]  # per role: its aggregates
Rows = Mapping[str, int]  # per role: its rows
Segment = tuple[Any, ...]  # the segment's key; () overall


def score_columns(
    m: DriftSpec,
    reference: Reference,
    values: Values,
    rows: Rows,
    columns: list[str],
    schema: Mapping[str, pl.DataType],
    segment: Segment = (),
) -> list[Scored]:
    """Every result of one segment (its key; () overall): the columns', then the
    drift_share's."""
    scorer = _Scorer(m, reference, values, schema, segment)
    results = [scorer.column(name) for name in columns]
    p_values = {
        r.column or "": r.details["p_value"]
        for r in results
        if r.status is None and METHODS[r.details["method"]][0] == "p"
    }
    _correct(m, results, p_values)
    return [*results, _share(results, rows)]


class _Scorer:
    """Scores the columns of one segment."""

    def __init__(
        self,
        m: DriftSpec,
        reference: Reference,
        values: Values,
        schema: Mapping[str, pl.DataType],
        segment: Segment,
    ) -> None:
        self.m, self.values, self.schema = m, values, schema
        self.profile, self.choices = reference.profile, reference.choices
        # kinds and methods are the whole reference's; a split baseline gives
        # each segment its own reference values
        self.own = self.profile.segmented and segment != ()
        self.baseline = self.profile.segments.get(segment) if self.own else None

    def column(self, name: str) -> Scored:
        unscored = self._unscored(name)
        if unscored is not None:
            return unscored
        choice = self.choices.columns[name]
        col = choice.profile
        if self.own:
            seg_col = _segment_column(col, self.baseline, name)
            if seg_col is None:
                return self._no_baseline(name, choice)
            col = seg_col
        try:
            return _compare(self.m, name, col, choice, self.values)
        except (ValueError, ArithmeticError) as exc:  # e.g. z on a non-binary column
            return Scored(None, {"error": str(exc), "method": choice.method}, "error", column=name)

    def _unscored(self, name: str) -> Scored | None:
        """The result of a column that cannot be compared, or None."""
        if name in self.choices.errors:
            return _error(name, self.choices.errors[name])
        if name in self.choices.empty:
            v = self.values.get(Role(Use.EMPTY, name).key, {})
            ref_nulls = self.profile.columns[name].nulls
            return _no_reference(name, self.choices.empty[name], None, ref_nulls, v)
        if name not in self.profile.columns or name not in self.choices.columns:
            where = "reference" if name not in self.profile.columns else "window"
            return _error(name, f"column '{name}' not found in the {where} source")
        if name not in self.schema:
            return _error(name, f"column '{name}' not found in source '{self.m.source}'")
        bad = self.values.get(Role(Use.NOT_NUMBERS, name).key, {}).get("bad")
        changed = changed_type(self.choices.columns[name].profile, name, self.schema, int(bad or 0))
        return _error(name, changed) if changed else None

    def _no_baseline(self, name: str, choice: ColumnChoice) -> Scored:
        """The segment has no values of the column in its own baseline."""
        own_col = self.baseline.columns.get(name) if self.baseline else None
        ref_nulls = own_col.nulls if own_col is not None else 0
        _, n_cur, nulls_cur = _current(name, choice.profile, choice.method, self.values)
        reason = "the segment has no values of this column in the baseline window"
        current = {"n": n_cur, "nulls": nulls_cur}
        return _no_reference(name, reason, choice.method, ref_nulls, current)


def _error(name: str, message: str) -> Scored:
    return Scored(None, {"error": message}, "error", column=name)


def _no_reference(
    name: str, reason: str, method: str | None, ref_nulls: int, current: Mapping[str, Any]
) -> Scored:
    """A column without reference values to compare with; ``current`` holds the
    window's non-null (``n``) and null counts."""
    n_cur = int(current.get("n") or 0)
    details: dict[str, Any] = {"reason": reason}
    if method is not None:
        details["method"] = method
    details.update(reference_rows=0, current_rows=n_cur)
    details.update(_null_share(0, ref_nulls, n_cur, int(current.get("nulls") or 0)))
    return Scored(None, details, "insufficient_data", rows=n_cur, column=name)


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


def _current(name: str, col: ColumnProfile, method: str, values: Values) -> tuple[Any, int, int]:
    """(current side, non-null rows, null rows) for one column."""
    if col.kind == "categorical":
        counts = dict(values[Role(Use.CATEGORIES, name).key].get(ROWS_BY, {}))
        nulls = int(counts.pop(None, 0))
        return counts, sum(counts.values()), nulls
    if method == "t_test":
        v = values[Role(Use.SAMPLE, name).key]
        n = int(v["n"] or 0)
        summary = Summary(n, _float(v["mean"]), _float(v["m2"]) if n else 0.0)
        return summary, n, int(v["nulls"] or 0)
    if method in SAMPLE_METHODS:
        v = values[Role(Use.SAMPLE, name).key]
        sample = as_array(v["values"])
        error = v.get(RANK_ERRORS, {}).get("values")
        if error is not None:  # order statistics of a sketch: the count beside them
            n = int(v["n"] or 0)
            return Estimated(sample, n, float(error)), n, int(v["nulls"] or 0)
        return sample, int(sample.size), int(v["nulls"] or 0)
    if method == "wasserstein":
        return fine_cells(name, col, values)
    v = values[Role(Use.CELLS, name).key]
    counts, sums = v["counts"], v["sums"]
    cells, nulls = counts[:-1], counts[-1]  # the last slot: nulls
    outer = v.get("outer")
    if outer is not None and sums is not None:
        cells, sums, outer, nulls = _move_infinities(cells, sums[:-1], outer, nulls, col.sum_origin)
    return (cells, sums, outer), int(cells.sum()), int(nulls)


def fine_cells(name: str, col: ColumnProfile, values: Values) -> tuple[Any, int, int]:
    """The window's rows and sums per fine cell ({cell: value}, the null cell
    under None) and its values in the outer cells, as arrays over every cell."""
    v = values[Role(Use.CELLS, name).key]
    slots = GRID_CELLS + 3  # the cells, then the nulls
    counts, sums = np.zeros(slots), np.zeros(slots)
    got_sums = v.get("sums") or {}
    for cell, rows in (v.get(ROWS_BY) or {}).items():
        at = slots - 1 if cell is None else int(cell)
        counts[at] = rows
        sums[at] = got_sums.get(cell) or 0.0
    outer = as_array(values.get(Role(Use.TAILS, name).key, {}).get("outer"))
    cells, nulls = counts[:-1], counts[-1]
    cells, sums, outer, nulls = _move_infinities(cells, sums[:-1], outer, nulls, col.sum_origin)
    return (cells, sums, outer), int(cells.sum()), int(nulls)


def _compare(
    m: DriftSpec, name: str, col: ColumnProfile, choice: ColumnChoice, values: Values
) -> Scored:
    """One column against its reference ``col``, with the status left for
    :func:`_correct` unless the comparison cannot be made."""
    method, threshold = choice.method, choice.threshold
    current, n_cur, nulls_cur = _current(name, col, method, values)
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
        return Scored(None, details, "insufficient_data", rows=n_cur, column=name, threshold=sev)
    with np.errstate(all="ignore"):
        outcome = _outcome(col, method, current)
    if not np.isfinite(outcome.value):
        status, key, text = _not_finite(method)
        details[key] = text
        return Scored(None, details, status, rows=n_cur, column=name, threshold=sev)
    sketch = current.rank_error if isinstance(current, Estimated) else None
    details.update(_outcome_details(outcome, col, method, threshold, sketch))
    return Scored(outcome.value, details, None, rows=n_cur, column=name, threshold=sev)


def _not_finite(method: str) -> tuple[str, str, str]:
    """(status, details key, text) for a statistic that is not a finite number."""
    if METHODS[method][0] == "p":
        text = f"the {method} test is undefined for these values (e.g. both samples constant)"
        return "insufficient_data", "reason", text
    text = (
        f"the {method} statistic is not a finite number: the values are too "
        "large for float64 arithmetic"
    )
    return "error", "error", text


def _outcome_details(
    outcome: Outcome,
    col: ColumnProfile,
    method: str,
    threshold: float,
    sketch: float | None = None,
) -> dict[str, Any]:
    details: dict[str, Any] = {"statistic": outcome.statistic}
    if outcome.p_value is not None:
        details["p_value"] = outcome.p_value
    if outcome.bound is not None:
        details["approximation_bound"] = outcome.bound
    if not col.exact and method in SAMPLE_METHODS:
        details["reference_sketch"] = True
    if sketch is not None:  # the window's values came from a sketch
        details.update(approximate=True, rank_error=sketch)
    details["drifted"] = drifted(method, outcome.value, threshold)
    return details


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
    if method == "t_test":
        return t_test(Summary.of(col.sample), current)
    if isinstance(current, Estimated):
        # the reference's sample holds every value, or SKETCH_POINTS evenly spaced
        # order statistics of them (a CDF within 1/(SKETCH_POINTS − 1))
        ref_error = 0.0 if col.exact else 1.0 / (SKETCH_POINTS - 1)
        return estimated_sample_method(method, col.sample, col.n, ref_error, current)
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


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


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


# ------------------------------------------------------------------ statuses


def _correct(m: DriftSpec, results: list[Scored], p_values: dict[str, float]) -> None:
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


def _share(results: list[Scored], rows: Rows) -> Scored:
    judged = [r for r in results if r.status in ("ok", "warn", "critical")]
    drifted_cols = [r.column for r in results if r.details.get("drifted")]
    details = {"drifted_columns": drifted_cols, "columns": len(judged), "top": _top(results)}
    sketched = [r.details["rank_error"] for r in results if r.details.get("approximate")]
    if sketched:  # some column's statistic is an estimate from a sketch
        details.update(approximate=True, rank_error=max(sketched))
    main = rows.get("main", 0)
    if not judged:
        details["reason"] = "no column could be compared"
        return Scored(None, details, "insufficient_data", type="drift_share", rows=main)
    return Scored(len(drifted_cols) / len(judged), details, type="drift_share", rows=main)


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
