"""``rulesengine daemon`` as a real subprocess: ticks every second over small CSV
logs, a real HTTP receiver on 127.0.0.1, real signals and a real kill -9.

Oracles are computed here by hand: ticks are whole seconds (``every: 1s``), so the
ticks between two watermarks are consecutive seconds; the appended log has 20 null
amounts beside 20 present ones, so its null rate is 20 / 40 = 0.5."""

from __future__ import annotations

import random
import re
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import run_cli
from tests.daemon.conftest import DaemonProc, Site, stop_proc
from tests.delivery.conftest import wait_until

pytestmark = pytest.mark.timeout(90)


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _consecutive(ats: list[str]) -> bool:
    """Every whole second from the first tick to the last, each once."""
    times = [_at(a) for a in ats]
    want = [times[0] + timedelta(seconds=i) for i in range(len(times))]
    return times == want and all(t.microsecond == 0 for t in times)


def test_ticks_advance_the_watermark_and_sigterm_exits_0(site: Site) -> None:
    d = site.start()
    site.wait_ticks(4)
    history = site.history()
    assert _consecutive([at for at, _, _ in history]), history
    # clean logs: no null amount, so the rate is 0 and the check is ok
    assert {(value, status) for _, value, status in history} == {(0.0, "ok")}
    mark = site.watermark()
    assert mark is not None and mark >= history[-1][0]
    assert stop_proc(d) < 5
    lines = d.lines()
    assert lines[0]["msg"] == "start" and lines[-1]["msg"] == "stop"
    assert {ln["level"] for ln in lines} == {"info"}
    ticks = [ln for ln in lines if ln["msg"] == "tick"]
    assert ticks and all(ln["model"] == "m1" and ln["counts"] == {"ok": 1} for ln in ticks)
    assert all(isinstance(ln["seconds"], float) for ln in ticks)
    # the watermark is the last tick logged
    last = datetime.fromisoformat(ticks[-1]["tick"])
    assert site.watermark() == last.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert site.receiver.requests == []


def test_an_appended_violating_log_notifies_exactly_once(site: Site) -> None:
    site.start()
    site.wait_ticks(2)
    assert site.receiver.requests == []
    site.append_nulls()
    [request] = site.receiver.wait_for(1, "/hook", timeout=20)
    assert "amount-nulls" in request.body.decode()
    site.wait_ticks(4)  # still firing, within the group's interval: nothing more
    assert len(site.receiver.requests) == 1
    values = [(v, s) for _, v, s in site.history()]
    # before the append 0 / 20, after it 20 / 40
    assert set(values) == {(0.0, "ok"), (0.5, "critical")}
    assert values == sorted(values)  # ok ticks first, then critical ones


def test_a_second_daemon_on_the_same_state_file_refuses(site: Site) -> None:
    first = site.start()
    site.wait_ticks(1)
    proc = run_cli("daemon", ".", cwd=site.root, timeout=30)
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.strip() == (
        f"error: another rulesengine daemon is already running on state file {site.state} "
        f"(it holds the lock {site.state}.lock); stop it first, or point `state:` in "
        "engine.yaml at another file"
    )
    assert first.proc.poll() is None  # the first one is untouched
    site.wait_ticks(1)
    stop_proc(first)
    # the lock goes with its holder: a new daemon starts
    second = site.start()
    site.wait_ticks(1)
    stop_proc(second)


def test_kill_9_then_restart_resumes_from_the_watermark(site: Site) -> None:
    first = site.start()
    site.wait_ticks(2)
    site.append_nulls()
    site.receiver.wait_for(1, "/hook", timeout=20)
    site.wait_ticks(2)
    first.signal(signal.SIGKILL)
    first.proc.wait(10)
    killed_at = site.watermark()
    assert killed_at is not None
    time.sleep(2.5)  # ticks fall due while nothing runs
    second = site.start()
    site.wait_ticks(5)
    stop_proc(second)
    ats = [at for at, _, _ in site.history()]
    # catch_up: all: the missed ticks are evaluated, none twice, none skipped
    assert _consecutive(ats), ats
    logged = first.ticks() + second.ticks()
    assert len(logged) == len(set(logged)), logged
    # the restart begins with the first tick after the committed watermark
    resumed = datetime.fromisoformat(second.ticks()[0])
    assert resumed == _at(killed_at) + timedelta(seconds=1)
    assert len(site.receiver.requests) == 1


