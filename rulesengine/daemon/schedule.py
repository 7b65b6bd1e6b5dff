"""When a model is evaluated: aligned ticks, pure (no clock reads, no I/O).

A model's cadence is either ``every`` (a duration; ticks at whole multiples of it
since the Unix epoch, in UTC) or ``cron`` (a 5-field expression read by croniter
in ``timezone``). Every function takes the times it needs as arguments and
returns timezone-aware UTC datetimes, so the daemon's loop, the HTTP endpoint and
backfill all ask the same questions of the same code, and tests use a fake clock:

>>> from datetime import datetime, timedelta, timezone
>>> c = Cadence(every=timedelta(minutes=15))
>>> [t.strftime("%H:%M") for t in ticks_between(
...     c, datetime(2026, 1, 1, 10, 7, tzinfo=timezone.utc),
...     datetime(2026, 1, 1, 11, 0, tzinfo=timezone.utc))]
['10:15', '10:30', '10:45', '11:00']

Each tick is the ``at`` of one evaluation: its windows end at the tick.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from croniter import croniter

from rulesengine.spec.model import EvaluationSpec

CatchUp = Literal["latest", "all", "none"]
CATCH_UP_POLICIES: tuple[str, ...] = ("latest", "all", "none")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Cadence:
    """A model's schedule: ``every`` or ``cron`` (+ ``timezone``), never both.

    ``Cadence(every=timedelta(minutes=15))`` ticks at :00, :15, :30, :45 UTC;
    ``Cadence(cron="0 6 * * 1-5", timezone="Europe/Berlin")`` at 06:00 Berlin time
    on weekdays.
    """

    every: timedelta | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        # The spec validator already refuses these; a direct caller gets a clear error
        # instead of a division by zero or a silently ignored field.
        if (self.every is None) == (self.cron is None):
            raise ValueError("a cadence has exactly one of every and cron")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError(f"every must be longer than zero, got {self.every}")


def cadence_of(evaluation: EvaluationSpec) -> Cadence:
    """The cadence a model's resolved ``evaluation`` asks for (``cron`` wins: the
    spec builder already dropped an inherited ``cron`` when the model set ``every``)."""
    if evaluation.cron is not None:
        return Cadence(cron=evaluation.cron, timezone=evaluation.timezone)
    return Cadence(every=evaluation.every)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        # A naive time is ambiguous across zones and DST; refusing it is cheaper than
        # a tick an hour off.
        raise ValueError(f"a schedule needs timezone-aware times, got naive {t.isoformat()}")
    return t.astimezone(UTC)


def _steps(cadence: Cadence, t: datetime) -> tuple[int, int]:
    """(step, microseconds since the epoch) for an ``every`` cadence: integer
    arithmetic, so 1s or 7d ticks never drift by a float rounding."""
    assert cadence.every is not None
    return cadence.every // _US, (t - EPOCH) // _US


def _cron(cadence: Cadence, start: datetime) -> croniter:
    assert cadence.cron is not None
    zone = zoneinfo.ZoneInfo(cadence.timezone)
    return croniter(cadence.cron, start.astimezone(zone))


def next_tick(cadence: Cadence, after: datetime) -> datetime:
    """The first tick strictly after ``after``."""
    after = _utc(after)
    if cadence.every is not None:
        step, us = _steps(cadence, after)
        return EPOCH + (us // step + 1) * step * _US
    return _utc(_cron(cadence, after).get_next(datetime))


def last_tick(cadence: Cadence, at: datetime) -> datetime:
    """The newest tick at or before ``at`` (``at`` itself when it is a tick)."""
    at = _utc(at)
    if cadence.every is not None:
        step, us = _steps(cadence, at)
        return EPOCH + (us // step) * step * _US
    # croniter's get_prev excludes its start, so start one microsecond later to
    # include ``at``; cron ticks are whole minutes, so nothing else is let in.
    return _utc(_cron(cadence, at + _US).get_prev(datetime))


def ticks_between(cadence: Cadence, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every tick t with after < t <= until, oldest first, lazily (a backfill over a
    year at 1s is 31 million ticks; nothing is built up front)."""
    until = _utc(until)
    t = next_tick(cadence, after)
    if cadence.every is not None:
        while t <= until:
            yield t
            t += cadence.every
        return
    it = _cron(cadence, _utc(after))
    t = _utc(it.get_next(datetime))
    while t <= until:
        yield t
        t = _utc(it.get_next(datetime))


