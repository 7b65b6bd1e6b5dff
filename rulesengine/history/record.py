"""Writing result history: one row per tick, model, monitor, segment and column.

:func:`record` runs inside the caller's store transaction (the alert-state one in
:func:`rulesengine.alerting.tracker.process`), so history and alert state commit
or roll back together. A tick written twice replaces its rows (``INSERT OR
REPLACE`` on the primary key): a rerun at the same ``at`` leaves one row per
series, holding the latest values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rulesengine.alerting.store import Store
from rulesengine.engine.results import ModelResults, Result, reported

DEFAULT_RETENTION = timedelta(days=30)


def stamp(ts: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQL."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def segment_key(segment: Mapping[str, Any]) -> str:
    """A segment as canonical JSON: sorted keys, no spaces (segment values are
    group keys: strings, numbers, booleans; anything else is written as text)."""
    return json.dumps(
        dict(segment), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def retention_of(engine: object) -> timedelta:
    """``engine.history.retention`` when the spec has it, else 30 days."""
    history = getattr(engine, "history", None)
    value = getattr(history, "retention", None)
    return value if isinstance(value, timedelta) else DEFAULT_RETENTION


def _row(model: str, at: str, r: Result) -> tuple[Any, ...]:
    value = r.value
    # NaN and infinities are stored as NULL, as the Results JSON prints them
    value = reported(value) if value is not None and math.isfinite(value) else None
    return (
        model,
        r.monitor,
        segment_key(r.segment),
        r.column or "",
        at,
        r.kind,
        r.type,
        value,
        r.status,
        r.rows,
        stamp(r.window_start) if r.window_start else None,
        stamp(r.window_end) if r.window_end else None,
        _coverage(r),
    )


def _coverage(r: Result) -> float | None:
    """The result's label coverage (metrics with ``join``), else None."""
    value = r.details.get("label_coverage")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def record(
    store: Store,
    models: Sequence[ModelResults],
    at: datetime,
    retention: timedelta = DEFAULT_RETENTION,
) -> int:
    """Write ``models``' results (each at its own ``ModelResults.at``) and delete
    every row older than ``at - retention``. Call it inside ``store.transaction()``. Returns the
    number of rows written."""
    # each model's own evaluation time: the daemon evaluates models on their own ticks
    rows = [_row(m.model, stamp(m.at), r) for m in models for r in m.results]
    store.db.executemany(
        "INSERT OR REPLACE INTO history (model, monitor, segment, col, at, kind, type,"
        " value, status, rows, window_start, window_end, label_coverage)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    store.db.execute("DELETE FROM history WHERE at < ?", (stamp(at - retention),))
    return len(rows)
