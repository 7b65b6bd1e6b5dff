"""The daemon's loop: each model on its cadence until a stop is asked for.

One thread, the loop's, owns the store for ticks. Each pass it:

1. reloads the config if SIGHUP asked for it or a config file changed
   (:mod:`rulesengine.daemon.reload`);
2. records the ticks whose evaluation finished (:func:`record_tick`: history,
   alert states, outbox and watermark in one transaction);
3. counts a tick still running past its deadline as overrun, once;
4. starts, for each model with no evaluation in flight, its oldest due tick in a
   worker thread of its own (:func:`evaluate_tick` reads logs, never the store),
   so a slow or failing model never holds up another;
5. sleeps until the earliest next tick, deadline or config check; a finished
   evaluation, a signal or a reload request wakes it at once.

Which ticks are due follows ``catch_up`` (:func:`rulesengine.daemon.schedule.due`),
except right after a tick overran its deadline: then the model skips ahead to its
newest due tick, and the ticks in between count as missed, so ticks never pile up.
A tick that raises is logged and counted, and not retried by this process; its
watermark stays, so the next tick (or a restart) moves on.

Delivery runs in a thread of its own (:mod:`rulesengine.daemon.outbox`) with its
own connection to the store, so a slow receiver never delays a tick.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType

from rulesengine.alerting.delivery import AppriseNotifier, Notifier
from rulesengine.alerting.store import Store
from rulesengine.daemon import watermarks
from rulesengine.daemon.logs import event
from rulesengine.daemon.metrics import DaemonMetrics, rows_scanned
from rulesengine.daemon.outbox import Outbox
from rulesengine.daemon.reload import Reloader
from rulesengine.daemon.reports import Reports
from rulesengine.daemon.schedule import (
    cadence_of,
    count_between,
    due,
    interval_at,
    last_tick,
    next_tick,
)
from rulesengine.daemon.status import Status
from rulesengine.daemon.tick import TickReport, evaluate_tick, record_tick
from rulesengine.engine.results import ModelResults
from rulesengine.errors import StoreError, first_line
from rulesengine.spec.model import Config, ModelSpec

# The longest sleep between passes: a wall-clock jump (NTP, suspend) is noticed
# within this bound even when the next tick is far away.
MAX_SLEEP = 60.0
# On a stop, evaluations in flight get this long to finish and be recorded; the
# rest are abandoned (not recorded: a restart evaluates them again).
STOP_GRACE = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Job:
    """One model's tick, evaluated in a worker thread."""

    model: ModelSpec
    config: Config  # the config it started under; it is recorded under it too
    tick: datetime
    deadline: float  # time.monotonic() past which it is overrun
    started: float = field(default_factory=time.monotonic)
    results: ModelResults | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    finished: float = 0.0  # time.monotonic() when the evaluation ended
    overrun: bool = False


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
        reloader: Reloader | None = None,
        status: Status | None = None,
        metrics: DaemonMetrics | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.notifier = notifier or AppriseNotifier()
        self.stop = stop or threading.Event()
        self.wake = threading.Event()
        self.clock = clock
        self.reloader = reloader
        self.status = status or Status(clock())
        self.metrics = metrics or DaemonMetrics(self.status)
        self.jobs: dict[str, _Job] = {}
        self.late: set[str] = set()  # models whose last tick overran
        self.tried: dict[str, datetime | None] = {}
        self.outbox: Outbox | None = None
        self.listen: str | None = None  # the HTTP address, for the start line
        self.reports = Reports(store, clock, self.wake, self._kick_outbox)
        self.use(config)

    # ------------------------------------------------------------ config
    def use(self, config: Config) -> None:
        """Adopt ``config``: models keep their progress by name; new ones start
        from their stored watermark."""
        self.config = config
        marks = {m.model: watermarks.read(self.store, m.model) for m in config.models}
        # the newest tick tried: the watermark, or past it a tick that failed or
        # is in flight (so it is not started again)
        self.tried = {name: self.tried.get(name, mark) for name, mark in marks.items()}
        self.late &= set(marks)
        self.metrics.configure(config)
        self.status.set_models(marks)
        self.status.config_loaded = True
        self.reports.use(config)
        now = self.clock()
        for m in config.models:
            self.status.set_interval(m.model, interval_at(cadence_of(m.evaluation), now))
        for name, mark in marks.items():
            if mark is not None:
                self.metrics.last_tick.labels(name).set(mark.timestamp())

    # -------------------------------------------------------------- loop
    def run(self) -> None:
        """Loop until ``stop`` is set; then finish (or abandon) what is in flight."""
        where = {"listen": self.listen} if self.listen else {}
        event(
            logging.INFO,
            "start",
            models=len(self.config.models),
            state=str(self.store.path),
            **where,
        )
        self.outbox = Outbox(self.config, self.notifier, self.status, self.metrics, self.clock)
        self.outbox.start()
        try:
            while not self.stop.is_set():
                self.wake.clear()
                self.one_pass()
                self.wake.wait(self.seconds_to_next())
        finally:
            self.finish()
        event(logging.INFO, "stop")

    def one_pass(self) -> None:
        if self.reloader is not None:
            config = self.reloader.check(self.config)
            if config is not None:
                self.use(config)
                if self.outbox is not None:
                    self.outbox.use(config)
        self.collect()
        self.reports.collect()
        self.check_deadlines()
        if not self.stop.is_set():
            self.start_due()
            self.reports.start_due()

    def _kick_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.kick()

    def run_due(self) -> None:
        """Evaluate and record every tick due now, waiting for each (for callers
        that step the loop by hand, such as tests and backfill-like tools)."""
        while True:
            self.start_due()
            if not self.jobs:
                return
            for job in list(self.jobs.values()):
                job.done.wait()
            self.collect()

    def finish(self) -> None:
        """Give evaluations in flight STOP_GRACE seconds, record those that finish,
        then stop the delivery thread (it finishes the send in progress)."""
        end = time.monotonic() + STOP_GRACE
        for job in list(self.jobs.values()):
            job.done.wait(max(0.0, end - time.monotonic()))
        self.collect()
        self.reports.wait(max(0.0, end - time.monotonic()))
        for job in self.jobs.values():
            event(
                logging.WARNING, "tick abandoned", model=job.model.model, tick=job.tick.isoformat()
            )
        if self.outbox is not None:
            self.outbox.stop()

    # ------------------------------------------------------------- ticks
    def due(self, model: ModelSpec) -> list[datetime]:
        """The ticks ``model`` owes now, oldest first; counts the skipped ones."""
        ev, name = model.evaluation, model.model
        cadence, now, tried = cadence_of(ev), self.clock(), self.tried[name]
        policy = "latest" if name in self.late and ev.catch_up == "all" else ev.catch_up
        ticks = due(cadence, tried, now, policy, ev.catch_up_max)
        if tried is not None:
            # the ticks passed over: before the first chosen, or all up to now
            upto = ticks[0] - timedelta(microseconds=1) if ticks else last_tick(cadence, now)
            skipped = count_between(cadence, tried, upto)
            if skipped:
                self.metrics.missed.labels(name).inc(skipped)
                event(logging.WARNING, "ticks missed", model=name, missed=skipped)
        if not ticks and (tried is not None or ev.catch_up == "none"):
            # `none` waits for the next tick, and skipped ticks are not owed again
            newest = last_tick(cadence, now)
            self.tried[name] = newest if tried is None else max(tried, newest)
        return ticks

    def start_due(self) -> None:
        for model in self.config.models:
            name = model.model
            if name in self.jobs:
                continue
            ticks = self.due(model)
            if not ticks:
                continue
            tick = ticks[0]
            self.late.discard(name)
            self.tried[name] = tick
            self.start(model, tick)

    def start(self, model: ModelSpec, tick: datetime) -> None:
        cadence = cadence_of(model.evaluation)
        limit = model.evaluation.deadline or interval_at(cadence, tick)
        self.status.set_interval(model.model, interval_at(cadence, self.clock()))
        job = _Job(model, self.config, tick, time.monotonic() + limit.total_seconds())
        self.jobs[model.model] = job

        def work() -> None:
            try:
                job.results = evaluate_tick(job.config, model, tick)
            except BaseException as exc:  # reported by the loop's thread
                job.error = exc
            finally:
                job.finished = time.monotonic()
                job.done.set()
                self.wake.set()

        threading.Thread(target=work, name=f"tick-{model.model}", daemon=True).start()

    def check_deadlines(self) -> None:
        now = time.monotonic()
        for job in self.jobs.values():
            if now > job.deadline:
                self.overran(job, now)

    def overran(self, job: _Job, now: float) -> None:
        """Count ``job`` as overrun, once; its model then skips ahead."""
        if job.overrun:
            return
        job.overrun = True
        name = job.model.model
        self.late.add(name)
        self.metrics.overrun.labels(name).inc()
        event(
            logging.WARNING,
            "tick overrun",
            model=name,
            tick=job.tick.isoformat(),
            seconds=round(now - job.started, 3),
        )

    def collect(self) -> None:
        """Record the evaluations that finished, in the loop's thread."""
        for name, job in list(self.jobs.items()):
            if not job.done.is_set():
                continue
            del self.jobs[name]
            if job.finished > job.deadline:
                self.overran(job, job.finished)
            self.record(job)

    def record(self, job: _Job) -> None:
        name, tick = job.model.model, job.tick
        if job.error is not None:
            self.metrics.errors.labels(name).inc()
            self.status.store_writable = not isinstance(job.error, StoreError)
            event(
                logging.ERROR,
                "tick failed",
                model=name,
                tick=tick.isoformat(),
                error=first_line(job.error),
            )
            return
        assert job.results is not None
        try:
            report = record_tick(self.store, job.config, job.model, tick, job.results, self.clock())
        except Exception as exc:  # the store refused: counted, logged, retried next tick
            self.metrics.errors.labels(name).inc()
            self.status.store_writable = False
            event(
                logging.ERROR,
                "tick failed",
                model=name,
                tick=tick.isoformat(),
                error=first_line(exc),
            )
            return
        self.status.store_writable = True
        report.seconds = time.monotonic() - job.started
        self.recorded(job, report)

    def recorded(self, job: _Job, report: TickReport) -> None:
        name = report.model
        fields = {"model": name, "tick": report.tick.isoformat(), "counts": report.counts}
        if report.skipped:
            event(logging.INFO, "tick already recorded", **fields)
            return
        self.metrics.ticks.labels(name).inc()
        self.metrics.duration.labels(name).observe(report.seconds)
        self.metrics.last_tick.labels(name).set(report.tick.timestamp())
        if report.results is not None:
            self.metrics.rows.labels(name).inc(rows_scanned(report.results))
        self.status.publish_tick(name, report.tick, report.results)
        event(
            logging.INFO, "tick", **fields, queued=report.queued, seconds=round(report.seconds, 3)
        )
        for warning in report.results.warnings if report.results is not None else ():
            # a config that needs changing (segments cut, a cache bound too small)
            event(logging.WARNING, "model warning", model=name, warning=warning)
        if self.outbox is not None:
            self.outbox.kick()

    def seconds_to_next(self) -> float:
        """Seconds until the earliest next tick of an idle model, deadline of a
        running one, or config check (0 when a tick is already due), at most MAX_SLEEP."""
        waits = [MAX_SLEEP]
        report = self.reports.seconds_to_next()
        if report is not None:
            waits.append(report)
        if self.reloader is not None:
            waits.append(self.reloader.poll_seconds)
        mono = time.monotonic()
        for model in self.config.models:
            job = self.jobs.get(model.model)
            if job is not None:
                waits.append(job.deadline - mono if not job.overrun else MAX_SLEEP)
                continue
            cadence, now = cadence_of(model.evaluation), self.clock()
            tried = self.tried[model.model]
            nxt = next_tick(cadence, tried) if tried is not None else last_tick(cadence, now)
            if model.evaluation.catch_up == "none" and tried is None:
                nxt = next_tick(cadence, now)
            waits.append((nxt - now) / timedelta(seconds=1))
        return min(max(w, 0.0) for w in waits)


