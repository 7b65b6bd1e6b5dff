"""Routes, silences (library and ``rulesengine silence`` CLI), inhibition and mute
time intervals: the routing tree on its own, then through ``process()`` and
``deliver()`` with a fake clock and a recording notifier."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alerting_harness import MODEL_HEAD, T0, alerting_factory, at, run_table

from rulesengine.alerting.admin import (
    add_silence,
    alert_listing,
    expire_silence,
    listing_text,
    silence_listing,
    silence_text,
)
from rulesengine.alerting.routing import (
    in_interval,
    matcher_holds,
    parse_matcher,
    route,
    silenced,
)
from rulesengine.spec.model import TimeInterval, TimeRange


@pytest.fixture
def alerting(tmp_path):
    yield from alerting_factory(tmp_path)


RECEIVERS = """\
receivers:
  slack: ["json://localhost/slack"]
  oncall: ["json://localhost/oncall"]
  risk: ["json://localhost/risk"]
  retrain: ["json://localhost/retrain"]
  ml: ["json://localhost/ml"]
  fallback: ["json://localhost/fallback"]
"""


def engine_yaml(body: str) -> str:
    return "version: 1\nstate: state/state.db\n" + RECEIVERS + body


TREE = engine_yaml(
    """\
grouping: {by: [model], wait: 30s, interval: 5m, repeat: 4h}
routes:
  - match: {team: risk}
    receivers: [risk]
    grouping: {by: [model, monitor], repeat: 12h}
    routes:
      - {match: {severity: critical}, receivers: [oncall], continue: true}
      - {match_re: {monitor: "drift-.*"}, grouping: {wait: 0s}}
      - {match: {kind: kpi}, receivers: [retrain]}
  - {match: {severity: critical}, receivers: [oncall], continue: true}
  - {match_re: {team: "forecast|assistant"}, receivers: [ml]}
  - {receivers: [fallback]}
"""
)

NULLS = """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount,
     warn: {above: 0.005}, critical: {above: 0.01}}
  - {name: volume, source: requests, type: row_count, critical: {below: 10}}
"""

V, OK = 0.02, 0.0


def _routes(h, **labels):
    return [(m.key, m.receivers) for m in route(h.config.engine, labels)]


# ---------------------------------------------------------------- routing tree


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # a matching child takes over; its continue: true lets the next child try too
        (
            {"team": "risk", "severity": "critical", "monitor": "drift-x"},
            [("0.0", ("oncall",)), ("0.1", ("risk",))],
        ),
        (
            {"team": "risk", "severity": "critical", "kind": "kpi"},
            [("0.0", ("oncall",)), ("0.2", ("retrain",))],
        ),
        # no child matches: the parent route handles the alert itself
        ({"team": "risk", "severity": "warn", "monitor": "nulls"}, [("0", ("risk",))]),
        # a child without receivers inherits its parent's
        ({"team": "risk", "severity": "warn", "monitor": "drift-x"}, [("0.1", ("risk",))]),
        ({"team": "risk", "severity": "warn", "kind": "kpi"}, [("0.2", ("retrain",))]),
        # the first match wins unless it says continue: true
        ({"team": "forecast", "severity": "critical"}, [("1", ("oncall",)), ("2", ("ml",))]),
        ({"team": "forecast", "severity": "warn"}, [("2", ("ml",))]),
        # match_re is anchored: 'forecasting' is not 'forecast'
        ({"team": "forecasting", "severity": "warn"}, [("3", ("fallback",))]),
        ({"team": "risky"}, [("3", ("fallback",))]),
        ({}, [("3", ("fallback",))]),
    ],
)
def test_routing_tree(alerting, labels, expected):
    h = alerting(NULLS, TREE)
    assert _routes(h, **labels) == expected


def test_route_grouping_overrides_inherit_the_keys_not_given(alerting):
    h = alerting(NULLS, TREE)
    engine = h.config.engine
    (risk,) = route(engine, {"team": "risk", "monitor": "nulls"})
    assert risk.grouping.by == ("model", "monitor")
    assert risk.grouping.repeat == timedelta(hours=12)
    assert (risk.grouping.wait, risk.grouping.interval) == (
        timedelta(seconds=30),
        timedelta(minutes=5),
    )
    (drift,) = route(engine, {"team": "risk", "monitor": "drift-x"})
    assert drift.grouping.wait == timedelta(0)
    assert drift.grouping.by == ("model", "monitor") and drift.grouping.repeat == timedelta(
        hours=12
    )
    (ml,) = route(engine, {"team": "forecast"})
    assert ml.grouping == engine.grouping


def test_no_routes_means_no_notifications(alerting):
    h = alerting(NULLS, "version: 1\nstate: state/state.db\n" + RECEIVERS)
    run_table(h, "nulls", [(0, V, "firing", "")])
    assert h.outbox() == []


def test_alerts_carry_model_monitor_and_result_labels(alerting):
    h = alerting(
        """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount, critical: {above: 0.01},
     labels: {owner: payments}}
