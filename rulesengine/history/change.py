"""``change`` thresholds: a monitor's value against its own value an offset
earlier, read from the result history.

``warn: {change: {offset: 7d, below: -0.1}}`` holds when the value fell by more
than 10 % since the value recorded 7 days earlier for the same model, monitor,
segment and column. Scoring decides only the fixed thresholds (a change
threshold is never violated by the value alone, see
:meth:`rulesengine.spec.model.Threshold.violated`); :func:`apply_changes` then
decides each result whose monitor has a change threshold:

* the baseline is the newest row with a value whose ``at`` lies in
  ``[at - offset - tolerance, at - offset]``;
* the change is ``(v - v0) / |v0|`` (``relative``) or ``v - v0`` (``absolute``),
  both values and the change taken to 12 significant digits as the Results JSON
  reports them; a relative change from ``v0 == 0`` is undefined;
* the status is the worst severity whose condition (fixed or change) holds; if
  none holds and a change could not be computed, ``insufficient_data`` with
  ``details.reason``; else ``ok``. ``details.change`` holds, per severity, the
  offset, mode, baseline time and value and the change (or why there is none).

Results whose status scoring did not take from the thresholds (``no_data``,
``insufficient_data``, ``error``) and results without a value are left as they
are. The value stays the monitor's value, so the history keeps values, not
changes. Reading never writes: a run without ``--notify`` opens the state file
with :func:`read_only` (never creating it), the daemon and ``run --notify`` pass
their open :class:`~rulesengine.alerting.store.Store`.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from rulesengine.durations import format_duration
from rulesengine.engine.results import ModelResults, Result, iso, reported
from rulesengine.errors import StoreError, first_line
from rulesengine.history.record import segment_key, stamp
from rulesengine.spec.model import Config, ModelSpec, MonitorSpec, Threshold

# statuses that scoring took from the thresholds, so a change may still move them
DECIDED_BY_THRESHOLDS = ("ok", "warn", "critical")
HISTORY_VERSION = 5  # the store migration that created the history table

_LOOKUP = (
    "SELECT at, value FROM history WHERE model = ? AND monitor = ? AND segment = ?"
    " AND col = ? AND at >= ? AND at <= ? AND value IS NOT NULL ORDER BY at DESC LIMIT 1"
)


class HistorySource(Protocol):
    """Anything that answers SQL over the store's tables: a
    :class:`~rulesengine.alerting.store.Store` or a :class:`ReadOnlyHistory`."""

    def rows(self, sql: str, *args: Any) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Baseline:
    at: datetime
    value: float


class ReadOnlyHistory:
    """The history table of an existing state file, opened for reading only:
    ``mode=rw`` so the file is never created, and ``query_only`` so nothing is
    written (a read-write connection also leaves no ``-wal``/``-shm`` files
    behind, as a ``mode=ro`` one on a WAL file would)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        uri = path.absolute().as_uri()
        try:
            self.db = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=10, isolation_level=None)
        except sqlite3.OperationalError:  # no write permission: read it as it is
            self.db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=10, isolation_level=None)
        try:
            self.db.execute("PRAGMA query_only=1")
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        except BaseException:
            self.db.close()
            raise
        self.empty = version < HISTORY_VERSION  # a store from before history

    def rows(self, sql: str, *args: Any) -> list[Any]:
        if self.empty:
            return []
        return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.db.close()


@contextlib.contextmanager
def read_only(path: str | Path) -> Iterator[tuple[HistorySource | None, str | None]]:
    """``(source, None)`` for an existing, readable state file, else ``(None,
    why)``. Never creates the file and never writes to it."""
    p = Path(path)
    if not p.is_file():
        yield (
            None,
            (
                f"state file {p} does not exist yet (history is written by "
                "`rulesengine run --notify` and by the daemon)"
            ),
        )
        return
    try:
        source = ReadOnlyHistory(p)
    except sqlite3.Error as exc:
        yield None, f"state file {p} cannot be read ({first_line(exc)})"
        return
    try:
        yield source, None
    finally:
        source.close()


def baseline(
    source: HistorySource, model: str, r: Result, at: datetime, threshold: Threshold
) -> Baseline | None:
    """The value ``threshold``'s change compares with: the newest recorded value
    of ``r``'s series in ``[at - offset - tolerance, at - offset]``."""
    assert threshold.change is not None
    target = at - threshold.change.offset
    lowest = target - threshold.change.tolerance
    key = (model, r.monitor, segment_key(r.segment), r.column or "")
    found = source.rows(_LOOKUP, *key, stamp(lowest), stamp(target))
    if not found:
        return None
    return Baseline(datetime.fromisoformat(found[0][0]), float(found[0][1]))


