"""Turn a plan's collected frames into values: the prepared references of the
reference phase, and the :class:`~rulesengine.engine.results.Result` of every
monitor, segment and column of the window's phase.

NumPy is imported inside the functions that use it, here and in the other modules
on the path of ``rulesengine run``: a run of plain checks and metrics never needs
it, and importing it costs 0.07–0.1 s of every start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import polars as pl

from rulesengine.engine.execute import Collected
from rulesengine.engine.plan import (
    ALL,
    BUCKET,
    CELL_COUNT,
    ROWS,
    Binding,
    MonitorPlan,
    Plan,
    approx_column,
)
from rulesengine.engine.results import ModelResults, Result, reported
from rulesengine.engine.sources import POLARS_ERRORS, reason
from rulesengine.engine.thresholds import Resolved, needs_resolving, resolve
from rulesengine.monitors.aggs import RANK_ERRORS
from rulesengine.monitors.base import ROWS_BY, SEGMENTS, Scored, Segment, Undefined
from rulesengine.spec.model import MonitorSpec, Thresholds


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
    import numpy as np

    assert b.cells is not None
    slots = b.cells + 1
    index = df.get_column(b.names["index"]).to_numpy()
    counted = b.names["index"] + CELL_COUNT
    if counted in df.columns:  # counts per cell, not an index per row
        weights = df.get_column(counted).to_numpy().astype(float)
        counts = np.bincount(index, weights=weights, minlength=slots)
        return {(): {ROWS: int(weights.sum()), "counts": counts, "sums": None}}
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
    import numpy as np

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
            import numpy as np

            return {"counts": np.zeros(b.cells + 1), "sums": None, "outer": np.empty(0)}
        return {"counts": row["counts"], "sums": row["sums"], "outer": row.get("outer")}
    values = _values(row, names)
    if b.by:
        values[ROWS_BY] = row[ROWS_BY] if row else {}
    return values


def _rank_error(row: Mapping[str, Any] | None, names: Mapping[str, str]) -> float | None:
    """The largest rank error among a row's aggregates estimated from sketches
    (None when all are exact: see ``approx_column``)."""
    errors: list[float] = []
    for name in names.values():
        got = (row or {}).get(approx_column(name))
        if isinstance(got, dict):  # per bucket (a ``by`` row)
            errors += [e for e in got.values() if e is not None]
        elif got is not None:
            errors.append(got)
    return max(errors) if errors else None


def _rank_errors(row: Mapping[str, Any] | None, names: Mapping[str, str]) -> dict[str, float]:
    """{local name: rank error} of a row's aggregates estimated from sketches (the
    largest over a ``by`` row's buckets)."""
    out: dict[str, float] = {}
    for local, name in names.items():
        got = (row or {}).get(approx_column(name))
        if isinstance(got, dict):
            got = max((e for e in got.values() if e is not None), default=None)
        if got is not None:
            out[local] = got
    return out


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


def _lost(frames: Collected, b: Binding) -> str | None:
    """Why one of a binding's aggregates failed (``Collected.lost``), if one did."""
    for i, names in ((b.overall, b.names), (b.segmented, b.segmented_names)):
        lost = frames.lost.get(i, {}) if i is not None else {}
        bad = [lost[n] for n in names.values() if n in lost]
        if bad:
            return bad[0]
    return None


def reference_values(plan: Plan, frames: Collected, mp: MonitorPlan) -> dict[str, Any] | str:
    """One monitor's reference aggregates as ``{role: values}`` (and per segment
    under ``SEGMENTS``), as ``MonitorType.prepared`` takes them; or why one failed."""
    values: dict[str, Any] = {}
    for b in mp.bindings:
        df = frames[b.overall]
        seg_df = frames[b.segmented] if b.segmented is not None else None
        if isinstance(df, str):
            return df
        if isinstance(seg_df, str):
            return seg_df
        lost = _lost(frames, b)
        if lost:  # a reference aggregate failed alone: never score without it
            return lost
        row = _binding_rows(df, b).get(())
        values[b.role] = _role_values(b, row, b.names)
        values[b.role][ROWS] = int(row[ROWS]) if row else 0
        if seg_df is None or b.segmented is None:
            continue
        segment_by = plan.queries[b.segmented].segment_by
        for key, seg_row in _binding_rows(seg_df, b, segment_by).items():
            seg_values = _role_values(b, seg_row, b.segmented_names)
            seg_values[ROWS] = int(seg_row[ROWS])
            values.setdefault(SEGMENTS, {}).setdefault(key, {})[b.role] = seg_values
    return values


