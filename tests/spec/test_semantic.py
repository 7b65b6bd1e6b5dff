"""Meaning checks, through the public loader, with exact messages."""

from __future__ import annotations

import pytest

from rulesengine.spec.loader import load, load_report
from rulesengine.spec.model import Threshold
from rulesengine.spec.schema import banned_keys

HEAD = """version: 1
model: m
sources:
  requests: {path: r.parquet, timestamp: ts}
  training: {path: t.parquet}
"""


def problems(write, body: str, env: dict[str, str] | None = None) -> list[str]:
    path = write("m.yaml", HEAD + body)
    report = load_report([path], env or {})
    return [p.message for p in report.problems]


@pytest.mark.parametrize(
    ("warn", "crit", "ok"),
    [
        ("{above: 0.01}", "{above: 0.05}", True),
        ("{above: 0.05}", "{above: 0.05}", True),
        ("{above: 0.06}", "{above: 0.05}", False),
        ("{at_or_above: 0.06}", "{above: 0.05}", False),
        ("{below: 0.9}", "{below: 0.8}", True),
        ("{below: 0.7}", "{below: 0.8}", False),
        ("{outside: [0.1, 0.9]}", "{outside: [0.0, 1.0]}", True),
        ("{outside: [0.0, 1.0]}", "{outside: [0.1, 0.9]}", False),
        ("{between: [0.0, 1.0]}", "{between: [0.1, 0.9]}", True),
        ("{between: [0.2, 0.8]}", "{between: [0.1, 0.9]}", False),
    ],
)
def test_warn_trips_no_later_than_critical(write, warn, crit, ok):
    got = problems(
        write,
        f"checks:\n  - {{name: c, source: requests, type: row_count, "
        f"warn: {warn}, critical: {crit}}}\n",
    )
    assert (got == []) is ok, got


def test_directions_must_agree(write):
    got = problems(
        write,
        "checks:\n  - {name: c, source: requests, type: row_count, "
        "warn: {above: 5}, critical: {below: 1}}\n",
    )
    assert got == ["warn uses 'above' but critical uses 'below': both must point the same way"]


def test_resolve_must_be_looser(write):
    body = (
        "metrics:\n  - {name: p, source: requests, type: quantile, column: x, q: 0.5, "
        "critical: {above: 10}, resolve: {above: %s}}\n"
    )
    assert problems(write, body % 8) == []
    assert problems(write, body % 12) == [
        "resolve must be looser than critical: an alert must stop violating it later, not sooner"
    ]


def test_lo_below_hi(write):
    got = problems(
        write, "kpis:\n  - {name: k, source: requests, expr: 'sum(x)', warn: {outside: [5, 1]}}\n"
    )
    assert got == ["needs lo < hi, got [5, 1]"]


def test_freshness_takes_durations_others_do_not(write):
    assert (
        problems(
            write,
            "checks:\n  - {name: f, source: requests, type: freshness, critical: {above: 30m}}\n",
        )
        == []
    )
    got = problems(
        write, "checks:\n  - {name: f, source: requests, type: row_count, critical: {below: 30m}}\n"
    )
    assert got == ["'30m' is a duration, but this monitor's value is not a time: use a number"]


def test_freshness_needs_a_time_column(write):
    got = problems(
        write, "checks:\n  - {name: f, source: training, type: freshness, critical: {above: 1h}}\n"
    )
    assert got == [
        "freshness needs a time column: source 'training' has no timestamp; add "
        "one there or set column:"
    ]


def test_references_with_hints(write):
    got = problems(
        write,
        """metrics:
  - {name: r, source: request, type: recall, prediction: "score > 0.5", target: y,
     join: {source: label, on: id}, critical: {below: 0.5}}
drift:
  - {name: d, source: requests, reference: trainin}
""",
    )
    assert got == [
        "unknown source 'request' (did you mean 'requests'?)",
        "unknown source 'label'; defined: requests, training",
        "unknown source 'trainin' (did you mean 'training'?)",
    ]


def test_names_unique_across_sections(write):
    got = problems(
        write,
        """checks:
  - {name: x, source: requests, type: row_count, critical: {below: 1}}
kpis:
  - {name: x, source: requests, expr: "count(*)", critical: {below: 1}}
""",
    )
    assert got == [
        "duplicate monitor name 'x' (first used at line 7); names are unique within a model"
    ]


