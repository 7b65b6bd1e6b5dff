"""SQLite state: alert instances, silences, the notification log, the outbox and
result history.

WAL mode, one connection per process, versioned migrations. Every evaluation
writes its alert transitions and the notifications they cause in one
transaction, so a crash never loses a notification or leaves state half-written.

The file is checked when it is opened: a directory, an empty (truncated) file, a
file that is not SQLite, a failing ``PRAGMA quick_check``, a missing table or
column, or a schema from a newer rulesengine is a :class:`StoreError` naming the
file and what to do, never an internal error. A new store is built beside its
path and linked into place in one step, so no process ever sees it half-made,
and each migration re-reads the schema version under the write lock, so
processes opening one store at once never apply a migration twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rulesengine.errors import StoreError

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
        target TEXT NOT NULL,         -- a keyed fingerprint of the Apprise URL (never the URL)
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
    # 3: outbox rows are claimed with a lease, so concurrent runs never send one row
    # twice; targets become keyed fingerprints (HMAC with the store's own key, kept
    # in meta). Finished rows need no target: their bare SHA-256 is wiped here;
    # pending ones are re-keyed by the next delivery, which knows the URLs.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
    ALTER TABLE outbox ADD COLUMN lease_until TEXT;
    UPDATE outbox SET target = '' WHERE state != 'pending';
    """,
    # 4: the notification log as rows (group, alert, severity) instead of
    # "id|severity" strings in a JSON list; the ids of the last resolved alerts,
    # which nothing read, go
    """
    CREATE TABLE notified (
        group_key TEXT NOT NULL REFERENCES groups(key) ON DELETE CASCADE,
        alert_id TEXT NOT NULL,
        severity TEXT NOT NULL,       -- '' for an alert without one
        PRIMARY KEY (group_key, alert_id)
    );
    INSERT OR IGNORE INTO notified (group_key, alert_id, severity)
        SELECT g.key, substr(e.value, 1, instr(e.value, '|') - 1),
               substr(e.value, instr(e.value, '|') + 1)
        FROM groups AS g, json_each(g.firing) AS e
        WHERE instr(e.value, '|') > 0;
    ALTER TABLE groups DROP COLUMN firing;
    ALTER TABLE groups DROP COLUMN resolved;
    """,
    # 5: result history, one row per evaluation time (at), model, monitor, segment
    # and column, written with the alert state (see rulesengine/history/). Times are
    # fixed-width UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ) so text order is time order;
    # col is '' for a result without a column, so the key never holds a NULL.
    """
    CREATE TABLE history (
        model TEXT NOT NULL,
        monitor TEXT NOT NULL,
        segment TEXT NOT NULL,        -- canonical JSON object
        col TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        type TEXT NOT NULL,
        value REAL,
        status TEXT NOT NULL,
        rows INTEGER,
        window_start TEXT,
        window_end TEXT,
        PRIMARY KEY (model, monitor, segment, col, at)
    );
    CREATE INDEX history_model_at ON history(model, at);
    CREATE INDEX history_at ON history(at);
    """,
    # 6: the daemon's watermarks, the newest tick evaluated per model, written in the
    # tick's alert-state transaction (see rulesengine/daemon/watermarks.py); tick is
    # the same fixed-width UTC text as history.at
    """
    CREATE TABLE watermarks (
        model TEXT PRIMARY KEY,
        tick TEXT NOT NULL
    );
    """,
    # 7: the severity of a firing notification (the highest of its firing alerts),
    # which sets the Apprise notify type; rows queued before it have '' and send as
    # before ("info"; "success" when resolved). source_health remembers the
    # evaluation time it last counted, so a re-run at the same time counts no
    # empty evaluation twice (NULL on older rows: the next one counts).
    """
    ALTER TABLE outbox ADD COLUMN severity TEXT NOT NULL DEFAULT '';
    ALTER TABLE source_health ADD COLUMN counted_at TEXT;
    """,
    # 8: a file sent with a notification (the scheduled reports' HTML page, see
    # rulesengine/daemon/reports.py), kept in the row so queueing it is atomic;
    # NULL on every other row, which sends as before
    """
    ALTER TABLE outbox ADD COLUMN attachment BLOB;
    ALTER TABLE outbox ADD COLUMN attachment_name TEXT;
    """,
    # 9: the share of a window's rows with a joined label, for metrics with
    # `join` (the report draws it over time); NULL for every other result
    """
    ALTER TABLE history ADD COLUMN label_coverage REAL;
    """,
    # 10: every alert's state changes (inactive/pending/firing/resolved, and a
    # firing alert's severity), one row per change at the evaluation time that made
    # it, written in the tick's transaction (see rulesengine/alerting/tracker.py);
    # the report draws pending, firing and resolved spans from it. Pruned with the
    # history's retention, keeping each alert's newest row before the cut-off.
    """
    CREATE TABLE alert_log (
        alert_id TEXT NOT NULL,
        at TEXT NOT NULL,
        model TEXT NOT NULL,
        monitor TEXT NOT NULL,
        segment TEXT NOT NULL,        -- canonical JSON object
        col TEXT NOT NULL,
        state TEXT NOT NULL,
        severity TEXT NOT NULL,       -- '' unless firing
        PRIMARY KEY (alert_id, at)
    );
    CREATE INDEX alert_log_model_at ON alert_log(model, at);
    """,
]