def test_kill_9_at_random_points_loses_and_repeats_nothing(site: Site) -> None:
    """Five kill -9s at seeded random moments (mid-evaluation, mid-commit, asleep)
    after the incident's notification went out: every tick from the first to the
    last is recorded exactly once, and nothing is notified again."""
    rng = random.Random(20261207)
    procs = [site.start()]
    site.wait_ticks(1)
    site.append_nulls()
    site.receiver.wait_for(1, "/hook", timeout=20)
    wait_until(
        lambda: site.query("SELECT count(*) FROM outbox WHERE state='sent'") == [(1,)],
        10,
        "the notification marked sent",
    )
    for _ in range(5):
        time.sleep(rng.uniform(0.05, 1.5))
        procs[-1].signal(signal.SIGKILL)
        procs[-1].proc.wait(10)
        time.sleep(rng.uniform(0.0, 1.2))
        procs.append(site.start())
        site.wait_ticks(1)
    site.wait_ticks(2)
    stop_proc(procs[-1])
    ats = [at for at, _, _ in site.history()]
    assert _consecutive(ats), ats
    logged = [t for p in procs for t in p.ticks()]
    assert len(logged) == len(set(logged)), logged
    assert len(site.receiver.requests) == 1


TEXT_TICK = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 rulesengine: INFO: tick model=m1 "
    r"tick=(\S+) counts\.ok=1 queued=0 seconds=\d+\.\d+"
)


def test_text_logs_and_sigint(site: Site) -> None:
    d = site.start("text")
    site.wait_ticks(2)
    assert stop_proc(d, sig=signal.SIGINT) < 5
    lines = d.log.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(
        f"rulesengine: INFO: start models=1 state={site.state} listen=127.0.0.1:{d.port}"
    )
    assert lines[-1].endswith("rulesengine: INFO: stop")
    ticks = [TEXT_TICK.fullmatch(ln) for ln in lines[1:-1]]
    assert ticks and all(ticks), lines
    last = datetime.fromisoformat(ticks[-1].group(1))  # type: ignore[union-attr]
    assert site.watermark() == last.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_cache_bound_below_the_window_is_logged_at_each_tick(site: Site) -> None:
    """``executor.cache_mib: 1`` under a window whose entries take more (a p50
    over 180,000 distinct amounts in three files keeps their value counts, about
    0.5 MiB a file): each tick logs a warning naming the key, and the results
    still come."""
    rng = random.Random(11)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for f, name in enumerate("abc"):
        at = [start + timedelta(milliseconds=(f * 60_000 + i) * 6) for i in range(60_000)]
        rows = "".join(f"{t.isoformat()},{rng.random():.9f}\n" for t in at)
        (site.root / "data" / f"{name}.csv").write_text("ts,amount\n" + rows)
    model = (site.root / "models" / "m1.yaml").read_text()
    model += "metrics:\n  - {name: p50, source: requests, type: quantile, column: amount, q: 0.5,\n"
    model += "     warn: {above: 2}}\n"
    (site.root / "models" / "m1.yaml").write_text(model)
    engine = site.root / "engine.yaml"
    engine.write_text(engine.read_text() + "executor: {type: local, cache_mib: 1}\n")
    d = site.start()
    wait_until(lambda: len(_warnings(d)) >= 2, 60, "two ticks' cache warnings")
    stop_proc(d)
    for ln in _warnings(d):
        assert ln["level"] == "warning" and ln["model"] == "m1"
        assert "executor.cache_mib (1 MiB)" in ln["warning"], ln
    assert {status for _, _, status in site.history()} == {"ok"}


def _warnings(d: DaemonProc) -> list[dict]:
    return [ln for ln in d.lines() if ln["msg"] == "model warning"]
