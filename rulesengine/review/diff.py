"""What a spec change does: two loaded configs compared, as plain data.

:func:`diff_configs` lists models and monitors added, removed and changed (which
keys), each threshold that moved and in which direction, receivers (URLs masked)
and routes that changed, and for every alert a monitor can raise, the receivers
that would hear about it under BASE and under HEAD where they differ.
:func:`replay` runs both configs through the backfill over the same range.

**Directions.** A threshold is the set of values that violate it (``above 0.05``
is (0.05, ∞), ``outside [0, 1]`` is (-∞, 0) ∪ (1, ∞), ``between [2, 3]`` is
[2, 3]). HEAD's set strictly inside BASE's is *loosened* (fewer values fire),
strictly containing it *tightened*, neither *changed* (no direction). A
severity that appears is *added*, one that goes is *removed*. Change thresholds
compare only when their offset, mode and tolerance are equal; derived
thresholds, and change thresholds that differ in those, are *changed*.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rulesengine.alerting.routing import route
from rulesengine.alerting.tracker import STALE_MONITOR
from rulesengine.daemon.backfill import BackfillReport, backfill, plan_size
from rulesengine.engine.results import iso
from rulesengine.masking import mask_url
from rulesengine.review.gitrev import Side
from rulesengine.spec.model import (
    Config,
    EngineSpec,
    ModelSpec,
    MonitorSpec,
    ReceiverSpec,
    RouteSpec,
    Threshold,
)

SEVERITIES = ("warn", "critical", "resolve")
# engine.yaml keys compared as a whole (receivers and routes have their own sections)
ENGINE_KEYS = ("defaults", "grouping", "inhibit", "time_intervals", "templates", "delivery")
ENGINE_KEYS += ("state", "history", "listen", "models")
MODEL_KEYS = ("sources", "evaluation", "labels", "description")
SKIPPED_MONITOR_KEYS = frozenset({"path"})

# ------------------------------------------------------------------ thresholds

# an interval: (low, low included, high, high included)
Interval = tuple[float, bool, float, bool]
INF = math.inf


def violation_set(t: Threshold) -> list[Interval]:
    """The values that violate ``t`` (its condition on the value or on the change)."""
    v = t.value
    if t.op == "above":
        return [(float(v), False, INF, False)]  # type: ignore[arg-type]
    if t.op == "at_or_above":
        return [(float(v), True, INF, False)]  # type: ignore[arg-type]
    if t.op == "below":
        return [(-INF, False, float(v), False)]  # type: ignore[arg-type]
    if t.op == "at_or_below":
        return [(-INF, False, float(v), True)]  # type: ignore[arg-type]
    lo, hi = (float(x) for x in v)  # type: ignore[union-attr]
    if t.op == "outside":
        return [(-INF, False, lo, False), (hi, False, INF, False)]
    return [(lo, True, hi, True)]  # between


def _inside(a: Interval, b: Interval) -> bool:
    alo, alo_in, ahi, ahi_in = a
    blo, blo_in, bhi, bhi_in = b
    low_ok = blo < alo or (blo == alo and (blo_in or not alo_in))
    high_ok = bhi > ahi or (bhi == ahi and (bhi_in or not ahi_in))
    return low_ok and high_ok


def _subset(a: list[Interval], b: list[Interval]) -> bool:
    """Every interval of ``a`` lies in one interval of ``b`` (``b``'s are disjoint,
    so a connected piece of ``a`` inside ``b`` is inside one of them)."""
    return all(any(_inside(x, y) for y in b) for x in a)


def direction(base: Threshold | None, head: Threshold | None) -> str | None:
    """``loosened``, ``tightened``, ``changed``, ``added``, ``removed``, or None
    when the two are the same."""
    if base == head:
        return None
    if base is None:
        return "added"
    if head is None:
        return "removed"
    if base.derived is not None or head.derived is not None or base.change != head.change:
        return "changed"
    old, new = violation_set(base), violation_set(head)
    inner, outer = _subset(new, old), _subset(old, new)
    if inner and outer:
        return None  # the same set written differently
    if inner:
        return "loosened"
    return "tightened" if outer else "changed"


def threshold_text(t: Threshold | None) -> str:
    """``above 0.05``, ``outside [0, 1]``, ``change 7d relative below -0.1``,
    ``derived std 3``; ``-`` for none."""
    if t is None:
        return "-"
    if t.derived is not None:
        parts = " ".join(f"{k} {_plain(v)}" for k, v in t.derived.as_dict().items())
        return f"derived {parts}"
    cond = f"{t.op} {_plain(t.value)}"
    if t.change is not None:
        return f"change {t.change.as_dict().get('offset')} {t.change.mode} {cond}"
    return cond


def _plain(v: Any) -> str:
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_plain(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# ------------------------------------------------------------------ the diff


@dataclass
class SpecDiff:
    """Everything :func:`diff_configs` found; plain values, ready to render."""

    base: str
    head: str
    models_added: list[str] = field(default_factory=list)
    models_removed: list[str] = field(default_factory=list)
    models_changed: list[dict[str, Any]] = field(default_factory=list)  # {model, keys}
    monitors: list[dict[str, Any]] = field(default_factory=list)  # {model, monitor, change, keys}
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    receivers: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, list[str]] = field(default_factory=lambda: {"removed": [], "added": []})
    engine_changed: list[str] = field(default_factory=list)
    routing: list[dict[str, Any]] = field(default_factory=list)
    replay: dict[str, Any] | None = None

    def counts(self) -> dict[str, int]:
        """The summary line's numbers."""
        by = lambda change: sum(m["change"] == change for m in self.monitors)  # noqa: E731
        dirs = [t["direction"] for t in self.thresholds]
        return {
            "monitors_added": by("added"),
            "monitors_removed": by("removed"),
            "monitors_changed": by("changed"),
            "thresholds_loosened": dirs.count("loosened") + dirs.count("removed"),
            "thresholds_tightened": dirs.count("tightened") + dirs.count("added"),
            "thresholds_changed": dirs.count("changed"),
            "receivers_changed": len(self.receivers),
            "routes_changed": len(self.routes["removed"]) + len(self.routes["added"]),
            "alerts_rerouted": len(self.routing),
        }


