"""``change`` thresholds decided from the result history, end to end.

Values are recorded at known ticks through the real ``run --notify`` command (or
the daemon's ``record_tick``) over small CSV logs, then a later run's change is
worked out by hand. Model ``rec`` (window 1d, every 1d, so the default tolerance
is 1d): recall = tp / (tp + fn) per segment, from rows whose label is 1.

* 2026-11-20 (the tick at 12:00): v1 4 of 5 positives predicted (0.8), v2 5 of 5
  (1.0); overall 9 of 10 (0.9). Positives (the KPI ``sum(label)``): 10.
* 2026-11-27: v1 7 of 10 (0.7), v2 4 of 4 (1.0); overall 11 of 14 (0.785714…).
  Positives: 14.

Relative changes 20th → 27th: v1 (0.7 - 0.8) / 0.8 = -0.125, v2 0, overall
(11/14 - 0.9) / 0.9 = -0.126984126984…; absolute: v1 -0.1, overall -0.114285714286.
All the data rows lie between 01:00 and 11:30 of their day, so every run at
11:59:59..13:00:01 of the 27th sees the same window.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rulesengine.alerting.store import Store
from rulesengine.daemon.tick import evaluate_tick, record_tick
from rulesengine.history.query import read_history
from rulesengine.spec.loader import load
from tests.conftest import run_cli

D1 = "2026-11-20T12:00:00Z"
D8 = "2026-11-27T12:00:00Z"
OVERALL_8 = 11 / 14


def _day(day: int, version: str, positives: int, hits: int, start: int) -> list[str]:
    """``positives`` rows with label 1 (the first ``hits`` predicted), then two
    negatives, one an hour from ``start`` o'clock on 2026-11-``day``."""
    rows = [
        f"2026-11-{day:02d}T{start + i:02d}:00:00Z,{version},{int(i < hits)},1"
        for i in range(positives)
    ]
    rows += [f"2026-11-{day:02d}T{start + i:02d}:30:00Z,{version},0,0" for i in range(2)]
    return rows


def logs(v1_day1: tuple[int, int] = (5, 4)) -> str:
    rows = ["ts,version,pred,label"]
    rows += _day(20, "v1", *v1_day1, start=1) + _day(20, "v2", 5, 5, start=1)
    rows += _day(27, "v1", 10, 7, start=1) + _day(27, "v2", 4, 4, start=1)
    return "\n".join(rows) + "\n"


def model(recall_thresholds: str) -> str:
    return f"""\
version: 1
model: rec
sources:
  requests: {{path: data/requests.csv, timestamp: ts}}
evaluation: {{every: 1d, window: 1d}}
metrics:
  - name: recall
    source: requests
    type: recall
    prediction: pred
    target: label
    segment_by: [version]
{recall_thresholds}
kpis:
  - name: positives
    source: requests
    expr: "sum(label)"
    warn: {{change: {{offset: 7d, mode: absolute, above: 3}}}}
"""


RELATIVE = "    critical: {below: 0.5}\n    warn: {change: {offset: 7d, below: -0.10}}"


class Rec:
    def __init__(self, root: Path, thresholds: str = RELATIVE, data: str | None = None) -> None:
        self.root = root
        (root / "data").mkdir(parents=True)
        (root / "models").mkdir()
        (root / "data" / "requests.csv").write_text(data or logs(), encoding="utf-8")
        (root / "engine.yaml").write_text("version: 1\nstate: state/state.db\n", encoding="utf-8")
        self.spec(thresholds)

    def spec(self, thresholds: str) -> None:
        (self.root / "models" / "rec.yaml").write_text(model(thresholds), encoding="utf-8")

    @property
    def db(self) -> Path:
        return self.root / "state" / "state.db"

    def run(self, at: str, *extra: str) -> tuple[int, dict[tuple[str, str], dict]]:
        """(exit code, results by (monitor, version or '')) of a JSON run."""
        proc = run_cli("run", ".", "--at", at, "--format", "json", *extra, cwd=self.root)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1), proc.stderr
        (m,) = json.loads(proc.stdout)["models"]
        return proc.returncode, {
            (r["monitor"], r["segment"].get("version", "")): r for r in m["results"]
        }


