"""``rulesengine daemon`` as a real subprocess: ticks every second over small CSV
logs, a real HTTP receiver on 127.0.0.1, real signals and a real kill -9.

Oracles are computed here by hand: ticks are whole seconds (``every: 1s``), so the
ticks between two watermarks are consecutive seconds; the appended log has 20 null
amounts beside 20 present ones, so its null rate is 20 / 40 = 0.5."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.delivery.conftest import HttpReceiver, free_port, wait_until

pytestmark = pytest.mark.timeout(90)

MODEL = """\
version: 1
model: m1
sources:
  requests: {path: "data/*.csv", timestamp: ts}
evaluation: {every: 1s, window: 1h, min_rows: 1, catch_up: all}
checks:
  - {name: amount-nulls, source: requests, type: null_rate, column: amount,
     critical: {above: 0.05}}
"""

ENGINE = """\
version: 1
state: state/state.db
receivers:
  hook: {{urls: ["json://127.0.0.1:{port}/hook"]}}
routes: [{{match: {{model: m1}}, receivers: [hook]}}]
grouping: {{by: [model], wait: 0s, interval: 5m, repeat: 4h}}
delivery: {{timeout: 3s, backoff: 1s, run_budget: 2s}}
"""


def _csv(path: Path, start: datetime, amounts: list[str]) -> None:
    lines = ["ts,amount"]
    lines += [f"{(start + timedelta(seconds=i)).isoformat()},{a}" for i, a in enumerate(amounts)]
    # written beside, then renamed: the daemon never reads a half-written file
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.rename(path)


class DaemonProc:
    """One ``rulesengine daemon . --log-format json``; stderr goes to a file so a
    full pipe never blocks it."""

    def __init__(self, root: Path, n: int, fmt: str = "json") -> None:
        self.log = root / f"daemon-{n}.log"
        self.port = free_port()
        listen = f"127.0.0.1:{self.port}"
        with open(self.log, "w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rulesengine.cli", "daemon", ".", "--log-format", fmt]
                + ["--listen", listen],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text(encoding="utf-8")
        # the last line may be half-written while the process runs
        return [json.loads(ln) for ln in text.splitlines() if ln.endswith("}")]

    def ticks(self) -> list[str]:
        return [ln["tick"] for ln in self.lines() if ln["msg"] == "tick"]

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


class Site:
    """A config in a temporary folder: clean logs from 30 minutes ago, and the
    receiver the engine notifies."""

    def __init__(self, root: Path, receiver: HttpReceiver) -> None:
        self.root = root
        self.receiver = receiver
        self.procs: list[DaemonProc] = []
        (root / "data").mkdir()
        (root / "models").mkdir()
        now = datetime.now(UTC).replace(microsecond=0)
        _csv(root / "data" / "a.csv", now - timedelta(minutes=30), ["10.5"] * 20)
        (root / "models" / "m1.yaml").write_text(MODEL, encoding="utf-8")
        (root / "engine.yaml").write_text(ENGINE.format(port=receiver.port), encoding="utf-8")
        self.state = root / "state" / "state.db"

    def start(self, fmt: str = "json") -> DaemonProc:
        proc = DaemonProc(self.root, len(self.procs), fmt)
        self.procs.append(proc)
        return proc

    def append_nulls(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        _csv(self.root / "data" / "b.csv", now - timedelta(minutes=20), [""] * 20)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.state.exists():
            return []
        db = sqlite3.connect(self.state, timeout=5)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the tables are being created
            return []
        finally:
            db.close()

    def history(self) -> list[tuple[str, float, str]]:
        return self.query("SELECT at, value, status FROM history WHERE model='m1' ORDER BY at")

    def watermark(self) -> str | None:
        rows = self.query("SELECT tick FROM watermarks WHERE model='m1'")
        return rows[0][0] if rows else None

    def wait_ticks(self, n: int, timeout: float = 20) -> None:
        """Until ``n`` more ticks are in the history."""
        target = len(self.history()) + n
        wait_until(lambda: len(self.history()) >= target, timeout, f"{n} more tick(s)")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    receiver = HttpReceiver(free_port())
    s = Site(tmp_path, receiver)
    yield s
    for p in s.procs:
        p.kill()
    receiver.close()


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _consecutive(ats: list[str]) -> bool:
    """Every whole second from the first tick to the last, each once."""
    times = [_at(a) for a in ats]
    want = [times[0] + timedelta(seconds=i) for i in range(len(times))]
    return times == want and all(t.microsecond == 0 for t in times)


def _stop(proc: DaemonProc, bound: float = 5, sig: int = signal.SIGTERM) -> float:
    started = time.monotonic()
    proc.signal(sig)
    rc = proc.proc.wait(bound)
    assert rc == 0, proc.log.read_text()
    return time.monotonic() - started


def test_ticks_advance_the_watermark_and_sigterm_exits_0(site: Site) -> None:
    d = site.start()
    site.wait_ticks(4)
    history = site.history()
    assert _consecutive([at for at, _, _ in history]), history
    # clean logs: no null amount, so the rate is 0 and the check is ok
    assert {(value, status) for _, value, status in history} == {(0.0, "ok")}
    mark = site.watermark()
    assert mark is not None and mark >= history[-1][0]
    assert _stop(d) < 5
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
    _stop(first)
    # the lock goes with its holder: a new daemon starts
    second = site.start()
    site.wait_ticks(1)
    _stop(second)


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
    _stop(second)
    ats = [at for at, _, _ in site.history()]
    # catch_up: all: the missed ticks are evaluated, none twice, none skipped
    assert _consecutive(ats), ats
    logged = first.ticks() + second.ticks()
    assert len(logged) == len(set(logged)), logged
    # the restart begins with the first tick after the committed watermark
    resumed = datetime.fromisoformat(second.ticks()[0])
    assert resumed == _at(killed_at) + timedelta(seconds=1)
    assert len(site.receiver.requests) == 1


TEXT_TICK = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 rulesengine: INFO: tick model=m1 "
    r"tick=(\S+) counts\.ok=1 queued=0 seconds=\d+\.\d+"
)


def test_text_logs_and_sigint(site: Site) -> None:
    d = site.start("text")
    site.wait_ticks(2)
    assert _stop(d, sig=signal.SIGINT) < 5
    lines = d.log.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(
        f"rulesengine: INFO: start models=1 state={site.state} listen=127.0.0.1:{d.port}"
    )
    assert lines[-1].endswith("rulesengine: INFO: stop")
    ticks = [TEXT_TICK.fullmatch(ln) for ln in lines[1:-1]]
    assert ticks and all(ticks), lines
    last = datetime.fromisoformat(ticks[-1].group(1))  # type: ignore[union-attr]
    assert site.watermark() == last.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
