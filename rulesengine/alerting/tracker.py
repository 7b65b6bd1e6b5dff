"""Track results as alert states and turn them into notifications.

``process`` runs in one store transaction: update every alert instance from the
new results (the state machine), raise or clear stale-data alerts, then route,
group, mute and dedup against the notification log (Alertmanager's semantics),
queueing what must be sent in the outbox. Delivery happens afterwards, from the
outbox, so a crash at any point loses nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rulesengine.alerting.delivery import enqueue
from rulesengine.alerting.routing import inhibited, muted_by_interval, route, silenced
from rulesengine.alerting.state import AlertState, Transition, fingerprint, step
from rulesengine.alerting.store import Store, dumps, now_text, parse_ts
from rulesengine.alerting.templates import notification_text
from rulesengine.engine.results import ModelResults, Result
from rulesengine.spec.model import Config, EngineSpec, ModelSpec, MonitorSpec

log = logging.getLogger("rulesengine.alerting")

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


def _save(store: Store, s: AlertState) -> None:
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
            "SELECT empty_streak FROM source_health WHERE model=? AND source=?", model.model, source
        )
        streak = (row["empty_streak"] + 1 if row else 1) if empty else 0
        store.db.execute(
            "INSERT OR REPLACE INTO source_health VALUES (?,?,?)", (model.model, source, streak)
        )
        aid = fingerprint(model.model, STALE_MONITOR, {"source": source}, None)
        prev = alerts.get(aid)
        if not empty and prev is None:
            continue
        s = prev or AlertState(aid, model.model, STALE_MONITOR, {"source": source}, None, {})
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
        _save(store, s)
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
            new, change = step(alerts.get(aid), r, m, model.model, labels, now)
            new.labels["severity"] = new.severity or ""
            alerts[aid] = new
            seen.add(aid)
            _save(store, new)
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
    before = s.state
    change = None
    if before == "firing":
        s.state, s.resolved_at, s.reason = "resolved", now, reason
        change = Transition("resolved", s, before)
    elif before in ("pending", "resolved"):
        s.state, s.pending_since = "inactive", None
    else:
        return None
    s.updated_at = now
    _save(store, s)
    return change


# ------------------------------------------------------------------ dispatch


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


def dispatch(
    store: Store,
    config: Config,
    alerts: dict[str, AlertState],
    now: datetime,
    *,
    flush: bool,
    queued_at: datetime | None = None,
) -> ProcessReport:
    """Queue the notifications that groups need now. ``flush`` (one-shot runs)
    skips ``group_wait``: there is no later moment in this process to wait for."""
    engine: EngineSpec = config.engine
    report = ProcessReport()
    silences = load_silences(store)
    # silenced alerts still inhibit, as in Alertmanager
    firing_labels = [s.labels for s in alerts.values() if s.state == "firing"]
    runbooks = _runbooks(config, alerts)
    descriptions = _descriptions(config)
    wall = queued_at or now  # silences and mute intervals are about when we send
    groups: dict[str, dict[str, Any]] = {}
    for s in alerts.values():
        for match in route(engine, s.labels):
            values = {k: s.labels.get(k, "") for k in match.grouping.by}
            key = f"{match.key}|{dumps(values)}"
            g = groups.setdefault(key, {"match": match, "labels": values, "alerts": {}})
            g["alerts"][s.id] = s
    known = {r["key"]: r for r in store.rows("SELECT * FROM groups")}
    for key in set(known) - set(groups):  # routes changed: drop orphaned groups
        store.db.execute("DELETE FROM groups WHERE key=?", (key,))
    for key, g in groups.items():
        match = g["match"]
        members: dict[str, AlertState] = g["alerts"]
        firing = {
            aid
            for aid, s in members.items()
            if s.state == "firing"
            and not silenced(silences, s.labels, wall)
            and not inhibited(engine.inhibit, s.labels, firing_labels)
        }
        row = known.get(key)
        # the log holds "id|severity": a severity change is news, as in Alertmanager
        # where severity is part of the alert's labels
        entries = {f"{aid}|{members[aid].severity or ''}" for aid in firing}
        last_entries = set(json.loads(row["firing"])) if row else set()
        last_firing = {e.split("|")[0] for e in last_entries}
        resolved = {
            aid
            for aid in last_firing - firing
            if aid in members and members[aid].state in ("resolved", "inactive")
        }
        gone = last_firing - firing - resolved  # muted since: drop from the log quietly
        if not firing and not resolved:
            if row:
                store.db.execute("DELETE FROM groups WHERE key=?", (key,))
            continue
        if not firing and not match.send_resolved:  # all clear, quietly: forget the group
            if row:
                store.db.execute("DELETE FROM groups WHERE key=?", (key,))
            continue
        if row is None:
            store.db.execute(
                "INSERT INTO groups (key, receiver, labels, first_seen) VALUES (?,?,?,?)",
                (key, ",".join(match.receivers), dumps(g["labels"]), now_text(now)),
            )
            row = store.row("SELECT * FROM groups WHERE key=?", key)
        if muted_by_interval(engine, match.mute_time_intervals, wall):
            continue
        last = parse_ts(row["last_notified_at"])
        first_seen = parse_ts(row["first_seen"])
        grouping = match.grouping
        if last is None:
            due = bool(firing) and (flush or now - first_seen >= grouping.wait)
        else:
            new = entries - last_entries
            send_resolved = bool(resolved) and match.send_resolved
            changed = bool(new) or send_resolved
            due = (changed and now - last >= grouping.interval) or (
                bool(firing) and now - last >= grouping.repeat
            )
        if not due:
            if gone:
                kept = [e for e in last_entries if e.split("|")[0] not in gone]
                store.db.execute(
                    "UPDATE groups SET firing=? WHERE key=?", (dumps(sorted(kept)), key)
                )
            continue
        include_resolved = resolved if match.send_resolved else set()
        notify = [
            _alert_view(members[a], descriptions.get((members[a].model, members[a].monitor)))
            for a in sorted(firing | include_resolved)
        ]
        if not notify:
            store.db.execute(
                "UPDATE groups SET firing=?, last_notified_at=? WHERE key=?",
                (dumps(sorted(entries)), now_text(now), key),
            )
            continue
        kind = "firing" if firing else "resolved"
        for receiver in match.receivers:
            spec = engine.receivers.get(receiver)
            title, body = notification_text(
                notify,
                runbooks,
                title=(spec.title if spec and spec.title else engine.templates.title),
                body=(spec.body if spec and spec.body else engine.templates.body),
                resolved_title=(engine.templates.resolved_title or (spec.title if spec else None)),
            )
            report.queued += enqueue(
                store,
                engine,
                group_key=key,
                receiver=receiver,
                kind=kind,
                title=title,
                body=body,
                now=queued_at or now,
            )
            report.notifications.append(
                {
                    "group": g["labels"],
                    "receiver": receiver,
                    "kind": kind,
                    "title": title,
                    "alerts": [a["id"] for a in notify],
                }
            )
        if firing:
            store.db.execute(
                "UPDATE groups SET firing=?, resolved=?, last_notified_at=? WHERE key=?",
                (dumps(sorted(entries)), dumps(sorted(resolved)), now_text(now), key),
            )
        else:
            store.db.execute("DELETE FROM groups WHERE key=?", (key,))
    return report


def process(
    store: Store,
    config: Config,
    models: Sequence[ModelResults],
    now: datetime,
    *,
    flush: bool = True,
    queued_at: datetime | None = None,
) -> ProcessReport:
    """Track ``models``' results and queue the notifications they cause, atomically.

    ``now`` (the evaluation time) drives the alert clock; ``queued_at`` (the wall
    clock, default ``now``) stamps the outbox rows, whose deadlines count from it."""
    with store.transaction():
        alerts = load_alerts(store)
        transitions = track(store, config, models, now, alerts)
        report = dispatch(store, config, alerts, now, flush=flush, queued_at=queued_at)
        report.transitions = transitions
    return report
