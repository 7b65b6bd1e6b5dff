"""The daemon's loop: each model on its cadence until a stop is asked for.

Each pass asks :func:`rulesengine.daemon.schedule.due` which ticks each model
owes since its watermark, evaluates them oldest first (:func:`run_tick`), delivers
the outbox within ``delivery.run_budget`` once per pass, then sleeps until the earliest next
tick on a :class:`threading.Event`, so SIGTERM or SIGINT wakes it at once. A stop
lets the tick in flight finish, so it takes at most one tick plus the delivery
budget. A tick that raises is logged and not retried by this process (its
watermark stays, so a restart tries it again); the other models go on.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from rulesengine.alerting.delivery import AppriseNotifier, Notifier, deliver
from rulesengine.alerting.store import Store
from rulesengine.daemon import watermarks
from rulesengine.daemon.logs import event
from rulesengine.daemon.schedule import cadence_of, due, last_tick, next_tick
from rulesengine.daemon.tick import run_tick
from rulesengine.errors import first_line
from rulesengine.spec.model import Config, ModelSpec

# The longest sleep between passes: a wall-clock jump (NTP, suspend) is noticed
# within this bound even when the next tick is far away.
MAX_SLEEP = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """The loop over one config and one open store (the caller holds the lock)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        notifier: Notifier | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.config = config
        self.store = store
        self.notifier = notifier or AppriseNotifier()
        self.stop = stop or threading.Event()
        self.clock = clock
        # the newest tick tried per model: the watermark, or a failed tick past it,
        # so a failing tick is not retried in a tight loop
        self.tried: dict[str, datetime | None] = {
            m.model: watermarks.read(store, m.model) for m in config.models
        }

    def run(self) -> None:
        """Loop until ``stop`` is set; return once the tick in flight is done."""
        event(logging.INFO, "start", models=len(self.config.models), state=str(self.store.path))
        self.deliver(retry_all=True)  # what a previous process left in the outbox
        while not self.stop.is_set():
            self.run_due()
            # every pass, so rows waiting on their backoff go out on time
            self.deliver()
            self.stop.wait(self.seconds_to_next())
        event(logging.INFO, "stop")

    def run_due(self) -> None:
        """Evaluate every tick due now, model by model, oldest first."""
        for model in self.config.models:
            for tick in self.due(model):
                if self.stop.is_set():
                    return
                self.tried[model.model] = tick
                self.one_tick(model, tick)

    def due(self, model: ModelSpec) -> list[datetime]:
        ev = model.evaluation
        cadence, now = cadence_of(ev), self.clock()
        ticks = due(cadence, self.tried[model.model], now, ev.catch_up, ev.catch_up_max)
        if not ticks and ev.catch_up == "none":
            # `none` skips missed ticks (and waits on a first start): count the newest
            # as tried, so the next tick is the first one after it
            newest = last_tick(cadence, now)
            tried = self.tried[model.model]
            self.tried[model.model] = newest if tried is None else max(tried, newest)
        return ticks

    def one_tick(self, model: ModelSpec, tick: datetime) -> None:
        name = model.model
        try:
            report = run_tick(self.store, self.config, model, tick, self.clock())
        except Exception as exc:  # one model's failure never stops the others
            event(
                logging.ERROR,
                "tick failed",
                model=name,
                tick=tick.isoformat(),
                error=first_line(exc),
            )
            return
        fields = {"model": name, "tick": tick.isoformat(), "counts": report.counts}
        if report.skipped:
            event(logging.INFO, "tick already recorded", **fields)
            return
        event(
            logging.INFO, "tick", **fields, queued=report.queued, seconds=round(report.seconds, 3)
        )

    def deliver(self, *, retry_all: bool = False) -> None:
        budget = self.config.engine.delivery.run_budget.total_seconds()
        try:
            with self.store.guard():
                sent = deliver(
                    self.store,
                    self.config.engine,
                    self.notifier,
                    clock=self.clock,
                    budget=budget,
                    retry_all=retry_all,
                )
        except Exception as exc:
            event(logging.ERROR, "delivery failed", error=first_line(exc))
            return
        if sent.sent or sent.gave_up:
            event(
                logging.INFO, "delivery", sent=sent.sent, pending=sent.pending, gave_up=sent.gave_up
            )

    def seconds_to_next(self) -> float:
        """Seconds until the earliest next tick of any model (0 when one is already
        due, e.g. it fell due during the pass), at most MAX_SLEEP."""
        waits = [MAX_SLEEP]
        for model in self.config.models:
            if self.due(model):
                return 0.0
            now = self.clock()
            waits.append(
                (next_tick(cadence_of(model.evaluation), now) - now) / timedelta(seconds=1)
            )
        return min(max(w, 0.0) for w in waits)


def install_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (main thread only, as Python requires)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve(config: Config) -> int:
    """``rulesengine daemon``: take the state file's lock, open the store, loop
    until SIGTERM or SIGINT, and return the exit code (0)."""
    from rulesengine.daemon.lock import acquire

    stop = threading.Event()
    install_signals(stop)
    lock = acquire(config.engine.state)
    try:
        with Store(config.engine.state) as store:
            Daemon(config, store, stop=stop).run()
    finally:
        lock.close()
    return 0
