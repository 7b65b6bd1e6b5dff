"""The Apprise notify type follows the severity, seen by a real HTTP receiver on
loopback (``json://`` posts a JSON body with ``"type"``): critical → failure,
warn → warning, resolved → success; rows queued before schema 7 still send
(as ``info``)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from alerting_harness import T0, alerting_factory, at

from rulesengine.alerting.delivery import AppriseNotifier, deliver, notify_type, target_id
from rulesengine.alerting.store import MIGRATIONS, Store
from rulesengine.alerting.tracker import process
from rulesengine.engine.results import ModelResults
from tests.delivery.conftest import HttpReceiver, free_port

# warn above 0.1, critical above 0.5: one monitor gives both severities
NULLS = """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount,
     warn: {above: 0.1}, critical: {above: 0.5}}
  - {name: volume, source: requests, type: row_count, warn: {below: 100}}
"""


def engine(url: str) -> str:
    return f"""\
version: 1
state: state/state.db
receivers:
  hook: ["{url}"]
routes:
  - {{receivers: [hook]}}
grouping: {{by: [model, monitor], wait: 0s, interval: 1m, repeat: 4h}}
delivery: {{timeout: 5s, backoff: 1s, deadline: 1h}}
"""


@pytest.fixture
def receiver():
    r = HttpReceiver(free_port())
    yield r
    r.close()


@pytest.fixture
def alerting(tmp_path):
    yield from alerting_factory(tmp_path)


def step(h, minutes: float, *results) -> None:
    """Track ``results`` at T0 + minutes and deliver through Apprise for real."""
    now = at(minutes)
    stamped = [r.__class__(**{**r.__dict__, "window_end": now}) for r in results]
    process(h.store, h.config, [ModelResults(h.model, now, tuple(stamped))], now, flush=True)
    report = deliver(h.store, h.config.engine, AppriseNotifier(), clock=lambda: now)
    assert report.errors == [], report.errors


def types(receiver: HttpReceiver, n: int) -> list[tuple[str, str]]:
    got = receiver.wait_for(n, "/hook", timeout=20)
    return [(r.payload["type"], r.payload["title"].split(" ", 1)[0]) for r in got]


def test_the_receiver_gets_failure_warning_and_success(alerting, receiver):
    h = alerting(NULLS, engine(f"json://127.0.0.1:{receiver.port}/hook"))
    step(h, 0, h.result("nulls", 0.3))  # warn fires
    assert [t for t, _ in types(receiver, 1)] == ["warning"]
    step(h, 5, h.result("nulls", 0.9))  # escalates to critical: news after interval
    assert [t for t, _ in types(receiver, 2)] == ["warning", "failure"]
    step(h, 10, h.result("nulls", 0.0))  # resolves
    got = types(receiver, 3)
    assert [t for t, _ in got] == ["warning", "failure", "success"]
    assert got[2][1] == "[RESOLVED]"
    assert [r["severity"] for r in h.outbox()] == ["warn", "critical", ""]


def test_a_group_with_a_critical_alert_is_a_failure(alerting, receiver):
    url = f"json://127.0.0.1:{receiver.port}/hook"
    h = alerting(NULLS, engine(url).replace("by: [model, monitor]", "by: [model]"))
    step(h, 0, h.result("nulls", 0.9), h.result("volume", 5))  # critical + warn, one group
    assert [t for t, _ in types(receiver, 1)] == ["failure"]


def test_notify_type_table():
    assert notify_type("firing", "critical") == "failure"
    assert notify_type("firing", "warn") == "warning"
    assert notify_type("resolved", "") == "success"
    assert notify_type("resolved", "critical") == "success"
    assert notify_type("firing", "") == "info"
    assert notify_type("firing", None) == "info"


def test_a_row_queued_before_schema_7_still_sends_as_info(tmp_path, receiver):
    url = f"json://127.0.0.1:{receiver.port}/hook"
    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:6]:
        con.executescript(script)
    key = b"k" * 32
    con.execute("INSERT INTO meta (key, value) VALUES ('outbox_key', ?)", (key,))
    con.execute("PRAGMA user_version=6")
    con.execute(
        "INSERT INTO outbox (group_key, receiver, target, target_label, kind, title, body,"
        " created_at, deadline, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        ("g", "hook", target_id(url, key), "hook", "firing", "[FIRING] old", "body",
         T0.isoformat(), (T0 + timedelta(hours=1)).isoformat(), T0.isoformat()),
    )  # fmt: skip
    con.commit()
    con.close()
    (tmp_path / "engine.yaml").write_text(engine(url).replace("state/state.db", str(path)))
    from rulesengine.spec.loader import load

    config = load([Path(tmp_path / "engine.yaml")], env={})
    with Store(path) as store:  # migrated to the newest schema, through 7 and 8
        assert store.row("PRAGMA user_version")[0] == len(MIGRATIONS)
        report = deliver(store, config.engine, AppriseNotifier(), clock=lambda: T0)
    assert report.sent == 1
    assert types(receiver, 1) == [("info", "[FIRING]")]
