"""Alert lifecycles as time-stepped tables (``promtool test rules`` style).

Each row is ``(minutes after T0, input, expected alert state, notifications sent at
that step)``; the input is a value (its status follows the monitor's thresholds) or
a status without a value. Every step runs ``process()`` then ``deliver()`` with a
fake clock and a recording notifier; ``"FIRING>slack"`` means one firing message to
the receiver ``slack``.
"""

from __future__ import annotations

import pytest
from alerting_harness import ENGINE, alerting_factory, at, run_table

from rulesengine.alerting.state import step as state_step


@pytest.fixture
def alerting(tmp_path):
    yield from alerting_factory(tmp_path)


TWO_MONITORS = """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount, critical: {above: 0.01}}
  - {name: volume, source: requests, type: row_count, critical: {below: 10}}
"""

# warn above 0.5 %, critical above 1 %
NULLS = """\
checks:
  - name: nulls
    source: requests
    type: null_rate
    column: amount
    warn: {above: 0.005}
    critical: {above: 0.01}
    runbook: https://runbooks.example/nulls
"""

V, OK = 0.02, 0.0  # a critical value, a clean value


def nulls(*extra: str) -> str:
    """The ``nulls`` check with extra keys, e.g. ``nulls("for: 2")``."""
    return NULLS + "".join(f"    {line}\n" for line in extra)


def engine(**grouping: str) -> str:
    """The default engine.yaml with other grouping values."""
    text = ENGINE
    for key, value in grouping.items():
        default = {"wait": "30s", "interval": "5m", "repeat": "4h"}[key]
        text = text.replace(f"{key}: {default}", f"{key}: {value}")
    return text


# ---------------------------------------------------------------- state machine


def test_fires_at_once_by_default_and_resolved_is_sent_once(alerting):
    h = alerting(nulls())
    run_table(
        h,
        "nulls",
        [
            (0, OK, "inactive", ""),
            (15, V, "firing", "FIRING>slack"),
            (30, V, "firing", ""),
            (45, 0.03, "firing", ""),  # a new value is no news
            (60, OK, "resolved", "RESOLVED>slack"),
            (75, OK, "inactive", ""),
            (90, OK, "inactive", ""),
        ],
    )
    assert len(h.alerts()) == 1


def test_for_as_a_count_of_consecutive_violations(alerting):
    h = alerting(nulls("for: 3"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "pending", ""),
            (15, V, "pending", ""),
            (30, OK, "inactive", ""),  # the streak starts again
            (45, V, "pending", ""),
            (60, 0.007, "pending", ""),  # warn counts as a violation too
            (75, V, "firing", "FIRING>slack"),
            (90, V, "firing", ""),
            (105, OK, "resolved", "RESOLVED>slack"),
        ],
    )


def test_for_as_a_duration_counts_time_not_evaluations(alerting):
    h = alerting(nulls("for: 30m"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "pending", ""),
            (10, OK, "inactive", ""),
            (20, V, "pending", ""),  # pending since 20
            (25, V, "pending", ""),
            (40, V, "pending", ""),  # 20 minutes
            (50, V, "firing", "FIRING>slack"),  # 30 minutes, after four evaluations
            (65, OK, "resolved", "RESOLVED>slack"),
        ],
    )
    a = h.alert("nulls")
    assert a.fired_at == at(50) and a.resolved_at == at(65)


def test_keep_firing_for_measured_from_the_first_clear_evaluation(alerting):
    # as Prometheus: keep_firing_for counts from the first evaluation that no longer
    # violates (35 here, after the violation at 20), so it still fires at 50 and
    # resolves at 65
    h = alerting(nulls("keep_firing_for: 30m"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>slack"),
            (15, OK, "firing", ""),
            (20, V, "firing", ""),
            (35, OK, "firing", ""),
            (50, OK, "firing", ""),
            (65, OK, "resolved", "RESOLVED>slack"),
            (80, OK, "inactive", ""),
        ],
    )