def _newest(cadence: Cadence, after: datetime | None, now: datetime, n: int) -> list[datetime]:
    """Up to ``n`` newest ticks t with after < t <= now, oldest first, walking back
    from ``now`` so a long outage costs ``n`` steps, not one per missed tick."""
    out: list[datetime] = []
    t = last_tick(cadence, now)
    while len(out) < n and (after is None or t > after):
        out.append(t)
        t = last_tick(cadence, t - _US)
    return out[::-1]


def due(
    cadence: Cadence,
    watermark: datetime | None,
    now: datetime,
    catch_up: CatchUp = "latest",
    catch_up_max: int = 100,
) -> list[datetime]:
    """The ticks to evaluate now, oldest first, given the last evaluated tick.

    ``watermark`` is the newest tick already evaluated (None: never evaluated). The
    candidates are the ticks t with watermark < t <= now:

    - ``latest``: only the newest candidate;
    - ``all``: every candidate, at most ``catch_up_max`` of them (the newest);
    - ``none``: the newest candidate only when it is the first tick after the
      watermark, i.e. no tick was missed; after missed ticks (a restart after an
      outage, an evaluation that overran its next tick) nothing is due and the next
      run is ``next_tick(cadence, now)``. Without a watermark nothing is due either:
      a first start waits for the next tick.

    Without a watermark, ``all`` behaves as ``latest``: there is no outage to catch
    up on, and replaying from the epoch would be absurd.

    >>> from datetime import datetime, timedelta, timezone
    >>> c = Cadence(every=timedelta(minutes=15))
    >>> utc = lambda h, m: datetime(2026, 1, 1, h, m, tzinfo=timezone.utc)
    >>> [t.strftime("%H:%M") for t in due(c, utc(10, 0), utc(11, 7), "all", 3)]
    ['10:30', '10:45', '11:00']
    """
    if catch_up not in CATCH_UP_POLICIES:
        raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP_POLICIES)}")
    if catch_up_max < 1:
        raise ValueError(f"catch_up_max must be at least 1, got {catch_up_max}")
    now = _utc(now)
    after = None if watermark is None else _utc(watermark)
    if catch_up == "all" and after is not None:
        return _newest(cadence, after, now, catch_up_max)
    newest = _newest(cadence, after, now, 1)
    if catch_up != "none":  # latest, or all without a watermark
        return newest
    if after is None or not newest or next_tick(cadence, after) != newest[0]:
        return []
    return newest


def count_between(cadence: Cadence, after: datetime, until: datetime, cap: int = 100_000) -> int:
    """How many ticks t with after < t <= until (at most ``cap`` for cron, which
    is walked tick by tick; ``every`` is counted by arithmetic)."""
    if until <= after:
        return 0
    if cadence.every is not None:
        step, a = _steps(cadence, _utc(after))
        _, u = _steps(cadence, _utc(until))
        return max(0, u // step - a // step)
    n = 0
    for _ in ticks_between(cadence, after, until):
        n += 1
        if n >= cap:
            break
    return n


def interval_at(cadence: Cadence, at: datetime) -> timedelta:
    """The spacing of the ticks around ``at``: ``every`` itself, or for cron the
    time from the newest tick at or before ``at`` to the next one."""
    if cadence.every is not None:
        return cadence.every
    return next_tick(cadence, at) - last_tick(cadence, at)
