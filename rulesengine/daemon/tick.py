"""One model's tick: evaluate as of the tick, then record it, atomically.

The same steps as ``run --notify`` (:func:`rulesengine.alerting.tracker.process`:
history, alert states, queued notifications), plus the model's watermark, all in
one store transaction: a tick is recorded whole or not at all. Delivery of the
outbox comes after the commit, as in ``run``, so a crash loses nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from rulesengine.alerting.store import Store
from rulesengine.alerting.tracker import process_in
from rulesengine.daemon import watermarks
from rulesengine.engine.evaluate import evaluate_model, profile_cache
from rulesengine.history.record import retention_of
from rulesengine.spec.model import Config, ModelSpec


@dataclass
class TickReport:
    model: str
    tick: datetime
    counts: dict[str, int] = field(default_factory=dict)  # results by status
    queued: int = 0  # notifications put in the outbox
    skipped: bool = False  # already recorded (its watermark was at or past it)
    seconds: float = 0.0


def run_tick(
    store: Store, config: Config, model: ModelSpec, tick: datetime, queued_at: datetime
) -> TickReport:
    """Evaluate ``model`` as of ``tick`` and record it with its watermark in one
    transaction. ``queued_at`` (the wall clock) stamps the outbox rows."""
    started = time.monotonic()
    report = TickReport(model.model, tick)
    results = evaluate_model(model, tick, profile_cache(config))
    report.counts = dict(sorted(Counter(r.status for r in results.results).items()))
    with store.transaction():
        # re-read under the write lock: a tick already committed is never recorded twice
        mark = watermarks.read(store, model.model)
        if mark is not None and mark >= tick:
            report.skipped = True
        else:
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
    report.seconds = time.monotonic() - started
    return report
