"""Delivery through Apprise, from a persistent outbox.

Every notification is first an outbox row per target URL (a keyed fingerprint of
it, never the URL: secrets stay in the environment). Sending takes the URL from
the current config, bounds each attempt with a timeout, retries with exponential
backoff until the row's deadline, and records each target's outcome on its own
row, so one failing receiver never holds up another.

Any number of processes may deliver from one store at once: a row is claimed
with a lease (``lease_owner``, ``lease_until``) in one ``BEGIN IMMEDIATE``
transaction before it is sent, and only its claimer sends it. The lease lasts
the send timeout plus :data:`LEASE_MARGIN`, so a process killed mid-send holds
its row only that long; then another process retries it. On the same host (and
PID namespace) a lease whose owner process is gone is free at once. Delivery is at least
once: a crash between sending and recording the success sends that
notification again (once per crash, as a process holds one row at a time).

Each message carries an Apprise notify type from its row (:func:`notify_type`):
``failure`` for a critical notification, ``warning`` for a warn one, ``success``
for a resolved one, ``info`` otherwise (and for rows queued before schema 7).

Fingerprints are ``hmac-sha256:`` + HMAC-SHA256(store key, URL), with a random
key made once per store (``meta`` table): a hash of a guessed URL matches
nothing, and one URL fingerprints differently in every store. Rows queued
before this scheme hold a bare SHA-256; the next delivery re-keys the pending
ones it can match to a configured URL and fails the rest as "no longer in the
config" (their migration already wiped the hash of finished rows).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from rulesengine.alerting.store import Store, now_text, parse_ts
from rulesengine.masking import mask_url
from rulesengine.spec.model import DeliverySpec, EngineSpec

__all__ = ["AppriseNotifier", "DeliveryReport", "Notifier", "deliver", "enqueue", "notify_type"]

log = logging.getLogger("rulesengine.delivery")

FINGERPRINT = "hmac-sha256:"
LEASE_MARGIN = timedelta(seconds=5)  # recording an outcome after the send, with room
GONE = "receiver or URL no longer in the config"


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), to tell it from a later
    process with the same id: None if there is no such process (or only its
    zombie), "" if this system cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:  # no /proc: ask the kernel whether the id is in use
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
    return None if fields[0] == "Z" else fields[19]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _lease_owner() -> str:
    """Who holds a lease: host, PID namespace, pid, its start time, and a nonce."""
    pid = os.getpid()
    tag = [socket.gethostname(), _pid_namespace(), str(pid), _start_time(pid) or ""]
    return "|".join([*tag, uuid.uuid4().hex[:12]])


def _owner_gone(owner: str | None) -> bool:
    """True only when ``owner`` surely died: a process of this host and PID
    namespace that no longer runs. Anything else waits for the lease to end."""
    parts = (owner or "").split("|")
    if len(parts) != 5 or parts[0] != socket.gethostname() or parts[1] != _pid_namespace():
        return False
    if not parts[2].isdigit():
        return False
    now = _start_time(int(parts[2]))
    return now is None or bool(parts[3] and now and now != parts[3])


def target_id(url: str, key: bytes) -> str:
    """The outbox fingerprint of ``url`` under a store's key."""
    return FINGERPRINT + hmac.new(key, url.encode(), hashlib.sha256).hexdigest()


def _legacy_target_id(url: str) -> str:
    # what rows queued before schema 3 hold; only used to re-key them
    return hashlib.sha256(url.encode()).hexdigest()


# Apprise's notify types (apprise.NotifyType values), by what a notification says
NOTIFY_TYPES = {"critical": "failure", "warn": "warning"}


def notify_type(kind: str, severity: str | None) -> str:
    """The Apprise notify type of an outbox row: ``success`` when resolved,
    ``failure`` for critical, ``warning`` for warn, else ``info``."""
    if kind == "resolved":
        return "success"
    return NOTIFY_TYPES.get(severity or "", "info")


class Notifier(Protocol):
    def send(
        self, url: str, title: str, body: str, timeout: float, notify_type: str = "info"
    ) -> str | None:
        """Send one message with an Apprise notify type (``info``, ``success``,
        ``warning``, ``failure``); None on success, else why it failed (masked).
        A row with a file (a scheduled report) is sent with a keyword argument
        ``attachment=(filename, bytes)`` as well, which only notifiers that take
        it are given."""


