"""The alert state machine: inactive → pending → firing → resolved.

One alert instance per (model, monitor, segment, column). Pure: the caller passes
the previous state, the new result and the evaluation time, and gets the new
state and the transition to notify about, if any.

* A *violation* is a ``warn``/``critical`` result, or ``no_data`` /
  ``insufficient_data`` / ``error`` under policy ``alert``; policy ``ok`` counts
  them as no violation, ``keep_last`` (the default) leaves the alert as it was.
* ``for: N`` fires after N consecutive violations, ``for: 30m`` once violations
  have lasted that long, ``fire_after: {violations: m, of_last: n}`` once m of the
  last n evaluations violated (and then resolves only when fewer do).
* ``keep_firing_for`` keeps a firing alert firing that long after the first
  evaluation that no longer violates (as Prometheus); ``resolve`` (hysteresis)
  keeps it firing while the value still violates the looser resolve threshold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rulesengine.engine.results import Result, segment_text
from rulesengine.spec.model import MonitorSpec

HISTORY = 1000  # evaluations remembered per alert (fire_after's of_last is at most this)


def fingerprint(model: str, monitor: str, segment: dict[str, Any], column: str | None) -> str:
    key = json.dumps([model, monitor, segment, column], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass
class AlertState:
    id: str
    model: str
    monitor: str
    segment: dict[str, Any]
    column: str | None
    labels: dict[str, str]
    state: str = "inactive"
    severity: str | None = None
    status: str | None = None
    reason: str | None = None
    value: float | None = None
    threshold: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    streak: int = 0
    pending_since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_violation_at: datetime | None = None
    clear_since: datetime | None = None  # first non-violating evaluation while firing
    history: list[bool] = field(default_factory=list)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Transition:
    """What changed for notification purposes: ``firing`` (newly firing or
    escalated) or ``resolved``."""

    kind: str
    alert: AlertState
    previous: str


def labels_for(model_labels: dict[str, str], m: MonitorSpec, r: Result) -> dict[str, str]:
    labels = {**model_labels, **m.labels}
    labels.update(
        {
            "monitor": m.name,
            "kind": m.kind,
            "type": r.type,
            "source": m.source,
            "segment": segment_text(r.segment, empty=""),
        }
    )
    if r.column:
        labels["column"] = r.column
    for k, v in r.segment.items():
        labels.setdefault(k, str(v))
    return labels


def _classify(r: Result, m: MonitorSpec) -> tuple[bool | None, str | None, str | None]:
    """(violating, severity, reason); violating None means keep the last state."""
    if r.status in ("warn", "critical"):
        return True, r.status, None
    if r.status == "ok":
        return False, None, None
    action = getattr(m.alert.policy, r.status)
    if action == "keep_last":
        return None, None, r.status
    if action == "ok":
        return False, None, r.status
    if m.kind == "drift" and r.column is not None:
        return True, m.column_severity, r.status  # a column alerts at its own severity
    severity = "critical" if m.thresholds.critical is not None or m.kind == "drift" else "warn"
    return True, severity, r.status


def _should_fire(s: AlertState, m: MonitorSpec, now: datetime) -> bool:
    a = m.alert
    if a.fire_after:
        need, of_last = a.fire_after
        return sum(s.history[-of_last:]) >= need
    if a.for_duration is not None:
        return s.pending_since is not None and now - s.pending_since >= a.for_duration
    return s.streak >= a.for_evaluations


def step(
    prev: AlertState | None,
    r: Result,
    m: MonitorSpec,
    model: str,
    model_labels: dict[str, str],
    now: datetime,
) -> tuple[AlertState, Transition | None]:
    """The alert's new state after result ``r`` at time ``now``."""
    s = _refreshed(prev, r, m, model, model_labels)
    if prev is not None and prev.updated_at == now:
        # the same evaluation time again (a re-run of --at): values refresh, the
        # alert does not move, so re-running gives the same answer
        return s, None
    s.updated_at = now
    violating, severity, reason = _classify(r, m)
    s.reason = reason
    if violating is None:  # keep_last: nothing moves
        if s.state == "resolved":
            s.state = "inactive"
        return s, None
    if not violating and _resolve_still_violated(s, r, m):
        violating, severity, s.reason = True, s.severity, "resolve threshold still violated"
    s.history = ([*s.history, violating])[-HISTORY:]
    s.streak = s.streak + 1 if violating else 0
    if violating:
        return _violated(s, m, severity, now)
    return _cleared(s, m, now)


def _refreshed(
    prev: AlertState | None, r: Result, m: MonitorSpec, model: str, model_labels: dict[str, str]
) -> AlertState:
    """A copy of ``prev`` (or a new alert) holding ``r``'s values and labels."""
    segment = dict(r.segment)
    aid = fingerprint(model, m.name, segment, r.column)
    s = replace(prev) if prev else AlertState(aid, model, m.name, segment, r.column, {})
    s.history = list(s.history)
    s.labels = labels_for(model_labels, m, r)
    s.status, s.value, s.threshold, s.details = (
        r.status,
        r.value,
        dict(r.threshold),
        dict(r.details),
    )
    s.details["rows"] = r.rows  # for templates ($rows)
    s.window_start, s.window_end = r.window_start, r.window_end
    return s


def _resolve_still_violated(s: AlertState, r: Result, m: MonitorSpec) -> bool:
    """Hysteresis: a firing alert whose value still violates the looser resolve
    threshold stays firing (drift_share's only, not a drift column's)."""
    resolve = m.thresholds.resolve
    per_column = m.kind == "drift" and r.column is not None
    return (
        s.state == "firing"
        and resolve is not None
        and r.value is not None
        and not per_column
        and resolve.violated(r.value)
    )


def _violated(
    s: AlertState, m: MonitorSpec, severity: str | None, now: datetime
) -> tuple[AlertState, Transition | None]:
    before = s.state
    s.last_violation_at, s.clear_since = now, None
    escalated = before == "firing" and severity == "critical" and s.severity != "critical"
    s.severity = severity
    if before == "firing":
        return s, Transition("firing", s, before) if escalated else None
    if s.pending_since is None:
        s.pending_since = now
    if _should_fire(s, m, now):
        s.state, s.fired_at, s.resolved_at = "firing", now, None
        return s, Transition("firing", s, before)
    s.state = "pending"
    return s, None


def _cleared(s: AlertState, m: MonitorSpec, now: datetime) -> tuple[AlertState, Transition | None]:
    before = s.state
    a = m.alert
    if before == "firing":
        if s.clear_since is None:
            s.clear_since = now
        # as Prometheus: keep firing until keep_firing_for has passed since the
        # first evaluation that no longer violated
        keep = a.keep_firing_for is not None and now - s.clear_since < a.keep_firing_for
        if keep or (a.fire_after and _should_fire(s, m, now)):
            return s, None
        s.state, s.resolved_at, s.pending_since, s.clear_since = "resolved", now, None, None
        return s, Transition("resolved", s, before)
    if a.fire_after and sum(s.history[-a.fire_after[1] :]) > 0:
        s.state = "pending"
        return s, None
    # the severity stays: it is a label, and routes must still find the alert
    s.state, s.pending_since = "inactive", None
    return s, None
