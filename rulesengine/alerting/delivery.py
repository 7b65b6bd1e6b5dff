"""Delivery through Apprise, from a persistent outbox.

Every notification is first an outbox row per target URL (its SHA-256, never the
URL: secrets stay in the environment). Sending takes the URL from the current
config, bounds each attempt with a timeout, retries with exponential backoff until
the row's deadline, and records each target's outcome on its own row, so one
failing receiver never holds up another. Delivery is at least once: a crash
between sending and recording the success sends that notification again.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from rulesengine.masking import mask_url
from rulesengine.spec.model import DeliverySpec, EngineSpec
from rulesengine.store import Store, now_text, parse_ts

log = logging.getLogger("rulesengine.delivery")


def target_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class Notifier(Protocol):
    def send(self, url: str, title: str, body: str, timeout: float) -> str | None:
        """Send one message; None on success, else why it failed (masked)."""


class AppriseNotifier:
    """Sends through Apprise, each attempt bounded by ``timeout`` seconds."""

    def send(self, url: str, title: str, body: str, timeout: float) -> str | None:
        import apprise

        outcome: dict[str, object] = {}

        def attempt() -> None:
            try:
                ap = apprise.Apprise()
                if not ap.add(url):
                    outcome["error"] = "invalid Apprise URL"
                    return
                # plain text: mail keeps its lines and markup in values stays text
                result = ap.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
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
    pending: int = 0
    errors: list[str] = field(default_factory=list)


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
) -> int:
    """Outbox rows for every target of ``receiver``; call inside a transaction."""
    spec = engine.receivers.get(receiver)
    if spec is None:
        return 0
    deadline = now + engine.delivery.deadline
    n = 0
    for url in receiver_urls(engine, receiver):
        store.db.execute(
            "INSERT INTO outbox (group_key, receiver, target, target_label, kind, title, body,"
            " created_at, deadline, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                group_key,
                receiver,
                target_id(url),
                mask_url(url),
                kind,
                title,
                body,
                now_text(now),
                now_text(deadline),
                now_text(now),
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
    it is spent; otherwise make one pass."""
    report = DeliveryReport()
    started = clock()
    first = True
    while True:
        now = clock()
        if first and retry_all:
            due = store.rows("SELECT * FROM outbox WHERE state='pending' ORDER BY id")
        else:
            due = store.rows(
                "SELECT * FROM outbox WHERE state='pending' AND next_attempt_at <= ? ORDER BY id",
                now_text(now),
            )
        first = False
        for row in due:
            _attempt(store, engine, notifier, row, clock(), report)
        pending = store.rows("SELECT next_attempt_at FROM outbox WHERE state='pending'")
        report.pending = len(pending)
        if not pending or budget is None:
            break
        left = budget - (clock() - started).total_seconds()
        wait = min(
            (parse_ts(r["next_attempt_at"]) - clock()).total_seconds()  # type: ignore[operator]
            for r in pending
        )
        if left <= 0 or wait > left:
            break
        if wait > 0:
            sleep(wait)
    return report


def _give_up(
    store: Store, row: sqlite3.Row, attempts: int, error: str, report: DeliveryReport
) -> None:
    with store.transaction():
        store.db.execute(
            "UPDATE outbox SET state='failed', attempts=?, last_error=? WHERE id=?",
            (attempts, error, row["id"]),
        )
    report.gave_up += 1
    log.error(
        "giving up on notification %s to %s (%s) after %d attempt(s): %s",
        row["id"],
        row["receiver"],
        row["target_label"],
        attempts,
        error,
    )


def _attempt(
    store: Store,
    engine: EngineSpec,
    notifier: Notifier,
    row: sqlite3.Row,
    now: datetime,
    report: DeliveryReport,
) -> None:
    attempts = row["attempts"]
    deadline = parse_ts(row["deadline"])
    if deadline is not None and now > deadline:
        _give_up(store, row, attempts, row["last_error"] or "past its deadline", report)
        return
    url = None
    if row["receiver"] in engine.receivers:
        url = next(
            (u for u in receiver_urls(engine, row["receiver"]) if target_id(u) == row["target"]),
            None,
        )
    if url is None:
        with store.transaction():
            store.db.execute(
                "UPDATE outbox SET state='failed', last_error=? WHERE id=?",
                ("receiver or URL no longer in the config", row["id"]),
            )
        report.gave_up += 1
        log.warning(
            "dropped notification %s for %s: its receiver or URL left the config",
            row["id"],
            row["target_label"],
        )
        return
    timeout = engine.delivery.timeout.total_seconds()
    try:
        error = notifier.send(url, row["title"], row["body"], timeout)
    except Exception as exc:  # a notifier bug must not stop the other deliveries
        error = f"{type(exc).__name__}"
    attempts += 1
    if error is None:
        with store.transaction():
            store.db.execute(
                "UPDATE outbox SET state='sent', attempts=?, sent_at=?, last_error=NULL WHERE id=?",
                (attempts, now_text(now), row["id"]),
            )
        report.sent += 1
        return
    report.failed_attempts += 1
    label = row["target_label"]
    report.errors.append(f"{row['receiver']}: {label}: {error}")
    nxt = now + _backoff(engine.delivery, attempts)
    if deadline is not None and nxt > deadline:
        _give_up(store, row, attempts, error, report)
        return
    with store.transaction():
        store.db.execute(
            "UPDATE outbox SET attempts=?, next_attempt_at=?, last_error=? WHERE id=?",
            (attempts, now_text(nxt), error, row["id"]),
        )
    log.warning(
        "notification %s to %s (%s) failed (attempt %d), retrying at %s: %s",
        row["id"],
        row["receiver"],
        label,
        attempts,
        now_text(nxt),
        error,
    )
