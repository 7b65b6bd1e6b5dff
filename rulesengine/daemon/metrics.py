"""The daemon's Prometheus metrics, on a registry of their own.

Counters and histograms (ticks, errors, missed and overrun ticks, evaluation
time, rows, notifications) are updated by the loop as things happen. The
per-monitor gauges (``rulesengine_monitor_value`` and ``_status``) are not kept
as gauge objects: :class:`_ResultsCollector` builds them at each scrape from the
latest results the loop published in :class:`rulesengine.daemon.status.Status`,
so a monitor that leaves the config on a reload leaves ``/metrics`` too.
Every per-model and per-receiver series starts at 0 as soon as the config is
loaded, so queries and alert rules see them before anything happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rulesengine import __version__
from rulesengine.alerting.delivery import DeliveryReport
from rulesengine.daemon.status import Status
from rulesengine.engine.results import ModelResults, Result, segment_text
from rulesengine.spec.model import Config

# rulesengine_monitor_status's values; DESIGN.md's statuses, best first
STATUS_CODES = {
    "ok": 0,
    "warn": 1,
    "critical": 2,
    "insufficient_data": 3,
    "no_data": 4,
    "error": 5,
}
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MONITOR_LABELS = ("model", "monitor", "kind", "segment", "column")


def monitor_labels(model: str, r: Result) -> list[str]:
    return [model, r.monitor, r.kind, segment_text(r.segment, ""), r.column or ""]


def rows_scanned(results: ModelResults) -> int:
    """Rows in the evaluated windows: once per source, window and segment (the
    largest count any monitor reported there), summed."""
    seen: dict[tuple[object, ...], int] = {}
    for r in results.results:
        if r.rows is None:
            continue
        key = (r.source, r.window_start, r.window_end, segment_text(r.segment, ""))
        seen[key] = max(seen.get(key, 0), r.rows)
    return sum(seen.values())


class _ResultsCollector(Collector):
    """The series read from :class:`Status` at each scrape: the monitors' latest
    values and statuses, alerts by state, each model's tick interval, and
    whether the store takes writes."""

    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        value = GaugeMetricFamily(
            "rulesengine_monitor_value",
            "The latest value of a monitor (per segment and column).",
            labels=MONITOR_LABELS,
        )
        state = GaugeMetricFamily(
            "rulesengine_monitor_status",
            "The latest status of a monitor: 0 ok, 1 warn, 2 critical, "
            "3 insufficient_data, 4 no_data, 5 error.",
            labels=MONITOR_LABELS,
        )
        for res in self.status.latest_results():
            for r in res.results:
                labels = monitor_labels(res.model, r)
                state.add_metric(labels, STATUS_CODES[r.status])
                if r.value is not None:
                    value.add_metric(labels, float(r.value))
        alerts = GaugeMetricFamily(
            "rulesengine_alerts", "Alerts by state (pending, firing).", labels=("model", "state")
        )
        for (model, st), n in sorted(self.status.alert_counts().items()):
            alerts.add_metric([model, st], n)
        interval = GaugeMetricFamily(
            "rulesengine_tick_interval_seconds",
            "The model's cadence in seconds (cron: the spacing of the current ticks).",
            labels=("model",),
        )
        for model, seconds in sorted(self.status.intervals().items()):
            interval.add_metric([model], seconds)
        writable = GaugeMetricFamily(
            "rulesengine_store_writable",
            "1 if the last write to the state file succeeded, else 0.",
            value=1 if self.status.store_writable else 0,
        )
        yield from (value, state, alerts, interval, writable)


class DaemonMetrics:
    """The metric objects and the registry ``/metrics`` serves."""

    def __init__(self, status: Status) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        r.register(_ResultsCollector(status))
        info = Gauge("rulesengine_build_info", "The running version.", ["version"], registry=r)
        info.labels(__version__).set(1)
        m = ["model"]
        self.duration = Histogram(
            "rulesengine_evaluation_duration_seconds",
            "Seconds a tick took: evaluation and recording.",
            m,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "rulesengine_rows_scanned", "Rows in the evaluated windows.", m, registry=r
        )
        self.ticks = Counter("rulesengine_ticks", "Ticks evaluated and recorded.", m, registry=r)
        self.errors = Counter("rulesengine_tick_errors", "Ticks that raised.", m, registry=r)
        self.missed = Counter(
            "rulesengine_ticks_missed",
            "Ticks skipped: a tick ran late, or catch-up did not evaluate them.",
            m,
            registry=r,
        )
        self.overrun = Counter(
            "rulesengine_ticks_overrun", "Ticks that ran past their deadline.", m, registry=r
        )
        self.last_tick = Gauge(
            "rulesengine_last_tick_timestamp_seconds",
            "The newest tick recorded (the watermark), in Unix seconds.",
            m,
            registry=r,
        )
        rc = ["receiver"]
        self.sent = Counter(
            "rulesengine_notifications_sent", "Notifications delivered.", rc, registry=r
        )
        self.failed = Counter(
            "rulesengine_notifications_failed", "Failed delivery attempts.", rc, registry=r
        )
        self.gave_up = Counter(
            "rulesengine_notifications_given_up",
            "Notifications abandoned (past their deadline, or their receiver left).",
            rc,
            registry=r,
        )
        self.queued = Gauge(
            "rulesengine_notifications_queued",
            "Notifications waiting in the outbox.",
            rc,
            registry=r,
        )
        self.reload_ok = Gauge(
            "rulesengine_config_last_reload_successful",
            "1 if the last config (re)load succeeded, 0 if it failed.",
            registry=r,
        )
        self.reload_time = Gauge(
            "rulesengine_config_last_reload_success_timestamp_seconds",
            "When the config was last (re)loaded successfully, in Unix seconds.",
            registry=r,
        )
        self._models: set[str] = set()
        self._receivers: set[str] = set()

    def configure(self, config: Config) -> None:
        """Start every series of the config's models and receivers at 0; drop
        those of models and receivers that left it."""
        models = {m.model for m in config.models}
        per_model = [self.duration, self.rows, self.ticks, self.errors]
        per_model += [self.missed, self.overrun, self.last_tick]
        _align(per_model, self._models, models)
        self._models = models
        receivers = set(config.engine.receivers)
        _align((self.sent, self.failed, self.gave_up, self.queued), self._receivers, receivers)
        self._receivers = receivers

    def delivered(self, report: DeliveryReport) -> None:
        for (receiver, outcome), n in report.by_receiver.items():
            metric = {"sent": self.sent, "failed": self.failed, "gave_up": self.gave_up}[outcome]
            metric.labels(receiver).inc(n)

    def set_queued(self, pending: Mapping[str, int]) -> None:
        for receiver in self._receivers | set(pending):
            self.queued.labels(receiver).set(pending.get(receiver, 0))

    def text(self) -> bytes:
        return generate_latest(self.registry)


def _align(metrics: Iterable[Counter | Gauge | Histogram], old: set[str], new: set[str]) -> None:
    for metric in metrics:
        for gone in old - new:
            metric.remove(gone)
        for name in new:
            metric.labels(name)  # creates the series at 0
