"""The outbox: one row per target, retries with doubling backoff up to a cap, a
deadline, independent receivers, ``retry_all``, a run budget, and masked URLs.
Everything runs on a fake clock with a recording notifier; nothing touches the
network."""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alerting_harness import T0, RecordingNotifier, alerting_factory

from rulesengine.alerting.delivery import deliver, enqueue, target_id
from rulesengine.alerting.store import MIGRATIONS, Store
from rulesengine.masking import mask_url


@pytest.fixture
def alerting(tmp_path):
    yield from alerting_factory(tmp_path)


SLACK = "json://localhost/slack"
OPS_PASSWORD = "json://ops:hunter2@localhost/ops"
OPS_HEADER = "json://localhost/hook?+Authorization=Bearer%20s3cr3t"
FLAKY = "json://localhost/flaky"
SECRETS = ("hunter2", "s3cr3t")

ENGINE = f"""\
version: 1
state: state/state.db
receivers:
  slack: ["{SLACK}"]
  ops: ["{OPS_PASSWORD}", "{OPS_HEADER}"]
  flaky: ["{FLAKY}"]
routes:
  - {{receivers: [slack, ops]}}
delivery: {{timeout: 2s, backoff: 5s, max_backoff: 40s, deadline: 3m}}
"""

NULLS = """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount, critical: {above: 0.01}}
"""


