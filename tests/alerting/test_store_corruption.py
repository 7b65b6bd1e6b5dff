"""A state file that cannot be used is a clear error, never an internal one.

Each kind of damage seen in the field is made on a real store that a real
``rulesengine run --notify`` wrote, then the real command line runs again: it
must still print its results (a parseable JSON document), then name the file and
what to do on stderr, and exit 5. Below that, the store's own checks: a new
store is made whole in one step, a 0-byte file is never taken for a new store,
and a newer schema is refused.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from rulesengine.alerting.store import MIGRATIONS, Store
from rulesengine.alerting.tracker import load_group_logs
from rulesengine.errors import StoreError
from tests.delivery.conftest import HttpReceiver, Scenario, free_port, iso

ADVICE = "Move it aside to start with a fresh store (alerts will be sent again)"


@pytest.fixture(scope="module")
def written_store(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """A config directory whose store a real ``run --notify`` wrote: alerts,
    groups and sent outbox rows (the run is made once and copied per test)."""
    root = tmp_path_factory.mktemp("written")
    scenario = Scenario(root)
    receiver = HttpReceiver(free_port())
    try:
        scenario.engine({"hook": [f"json://127.0.0.1:{receiver.port}/hook"]})
        scenario.run(scenario.at1)
        receiver.wait_for(1)
    finally:
        receiver.close()
    assert [r["state"] for r in scenario.outbox()] == ["sent"]
    plain = scenario.cli("run", ".", "--at", iso(scenario.at1), "--format", "json")
    scenario.baseline = json.loads(plain.stdout)  # type: ignore[attr-defined]
    return scenario


@pytest.fixture
def scenario(written_store: Scenario, tmp_path: Path) -> Scenario:
    root = tmp_path / "config"
    shutil.copytree(written_store.root, root)
    copy = Scenario.__new__(Scenario)
    copy.__dict__.update(written_store.__dict__, root=root, env={})
    assert not list(copy.state_dir.glob("*-wal")), "the run closed its store cleanly"
    return copy


def _truncate(db: Path) -> None:
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)


def _garbage_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"this is not SQLite at all" * 4)


def _random_pages(db: Path) -> None:
    pages = db.stat().st_size // 4096
    rnd = random.Random(9)
    with db.open("r+b") as f:
        for page in rnd.sample(range(1, pages), min(3, pages - 1)):  # page 0 holds the header
            f.seek(page * 4096)
            f.write(rnd.randbytes(4096))


def _directory(db: Path) -> None:
    db.unlink()
    db.mkdir()
    (db / "something").write_text("x")


def _sql(statement: str) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        con = sqlite3.connect(db)
        con.execute(statement)
        con.commit()
        con.close()

    return damage


def _empty(db: Path) -> None:
    db.write_bytes(b"")


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, ADVICE),
    "garbage-header": (_garbage_header, ADVICE),
    "random-pages": (_random_pages, ADVICE),
    "directory": (_directory, ADVICE),
    "dropped-table": (_sql("DROP TABLE groups"), ADVICE),
    "dropped-column": (_sql("ALTER TABLE outbox DROP COLUMN lease_until"), ADVICE),
    "empty-file": (_empty, ADVICE),
    "newer-schema": (
        _sql("PRAGMA user_version=999"),
        f"written by a newer rulesengine (schema 999, this one knows {len(MIGRATIONS)}): "
        "upgrade rulesengine or point `state:` at another file",
    ),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_run_prints_its_results_then_names_the_damaged_store(scenario: Scenario, kind: str):
    damage, advice = DAMAGE[kind]
    db = scenario.state_dir / "state.db"
    damage(db)
    proc = scenario.cli("run", ".", "--notify", "--at", iso(scenario.at1), "--format", "json")
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    # the evaluation needs no store: stdout is the same document a run without --notify prints
    assert json.loads(proc.stdout) == scenario.baseline  # type: ignore[attr-defined]
    assert json.loads(proc.stdout)["models"][0]["results"]
    assert f"state file {db}" in proc.stderr
    assert advice in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("error: state file")
    if kind == "empty-file":  # never silently recreated: alerts would all be sent again
        assert db.stat().st_size == 0


@pytest.mark.parametrize("kind", ["garbage-header", "dropped-table", "newer-schema"])
def test_alerts_and_silences_name_the_damaged_store(scenario: Scenario, kind: str):
    damage, advice = DAMAGE[kind]
    db = scenario.state_dir / "state.db"
    damage(db)
    for args in (["alerts", "-c", "."], ["silence", "list", "-c", "."]):
        proc = scenario.cli(*args)
        assert proc.returncode == 5, (args, proc.stdout, proc.stderr)
        assert f"state file {db}" in proc.stderr and advice in proc.stderr
        assert proc.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_an_unreadable_store_asks_to_check_permissions(scenario: Scenario):
    db = scenario.state_dir / "state.db"
    db.chmod(0)
    try:
        proc = scenario.cli("run", ".", "--notify", "--at", iso(scenario.at1), "--format", "json")
    finally:
        db.chmod(0o600)
    assert proc.returncode == 5, proc.stderr
    assert json.loads(proc.stdout)["models"]
    assert f"state file {db} cannot be opened" in proc.stderr
    assert "check the permissions" in proc.stderr


def test_the_damaged_run_still_exits_5_when_results_are_violations(scenario: Scenario):
    """Exit 5 outranks 1 (violations): the store error must not pass unseen."""
    _garbage_header(scenario.state_dir / "state.db")
    proc = scenario.cli("run", ".", "--notify", "--at", iso(scenario.at1))
    assert proc.returncode == 5
    assert "critical" in proc.stdout  # the text table is printed too


# ------------------------------------------------------------------ the store itself


def test_a_new_store_is_complete_owner_only_and_leaves_no_temporary_file(tmp_path: Path):
    path = tmp_path / "deep" / "state.db"
    with Store(path) as store:
        assert store.row("PRAGMA user_version")[0] == len(MIGRATIONS)
        assert len(store.outbox_key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.db"]
    with Store(path) as again:  # reopening keeps the key
        assert again.outbox_key == Store(path).outbox_key


def test_each_store_gets_its_own_key(tmp_path: Path):
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        assert a.outbox_key != b.outbox_key


def test_an_existing_empty_file_is_refused_not_recreated(tmp_path: Path):
    path = tmp_path / "state.db"
    path.touch()
    with pytest.raises(StoreError, match="is empty \\(0 bytes\\): it was probably truncated"):
        Store(path)
    assert path.stat().st_size == 0


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path):
    path = tmp_path / "state.db"
    Store(path).close()
    con = sqlite3.connect(path)
    newer = len(MIGRATIONS) + 1
    con.execute(f"PRAGMA user_version={newer}")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"schema {newer}, this one knows {len(MIGRATIONS)}"):
        Store(path)
    assert path.read_bytes() == before


def test_an_older_store_is_migrated_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:1]:
        con.executescript(script)
    con.execute("PRAGMA user_version=1")
    con.execute(
        "INSERT INTO silences VALUES ('s1', '[]', '2026-01-01', '2027-01-01', 'me', 'why', 'now')"
    )
    con.commit()
    con.close()
    with Store(path) as store:
        assert store.row("PRAGMA user_version")[0] == len(MIGRATIONS)
        assert [r["id"] for r in store.rows("SELECT id FROM silences")] == ["s1"]
        cols = {r["name"] for r in store.rows("PRAGMA table_info(alerts)")}
        assert "clear_since" in cols


def test_a_schema_3_notification_log_becomes_rows(tmp_path: Path):
    """Schema 4 turns each group's "id|severity" strings into (group, alert,
    severity) rows; groups and alerts with them keep their meaning."""
    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        con.executescript(script)
    con.execute("INSERT INTO meta VALUES ('outbox_key', ?)", (b"k" * 32,))
    con.execute("PRAGMA user_version=3")
    groups = [
        ("0|{}", '["a1|critical", "a2|warn", "a3|"]', "2026-11-27T15:00:00+00:00"),
        ("1|{}", "[]", None),
    ]
    for key, firing, last in groups:
        con.execute(
            "INSERT INTO groups (key, receiver, labels, first_seen, last_notified_at, firing,"
            " resolved) VALUES (?, 'slack', '{}', '2026-11-27T14:00:00+00:00', ?, ?, '[\"x\"]')",
            (key, last, firing),
        )
    con.commit()
    con.close()
    with Store(path) as store:
        assert store.row("PRAGMA user_version")[0] == len(MIGRATIONS)
        rows = store.rows("SELECT * FROM notified ORDER BY group_key, alert_id")
        assert [tuple(r) for r in rows] == [
            ("0|{}", "a1", "critical"),
            ("0|{}", "a2", "warn"),
            ("0|{}", "a3", ""),
        ]
        cols = {r["name"] for r in store.rows("PRAGMA table_info(groups)")}
        assert cols == {"key", "receiver", "labels", "first_seen", "last_notified_at"}
        logs = load_group_logs(store)
        assert logs["0|{}"].notified == {"a1": "critical", "a2": "warn", "a3": ""}
        assert logs["1|{}"].notified == {} and logs["1|{}"].last_notified_at is None
        with store.transaction():  # a forgotten group takes its log rows with it
            store.db.execute("DELETE FROM groups WHERE key='0|{}'")
        assert store.rows("SELECT * FROM notified") == []


def test_quick_check_findings_are_one_line(tmp_path: Path):
    path = tmp_path / "state.db"
    with Store(path) as store, store.transaction():
        store.db.executemany(
            "INSERT INTO silences VALUES (?, '[]', 'a', 'b', 'c', ?, 'd')",
            [(str(i), "x" * 500) for i in range(200)],
        )
    _random_pages(path)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def _overwrite_root_page(db: Path, table: str) -> None:
    con = sqlite3.connect(db)
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()
    con.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * 4096)
        f.write(random.Random(root).randbytes(4096))


def test_damage_found_only_while_running_still_returns_the_results(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
):
    """A large store is not quick-checked on open (its cost grows with the file):
    a damaged page met later is a StoreError too, and the results survive it."""
    from rulesengine.runner import run_once
    from rulesengine.spec.loader import load
    from tests.alerting.alerting_harness import RecordingNotifier

    db = scenario.state_dir / "state.db"
    _overwrite_root_page(db, "alerts")
    monkeypatch.setattr("rulesengine.alerting.store.QUICK_CHECK_MAX_BYTES", 0)
    config = load([scenario.root])
    outcome = run_once(config, scenario.at1, notify=True, notifier=RecordingNotifier())
    assert outcome.store_error is not None
    assert f"state file {db} is corrupt or unreadable" in str(outcome.store_error)
    assert ADVICE in str(outcome.store_error)
    assert outcome.models and outcome.models[0].results
    assert outcome.process is None and outcome.delivery is None
