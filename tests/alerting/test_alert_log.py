"""The alert log (store schema 10): state changes pruned with the history's
retention, each alert keeping its newest change before the cut-off (it tells the
state the alert was in then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from rulesengine.alerting.store import Store
from rulesengine.alerting.tracker import prune_alert_log
from rulesengine.history.record import stamp

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _log(store: Store, alert: str, day: int, state: str) -> None:
    store.db.execute(
        "INSERT INTO alert_log (alert_id, at, model, monitor, segment, col, state, severity)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (alert, stamp(T0 + timedelta(days=day)), "m", alert, "{}", "", state, ""),
    )


def test_prune_keeps_the_newest_change_before_the_cutoff(tmp_path: Path):
    with Store(tmp_path / "state.db") as store:
        with store.transaction():
            for day, state in ((0, "pending"), (1, "firing"), (2, "resolved"), (12, "pending")):
                _log(store, "a", day, state)
            _log(store, "b", 3, "pending")  # b's only change: kept, however old
            _log(store, "c", 11, "firing")  # after the cut-off: kept
            prune_alert_log(store, T0 + timedelta(days=10))
        kept = store.rows("SELECT alert_id, at, state FROM alert_log ORDER BY alert_id, at")
    assert [(r[0], r[1][:10], r[2]) for r in kept] == [
        ("a", "2026-11-03", "resolved"),
        ("a", "2026-11-13", "pending"),
        ("b", "2026-11-04", "pending"),
        ("c", "2026-11-12", "firing"),
    ]
