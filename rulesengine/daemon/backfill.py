"""``rulesengine backfill``: replay a model's ticks over past logs, as the daemon
would have run them, on a scratch store, and summarise what would have fired.

Every tick t of each model's cadence with ``start < t <= end`` (the start itself
is not a tick of the backfill, the end is) is evaluated with the daemon's own
:func:`~rulesengine.daemon.tick.evaluate_tick` and recorded with
:func:`~rulesengine.daemon.tick.record_tick` into a **fresh store in a temporary
directory**, oldest first across all models, with the tick itself as the clock
(``queued_at``), so ``for``, ``keep_firing_for``, grouping waits and repeats and
mute intervals behave as they would have then. The config's own state file is
never opened (the scratch config points ``state`` at the temporary directory, so
reference profiles are built there too), and nothing is delivered: the outbox
rows are only counted. The temporary directory is removed at the end.

Per model and monitor the report holds: the ticks evaluated, the results by
status and the worst one, the ticks in which an alert of the monitor was firing,
how often one started firing, the firing time (each firing tick counts the time
until the model's next tick), the first and last firing tick, and the
notifications (outbox rows) that named one of its alerts.
"""

from __future__ import annotations

import heapq
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rulesengine.alerting.grouping import plan_dispatch
from rulesengine.alerting.state import AlertState
from rulesengine.alerting.store import Store
from rulesengine.alerting.tracker import STALE_MONITOR, load_alerts, load_group_logs, load_silences
from rulesengine.daemon.schedule import Cadence, cadence_of, next_tick, ticks_between
from rulesengine.daemon.tick import evaluate_tick, record_tick
from rulesengine.durations import format_duration
from rulesengine.engine.results import SEVERITY_ORDER, ModelResults, iso
from rulesengine.errors import RulesEngineError, did_you_mean, first_line
from rulesengine.masking import mask_text
from rulesengine.spec.model import Config, ModelSpec

DEFAULT_MAX_TICKS = 100_000

# progress(ticks done, ticks in all, model, tick just replayed)
Progress = Callable[[int, int, str, datetime], None]


class BackfillUsageError(RulesEngineError):
    """A range, model choice or tick count the backfill refuses (exit 2, as click's
    usage errors)."""

    exit_code = 2


@dataclass
class MonitorSummary:
    """One monitor over the backfill (every segment and column together)."""

    monitor: str
    kind: str
    ticks: int = 0  # ticks that gave at least one result of this monitor
    statuses: Counter[str] = field(default_factory=Counter)  # results by status
    firing_ticks: int = 0  # ticks after which an alert of it was firing
    fired: int = 0  # times an alert of it went from not firing to firing
    firing_for: timedelta = timedelta(0)  # sum over firing ticks of the time to the next tick
    first_firing: datetime | None = None
    last_firing: datetime | None = None
    notifications: int = 0  # outbox rows naming an alert of it

    @property
    def worst(self) -> str | None:
        """The worst status of any of its results (None: it gave no result)."""
        return min(self.statuses, key=SEVERITY_ORDER.__getitem__, default=None)

    def sort_key(self) -> tuple[int, int, int, str]:
        """Worst first: monitors that fired, then by worst status, then longest firing."""
        worst = SEVERITY_ORDER.get(self.worst or "", len(SEVERITY_ORDER))
        return (0 if self.firing_ticks else 1, worst, -self.firing_ticks, self.monitor)

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "kind": self.kind,
            "ticks": self.ticks,
            "statuses": dict(sorted(self.statuses.items(), key=lambda kv: SEVERITY_ORDER[kv[0]])),
            "worst_status": self.worst,
            "firing_ticks": self.firing_ticks,
            "fired": self.fired,
            "firing_seconds": self.firing_for.total_seconds(),
            "first_firing": iso(self.first_firing),
            "last_firing": iso(self.last_firing),
            "notifications": self.notifications,
        }