# critical above 1 %, no warn: 0.6 % is clean unless a resolve threshold holds it
CRITICAL_ONLY = """\
checks:
  - name: nulls
    source: requests
    type: null_rate
    column: amount
    critical: {above: 0.01}
"""
HYSTERESIS_INPUT = [0.02, 0.006, 0.012, 0.005, 0.003, 0.006, 0.02]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            ["resolve: {above: 0.004}"],
            [
                ("firing", "FIRING>slack"),
                ("firing", ""),  # 0.6 % still violates the resolve threshold
                ("firing", ""),
                ("firing", ""),
                ("resolved", "RESOLVED>slack"),  # 0.3 % clears it
                ("inactive", ""),  # 0.6 % alone does not fire again
                ("firing", "FIRING>slack"),
            ],
            id="with-resolve",
        ),
        pytest.param(
            [],
            [
                ("firing", "FIRING>slack"),
                ("resolved", "RESOLVED>slack"),
                ("firing", "FIRING>slack"),
                ("resolved", "RESOLVED>slack"),
                ("inactive", ""),
                ("inactive", ""),
                ("firing", "FIRING>slack"),
            ],
            id="without-resolve-it-flaps",
        ),
    ],
)
def test_hysteresis_damps_flapping(alerting, extra, expected):
    h = alerting(CRITICAL_ONLY + "".join(f"    {line}\n" for line in extra))
    table = [
        (15 * i, value, state, sent)
        for i, (value, (state, sent)) in enumerate(zip(HYSTERESIS_INPUT, expected, strict=True))
    ]
    run_table(h, "nulls", table)


def test_hysteresis_for_a_lower_bound(alerting):
    h = alerting(
        """\
metrics:
  - name: recall
    source: requests
    expr: "avg(CAST(hit AS DOUBLE))"
    critical: {below: 0.8}
    resolve: {below: 0.85}
"""
    )
    run_table(
        h,
        "recall",
        [
            (0, 0.9, "inactive", ""),
            (15, 0.78, "firing", "FIRING>slack"),
            (30, 0.82, "firing", ""),
            (45, 0.849, "firing", ""),
            (60, 0.85, "resolved", "RESOLVED>slack"),
        ],
    )


def test_fire_after_m_of_last_n(alerting):
    h = alerting(nulls("fire_after: {violations: 2, of_last: 3}"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "pending", ""),  # 1 of the last 3
            (15, OK, "pending", ""),  # still 1 of the last 3
            (30, V, "firing", "FIRING>slack"),  # 2 of 3: not consecutive, still fires
            (45, V, "firing", ""),
            (60, OK, "firing", ""),  # V V OK: 2 of 3 keep it firing
            (75, OK, "resolved", "RESOLVED>slack"),  # V OK OK: fewer than 2
            (90, OK, "inactive", ""),  # OK OK OK
            (105, V, "pending", ""),
            (120, V, "firing", "FIRING>slack"),
        ],
    )


def test_fire_after_counts_beyond_100_evaluations(alerting):
    h = alerting(nulls("fire_after: {violations: 101, of_last: 150}"))
    m, s = h.monitor("nulls"), None
    for i in range(101):  # the pure state machine: 101 violations in a row
        s, _ = state_step(s, h.result("nulls", V), m, "fraud", {"model": "fraud"}, at(15 * i))
    assert s.state == "firing"


# ---------------------------------------------------------------- no data, errors


POLICY_CASES = {
    # policy: (state after [V, status], sent; state after [OK, status], sent)
    "keep_last": (("firing", ""), ("inactive", "")),
    "alert": (("firing", ""), ("firing", "FIRING>slack")),
    "ok": (("resolved", "RESOLVED>slack"), ("inactive", "")),
}


@pytest.mark.parametrize("status", ["no_data", "insufficient_data", "error"])
@pytest.mark.parametrize("policy", ["keep_last", "alert", "ok", None])
def test_no_data_insufficient_data_and_error_follow_the_policy(alerting, status, policy):
    extra = [f"policy: {{{status}: {policy}}}"] if policy else []
    (after_firing, after_ok) = POLICY_CASES[policy or "keep_last"]  # default keep_last
    h = alerting(nulls(*extra))
    run_table(h, "nulls", [(0, V, "firing", "FIRING>slack"), (15, status, *after_firing)])
    a = h.alert("nulls")
    assert a.reason == status and a.status == status
    again = {"resolved": "inactive"}.get(after_firing[0], after_firing[0])
    run_table(h, "nulls", [(30, status, again, "")])

    h2 = alerting(nulls(*extra))
    run_table(h2, "nulls", [(0, OK, "inactive", ""), (15, status, *after_ok)])
    # the status is a reason on the monitor's one alert, never an alert of its own
    mine = [(a.monitor, a.reason) for a in h2.alerts().values() if a.monitor != "stale-data"]
    assert mine == [("nulls", status)]
    if after_ok[1]:
        (msg,) = h2.notifier.sent
        assert f"reason: {status}" in msg.body
        assert h2.alert("nulls").severity == "critical"


def test_keep_last_neither_resets_nor_advances_for(alerting):
    h = alerting(nulls("for: 2"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "pending", ""),
            (15, "no_data", "pending", ""),
            (30, "error", "pending", ""),
            (45, V, "firing", "FIRING>slack"),  # the second violation
        ],
    )


