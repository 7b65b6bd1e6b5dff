"""demand-forecast under the live demo (``examples/demo.py --live``), tick by tick,
on exactly the files the generator has written when the daemon reads them.

The generator runs with a fake clock (its ``datetime.now`` and its stop event's
``wait``), so minutes of live demo take a second or two. A daemon started when the
generator prints ``backfill …`` evaluates its first tick (the newest one at or before
that moment, as on a fresh state file) at once, and every later tick T at the moment
T, before anything the generator writes at that same moment (the worse of the two
orders a race can take). The backfill itself takes one cadence of fake time.

demand-forecast's forecasts arrive in a burst once per demo day, and the burst
starts on a tick (02:00 demo time, a multiple of ``every: 1h``): any forecast still
missing from disk at the tick that should see it takes a share of one region's
forecasts out of the current window, while the week-earlier one is complete. Then
``forecast-volume-wow`` dips (by 25-33 % in the overall and north segments) and at
300x ``forecast-volume`` goes critical in the north (5 forecasts instead of 80).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import examples.demo as demo
from rulesengine.engine.evaluate import evaluate
from rulesengine.spec.loader import load

S = 1_000_000  # µs per second


class FakeClock:
    """The generator's clock and stop event: ``wait`` moves the time on, evaluating
    the daemon's ticks that fall due meanwhile on the files as they are."""

    def __init__(self, start_us: int, end_us: int, every_us: int, evaluate_at: Any) -> None:
        self.us, self.end, self.every = start_us, end_us, every_us
        self.evaluate_at = evaluate_at
        self.daemon_started = False

    # threading.Event's interface, as live() and _backfill() use it
    def is_set(self) -> bool:
        return False

    def wait(self, seconds: float) -> bool:
        until = min(self.us + round(seconds * S), self.end)
        if self.daemon_started:
            tick = (self.us // self.every + 1) * self.every
            while tick <= until:
                self.evaluate_at(tick)
                tick += self.every
        self.us = until
        return self.us >= self.end

    def start_daemon(self) -> None:
        """A fresh daemon evaluates the newest tick at or before now, then each next."""
        self.daemon_started = True
        self.evaluate_at(self.us // self.every * self.every)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("speed", "interval"), [(300, 1.0), (60, 5.0)])
def test_demand_forecast_stays_ok_at_the_seam_and_at_every_burst(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speed: int, interval: float
):
    day, every = demo.DAY_US // speed, demo.HOUR_US // speed
    # a demo day's forecasts start at 02:00 demo time: on a tick (every: 1h)
    burst = (1_800_000_000 * S // day + 1) * day + 2 * demo.HOUR_US // speed
    assert burst % every == 0
    # the backfill takes one cadence and ends half a cadence past the burst's tick:
    # the daemon's first tick is that burst; then one demo day, to the next burst
    t0 = burst - every // 2
    results: dict[int, list[Any]] = {}
    config: list[Any] = []

    def evaluate_at(tick: int) -> None:
        if not config:
            config.append(load((str(tmp_path / "models" / "demand-forecast.yaml"),)))
        at = datetime.fromtimestamp(tick / S, UTC)
        (model,) = evaluate(config[0], at)
        results[tick] = model.results

    clock = FakeClock(t0, burst + day + every // 2, every, evaluate_at)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FakeDatetime:
            return cls.fromtimestamp(clock.us / S, tz)

    backfill = demo._backfill

    def slow_backfill(*args: Any, **kwargs: Any) -> Any:
        clock.us += every  # the backfill takes one cadence
        return backfill(*args, **kwargs)

    def echo(line: str) -> None:
        if line.startswith("backfill"):
            clock.start_daemon()

    monkeypatch.setattr(demo, "datetime", FakeDatetime)
    monkeypatch.setattr(demo, "_backfill", slow_backfill)
    # only demand-forecast is evaluated: the other models' logs are not written
    monkeypatch.setattr(demo._Live, "fraud", lambda *a: 0)
    monkeypatch.setattr(demo._Live, "assistant", lambda *a: 0)
    batches = demo.live(tmp_path, interval=interval, speed=speed, kinds=(), stop=clock, echo=echo)

    assert batches > 0 and min(results) == burst and max(results) == burst + day
    assert len(results) == day // every + 1
    bad = []
    for tick, rows in sorted(results.items()):
        for r in rows:
            seg = ",".join(f"{k}={v}" for k, v in r.segment.items()) or "(all)"
            if r.status != "ok":
                bad.append(f"{demo._iso(tick)} {r.monitor} {seg}: {r.status} {r.value}")
            elif r.monitor == "forecast-volume-wow" and r.rows != r.details["previous_rows"]:
                # both windows hold one demo day of forecasts, cut at the same phase
                bad.append(
                    f"{demo._iso(tick)} {r.monitor} {seg}: {r.rows} forecasts vs "
                    f"{r.details['previous_rows']} a week earlier (change {r.value:+.3f})"
                )
    assert not bad, "\n".join(bad)