class Clock:
    """A fake clock whose ``sleep`` moves it forward."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


@pytest.fixture
def h(alerting):
    return alerting(NULLS, ENGINE)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def notifier(clock):
    return RecordingNotifier(clock=clock)


def queue(h, receiver: str, now: datetime = T0, title: str | None = None) -> int:
    with h.store.transaction():
        return enqueue(
            h.store,
            h.config.engine,
            group_key="g",
            receiver=receiver,
            kind="firing",
            title=title or f"to {receiver}",
            body="body",
            now=now,
        )


def rows(h) -> list[dict]:
    return h.outbox()


def seconds(row: dict, key: str = "next_attempt_at") -> float:
    return (datetime.fromisoformat(row[key]) - T0).total_seconds()


def run(h, notifier, clock, **kw):
    return deliver(h.store, h.config.engine, notifier, clock=clock, sleep=clock.sleep, **kw)


# ---------------------------------------------------------------- the outbox


def test_process_queues_one_row_per_target_and_never_stores_urls(h):
    report = h.step(0, h.result("nulls", 0.02)).report  # delivers with its own notifier
    assert report.queued == 3
    outbox = rows(h)
    assert [(r["receiver"], r["kind"], r["state"]) for r in outbox] == [
        ("slack", "firing", "sent"),
        ("ops", "firing", "sent"),
        ("ops", "firing", "sent"),
    ]
    key = h.store.outbox_key
    assert [r["target"] for r in outbox] == [
        "hmac-sha256:" + hmac.new(key, u.encode(), hashlib.sha256).hexdigest()
        for u in (SLACK, OPS_PASSWORD, OPS_HEADER)
    ]
    assert outbox[0]["title"] == "[FIRING] fraud / nulls (critical)"
    assert seconds(outbox[0], "deadline") == 180
    # the notifier got the real URLs; the store holds hashes and masked labels only
    assert sorted(s.url for s in h.notifier.sent) == sorted([SLACK, OPS_PASSWORD, OPS_HEADER])
    assert {s.timeout for s in h.notifier.sent} == {2.0}
    dump = "\n".join(h.store.db.iterdump())
    for secret in SECRETS:
        assert secret not in dump
    assert "@localhost/" in outbox[1]["target_label"]
    assert "Authorization=***" in outbox[2]["target_label"]


def test_delivered_rows_are_not_sent_again(h, notifier, clock):
    queue(h, "slack")
    assert run(h, notifier, clock).sent == 1
    clock.advance(3600)
    again = run(h, notifier, clock, retry_all=True)
    assert (again.sent, again.pending, len(notifier.attempts)) == (0, 0, 1)


def test_backoff_doubles_up_to_max_backoff_then_the_deadline_gives_up(h, notifier, clock):
    notifier.failing["flaky"] = "the service refused or could not be reached"
    queue(h, "flaky")
    attempts_at = []
    while True:
        (row,) = rows(h)
        if row["state"] != "pending":
            break
        due = seconds(row)
        clock.now = T0 + timedelta(seconds=due - 1)  # a moment early: nothing happens
        assert run(h, notifier, clock).failed_attempts == 0
        clock.now = T0 + timedelta(seconds=due)
        report = run(h, notifier, clock)
        attempts_at.append(due)
    # backoff 5s doubling, capped at 40s; the next retry (195 s) would pass the 3m deadline
    assert attempts_at == [0, 5, 15, 35, 75, 115, 155]
    assert (row["state"], row["attempts"]) == ("failed", 7)
    assert row["last_error"] == "the service refused or could not be reached"
    assert (report.gave_up, report.failed_attempts, report.pending) == (1, 1, 0)


def test_a_budget_keeps_retrying_on_the_injected_clock(h, clock):
    class FailsTwice(RecordingNotifier):
        def send(self, url, title, body, timeout, notify_type="info"):
            self.failing = {"flaky": "boom"} if len(self.attempts) < 2 else {}
            return super().send(url, title, body, timeout, notify_type)

    notifier = FailsTwice(clock=clock)
    queue(h, "flaky")
    report = run(h, notifier, clock, budget=60)
    assert [(a.at - T0).total_seconds() for a in notifier.attempts] == [0, 5, 15]
    assert clock.slept == [5, 10]
    assert (report.sent, report.failed_attempts, report.pending) == (1, 2, 0)


def test_the_budget_is_spent_on_the_injected_clock(h, notifier, clock):
    notifier.failing["flaky"] = "boom"
    queue(h, "flaky")
    report = run(h, notifier, clock, budget=30)
    # attempts at 0, 5, 15 s; the next one (35 s) lies beyond the 30 s budget
    assert [(a.at - T0).total_seconds() for a in notifier.attempts] == [0, 5, 15]
    assert report.pending == 1


def test_without_a_budget_one_pass_only(h, notifier, clock):
    notifier.failing["flaky"] = "boom"
    queue(h, "flaky")
    report = run(h, notifier, clock)
    assert (report.failed_attempts, report.pending, clock.slept) == (1, 1, [])


def test_a_row_past_its_deadline_is_given_up_without_sending(h, notifier, clock):
    queue(h, "slack")
    clock.advance(4 * 60)  # deadline 3m; e.g. the daemon was down
    report = run(h, notifier, clock, retry_all=True)
    assert notifier.attempts == []
    assert (report.sent, report.gave_up) == (0, 1)
    assert rows(h)[0]["state"] == "failed"


# ---------------------------------------------------------------- independence


def test_one_failing_receiver_never_blocks_another(h, notifier, clock):
    notifier.failing["flaky"] = "boom"
    queue(h, "flaky")  # queued first
    queue(h, "slack")
    report = run(h, notifier, clock)
    assert (report.sent, report.failed_attempts, report.pending) == (1, 1, 1)
    assert [s.url for s in notifier.sent] == [SLACK]
    clock.advance(5)
    notifier.failing.clear()
    assert run(h, notifier, clock).sent == 1
    assert [s.url for s in notifier.sent] == [SLACK, FLAKY]  # slack not repeated


def test_one_failing_target_of_a_receiver_never_blocks_its_other_target(h, notifier, clock):
    notifier.failing["hunter2"] = "boom"
    queue(h, "ops")
    run(h, notifier, clock)
    assert [(r["state"], r["attempts"]) for r in rows(h)] == [("pending", 1), ("sent", 1)]


def test_retry_all_ignores_backoff(h, notifier, clock):
    notifier.failing["flaky"] = "boom"
    queue(h, "flaky")
    run(h, notifier, clock)  # next attempt at 5 s
    clock.advance(1)
    assert run(h, notifier, clock).failed_attempts == 0
    assert run(h, notifier, clock, retry_all=True).failed_attempts == 1
    (row,) = rows(h)
    assert (row["attempts"], seconds(row)) == (2, 1 + 10)  # the backoff keeps doubling


def test_a_receiver_or_url_that_left_the_config_is_dropped(h, notifier, clock, caplog):
    queue(h, "ops")
    queue(h, "flaky")
    text = (h.root / "engine.yaml").read_text()
    text = text.replace(f'  flaky: ["{FLAKY}"]\n', "").replace(
        OPS_PASSWORD, "json://localhost/ops2"
    )
    (h.root / "engine.yaml").write_text(text)
    h.restart()
    with caplog.at_level(logging.WARNING, logger="rulesengine.delivery"):
        report = run(h, notifier, clock)
    assert (report.sent, report.gave_up) == (1, 2)
    assert [s.url for s in notifier.sent] == [OPS_HEADER]
    assert [(r["receiver"], r["state"], r["last_error"]) for r in rows(h)] == [
        ("ops", "failed", "receiver or URL no longer in the config"),
        ("ops", "sent", None),
        ("flaky", "failed", "receiver or URL no longer in the config"),
    ]
    assert "left the config" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


# ---------------------------------------------------------------- masking


def test_errors_and_logs_show_masked_urls_only(h, notifier, clock, caplog):
    notifier.failing = {"hunter2": "refused", "s3cr3t": "timed out after 2s"}
    queue(h, "ops")
    with caplog.at_level(logging.WARNING, logger="rulesengine.delivery"):
        first = run(h, notifier, clock)
        clock.advance(10 * 60)  # past the deadline: the next failure gives up
        last = run(h, notifier, clock)
    assert last.gave_up == 2
    errors = first.errors + last.errors
    assert len(errors) == 2  # past the deadline, rows are given up without another try
    for line in errors + [r.getMessage() for r in caplog.records]:
        for secret in SECRETS:
            assert secret not in line
    assert any("@localhost/" in e and e.endswith("refused") for e in errors)
    assert any("Authorization=***" in e and "timed out" in e for e in errors)
    assert any(r.levelno == logging.ERROR and "giving up" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("url", "hidden", "shown"),
    [
        (OPS_PASSWORD, "hunter2", "@localhost/"),
        (OPS_HEADER, "s3cr3t", "Authorization=***"),
        ("json://localhost/x?+X-Api-Key=abcd1234", "abcd1234", "X-Api-Key=***"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ml", "TIiajkdnlazkcOXrIdevi7FQ", "slack://"),
        ("notascheme://user:pw123@host/x", "pw123", "notascheme://"),
    ],
)  # fmt: skip
def test_mask_url(url, hidden, shown):
    masked = mask_url(url)
    assert hidden not in masked and shown in masked


def test_target_id_is_keyed_never_a_bare_hash_of_the_url():
    key = bytes(range(32))
    expected = hmac.new(key, SLACK.encode(), hashlib.sha256).hexdigest()
    assert target_id(SLACK, key) == "hmac-sha256:" + expected
    assert target_id(SLACK, bytes(32)) != target_id(SLACK, key)
    assert hashlib.sha256(SLACK.encode()).hexdigest() not in target_id(SLACK, key)


# ---------------------------------------------------------------- fingerprints

GUESSES = ("password", "123456", "letmein", "hunter2", "admin")


def _store_bytes(h) -> bytes:
    """Every byte SQLite keeps for this store: the file, its WAL and shared memory."""
    path = Path(h.config.engine.state)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def _bare_hashes(url: str) -> list[str]:
    data = url.encode()
    return [hashlib.new(a, data).hexdigest() for a in ("sha256", "sha1", "md5", "sha512")]


def test_a_dictionary_of_hashed_guesses_matches_nothing_in_the_store(h, notifier, clock):
    h.step(0, h.result("nulls", 0.02))  # three rows, sent
    notifier.failing["hunter2"] = "down"
    queue(h, "ops")  # two more, one left pending
    run(h, notifier, clock)
    candidates = [f"json://ops:{w}@localhost/ops" for w in GUESSES] + [SLACK, OPS_HEADER]
    dump = "\n".join(h.store.db.iterdump())
    targets = [r["target"] for r in rows(h)]
    assert all(t.startswith("hmac-sha256:") for t in targets)
    h.store.close()
    raw = _store_bytes(h)
    for url in candidates:
        for digest in _bare_hashes(url):
            assert digest not in dump and digest.encode() not in raw
            assert not any(digest in t for t in targets)
    h.store = Store(h.config.engine.state)


def _legacy_store(path: Path, rows_: list[tuple[str, str, str]]) -> None:
    """A store as rulesengine wrote it before keyed fingerprints (schema 2), with
    outbox rows ``(receiver, url, state)`` holding the URL's bare SHA-256."""
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    for script in MIGRATIONS[:2]:
        con.executescript(script)
    con.execute("PRAGMA user_version=2")
    for receiver, url, state in rows_:
        con.execute(
            "INSERT INTO outbox (group_key, receiver, target, target_label, kind, title, body,"
            " created_at, deadline, next_attempt_at, state) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ("g", receiver, hashlib.sha256(url.encode()).hexdigest(), "label", "firing",
             f"old {receiver}", "body", T0.isoformat(), (T0 + timedelta(hours=1)).isoformat(),
             T0.isoformat(), state),
        )  # fmt: skip
    con.commit()
    con.close()