def test_policy_alert_counts_towards_for(alerting):
    h = alerting(nulls("for: 2", "policy: {no_data: alert}"))
    run_table(h, "nulls", [(0, V, "pending", ""), (15, "no_data", "firing", "FIRING>slack")])


def test_policy_alert_severity_is_warn_without_a_critical_threshold(alerting):
    h = alerting(
        """\
checks:
  - {name: dupes, source: requests, type: duplicate_rate, columns: [id],
     warn: {above: 0.1}, policy: {error: alert}}
"""
    )
    run_table(h, "dupes", [(0, "error", "firing", "FIRING>slack")])
    assert h.alert("dupes").severity == "warn"
    assert "(warn)" in h.notifier.sent[0].title


# ---------------------------------------------------------------- stale data


def test_a_source_without_data_for_stale_after_evaluations_raises_a_stale_alert(alerting):
    h = alerting(TWO_MONITORS)

    def empty():
        return [h.result("nulls", "no_data"), h.result("volume", "no_data")]

    sent = [h.step(15 * i, *empty()).summary for i in range(3)]
    assert sent == ["", "", "FIRING>slack"]  # stale_after: 3
    (stale,) = [a for a in h.alerts().values() if a.monitor == "stale-data"]
    assert stale.state == "firing" and stale.severity == "critical"
    assert stale.labels["source"] == "requests" and stale.labels["model"] == "fraud"
    assert "stale-data" in h.notifier.sent[-1].title
    # the monitors themselves keep their last state (inactive): no alert per status
    assert h.state("nulls") == h.state("volume") == "inactive"

    assert h.step(45, *empty()).summary == ""  # still stale, nothing new
    back = h.step(60, h.result("nulls", 0.0), h.result("volume", 500))
    assert back.summary == "RESOLVED>slack"
    assert "stale-data" in h.notifier.sent[-1].title
    assert h.step(75, h.result("nulls", 0.0), h.result("volume", 500)).summary == ""
    assert h.alert("stale-data", segment={"source": "requests"}).state == "inactive"


def test_stale_count_survives_restarts_and_resets_on_data(alerting):
    h = alerting(TWO_MONITORS)

    def empty():
        return [h.result("nulls", "no_data"), h.result("volume", "no_data")]

    h.step(0, *empty())
    h.step(15, *empty())
    h.step(30, h.result("nulls", "no_data"), h.result("volume", 500))  # one has data
    h.restart()
    h.step(45, *empty())
    h.restart()
    assert h.step(60, *empty()).summary == ""
    h.restart()
    assert h.step(75, *empty()).summary == "FIRING>slack"


# ---------------------------------------------------------------- restarts


def test_restart_restores_firing_without_renotifying_or_demoting(alerting):
    h = alerting(nulls("for: 2"))
    run_table(h, "nulls", [(0, V, "pending", "")])
    h.restart()
    run_table(h, "nulls", [(15, V, "firing", "FIRING>slack")])  # the streak survived
    fired = h.alert("nulls")
    for minutes in (30, 45, 60):
        h.restart()
        run_table(h, "nulls", [(minutes, V, "firing", "")])
    restored = h.alert("nulls")
    assert (restored.state, restored.fired_at, restored.pending_since) == (
        "firing",
        fired.fired_at,
        fired.pending_since,
    )
    h.restart()
    run_table(h, "nulls", [(75, OK, "resolved", "RESOLVED>slack")])
    assert len(h.notifier.sent) == 2


def test_restart_keeps_group_wait_and_the_notification_log(alerting):
    h = alerting(nulls(), engine(wait="20m", repeat="1h"))
    run_table(h, "nulls", [(0, V, "firing", "")], flush=False)
    h.restart()
    run_table(h, "nulls", [(15, V, "firing", "")], flush=False)
    h.restart()
    run_table(h, "nulls", [(30, V, "firing", "FIRING>slack")], flush=False)
    h.restart()
    run_table(h, "nulls", [(45, V, "firing", ""), (75, V, "firing", "")], flush=False)
    h.restart()
    run_table(h, "nulls", [(90, V, "firing", "FIRING>slack")], flush=False)  # repeat: 1h