def test_missing_threshold(write):
    got = problems(write, "checks:\n  - {name: c, source: requests, type: row_count}\n")
    assert got == ["no threshold: add warn: and/or critical:, e.g. critical: {above: 0.01}"]


def test_sql_shapes(write):
    got = problems(
        write,
        """checks:
  - {name: c, source: requests, type: custom, expr: "amount > 0", critical: {above: 0}}
metrics:
  - {name: r, source: requests, type: rate, predicate: "avg(x) > 1", filter: "sum(y) > 0",
     critical: {above: 0.5}}
""",
    )
    assert got == [
        "must aggregate the rows to one value (e.g. avg(...), sum(...), count(*)); this is a "
        "per-row expression",
        "must be a per-row expression; this one aggregates the rows (e.g. uses avg/sum)",
        "must be a per-row expression; this one aggregates the rows (e.g. uses avg/sum)",
    ]


def test_typed_objects(write, tmp_path):
    path = write(
        "m.yaml",
        HEAD
        + """evaluation: {window: 2h, segment_by: [v], min_rows: 7}
checks:
  - {name: c, source: requests, type: schema, expected_columns: {a: Int64}}
  - {name: f, source: requests, type: freshness, critical: {above: 1h30m}, window: 1d}
metrics:
  - {name: e, source: requests, expr: "avg(x)", warn: {above: 1}, for: 3}
drift:
  - {name: d, source: requests, reference: {source: requests, offset: 7d}, columns: [a]}
""",
    )
    config = load([path], {})
    (model,) = config.models
    assert model.sources["requests"].path == str(tmp_path / "r.parquet")
    schema_check, fresh = model.checks
    assert schema_check.thresholds.critical == Threshold("above", 0.0)
    assert fresh.thresholds.critical == Threshold("above", 5400.0)
    assert fresh.window.total_seconds() == 86400 and schema_check.window.total_seconds() == 7200
    assert schema_check.segment_by == ("v",) and schema_check.min_rows == 7
    (metric,) = model.metrics
    assert metric.type == "expr" and metric.alert.for_evaluations == 3
    (drift,) = model.drift
    assert drift.reference.offset.days == 7
    assert drift.thresholds.critical == Threshold("at_or_above", 0.5)
    with pytest.raises(AttributeError):
        model.model = "x"  # frozen


def test_secret_values_never_echoed(write):
    secret = "s3cr3t-t0ken-value"
    path = write(
        "engine.yaml",
        'version: 1\nreceivers:\n  x: ["slack://${TOKEN}"]\n'
        "routes: [{receivers: [x]}]\ngrouping:\n  wait: ${TOKEN}\n",
    )
    write("models/m.yaml", HEAD)
    report = load_report([path.parent], {"TOKEN": secret})
    text = "\n".join(p.render() for p in report.problems)
    assert report.problems, "expected problems"
    assert secret not in text
    assert "the value from the environment" in text


def test_metric_without_type_is_an_expr_metric_only(write):
    got = problems(
        write,
        "metrics:\n  - {name: e, source: requests, expr: 'avg(x)', q: 0.5, critical: {above: 1}}\n",
    )
    assert got == ["key 'q' does not apply to a metric without type: (an expr metric); set type:"]


def test_thresholds_must_be_finite(write):
    got = problems(
        write,
        "checks:\n  - {name: c, source: requests, type: row_count, critical: {below: .inf}}\n",
    )
    assert got == ["must be a finite number, got inf"]


def test_banned_keys_follow_the_schema_rule_of_the_type():
    """One reading of the schema's if-type-then rules serves the schema's messages
    (keys a check type does not take) and the semantic ones (an expr metric's)."""
    assert banned_keys("metric", "expr", {"expr": "avg(x)", "column": "x", "q": 0.5}) == [
        "column",
        "q",
    ]
    assert banned_keys("check", "null_rate", {"column": "x", "regex": "a"}) == ["regex"]
    assert banned_keys("check", "no_such_type", {"regex": "a"}) == []