def _value(v: Any) -> Any:
    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v


def changed_keys(a: Any, b: Any, skip: frozenset[str] = frozenset()) -> list[str]:
    """The dataclass fields of ``a`` and ``b`` whose values differ (a different
    class counts as ``kind``)."""
    if type(a) is not type(b):
        return ["kind"]
    return [
        f.name
        for f in dataclasses.fields(a)
        if f.name not in skip and _value(getattr(a, f.name)) != _value(getattr(b, f.name))
    ]


def _monitors(model: ModelSpec) -> dict[str, MonitorSpec]:
    return {m.name: m for m in model.monitors()}


def _diff_model(out: SpecDiff, old: ModelSpec, new: ModelSpec) -> None:
    keys = [k for k in MODEL_KEYS if getattr(old, k) != getattr(new, k)]
    if keys:
        out.models_changed.append({"model": new.model, "keys": keys})
    a, b = _monitors(old), _monitors(new)
    for name in [*a, *(n for n in b if n not in a)]:
        if name not in b:
            out.monitors.append({"model": old.model, "monitor": name, "change": "removed"})
        elif name not in a:
            out.monitors.append({"model": new.model, "monitor": name, "change": "added"})
        else:
            keys = changed_keys(a[name], b[name], SKIPPED_MONITOR_KEYS)
            if keys:
                out.monitors.append(
                    {"model": new.model, "monitor": name, "change": "changed", "keys": keys}
                )
            _diff_thresholds(out, new.model, a[name], b[name])


def _diff_thresholds(out: SpecDiff, model: str, a: MonitorSpec, b: MonitorSpec) -> None:
    for sev in SEVERITIES:
        old, new = getattr(a.thresholds, sev), getattr(b.thresholds, sev)
        if old == new:
            continue
        way = direction(old, new) if sev != "resolve" else "changed"
        out.thresholds.append(
            {
                "model": model,
                "monitor": b.name,
                "severity": sev,
                "base": threshold_text(old),
                "head": threshold_text(new),
                "direction": way or "changed",
            }
        )