def score(plan: Plan, frames: Collected) -> ModelResults:
    """Every result of the window's plan, from its collected ``frames``."""
    scorer = _Scorer(plan, frames)
    results = [r for mp in plan.monitors for r in scorer.results(mp)]
    return ModelResults(plan.model.model, plan.at, tuple(results), tuple(scorer.warnings))


# per role: its rows overall, and per segment (None when the role is overall only)
PerRole = dict[str, tuple[dict[Segment, dict], dict[Segment, dict] | None]]


class _Scorer:
    """Results monitor by monitor; warns when a monitor has more segments than
    ``evaluation.max_segments``."""

    def __init__(self, plan: Plan, frames: Collected) -> None:
        self.plan = plan
        self.frames = frames
        self.warnings: list[str] = []

    def results(self, mp: MonitorPlan) -> list[Result]:
        """A monitor's results: overall, then per segment; or its one error or
        no_data result."""
        m = mp.monitor
        common = {**self._identity(mp), **self._window(mp)}
        if mp.error:
            return [Result(**common, status="error", details={"error": mp.error})]
        if mp.no_data:
            return [Result(**common, status="no_data", rows=0, details={"reason": mp.no_data})]
        failed = self._failure(mp)
        if failed:
            return [Result(**common, status="error", details={"error": failed})]
        per_role: PerRole = {}
        for b in mp.bindings:
            overall = _binding_rows(self.frames[b.overall], b)  # type: ignore[arg-type]
            seg = None
            if b.segmented is not None:
                seg = _binding_rows(
                    self.frames[b.segmented],  # type: ignore[arg-type]
                    b,
                    self.plan.queries[b.segmented].segment_by,
                )
            per_role[b.role] = (overall, seg)
        out = self.one(mp, common, per_role, ())
        if _main(mp, segmented=True) is not None:
            for key in self._segments(m, per_role):
                out.extend(self.one(mp, common, per_role, key))
        return out

    def _identity(self, mp: MonitorPlan) -> dict[str, Any]:
        m = mp.monitor
        return {
            "monitor": m.name,
            "kind": m.kind,
            "type": m.type,
            "source": m.source,
            "column": mp.type.column(m) if mp.type else getattr(m, "column", None),
            "threshold": m.thresholds.as_dict(),
        }

    def _window(self, mp: MonitorPlan) -> dict[str, Any]:
        """The main frame's window; the monitor's own when it has no main frame."""
        main = _main(mp)
        if main is not None:
            frame = self.plan.queries[main.overall].frame
            return {"window_start": frame.start, "window_end": frame.end}
        m, ctx = mp.monitor, self.plan.ctx
        start, end = ctx.window(m) if m.source in self.plan.model.sources else (None, None)
        return {"window_start": start, "window_end": end}

    def _failure(self, mp: MonitorPlan) -> str | None:
        """Why a query or an aggregate of the monitor failed, if one did."""
        ran = [
            self.frames[i] for b in mp.bindings for i in (b.overall, b.segmented) if i is not None
        ]
        failed = [f for f in ran if isinstance(f, str)]
        failed.extend(f for f in (_lost(self.frames, b) for b in mp.bindings) if f)
        return failed[0] if failed else None

    def _segments(self, m: MonitorSpec, per_role: PerRole) -> list[Segment]:
        """The segments to score, the largest ``evaluation.max_segments``, in order."""
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
        return sorted(keys, key=lambda k: tuple(str(x) for x in k))

    def one(
        self, mp: MonitorPlan, common: dict, per_role: PerRole, segment: Segment
    ) -> list[Result]:
        """The results of one segment (() overall)."""
        m = mp.monitor
        assert mp.type is not None
        values: dict[str, dict[str, Any]] = {}
        rows: dict[str, int] = {}
        errors: list[float] = []
        own = getattr(mp.type, "own_rank_errors", False)
        for b in mp.bindings:
            overall, seg = per_role[b.role]
            if segment == ():
                row, names = overall.get(()), b.names
            else:
                row, names = (seg or {}).get(segment), b.segmented_names
            values[b.role] = _role_values(b, row, names)
            rows[b.role] = int(row[ROWS]) if row else 0
            if b.cells is not None:
                continue
            if own:  # the monitor marks its estimates itself, value by value
                own_errors = _rank_errors(row, names)
                if own_errors:
                    values[b.role][RANK_ERRORS] = own_errors
                continue
            error = _rank_error(row, names)
            errors += [error] if error is not None else []
        seg_dict = dict(zip(m.segment_by, segment, strict=True)) if segment else {}
        common = {**common, "segment": seg_dict, "rows": rows.get("main", 0)}
        empty_ok = mp.type.zero_rows_ok(m)
        if not empty_ok and rows.get("main", 0) == 0:
            status, why = mp.type.when_empty(m, rows)
            return [Result(**common, status=status, details={"reason": why})]
        if rows.get("main", 0) > 0 or not empty_ok:
            guard = mp.type.guard_rows(m, rows)
            if guard < m.min_rows and mp.type.min_rows_apply(m):
                too_few = {"reason": f"{guard} rows, min_rows is {m.min_rows}"}
                return [Result(**common, status="insufficient_data", details=too_few)]
        try:
            scored_all = mp.type.score_all(m, values, rows, self.plan.ctx, segment)
        except Undefined as exc:
            scored_all = [Scored(None, {"reason": str(exc)}, "insufficient_data")]
        except POLARS_ERRORS as exc:  # a scoring bug must not hide the other results
            scored_all = [Scored(None, {"error": reason(exc)}, "error")]
        if errors:  # estimated from a sketch (docs/scaling.md, "Exact and sketched")
            sketched = {"approximate": True, "rank_error": max(errors)}
            scored_all = [replace(s, details={**s.details, **sketched}) for s in scored_all]
        if needs_resolving(m):
            resolved = resolve(m, seg_dict, self.plan.ctx.derived.get(m.name))
            return [_resolved_result(common, scored, resolved) for scored in scored_all]
        return [_result(common, scored, m.thresholds) for scored in scored_all]