def test_rows_from_before_keyed_fingerprints_are_rekeyed_or_dropped(h, notifier, clock):
    path = Path(h.config.engine.state)
    gone = "json://ops:oldpassword@localhost/ops"  # rotated since it was queued
    h.store.close()
    _legacy_store(
        path, [("slack", SLACK, "pending"), ("ops", OPS_PASSWORD, "sent"), ("ops", gone, "pending")]
    )
    h.restart()  # migrates to the current schema
    assert [r["target"] == "" for r in rows(h)] == [False, True, False]  # finished: wiped
    report = run(h, notifier, clock)
    assert [s.url for s in notifier.sent] == [SLACK]
    assert (report.sent, report.gave_up) == (1, 1)
    after = rows(h)
    assert [(r["state"], r["last_error"]) for r in after] == [
        ("sent", None),
        ("sent", None),
        ("failed", "receiver or URL no longer in the config"),
    ]
    assert after[0]["target"] == target_id(SLACK, h.store.outbox_key)
    assert [r["target"] for r in after[1:]] == ["", ""]
    h.store.close()
    raw = _store_bytes(h)
    for url in (SLACK, OPS_PASSWORD, gone):
        assert hashlib.sha256(url.encode()).hexdigest().encode() not in raw
    h.store = Store(h.config.engine.state)


def test_two_stores_fingerprint_one_url_differently(h, tmp_path):
    other = Store(tmp_path / "other.db")
    try:
        assert target_id(SLACK, other.outbox_key) != target_id(SLACK, h.store.outbox_key)
    finally:
        other.close()