"""
    )
    h.step(0, h.result("nulls", V, segment={"model_version": "v3"}))
    labels = h.alert("nulls", segment={"model_version": "v3"}).labels
    assert labels == {
        "team": "risk",
        "owner": "payments",
        "model": "fraud",
        "monitor": "nulls",
        "kind": "check",
        "type": "null_rate",
        "source": "requests",
        "segment": "model_version=v3",
        "model_version": "v3",
        "severity": "critical",
    }


def test_continue_sends_to_every_matching_route(alerting):
    h = alerting(NULLS, TREE.replace("{team: risk}", "{team: nobody}"))
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>fallback,FIRING>oncall"),
            (15, V, "firing", ""),
            (30, OK, "resolved", "RESOLVED>fallback,RESOLVED>oncall"),
        ],
    )


def test_per_route_grouping_splits_notifications(alerting):
    h = alerting(
        NULLS,
        engine_yaml(
            """\
routes:
  - {receivers: [slack], grouping: {by: [model, monitor]}, continue: true}
  - {receivers: [ml]}
"""
        ),
    )
    step = h.step(0, h.result("nulls", V), h.result("volume", 1))
    # by [model, monitor]: one message per monitor; by [model] (the default): one
    assert step.summary == "FIRING>ml,FIRING>slack,FIRING>slack"
    groups = sorted(
        (n["receiver"], json.dumps(n["group"], sort_keys=True)) for n in step.report.notifications
    )
    assert groups == [
        ("ml", '{"model": "fraud"}'),
        ("slack", '{"model": "fraud", "monitor": "nulls"}'),
        ("slack", '{"model": "fraud", "monitor": "volume"}'),
    ]


def test_grouping_by_a_missing_label_groups_on_the_empty_value(alerting):
    h = alerting(
        NULLS, engine_yaml("routes:\n  - {receivers: [slack], grouping: {by: [region]}}\n")
    )
    step = h.step(0, h.result("nulls", V), h.result("volume", 1))
    assert step.summary == "FIRING>slack"
    assert step.report.notifications[0]["group"] == {"region": ""}


# ---------------------------------------------------------------- silences


@pytest.mark.parametrize(
    ("text", "labels", "holds"),
    [
        ("team=risk", {"team": "risk"}, True),
        ("team=risk", {"team": "risky"}, False),
        ("team!=risk", {"team": "ops"}, True),
        ("team!=risk", {}, True),
        ("team=~ri.*", {"team": "risk"}, True),
        ("team=~ri", {"team": "risk"}, False),  # anchored, as in Alertmanager
        ("team!~ri.*", {"team": "risk"}, False),
        ("team=", {}, True),  # an empty value matches a missing label
        ("monitor=a=b", {"monitor": "a=b"}, True),
    ],
)
def test_matchers(text, labels, holds):
    assert matcher_holds(parse_matcher(text), labels) is holds


@pytest.mark.parametrize("text", ["team~risk", "=risk", "9team=x", "team=~(", "team"])
def test_bad_matchers_are_refused(text):
    with pytest.raises(ValueError, match="not a"):
        parse_matcher(text)


def test_silenced_only_inside_its_time_span():
    s = [
        {
            "id": "s1",
            "matchers": [["team", "=", "risk"]],
            "starts_at": at(10),
            "ends_at": at(20),
        }
    ]
    labels = {"team": "risk"}
    assert [silenced(s, labels, at(m)) for m in (9, 10, 19, 20)] == [None, "s1", "s1", None]
    assert silenced(s, {"team": "ops"}, at(15)) is None


def test_a_silence_mutes_and_its_expiry_unmutes(alerting):
    h = alerting(NULLS)
    sid = add_silence(h.store, ["monitor=nulls"], timedelta(hours=1), "deploy", "ana", at(0))
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", ""),
            (15, V, "firing", ""),
            (45, V, "firing", ""),
            (60, V, "firing", "FIRING>slack"),  # the silence ended at 60
            (75, V, "firing", ""),
        ],
    )
    assert silence_listing(h.store, at(75))[0]["id"] == sid
    assert silence_listing(h.store, at(75))[0]["active"] is False


def test_a_silence_added_while_firing_mutes_repeats_and_expiring_it_notifies_again(alerting):
    h = alerting(NULLS, engine_yaml("routes:\n  - {receivers: [slack], grouping: {repeat: 1h}}\n"))
    run_table(h, "nulls", [(0, V, "firing", "FIRING>slack")])
    sid = add_silence(
        h.store, ["team=~ri.*", "severity=critical"], timedelta(days=1), "x", None, at(5)
    )
    run_table(h, "nulls", [(15, V, "firing", ""), (60, V, "firing", ""), (120, V, "firing", "")])
    assert expire_silence(h.store, sid, at(125)) is True
    assert expire_silence(h.store, sid, at(126)) is False  # no longer active
    run_table(h, "nulls", [(130, V, "firing", "FIRING>slack")])


def test_a_silence_only_mutes_the_alerts_it_matches(alerting):
    h = alerting(NULLS)
    add_silence(h.store, ["monitor=volume"], timedelta(hours=1), "known", None, at(0))
    step = h.step(0, h.result("nulls", V), h.result("volume", 1))
    assert step.summary == "FIRING>slack"
    assert "nulls" in step.sent[0].body and "volume" not in step.sent[0].body
    listing = alert_listing(h.store, at(1))
    muted = {a["monitor"]: a["silenced_by"] is not None for a in listing["alerts"]}
    assert muted == {"nulls": False, "volume": True}
    assert "silenced by" in listing_text(listing)


def test_silence_text_shows_one_silence_a_line_active_first(alerting):
    h = alerting(NULLS)
    assert silence_text(silence_listing(h.store, at(0))) == "no silences"
    old = add_silence(h.store, ["monitor=nulls"], timedelta(hours=1), "deploy", "ana", at(0))
    new = add_silence(h.store, ["team!=ops", "model=~fr.*"], timedelta(hours=3), "why", None, at(0))
    assert silence_text(silence_listing(h.store, at(90))).splitlines() == [
        f"{new}  active   until 2026-11-27T18:00:00Z  team!=ops model=~fr.*  — why (unknown)",
        f"{old}  expired  until 2026-11-27T16:00:00Z  monitor=nulls  — deploy (ana)",
    ]


def test_silence_cli_add_list_expire(alerting, cli, tmp_path: Path):
    h = alerting(NULLS)
    # The silence commands only touch the state db; a receiver-less engine.yaml
    # sharing it keeps Apprise's URL checks out of three CLI start-ups.
    cli_dir = tmp_path / "cli"
    (cli_dir / "models").mkdir(parents=True)
    (cli_dir / "engine.yaml").write_text(f"version: 1\nstate: {h.config.engine.state}\n")
    (cli_dir / "models" / "fraud.yaml").write_text(MODEL_HEAD + NULLS)

    added = cli(
        "silence", "add", "-c", str(cli_dir), "--match", "monitor=nulls",
        "--match", "team=~ri.*", "--for", "2h", "--comment", "deploy", "--author", "ana",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    sid = added.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", sid)

    listed = cli("silence", "list", "-c", str(cli_dir), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["matchers"], row["active"]) == (
        sid,
        ["monitor=nulls", "team=~ri.*"],
        True,
    )
    assert (row["comment"], row["created_by"]) == ("deploy", "ana")
    starts = datetime.fromisoformat(row["starts_at"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(row["ends_at"].replace("Z", "+00:00"))
    assert ends - starts == timedelta(hours=2)

    # the library sees the CLI's silence: a firing alert inside its span is muted
    h.restart()
    assert h.step_at(starts, h.result("nulls", V)).summary == ""

    expired = cli("silence", "expire", "-c", str(cli_dir), sid)
    assert expired.returncode == 0, expired.stderr
    assert expired.stdout.strip() == f"expired {sid}"
    now = datetime.now(UTC) + timedelta(seconds=1)
    (after,) = silence_listing(h.store, now)
    assert after["active"] is False
    assert h.step_at(now, h.result("nulls", V)).summary == "FIRING>slack"  # unmuted


# ---------------------------------------------------------------- inhibition


DRIFT = """\
checks:
  - {name: volume, source: requests, type: row_count, critical: {below: 10}}
