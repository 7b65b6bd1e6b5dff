"""Which receivers hear about an alert, and which alerts are muted.

* Routes: a list (and tree) of matchers over alert labels. The first matching
  route wins unless it says ``continue: true``; a matching route's first matching
  child takes over, else the route itself handles the alert. A child without
  receivers or grouping inherits its parent's.
* Silences: label matchers (``=``, ``!=``, ``=~``, ``!~``) with a time span.
* Inhibition: a firing alert matching ``source_match`` mutes alerts matching
  ``target_match`` whose ``equal`` labels have the same values.
* Mute time intervals: a route sends nothing while one of its intervals is on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rulesengine.spec.model import (
    EngineSpec,
    GroupingSpec,
    InhibitRule,
    RouteSpec,
    TimeInterval,
)
from rulesengine.spec.semantic_engine import MONTHS, WEEKDAYS


@dataclass(frozen=True)
class RouteMatch:
    """A route that takes an alert: its identity, receivers and grouping."""

    key: str  # the route's position in the tree, e.g. "0.1"
    receivers: tuple[str, ...]
    grouping: GroupingSpec
    send_resolved: bool
    mute_time_intervals: tuple[str, ...]


def _matches(route: RouteSpec, labels: dict[str, str]) -> bool:
    for k, v in route.match.items():
        if labels.get(k, "") != v:
            return False
    return all(re.fullmatch(rx, labels.get(k, "")) is not None for k, rx in route.match_re.items())


def _walk(
    routes: tuple[RouteSpec, ...],
    labels: dict[str, str],
    prefix: str,
    parent_receivers: tuple[str, ...],
    parent_grouping: GroupingSpec,
) -> list[RouteMatch]:
    out: list[RouteMatch] = []
    for i, route in enumerate(routes):
        if not _matches(route, labels):
            continue
        key = f"{prefix}{i}"
        receivers = route.receivers or parent_receivers
        grouping = route.grouping or parent_grouping
        children = _walk(route.routes, labels, key + ".", receivers, grouping)
        if children:
            out.extend(children)
        else:
            out.append(
                RouteMatch(key, receivers, grouping, route.send_resolved, route.mute_time_intervals)
            )
        if not route.continue_:
            break
    return out


def route(engine: EngineSpec, labels: dict[str, str]) -> list[RouteMatch]:
    """Every route that takes an alert with these labels."""
    return _walk(engine.routes, labels, "", (), engine.grouping)


# ------------------------------------------------------------------ silences

MATCHER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$")


def parse_matcher(text: str) -> tuple[str, str, str]:
    """``team=risk`` → ("team", "=", "risk"); also ``!=``, ``=~``, ``!~``."""
    m = MATCHER.match(text.strip())
    if not m:
        raise ValueError(
            f"'{text}' is not a matcher: write label=value, label!=value, "
            "label=~regex or label!~regex"
        )
    name, op, value = m.groups()
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"'{value}' is not a valid regex: {exc}") from None
    return name, op, value


def matcher_holds(matcher: tuple[str, str, str] | list[str], labels: dict[str, str]) -> bool:
    name, op, value = matcher
    got = labels.get(name, "")
    if op == "=":
        return got == value
    if op == "!=":
        return got != value
    found = re.fullmatch(value, got) is not None
    return found if op == "=~" else not found


def silenced(silences: list[dict[str, Any]], labels: dict[str, str], now: datetime) -> str | None:
    """The id of an active silence that matches, or None."""
    for s in silences:
        if s["starts_at"] <= now < s["ends_at"] and all(
            matcher_holds(m, labels) for m in s["matchers"]
        ):
            return s["id"]
    return None


# ------------------------------------------------------------------ inhibition


def inhibited(
    rules: tuple[InhibitRule, ...], target: dict[str, str], firing: list[dict[str, str]]
) -> bool:
    """Whether a firing alert (label sets in ``firing``) inhibits ``target``."""
    for rule in rules:
        if not all(target.get(k, "") == v for k, v in rule.target_match.items()):
            continue
        for source in firing:
            if source is target:
                continue
            if all(source.get(k, "") == v for k, v in rule.source_match.items()) and all(
                source.get(k, "") == target.get(k, "") for k in rule.equal
            ):
                return True
    return False


# ------------------------------------------------------------------ time intervals


def _range_holds(spec: str, value: int, names: list[str] | None, base: int, size: int) -> bool:
    def num(part: str) -> int:
        part = part.strip().lower()
        if names and part in names:
            return names.index(part) + base
        n = int(part)
        return n if n > 0 or names else size + 1 + n  # -1: the last day of the month

    parts = str(spec).split(":")
    lo = num(parts[0])
    hi = num(parts[1]) if len(parts) > 1 else lo
    return lo <= value <= hi


def in_interval(interval: TimeInterval, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(interval.location))
    if interval.weekdays:
        day = (local.weekday() + 1) % 7  # Sunday = 0, as Alertmanager
        if not any(_range_holds(w, day, WEEKDAYS, 0, 7) for w in interval.weekdays):
            return False
    if interval.days_of_month:
        import calendar

        size = calendar.monthrange(local.year, local.month)[1]
        if not any(_range_holds(str(d), local.day, None, 1, size) for d in interval.days_of_month):
            return False
    if interval.months and not any(
        _range_holds(str(m), local.month, MONTHS, 1, 12) for m in interval.months
    ):
        return False
    if interval.times:
        minute = local.hour * 60 + local.minute

        def mins(t: str) -> int:
            h, m = t.split(":")
            return int(h) * 60 + int(m)

        if not any(mins(t.start) <= minute < mins(t.end) for t in interval.times):
            return False
    return True


def muted_by_interval(engine: EngineSpec, names: tuple[str, ...], now: datetime) -> bool:
    return any(
        in_interval(span, now) for name in names for span in engine.time_intervals.get(name, ())
    )
