"""kill -9 at random moments while a real ``rulesengine run --notify`` delivers.

An outbox full of work, a slow loopback receiver, and one process after another
killed with SIGKILL after a random delay (seeded, so a failure replays); then a
normal run. Nothing may be lost, and each kill may cost at most one duplicate
(a process holds one row at a time). Leases: a dead owner's lease on this host is
free at once; a lease held elsewhere is honoured until it ends.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rulesengine.alerting.store import now_text
from tests.delivery.conftest import Scenario
from tests.delivery.test_concurrency import RECEIVERS, SlowReceiver, prefill


@pytest.fixture
def slow() -> Iterator[SlowReceiver]:
    r = SlowReceiver(delay=0.3)
    yield r
    r.close()


def engine_for(scenario: Scenario, slow: SlowReceiver) -> None:
    scenario.engine(
        {name: [slow.url(name)] for name in RECEIVERS},
        delivery={"timeout": "2s", "run_budget": "1s"},
    )


@pytest.mark.timeout(90)
def test_sigkill_at_random_points_loses_nothing_and_duplicates_at_most_once_per_kill(
    scenario: Scenario, slow: SlowReceiver
):
    engine_for(scenario, slow)
    titles = prefill(scenario, 18)
    rnd = random.Random(20261203)
    kills = 0
    deadline = time.monotonic() + 45
    for _ in range(5):
        proc = scenario.start_run(scenario.at1).proc
        time.sleep(rnd.uniform(0.8, 3.0))  # imports take about a second; then it delivers
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(30)
        if time.monotonic() > deadline:
            break
    assert kills >= 3, "most runs must die mid-way for this test to mean anything"
    done = scenario.run(scenario.at1)  # the killed runs' leases are free: their owners died
    assert "Traceback" not in done.stderr
    outbox = scenario.outbox()
    assert {r["state"] for r in outbox} == {"sent"}, outbox
    received = Counter(title for _, title in slow.counts().elements())
    expected = Counter({t: 1 for t in titles})
    firing = {r["title"] for r in outbox} - set(titles)
    assert len(firing) == 1  # the runs' own notification, queued once for every receiver
    expected[firing.pop()] = len(RECEIVERS)
    assert set(received) == set(expected)  # nothing lost, nothing invented
    duplicates = sum(received[t] - n for t, n in expected.items())
    assert all(received[t] >= n for t, n in expected.items())
    assert duplicates <= kills, (duplicates, kills, received)


def _lease(scenario: Scenario, owner: str, until: datetime) -> None:
    con = sqlite3.connect(scenario.state_dir / "state.db")
    con.execute("UPDATE outbox SET lease_owner=?, lease_until=?", (owner, now_text(until)))
    con.commit()
    con.close()


def test_a_lease_held_elsewhere_is_honoured_until_it_ends(scenario: Scenario, slow: SlowReceiver):
    engine_for(scenario, slow)
    (title,) = prefill(scenario, 1)
    # a process on another host (sharing the file): its liveness cannot be checked here
    ends = datetime.now(UTC) + timedelta(seconds=6)
    _lease(scenario, "elsewhere|pid:[1]|4242|1|abc", ends)
    first = scenario.run(scenario.at1)
    assert "being sent by another process" in first.stderr, first.stderr
    assert title not in {t for _, t in slow.counts()}
    assert scenario.outbox()[0]["state"] == "pending"
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.1)
    scenario.run(scenario.at1)
    assert [t for _, t in slow.counts() if t == title] == [title]
    assert {r["state"] for r in scenario.outbox()} == {"sent"}


def test_a_lease_of_a_process_that_died_here_is_free_at_once(
    scenario: Scenario, slow: SlowReceiver
):
    engine_for(scenario, slow)
    (title,) = prefill(scenario, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from rulesengine.alerting.delivery import _lease_owner

    host, ns, _, _, nonce = _lease_owner().split("|")
    _lease(scenario, f"{host}|{ns}|{dead.pid}|1|{nonce}", datetime.now(UTC) + timedelta(hours=1))
    scenario.run(scenario.at1)
    assert [t for _, t in slow.counts() if t == title] == [title]
