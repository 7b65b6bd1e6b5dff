"""The report's content as plain data (what ``--format json`` prints and the
HTML page draws).

The current results are evaluated like ``rulesengine run`` as of ``at``; for
each drift column the reference and current counts are taken over the bins the
test itself used (the profile's bins for histogram methods, its fine grid for
``wasserstein``, the profile's bins for sample tests, the reference's
categories for categorical columns). Trends come from
the state file's history, opened read-only (never created), and so does label
coverage over time (metrics with ``join``); the alert timeline comes from its
alert log, every alert's state changes.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from rulesengine.alerting.store import store_error
from rulesengine.engine.evaluate import plan_model, profile_cache
from rulesengine.engine.execute import execute
from rulesengine.engine.results import Result, iso, worst_first
from rulesengine.engine.score import score
from rulesengine.history.change import read_only
from rulesengine.history.query import HistoryRow, read_history
from rulesengine.history.record import stamp
from rulesengine.monitors.base import ROWS_BY
from rulesengine.monitors.drift.columns import Role, Use
from rulesengine.monitors.drift.profiles import grid_edges
from rulesengine.monitors.drift.vocabulary import SAMPLE_METHODS
from rulesengine.spec.model import Config, ModelSpec

REPORT_VERSION = 1


class _Recorder:
    """Wraps a drift monitor type and keeps the overall window values it scored."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.values: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score_all(self, m: Any, values: Any, rows: Any, ctx: Any, segment: Any = ()) -> Any:
        if segment == ():
            self.values = values
        return self.inner.score_all(m, values, rows, ctx, segment)


def _evaluate(model: ModelSpec, at: datetime, cache: Path) -> tuple[Any, list[Result], dict]:
    """The model's plan, its results as ``run`` gives them, and per drift monitor
    the recorder of its window values."""
    plan = plan_model(model, at, cache)
    recorders: dict[str, _Recorder] = {}
    monitors = []
    for mp in plan.monitors:
        if mp.monitor.type == "drift" and mp.type is not None and mp.ready:
            rec = _Recorder(mp.type)
            recorders[mp.monitor.name] = rec
            mp = replace(mp, type=rec)
        monitors.append(mp)
    plan = replace(plan, monitors=tuple(monitors))
    results = score(plan, execute(plan.queries, model)).results
    return plan, list(results), recorders


def _floats(a: Any) -> list[float]:
    return [float(x) for x in np.asarray(a, dtype=float).tolist()]