def _receiver_view(r: ReceiverSpec | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "urls": [mask_url(u) for u in r.urls],
        "config": r.config,
        "tags": list(r.tags),
        "title": r.title,
        "body": r.body,
    }


def _diff_receivers(out: SpecDiff, old: EngineSpec, new: EngineSpec) -> None:
    for name in [*old.receivers, *(n for n in new.receivers if n not in old.receivers)]:
        a, b = old.receivers.get(name), new.receivers.get(name)
        if a == b:
            continue
        change = "added" if a is None else "removed" if b is None else "changed"
        row: dict[str, Any] = {"receiver": name, "change": change}
        row["base"], row["head"] = _receiver_view(a), _receiver_view(b)
        if a is not None and b is not None:
            row["keys"] = changed_keys(a, b)
            if "urls" in row["keys"] and row["base"]["urls"] == row["head"]["urls"]:
                row["note"] = "a masked part of a URL changed"
        out.receivers.append(row)


def route_lines(routes: tuple[RouteSpec, ...], depth: int = 0) -> list[str]:
    """The routing tree as one line per route, children indented."""
    out = []
    for r in routes:
        match = ", ".join(
            [f"{k}={v}" for k, v in r.match.items()] + [f"{k}=~{v}" for k, v in r.match_re.items()]
        )
        text = f"{'  ' * depth}match {{{match}}}" if match else f"{'  ' * depth}match all"
        text += " -> " + (", ".join(r.receivers) or "(parent's receivers)")
        extras = [e for e, on in (("continue", r.continue_),) if on]
        if r.grouping is not None:
            extras.append(f"grouping by {','.join(r.grouping.by)}")
        if r.mute_time_intervals:
            extras.append("muted in " + ",".join(r.mute_time_intervals))
        if not r.send_resolved:
            extras.append("no resolved")
        out.append(text + (f" ({'; '.join(extras)})" if extras else ""))
        out.extend(route_lines(r.routes, depth + 1))
    return out


def _diff_routes(out: SpecDiff, old: EngineSpec, new: EngineSpec) -> None:
    import difflib

    a, b = route_lines(old.routes), route_lines(new.routes)
    for line in difflib.ndiff(a, b):
        if line.startswith("- "):
            out.routes["removed"].append(line[2:])
        elif line.startswith("+ "):
            out.routes["added"].append(line[2:])


# ------------------------------------------------------------------ routing impact


