"""Notification text: safe ``$name`` substitution only, and what the default
title and body say."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest
from alerting_harness import T0, alerting_factory

from rulesengine.alerting.state import AlertState, fingerprint
from rulesengine.alerting.templates import alert_vars, notification_text, render


@pytest.fixture
def alerting(tmp_path):
    yield from alerting_factory(tmp_path)


NULLS_THRESHOLD = {"warn": {"above": 0.005}, "critical": {"above": 0.01}}


def alert(monitor: str = "nulls", **kw: Any) -> dict[str, Any]:
    """An alert as dispatch hands it to the templates (``asdict`` of its state)."""
    column = kw.pop("column", None)
    segment = kw.pop("segment", {})
    labels = {
        "team": "risk",
        "model": "fraud",
        "monitor": monitor,
        "kind": kw.pop("kind", "check"),
        "type": kw.pop("type", "null_rate"),
        "source": "requests",
        "segment": ",".join(f"{k}={v}" for k, v in segment.items()),
        "severity": kw.get("severity", "critical"),
        **kw.pop("labels", {}),
    }
    if column:
        labels["column"] = column
    s = AlertState(
        id=fingerprint("fraud", monitor, segment, column),
        model="fraud",
        monitor=monitor,
        segment=segment,
        column=column,
        labels=labels,
        state=kw.pop("state", "firing"),
        severity=kw.pop("severity", "critical"),
        status=kw.pop("status", "critical"),
        value=kw.pop("value", 0.02),
        threshold=kw.pop("threshold", NULLS_THRESHOLD),
        window_start=T0 - timedelta(hours=1),
        window_end=T0,
        **kw,
    )
    return asdict(s)


def text(alerts, runbooks=None, title=None, body=None, resolved_title=None):
    return notification_text(
        alerts, runbooks or {}, title=title, body=body, resolved_title=resolved_title
    )


# ---------------------------------------------------------------- defaults


def test_default_body_names_model_monitor_segment_value_threshold_window_runbook():
    a = alert()
    title, body = text([a], {a["id"]: "https://runbooks.example/nulls"})
    assert title == "[FIRING] fraud / nulls (critical)"
    assert body == (
        "[FIRING] fraud / nulls (check null_rate, critical)\n"
        "segment: (all)\n"
        "value: 0.02 (threshold: warn above 0.005; critical above 0.01)\n"
        "window: 2026-11-27T14:00:00Z – 2026-11-27T15:00:00Z\n"
        "runbook: https://runbooks.example/nulls"
    )


def test_optional_lines_vanish_without_leaving_blank_lines():
    _, body = text([alert(segment={"model_version": "v3"}, column="amount")])
    assert "runbook" not in body and "reason" not in body and "drifting" not in body
    assert "\n\n" not in body
    assert "segment: model_version=v3\ncolumn: amount\n" in body


def test_default_body_for_drift_lists_the_top_drifting_columns():
    share = alert(
        "features",
        kind="drift",
        type="drift_share",
        value=0.5,
        threshold={"critical": {"at_or_above": 0.5}},
        details={
            "drifted_columns": ["amount", "country"],
            "top": [
                {"column": "amount", "method": "wasserstein", "value": 0.3123456},
                {"column": "country", "method": "psi", "value": 0.25},
            ],
        },
    )
    _, body = text([share])
    assert "top drifting columns: amount (wasserstein 0.312346), country (psi 0.25)" in body
    assert "value: 0.5 (threshold: critical at or above 0.5)" in body


def test_reason_line_for_results_without_a_value():
    _, body = text([alert(status="no_data", value=None, reason="no_data")])
    assert "value: - (threshold:" in body
    assert body.endswith("reason: no_data")
    _, body = text([alert(status="error", value=None, details={"error": "unreadable file x"})])
    assert body.endswith("reason: unreadable file x")


def test_titles_lead_with_the_most_severe_firing_alert_and_count_the_rest():
    alerts = [
        alert("a-warn", severity="warn", status="warn"),
        alert("z-critical"),
        alert("b-resolved", state="resolved"),
    ]
    title, body = text(alerts)
    assert title == "[FIRING] fraud / z-critical (critical) and 2 more"
    # firing before resolved, critical before warn
    heads = [part.splitlines()[0] for part in body.split("\n\n")]
    assert heads == [
        "[FIRING] fraud / z-critical (check null_rate, critical)",
        "[FIRING] fraud / a-warn (check null_rate, warn)",
        "[RESOLVED] fraud / b-resolved (check null_rate, critical)",
    ]


def test_resolved_title_when_nothing_fires():
    alerts = [alert("nulls", state="resolved"), alert("volume", state="inactive")]
    assert text(alerts)[0] == "[RESOLVED] fraud / nulls and 1 more"
    assert text(alerts, resolved_title="ok: $model ($count)")[0] == "ok: fraud (2)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (0.0, "0"),
        (12.0, "12"),
        (1234567.0, "1.23457e+06"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
    ],
)
def test_values_are_shown_compactly(value, shown):
    assert alert_vars(alert(value=value), None)["value"] == shown


def test_threshold_text_for_ranges():
    a = alert(threshold={"critical": {"outside": [0, 1]}, "warn": {"between": [0.1, 0.2]}})
    assert alert_vars(a, None)["threshold"] == "critical outside [0, 1]; warn between [0.1, 0.2]"


# ---------------------------------------------------------------- safe substitution


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$model/$monitor", "fraud/nulls"),
        ("${model}x", "fraudx"),
        ("$$model costs $$5", "$model costs $5"),
        ("${__class__}", "${__class__}"),
        ("$__class__ $__init__", "$__class__ $__init__"),
        ("$x.y", "$x.y"),
        ("$model.__class__.__init__.__globals__", "fraud.__class__.__init__.__globals__"),
        ("${model.__class__}", "${model.__class__}"),
        ("{model.__class__} {0} %(model)s", "{model.__class__} {0} %(model)s"),
        ("{{ model }} {% if 1 %}", "{{ model }} {% if 1 %}"),
        ("$label_team $label_model", "risk fraud"),
        ("$nope", "$nope"),
        ("cost: $5", "cost: $5"),
    ],
)  # fmt: skip
def test_templates_substitute_names_and_never_evaluate(template, expected):
    assert render(template, alert_vars(alert(), None)) == expected


def test_values_are_not_substituted_again():
    hostile = alert(
        segment={"v": "$runbook ${__class__}"},
        labels={"team": "${model.__globals__}"},
        details={"reason": "$model"},
    )
    title, body = text([hostile], title="$label_team | $segment", body="$segment | $reason")
    assert title == "${model.__globals__} | v=$runbook ${__class__}"
    assert body == "v=$runbook ${__class__} | $model"


def test_every_label_is_a_variable_and_labels_lists_them():
    v = alert_vars(alert(labels={"owner": "payments"}), None)
    assert v["label_owner"] == "payments"
    assert v["labels"].startswith("kind=check, model=fraud, monitor=nulls, owner=payments")


# ---------------------------------------------------------------- from engine.yaml

ENGINE = """\
version: 1
state: state/state.db
receivers:
  slack: ["json://localhost/slack"]
  pager:
    urls: ["json://localhost/pager"]
    title: "PAGE $label_team: $monitor=$value"
    body: "$labels"