@dataclass
class ModelSummary:
    model: str
    cadence: Cadence
    ticks: int = 0
    first_tick: datetime | None = None
    last_tick: datetime | None = None
    failed: list[tuple[datetime, str]] = field(default_factory=list)  # (tick, first line)
    notifications: int = 0  # outbox rows naming an alert of this model
    monitors: dict[str, MonitorSummary] = field(default_factory=dict)

    def monitor(self, name: str, kind: str) -> MonitorSummary:
        return self.monitors.setdefault(name, MonitorSummary(name, kind))

    def worst_first(self) -> list[MonitorSummary]:
        return sorted(self.monitors.values(), key=MonitorSummary.sort_key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cadence": cadence_text(self.cadence),
            "ticks": self.ticks,
            "first_tick": iso(self.first_tick),
            "last_tick": iso(self.last_tick),
            "failed_ticks": [{"tick": iso(t), "error": e} for t, e in self.failed],
            "notifications": self.notifications,
            "monitors": [m.as_dict() for m in self.worst_first()],
        }


@dataclass
class BackfillReport:
    start: datetime
    end: datetime
    models: list[ModelSummary]
    ticks: int = 0
    notifications: int = 0  # outbox rows, each counted once
    unattributed: int = 0  # outbox rows whose alerts could not be told (should stay 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "ticks": self.ticks,
            "notifications": self.notifications,
            "unattributed_notifications": self.unattributed,
            "delivered": 0,
            "models": [m.as_dict() for m in self.models],
        }


def cadence_text(c: Cadence) -> str:
    if c.every is not None:
        return f"every {format_duration(c.every)}"
    return f"cron '{c.cron}' ({c.timezone})"


# ------------------------------------------------------------------ the ticks


def pick_models(config: Config, names: Sequence[str] = ()) -> list[ModelSpec]:
    """The config's models named in ``names`` (all of them when empty), in config order."""
    known = {m.model: m for m in config.models}
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            raise BackfillUsageError(
                f"--model: unknown model '{name}'{hint}; the config has "
                + (", ".join(sorted(known)) or "no models")
            )
    return [m for m in config.models if not names or m.model in names]


def count_ticks(cadence: Cadence, start: datetime, end: datetime, limit: int) -> int:
    """Ticks in (start, end]: exact for ``every``; for ``cron``, counting stops at
    ``limit + 1``."""
    if cadence.every is not None:
        first = next_tick(cadence, start)
        return 0 if first > end else (end - first) // cadence.every + 1
    n = 0
    for _ in ticks_between(cadence, start, end):
        n += 1
        if n > limit:
            break
    return n


def _check_size(models: Sequence[ModelSpec], start: datetime, end: datetime, max_ticks: int) -> int:
    cadences = {m.model: cadence_of(m.evaluation) for m in models}
    counts = {name: count_ticks(c, start, end, max_ticks) for name, c in cadences.items()}
    total = sum(counts.values())
    if total <= max_ticks:
        return total
    # a cron count stops past the cap: say "more than" rather than a wrong number
    cut = {name for name, n in counts.items() if cadences[name].cron and n > max_ticks}
    each = ", ".join(
        f"{name}: more than {max_ticks:,}" if name in cut else f"{name}: {n:,}"
        for name, n in counts.items()
    )
    raise BackfillUsageError(
        f"the range {iso(start)} .. {iso(end)} holds {'more than ' if cut else ''}{total:,} "
        f"ticks ({each}), more than --max-ticks {max_ticks:,}; narrow --from/--to, pick "
        "models with --model, or raise --max-ticks"
    )


def plan_size(
    config: Config,
    start: datetime,
    end: datetime,
    *,
    models: Sequence[str] = (),
    max_ticks: int = DEFAULT_MAX_TICKS,
) -> int:
    """How many ticks :func:`backfill` will replay with these arguments, after the
    same checks (raises :class:`BackfillUsageError` as it does)."""
    if start >= end:
        raise BackfillUsageError(f"--from ({iso(start)}) must be before --to ({iso(end)})")
    return _check_size(pick_models(config, models), start, end, max_ticks)