def alert_label_sets(model: ModelSpec) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(monitor, severity, labels) of each overall alert the model can raise: per
    enabled monitor and severity it has a threshold for (a drift monitor's columns
    raise ``column_severity``), and the stale-data alert of each timed source.
    Segment and column labels are not enumerated: routes see the overall alert."""
    for m in model.monitors():
        if not m.enabled:
            continue
        sevs = {s for s in ("warn", "critical") if getattr(m.thresholds, s) is not None}
        if m.kind == "drift":
            sevs.add(getattr(m, "column_severity", "warn"))
        for sev in sorted(sevs, key=("critical", "warn").index):
            labels = {**model.labels, **m.labels, "model": model.model}
            labels.update({"monitor": m.name, "kind": m.kind, "type": m.type})
            labels.update({"source": m.source, "segment": "", "severity": sev})
            yield m.name, sev, labels
    for name, source in model.sources.items():
        if source.timestamp is not None:
            labels = {**model.labels, "model": model.model, "monitor": STALE_MONITOR}
            labels.update({"kind": "source", "type": "stale_data", "source": name})
            labels.update({"segment": f"source={name}", "severity": "critical"})
            yield STALE_MONITOR, "critical", labels


def receivers_for(engine: EngineSpec, labels: dict[str, str]) -> list[str]:
    """The receivers every matching route sends an alert with ``labels`` to."""
    out: list[str] = []
    for match in route(engine, labels):
        out.extend(r for r in match.receivers if r not in out)
    return sorted(out)


def _diff_routing(out: SpecDiff, base: Config, head: Config) -> None:
    models = {m.model: m for m in base.models} | {m.model: m for m in head.models}
    for model in models.values():
        for monitor, sev, labels in alert_label_sets(model):
            before = receivers_for(base.engine, labels)
            after = receivers_for(head.engine, labels)
            moved = [r for r in set(before) & set(after) if _urls(base, r) != _urls(head, r)]
            if before != after or moved:
                row = {"model": model.model, "monitor": monitor, "severity": sev}
                row.update({"source": labels["source"]} if monitor == STALE_MONITOR else {})
                row.update({"base": before, "head": after, "added": _minus(after, before)})
                row.update({"removed": _minus(before, after), "receivers_changed": sorted(moved)})
                out.routing.append(row)


def _urls(config: Config, receiver: str) -> Any:
    r = config.engine.receivers.get(receiver)
    return None if r is None else (r.urls, r.config)


def _minus(a: list[str], b: list[str]) -> list[str]:
    return [x for x in a if x not in b]


def diff_configs(base: Side, head: Side) -> SpecDiff:
    """Compare BASE's config with HEAD's."""
    out = SpecDiff(base.label, head.label)
    a = {m.model: m for m in base.config.models}
    b = {m.model: m for m in head.config.models}
    out.models_removed = [n for n in a if n not in b]
    out.models_added = [n for n in b if n not in a]
    for name in out.models_removed:
        for m in a[name].monitors():
            out.monitors.append({"model": name, "monitor": m.name, "change": "removed"})
    for name in out.models_added:
        for m in b[name].monitors():
            out.monitors.append({"model": name, "monitor": m.name, "change": "added"})
    for name in a:
        if name in b:
            _diff_model(out, a[name], b[name])
    old, new = base.config.engine, head.config.engine
    out.engine_changed = [k for k in ENGINE_KEYS if getattr(old, k) != getattr(new, k)]
    _diff_receivers(out, old, new)
    _diff_routes(out, old, new)
    _diff_routing(out, base.config, head.config)
    return out


# ------------------------------------------------------------------ replay

# progress(ticks done, ticks in all, side, model, tick)
Progress = Callable[[int, int, str, str, datetime], None]


def replay_size(base: Config, head: Config, start: datetime, end: datetime, cap: int) -> int:
    """Ticks of both replays together (raises the backfill's usage error past ``cap``)."""
    return plan_size(base, start, end, max_ticks=cap) + plan_size(head, start, end, max_ticks=cap)


def replay(
    base: Config,
    head: Config,
    start: datetime,
    end: datetime,
    *,
    max_ticks: int = 100_000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Backfill both configs over (start, end] and put their counts side by side."""
    total = replay_size(base, head, start, end, max_ticks)
    reports: dict[str, BackfillReport] = {}
    for side, config in (("BASE", base), ("HEAD", head)):
        done = sum(r.ticks for r in reports.values())
        step = None if progress is None else _step(progress, done, total, side)
        reports[side] = backfill(config, start, end, max_ticks=max_ticks, progress=step)
    return _side_by_side(reports["BASE"], reports["HEAD"])


def _step(
    progress: Progress, done: int, total: int, side: str
) -> Callable[[int, int, str, datetime], None]:
    """The backfill's progress callback for one side, counting both sides' ticks."""

    def step(n: int, _all: int, model: str, tick: datetime) -> None:
        progress(done + n, total, side, model, tick)

    return step


def _side_by_side(base: BackfillReport, head: BackfillReport) -> dict[str, Any]:
    def counts(report: BackfillReport) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for m in report.models:
            for s in m.monitors.values():
                out[(m.model, s.monitor)] = {
                    "fired": s.fired,
                    "firing_ticks": s.firing_ticks,
                    "firing_seconds": s.firing_for.total_seconds(),
                    "notifications": s.notifications,
                }
        return out

    a, b = counts(base), counts(head)
    rows = []
    for key in [*a, *(k for k in b if k not in a)]:
        before, after = a.get(key), b.get(key)
        row = {"model": key[0], "monitor": key[1], "base": before, "head": after}
        row["differs"] = before != after
        rows.append(row)
    return {
        "from": iso(base.start),
        "to": iso(base.end),
        "base": {"ticks": base.ticks, "notifications": base.notifications},
        "head": {"ticks": head.ticks, "notifications": head.notifications},
        "monitors": rows,
    }