def test_a_removed_monitor_does_not_keep_firing_after_a_reload(alerting):
    h = alerting(TWO_MONITORS, engine(repeat="1h"))
    assert h.step(0, h.result("nulls", V), h.result("volume", 1)).summary == "FIRING>slack"
    model = h.root / "models" / "fraud.yaml"
    model.write_text(model.read_text().replace(TWO_MONITORS.splitlines()[-1] + "\n", ""))
    h.restart()
    assert [m.name for m in h.config.models[0].monitors()] == ["nulls"]
    for minutes in (15, 30, 60, 120):
        h.step(minutes, h.result("nulls", V))
    # Prometheus drops a removed rule's alerts; Alertmanager then resolves them
    assert h.state("volume") != "firing"
    assert not any("[FIRING] fraud / volume" in s.body for s in h.notifier.sent[1:])


OTHER_MODEL = """\
version: 1
model: other
sources:
  requests: {path: logs/*.parquet, timestamp: ts}
checks:
  - {name: volume, source: requests, type: row_count, critical: {below: 10}}
"""


def _other_results(h, when):
    """A clean result of the other model's only check, as of ``when``."""
    from datetime import timedelta

    from rulesengine.engine.results import ModelResults, Result

    result = Result(
        monitor="volume",
        kind="check",
        type="row_count",
        source="requests",
        status="ok",
        value=500.0,
        rows=500,
        threshold={"critical": {"below": 10}},
        window_start=when - timedelta(hours=1),
        window_end=when,
    )
    return ModelResults("other", when, (result,))


@pytest.mark.parametrize("given", ["directory", "engine_file", "model_file", "models_dir"])
def test_alerts_of_a_model_that_left_the_config(alerting, given):
    """A run over the whole config (a directory or engine.yaml) resolves the alerts
    of a model whose file was removed; a run given single model files cannot know
    that the others are gone, and leaves their alerts alone."""
    from rulesengine.alerting.delivery import deliver
    from rulesengine.alerting.tracker import process
    from rulesengine.spec.loader import load

    h = alerting(nulls())
    assert h.step(0, h.result("nulls", V)).summary == "FIRING>slack"
    (h.root / "models" / "fraud.yaml").unlink()
    (h.root / "models" / "other.yaml").write_text(OTHER_MODEL, encoding="utf-8")
    path = {
        "directory": h.root,
        "engine_file": h.root / "engine.yaml",
        "model_file": h.root / "models" / "other.yaml",
        "models_dir": h.root / "models",  # no engine.yaml in it: not the whole config
    }[given]
    config = load([path], env={})
    assert [m.model for m in config.models] == ["other"]
    complete = given in ("directory", "engine_file")
    assert config.complete is complete
    h.now = at(15)
    process(h.store, config, [_other_results(h, h.now)], h.now, flush=True)
    deliver(h.store, config.engine, h.notifier, clock=lambda: h.now)
    fraud = h.alert("nulls")
    if not complete:
        assert fraud.state == "firing"
        assert len(h.notifier.sent) == 1
    else:
        assert fraud.state == "resolved"
        assert fraud.reason == "the model left the config"
        (resolved,) = h.notifier.sent[1:]
        assert resolved.kind == "RESOLVED" and "fraud" in resolved.body


# ---------------------------------------------------------------- grouping and dedup


def test_group_wait_is_honoured_without_flush_and_skipped_with_it(alerting):
    h = alerting(TWO_MONITORS, engine(wait="30s"))
    assert h.step(0, h.result("nulls", V), flush=False).summary == ""
    assert h.step(0.25, h.result("nulls", V), h.result("volume", 1), flush=False).summary == ""
    step = h.step(0.5, h.result("nulls", V), h.result("volume", 1), flush=False)
    assert step.summary == "FIRING>slack"  # one message for the group, after 30 s
    (note,) = step.report.notifications
    assert len(note["alerts"]) == 2
    assert "nulls" in step.sent[0].body and "volume" in step.sent[0].body

    h2 = alerting(TWO_MONITORS, engine(wait="30s"))
    assert h2.step(0, h2.result("nulls", V), flush=True).summary == "FIRING>slack"


def test_group_wait_restarts_when_the_group_empties_before_it_is_notified(alerting):
    h = alerting(nulls(), engine(wait="10m"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", ""),
            (5, OK, "resolved", ""),
            (6, V, "firing", ""),
            (15, V, "firing", ""),
        ],
        flush=False,
    )
    run_table(h, "nulls", [(16, V, "firing", "FIRING>slack")], flush=False)


def test_new_alerts_in_a_notified_group_wait_for_group_interval(alerting):
    h = alerting(TWO_MONITORS, engine(interval="10m", repeat="4h"))
    assert h.step(0, h.result("nulls", V), h.result("volume", 500)).summary == "FIRING>slack"
    assert h.step(5, h.result("nulls", V), h.result("volume", 1)).summary == ""
    step = h.step(10, h.result("nulls", V), h.result("volume", 1))
    assert step.summary == "FIRING>slack"
    assert len(step.report.notifications[0]["alerts"]) == 2  # the whole group again
    assert h.step(20, h.result("nulls", V), h.result("volume", 1)).summary == ""