def _main(mp: MonitorPlan, *, segmented: bool = False) -> Binding | None:
    """The monitor's main binding (with ``segmented``, only if it is per segment)."""
    main = next((b for b in mp.bindings if b.role == "main"), None)
    if segmented and (main is None or main.segmented is None):
        return None
    return main


def _result(common: dict[str, Any], scored: Scored, thresholds: Thresholds) -> Result:
    """A scored value as a result; its status from the thresholds unless it has one."""
    value = scored.value
    if value is not None and isinstance(value, float) and not math.isfinite(value):
        value = None
    # decided on the value as reported (12 significant digits), so that the
    # last bits of a parallel sum never flip a status at its threshold
    shown = reported(value) if isinstance(value, float) else value
    status = scored.status or status_for(shown, thresholds)
    fields = dict(common)
    if scored.rows is not None:
        fields["rows"] = scored.rows
    if scored.column is not None:
        fields["column"] = scored.column
    if scored.type is not None:
        fields["type"] = scored.type
    if scored.threshold is not None:
        fields["threshold"] = scored.threshold
    return Result(**fields, value=value, status=status, details=scored.details)


def _resolved_result(common: dict[str, Any], scored: Scored, resolved: Resolved) -> Result:
    """A scored value judged by its segment's or derived thresholds
    (engine/thresholds.py): ``threshold`` shows the numbers used, ``details`` where
    they came from; a derived severity without a band makes an ``ok``
    ``insufficient_data``."""
    r = _result({**common, "threshold": resolved.shown}, scored, resolved.thresholds)
    details = {**r.details, **resolved.details}
    status = r.status
    if resolved.unknown and status == "ok" and scored.status is None:
        status = "insufficient_data"
        details["reason"] = "; ".join(resolved.unknown)
    return replace(r, status=status, details=details)