drift:
  - name: features
    source: requests
    reference: training
    columns: [amount, country]
    drift_share: {critical: {above: 0.3}}
"""

TOP = {
    "top": [
        {"column": "amount", "method": "wasserstein", "value": 0.31},
        {"column": "country", "method": "jensenshannon", "value": 0.2},
    ]
}
COLUMN_THRESHOLD = {"warn": {"at_or_above": 0.1}}


def drift_results(h, share: float, amount: str = "warn", country: str = "warn"):
    return [
        h.result("features", share, details=TOP if share > 0 else {}),
        h.result("features", 0.31, status=amount, column="amount", threshold=COLUMN_THRESHOLD),
        h.result("features", 0.2, status=country, column="country", threshold=COLUMN_THRESHOLD),
        h.result("volume", 500),
    ]


def notified(h, step) -> list[tuple[str, str | None]]:
    alerts = h.alerts()
    found = [
        (alerts[i].monitor, alerts[i].column)
        for n in step.report.notifications
        for i in n["alerts"]
    ]
    return sorted(found, key=lambda mc: (mc[0], mc[1] or ""))


def test_default_inhibition_a_critical_drift_share_mutes_its_column_warnings(alerting):
    h = alerting(DRIFT)
    step = h.step(0, *drift_results(h, 1.0))
    assert step.summary == "FIRING>slack"
    assert notified(h, step) == [("features", None)]
    assert h.state("features", column="amount") == "firing"  # firing, but muted
    assert "top drifting columns: amount (wasserstein 0.31), country (jensenshannon 0.2)" in (
        step.sent[0].body
    )
    # the share drops below its threshold: the column warnings are no longer muted
    step = h.step(15, *drift_results(h, 0.0))
    assert step.summary == "FIRING>slack"
    assert notified(h, step) == [
        ("features", None),
        ("features", "amount"),
        ("features", "country"),
    ]
    assert "[RESOLVED] fraud / features" in step.sent[0].body


def test_inhibition_is_per_segment(alerting):
    h = alerting(DRIFT)
    step = h.step(
        0,
        h.result("features", 1.0, segment={"v": "1"}),
        h.result("features", 0.5, status="warn", column="amount", segment={"v": "2"}),
    )
    assert notified(h, step) == [("features", None), ("features", "amount")]


def test_a_pending_source_does_not_inhibit(alerting):
    h = alerting(DRIFT.replace("drift_share:", "for: 2\n    drift_share:"))
    assert h.step(0, *drift_results(h, 0.0)).summary == ""  # columns pending
    step = h.step(15, *drift_results(h, 1.0))
    assert h.state("features") == "pending"
    assert h.state("features", column="amount") == "firing"
    assert notified(h, step) == [("features", "amount"), ("features", "country")]


def test_empty_inhibit_list_disables_inhibition(alerting):
    h = alerting(DRIFT, engine_yaml("routes:\n  - {receivers: [slack]}\ninhibit: []\n"))
    step = h.step(0, *drift_results(h, 1.0))
    assert notified(h, step) == [
        ("features", None),
        ("features", "amount"),
        ("features", "country"),
    ]


def test_custom_inhibit_rule(alerting):
    h = alerting(
        DRIFT,
        engine_yaml(
            """\
