"""One state file, several processes at once.

Four real ``rulesengine run --notify`` processes start together against one store
and a slow loopback receiver; every notification must arrive exactly once, with a
fresh store (which they also race to create) and with an outbox that already holds
work. Then the bare race: many processes and threads opening a brand-new store, or
upgrading an old one, at the same instant never fail and never migrate twice.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rulesengine.alerting.delivery import enqueue
from rulesengine.alerting.store import MIGRATIONS, Store
from rulesengine.spec.loader import load
from tests.delivery.conftest import HOST, Scenario, free_port, iso

ROOT = Path(__file__).resolve().parents[2]


class SlowReceiver:
    """Answers every POST after ``delay`` seconds and records each one on arrival
    (so a request whose sender is killed while waiting still counts as received)."""

    def __init__(self, delay: float) -> None:
        self.port = free_port()
        self.received: list[tuple[str, str]] = []  # (path, title)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append((self.path, json.loads(body)["title"]))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, self.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"json://{HOST}:{self.port}/{path}"

    def counts(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def slow() -> Iterator[SlowReceiver]:
    r = SlowReceiver(delay=0.5)
    yield r
    r.close()


def start_runs(scenario: Scenario, at: datetime, n: int) -> list[subprocess.Popen[str]]:
    cmd = [sys.executable, "-m", "rulesengine.cli", "run", ".", "--notify", "--at", iso(at)]
    env = {**os.environ, **scenario.env}
    return [
        subprocess.Popen(
            cmd,
            cwd=scenario.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


def finish(procs: list[subprocess.Popen[str]], timeout: float = 90) -> list[str]:
    errs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode in (0, 1), (p.returncode, err)
        assert "Traceback" not in err and "internal error" not in err, err
        assert json.loads(out) if out.startswith("{") else "fraud-detector" in out
        errs.append(err)
    return errs


RECEIVERS = ("r0", "r1", "r2")


def engine_for(scenario: Scenario, slow: SlowReceiver) -> None:
    scenario.engine(
        {name: [slow.url(name)] for name in RECEIVERS},
        delivery={"timeout": "3s", "run_budget": "2s"},
    )


@pytest.mark.parametrize("trial", range(3))
def test_four_runs_on_a_fresh_store_send_each_notification_once(
    scenario: Scenario, slow: SlowReceiver, trial: int
):
    engine_for(scenario, slow)
    assert not scenario.state_dir.exists()  # they also race to create the store
    finish(start_runs(scenario, scenario.at1, 4))
    counts = slow.counts()
    assert sorted(path for path, _ in counts) == [f"/{r}" for r in RECEIVERS]
    assert set(counts.values()) == {1}, counts
    outbox = scenario.outbox()
    assert [r["state"] for r in outbox] == ["sent"] * len(RECEIVERS)
    assert all(r["lease_owner"] is None and r["lease_until"] is None for r in outbox)


def prefill(scenario: Scenario, n: int) -> list[str]:
    """``n`` notifications already in the outbox (as an earlier run that could not
    deliver leaves them), spread over the receivers; their titles."""
    config = load([scenario.root], env=scenario.env)
    titles = [f"left over {i:02d}" for i in range(n)]
    with Store(config.engine.state) as store, store.transaction():
        for i, title in enumerate(titles):
            enqueue(
                store,
                config.engine,
                group_key="g",
                receiver=RECEIVERS[i % len(RECEIVERS)],
                kind="firing",
                title=title,
                body="body",
                now=scenario.at1,
            )
    return titles


@pytest.mark.parametrize("trial", range(2))
def test_four_runs_share_a_prefilled_outbox_without_a_duplicate(
    scenario: Scenario, slow: SlowReceiver, trial: int
):
    engine_for(scenario, slow)
    titles = prefill(scenario, 12)
    errs = finish(start_runs(scenario, scenario.at1, 4))
    counts = slow.counts()
    received = Counter(title for _, title in counts.elements())
    for title in titles:
        assert received[title] == 1, (title, counts)
    firing = [t for t in received if not t.startswith("left over")]
    assert len(firing) == 1 and received[firing[0]] == len(RECEIVERS), counts
    assert sum(counts.values()) == len(titles) + len(RECEIVERS)
    assert {r["state"] for r in scenario.outbox()} == {"sent"}
    # and each process reports only what it sent itself
    sent = [int(re.search(r"notifications: \d+ queued, (\d+) sent", e)[1]) for e in errs]
    assert sum(sent) == len(titles) + len(RECEIVERS), errs


# ------------------------------------------------------------------ opening races

OPEN_AT = """
import sys, time
from rulesengine.alerting.store import Store
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
Store(sys.argv[1]).close()
print("ok")
"""


def open_together(path: Path, n: int) -> None:
    """``n`` processes open ``path`` at the same instant (after their imports)."""
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, str(path), repr(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert (p.returncode, out.strip()) == (0, "ok"), err
        assert err == ""


def check_complete(path: Path) -> None:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert con.execute("SELECT count(*) FROM meta").fetchone()[0] == 1  # one key, once
        cols = [r[1] for r in con.execute("PRAGMA table_info(alerts)")]
        assert cols.count("clear_since") == 1
        assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        con.close()
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".new")]
    assert leftovers == []


@pytest.mark.parametrize("trial", range(3))
def test_processes_creating_a_fresh_store_at_once_never_fail(tmp_path: Path, trial: int):
    path = tmp_path / "state" / "state.db"
    open_together(path, 8)
    check_complete(path)


def test_processes_upgrading_an_old_store_at_once_migrate_it_once(tmp_path: Path):
    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(MIGRATIONS[0])
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    open_together(path, 8)
    check_complete(path)


def test_threads_creating_a_fresh_store_at_once_never_fail(tmp_path: Path):
    path = tmp_path / "state.db"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            Store(path).close()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    check_complete(path)