class AppriseNotifier:
    """Sends through Apprise, each attempt bounded by ``timeout`` seconds.

    The send runs in a daemon thread of ours, which the interpreter does not wait
    for at exit, so a send cut off by its timeout never keeps the process alive.
    Apprise's own per-service limit is turned off (``service_timeout=0``): with it
    on, Apprise runs the call in its shared thread pool, whose workers the
    interpreter joins at exit, and a thread blocked reading a socket cannot be
    cancelled; ``timeout`` bounds the attempt instead."""

    def send(
        self,
        url: str,
        title: str,
        body: str,
        timeout: float,
        notify_type: str = "info",
        attachment: tuple[str, bytes] | None = None,
    ) -> str | None:
        """``attachment`` (file name, content) is written to a temporary folder of
        its own for the send and goes with Apprise's ``attach=``."""
        import apprise

        outcome: dict[str, object] = {}

        def attempt() -> None:
            try:
                ap = apprise.Apprise(asset=apprise.AppriseAsset(service_timeout=0))
                if not ap.add(url):
                    outcome["error"] = "invalid Apprise URL"
                    return
                with tempfile.TemporaryDirectory(prefix="rulesengine-attach-") as tmp:
                    attach = None
                    if attachment is not None:
                        attach = str(Path(tmp) / Path(attachment[0]).name)
                        Path(attach).write_bytes(attachment[1])
                    # plain text: mail keeps its lines and markup in values stays text
                    result = ap.notify(
                        title=title,
                        body=body,
                        body_format=apprise.NotifyFormat.TEXT,
                        notify_type=apprise.NotifyType(notify_type),
                        attach=attach,
                    )
                outcome["ok"] = bool(result)
                if not result:
                    outcome["error"] = "the service refused or could not be reached"
            except Exception as exc:  # Apprise plugins raise their own errors
                outcome["error"] = f"{type(exc).__name__}"

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            return f"timed out after {timeout:g}s"
        return None if outcome.get("ok") else str(outcome.get("error", "failed"))


@dataclass
class DeliveryReport:
    sent: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    pending: int = 0  # rows still pending at the end, including ``leased``
    leased: int = 0  # of those, rows another process is sending right now
    errors: list[str] = field(default_factory=list)
    # (receiver, "sent" | "failed" | "gave_up") → count, for the daemon's metrics
    by_receiver: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count(self, receiver: str, outcome: str) -> None:
        self.by_receiver[(receiver, outcome)] += 1


def enqueue(
    store: Store,
    engine: EngineSpec,
    *,
    group_key: str,
    receiver: str,
    kind: str,
    title: str,
    body: str,
    now: datetime,
    severity: str = "",
    attachment: tuple[str, bytes] | None = None,
) -> int:
    """Outbox rows for every target of ``receiver``; call inside a transaction.
    ``severity`` (of a firing notification) sets the notify type it is sent with;
    ``attachment`` (file name, content) is kept in each row and sent with it."""
    name, blob = attachment if attachment is not None else (None, None)
    spec = engine.receivers.get(receiver)
    if spec is None:
        return 0
    deadline = now + engine.delivery.deadline
    key = store.outbox_key
    n = 0
    for url in receiver_urls(engine, receiver):
        store.db.execute(
            "INSERT INTO outbox (group_key, receiver, target, target_label, kind, title, body,"
            " created_at, deadline, next_attempt_at, severity, attachment, attachment_name)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                group_key,
                receiver,
                target_id(url, key),
                mask_url(url),
                kind,
                title,
                body,
                now_text(now),
                now_text(deadline),
                now_text(now),
                severity,
                blob,
                name,
            ),
        )
        n += 1
    return n


def receiver_urls(engine: EngineSpec, receiver: str) -> list[str]:
    """The Apprise URLs of a receiver, including those of its Apprise config file."""
    spec = engine.receivers[receiver]
    urls = list(spec.urls)
    if spec.config:
        import apprise

        cfg = apprise.AppriseConfig()
        cfg.add(spec.config)
        ap = apprise.Apprise()
        ap.add(cfg)
        tags = list(spec.tags) or None
        for server in ap.find(tag=tags) if tags else ap:
            urls.append(server.url(privacy=False))
    return urls