routes:
  - {receivers: [slack]}
inhibit:
  - source_match: {monitor: volume}
    target_match: {team: risk}
    equal: [model]
"""
        ),
    )
    # no data flowing: the volume alert mutes every other alert of the model
    step = h.step(0, *drift_results(h, 1.0)[:3], h.result("volume", 1))
    assert notified(h, step) == [("volume", None)]
    # volume resolves; the default rule is replaced, not extended
    step = h.step(15, *drift_results(h, 1.0))
    assert notified(h, step) == [
        ("features", None),
        ("features", "amount"),
        ("features", "country"),
        ("volume", None),
    ]


def test_a_silenced_source_still_inhibits(alerting):
    h = alerting(DRIFT)
    add_silence(h.store, ["type=drift_share"], timedelta(hours=2), "retraining", None, at(0))
    step = h.step(0, *drift_results(h, 1.0))
    assert step.summary == ""


def test_a_column_without_data_does_not_mute_another_columns_drift(alerting):
    h = alerting(
        DRIFT.replace("drift_share:", "policy: {insufficient_data: alert}\n    drift_share:")
    )
    step = h.step(
        0,
        h.result("features", 0.0),
        h.result("features", 0.31, status="warn", column="amount", threshold=COLUMN_THRESHOLD),
        h.result("features", "insufficient_data", column="country"),
    )
    assert h.alert("features", column="country").severity == "warn"  # column_severity
    assert notified(h, step) == [("features", "amount"), ("features", "country")]


# ---------------------------------------------------------------- time intervals


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


FRI, SAT, SUN, MON = (utc(2026, 11, day, 12) for day in (27, 28, 29, 30))
SAT_IN_NEW_YORK = TimeInterval(weekdays=("saturday",), location="America/New_York")
BERLIN_2_TO_4 = TimeInterval(times=(TimeRange("02:00", "04:00"),), location="Europe/Berlin")


@pytest.mark.parametrize(
    ("interval", "when", "inside"),
    [
        (TimeInterval(weekdays=("saturday", "sunday")), FRI, False),
        (TimeInterval(weekdays=("saturday", "sunday")), SAT, True),
        (TimeInterval(weekdays=("saturday", "sunday")), SUN, True),
        (TimeInterval(weekdays=("monday:friday",)), FRI, True),
        (TimeInterval(weekdays=("monday:friday",)), SUN, False),
        (TimeInterval(weekdays=("sunday:monday",)), MON, True),  # weeks start on Sunday
        # times: start inclusive, end exclusive, 24:00 allowed
        (TimeInterval(times=(TimeRange("12:00", "13:00"),)), FRI, True),
        (TimeInterval(times=(TimeRange("11:00", "12:00"),)), FRI, False),
        (TimeInterval(times=(TimeRange("23:00", "24:00"),)), utc(2026, 11, 27, 23, 59), True),
        # days of month, negative from the month's end
        (TimeInterval(days_of_month=("-1",)), utc(2026, 11, 30), True),
        (TimeInterval(days_of_month=("-1",)), utc(2027, 2, 28), True),
        (TimeInterval(days_of_month=("-1",)), utc(2028, 2, 28), False),  # leap year
        (TimeInterval(days_of_month=("-3:-1",)), utc(2026, 11, 28), True),
        (TimeInterval(days_of_month=("1:5",)), utc(2026, 11, 5), True),
        (TimeInterval(days_of_month=("1:5",)), utc(2026, 11, 6), False),
        (TimeInterval(months=("december", "january:february")), utc(2027, 2, 1), True),
        (TimeInterval(months=("11",)), FRI, True),
        (TimeInterval(months=("1:3",)), FRI, False),
        # every given field must hold
        (TimeInterval(weekdays=("friday",), times=(TimeRange("13:00", "14:00"),)), FRI, False),
        # location: Saturday 03:00 UTC is still Friday evening in New York
        (TimeInterval(weekdays=("saturday",)), utc(2026, 11, 28, 3), True),
        (SAT_IN_NEW_YORK, utc(2026, 11, 28, 3), False),
        (SAT_IN_NEW_YORK, utc(2026, 11, 28, 5), True),
        # daylight saving: 02:00-04:00 Berlin is 01:00 UTC in winter, 00:00 UTC in summer
        (BERLIN_2_TO_4, utc(2026, 11, 29, 1, 30), True),
        (BERLIN_2_TO_4, utc(2026, 7, 5, 1, 30), True),
        (BERLIN_2_TO_4, utc(2026, 7, 5, 2, 30), False),
    ],
)  # fmt: skip
def test_time_intervals(interval, when, inside):
    assert in_interval(interval, when) is inside


MUTED = engine_yaml(
    """\