routes:
  - {receivers: [slack, pager]}
templates:
  title: "${__class__} [$status] $model/$monitor ($count)"
  body: "$x.y ${model} $$HOME $runbook"
  resolved_title: "ok: $model/$monitor"
"""


def test_engine_templates_keep_their_placeholders_and_receivers_override_them(alerting):
    h = alerting(
        """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount, critical: {above: 0.01},
     runbook: "https://runbooks.example/nulls"}
""",
        ENGINE,
    )
    assert h.config.engine.templates.title.startswith("${__class__}")
    sent = {s.receiver: s for s in h.step(0, h.result("nulls", 0.02)).sent}
    assert sent["slack"].title == "${__class__} [critical] fraud/nulls (1)"
    assert sent["slack"].body == "$x.y fraud $HOME https://runbooks.example/nulls"
    assert sent["pager"].title == "PAGE risk: nulls=0.02"
    assert sent["pager"].body.startswith("kind=check, model=fraud, monitor=nulls")
    resolved = {s.receiver: s for s in h.step(15, h.result("nulls", 0.0)).sent}
    assert resolved["slack"].title == "ok: fraud/nulls"
    # resolved messages take templates.resolved_title, even for a receiver with its own title
    assert resolved["pager"].title == "ok: fraud/nulls"