def merged_ticks(
    models: Sequence[ModelSpec], start: datetime, end: datetime
) -> Iterator[tuple[datetime, int, ModelSpec]]:
    """Every model's ticks in (start, end], oldest first; models in config order
    within one tick, as the daemon takes them."""

    def of(i: int, m: ModelSpec) -> Iterator[tuple[datetime, int, ModelSpec]]:
        return ((t, i, m) for t in ticks_between(cadence_of(m.evaluation), start, end))

    return heapq.merge(*(of(i, m) for i, m in enumerate(models)), key=lambda x: (x[0], x[1]))


# ------------------------------------------------------------------ the replay


def backfill(
    config: Config,
    start: datetime,
    end: datetime,
    *,
    models: Sequence[str] = (),
    max_ticks: int = DEFAULT_MAX_TICKS,
    progress: Progress | None = None,
) -> BackfillReport:
    """Replay the ticks in (start, end] of ``models`` (default all) on a scratch
    store and summarise them. Raises :class:`BackfillUsageError` when
    ``start >= end``, a model is unknown or the range holds more than
    ``max_ticks`` ticks."""
    total = plan_size(config, start, end, models=models, max_ticks=max_ticks)
    chosen = pick_models(config, models)
    summaries = {m.model: _new_summary(m) for m in chosen}
    report = BackfillReport(start, end, list(summaries.values()))
    with tempfile.TemporaryDirectory(prefix="rulesengine-backfill-") as scratch:
        scratch_config = replace(
            config, engine=replace(config.engine, state=str(Path(scratch) / "state.db"))
        )
        with Store(scratch_config.engine.state) as store:
            for t, _, model in merged_ticks(chosen, start, end):
                _replay(store, scratch_config, model, t, summaries, report)
                report.ticks += 1
                if progress is not None:
                    progress(report.ticks, total, model.model, t)
    return report


def _new_summary(model: ModelSpec) -> ModelSummary:
    s = ModelSummary(model.model, cadence_of(model.evaluation))
    for m in model.monitors():
        if m.enabled:
            s.monitor(m.name, m.kind)
    return s


def _replay(
    store: Store,
    config: Config,
    model: ModelSpec,
    tick: datetime,
    summaries: dict[str, ModelSummary],
    report: BackfillReport,
) -> None:
    """One tick: evaluate, record on the scratch store, and count what changed."""
    summary = summaries[model.model]
    summary.ticks += 1
    summary.first_tick = summary.first_tick or tick
    summary.last_tick = tick
    before = {a.id: a.state for a in load_alerts(store).values()}
    logs = load_group_logs(store)
    top = store.row("SELECT COALESCE(MAX(id), 0) AS n FROM outbox")
    newest = top["n"] if top is not None else 0
    try:
        results = evaluate_tick(config, model, tick)
    except Exception as exc:  # as the daemon: one failed tick never stops the others
        summary.failed.append((tick, mask_text(first_line(exc))))
        return
    recorded = record_tick(store, config, model, tick, results, queued_at=tick).results
    # what was recorded: record_tick may rescore results (change thresholds)
    _count_results(summary, recorded if recorded is not None else results)
    after = load_alerts(store)
    spacing = next_tick(summary.cadence, tick) - tick
    _count_firing(summary, model, after, before, tick, spacing)
    rows = store.rows("SELECT group_key FROM outbox WHERE id > ? ORDER BY id", newest)
    _count_notifications(
        store, config, tick, logs, after, [r["group_key"] for r in rows], summaries, report
    )


def _count_results(summary: ModelSummary, results: ModelResults) -> None:
    seen: set[str] = set()
    for r in results.results:
        m = summary.monitor(r.monitor, r.kind)
        m.statuses[r.status] += 1
        if r.monitor not in seen:
            seen.add(r.monitor)
            m.ticks += 1


