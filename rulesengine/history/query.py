"""Reading result history back: the rows of one model, oldest first.

Used by ``rulesengine history`` and meant for the daemon's endpoints and for
``change`` thresholds (a value an offset earlier), so it takes an open
:class:`~rulesengine.alerting.store.Store` and plain times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rulesengine.alerting.store import Store
from rulesengine.errors import RulesEngineError, did_you_mean, one_of
from rulesengine.history.record import stamp
from rulesengine.spec.model import Config


class HistoryError(RulesEngineError):
    """No history to read: no state file yet, or an unknown model or monitor."""

    exit_code = 1


@dataclass(frozen=True)
class HistoryRow:
    """One stored result: a monitor's value and status for one segment and
    column at one evaluation time ``at``."""

    at: datetime
    model: str
    monitor: str
    kind: str
    type: str
    segment: Mapping[str, Any]
    column: str | None
    value: float | None
    status: str
    rows: int | None
    window_start: datetime | None
    window_end: datetime | None
    label_coverage: float | None = None  # metrics with `join` (store schema 9 on)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _from_db(r: Any) -> HistoryRow:
    return HistoryRow(
        at=datetime.fromisoformat(r["at"]),
        model=r["model"],
        monitor=r["monitor"],
        kind=r["kind"],
        type=r["type"],
        segment=json.loads(r["segment"]),
        column=r["col"] or None,
        value=r["value"],
        status=r["status"],
        rows=r["rows"],
        window_start=_time(r["window_start"]),
        window_end=_time(r["window_end"]),
        label_coverage=r["label_coverage"] if "label_coverage" in r.keys() else None,  # noqa: SIM118
    )


def read_history(
    store: Store,
    model: str,
    *,
    monitor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[HistoryRow]:
    """``model``'s rows with ``since <= at <= until`` (both optional), oldest
    first; within one ``at`` by monitor, then the overall result before the
    segments (by their JSON text), then column."""
    sql = "SELECT * FROM history WHERE model = ?"
    args: list[Any] = [model]
    if monitor is not None:
        sql += " AND monitor = ?"
        args.append(monitor)
    if since is not None:
        sql += " AND at >= ?"
        args.append(stamp(since))
    if until is not None:
        sql += " AND at <= ?"
        args.append(stamp(until))
    # the overall result ('{}') before the segments, as the daemon's gauges list them
    sql += " ORDER BY at, monitor, segment <> '{}', segment, col"
    return [_from_db(r) for r in store.rows(sql, *args)]


def stored_names(store: Store) -> dict[str, set[str]]:
    """Every model in the history, with its monitors."""
    out: dict[str, set[str]] = {}
    for r in store.rows("SELECT DISTINCT model, monitor FROM history"):
        out.setdefault(r["model"], set()).add(r["monitor"])
    return out


def check_names(model: str, monitor: str | None, known: Mapping[str, Iterable[str]]) -> None:
    """Raise :class:`HistoryError` for a model (or a monitor of it) that neither
    the config nor the history knows, naming the known ones."""
    if model not in known:
        names = sorted(known)
        listed = f"known models: {one_of(names)}" if names else "the config has no models"
        raise HistoryError(f"unknown model '{model}'{did_you_mean(model, names)}; {listed}")
    monitors = sorted(set(known[model]))
    if monitor is not None and monitor not in monitors:
        raise HistoryError(
            f"model '{model}' has no monitor '{monitor}'{did_you_mean(monitor, monitors)}; "
            f"known monitors: {one_of(monitors) or '(none)'}"
        )


def history_of(
    config: Config,
    model: str,
    *,
    monitor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[HistoryRow]:
    """What ``rulesengine history`` shows: ``model``'s rows from the store that
    ``config`` names. The model and monitor must be in the config or in the
    history (a monitor removed from the config keeps its past)."""
    path = Path(config.engine.state)
    if not path.exists():
        # opening would create an empty store; say where history comes from instead
        raise HistoryError(
            f"no history yet: state file {path} does not exist. History is written by "
            "`rulesengine run --notify` (and by the daemon)"
        )
    with Store(path) as store:
        known = stored_names(store)
        for spec in config.models:
            known.setdefault(spec.model, set()).update(m.name for m in spec.monitors())
        check_names(model, monitor, known)
        return read_history(store, model, monitor=monitor, since=since, until=until)