def install_signals(daemon: Daemon, reloader: Reloader | None = None) -> None:
    """SIGTERM and SIGINT stop the loop; SIGHUP asks for a reload (main thread
    only, as Python requires)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        daemon.stop.set()
        daemon.wake.set()

    def hup(signum: int, frame: FrameType | None) -> None:
        if reloader is not None:
            reloader.request()
        daemon.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)


def serve(config: Config, paths: Sequence[str], listen: str | None = None) -> int:
    """``rulesengine daemon``: take the state file's lock, open the store, serve
    HTTP on ``listen`` (default ``server.listen``), loop until SIGTERM or SIGINT,
    and return the exit code (0)."""
    from rulesengine.daemon.http import start_http
    from rulesengine.daemon.lock import acquire

    lock = acquire(config.engine.state)
    try:
        status = Status()
        metrics = DaemonMetrics(status)
        reloader = Reloader(paths, status, metrics)
        server = start_http(listen or config.engine.listen, status, metrics)
        try:
            with Store(config.engine.state) as store:
                daemon = Daemon(config, store, reloader=reloader, status=status, metrics=metrics)
                host, port = server.server_address[:2]
                daemon.listen = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
                install_signals(daemon, reloader)
                daemon.run()
        finally:
            server.shutdown()
            server.server_close()
            if "rulesengine.engine.distributed" in sys.modules:  # a Dask executor was used
                sys.modules["rulesengine.engine.distributed"].close_executors()
    finally:
        lock.close()
    return 0
