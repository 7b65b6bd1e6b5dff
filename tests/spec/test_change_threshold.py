"""``change`` thresholds in the spec: what builds, and the positioned errors of
bad shapes (through the public loader, with exact messages and file:line:col)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rulesengine.spec.loader import load, load_report
from rulesengine.spec.model import Change, Threshold

HEAD = """version: 1
model: m
sources:
  requests: {path: r.parquet, timestamp: ts}
evaluation: {every: 1h}
metrics:
  - name: p
    source: requests
    type: mean
    column: x
"""
# the threshold lines start at line 11


def problems(write, body: str) -> list[str]:
    path = write("m.yaml", HEAD + body)
    report = load_report([path], {})
    return [f"{p.line}:{p.col}: {p.message}" for p in report.problems]


def test_builds_with_defaults_from_the_model(write):
    path = write(
        "m.yaml",
        HEAD + "    critical: {below: 0.5}\n    warn: {change: {offset: 7d, below: -0.1}}\n",
    )
    (model,) = load([path], {}).models
    th = model.metrics[0].thresholds
    # relative by default; the tolerance is the model's evaluation.every (1h here)
    assert th.warn == Threshold(
        "below", -0.1, Change(timedelta(days=7), "relative", timedelta(hours=1))
    )
    assert th.critical == Threshold("below", 0.5)
    assert th.changes
    assert th.as_dict() == {
        "warn": {"change": {"offset": "1w", "mode": "relative", "tolerance": "1h", "below": -0.1}},
        "critical": {"below": 0.5},
    }


def test_builds_absolute_with_tolerance_and_a_range(write):
    path = write(
        "m.yaml",
        HEAD + "    warn: {change: {offset: 1d, mode: absolute, tolerance: 0s, "
        "outside: [-2, 3]}}\n",
    )
    (model,) = load([path], {}).models
    warn = model.metrics[0].thresholds.warn
    assert warn == Threshold(
        "outside", (-2.0, 3.0), Change(timedelta(days=1), "absolute", timedelta(0))
    )


def test_a_change_threshold_is_not_violated_by_the_value():
    t = Threshold("below", -0.1, Change(timedelta(days=7)))
    assert t.violated(-5.0) is False  # history decides it
    assert t.holds(-0.125) is True
    assert t.holds(-0.1) is False


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "    warn: {change: {below: -0.1}}\n",
            "11:12: missing required key 'offset'",
        ),
        (
            "    warn: {change: {offset: 7, below: -0.1}}\n",
            "11:29: expected a duration: a whole number and a unit (ms, s, m, h, d, w), "
            "e.g. 30s, 15m, 1h, 7d, got a number 7",
        ),
        (
            "    warn: {change: {offset: 7days, below: -0.1}}\n",
            "11:29: '7days' is not a duration: a whole number and a unit (ms, s, m, h, d, w), "
            "e.g. 30s, 15m, 1h, 7d",
        ),
        (
            "    warn: {change: {offset: 0s, below: -0.1}}\n",
            "11:29: must be longer than zero, got '0s'",
        ),
        (
            "    warn: {change: {offset: 7d}}\n",
            "11:20: a change threshold needs one of: above, at_or_above, below, "
            "at_or_below, outside, between",
        ),
        (
            "    warn: {change: {offset: 7d, below: -0.1, above: 0.1}}\n",
            "11:46: a change threshold has exactly one condition, got below, above",
        ),
        (
            "    warn: {change: {offset: 7d, below: 1h}}\n",
            "11:40: expected a number, got a string '1h'",
        ),
        (
            "    warn: {change: {offset: 7d, mode: ratio, below: -0.1}}\n",
            "11:39: unknown mode 'ratio' (did you mean 'relative'?); "
            "expected 'relative' or 'absolute'",
        ),
        (
            "    warn: {change: {offset: 7d, between: [0.1, -0.1]}}\n",
            "11:42: needs lo < hi, got [0.1, -0.1]",
        ),
        (
            "    warn: {change: {offset: 7d, below: -0.1, lookback: 1h}}\n",
            "11:46: unknown key 'lookback'; allowed keys: offset, mode, tolerance, above, "
            "at_or_above, below, at_or_below, outside, between",
        ),
        (
            "    warn: {change: -0.1}\n",
            "11:20: expected a mapping, got a number -0.1",
        ),
        (
            "    warn: {change: {offset: 7d, below: -0.1}, below: 3}\n",
            "11:11: a threshold has exactly one of: above, at_or_above, below, at_or_below, "
            "outside, between, change, derived, got change, below",
        ),
    ],
)
def test_bad_shapes_are_positioned(write, line, expected):
    assert problems(write, line) == [expected]


def test_resolve_is_no_change_and_needs_fixed_thresholds(write):
    body = (
        "    warn: {change: {offset: 7d, above: 0.1}}\n"
        "    resolve: {change: {offset: 7d, above: 0.05}}\n"
    )
    assert problems(write, body) == [
        "12:15: resolve cannot be a change threshold: hysteresis compares the value itself; "
        "use a fixed condition such as resolve: {above: 0.004}"
    ]
    body = "    critical: {change: {offset: 7d, above: 0.1}}\n    resolve: {above: 3}\n"
    assert problems(write, body) == [
        "12:5: resolve cannot be used with a change threshold (critical): hysteresis "
        "compares the value itself, not its change"
    ]


def test_warn_and_critical_compared_only_when_they_measure_the_same(write):
    same = (
        "    warn: {change: {offset: 7d, above: 0.2}}\n"
        "    critical: {change: {offset: 7d, above: 0.1}}\n"
    )
    assert problems(write, same) == [
        "11:11: warn must trip no later than critical (warn above 0.2, critical above 0.1)"
    ]
    # a change and a fixed value, or changes over different offsets, are not comparable
    mixed = "    warn: {change: {offset: 7d, above: 0.2}}\n    critical: {above: 0.1}\n"
    assert problems(write, mixed) == []
    offsets = (
        "    warn: {change: {offset: 1d, above: 0.2}}\n"
        "    critical: {change: {offset: 7d, below: 0.1}}\n"
    )
    assert problems(write, offsets) == []


def test_drift_share_takes_a_change(write):
    path = write(
        "m.yaml",
        """version: 1
model: m
sources:
  requests: {path: r.parquet, timestamp: ts}
  training: {path: t.parquet}
drift:
  - name: d
    source: requests
    reference: training
    drift_share: {warn: {change: {offset: 1d, mode: absolute, above: 0.2}}}
""",
    )
    report = load_report([path], {})
    assert report.problems == []
    (model,) = load([path], {}).models
    assert model.drift[0].thresholds.warn == Threshold(
        "above", 0.2, Change(timedelta(days=1), "absolute", timedelta(minutes=15))
    )
