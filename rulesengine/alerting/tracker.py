"""Track results as alert states and turn them into notifications.

``process`` runs in one store transaction: write the results into the result
history (:mod:`rulesengine.history.record`), update every alert instance from the
new results (the state machine), raise or clear stale-data alerts, then route,
group, mute and dedup against the notification log (Alertmanager's semantics,
decided in :mod:`rulesengine.alerting.grouping`), queueing what must be sent in
the outbox. Delivery happens afterwards, from the
outbox, so a crash at any point loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rulesengine.alerting.delivery import enqueue
from rulesengine.alerting.grouping import DispatchPlan, Due, GroupLog, plan_dispatch
from rulesengine.alerting.state import AlertState, Transition, fingerprint, step
from rulesengine.alerting.store import Store, dumps, now_text, parse_ts
from rulesengine.alerting.templates import notification_text
from rulesengine.engine.results import ModelResults, Result
from rulesengine.history.record import DEFAULT_RETENTION, record, segment_key, stamp
from rulesengine.spec.model import Config, EngineSpec, ModelSpec, MonitorSpec

STALE_MONITOR = "stale-data"


@dataclass
class ProcessReport:
    transitions: list[Transition] = field(default_factory=list)
    queued: int = 0  # outbox rows
    notifications: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------ persistence

_DT_FIELDS = (
    "window_start",
    "window_end",
    "pending_since",
    "fired_at",
    "resolved_at",
    "last_violation_at",
    "clear_since",
    "updated_at",
)
_JSON_FIELDS = ("segment", "labels", "threshold", "details", "history")


def _load(row: Any) -> AlertState:
    d = dict(row)
    d["column"] = d.pop("col")
    for k in _DT_FIELDS:
        d[k] = parse_ts(d[k])
    for k in _JSON_FIELDS:
        d[k] = json.loads(d[k]) if d[k] is not None else ({} if k != "history" else [])
    return AlertState(**d)


def _mark(s: AlertState | None) -> tuple[str, str]:
    """What the alert log keeps of a state: the state, and the severity while firing."""
    if s is None:
        return ("inactive", "")
    return (s.state, (s.severity or "") if s.state == "firing" else "")


def _save(store: Store, s: AlertState, before: tuple[str, str], now: datetime) -> None:
    """Write ``s``; if its state (or a firing alert's severity) differs from
    ``before`` (:func:`_mark` of the state it replaces), log the change at ``now``."""
    after = _mark(s)
    if after != before:
        store.db.execute(
            "INSERT OR REPLACE INTO alert_log"
            " (alert_id, at, model, monitor, segment, col, state, severity)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (s.id, stamp(now), s.model, s.monitor, segment_key(s.segment), s.column or "", *after),
        )
    d = asdict(s)
    d["col"] = d.pop("column")
    for k in _DT_FIELDS:
        d[k] = now_text(d[k]) if d[k] is not None else None
    for k in _JSON_FIELDS:
        d[k] = dumps(d[k])
    cols = list(d)
    store.db.execute(
        f"INSERT OR REPLACE INTO alerts ({', '.join(cols)}) VALUES "
        f"({', '.join('?' for _ in cols)})",
        [d[c] for c in cols],
    )


def prune_alert_log(store: Store, cutoff: datetime) -> None:
    """Forget state changes older than ``cutoff``, but each alert's newest one
    before it: it tells the state the alert was in at the cut-off."""
    store.db.execute(
        "DELETE FROM alert_log AS old WHERE at < ?1 AND EXISTS (SELECT 1 FROM alert_log AS new"
        " WHERE new.alert_id = old.alert_id AND new.at > old.at AND new.at < ?1)",
        (stamp(cutoff),),
    )


def load_alerts(store: Store) -> dict[str, AlertState]:
    return {r["id"]: _load(r) for r in store.rows("SELECT * FROM alerts")}


def load_silences(store: Store) -> list[dict[str, Any]]:
    out = []
    for r in store.rows("SELECT * FROM silences"):
        out.append(
            {
                "id": r["id"],
                "matchers": json.loads(r["matchers"]),
                "starts_at": parse_ts(r["starts_at"]),
                "ends_at": parse_ts(r["ends_at"]),
                "comment": r["comment"],
                "created_by": r["created_by"],
            }
        )
    return out


# ------------------------------------------------------------------ tracking


def _monitors(model: ModelSpec) -> dict[str, MonitorSpec]:
    return {m.name: m for m in model.monitors()}


def _stale_step(
    store: Store,
    alerts: dict[str, AlertState],
    model: ModelSpec,
    results: Sequence[Result],
    now: datetime,
) -> list[Transition]:
    """A source whose monitors all saw no data for ``stale_after`` evaluations
    raises its own alert; data coming back resolves it."""
    out = []
    by_source: dict[str, list[bool]] = {}
    for r in results:
        # freshness looks at the whole history, so it says nothing about the window
        if r.segment == {} and r.type != "freshness":
            nothing = r.status == "no_data" or (r.rows == 0 and r.status != "error")
            by_source.setdefault(r.source, []).append(nothing)
    for source, nothings in by_source.items():
        empty = all(nothings)
        row = store.row(
            "SELECT empty_streak, counted_at FROM source_health WHERE model=? AND source=?",
            model.model,
            source,
        )
        if row is not None and row["counted_at"] == now_text(now):
            continue  # the same evaluation time again (a re-run of --at): nothing moves
        streak = (row["empty_streak"] + 1 if row else 1) if empty else 0
        store.db.execute(
            "INSERT OR REPLACE INTO source_health (model, source, empty_streak, counted_at)"
            " VALUES (?,?,?,?)",
            (model.model, source, streak, now_text(now)),
        )
        aid = fingerprint(model.model, STALE_MONITOR, {"source": source}, None)
        prev = alerts.get(aid)
        if not empty and prev is None:
            continue
        s = prev or AlertState(aid, model.model, STALE_MONITOR, {"source": source}, None, {})
        was = _mark(prev)
        s.labels = {
            **model.labels,
            "model": model.model,
            "monitor": STALE_MONITOR,
            "kind": "source",
            "type": "stale_data",
            "source": source,
            "segment": f"source={source}",
            "severity": "critical",
        }
        s.status, s.updated_at = ("no_data" if empty else "ok"), now
        s.value = float(streak)
        s.threshold = {"critical": {"at_or_above": model.evaluation.stale_after}}
        s.details = {"reason": f"no data for {streak} evaluation(s)"} if empty else {}
        before = s.state
        if empty and streak >= model.evaluation.stale_after:
            if before != "firing":
                s.state, s.severity, s.fired_at = "firing", "critical", now
                out.append(Transition("firing", s, before))
        elif not empty and before == "firing":
            s.state, s.resolved_at = "resolved", now
            out.append(Transition("resolved", s, before))
        elif before == "resolved":
            s.state = "inactive"
        alerts[aid] = s
        _save(store, s, was, now)
    return out


def track(
    store: Store,
    config: Config,
    models: Sequence[ModelResults],
    now: datetime,
    alerts: dict[str, AlertState],
) -> list[Transition]:
    transitions: list[Transition] = []
    seen: set[str] = set()
    specs = {m.model: m for m in config.models}
    for mr in models:
        model = specs[mr.model]
        monitors = _monitors(model)
        labels = {**model.labels, "model": model.model}
        for r in mr.results:
            m = monitors.get(r.monitor)
            if m is None:
                continue
            aid = fingerprint(model.model, m.name, dict(r.segment), r.column)
            was = _mark(alerts.get(aid))
            new, change = step(alerts.get(aid), r, m, model.model, labels, now)
            new.labels["severity"] = new.severity or ""
            alerts[aid] = new
            seen.add(aid)
            _save(store, new, was, now)
            if change:
                transitions.append(change)
        transitions.extend(_stale_step(store, alerts, model, mr.results, now))
        transitions.extend(_vanished(store, alerts, model, mr.results, seen, now))
    if config.complete:
        for s in list(alerts.values()):
            if s.model not in specs:
                change = _drop(store, s, "the model left the config", now)
                transitions.extend([change] if change else [])
    return transitions


def _vanished(
    store: Store,
    alerts: dict[str, AlertState],
    model: ModelSpec,
    results: Sequence[Result],
    seen: set[str],
    now: datetime,
) -> list[Transition]:
    """Alerts of this model that got no result: their monitor left the config (or
    was disabled), or their segment or column is no longer reported by a monitor
    that evaluated normally. As Prometheus drops such series, they resolve."""
    enabled = {m.name for m in model.monitors() if m.enabled}
    normal = {
        r.monitor for r in results if not r.segment and r.status in ("ok", "warn", "critical")
    }
    out = []
    for aid, s in list(alerts.items()):
        if s.model != model.model or aid in seen or s.monitor == STALE_MONITOR:
            continue
        if s.monitor not in enabled:
            reason = "the monitor left the config or was disabled"
        elif s.monitor in normal:
            reason = "no longer reported (its segment or column is gone)"
        else:
            continue
        change = _drop(store, s, reason, now)
        out.extend([change] if change else [])
    return out


def _drop(store: Store, s: AlertState, reason: str, now: datetime) -> Transition | None:
    """An alert whose series is gone: a firing one resolves (``reason``), a pending
    one becomes inactive, as Prometheus does when a series disappears."""
    before, was = s.state, _mark(s)
    change = None
    if before == "firing":
        s.state, s.resolved_at, s.reason = "resolved", now, reason
        change = Transition("resolved", s, before)
    elif before in ("pending", "resolved"):
        s.state, s.pending_since = "inactive", None
    else:
        return None
    s.updated_at = now
    _save(store, s, was, now)
    return change


# ------------------------------------------------------------------ dispatch


def load_group_logs(store: Store) -> dict[str, GroupLog]:
    """Every notification group's log, as :func:`plan_dispatch` reads it."""
    notified: dict[str, dict[str, str]] = {}
    for r in store.rows("SELECT group_key, alert_id, severity FROM notified"):
        notified.setdefault(r["group_key"], {})[r["alert_id"]] = r["severity"]
    return {
        r["key"]: GroupLog(
            first_seen=datetime.fromisoformat(r["first_seen"]),
            last_notified_at=parse_ts(r["last_notified_at"]),
            notified=notified.get(r["key"], {}),
        )
        for r in store.rows("SELECT key, first_seen, last_notified_at FROM groups")
    }


def _save_group_logs(store: Store, before: dict[str, GroupLog], plan: DispatchPlan) -> None:
    """Write the logs that changed; a forgotten group's log rows go with it."""
    for key in before.keys() - plan.logs.keys():
        store.db.execute("DELETE FROM groups WHERE key=?", (key,))
    for key, log in plan.logs.items():
        if before.get(key) == log:
            continue
        group = plan.groups[key]
        last = now_text(log.last_notified_at) if log.last_notified_at else None
        store.db.execute(
            "INSERT INTO groups (key, receiver, labels, first_seen, last_notified_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT (key) DO UPDATE"
            " SET last_notified_at = excluded.last_notified_at",
            (
                key,
                ",".join(group.route.receivers),
                dumps(group.labels),
                now_text(log.first_seen),
                last,
            ),
        )
        store.db.execute("DELETE FROM notified WHERE group_key=?", (key,))
        store.db.executemany(
            "INSERT INTO notified (group_key, alert_id, severity) VALUES (?,?,?)",
            [(key, aid, severity) for aid, severity in sorted(log.notified.items())],
        )


def _alert_view(s: AlertState, description: str | None = None) -> dict[str, Any]:
    d = asdict(s)
    d["description"] = description
    return d


def _runbooks(config: Config, alerts: dict[str, AlertState]) -> dict[str, str | None]:
    specs = {m.model: _monitors(m) for m in config.models}
    out = {}
    for aid, s in alerts.items():
        m = specs.get(s.model, {}).get(s.monitor)
        out[aid] = m.runbook if m else None
    return out


def _descriptions(config: Config) -> dict[tuple[str, str], str | None]:
    return {
        (model.model, m.name): m.description for model in config.models for m in model.monitors()
    }


def _severity(due: Due) -> str:
    """A firing notification's severity: the highest of its firing alerts
    (``critical`` over ``warn``); "" for a resolved one."""
    members = due.group.members
    found = {members[a].severity for a in due.alerts if members[a].state == "firing"}
    if due.kind != "firing":
        return ""
    return "critical" if "critical" in found else "warn" if "warn" in found else ""


def _queue(
    store: Store,
    engine: EngineSpec,
    due: Due,
    runbooks: dict[str, str | None],
    descriptions: dict[tuple[str, str], str | None],
    queued_at: datetime,
    report: ProcessReport,
) -> None:
    """Render ``due`` for each of its receivers and put it in the outbox."""
    members = due.group.members
    alerts = [
        _alert_view(members[a], descriptions.get((members[a].model, members[a].monitor)))
        for a in due.alerts
    ]
    for receiver in due.group.route.receivers:
        spec = engine.receivers.get(receiver)
        title, body = notification_text(
            alerts,
            runbooks,
            title=(spec.title if spec and spec.title else engine.templates.title),
            body=(spec.body if spec and spec.body else engine.templates.body),
            resolved_title=(engine.templates.resolved_title or (spec.title if spec else None)),
        )
        report.queued += enqueue(
            store,
            engine,
            group_key=due.group.key,
            receiver=receiver,
            kind=due.kind,
            title=title,
            body=body,
            now=queued_at,
            severity=_severity(due),
        )
        report.notifications.append(
            {
                "group": due.group.labels,
                "receiver": receiver,
                "kind": due.kind,
                "title": title,
                "alerts": list(due.alerts),
            }
        )


def dispatch(
    store: Store,
    config: Config,
    alerts: dict[str, AlertState],
    now: datetime,
    *,
    flush: bool,
    queued_at: datetime | None = None,
) -> ProcessReport:
    """Queue the notifications that are due (:func:`plan_dispatch` decides which,
    silences and mute intervals judged at ``now``, the evaluation time) and keep
    the groups' logs. ``queued_at`` (the wall clock, default ``now``) stamps the
    outbox rows, whose deadlines count from it."""
    wall = queued_at or now
    before = load_group_logs(store)
    silences = load_silences(store)
    plan = plan_dispatch(config.engine, alerts, silences, before, now, flush=flush)
    _save_group_logs(store, before, plan)
    report = ProcessReport()
    runbooks, descriptions = _runbooks(config, alerts), _descriptions(config)
    for due in plan.due:
        _queue(store, config.engine, due, runbooks, descriptions, wall, report)
    return report


def process(
    store: Store, config: Config, models: Sequence[ModelResults], now: datetime, **options: Any
) -> ProcessReport:
    """Record ``models``' results in the history, track them and queue the
    notifications they cause, atomically.

    ``now`` (the evaluation time) drives the alert clock and the history's
    ``retention`` (rows older than ``now - retention`` go); ``queued_at`` (the wall
    clock, default ``now``) stamps the outbox rows, whose deadlines count from it.
    ``options`` are :func:`process_in`'s keywords."""
    with store.transaction():
        return process_in(store, config, models, now, **options)


def process_in(
    store: Store,
    config: Config,
    models: Sequence[ModelResults],
    now: datetime,
    *,
    flush: bool = True,
    queued_at: datetime | None = None,
    retention: timedelta = DEFAULT_RETENTION,
) -> ProcessReport:
    """:func:`process` inside a transaction the caller holds (the daemon adds its
    watermark to the same one)."""
    # first, so a failure anywhere after it rolls the history back with the alerts
    record(store, models, now, retention)
    prune_alert_log(store, now - retention)
    alerts = load_alerts(store)
    transitions = track(store, config, models, now, alerts)
    report = dispatch(store, config, alerts, now, flush=flush, queued_at=queued_at)
    report.transitions = transitions
    return report