OUTBOX_KEY = "outbox_key"


def _new_outbox_key(db: sqlite3.Connection) -> None:
    # from the OS's CSPRNG, not SQLite's randomblob()
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (OUTBOX_KEY, secrets.token_bytes(32)))


# Python steps run right after a migration's SQL, in the same transaction.
MIGRATION_HOOKS: dict[int, Callable[[sqlite3.Connection], None]] = {3: _new_outbox_key}

# quick_check reads every page (about 1 ms per MiB here); beyond this size it is
# left to the errors SQLite raises as pages are read.
QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024

ADVICE = (
    "Move it aside to start with a fresh store (alerts will be sent again), "
    "or restore it from a backup."
)


def now_text(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def store_error(path: str | Path, exc: BaseException) -> StoreError:
    """A :class:`StoreError` for an SQLite or OS error on the store at ``path``,
    with the advice that fits: wait, fix permissions, or move the file aside."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreError(
            f"state file {path} is locked by another process ({text}); try again later"
        )
    if isinstance(exc, PermissionError) or "readonly" in low or "unable to open" in low:
        return StoreError(
            f"state file {path} cannot be opened for reading and writing ({text}): "
            "check the permissions of the file and of its folder"
        )
    return StoreError(f"state file {path} is corrupt or unreadable ({text}). {ADVICE}")


def _is_store_failure(exc: BaseException) -> bool:
    # IntegrityError and ProgrammingError mean a bug in our SQL, not a bad file
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError
    )


class Store:
    """The state database. Use as a context manager or call :meth:`close`.

    Opening checks the file (see the module docstring) and raises
    :class:`StoreError`; SQLite errors raised later inside :meth:`transaction`,
    :meth:`rows`, :meth:`row`, :meth:`guard` or a ``with Store(...)`` block become
    :class:`StoreError` too.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._outbox_key: bytes | None = None
        if str(path) == ":memory:":
            self.db = _connect(":memory:", uri=False)
            self.migrate()
            return
        try:
            _create_if_missing(self.path)
            self.db = _connect(_uri(self.path), uri=True)
        except StoreError:
            raise
        except (OSError, sqlite3.DatabaseError) as exc:
            raise store_error(self.path, exc) from exc
        try:
            with self.guard():
                self.migrate()
                self._check()
        except BaseException:
            self.db.close()
            raise

    # ------------------------------------------------------------ schema
    def migrate(self) -> None:
        """Apply the missing migrations (see :func:`_migrate`)."""
        _migrate(self.db, self.path)

    def _check(self) -> None:
        """Every table and column the schema version promises, and a sound file."""
        have = _tables(self.db)
        for table, columns in _expected_tables(len(MIGRATIONS)).items():
            missing = [c for c in columns if c not in have.get(table, ())]
            if table not in have:
                raise StoreError(
                    f"state file {self.path} is damaged: table {table} is missing. {ADVICE}"
                )
            if missing:
                raise StoreError(
                    f"state file {self.path} is damaged: table {table} lacks column(s) "
                    f"{', '.join(missing)}. {ADVICE}"
                )
        if self.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
            rows = self.db.execute("PRAGMA quick_check(3)").fetchall()
            problems = [ln for r in rows for ln in str(r[0]).splitlines() if "***" not in ln]
            if problems != ["ok"]:
                found = "; ".join(problems)
                raise StoreError(
                    f"state file {self.path} is corrupt (quick_check: {found}). {ADVICE}"
                )

    @property
    def outbox_key(self) -> bytes:
        """This store's secret key for outbox target fingerprints."""
        if self._outbox_key is None:
            row = self.row("SELECT value FROM meta WHERE key=?", OUTBOX_KEY)
            if row is None or len(bytes(row["value"])) < 32:
                raise StoreError(
                    f"state file {self.path} is damaged: its outbox key is missing. {ADVICE}"
                )
            self._outbox_key = bytes(row["value"])
        return self._outbox_key

    # ------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: the write lock is taken first, so what is read
        inside already includes every other process's committed writes."""
        with self.guard(), _immediate(self.db):
            yield self.db

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn SQLite errors from a bad file into a :class:`StoreError`."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if not _is_store_failure(exc):
                raise
            raise store_error(self.path, exc) from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, typ: object, exc: BaseException | None, tb: object) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.close()
        if exc is not None and _is_store_failure(exc):
            raise store_error(self.path, exc) from exc

    # -------------------------------------------------------------- queries
    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.guard():
            return self.db.execute(sql, args).fetchall()

    def row(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self.guard():
            return self.db.execute(sql, args).fetchone()


# ------------------------------------------------------------------ opening


def _uri(path: Path) -> str:
    # mode=rw: SQLite never creates the file, so a path that vanished is an error
    # rather than a silent new store
    return path.absolute().as_uri() + "?mode=rw"


def _connect(target: str, *, uri: bool) -> sqlite3.Connection:
    db = sqlite3.connect(target, timeout=30, isolation_level=None, uri=uri)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # no old fingerprints left in free pages
    except BaseException:
        db.close()
        raise
    return db


def _create_if_missing(path: Path) -> None:
    """Check what is at ``path``; if nothing, build a fully migrated store beside
    it and link it into place, so that an empty file at ``path`` always means a
    truncated store and never one that another process is just creating."""
    if path.is_dir():
        raise StoreError(f"state file {path} is a directory, not a store. {ADVICE}")
    if path.exists():
        wal = path.with_name(path.name + "-wal")
        if path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
            raise StoreError(
                f"state file {path} is empty (0 bytes): it was probably truncated. {ADVICE}"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)  # mkstemp makes it 0600: the store is the owner's alone
    tmp = Path(tmp_name)
    try:
        db = _connect(str(tmp), uri=False)
        try:
            _migrate(db, path)
        finally:
            db.close()  # the last close checkpoints: everything is in tmp itself
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError:
            # no hard links on this filesystem: a rename that may, in a narrow
            # race, replace a store another process made an instant ago (both new)
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _version(db: sqlite3.Connection, path: Path) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"state file {path} was written by a newer rulesengine (schema {version}, "
            f"this one knows {len(MIGRATIONS)}): upgrade rulesengine or point `state:` "
            "at another file"
        )
    return version


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the missing migrations, one transaction each. The version is read
    again after taking the write lock: another process may have just applied it."""
    while _version(db, path) < len(MIGRATIONS):
        with _immediate(db):
            version = _version(db, path)
            if version >= len(MIGRATIONS):
                return
            for statement in _statements(MIGRATIONS[version]):
                db.execute(statement)
            hook = MIGRATION_HOOKS.get(version + 1)
            if hook is not None:
                hook(db)
            db.execute(f"PRAGMA user_version={version + 1}")


def _tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: {c[1] for c in db.execute(f'PRAGMA table_info("{n}")')} for n in names}


@functools.cache
def _expected_tables(version: int) -> dict[str, frozenset[str]]:
    """Tables and columns that migrations 1..version create (built in memory)."""
    db = sqlite3.connect(":memory:")
    try:
        for script in MIGRATIONS[:version]:
            for statement in _statements(script):
                db.execute(statement)
        return {t: frozenset(c) for t, c in _tables(db).items()}
    finally:
        db.close()


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
