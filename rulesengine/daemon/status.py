"""What the daemon knows about itself, for ``/metrics``, ``/readyz`` and ``/api``.

The loop publishes here (each model's latest results and watermark, the alert
listing, whether the store took the last write, how the last reload went); the
HTTP threads read. Everything is replaced whole under one lock, so a reader
never sees half an update and never touches the store or the loop's objects.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rulesengine.engine.results import ModelResults, iso

# alert states counted in rulesengine_alerts
ALERT_STATES = ("pending", "firing")


class Status:
    def __init__(self, started: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self.started = started or datetime.now(UTC)
        self._models: tuple[str, ...] = ()
        self._results: dict[str, ModelResults] = {}
        self._marks: dict[str, datetime | None] = {}
        self._intervals: dict[str, timedelta] = {}
        self._listing: dict[str, Any] = {"alerts": [], "outbox": []}
        self.config_loaded = False
        self.store_writable = True
        self.reload_ok = True
        self.reload_at: datetime | None = None
        self.reload_error: str | None = None

    # ------------------------------------------------------------ the loop writes
    def set_models(self, models: Mapping[str, datetime | None]) -> None:
        """The config's models with their watermarks; forget models that left it."""
        with self._lock:
            self._models = tuple(sorted(models))
            self._marks = dict(models)
            self._results = {m: r for m, r in self._results.items() if m in models}
            self._intervals = {m: i for m, i in self._intervals.items() if m in models}

    def set_interval(self, model: str, interval: timedelta) -> None:
        with self._lock:
            self._intervals[model] = interval

    def publish_tick(self, model: str, tick: datetime, results: ModelResults | None) -> None:
        with self._lock:
            if model not in self._marks:
                return  # left the config while its tick ran
            self._marks[model] = tick
            if results is not None:
                self._results[model] = results

    def publish_alerts(self, listing: dict[str, Any]) -> None:
        with self._lock:
            self._listing = listing

    # --------------------------------------------------------------- readers
    def latest_results(self) -> list[ModelResults]:
        with self._lock:
            return [self._results[m] for m in self._models if m in self._results]

    def intervals(self) -> dict[str, float]:
        with self._lock:
            return {m: i.total_seconds() for m, i in self._intervals.items()}

    def alerts(self) -> dict[str, Any]:
        with self._lock:
            return self._listing

    def alert_counts(self) -> dict[tuple[str, str], int]:
        """(model, state) → number of alerts, 0 for every model and state."""
        with self._lock:
            counts = {(m, s): 0 for m in self._models for s in ALERT_STATES}
            for a in self._listing.get("alerts", []):
                key = (a["model"], a["state"])
                if key in counts:
                    counts[key] += 1
            return counts

    def readiness(self, now: datetime) -> tuple[bool, dict[str, Any]]:
        """Ready when the config is loaded, the store took the last write, and
        every model's newest tick (or, before its first, the daemon's start) is
        within twice its cadence of ``now``."""
        with self._lock:
            models: dict[str, Any] = {}
            for m in self._models:
                interval = self._intervals.get(m)
                mark = self._marks.get(m)
                since = mark if mark is not None and mark > self.started else self.started
                ok = interval is None or now - since <= 2 * interval
                models[m] = {"ok": ok, "last_tick": iso(mark)}
                if interval is not None:
                    models[m]["interval_seconds"] = interval.total_seconds()
            checks = {
                "config_loaded": self.config_loaded,
                "store_writable": self.store_writable,
                "models": models,
            }
        ready = self.config_loaded and self.store_writable and all(v["ok"] for v in models.values())
        return ready, checks