@pytest.fixture
def rec(tmp_path: Path) -> Rec:
    return Rec(tmp_path / "config")


def _change(r: dict) -> dict:
    return r["details"]["change"]["warn"]


def test_relative_change_against_the_recorded_value(rec: Rec):
    code, first = rec.run(D1, "--notify")
    assert code == 0
    # nothing recorded before the first tick: the change part cannot be decided
    assert {k: r["status"] for k, r in first.items()} == {
        ("recall", ""): "insufficient_data",
        ("recall", "v1"): "insufficient_data",
        ("recall", "v2"): "insufficient_data",
        ("positives", ""): "insufficient_data",
    }
    assert first[("recall", "v1")]["details"]["reason"] == (
        "no value recorded near 2026-11-13T12:00:00Z (offset 1w, tolerance 1d) in history"
    )
    code, got = rec.run(D8, "--notify")
    assert code == 0  # warn is below --fail-on critical
    v1, v2, overall = got[("recall", "v1")], got[("recall", "v2")], got[("recall", "")]
    assert (v1["value"], v1["status"]) == (0.7, "warn")
    assert _change(v1) == {
        "offset": "1w",
        "mode": "relative",
        "baseline_at": D1,
        "baseline": 0.8,
        "change": -0.125,
    }
    assert (v2["value"], v2["status"], _change(v2)["change"]) == (1.0, "ok", 0.0)
    assert overall["status"] == "warn"
    assert overall["value"] == pytest.approx(OVERALL_8, rel=1e-11)
    assert _change(overall)["baseline"] == 0.9
    assert _change(overall)["change"] == pytest.approx((OVERALL_8 - 0.9) / 0.9, rel=1e-11)
    assert "reason" not in v1["details"]
    assert v1["threshold"] == {
        "warn": {"change": {"offset": "1w", "mode": "relative", "tolerance": "1d", "below": -0.1}},
        "critical": {"below": 0.5},
    }
    # an absolute change of a KPI: 14 - 10 = 4 positives, above 3
    kpi = got[("positives", "")]
    assert (kpi["value"], kpi["status"], _change(kpi)["change"]) == (14.0, "warn", 4.0)
    # the history keeps the values (not the changes) with the decided statuses
    with Store(rec.db) as store:
        rows = read_history(
            store, "rec", monitor="recall", since=datetime(2026, 11, 27, tzinfo=UTC)
        )
    assert [(dict(r.segment), r.value, r.status) for r in rows] == [
        ({}, pytest.approx(OVERALL_8, rel=1e-11), "warn"),
        ({"version": "v1"}, 0.7, "warn"),
        ({"version": "v2"}, 1.0, "ok"),
    ]


def test_text_table_names_the_change_condition(rec: Rec):
    rec.run(D1, "--notify")
    proc = run_cli("run", ".", "--at", D8, cwd=rec.root)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "version=v1" in ln)
    assert line.split()[:5] == ["WARN", "rec", "recall", "version=v1", "0.7"]
    assert "warn relative change over 1w below -0.1" in line


@pytest.mark.parametrize(
    ("condition", "v1", "overall"),
    [
        # 0.7 - 0.8 = -0.1 exactly (as reported): not below -0.1, but at or below
        ("below: -0.10", "ok", "warn"),
        ("at_or_below: -0.10", "warn", "warn"),
        # overall 0.785714285714 - 0.9 = -0.114285714286
        ("below: -0.115", "ok", "ok"),
        ("below: -0.114", "ok", "warn"),
    ],
)
def test_absolute_change_edges(rec: Rec, condition: str, v1: str, overall: str):
    rec.run(D1, "--notify")
    rec.spec(f"    warn: {{change: {{offset: 7d, mode: absolute, {condition}}}}}")
    _, got = rec.run(D8)
    assert (got[("recall", "v1")]["status"], got[("recall", "")]["status"]) == (v1, overall)
    assert _change(got[("recall", "v1")])["change"] == -0.1
    assert _change(got[("recall", "")])["change"] == -0.114285714286
    assert got[("recall", "v2")]["status"] == "ok"


