"""The loop's own decisions, in process with a fake clock: which ticks it
evaluates under each catch_up policy, and how long it sleeps. The store, config
and logs are real (files in a temporary folder); the expected ticks are written
out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rulesengine.alerting.store import Store
from rulesengine.daemon.loop import MAX_SLEEP, Daemon
from rulesengine.spec.loader import load

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)  # 30 s after a whole minute


def _config(root: Path, catch_up: str, every: str = "1m") -> Path:
    (root / "data").mkdir(exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    rows = ["ts,amount"] + [f"2026-03-01T11:{m:02d}:00+00:00,{m}.5" for m in range(60)]
    (root / "data" / "a.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "models" / "m1.yaml").write_text(
        "version: 1\nmodel: m1\nsources:\n  requests: {path: data/a.csv, timestamp: ts}\n"
        f"evaluation: {{every: {every}, window: 1h, catch_up: {catch_up}, catch_up_max: 3}}\n"
        "checks:\n  - {name: nulls, source: requests, type: null_rate, column: amount,\n"
        "     critical: {above: 0.05}}\n",
        encoding="utf-8",
    )
    (root / "engine.yaml").write_text("version: 1\nstate: state.db\n", encoding="utf-8")
    return root


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _hist(store: Store) -> list[str]:
    return [r["at"][11:19] for r in store.rows("SELECT at FROM history ORDER BY at")]


@pytest.mark.parametrize(
    ("catch_up", "first", "after_gap"),
    [
        # latest: at once, then only the newest after the gap
        ("latest", ["12:00:00"], ["12:04:00"]),
        # all: every missed tick, at most catch_up_max (3) of them
        ("all", ["12:00:00"], ["12:02:00", "12:03:00", "12:04:00"]),
        # none: waits for the first tick, skips what was missed
        ("none", [], []),
    ],
)
def test_ticks_evaluated_per_catch_up_policy(
    tmp_path: Path, catch_up: str, first: list[str], after_gap: list[str]
) -> None:
    config = load((str(_config(tmp_path, catch_up)),))
    clock = Clock(T0)
    with Store(tmp_path / "state.db") as store:
        d = Daemon(config, store, clock=clock)
        d.run_due()
        assert _hist(store) == first
        clock.now = T0 + timedelta(minutes=1)  # 12:01:30
        d.run_due()
        assert _hist(store) == [*first, "12:01:00"]
        clock.now = T0 + timedelta(minutes=4)  # 12:04:30: 12:02 to 12:04 were missed
        d.run_due()
        assert _hist(store) == [*first, "12:01:00", *after_gap]
        clock.now = T0 + timedelta(minutes=5)  # 12:05:30: `none` is back on the schedule
        d.run_due()
        assert _hist(store)[-1] == "12:05:00"
        row = store.row("SELECT tick FROM watermarks WHERE model='m1'")
        assert row is not None and row["tick"] == "2026-03-01T12:05:00.000000Z"


def test_a_restart_resumes_from_the_stored_watermark(tmp_path: Path) -> None:
    config = load((str(_config(tmp_path, "all")),))
    clock = Clock(T0)
    with Store(tmp_path / "state.db") as store:
        Daemon(config, store, clock=clock).run_due()
    clock.now = T0 + timedelta(minutes=2)
    with Store(tmp_path / "state.db") as store:
        Daemon(config, store, clock=clock).run_due()
        assert _hist(store) == ["12:00:00", "12:01:00", "12:02:00"]


def test_it_sleeps_until_the_next_tick(tmp_path: Path) -> None:
    config = load((str(_config(tmp_path, "latest")),))
    clock = Clock(T0)
    with Store(tmp_path / "state.db") as store:
        d = Daemon(config, store, clock=clock)
        assert d.seconds_to_next() == 0.0  # 12:00:00 is due and not evaluated
        d.run_due()
        assert d.seconds_to_next() == 30.0  # 12:00:30 -> 12:01:00
        clock.now = T0 + timedelta(seconds=29, microseconds=500_000)
        assert d.seconds_to_next() == 0.5


def test_a_far_tick_is_slept_towards_in_bounded_steps(tmp_path: Path) -> None:
    config = load((str(_config(tmp_path, "latest", every="1d")),))
    clock = Clock(T0)
    with Store(tmp_path / "state.db") as store:
        d = Daemon(config, store, clock=clock)
        d.run_due()  # today's tick, 00:00
        assert _hist(store) == ["00:00:00"]
        assert d.seconds_to_next() == MAX_SLEEP


def _missed(d: Daemon) -> float | None:
    return d.metrics.registry.get_sample_value("rulesengine_ticks_missed_total", {"model": "m1"})


@pytest.mark.parametrize(
    ("catch_up", "evaluated", "missed"),
    [
        # the watermark is 12:01 (`none`: 12:02); a restart at 12:04:30
        ("latest", ["12:04:00"], 2),  # 12:02 and 12:03 skipped
        ("all", ["12:02:00", "12:03:00", "12:04:00"], 0),  # within catch_up_max (3)
        ("none", [], 2),  # 12:03 and 12:04 skipped; the next tick is 12:05
    ],
)
def test_ticks_passed_over_count_as_missed(
    tmp_path: Path, catch_up: str, evaluated: list[str], missed: int
) -> None:
    config = load((str(_config(tmp_path, catch_up)),))
    clock = Clock(T0 + timedelta(seconds=30))  # 12:01:00 sharp
    with Store(tmp_path / "state.db") as store:
        first = Daemon(config, store, clock=clock)
        first.run_due()
        if catch_up == "none":  # a first start waits for its next tick, 12:02
            clock.now = T0 + timedelta(seconds=90)
            first.run_due()
        before = _hist(store)
    clock.now = T0 + timedelta(minutes=4)  # 12:04:30
    with Store(tmp_path / "state.db") as store:
        d = Daemon(config, store, clock=clock)
        d.run_due()
        assert _hist(store)[len(before) :] == evaluated
        assert _missed(d) == missed
        d.run_due()  # nothing new is due: nothing more is counted
        assert _missed(d) == missed
