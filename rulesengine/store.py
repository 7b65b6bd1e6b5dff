"""SQLite state: alert instances, silences, the notification log and the outbox.

WAL mode, one connection per process, versioned migrations. Every evaluation
writes its alert transitions and the notifications they cause in one
transaction, so a crash never loses a notification or leaves state half-written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,          -- fingerprint of model, monitor, segment, column
        model TEXT NOT NULL,
        monitor TEXT NOT NULL,
        segment TEXT NOT NULL,        -- JSON object
        col TEXT,
        labels TEXT NOT NULL,         -- JSON object
        state TEXT NOT NULL,          -- inactive | pending | firing | resolved
        severity TEXT,
        status TEXT,                  -- the last result's status
        reason TEXT,
        value REAL,
        threshold TEXT,               -- JSON
        details TEXT,                 -- JSON
        window_start TEXT,
        window_end TEXT,
        streak INTEGER NOT NULL DEFAULT 0,      -- consecutive violating evaluations
        pending_since TEXT,
        fired_at TEXT,
        resolved_at TEXT,
        last_violation_at TEXT,
        history TEXT NOT NULL DEFAULT '[]',     -- recent violations, newest last
        updated_at TEXT NOT NULL
    );
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,       -- JSON list of [label, op, value]
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        created_by TEXT,
        comment TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE groups (
        key TEXT PRIMARY KEY,         -- route + receiver + group label values
        receiver TEXT NOT NULL,
        labels TEXT NOT NULL,         -- JSON: the group's label values
        first_seen TEXT NOT NULL,
        last_notified_at TEXT,
        firing TEXT NOT NULL DEFAULT '[]',    -- alert ids in the last notification
        resolved TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        group_key TEXT NOT NULL,
        receiver TEXT NOT NULL,
        target TEXT NOT NULL,         -- sha256 of the Apprise URL (never the URL)
        target_label TEXT NOT NULL,   -- the URL, masked, for people
        kind TEXT NOT NULL,           -- firing | resolved
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        deadline TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        sent_at TEXT
    );
    CREATE INDEX outbox_pending ON outbox(state, next_attempt_at);
    CREATE TABLE source_health (
        model TEXT NOT NULL,
        source TEXT NOT NULL,
        empty_streak INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (model, source)
    );
    """,
    # 2: keep_firing_for counts from the first evaluation that stopped violating
    """
    ALTER TABLE alerts ADD COLUMN clear_since TEXT;
    """,
]


def now_text(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class Store:
    """The state database. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    def migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={i}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- queries
    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.db.execute(sql, args).fetchall()

    def row(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return self.db.execute(sql, args).fetchone()


def _statements(script: str) -> list[str]:
    """Split a migration into statements (no semicolons inside our literals)."""
    out = []
    for part in script.split(";"):
        lines = [ln for ln in part.splitlines() if ln.strip()]
        if lines:
            out.append("\n".join(lines))
    return out


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