def test_no_state_file_is_insufficient_data_and_is_not_created(rec: Rec):
    _, got = rec.run(D8)
    state = rec.root / "state" / "state.db"
    why = (
        "no value recorded near 2026-11-20T12:00:00Z (offset 1w, tolerance 1d) in history: "
        f"state file {state} does not exist yet (history is written by "
        "`rulesengine run --notify` and by the daemon)"
    )
    for key in (("recall", ""), ("recall", "v1"), ("recall", "v2")):
        assert got[key]["status"] == "insufficient_data"
        assert got[key]["details"]["reason"] == why
        assert got[key]["details"]["change"] == {
            "warn": {"offset": "1w", "mode": "relative", "reason": why}
        }
    # the state file is never created (the caches beside it are: partials, profiles)
    assert not state.exists()
    assert sorted(p.name for p in (rec.root / "state").iterdir()) == ["partials"]


def test_a_fixed_critical_still_decides_without_history(tmp_path: Path):
    # the 27th's v1 has 2 of 5 positives predicted: recall 0.4 < 0.5 is critical
    # whatever the change; overall (2 + 4) / (5 + 4) = 0.666… has only the change left
    rows = ["ts,version,pred,label", *_day(27, "v1", 5, 2, 1), *_day(27, "v2", 4, 4, 1)]
    rec = Rec(tmp_path / "config", data="\n".join(rows) + "\n")
    code, got = rec.run(D8)
    assert code == 1
    v1, overall = got[("recall", "v1")], got[("recall", "")]
    assert (v1["value"], v1["status"]) == (0.4, "critical")
    assert "reason" not in v1["details"]  # decided: the change's own reason stays in change
    assert _change(v1)["reason"].startswith("no value recorded near 2026-11-20T12:00:00Z")
    assert overall["status"] == "insufficient_data"
    assert overall["value"] == pytest.approx(6 / 9, rel=1e-11)
    assert got[("recall", "v2")]["status"] == "insufficient_data"


def test_relative_change_from_zero_is_undefined(tmp_path: Path):
    # on the 20th v1 predicted none of its 5 positives: recall 0
    rec = Rec(tmp_path / "config", data=logs(v1_day1=(5, 0)))
    rec.run(D1, "--notify")
    _, got = rec.run(D8)
    v1 = got[("recall", "v1")]
    assert v1["status"] == "insufficient_data"
    assert v1["details"]["reason"] == (
        "relative change is undefined: the value recorded at 2026-11-20T12:00:00Z (offset 1w) is 0"
    )
    assert _change(v1)["baseline"] == 0.0
    # absolute, the change is 0.7 - 0 = 0.7: defined, and not below -0.1
    rec.spec("    warn: {change: {offset: 7d, mode: absolute, below: -0.1}}")
    _, got = rec.run(D8)
    assert (got[("recall", "v1")]["status"], _change(got[("recall", "v1")])["change"]) == (
        "ok",
        0.7,
    )


@pytest.mark.parametrize(
    ("at", "found"),
    [
        ("2026-11-27T12:00:00Z", True),  # at - 7d is the recorded tick itself
        ("2026-11-27T13:00:00Z", True),  # the tick is exactly the tolerance (1h) older
        ("2026-11-27T13:00:01Z", False),  # one second older than the tolerance allows
        ("2026-11-27T11:59:59Z", False),  # the only row lies after at - 7d
    ],
)
def test_tolerance_edges(rec: Rec, at: str, found: bool):
    rec.run(D1, "--notify")
    rec.spec("    warn: {change: {offset: 7d, tolerance: 1h, below: -0.10}}")
    _, got = rec.run(at)
    v1 = got[("recall", "v1")]
    assert v1["value"] == 0.7  # the same window for each of these times
    if found:
        assert (v1["status"], _change(v1)["baseline_at"]) == ("warn", D1)
    else:
        assert v1["status"] == "insufficient_data"
        assert v1["details"]["reason"].endswith("(offset 1w, tolerance 1h) in history")


