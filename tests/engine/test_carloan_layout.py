"""The car-loan layout a new user met (issue 12): predictions in daily hive folders
(``dt=YYYY-MM-DD``), labels that arrive 28 to 37 days after the prediction, a
strict schema check, and accuracy on the joined labels, through the real CLI.

Oracles by hand: row i of day d has prediction ``(i + d) % 2`` and label
``i % 3 == 0``, and its label lands ``28 + (i % 10)`` days later. So the numbers
below are counted in plain Python over the same rows, not by the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.timeout(120)

DAY0 = datetime(2026, 9, 1, tzinfo=UTC)
DAYS, PER_DAY = 8, 20
CLI = (sys.executable, "-m", "rulesengine.cli")

MODEL = """\
version: 1
model: car-loan
sources:
  requests: {path: "requests/**/*.parquet", timestamp: ts}
  labels: {path: "labels/*.parquet", timestamp: labeled_at}
evaluation: {window: 8d, min_rows: 1}
checks:
  - name: request-schema
    source: requests
    type: schema
    window: 60d
    strict: true
    expected_columns: {request_id: string, ts: datetime, car_value: float, repaid_pred: integer}
metrics:
  - name: accuracy
    source: requests
    type: accuracy
    prediction: repaid_pred
    target: repaid
    join: {source: labels, on: request_id}
    delay: DELAY
    min_label_coverage: 0.5
    critical: {below: 0.2}
"""


def _rows() -> list[dict[str, object]]:
    out = []
    for d in range(DAYS):
        for i in range(PER_DAY):
            ts = DAY0 + timedelta(days=d, minutes=30 * i)
            out.append(
                {
                    "request_id": f"r{d}-{i}",
                    "ts": ts,
                    "car_value": 10_000.0 + 500 * i,
                    "repaid_pred": (i + d) % 2,
                    "repaid": int(i % 3 == 0),
                    "labeled_at": ts + timedelta(days=28 + i % 10),
                    "day": d,
                }
            )
    return out


def _site(root: Path, delay: str) -> list[dict[str, object]]:
    rows = _rows()
    frame = pl.DataFrame(rows)
    for d in range(DAYS):
        folder = root / "requests" / f"dt={(DAY0 + timedelta(days=d)).date().isoformat()}"
        folder.mkdir(parents=True)
        part = frame.filter(pl.col("day") == d)
        part.select("request_id", "ts", "car_value", "repaid_pred").write_parquet(
            folder / "part-0.parquet"
        )
    (root / "labels").mkdir()
    frame.select("request_id", "repaid", "labeled_at").write_parquet(
        root / "labels" / "labels.parquet"
    )
    (root / "models").mkdir()
    (root / "models" / "car-loan.yaml").write_text(MODEL.replace("DELAY", delay))
    (root / "engine.yaml").write_text("version: 1\nstate: state/state.db\n")
    return rows


def _run(root: Path, at: datetime) -> dict[str, dict[str, object]]:
    proc = subprocess.run(
        [*CLI, "run", ".", "--format", "json", "--at", at.isoformat(), "--fail-on", "never"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    [model] = json.loads(proc.stdout)["models"]
    return {r["monitor"]: r for r in model["results"]}


def test_hive_days_and_labels_a_month_late(tmp_path: Path) -> None:
    rows = _site(tmp_path, "38d")
    # the window (at - 38d - 8d, at - 38d] holds the eight days of predictions
    at = DAY0 + timedelta(days=DAYS + 38) - timedelta(minutes=1)
    results = _run(tmp_path, at)
    schema = results["request-schema"]
    assert (schema["status"], schema["value"]) == ("ok", 0)  # `dt` is not unexpected
    window = [r for r in rows if at - timedelta(days=46) < r["ts"] <= at - timedelta(days=38)]
    labelled = [r for r in window if r["labeled_at"] <= at]
    right = sum(r["repaid_pred"] == r["repaid"] for r in labelled)
    accuracy = results["accuracy"]
    assert len(window) == DAYS * PER_DAY and len(labelled) == len(window)
    assert accuracy["value"] == pytest.approx(right / len(labelled), rel=1e-12)
    assert accuracy["status"] == "ok"


def test_labels_not_yet_arrived_lower_the_coverage(tmp_path: Path) -> None:
    rows = _site(tmp_path, "28d")
    # 28 days after the window: a label has arrived only if it was quick enough
    at = DAY0 + timedelta(days=DAYS + 28) - timedelta(minutes=1)
    window = [r for r in rows if at - timedelta(days=36) < r["ts"] <= at - timedelta(days=28)]
    labelled = [r for r in window if r["labeled_at"] <= at]
    assert 0 < len(labelled) < len(window) / 2  # by hand: too little coverage
    accuracy = _run(tmp_path, at)["accuracy"]
    assert accuracy["status"] == "insufficient_data"
    right = sum(r["repaid_pred"] == r["repaid"] for r in labelled)
    assert accuracy["value"] == pytest.approx(right / len(labelled), rel=1e-12)
    coverage = accuracy["details"]["label_coverage"]
    assert coverage == pytest.approx(len(labelled) / len(window), rel=1e-12)
