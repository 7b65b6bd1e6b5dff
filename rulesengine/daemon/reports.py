"""Scheduled reports: the daemon sends each of engine.yaml's ``reports`` on its
cadence.

Each report has a watermark, the newest send time queued, kept in the store's
``watermarks`` table under ``report:<name>`` (model names cannot hold ``:``, so
the keys never clash). A report the store has no watermark for starts from the
newest send time at or before now: its first message goes out at its next send
time, not at once. When a send time passes, the report is built in a worker
thread of its own (:func:`rulesengine.report.build.build_report` as of the send
time, history from ``since`` before it; the HTML page and the markdown summary),
one at a time per report; the loop's thread then queues one outbox row per
receiver target, attachment included, and advances the watermark in the same
transaction, so a crash neither loses nor doubles a send. Send times missed
while the daemon was down are caught up as ``catch_up: latest``: only the newest
goes out. A build that fails is logged and not retried by this process (a
restart tries again). Without matplotlib the message goes without its
attachment, and the log says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from rulesengine.alerting.delivery import enqueue
from rulesengine.alerting.store import Store
from rulesengine.daemon import watermarks
from rulesengine.daemon.logs import event
from rulesengine.daemon.schedule import Cadence, due, last_tick, next_tick
from rulesengine.engine.results import iso
from rulesengine.errors import first_line
from rulesengine.spec.model import Config, ReportSpec


def key(name: str) -> str:
    """The report's key in the ``watermarks`` table."""
    return f"report:{name}"


def cadence(spec: ReportSpec) -> Cadence:
    if spec.cron is not None:
        return Cadence(cron=spec.cron, timezone=spec.timezone)
    return Cadence(every=spec.every)


@dataclass
class Built:
    """One report built for one send time, in a worker thread."""

    spec: ReportSpec
    at: datetime
    title: str = ""
    body: str = ""
    attachment: tuple[str, bytes] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def build(config: Config, spec: ReportSpec, at: datetime) -> Built:
    """The message of ``spec`` as of ``at`` (no store writes)."""
    from rulesengine.report.build import build_report
    from rulesengine.report.charts import MissingExtra
    from rulesengine.report.html import to_html
    from rulesengine.report.summary import summary_markdown

    out = Built(spec, at)
    models = config.models
    if spec.models:
        models = tuple(m for m in config.models if m.model in spec.models)
        unknown = sorted(set(spec.models) - {m.model for m in models})
        if unknown:
            event(logging.WARNING, "report models unknown", report=spec.name, models=unknown)
    report = build_report(replace(config, models=models), at, at - spec.since)
    out.title = f"rulesengine report {spec.name} as of {iso(at)}"
    out.body = summary_markdown(report, spec.name)
    try:
        page = to_html(report)
    except MissingExtra as exc:
        event(logging.ERROR, "report without attachment", report=spec.name, error=str(exc))
    else:
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        out.attachment = (f"rulesengine-report-{spec.name}-{stamp}.html", page.encode())
    return out


class Reports:
    """The reports of one config, driven by the daemon's loop (its thread owns
    ``store``); ``wake`` is set when a build finishes, ``kick`` after a queueing."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        wake: threading.Event,
        kick: Callable[[], None],
    ) -> None:
        self.store, self.clock, self.wake, self.kick = store, clock, wake, kick
        self.config: Config | None = None
        self.tried: dict[str, datetime] = {}
        self.jobs: dict[str, Built] = {}

    def use(self, config: Config) -> None:
        """Adopt ``config``; a report new to the store starts from now."""
        self.config = config
        now, tried = self.clock(), {}
        for spec in config.engine.reports:
            mark = watermarks.read(self.store, key(spec.name))
            if mark is None:
                mark = last_tick(cadence(spec), now)
                with self.store.transaction():
                    watermarks.advance(self.store, key(spec.name), mark)
            tried[spec.name] = max(mark, self.tried.get(spec.name, mark))
        self.tried = tried

    def start_due(self) -> None:
        assert self.config is not None
        config, now = self.config, self.clock()
        for spec in config.engine.reports:
            if spec.name in self.jobs:
                continue
            ticks = due(cadence(spec), self.tried[spec.name], now, "latest")
            if not ticks:
                continue
            self.tried[spec.name] = ticks[-1]
            self.start(config, spec, ticks[-1])

    def start(self, config: Config, spec: ReportSpec, at: datetime) -> None:
        job = Built(spec, at)
        self.jobs[spec.name] = job

        def work() -> None:
            try:
                done = build(config, spec, at)
                job.title, job.body, job.attachment = done.title, done.body, done.attachment
            except BaseException as exc:  # reported by the loop's thread
                job.error = exc
            finally:
                job.done.set()
                self.wake.set()

        threading.Thread(target=work, name=f"report-{spec.name}", daemon=True).start()

    def collect(self) -> None:
        """Queue the reports whose build finished, in the loop's thread."""
        for name, job in list(self.jobs.items()):
            if job.done.is_set():
                del self.jobs[name]
                self.record(job)

    def record(self, job: Built) -> None:
        fields = {"report": job.spec.name, "at": iso(job.at)}
        if job.error is not None:
            event(logging.ERROR, "report failed", **fields, error=first_line(job.error))
            return
        assert self.config is not None
        engine, queued = self.config.engine, 0
        try:
            with self.store.transaction():
                mark = watermarks.read(self.store, key(job.spec.name))
                if mark is not None and mark >= job.at:
                    event(logging.INFO, "report already queued", **fields)
                    return
                for receiver in job.spec.receivers:
                    queued += enqueue(
                        self.store,
                        engine,
                        group_key=key(job.spec.name),
                        receiver=receiver,
                        kind="report",
                        title=job.title,
                        body=job.body,
                        now=self.clock(),
                        attachment=job.attachment,
                    )
                watermarks.advance(self.store, key(job.spec.name), job.at)
        except Exception as exc:  # the store refused: logged; a restart tries again
            event(logging.ERROR, "report failed", **fields, error=first_line(exc))
            return
        event(logging.INFO, "report queued", **fields, queued=queued)
        self.kick()

    def seconds_to_next(self) -> float | None:
        """Seconds until the earliest next send time of an idle report (None: none)."""
        if self.config is None:
            return None
        now, waits = self.clock(), []
        for spec in self.config.engine.reports:
            if spec.name not in self.jobs:
                nxt = next_tick(cadence(spec), self.tried[spec.name])
                waits.append((nxt - now) / timedelta(seconds=1))
        return min(waits, default=None)

    def wait(self, seconds: float) -> None:
        """On a stop: give builds in flight ``seconds`` and queue those that finish."""
        for job in list(self.jobs.values()):
            job.done.wait(seconds)
        self.collect()
