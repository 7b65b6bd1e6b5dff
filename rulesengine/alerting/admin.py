"""What ``rulesengine alerts`` and ``rulesengine silence`` read and write."""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from rulesengine.alerting.routing import parse_matcher, silenced
from rulesengine.alerting.store import Store, dumps, now_text
from rulesengine.alerting.tracker import load_alerts, load_silences
from rulesengine.engine.results import iso, segment_text
from rulesengine.masking import mask_text, mask_url


def masked(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with every string in it (keys too) passed through the masker: what the
    store holds may predate strict masking, or quote a URL in an error."""
    secrets = list(secrets)
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {masked(k, secrets): masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, secrets) for v in value]
    return value


def alert_listing(store: Store, now: datetime, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Current alert states (all but inactive) and the pending outbox, masked."""
    silences = load_silences(store)
    alerts = []
    for s in sorted(load_alerts(store).values(), key=lambda s: (s.state, s.model, s.monitor)):
        if s.state == "inactive":
            continue
        alerts.append(
            {
                "id": s.id,
                "model": s.model,
                "monitor": s.monitor,
                "segment": s.segment,
                "column": s.column,
                "state": s.state,
                "severity": s.severity,
                "status": s.status,
                "value": s.value,
                "since": iso(
                    s.fired_at
                    if s.state == "firing"
                    else s.pending_since
                    if s.state == "pending"
                    else s.resolved_at
                ),
                "labels": s.labels,
                "silenced_by": silenced(silences, s.labels, now),
            }
        )
    outbox = []
    for r in store.rows("SELECT * FROM outbox WHERE state='pending' ORDER BY id"):
        outbox.append(
            {
                "id": r["id"],
                "receiver": r["receiver"],
                # a label is a masked URL already; mask_url again is strict either way
                "target": mask_url(r["target_label"] or ""),
                "kind": r["kind"],
                "title": r["title"],
                "attempts": r["attempts"],
                "next_attempt_at": r["next_attempt_at"],
                "deadline": r["deadline"],
                "last_error": r["last_error"],
            }
        )
    return masked({"alerts": alerts, "outbox": outbox}, secrets)


def listing_text(listing: dict[str, Any]) -> str:
    lines = []
    if not listing["alerts"]:
        lines.append("no alerts")
    for a in listing["alerts"]:
        seg = segment_text(a["segment"])
        col = f"[{a['column']}]" if a["column"] else ""
        muted = f"  silenced by {a['silenced_by']}" if a["silenced_by"] else ""
        lines.append(
            f"{a['state'].upper():9} {a['severity'] or '-':8} {a['model']} / "
            f"{a['monitor']}{col} {seg}  since {a['since']}{muted}"
        )
    lines.append("")
    lines.append(f"outbox: {len(listing['outbox'])} pending")
    for o in listing["outbox"]:
        lines.append(
            f"  #{o['id']} to {o['receiver']} ({o['target']}): {o['title']} — "
            f"{o['attempts']} attempt(s), next at {o['next_attempt_at']}"
            + (f", last error: {o['last_error']}" if o["last_error"] else "")
        )
    return "\n".join(lines)


def default_author() -> str:
    """Who adds a silence when ``--author`` is not given: ``$USER``, else the
    login name (``getpass``: ``$LOGNAME``, …, then the password database), else
    ``uid N``; never nothing."""
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (some containers)
        return f"uid {os.getuid()}"


def add_silence(
    store: Store,
    matchers: list[str],
    duration: timedelta,
    comment: str,
    author: str | None,
    now: datetime,
) -> str:
    parsed = [list(parse_matcher(m)) for m in matchers]
    sid = uuid.uuid4().hex[:12]
    with store.transaction():
        store.db.execute(
            "INSERT INTO silences VALUES (?,?,?,?,?,?,?)",
            (
                sid,
                dumps(parsed),
                now_text(now),
                now_text(now + duration),
                author,
                comment,
                now_text(now),
            ),
        )
    return sid


def silence_listing(
    store: Store, now: datetime, secrets: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Silences, active first, masked."""
    out = []
    for s in load_silences(store):
        out.append(
            {
                "id": s["id"],
                "matchers": ["".join(m) for m in s["matchers"]],
                "starts_at": iso(s["starts_at"]),
                "ends_at": iso(s["ends_at"]),
                "active": s["starts_at"] <= now < s["ends_at"],
                "comment": s["comment"],
                "created_by": s["created_by"],
            }
        )
    return masked(sorted(out, key=lambda s: (not s["active"], s["ends_at"])), secrets)


def silence_text(silences: list[dict[str, Any]]) -> str:
    """A :func:`silence_listing` for people, one silence a line."""
    if not silences:
        return "no silences"
    return "\n".join(
        f"{s['id']}  {'active ' if s['active'] else 'expired'}  until {s['ends_at']}  "
        f"{' '.join(s['matchers'])}  — {s['comment']} ({s['created_by'] or 'unknown'})"
        for s in silences
    )


def expire_silence(store: Store, sid: str, now: datetime) -> bool:
    with store.transaction():
        cur = store.db.execute(
            "UPDATE silences SET ends_at=? WHERE id=? AND ends_at>?",
            (now_text(now), sid, now_text(now)),
        )
    return cur.rowcount > 0


__all__ = [
    "add_silence",
    "alert_listing",
    "default_author",
    "expire_silence",
    "listing_text",
    "silence_listing",
    "silence_text",
]