def _numeric_hist(col: Any, method: str, values: dict[str, Any]) -> dict[str, Any] | None:
    """Reference and current counts over the bins the test used."""
    if method == "wasserstein":
        from rulesengine.monitors.drift.scoring import fine_cells

        edges = grid_edges(col.grid_lo, col.grid_scale)
        (cur, _, _), _, _ = fine_cells(col.name, col, values)  # rows per cell, nulls apart
        inside = len(edges) - 1  # the cells between the edges; the outer ones hold the tails
        ref = np.asarray(col.fine_counts, dtype=float)
        return {
            "bins": "fine grid (inner cells)",
            "open_ends": False,
            "edges": _floats(edges),
            "reference": _floats(ref[(len(ref) - inside) // 2 :][:inside]),
            "current": _floats(cur[(len(cur) - inside) // 2 :][:inside]),
        }
    edges = np.asarray(col.edges, dtype=float)
    if method == "t_test":  # counts, means and variances: no values to cut into bins
        return None
    if method in SAMPLE_METHODS:
        v = values.get(Role(Use.SAMPLE, col.name).key)
        if v is None:
            return None
        sample = np.asarray(v["values"], dtype=float)
        idx = np.searchsorted(edges, sample[np.isfinite(sample)], side="left")
        cur = np.bincount(idx, minlength=len(edges) + 1)  # as profiles._bin_counts cuts
        ref = col.bin_counts
        return {
            "bins": "reference profile bins (sample test)",
            "open_ends": True,
            "edges": _floats(edges),
            "reference": _floats(ref),
            "current": _floats(cur),
        }
    v = values.get(Role(Use.CELLS, col.name).key)
    if v is None:
        return None
    cur = np.asarray(v["counts"], dtype=float)[:-1]  # the last slot: nulls
    return {
        "bins": "reference profile bins",
        "open_ends": True,
        "edges": _floats(edges),
        "reference": _floats(col.bin_counts),
        "current": _floats(cur),
    }


def _categorical(col: Any, values: dict[str, Any]) -> dict[str, Any]:
    counts = dict(values[Role(Use.CATEGORIES, col.name).key].get(ROWS_BY, {}))
    counts.pop(None, None)
    known = set(col.categories)
    cur = [float(counts.get(c, 0)) for c in col.categories]
    cur.append(float(sum(v for k, v in counts.items() if k not in known)))
    ref = [*_floats(col.counts), 0.0]
    return {"categories": [*map(str, col.categories), "(new)"], "reference": ref, "current": cur}


def _shares(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _drift_columns(model: ModelSpec, plan: Any, results: list[Result], recorders: dict) -> list:
    """One entry per compared drift column of the overall window."""
    out = []
    for r in results:
        if r.type == "drift_share" or r.column is None or r.segment:
            continue
        rec, prepared = recorders.get(r.monitor), plan.ctx.prepared.get(r.monitor)
        if rec is None or rec.values is None or prepared is None:
            continue
        choice = prepared.choices.columns.get(r.column)
        if choice is None:
            continue
        col, method = choice.profile, choice.method
        entry: dict[str, Any] = {
            "monitor": r.monitor,
            "column": r.column,
            "kind": col.kind,
            "method": method,
            "status": r.status,
            "statistic": r.value,
            "threshold": choice.threshold,
        }
        try:
            if col.kind == "categorical":
                data = _categorical(col, rec.values)
                data["reference_shares"] = _shares(data["reference"])
                data["current_shares"] = _shares(data["current"])
            else:
                data = _numeric_hist(col, method, rec.values)
        except (KeyError, TypeError, ValueError):
            data = None
        if data is None:
            continue
        entry.update(data)
        out.append(entry)
    return out


def _summary(results: list[Result]) -> list[dict[str, Any]]:
    """The overall results, and the segments' results that are not ok, worst first."""
    out = []
    for r in worst_first(x for x in results if not x.segment or x.status != "ok"):
        out.append(
            {
                "monitor": r.monitor,
                "segment": dict(r.segment),
                "kind": r.kind,
                "type": r.type,
                "column": r.column,
                "status": r.status,
                "value": r.value,
                "threshold": dict(r.threshold),
            }
        )
    return out


def _series_key(row: HistoryRow) -> str:
    seg = ", ".join(f"{k}={v}" for k, v in sorted(row.segment.items()))
    return seg or "(all)"


def _trends(model: ModelSpec, rows: list[HistoryRow], results: list[Result]) -> list[dict]:
    """Per metric and KPI monitor: one series per segment from the history."""
    thresholds = {r.monitor: dict(r.threshold) for r in results if not r.segment}
    out = []
    for m in (*model.metrics, *model.kpis):
        series: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row.monitor == m.name:
                point = {"at": iso(row.at), "value": row.value, "status": row.status}
                series.setdefault(_series_key(row), []).append(point)
        out.append(
            {
                "monitor": m.name,
                "kind": m.kind,
                "threshold": thresholds.get(m.name, {}),
                "series": [{"segment": k, "points": v} for k, v in sorted(series.items())],
            }
        )
    return out


def _coverage(model: ModelSpec, rows: list[HistoryRow]) -> list[dict]:
    """Per metric with ``join``: its label coverage over time, one series per
    segment, from the history (store schema 9 on; older rows have none)."""
    out = []
    for m in model.metrics:
        if getattr(m, "join", None) is None:
            continue
        series: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row.monitor == m.name and row.label_coverage is not None:
                point = {"at": iso(row.at), "coverage": row.label_coverage}
                series.setdefault(_series_key(row), []).append(point)
        out.append(
            {
                "monitor": m.name,
                "min_label_coverage": getattr(m, "min_label_coverage", None),
                "series": [{"segment": k, "points": v} for k, v in sorted(series.items())],
            }
        )
    return out


_LOG = (
    "SELECT alert_id, at, monitor, segment, col, state, severity FROM alert_log AS l"
    " WHERE model = ?1 AND at <= ?3 AND (at >= ?2 OR at = (SELECT max(at) FROM alert_log"
    " WHERE alert_id = l.alert_id AND at < ?2)) ORDER BY alert_id, at"
)


def _spans(changes: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """An alert's state changes ``(at, state, severity)`` in time order as spans:
    each state other than inactive lasts until the next change (``end`` null while
    it still holds)."""
    spans = []
    for i, (at, state, severity) in enumerate(changes):
        if state == "inactive":
            continue
        end = changes[i + 1][0] if i + 1 < len(changes) else None
        spans.append({"state": state, "severity": severity or None, "start": at, "end": end})
    return spans


def _timeline(source: Any, model: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Pending, firing and resolved spans per alert (monitor, segment, column)
    from the store's alert log, since ``since`` (with the state each alert was in
    then) up to ``until``."""
    try:
        rows = source.db.execute(_LOG, (model, stamp(since), stamp(until))).fetchall()
    except sqlite3.OperationalError:  # a state file from before the alert log
        return []
    per: dict[str, list[Any]] = {}
    for r in rows:
        per.setdefault(r[0], []).append(r)
    out = []
    for found in per.values():
        _, _, monitor, segment, column, _, _ = found[0]
        changes = [(iso(datetime.fromisoformat(r[1])), r[5], r[6]) for r in found]
        spans = _spans(changes)
        if spans:
            seg = json.loads(segment)
            out.append(
                {"monitor": monitor, "segment": seg, "column": column or None, "spans": spans}
            )
    out.sort(
        key=lambda t: (t["monitor"], t["column"] or "", json.dumps(t["segment"], sort_keys=True))
    )
    return out


_ALERTS = (
    "SELECT monitor, segment, col, state, severity, pending_since, fired_at, resolved_at"
    " FROM alerts WHERE model = ? AND state <> 'inactive' ORDER BY monitor, col"
)


def _alerts(source: Any, model: str) -> list[dict[str, Any]]:
    """The alert states the store holds now (their latest episode only)."""
    try:
        rows = source.db.execute(_ALERTS, (model,)).fetchall()
    except sqlite3.Error:
        return []
    keys = ("monitor", "segment", "column", "state", "severity")
    keys += ("pending_since", "fired_at", "resolved_at")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for a in out:
        a["segment"] = json.loads(a["segment"])
        a["column"] = a["column"] or None
    return out


def model_report(model: ModelSpec, at: datetime, since: datetime, cache: Path, source: Any) -> dict:
    """One model's section of the report."""
    plan, results, recorders = _evaluate(model, at, cache)
    rows: list[HistoryRow] = []
    alerts: list[dict[str, Any]] = []
    if source is not None:
        rows = read_history(source, model.model, since=since, until=at)
        alerts = _alerts(source, model.model)
    return {
        "model": model.model,
        "summary": _summary(results),
        "drift": _drift_columns(model, plan, results, recorders),
        "trends": _trends(model, rows, results),
        "label_coverage": _coverage(model, rows),
        "timeline": _timeline(source, model.model, since, at) if source is not None else [],
        "alerts": alerts,
    }


def build_report(config: Config, at: datetime, since: datetime) -> dict[str, Any]:
    """The whole report: every model as of ``at``, history from ``since``."""
    cache = profile_cache(config)
    with read_only(config.engine.state) as (source, why):
        if source is not None:
            source.db.row_factory = sqlite3.Row  # read_history reads columns by name
        try:
            models = [model_report(m, at, since, cache, source) for m in config.models]
        except sqlite3.DatabaseError as exc:  # damaged past its header: exit 5, one line
            raise store_error(config.engine.state, exc) from exc
    return {
        "version": REPORT_VERSION,
        "at": iso(at),
        "since": iso(since),
        "state": str(config.engine.state),
        "history": why or "read",
        "models": models,
    }
