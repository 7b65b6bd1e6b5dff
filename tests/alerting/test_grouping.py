"""``plan_dispatch`` alone: what is due, to whom, with a fake clock and no store.

Each table row is ``(minutes, alerts, expected)``: the alerts' states at T0 +
minutes (``{monitor: "firing/critical"}``), and the notifications due then
(``"firing:a,b"``, ``""`` for none). The log the plan returns is fed to the next
row, as the store would keep it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from alerting_harness import T0, at

from rulesengine.alerting.grouping import DispatchPlan, GroupLog, plan_dispatch
from rulesengine.alerting.state import AlertState
from rulesengine.spec.model import EngineSpec, GroupingSpec, RouteSpec, TimeInterval, TimeRange

ENGINE = EngineSpec(
    file=None,
    root=".",
    routes=(RouteSpec(receivers=("slack",)),),
    grouping=GroupingSpec(by=("model",)),  # wait 30s, interval 5m, repeat 4h
)


def alert(monitor: str, spec: str, model: str = "fraud") -> AlertState:
    state, _, severity = spec.partition("/")
    labels = {"model": model, "monitor": monitor, "segment": "", "severity": severity}
    return AlertState(monitor, model, monitor, {}, None, labels, state, severity or None)


def alerts(states: Mapping[str, str]) -> dict[str, AlertState]:
    return {m: alert(m, spec) for m, spec in states.items()}


def summary(plan: DispatchPlan) -> str:
    return " ".join(f"{d.kind}:{','.join(d.alerts)}" for d in plan.due)


def run_table(
    table: Iterable[tuple[float, Mapping[str, str], str]],
    *,
    engine: EngineSpec = ENGINE,
    flush: bool = False,
    silences: list[dict[str, Any]] | None = None,
) -> dict[str, GroupLog]:
    logs: dict[str, GroupLog] = {}
    for minutes, states, want in table:
        now = at(minutes)
        plan = plan_dispatch(engine, alerts(states), silences or [], logs, now, flush=flush)
        assert summary(plan) == want, f"t={minutes}m {dict(states)}"
        logs = plan.logs
    return logs


def test_a_new_group_waits_then_repeats_and_news_waits_for_the_interval():
    logs = run_table(
        [
            (0, {"a": "firing/warn"}, ""),  # group_wait: 30s
            (0.25, {"a": "firing/warn"}, ""),
            (0.5, {"a": "firing/warn"}, "firing:a"),
            (1, {"a": "firing/warn", "b": "firing/warn"}, ""),  # news waits for the interval
            (5.5, {"a": "firing/warn", "b": "firing/warn"}, "firing:a,b"),
            (60, {"a": "firing/warn", "b": "firing/warn"}, ""),
            (245.5, {"a": "firing/warn", "b": "firing/warn"}, "firing:a,b"),  # repeat: 4h
            (251, {"a": "firing/critical", "b": "firing/warn"}, "firing:a,b"),  # severity: news
        ]
    )
    (log,) = logs.values()
    assert log == GroupLog(at(0), at(251), {"a": "critical", "b": "warn"})


def test_flush_skips_the_wait_and_re_running_one_time_sends_nothing_new():
    run_table(
        [(0, {"a": "firing/critical"}, "firing:a"), (0, {"a": "firing/critical"}, "")],
        flush=True,
    )


def test_resolved_is_said_once_then_the_group_is_forgotten():
    logs = run_table(
        [
            (0, {"a": "firing/warn", "b": "firing/warn"}, "firing:a,b"),
            (10, {"a": "resolved/warn", "b": "firing/warn"}, "firing:a,b"),
            (20, {"a": "inactive/warn", "b": "resolved/warn"}, "resolved:b"),
            (30, {"a": "inactive/warn", "b": "inactive/warn"}, ""),
        ],
        flush=True,
    )
    assert logs == {}


def test_without_send_resolved_resolutions_are_quiet():
    quiet = replace(ENGINE, routes=(RouteSpec(receivers=("slack",), send_resolved=False),))
    logs = run_table(
        [
            (0, {"a": "firing/warn", "b": "firing/warn"}, "firing:a,b"),
            (10, {"a": "resolved/warn", "b": "firing/warn"}, ""),
            (20, {"a": "inactive/warn", "b": "resolved/warn"}, ""),
        ],
        engine=quiet,
        flush=True,
    )
    assert logs == {}


def test_a_silenced_alert_leaves_the_log_quietly_and_counts_as_new_when_it_ends():
    silence = {
        "id": "s1",
        "matchers": [["monitor", "=", "b"]],
        "starts_at": at(5),
        "ends_at": at(15),
    }
    logs = run_table(
        [
            (0, {"a": "firing/warn", "b": "firing/warn"}, "firing:a,b"),
            (6, {"a": "firing/warn", "b": "firing/warn"}, ""),
            (15, {"a": "firing/warn", "b": "firing/warn"}, "firing:a,b"),
        ],
        flush=True,
        silences=[silence],
    )
    assert next(iter(logs.values())).notified == {"a": "warn", "b": "warn"}


def test_a_mute_interval_keeps_the_group_and_sends_nothing():
    night = {"night": (TimeInterval(times=(TimeRange("15:00", "16:00"),)),)}
    muted = replace(
        ENGINE,
        routes=(RouteSpec(receivers=("slack",), mute_time_intervals=("night",)),),
        time_intervals=night,
    )
    logs = run_table(
        [
            (0, {"a": "firing/warn"}, ""),
            (59, {"a": "firing/warn"}, ""),
            (60, {"a": "firing/warn"}, "firing:a"),
        ],
        engine=muted,
        flush=True,
    )
    (log,) = logs.values()
    assert (log.first_seen, log.last_notified_at) == (at(0), at(60))


def test_silences_are_checked_at_the_evaluation_time():
    # a silence from 100 to 200 minutes mutes evaluations inside that span only,
    # whenever the planner runs (a re-run --at, a backfill tick)
    silence = {"id": "s1", "matchers": [], "starts_at": at(100), "ends_at": at(200)}
    firing = alerts({"a": "firing/warn"})
    during = plan_dispatch(ENGINE, firing, [silence], {}, at(150), flush=True)
    assert (summary(during), during.logs) == ("", {})
    before = plan_dispatch(ENGINE, firing, [silence], {}, at(50), flush=True)
    assert summary(before) == "firing:a"
    after = plan_dispatch(ENGINE, firing, [silence], {}, at(200), flush=False)
    assert summary(after) == ""  # group_wait counts from now, the evaluation time
    assert [log.first_seen for log in after.logs.values()] == [at(200)]


def test_groups_split_by_their_labels_and_a_routed_away_group_is_dropped():
    states = {"fraud": alert("a", "firing/warn"), "churn": alert("a", "firing/warn", "churn")}
    states["churn"].id = "churn"
    states["fraud"].id = "fraud"
    orphan = {"9|{}": GroupLog(T0 - timedelta(days=1), T0, {"x": "warn"})}
    plan = plan_dispatch(ENGINE, states, [], orphan, T0, flush=True)
    assert [(d.group.labels, d.alerts, d.group.route.receivers) for d in plan.due] == [
        ({"model": "fraud"}, ("fraud",), ("slack",)),
        ({"model": "churn"}, ("churn",), ("slack",)),
    ]
    assert sorted(plan.logs) == ['0|{"model": "churn"}', '0|{"model": "fraud"}']


@pytest.mark.parametrize("critical_fires", [True, False])
def test_an_inhibited_alert_is_not_firing_for_its_group(critical_fires):
    states = {
        "warn": alert("m", "firing/warn"),
        "crit": alert("m", ("firing" if critical_fires else "resolved") + "/critical"),
    }
    states["warn"].id, states["crit"].id = "warn", "crit"
    plan = plan_dispatch(ENGINE, states, [], {}, T0, flush=True)
    assert summary(plan) == ("firing:crit" if critical_fires else "firing:warn")
