"""A time-stepped harness for alert behaviour (``promtool test rules`` style).

A tmp config directory holds ``engine.yaml`` and one model file; each step hands
``process()`` hand-built results at a fake time, then ``deliver()`` with a
recording notifier and the same fake clock. Tables read
``(minutes, input) -> expected state, notifications sent``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rulesengine.alerting.delivery import DeliveryReport, deliver
from rulesengine.alerting.state import AlertState, fingerprint
from rulesengine.alerting.store import Store
from rulesengine.alerting.tracker import ProcessReport, load_alerts, process
from rulesengine.engine.results import ModelResults, Result
from rulesengine.spec.loader import load
from rulesengine.spec.model import Config, MonitorSpec

T0 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # a Friday

ENGINE = """\
version: 1
state: state/state.db
receivers:
  slack: ["json://localhost/slack"]
routes:
  - {receivers: [slack]}
grouping: {by: [model], wait: 30s, interval: 5m, repeat: 4h}
"""

MODEL_HEAD = """\
version: 1
model: fraud
labels: {team: risk}
sources:
  requests: {path: logs/*.parquet, timestamp: ts}
  training: {path: data/training.parquet}
evaluation: {every: 15m, window: 1h, stale_after: 3}
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Sent:
    """One message the notifier got."""

    url: str
    title: str
    body: str
    at: datetime
    timeout: float = 0.0
    notify_type: str = "info"

    @property
    def receiver(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def kind(self) -> str:
        return "RESOLVED" if self.title.startswith("[RESOLVED]") else "FIRING"

    def __str__(self) -> str:
        return f"{self.kind}>{self.receiver}"


class RecordingNotifier:
    """A fake ``Notifier``: records every attempt; fails URLs containing a key of
    ``failing`` with that key's error text."""

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        self.attempts: list[Sent] = []
        self.sent: list[Sent] = []
        self.failing: dict[str, str] = {}

    def send(
        self, url: str, title: str, body: str, timeout: float, notify_type: str = "info"
    ) -> str | None:
        msg = Sent(url, title, body, self.clock() if self.clock else T0, timeout, notify_type)
        self.attempts.append(msg)
        for key, error in self.failing.items():
            if key in url:
                return error
        self.sent.append(msg)
        return None


@dataclass
class Step:
    report: ProcessReport
    delivery: DeliveryReport
    sent: list[Sent] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The messages sent in this step, e.g. ``"FIRING>slack"``; ``""`` for none."""
        return ",".join(sorted(str(s) for s in self.sent))


class Alerting:
    """One config directory, its state store, a fake clock and a recording notifier."""

    def __init__(self, root: Path, monitors: str, engine: str = ENGINE) -> None:
        self.root = root
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "engine.yaml").write_text(engine, encoding="utf-8")
        (root / "models" / "fraud.yaml").write_text(MODEL_HEAD + monitors, encoding="utf-8")
        self.now = T0
        self.config: Config = load([root], env={})
        self.store = Store(self.config.engine.state)
        self.notifier = RecordingNotifier(clock=lambda: self.now)

    # ------------------------------------------------------------ inputs
    @property
    def model(self) -> str:
        return self.config.models[0].model

    def monitor(self, name: str) -> MonitorSpec:
        return next(m for m in self.config.models[0].monitors() if m.name == name)

    def result(
        self,
        monitor: str,
        value: float | str,
        *,
        status: str | None = None,
        column: str | None = None,
        segment: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        source: str | None = None,
        threshold: Mapping[str, Any] | None = None,
    ) -> Result:
        """A result of ``monitor``: a number (status from the monitor's thresholds,
        unless given) or a status without a value (``"no_data"``, ...). Its window
        ends at the time of the step it is fed to."""
        m = self.monitor(monitor)
        if isinstance(value, str):
            status, number = value, None
        else:
            number = float(value)
            if status is None:
                th = m.thresholds
                if th.critical and th.critical.violated(number):
                    status = "critical"
                elif th.warn and th.warn.violated(number):
                    status = "warn"
                else:
                    status = "ok"
        typ = m.type
        if m.kind == "drift" and column is None:
            typ = "drift_share"
        return Result(
            monitor=monitor,
            kind=m.kind,
            type=typ,
            source=source or m.source,
            status=status,
            value=number,
            column=column,
            segment=dict(segment or {}),
            rows=1000,
            threshold=dict(threshold) if threshold is not None else m.thresholds.as_dict(),
            details=dict(details or {}),
        )

    # ------------------------------------------------------------ stepping
    def step(self, minutes: float, *results: Result, flush: bool = True) -> Step:
        """Track ``results`` at T0 + minutes, then deliver at the same moment."""
        return self.step_at(at(minutes), *results, flush=flush)

    def step_at(self, when: datetime, *results: Result, flush: bool = True) -> Step:
        self.now = when
        return self.step_results(results, flush=flush)

    def step_results(self, results: Iterable[Result], *, flush: bool = True) -> Step:
        now = self.now
        windows = {m.name: m.window for m in self.config.models[0].monitors()}
        stamped = tuple(
            r
            if r.window_end is not None
            else replace(r, window_start=now - windows[r.monitor], window_end=now)
            for r in results
        )
        mr = ModelResults(self.model, now, stamped)
        report = process(self.store, self.config, [mr], now, flush=flush)
        before = len(self.notifier.sent)
        delivery = deliver(self.store, self.config.engine, self.notifier, clock=lambda: now)
        return Step(report, delivery, self.notifier.sent[before:])

    def restart(self) -> None:
        """Close the store and load everything again from disk, as a new process would."""
        self.store.close()
        self.config = load([self.root], env={})
        self.store = Store(self.config.engine.state)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------ observations
    def alerts(self) -> dict[str, AlertState]:
        return load_alerts(self.store)

    def alert(
        self,
        monitor: str,
        *,
        column: str | None = None,
        segment: Mapping[str, Any] | None = None,
    ) -> AlertState | None:
        aid = fingerprint(self.model, monitor, dict(segment or {}), column)
        return self.alerts().get(aid)

    def state(self, monitor: str, **kw: Any) -> str:
        a = self.alert(monitor, **kw)
        return a.state if a else "inactive"

    def outbox(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.rows("SELECT * FROM outbox ORDER BY id")]


def run_table(
    h: Alerting,
    monitor: str,
    table: Iterable[tuple[float, float | str, str, str]],
    *,
    flush: bool = True,
    **kw: Any,
) -> None:
    """Feed ``(minutes, value or status)`` rows for one monitor; check each row's
    expected alert state and the notifications sent at that step."""
    for minutes, value, want_state, want_sent in table:
        step = h.step(minutes, h.result(monitor, value, **kw), flush=flush)
        got = (h.state(monitor, column=kw.get("column"), segment=kw.get("segment")), step.summary)
        assert got == (want_state, want_sent), f"t={minutes}m input={value!r}"


def alerting_factory(tmp_path: Path) -> Iterator[Callable[..., Alerting]]:
    """The body of each test module's ``alerting`` fixture (a shared conftest.py
    would clash with tests/engine's ``from conftest import ...``):
    ``alerting(monitors_yaml, engine_yaml=ENGINE)`` gives a fresh config directory."""
    made: list[Alerting] = []

    def make(monitors: str, engine: str = ENGINE) -> Alerting:
        h = Alerting(tmp_path / f"config{len(made)}", monitors, engine)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
