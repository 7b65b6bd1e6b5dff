"""The pure tick schedule, against tables of instants worked out by hand.

Berlin's DST changes in 2026: spring forward on Sunday 29 March at 01:00 UTC (02:00 CET
becomes 03:00 CEST, so 02:00-02:59 local does not exist); fall back on Sunday 25 October at
01:00 UTC (03:00 CEST becomes 02:00 CET, so 02:00-02:59 local happens twice). CET is
UTC+1, CEST is UTC+2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest

from rulesengine.daemon.schedule import (
    Cadence,
    cadence_of,
    due,
    last_tick,
    next_tick,
    ticks_between,
)
from rulesengine.spec.model import EvaluationSpec

pytestmark = pytest.mark.timeout(30)

UTC = UTC
EVERY_15M = Cadence(every=timedelta(minutes=15))
BERLIN_HOURLY = Cadence(cron="0 * * * *", timezone="Europe/Berlin")
BERLIN_0230 = Cadence(cron="30 2 * * *", timezone="Europe/Berlin")


def z(text: str) -> datetime:
    """'2026-03-29T01:00' read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def zs(*texts: str) -> list[datetime]:
    return [z(t) for t in texts]


# ----------------------------------------------------------------- every: epoch-aligned


@pytest.mark.parametrize(
    ("every", "after", "until", "expected"),
    [
        # the brief's example
        (
            timedelta(minutes=15),
            "2026-01-01T10:07",
            "2026-01-01T11:00",
            ["2026-01-01T10:15", "2026-01-01T10:30", "2026-01-01T10:45", "2026-01-01T11:00"],
        ),
        # `after` is excluded even when it is a tick; `until` is included
        (
            timedelta(minutes=15),
            "2026-01-01T10:15",
            "2026-01-01T10:45",
            ["2026-01-01T10:30", "2026-01-01T10:45"],
        ),
        # 2026-01-01 is day 20454 since the epoch; 20454 * 1440 min is a multiple of 90
        (
            timedelta(minutes=90),
            "2025-12-31T23:59",
            "2026-01-01T03:00",
            ["2026-01-01T00:00", "2026-01-01T01:30", "2026-01-01T03:00"],
        ),
        # 2026-01-02 00:00 is minute 20455 * 1440 = 29,455,200 = 7 * 4,207,885 + 5, so the
        # 7-minute ticks there fall on 23:55 the day before, then 00:02, 00:09, 00:16
        (
            timedelta(minutes=7),
            "2026-01-01T23:55",
            "2026-01-02T00:16",
            ["2026-01-02T00:02", "2026-01-02T00:09", "2026-01-02T00:16"],
        ),
        # days are UTC days, whatever the local zone
        (
            timedelta(days=1),
            "2026-03-28T12:00",
            "2026-03-30T00:00",
            ["2026-03-29T00:00", "2026-03-30T00:00"],
        ),
        (
            timedelta(seconds=1),
            "2026-01-01T00:00:00.5",
            "2026-01-01T00:00:02",
            ["2026-01-01T00:00:01", "2026-01-01T00:00:02"],
        ),
        (timedelta(minutes=15), "2026-01-01T10:07", "2026-01-01T10:14", []),
    ],
)
def test_every_ticks(every: timedelta, after: str, until: str, expected: list[str]) -> None:
    c = Cadence(every=every)
    assert list(ticks_between(c, z(after), z(until))) == zs(*expected)


def test_next_and_last_tick_of_every() -> None:
    assert next_tick(EVERY_15M, z("2026-01-01T10:07")) == z("2026-01-01T10:15")
    assert next_tick(EVERY_15M, z("2026-01-01T10:15")) == z("2026-01-01T10:30")
    assert last_tick(EVERY_15M, z("2026-01-01T10:15")) == z("2026-01-01T10:15")
    assert last_tick(EVERY_15M, z("2026-01-01T10:14:59.999999")) == z("2026-01-01T10:00")
    # the same instant written in another offset gives the same UTC tick
    plus2 = datetime(2026, 1, 1, 12, 7, tzinfo=timezone(timedelta(hours=2)))
    assert next_tick(EVERY_15M, plus2) == z("2026-01-01T10:15")
    assert next_tick(EVERY_15M, plus2).tzinfo == UTC