routes:
  - {match: {severity: critical}, receivers: [oncall], continue: true}
  - {receivers: [slack], mute_time_intervals: [weekends, maintenance]}
time_intervals:
  weekends:
    - {weekdays: [saturday, sunday], location: America/New_York}
  maintenance:
    - {weekdays: [wednesday], times: [{start: "02:00", end: "04:00"}], location: Europe/Berlin}
"""
)

# minutes after T0 (Friday 15:00 UTC)
SAT_10H_UTC = 19 * 60
MON_01H_UTC = 58 * 60  # still Sunday evening in New York
MON_05H_UTC = 62 * 60  # Monday 00:00 in New York


def test_mute_time_intervals_hold_notifications_until_they_end(alerting):
    h = alerting(NULLS, MUTED)
    run_table(
        h,
        "nulls",
        [
            (SAT_10H_UTC, 0.007, "firing", ""),  # weekend: slack muted (warn: no oncall)
            (SAT_10H_UTC + 600, 0.007, "firing", ""),
            (MON_01H_UTC, 0.007, "firing", ""),
            (MON_05H_UTC, 0.007, "firing", "FIRING>slack"),
            (MON_05H_UTC + 15, 0.007, "firing", ""),
        ],
    )


def test_a_muted_route_does_not_mute_other_routes_and_gets_resolutions_later(alerting):
    h = alerting(NULLS, MUTED)
    run_table(
        h,
        "nulls",
        [
            (0, V, "firing", "FIRING>oncall,FIRING>slack"),  # Friday: nothing muted
            (SAT_10H_UTC, OK, "resolved", "RESOLVED>oncall"),
            (SAT_10H_UTC + 15, OK, "inactive", ""),
            (MON_05H_UTC, OK, "inactive", "RESOLVED>slack"),
        ],
    )


def test_maintenance_window_in_its_own_time_zone(alerting):
    h = alerting(NULLS, MUTED)
    wednesday_0130_utc = (datetime(2026, 12, 2, 1, 30, tzinfo=UTC) - T0).total_seconds() / 60
    run_table(h, "nulls", [(wednesday_0130_utc, 0.007, "firing", "")])  # 02:30 in Berlin
    run_table(h, "nulls", [(wednesday_0130_utc + 90, 0.007, "firing", "FIRING>slack")])