def test_the_newest_value_within_the_tolerance_is_the_baseline(rec: Rec):
    # at 03:00 on the 20th v1's window holds its positives of 01:00-03:00, all
    # predicted: recall 1.0; at 12:00 it is 0.8 (see the module docstring)
    rec.run("2026-11-20T03:00:00Z", "--notify")
    rec.run(D1, "--notify")
    _, got = rec.run(D8)  # [11-19T12:00, 11-20T12:00] holds both rows: the newest wins
    v1 = got[("recall", "v1")]
    assert (_change(v1)["baseline_at"], _change(v1)["baseline"]) == (D1, 0.8)
    # at 11:00 on the 27th (the same window's rows), only the 03:00 row is at or
    # before 11-20T11:00: (0.7 - 1.0) / 1.0 = -0.3
    _, got = rec.run("2026-11-27T11:00:00Z")
    v1 = got[("recall", "v1")]
    assert (v1["value"], v1["status"]) == (0.7, "warn")
    assert _change(v1)["baseline_at"] == "2026-11-20T03:00:00Z"
    assert (_change(v1)["baseline"], _change(v1)["change"]) == (1.0, -0.3)


def test_run_without_notify_reads_history_and_writes_nothing(rec: Rec):
    rec.run(D1, "--notify")
    before = rec.db.read_bytes()
    listing = sorted(os.listdir(rec.db.parent))
    _, got = rec.run(D8)
    assert got[("recall", "v1")]["status"] == "warn"
    assert rec.db.read_bytes() == before
    assert sorted(os.listdir(rec.db.parent)) == listing
    db = sqlite3.connect(rec.db)
    try:
        assert (
            db.execute("SELECT count(*) FROM history WHERE at LIKE '2026-11-27%'").fetchone()[0]
            == 0
        )
    finally:
        db.close()


def test_an_unreadable_state_file_is_insufficient_data(rec: Rec):
    rec.db.parent.mkdir()
    rec.db.write_bytes(b"this is not a database" * 100)
    _, got = rec.run(D8)
    v1 = got[("recall", "v1")]
    assert v1["status"] == "insufficient_data"
    assert f"state file {rec.db} cannot be read (file is not a database)" in v1["details"]["reason"]
    assert rec.db.read_bytes() == b"this is not a database" * 100


def test_daemon_tick_decides_the_change_and_records_the_value(rec: Rec):
    config = load([rec.root], {})
    (spec,) = config.models
    t1, t8 = (datetime.fromisoformat(t) for t in (D1, D8))
    with Store(rec.db) as store:
        first = record_tick(store, config, spec, t1, evaluate_tick(config, spec, t1), t1)
        assert first.counts == {"insufficient_data": 4}
        report = record_tick(store, config, spec, t8, evaluate_tick(config, spec, t8), t8)
        assert report.results is not None
        by_key = {(r.monitor, r.segment.get("version", "")): r for r in report.results.results}
        assert by_key[("recall", "v1")].status == "warn"
        assert by_key[("recall", "v1")].details["change"]["warn"]["change"] == -0.125
        assert by_key[("positives", "")].status == "warn"
        assert report.counts == {"ok": 1, "warn": 3}
        rows = read_history(store, "rec", since=t8)
    assert [(r.monitor, dict(r.segment), r.value, r.status) for r in rows] == [
        ("positives", {}, 14.0, "warn"),
        ("recall", {}, pytest.approx(OVERALL_8, rel=1e-11), "warn"),
        ("recall", {"version": "v1"}, 0.7, "warn"),
        ("recall", {"version": "v2"}, 1.0, "ok"),
    ]


def test_alert_text_names_the_change_condition():
    from rulesengine.alerting.templates import _threshold_text

    threshold = {
        "warn": {
            "change": {"offset": "1w", "mode": "absolute", "tolerance": "1d", "at_or_below": -0.1}
        },
        "critical": {"below": 0.5},
    }
    assert _threshold_text(threshold) == (
        "warn absolute change over 1w at or below -0.1; critical below 0.5"
    )
