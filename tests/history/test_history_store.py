"""The history table in the store: the migration from schema 4, retention on a
real store file, and history committing together with the alert state."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rulesengine.alerting.store import MIGRATIONS, Store
from rulesengine.engine.results import ModelResults, Result
from rulesengine.history.query import read_history
from rulesengine.history.record import record
from tests.history.conftest import AT1, Shop

T0 = datetime(2026, 11, 27, 10, tzinfo=UTC)


def test_a_schema_4_store_gets_history_and_keeps_its_rows(shop: Shop):
    shop.db.parent.mkdir()
    con = sqlite3.connect(shop.db)
    for script in MIGRATIONS[:4]:
        con.executescript(script)
    con.execute("INSERT INTO meta VALUES ('outbox_key', ?)", (b"k" * 32,))
    con.execute(
        "INSERT INTO silences VALUES ('s1', '[]', '2026-01-01', '2027-01-01', 'me', 'why', 'now')"
    )
    con.execute("PRAGMA user_version=4")
    con.commit()
    con.close()
    shop.run(AT1)
    con = sqlite3.connect(shop.db)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert con.execute("SELECT id, comment FROM silences").fetchall() == [("s1", "why")]
        assert con.execute("SELECT meta.value FROM meta").fetchall() == [(b"k" * 32,)]
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"history_model_at", "history_at"} <= indexes
    finally:
        con.close()
    assert shop.count("history") == 4 and shop.count("alerts") == 4


def test_history_and_alert_state_roll_back_together(shop: Shop):
    """A failure after the history insert, inside the transaction (a trigger on
    the alerts table that fires only once history rows exist), leaves neither."""
    Store(shop.db).close()
    con = sqlite3.connect(shop.db)
    con.execute(
        "CREATE TRIGGER injected BEFORE INSERT ON alerts"
        " WHEN (SELECT count(*) FROM history) > 0"
        " BEGIN SELECT RAISE(ABORT, 'injected failure after the history insert'); END"
    )
    con.commit()
    con.close()
    failed = shop.cli("run", ".", "--at", AT1, "--notify")
    assert failed.returncode != 0
    assert "injected failure after the history insert" in failed.stderr
    assert (shop.count("history"), shop.count("alerts")) == (0, 0)
    con = sqlite3.connect(shop.db)
    con.execute("DROP TRIGGER injected")
    con.commit()
    con.close()
    shop.run(AT1)
    assert (shop.count("history"), shop.count("alerts")) == (4, 4)


def _results(at: datetime, value: float) -> ModelResults:
    r = Result("volume", "check", "row_count", "requests", "ok", value=value)
    return ModelResults("shop", at, (r,))


def test_retention_counts_back_from_the_tick(tmp_path: Path):
    """Ticks at 0, 10, 20, 29, 30 and 31 days; a 30-day retention applied by the
    31-day write keeps exactly the rows at or after day 1."""
    days = [0, 10, 20, 29, 30, 31]
    with Store(tmp_path / "state.db") as store:
        for day in days:
            with store.transaction():
                record(
                    store,
                    [_results(T0 + timedelta(days=day), float(day))],
                    T0 + timedelta(days=day),
                )
        kept = [r.value for r in read_history(store, "shop")]
    assert kept == [10.0, 20.0, 29.0, 30.0, 31.0]


def test_a_short_retention_and_a_value_that_is_not_finite(tmp_path: Path):
    with Store(tmp_path / "state.db") as store:
        with store.transaction():
            record(store, [_results(T0, float("nan"))], T0, timedelta(hours=1))
            record(
                store,
                [_results(T0 + timedelta(minutes=59), 1.0)],
                T0 + timedelta(minutes=59),
                timedelta(hours=1),
            )
        assert [(r.at, r.value) for r in read_history(store, "shop")] == [
            (T0, None),
            (T0 + timedelta(minutes=59), 1.0),
        ]
        with store.transaction():
            record(
                store,
                [_results(T0 + timedelta(hours=1, seconds=1), 2.0)],
                T0 + timedelta(hours=1, seconds=1),
                timedelta(hours=1),
            )
        assert [r.value for r in read_history(store, "shop")] == [1.0, 2.0]