def test_ticks_between_is_lazy_over_a_huge_range() -> None:
    """Ten years at 1s is 315 million ticks; the first three come at once."""
    c = Cadence(every=timedelta(seconds=1))
    first = list(islice(ticks_between(c, z("2016-01-01T00:00"), z("2026-01-01T00:00")), 3))
    assert first == zs("2016-01-01T00:00:01", "2016-01-01T00:00:02", "2016-01-01T00:00:03")


def test_bad_cadences_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one of every and cron"):
        Cadence(every=timedelta(minutes=1), cron="* * * * *")
    with pytest.raises(ValueError, match="exactly one of every and cron"):
        Cadence()
    with pytest.raises(ValueError, match="longer than zero"):
        Cadence(every=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_tick(EVERY_15M, datetime(2026, 1, 1, 10, 7))


# ----------------------------------------------------------------- cron in Europe/Berlin


@pytest.mark.parametrize(
    ("cadence", "after", "until", "expected"),
    [
        # spring forward: 02:30 does not exist on 29 March; that day's tick is at 03:00
        # CEST (01:00 UTC), the first instant after the gap
        (
            BERLIN_0230,
            "2026-03-27T12:00",
            "2026-03-31T00:00",
            ["2026-03-28T01:30", "2026-03-29T01:00", "2026-03-30T00:30"],
        ),
        # hourly across the gap: local 01:00 CET, (no 02:00), 03:00, 04:00, 05:00 CEST are
        # one tick per UTC hour, none lost and none doubled
        (
            BERLIN_HOURLY,
            "2026-03-28T23:30",
            "2026-03-29T03:00",
            ["2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T02:00", "2026-03-29T03:00"],
        ),
        # fall back: 02:30 happens twice on 25 October, CEST then CET, and both are ticks
        (
            BERLIN_0230,
            "2026-10-23T12:00",
            "2026-10-26T12:00",
            ["2026-10-24T00:30", "2026-10-25T00:30", "2026-10-25T01:30", "2026-10-26T01:30"],
        ),
        # hourly across the repeat: 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET, 04:00 CET
        (
            BERLIN_HOURLY,
            "2026-10-24T22:30",
            "2026-10-25T03:00",
            [
                "2026-10-24T23:00",
                "2026-10-25T00:00",
                "2026-10-25T01:00",
                "2026-10-25T02:00",
                "2026-10-25T03:00",
            ],
        ),
        # weekdays at 06:00 local: Friday 27 March in CET, Monday 30 March in CEST
        (
            Cadence(cron="0 6 * * 1-5", timezone="Europe/Berlin"),
            "2026-03-27T00:00",
            "2026-03-31T00:00",
            ["2026-03-27T05:00", "2026-03-30T04:00"],
        ),
        # the default zone is UTC
        (
            Cadence(cron="0 6 * * 1-5"),
            "2026-03-27T00:00",
            "2026-03-31T00:00",
            ["2026-03-27T06:00", "2026-03-30T06:00"],
        ),
    ],
)
def test_cron_ticks_across_dst(
    cadence: Cadence, after: str, until: str, expected: list[str]
) -> None:
    got = list(ticks_between(cadence, z(after), z(until)))
    assert got == zs(*expected)
    assert all(t.tzinfo == UTC for t in got)


def test_last_tick_of_cron_agrees_with_the_forward_walk_across_dst() -> None:
    """due() walks back from now; it must see the same ticks as a walk forward."""
    for cadence in (BERLIN_HOURLY, BERLIN_0230):
        for after, until in (
            ("2026-03-27T00:00", "2026-03-31T00:00"),
            ("2026-10-23T00:00", "2026-10-27T00:00"),
        ):
            forward = list(ticks_between(cadence, z(after), z(until)))
            back = due(cadence, z(after), z(until), "all", 10_000)
            assert back == forward
    assert last_tick(BERLIN_HOURLY, z("2026-10-25T01:00")) == z("2026-10-25T01:00")
    assert next_tick(BERLIN_HOURLY, z("2026-10-25T00:00")) == z("2026-10-25T01:00")


# ----------------------------------------------------------------- catch-up


@pytest.mark.parametrize(
    ("watermark", "now", "latest", "all_", "none"),
    [
        # down from 10:00 to 11:07: four ticks pending, three of them missed
        (
            "2026-01-01T10:00",
            "2026-01-01T11:07",
            ["11:00"],
            ["10:15", "10:30", "10:45", "11:00"],
            [],
        ),
        # a late wake-up with nothing missed: the pending tick runs under every policy
        ("2026-01-01T10:45", "2026-01-01T11:07", ["11:00"], ["11:00"], ["11:00"]),
        # woke exactly at the tick
        ("2026-01-01T10:45", "2026-01-01T11:00", ["11:00"], ["11:00"], ["11:00"]),
        # nothing new since the watermark
        ("2026-01-01T11:00", "2026-01-01T11:14", [], [], []),
        # the clock went back behind the watermark
        ("2026-01-01T12:00", "2026-01-01T11:07", [], [], []),
        # never evaluated: latest and all take the newest tick; none waits for 11:15
        (None, "2026-01-01T11:07", ["11:00"], ["11:00"], []),
    ],
)
def test_catch_up_policies(
    watermark: str | None, now: str, latest: list[str], all_: list[str], none: list[str]
) -> None:
    wm = z(watermark) if watermark else None
    at = z(now)

    def hm(items: list[str]) -> list[datetime]:
        return [z(f"2026-01-01T{x}") for x in items]

    assert due(EVERY_15M, wm, at, "latest") == hm(latest)
    assert due(EVERY_15M, wm, at, "all", 100) == hm(all_)
    assert due(EVERY_15M, wm, at, "none") == hm(none)
    assert next_tick(EVERY_15M, at) == z("2026-01-01T11:15")  # where a skip resumes


def test_all_is_bounded_to_the_newest_max() -> None:
    assert due(EVERY_15M, z("2026-01-01T10:00"), z("2026-01-01T11:07"), "all", 3) == zs(
        "2026-01-01T10:30", "2026-01-01T10:45", "2026-01-01T11:00"
    )
    assert due(EVERY_15M, z("2026-01-01T10:00"), z("2026-01-01T11:07"), "all", 1) == zs(
        "2026-01-01T11:00"
    )
    # six years down at 1s: 189 million missed ticks, the newest 10,000 returned
    c = Cadence(every=timedelta(seconds=1))
    got = due(c, z("2020-01-01T00:00"), z("2026-01-01T00:00:00.5"), "all", 10_000)
    assert len(got) == 10_000
    assert got[0] == z("2025-12-31T21:13:21") and got[-1] == z("2026-01-01T00:00")
    # a year down on a cron of every minute: five newest, walked back from now
    minutely = Cadence(cron="* * * * *", timezone="Europe/Berlin")
    assert due(minutely, z("2025-01-01T00:00"), z("2026-01-01T00:02:30"), "all", 5) == zs(
        "2025-12-31T23:58",
        "2025-12-31T23:59",
        "2026-01-01T00:00",
        "2026-01-01T00:01",
        "2026-01-01T00:02",
    )


def test_catch_up_across_the_autumn_repeat() -> None:
    wm, now = z("2026-10-24T23:00"), z("2026-10-25T02:30")
    expected = zs("2026-10-25T00:00", "2026-10-25T01:00", "2026-10-25T02:00")
    assert due(BERLIN_HOURLY, wm, now, "all", 100) == expected
    assert due(BERLIN_HOURLY, wm, now, "all", 2) == expected[1:]
    assert due(BERLIN_HOURLY, wm, now, "latest") == expected[2:]
    assert due(BERLIN_HOURLY, wm, now, "none") == []
    # 02:00 CET (01:00 UTC) right after 02:00 CEST: nothing missed, so none runs it
    assert due(BERLIN_HOURLY, z("2026-10-25T00:00"), z("2026-10-25T01:20"), "none") == zs(
        "2026-10-25T01:00"
    )


def test_bad_policy_and_bound_are_refused() -> None:
    with pytest.raises(ValueError, match="catch_up must be one of latest, all, none"):
        due(EVERY_15M, None, z("2026-01-01T11:07"), "some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        due(EVERY_15M, None, z("2026-01-01T11:07"), "all", 0)


def test_cadence_of_a_resolved_evaluation() -> None:
    assert cadence_of(EvaluationSpec()) == Cadence(every=timedelta(minutes=15))
    ev = EvaluationSpec(cron="0 6 * * 1-5", timezone="Europe/Berlin")
    assert cadence_of(ev) == Cadence(cron="0 6 * * 1-5", timezone="Europe/Berlin")
