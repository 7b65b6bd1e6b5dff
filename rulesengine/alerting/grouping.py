"""What is due, to whom: grouping, muting and dedup, as Alertmanager does them.

Pure: :func:`plan_dispatch` takes the alert states, the silences, each group's
notification log and the time, and returns the notifications due now and the
log to keep. It reads no clock and no store; :mod:`rulesengine.alerting.tracker`
persists its answer and queues the notifications.

* Alerts are grouped per route by the values of the route's ``grouping.by``
  labels; a group has one notification log: the alerts (and their severities)
  it last notified about.
* A firing alert counts unless a silence or an inhibition mutes it; silenced
  alerts still inhibit others.
* A new group is notified after ``wait`` (at once with ``flush``); then news (a
  newly firing alert, a severity change, a resolution when ``send_resolved``)
  waits for ``interval`` since the last notification, and an unchanged group
  repeats after ``repeat``. Nothing is sent while a mute time interval is on.
* Every time here is the evaluation time (``--at``, the daemon's tick), never
  the wall clock: silences and mute intervals too.
* A group whose alerts have all resolved is notified once, then forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rulesengine.alerting.routing import (
    RouteMatch,
    inhibited,
    muted_by_interval,
    route,
    silenced,
)
from rulesengine.alerting.state import AlertState
from rulesengine.alerting.store import dumps
from rulesengine.spec.model import EngineSpec


@dataclass(frozen=True)
class GroupLog:
    """What the store remembers of a group: when it was first seen, when it was
    last notified, and ``notified``: alert id -> severity ("" for none) of the
    firing alerts in that notification."""

    first_seen: datetime
    last_notified_at: datetime | None = None
    notified: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Group:
    """Alerts that one route takes and that share its ``grouping.by`` values."""

    key: str
    route: RouteMatch
    labels: dict[str, str]  # the group's values of its grouping labels
    members: dict[str, AlertState] = field(default_factory=dict)


@dataclass(frozen=True)
class Due:
    """One notification to queue: ``alerts`` (ids, sorted) of ``group``, to every
    receiver of its route; ``kind`` is "firing" when any of them fires."""

    group: Group
    kind: str
    alerts: tuple[str, ...]


@dataclass
class DispatchPlan:
    """The groups the alerts form now, the notifications due, and every group's
    log afterwards (a group missing from ``logs`` is forgotten)."""

    groups: dict[str, Group] = field(default_factory=dict)
    due: list[Due] = field(default_factory=list)
    logs: dict[str, GroupLog] = field(default_factory=dict)


def _groups(engine: EngineSpec, alerts: Mapping[str, AlertState]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for s in alerts.values():
        for match in route(engine, s.labels):
            values = {k: s.labels.get(k, "") for k in match.grouping.by}
            key = f"{match.key}|{dumps(values)}"
            groups.setdefault(key, Group(key, match, values)).members[s.id] = s
    return groups


def plan_dispatch(
    engine: EngineSpec,
    alerts: Mapping[str, AlertState],
    silences: Sequence[Mapping[str, Any]],
    logs: Mapping[str, GroupLog],
    now: datetime,
    *,
    flush: bool,
) -> DispatchPlan:
    """The notifications due at ``now`` (the evaluation time) and the groups' logs
    after them. ``now`` drives the group timers and decides whether a silence or
    a mute time interval is active, so a run ``--at`` a past time (or a backfill
    tick) is muted as it would have been then. ``flush`` (one-shot runs) skips
    ``wait``: there is no later moment in the process to wait for.

    A group whose route changed away is dropped from the logs.
    """
    firing_labels = [s.labels for s in alerts.values() if s.state == "firing"]
    plan = DispatchPlan(_groups(engine, alerts))
    for key, g in plan.groups.items():
        firing = {
            aid
            for aid, s in g.members.items()
            if s.state == "firing"
            and not silenced(silences, s.labels, now)
            and not inhibited(engine.inhibit, s.labels, firing_labels)
        }
        muted = muted_by_interval(engine, g.route.mute_time_intervals, now)
        log, due = _decide(g, firing, logs.get(key), now, flush=flush, muted=muted)
        if log is not None:
            plan.logs[key] = log
        if due is not None:
            plan.due.append(due)
    return plan


def _decide(
    g: Group,
    firing: set[str],
    log: GroupLog | None,
    now: datetime,
    *,
    flush: bool,
    muted: bool,
) -> tuple[GroupLog | None, Due | None]:
    """One group's log afterwards (None: forget it) and its notification, if due."""
    match = g.route
    last = dict(log.notified) if log else {}
    resolved = {
        aid
        for aid in set(last) - firing
        if aid in g.members and g.members[aid].state in ("resolved", "inactive")
    }
    if not firing and not (resolved and match.send_resolved):
        return None, None  # nothing to say, or only resolutions nobody wants: forget it
    log = log or GroupLog(first_seen=now)
    if muted:
        return log, None
    # a severity change is news, as in Alertmanager where severity is a label
    entries = {aid: g.members[aid].severity or "" for aid in firing}
    if not _is_due(log, match, entries, bool(resolved), now, flush=flush):
        gone = set(last) - firing - resolved  # muted since: drop from the log quietly
        return replace(log, notified={a: s for a, s in last.items() if a not in gone}), None
    shown = firing | resolved if match.send_resolved else firing
    due = Due(g, "firing" if firing else "resolved", tuple(sorted(shown)))
    if not firing:
        return None, due  # all resolved, said once: the next alert starts a new group
    return GroupLog(log.first_seen, now, entries), due


def _is_due(
    log: GroupLog,
    match: RouteMatch,
    entries: dict[str, str],
    resolved: bool,
    now: datetime,
    *,
    flush: bool,
) -> bool:
    grouping = match.grouping
    if log.last_notified_at is None:
        return bool(entries) and (flush or now - log.first_seen >= grouping.wait)
    news = bool(entries.items() - log.notified.items()) or (resolved and match.send_resolved)
    since = now - log.last_notified_at
    return (news and since >= grouping.interval) or (bool(entries) and since >= grouping.repeat)