def _backoff(spec: DeliverySpec, attempts: int) -> timedelta:
    delay = spec.backoff * (2 ** max(0, attempts - 1))
    return min(delay, spec.max_backoff)


def deliver(
    store: Store,
    engine: EngineSpec,
    notifier: Notifier,
    *,
    clock: Callable[[], datetime],
    budget: float | None = None,
    retry_all: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send what is due in the outbox. ``retry_all`` first tries every pending row
    whatever its backoff. With a ``budget`` (seconds), keep retrying failures until
    it is spent; otherwise make one pass. Rows another process holds are left to it."""
    report = DeliveryReport()
    owner = _lease_owner()
    lease = engine.delivery.timeout + LEASE_MARGIN
    # lets the claim's SQL free the leases of processes that died mid-send
    store.db.create_function("owner_gone", 1, _owner_gone)
    _rekey_legacy(store, engine, report)
    started = clock()
    first = True
    while True:
        # one pass walks the rows in id order, each claimed just before its send
        last_id = 0
        while (
            row := _claim(store, owner, clock(), lease, last_id, first and retry_all)
        ) is not None:
            last_id = row["id"]
            _attempt(store, engine, notifier, row, clock(), report, owner)
        first = False
        wait = _until_due(store, clock(), report)
        if wait is None or budget is None:
            break
        left = budget - (clock() - started).total_seconds()
        if left <= 0 or wait > left:
            break
        if wait > 0:
            sleep(wait)
    return report


def _claim(
    store: Store, owner: str, now: datetime, lease: timedelta, after: int, any_time: bool
) -> sqlite3.Row | None:
    """Lease the next due row after ``after`` to ``owner``, in one transaction, so
    that no other process can send it; None when there is none."""
    with store.transaction():
        claimed = store.db.execute(
            "UPDATE outbox SET lease_owner=?, lease_until=? WHERE id = ("
            " SELECT id FROM outbox WHERE state='pending' AND id > ?"
            " AND (? OR next_attempt_at <= ?)"
            " AND (lease_until IS NULL OR lease_until <= ? OR owner_gone(lease_owner))"
            " ORDER BY id LIMIT 1) RETURNING *",
            (owner, now_text(now + lease), after, any_time, now_text(now), now_text(now)),
        ).fetchall()  # every row read before COMMIT
    return claimed[0] if claimed else None


def _until_due(store: Store, now: datetime, report: DeliveryReport) -> float | None:
    """Seconds until the next pending row may be tried (a row leased by another
    process counts from its lease's end); None if nothing is pending."""
    pending = store.rows(
        "SELECT next_attempt_at, lease_until, lease_owner FROM outbox WHERE state='pending'"
    )
    report.pending = len(pending)
    report.leased = 0
    if not pending:
        return None
    stamp = now_text(now)
    times = []
    for r in pending:
        due = r["next_attempt_at"]
        lease = r["lease_until"]
        if lease is not None and lease > stamp and not _owner_gone(r["lease_owner"]):
            report.leased += 1
            due = max(due, lease)
        times.append((parse_ts(due) - now).total_seconds())  # type: ignore[operator]
    return min(times)


def _rekey_legacy(store: Store, engine: EngineSpec, report: DeliveryReport) -> None:
    """Give pending rows from before keyed fingerprints (a bare SHA-256) the keyed
    one of the configured URL they match; fail those that match none."""
    legacy_sql = (
        "SELECT id, receiver, target FROM outbox WHERE state='pending' AND target != ''"
        " AND target NOT LIKE 'hmac-sha256:%'"
    )
    if not store.rows(legacy_sql):
        return
    key = store.outbox_key
    with store.transaction():
        # read again under the write lock: another process may have re-keyed them
        for r in store.db.execute(legacy_sql).fetchall():
            known = r["receiver"] in engine.receivers
            urls = receiver_urls(engine, r["receiver"]) if known else []
            url = next((u for u in urls if _legacy_target_id(u) == r["target"]), None)
            if url is not None:
                store.db.execute(
                    "UPDATE outbox SET target=? WHERE id=?", (target_id(url, key), r["id"])
                )
                continue
            store.db.execute(
                "UPDATE outbox SET state='failed', target='', last_error=? WHERE id=?",
                (GONE, r["id"]),
            )
            report.gave_up += 1
            report.count(r["receiver"], "gave_up")
            log.warning("dropped notification %s: its receiver or URL left the config", r["id"])


def _finish(store: Store, row: sqlite3.Row, owner: str, sql: str, *args: object) -> None:
    """Record a claimed row's outcome and release its lease. ``sql`` sets columns."""
    with store.transaction():
        cur = store.db.execute(
            f"UPDATE outbox SET {sql}, lease_owner=NULL, lease_until=NULL"
            " WHERE id=? AND lease_owner=?",
            (*args, row["id"], owner),
        )
    if cur.rowcount == 0:  # held past its lease: another process may send it again
        log.warning("notification %s outlived its lease; it may be sent twice", row["id"])


def _give_up(
    store: Store,
    row: sqlite3.Row,
    owner: str,
    attempts: int,
    error: str,
    report: DeliveryReport,
) -> None:
    _finish(store, row, owner, "state='failed', attempts=?, last_error=?", attempts, error)
    report.gave_up += 1
    report.count(row["receiver"], "gave_up")
    log.error(
        "giving up on notification %s to %s (%s) after %d attempt(s): %s",
        row["id"],
        row["receiver"],
        row["target_label"],
        attempts,
        error,
    )


def _url_of(store: Store, engine: EngineSpec, row: sqlite3.Row) -> str | None:
    if row["receiver"] not in engine.receivers:
        return None
    key = store.outbox_key
    urls = receiver_urls(engine, row["receiver"])
    return next((u for u in urls if hmac.compare_digest(target_id(u, key), row["target"])), None)


def _attempt(
    store: Store,
    engine: EngineSpec,
    notifier: Notifier,
    row: sqlite3.Row,
    now: datetime,
    report: DeliveryReport,
    owner: str,
) -> None:
    attempts = row["attempts"]
    deadline = parse_ts(row["deadline"])
    if deadline is not None and now > deadline:
        _give_up(store, row, owner, attempts, row["last_error"] or "past its deadline", report)
        return
    url = _url_of(store, engine, row)
    if url is None:
        _finish(store, row, owner, "state='failed', last_error=?", GONE)
        report.gave_up += 1
        report.count(row["receiver"], "gave_up")
        log.warning(
            "dropped notification %s for %s: its receiver or URL left the config",
            row["id"],
            row["target_label"],
        )
        return
    timeout = engine.delivery.timeout.total_seconds()
    try:
        kind = notify_type(row["kind"], row["severity"])
        extra: dict[str, Any] = {}
        if row["attachment"] is not None:
            extra["attachment"] = (row["attachment_name"] or "attachment", bytes(row["attachment"]))
        error = notifier.send(url, row["title"], row["body"], timeout, notify_type=kind, **extra)
    except Exception as exc:  # a notifier bug must not stop the other deliveries
        error = f"{type(exc).__name__}"
    attempts += 1
    if error is None:
        sql = "state='sent', attempts=?, sent_at=?, last_error=NULL"
        _finish(store, row, owner, sql, attempts, now_text(now))
        report.sent += 1
        report.count(row["receiver"], "sent")
        return
    report.failed_attempts += 1
    report.count(row["receiver"], "failed")
    label = row["target_label"]
    report.errors.append(f"{row['receiver']}: {label}: {error}")
    nxt = now + _backoff(engine.delivery, attempts)
    if deadline is not None and nxt > deadline:
        _give_up(store, row, owner, attempts, error, report)
        return
    sql = "attempts=?, next_attempt_at=?, last_error=?"
    _finish(store, row, owner, sql, attempts, now_text(nxt), error)
    log.warning(
        "notification %s to %s (%s) failed (attempt %d), retrying at %s: %s",
        row["id"],
        row["receiver"],
        label,
        attempts,
        now_text(nxt),
        error,
    )
