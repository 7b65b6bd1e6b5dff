"""validate --check-sources against real files of every format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from rulesengine.spec.validate import validate

FRAME = pl.DataFrame(
    {
        "request_id": ["a", "b"],
        "ts": [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)],
        "amount": [1.5, 2.0],
        "country": ["DE", "FR"],
        "version": ["v1", "v2"],
    }
)
LABELS = pl.DataFrame({"request_id": ["a"], "is_fraud": [True], "at": ["2026-01-03T00:00:00Z"]})


def _write_sources(root: Path, fmt: str) -> str:
    (root / "logs").mkdir()
    if fmt == "parquet":
        FRAME.write_parquet(root / "logs" / "r.parquet")
    elif fmt == "csv":
        FRAME.write_csv(root / "logs" / "r.csv")
    else:
        FRAME.write_ndjson(root / "logs" / "r.ndjson")
    LABELS.write_ndjson(root / "logs" / "labels.ndjson")
    return f"logs/r*.{fmt}"


SPEC = """version: 1
model: m
sources:
  requests: {{path: "{glob}", timestamp: ts}}
  labels: {{path: logs/labels.ndjson, timestamp: at}}
evaluation: {{segment_by: [versoin]}}
checks:
  - {{name: q, source: requests, type: out_of_range, column: country, min: 0,
     critical: {{above: 0}}}}
  - {{name: n, source: requests, type: null_rate, column: amout, critical: {{above: 0}}}}
  - {{name: p, source: requests, type: pattern, column: amount, regex: x, warn: {{above: 0}}}}
metrics:
  - {{name: r, source: requests, type: recall, prediction: "amount > 1", target: is_fraud,
     join: {{source: labels, on: request_id}}, critical: {{below: 0.5}}}}
  - {{name: e, source: requests, expr: "avg(amont)", critical: {{above: 1}}}}
  - {{name: s, source: requests, expr: "avg(upper(amount))", critical: {{above: 1}}}}
"""


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_columns_and_dtypes_checked(tmp_path: Path, fmt: str):
    glob = _write_sources(tmp_path, fmt)
    spec = tmp_path / "m.yaml"
    spec.write_text(SPEC.format(glob=glob))
    report = validate([spec], check_sources=True, env={})
    got = [(p.line, p.message) for p in report.problems]
    assert got == [
        (6, "column 'versoin' not found in source 'requests' (did you mean 'version'?)"),
        (8, "column 'country' of source 'requests' is String, but this needs a numeric column"),
        (10, "column 'amout' not found in source 'requests' (did you mean 'amount'?)"),
        (11, "column 'amount' of source 'requests' is Float64, but this needs a string column"),
        (15, "column 'amont' not found in source 'requests' (did you mean 'amount'?)"),
        (
            16,
            "does not fit the source's columns: invalid series dtype: expected `String`, "
            "got `f64` for series with name `amount`",
        ),
    ]
    assert not report.ok


def test_valid_spec_passes_and_reads_no_rows(tmp_path: Path):
    glob = _write_sources(tmp_path, "parquet")
    spec = tmp_path / "m.yaml"
    spec.write_text(f"""version: 1
model: m
sources:
  requests: {{path: "{glob}", timestamp: ts}}
  labels: {{path: logs/labels.ndjson, timestamp: at}}
metrics:
  - {{name: r, source: requests, type: recall, prediction: "amount > 1", target: is_fraud,
     join: {{source: labels, on: request_id}}, critical: {{below: 0.5}}}}
  - {{name: q, source: requests, type: quantile, column: amount, q: 0.9, warn: {{above: 1}}}}
""")
    report = validate([spec], check_sources=True, env={})
    assert report.ok and report.problems == []


def test_missing_files_warn_unless_required(tmp_path: Path):
    spec = tmp_path / "m.yaml"
    spec.write_text("""version: 1
model: m
sources:
  a: {path: nothing/*.parquet}
  b: {path: none.csv, required: true}
checks:
  - {name: c, source: a, type: row_count, critical: {below: 1}}
""")
    report = validate([spec], check_sources=True, env={})
    assert [(p.severity, p.line) for p in report.problems] == [("warning", 4), ("error", 5)]
    assert not report.ok


def test_corrupt_file_is_named(tmp_path: Path):
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file")
    spec = tmp_path / "m.yaml"
    spec.write_text("version: 1\nmodel: m\nsources:\n  a: {path: bad.parquet}\n")
    report = validate([spec], check_sources=True, env={})
    (problem,) = report.problems
    assert problem.severity == "error" and problem.line == 4
    assert "cannot read" in problem.message and "bad.parquet" in problem.message
