"""Watermarks: the newest tick the daemon evaluated, per model, kept in the store.

A watermark is written by :func:`advance` inside the tick's alert-state
transaction (see :func:`rulesengine.daemon.tick.run_tick`), so a tick is either
fully recorded, watermark included, or not at all: after a kill -9 the daemon
resumes from the last committed tick and evaluates nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from rulesengine.alerting.store import Store
from rulesengine.history.record import stamp


def read(store: Store, model: str) -> datetime | None:
    """The newest tick evaluated for ``model`` (UTC), or None if it never was."""
    row = store.row("SELECT tick FROM watermarks WHERE model=?", model)
    if row is None:
        return None
    return datetime.fromisoformat(row["tick"])


def advance(store: Store, model: str, tick: datetime) -> None:
    """Set ``model``'s watermark to ``tick``. Call it inside ``store.transaction()``."""
    store.db.execute(
        "INSERT INTO watermarks (model, tick) VALUES (?, ?) "
        "ON CONFLICT(model) DO UPDATE SET tick=excluded.tick",
        (model, stamp(tick)),
    )