def _count_firing(
    summary: ModelSummary,
    model: ModelSpec,
    after: dict[str, AlertState],
    before: dict[str, str],
    tick: datetime,
    spacing: timedelta,
) -> None:
    """Monitors of ``model`` with an alert firing after ``tick``."""
    firing: set[str] = set()
    for aid, a in after.items():
        if a.model != model.model or a.state != "firing":
            continue
        kind = "source" if a.monitor == STALE_MONITOR else "check"
        m = summary.monitors.get(a.monitor) or summary.monitor(a.monitor, kind)
        if before.get(aid) != "firing":
            m.fired += 1
        firing.add(a.monitor)
    for name in firing:
        m = summary.monitors[name]
        m.firing_ticks += 1
        m.firing_for += spacing
        m.first_firing = m.first_firing or tick
        m.last_firing = tick


def _count_notifications(
    store: Store,
    config: Config,
    tick: datetime,
    logs: dict[str, Any],
    after: dict[str, AlertState],
    keys: Iterable[str],
    summaries: dict[str, ModelSummary],
    report: BackfillReport,
) -> None:
    """Attribute this tick's outbox rows to the monitors whose alerts they name.

    The alerts of a notification are not stored with it, so the tracker's pure
    planner is asked again with the same inputs (alert states after the tick, the
    group logs and silences before it, the tick as both clocks). With ``flush`` it
    returns every notification the tracker could have queued, and for each the same
    alerts whatever ``flush`` the tracker used (``flush`` only makes a new group due
    sooner), so every queued row is found in it."""
    plan = plan_dispatch(config.engine, after, load_silences(store), logs, tick, flush=True)
    named = {d.group.key: d.alerts for d in plan.due}
    for key in keys:
        report.notifications += 1
        if key not in named:
            report.unattributed += 1
            continue
        pairs = {(after[a].model, after[a].monitor) for a in named[key] if a in after}
        for model in {m for m, _ in pairs}:
            if model in summaries:
                summaries[model].notifications += 1
        for model, monitor in pairs:
            if model in summaries and monitor in summaries[model].monitors:
                summaries[model].monitors[monitor].notifications += 1


# ------------------------------------------------------------------ rendering


def to_json(report: BackfillReport) -> str:
    """The backfill document (see docs/backfill.md)."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def _when(t: datetime | None) -> str:
    return iso(t) or "-"


HEADER = (
    "MONITOR",
    "WORST",
    "TICKS",
    "FIRING",
    "FIRED",
    "FIRING FOR",
    "FIRST FIRING",
    "LAST FIRING",
    "NOTIFIED",
)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [HEADER, *rows]
    ]


def _model_text(s: ModelSummary) -> list[str]:
    span = f" ({_when(s.first_tick)} .. {_when(s.last_tick)})" if s.ticks else ""
    out = [
        f"{s.model}: {cadence_text(s.cadence)}, {s.ticks} tick(s){span}, "
        f"{s.notifications} notification(s)"
    ]
    rows = [
        (
            m.monitor,
            m.worst or "-",
            str(m.ticks),
            str(m.firing_ticks),
            str(m.fired),
            format_duration(m.firing_for) if m.firing_ticks else "-",
            _when(m.first_firing),
            _when(m.last_firing),
            str(m.notifications),
        )
        for m in s.worst_first()
    ]
    out += _table(rows)
    for t, error in s.failed:
        out.append(f"failed tick {iso(t)}: {error}")
    return out


def to_text(report: BackfillReport) -> str:
    """A table per model, worst first, under a one-line summary."""
    out = [
        f"backfill {iso(report.start)} .. {iso(report.end)}: {report.ticks} tick(s), "
        f"{report.notifications} notification(s) would have been queued; none was sent"
    ]
    for s in report.models:
        out += ["", *_model_text(s)]
    if report.unattributed:
        out += ["", f"{report.unattributed} notification(s) could not be tied to a monitor"]
    return "\n".join(out)
