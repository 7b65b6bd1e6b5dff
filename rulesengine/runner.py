"""One evaluation, optionally with alerting: what ``rulesengine run`` does.

With ``notify``: retry everything still pending in the outbox (whatever its
backoff, so a cron-style run delivers what an earlier one could not), evaluate,
record the results in the history, track alert states and queue notifications in
one transaction, then deliver, retrying failures for at most
``delivery.run_budget`` (10 s by default) and leaving the rest in the outbox for
the next run or the daemon. ``change`` thresholds are decided from the history
before it is written (:mod:`rulesengine.history.change`); without ``notify``
they read the state file if it exists and never write it.

A store that cannot be used (corrupt, unreadable, from a newer rulesengine) does
not stop the evaluation: the results are returned with ``store_error`` set, and
the command line prints them before reporting the error (exit code 5).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rulesengine.engine.results import ModelResults
from rulesengine.spec.model import Config

# The command line imports this module for --fail-on's choices: the engine (and
# Polars) load on the first run, alerting only for runs that notify.
if TYPE_CHECKING:
    from rulesengine.alerting.delivery import DeliveryReport, Notifier
    from rulesengine.alerting.store import Store
    from rulesengine.alerting.tracker import ProcessReport
    from rulesengine.errors import StoreError


@dataclass
class RunOutcome:
    models: list[ModelResults]
    retried: DeliveryReport | None = None
    process: ProcessReport | None = None
    delivery: DeliveryReport | None = None
    store_error: StoreError | None = None  # alerting stopped here; results still hold

    def delivery_summary(self) -> str:
        reports = [r for r in (self.retried, self.delivery) if r is not None]
        sent = sum(r.sent for r in reports)
        gave_up = sum(r.gave_up for r in reports)
        queued = self.process.queued if self.process else 0
        pending = self.delivery.pending if self.delivery else 0
        line = f"notifications: {queued} queued, {sent} sent"
        if pending:
            line += f", {pending} still pending (left in the outbox for the next run or the daemon)"
        leased = self.delivery.leased if self.delivery else 0
        if leased:
            line += f", {leased} of them being sent by another process"
        if gave_up:
            line += f", {gave_up} given up (past their deadline)"
        return line


# --fail-on: the statuses that make a run exit 1
FAIL_ON: dict[str, frozenset[str]] = {
    "warn": frozenset({"warn", "critical"}),
    "critical": frozenset({"critical"}),
    "never": frozenset(),
}


def exit_code(outcome: RunOutcome, fail_on: str) -> int:
    """``rulesengine run``'s exit code: 5 (or the store error's code) when the
    store could not be used, else 4 if a result is an error, 1 if one is at or
    above ``fail_on`` ("warn", "critical" or "never"), else 0.

    >>> exit_code(RunOutcome([]), "critical")
    0
    """
    if outcome.store_error is not None:
        return outcome.store_error.exit_code
    statuses = {r.status for m in outcome.models for r in m.results}
    if "error" in statuses:
        return 4
    return 1 if statuses & FAIL_ON[fail_on] else 0


def _now() -> datetime:
    return datetime.now(UTC)


def run_once(
    config: Config,
    at: datetime,
    *,
    notify: bool = False,
    notifier: Notifier | None = None,
    clock: Callable[[], datetime] = _now,
    budget: float | None = None,
    cache: bool = True,
) -> RunOutcome:
    """Evaluate ``config`` as of ``at``; with ``notify``, alert and deliver.
    Without ``cache``, no cached partial state is read or written."""
    from rulesengine.engine.evaluate import evaluate
    from rulesengine.history.change import apply_to_run

    if not notify:  # change thresholds read the history, if any, and write nothing
        return RunOutcome(apply_to_run(config, evaluate(config, at, cache=cache)))
    from rulesengine.alerting.delivery import AppriseNotifier, deliver
    from rulesengine.alerting.store import Store
    from rulesengine.alerting.tracker import process
    from rulesengine.errors import StoreError
    from rulesengine.history.record import retention_of

    notifier = notifier or AppriseNotifier()
    engine = config.engine
    outcome = RunOutcome([])
    store: Store | None = None
    try:
        try:
            store = Store(engine.state)
            with store.guard():
                outcome.retried = deliver(store, engine, notifier, clock=clock, retry_all=True)
        except StoreError as exc:
            outcome.store_error = exc
        # the evaluation needs no store: its results are printed whatever the store's state
        outcome.models = evaluate(config, at, cache=cache)
        usable = store if outcome.store_error is None else None
        # change thresholds read the history before this run's results are recorded
        outcome.models = apply_to_run(config, outcome.models, usable)
        if store is None or outcome.store_error is not None:
            return outcome
        try:
            with store.guard():
                outcome.process = process(
                    store,
                    config,
                    outcome.models,
                    at,
                    flush=True,
                    queued_at=clock(),
                    retention=retention_of(engine),
                )
                seconds = engine.delivery.run_budget.total_seconds() if budget is None else budget
                outcome.delivery = deliver(store, engine, notifier, clock=clock, budget=seconds)
        except StoreError as exc:
            outcome.store_error = exc
        return outcome
    finally:
        if store is not None:
            _close(store)


def _close(store: Store) -> None:
    with contextlib.suppress(sqlite3.Error):  # a broken file's error is already reported
        store.close()
