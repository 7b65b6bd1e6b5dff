"""The daemon's delivery thread: sends the outbox while the loop evaluates.

It opens its own connection to the state file (SQLite connections are not
shared across threads; WAL lets it write beside the loop's transactions) and,
every second or as soon as a tick queued something, makes one pass of
:func:`rulesengine.alerting.delivery.deliver`. Rows waiting on their backoff go
out on a later pass; a row another process holds is left to it (leases). After
each pass it publishes the alert listing and the outbox depth per receiver for
``/api/alerts`` and ``/metrics``, and checks that the store still takes writes.
A slow receiver therefore delays other notifications, never a tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from rulesengine.alerting.admin import alert_listing
from rulesengine.alerting.delivery import Notifier, deliver
from rulesengine.alerting.store import Store
from rulesengine.daemon.logs import event
from rulesengine.daemon.metrics import DaemonMetrics
from rulesengine.daemon.status import Status
from rulesengine.errors import StoreError, first_line
from rulesengine.spec.model import Config

POLL_SECONDS = 1.0


class Outbox:
    def __init__(
        self,
        config: Config,
        notifier: Notifier,
        status: Status,
        metrics: DaemonMetrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.status = status
        self.metrics = metrics
        self.clock = clock
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rulesengine-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def use(self, config: Config) -> None:
        self.config = config  # read once per pass: a pass never mixes two configs

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        """Stop after the send in progress (bounded by ``delivery.timeout``)."""
        self._stop.set()
        self._kick.set()
        self._thread.join(self.config.engine.delivery.timeout.total_seconds() + 5)

    def _run(self) -> None:
        try:
            store = Store(self.config.engine.state)
        except StoreError as exc:
            self.status.store_writable = False
            event(logging.ERROR, "delivery failed", error=first_line(exc))
            return
        with store:
            first = True
            while not self._stop.is_set():
                self._kick.clear()
                self.one_pass(store, retry_all=first)
                first = False
                self._kick.wait(POLL_SECONDS)

    def one_pass(self, store: Store, *, retry_all: bool = False) -> None:
        config = self.config
        try:
            with store.guard():
                sent = deliver(
                    store, config.engine, self.notifier, clock=self.clock, retry_all=retry_all
                )
                pending = {
                    r["receiver"]: r["n"]
                    for r in store.rows(
                        "SELECT receiver, count(*) AS n FROM outbox"
                        " WHERE state='pending' GROUP BY receiver"
                    )
                }
                listing = alert_listing(store, self.clock())
                with store.transaction():  # the store still takes writes
                    pass
        except Exception as exc:  # logged; the next pass tries again
            if isinstance(exc, StoreError):
                self.status.store_writable = False
            event(logging.ERROR, "delivery failed", error=first_line(exc))
            return
        self.status.publish_alerts(listing)  # first: a counter seen moved means this is out
        self.metrics.delivered(sent)
        self.metrics.set_queued(pending)
        if sent.sent or sent.gave_up:
            event(
                logging.INFO, "delivery", sent=sent.sent, pending=sent.pending, gave_up=sent.gave_up
            )