def test_a_repeat_comes_only_after_repeat_interval(alerting):
    h = alerting(nulls(), engine(interval="5m", repeat="1h"))
    table = [(0, V, "firing", "FIRING>slack")]
    table += [(m, V, "firing", "") for m in (15, 30, 45, 59)]
    table += [(60, V, "firing", "FIRING>slack"), (75, V, "firing", ""), (105, V, "firing", "")]
    table += [(120, V, "firing", "FIRING>slack")]
    run_table(h, "nulls", table)


def test_resolution_waits_for_group_interval(alerting):
    h = alerting(nulls(), engine(interval="1h"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>slack"),
            (15, OK, "resolved", ""),
            (30, OK, "inactive", ""),
            (60, OK, "inactive", "RESOLVED>slack"),
            (75, OK, "inactive", ""),
        ],
    )


def test_flapping_inside_group_interval_sends_nothing_new(alerting):
    h = alerting(nulls(), engine(interval="1h"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>slack"),
            (15, OK, "resolved", ""),
            (30, V, "firing", ""),  # the receiver still believes it fires
            (60, V, "firing", ""),
        ],
    )


def test_partial_resolution_is_sent_with_the_still_firing_alerts(alerting):
    h = alerting(TWO_MONITORS)
    h.step(0, h.result("nulls", V), h.result("volume", 1))
    step = h.step(15, h.result("nulls", V), h.result("volume", 500))
    assert step.summary == "FIRING>slack"
    assert "[RESOLVED] fraud / volume" in step.sent[0].body
    assert "[FIRING] fraud / nulls" in step.sent[0].body
    assert h.step(30, h.result("nulls", V), h.result("volume", 500)).summary == ""


def test_send_resolved_false_sends_no_resolution(alerting):
    h = alerting(
        nulls(),
        ENGINE.replace("{receivers: [slack]}", "{receivers: [slack], send_resolved: false}"),
    )
    run_table(
        h,
        "nulls",
        [(0, V, "firing", "FIRING>slack"), (15, OK, "resolved", ""), (30, OK, "inactive", "")],
    )


def test_send_resolved_false_still_notifies_when_the_alert_fires_again(alerting):
    h = alerting(
        nulls(),
        ENGINE.replace("{receivers: [slack]}", "{receivers: [slack], send_resolved: false}"),
    )
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>slack"),
            (15, OK, "resolved", ""),
            (30, OK, "inactive", ""),
            (45, V, "firing", "FIRING>slack"),  # Alertmanager: a new notification
        ],
    )


def test_escalation_from_warn_to_critical_is_notified(alerting):
    h = alerting(nulls())
    run_table(
        h,
        "nulls",
        [
            (0, 0.007, "firing", "FIRING>slack"),
            (15, V, "firing", "FIRING>slack"),
        ],
    )
    assert "(critical)" in h.notifier.sent[-1].title


SEVERITY_ROUTES = """\
version: 1
state: state/state.db
receivers:
  oncall: ["json://localhost/oncall"]
  slack: ["json://localhost/slack"]
routes:
  - {match: {severity: critical}, receivers: [oncall]}
  - {receivers: [slack]}
grouping: {by: [model], wait: 30s, interval: 1h, repeat: 4h}
"""


def test_resolution_reaches_the_route_that_got_the_firing_message(alerting):
    h = alerting(nulls(), SEVERITY_ROUTES.replace("interval: 1h", "interval: 5m"))
    run_table(
        h, "nulls", [(0, V, "firing", "FIRING>oncall"), (15, OK, "resolved", "RESOLVED>oncall")]
    )


def test_deferred_resolution_reaches_the_route_that_got_the_firing_message(alerting):
    h = alerting(nulls(), SEVERITY_ROUTES)
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>oncall"),
            (15, OK, "resolved", ""),  # group_interval 1h not over
            (30, OK, "inactive", ""),
            (60, OK, "inactive", "RESOLVED>oncall"),
        ],
    )


def test_process_reports_transitions_and_queued_rows(alerting):
    h = alerting(nulls("for: 2"))
    first = h.step(0, h.result("nulls", V))
    assert first.report.transitions == [] and first.report.queued == 0
    second = h.step(15, h.result("nulls", V))
    assert [(t.kind, t.previous) for t in second.report.transitions] == [("firing", "pending")]
    assert second.report.queued == 1 and second.delivery.sent == 1
    assert second.sent[0].at == at(15)
