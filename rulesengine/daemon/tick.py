"""One model's tick: evaluate as of the tick, then record it, atomically.

Two steps, so the daemon can evaluate models in worker threads while one thread
owns the store: :func:`evaluate_tick` reads the logs and scores (no store), and
:func:`record_tick` writes what ``run --notify`` writes
(:func:`rulesengine.alerting.tracker.process_in`: history, alert states, queued
notifications) plus the model's watermark, all in one store transaction, so a
tick is recorded whole or not at all. Delivery of the outbox comes after the
commit, as in ``run``, so a crash loses nothing. :func:`run_tick` does both.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from rulesengine.alerting.store import Store
from rulesengine.alerting.tracker import process_in
from rulesengine.daemon import watermarks
from rulesengine.engine.evaluate import evaluate_model, partials_cache, profile_cache
from rulesengine.engine.results import ModelResults
from rulesengine.history.change import apply_changes
from rulesengine.history.record import retention_of
from rulesengine.spec.model import Config, ModelSpec


@dataclass
class TickReport:
    model: str
    tick: datetime
    counts: dict[str, int] = field(default_factory=dict)  # results by status
    queued: int = 0  # notifications put in the outbox
    skipped: bool = False  # already recorded (its watermark was at or past it)
    seconds: float = 0.0  # evaluation and recording
    results: ModelResults | None = None  # what was recorded (None when skipped)


def evaluate_tick(config: Config, model: ModelSpec, tick: datetime) -> ModelResults:
    """``model``'s results as of ``tick``; reads logs, never the store."""
    executor = config.engine.executor
    return evaluate_model(model, tick, profile_cache(config), partials_cache(config), executor)


def record_tick(
    store: Store,
    config: Config,
    model: ModelSpec,
    tick: datetime,
    results: ModelResults,
    queued_at: datetime,
) -> TickReport:
    """Record ``results`` (of ``model`` as of ``tick``) with the watermark in one
    transaction; a tick whose watermark is already at or past it is skipped.
    ``queued_at`` (the wall clock) stamps the outbox rows."""
    report = TickReport(model.model, tick)
    with store.transaction():
        # re-read under the write lock: a tick already committed is never recorded twice
        mark = watermarks.read(store, model.model)
        if mark is not None and mark >= tick:
            report.skipped = True
            return report
        # change thresholds read the history before this tick's rows are written
        results = apply_changes(model, results, store)
        queued = process_in(
            store,
            config,
            [results],
            tick,
            queued_at=queued_at,
            retention=retention_of(config.engine),
        )
        report.queued = queued.queued
        watermarks.advance(store, model.model, tick)
    report.results = results
    report.counts = dict(sorted(Counter(r.status for r in results.results).items()))
    return report


def run_tick(
    store: Store, config: Config, model: ModelSpec, tick: datetime, queued_at: datetime
) -> TickReport:
    """Evaluate ``model`` as of ``tick`` and record it with its watermark in one
    transaction."""
    started = time.monotonic()
    results = evaluate_tick(config, model, tick)
    report = record_tick(store, config, model, tick, results, queued_at)
    report.seconds = time.monotonic() - started
    return report
