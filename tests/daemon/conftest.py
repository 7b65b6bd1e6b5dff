"""The daemon's test harness: a config in a temporary folder (clean CSV logs, a
loopback receiver), ``rulesengine daemon`` as a real subprocess with JSON logs
and its own --listen port, and helpers to wait on the state file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.conftest import HttpReceiver, free_port, wait_until

DAEMON = (sys.executable, "-m", "rulesengine.cli", "daemon")

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

    def __init__(self, root: Path, n: int, fmt: str = "json", args: tuple[str, ...] = ()) -> None:
        self.log = root / f"daemon-{n}.log"
        self.port = free_port()
        listen = f"127.0.0.1:{self.port}"
        with open(self.log, "w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                [*DAEMON, ".", "--log-format", fmt, "--listen", listen, *args],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        """(status, body) of GET ``path`` on the daemon's HTTP endpoint."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def serving(self) -> bool:
        try:
            return self.get("/healthz", timeout=1)[0] == 200
        except OSError:
            return False

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

    def start(self, fmt: str = "json", *args: str) -> DaemonProc:
        proc = DaemonProc(self.root, len(self.procs), fmt, args)
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


def stop_proc(proc: DaemonProc, bound: float = 5, sig: int = signal.SIGTERM) -> float:
    started = time.monotonic()
    proc.signal(sig)
    rc = proc.proc.wait(bound)
    assert rc == 0, proc.log.read_text()
    return time.monotonic() - started