@dataclass
class _Judged:
    """One severity's change: whether it holds (None: unknown) and its details."""

    holds: bool | None
    entry: dict[str, Any]


def _judge(value: float, threshold: Threshold, base: Baseline | None, near: str) -> _Judged:
    change = threshold.change
    assert change is not None
    entry: dict[str, Any] = {"offset": format_duration(change.offset), "mode": change.mode}
    if base is None:
        entry["reason"] = near
        return _Judged(None, entry)
    entry["baseline_at"], entry["baseline"] = iso(base.at), base.value
    if change.mode == "absolute":
        delta = value - base.value
    elif base.value == 0:
        entry["reason"] = (
            f"relative change is undefined: the value recorded at {iso(base.at)} "
            f"(offset {entry['offset']}) is 0"
        )
        return _Judged(None, entry)
    else:
        delta = (value - base.value) / abs(base.value)
    entry["change"] = reported(delta)  # decided as reported, like every status
    return _Judged(threshold.holds(entry["change"]), entry)


def _near(at: datetime, threshold: Threshold, unavailable: str | None) -> str:
    change = threshold.change
    assert change is not None
    text = (
        f"no value recorded near {iso(at - change.offset)} (offset "
        f"{format_duration(change.offset)}, tolerance {format_duration(change.tolerance)}) "
        "in history"
    )
    return f"{text}: {unavailable}" if unavailable else text


def decide(
    m: MonitorSpec,
    r: Result,
    model: str,
    at: datetime,
    source: HistorySource | None,
    unavailable: str | None = None,
) -> Result:
    """``r`` with its status decided by ``m``'s fixed and change thresholds."""
    if r.status not in DECIDED_BY_THRESHOLDS or r.value is None or not math.isfinite(r.value):
        return r
    value = reported(r.value)
    violated: list[str] = []
    unknown: list[str] = []
    entries: dict[str, Any] = {}
    for sev in ("critical", "warn"):
        t: Threshold | None = getattr(m.thresholds, sev)
        if t is None:
            continue
        if t.change is None:
            if t.violated(value):
                violated.append(sev)
            continue
        base = baseline(source, model, r, at, t) if source is not None else None
        judged = _judge(value, t, base, _near(at, t, unavailable))
        entries[sev] = judged.entry
        if judged.holds:
            violated.append(sev)
        elif judged.holds is None:
            unknown.append(judged.entry["reason"])
    details = {**r.details, "change": entries}
    if violated:
        status = violated[0]  # critical is judged first
    elif unknown:
        status = "insufficient_data"
        details["reason"] = "; ".join(dict.fromkeys(unknown))
    else:
        status = "ok"
    return replace(r, status=status, details=details)


def _has_change(r: Result) -> bool:
    return any(
        isinstance(r.threshold.get(sev), dict) and "change" in r.threshold[sev]
        for sev in ("warn", "critical")
    )


def apply_changes(
    model: ModelSpec,
    results: ModelResults,
    store: HistorySource | None,
    unavailable: str | None = None,
) -> ModelResults:
    """``results`` with every result of a monitor with a change threshold decided
    against the history in ``store`` (None: no history; ``unavailable`` says why).
    Results that carry their own thresholds (a drift column's) are left alone."""
    monitors = {m.name: m for m in model.monitors() if m.thresholds.changes}
    if not monitors:
        return results
    warnings = list(results.warnings)
    out = []
    for r in results.results:
        m = monitors.get(r.monitor)
        if m is None or not _has_change(r):
            out.append(r)
            continue
        try:
            out.append(decide(m, r, model.model, results.at, store, unavailable))
        except (sqlite3.Error, StoreError) as exc:
            # an unreadable history: undecided rather than failing the run
            why = f"the history cannot be read ({first_line(exc)})"
            warnings.append(f"change thresholds: {why}")
            store, unavailable = None, why
            out.append(decide(m, r, model.model, results.at, None, unavailable))
    return replace(results, results=tuple(out), warnings=tuple(dict.fromkeys(warnings)))


def apply_to_run(
    config: Config, models: Sequence[ModelResults], store: HistorySource | None = None
) -> list[ModelResults]:
    """What ``rulesengine run`` does: :func:`apply_changes` for every model, with
    ``store`` (``run --notify``'s open store) or else the config's state file read
    only, if it exists. A config without change thresholds opens nothing."""
    specs = {m.model: m for m in config.models}
    if not any(mon.thresholds.changes for spec in specs.values() for mon in spec.monitors()):
        return list(models)
    if store is not None:
        return [apply_changes(specs[m.model], m, store) for m in models]
    with read_only(config.engine.state) as (source, why):
        return [apply_changes(specs[m.model], m, source, why) for m in models]
