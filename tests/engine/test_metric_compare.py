"""``compare: {offset, mode}`` on metrics: the change against the same metric one
offset earlier, with delayed labels joined as known at each side's time. The
expected values are confusion counts and means worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from conftest import AT, src

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def recall_logs(h) -> dict:
    """Predictions in today's window and in the one a week earlier; labels arrive
    later (some only after the earlier run's time)."""
    now = [AT - timedelta(hours=k) for k in (2, 4, 6, 8, 10, 12)]  # ids 1..6
    then = [t - WEEK for t in (now * 2)[:8]]  # ids 11..18
    preds = pl.DataFrame(
        {
            "ts": now + then,
            "id": [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16, 17, 18],
            "pred": [
                *(True, True, False, True, False, True),
                *(True, True, True, False, False, True, False, False),
            ],
        }
    )
    known_now = AT - timedelta(minutes=30)
    known_then = AT - WEEK - timedelta(minutes=30)
    late_then = AT - WEEK + timedelta(days=2)  # after the earlier run, before now
    labels = pl.DataFrame(
        {
            "lt": [known_now] * 5 + [AT + timedelta(days=3)] + [known_then] * 6 + [late_then] * 2,
            "id": [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16, 17, 18],
            # now: ids 1-6, then: ids 11-18
            "y": [
                *(True, False, True, True, False, True),
                *(True, True, True, True),
                *(False, False, True, True),
            ],
        }
    )
    h.frame("p.parquet", preds)
    h.frame("l.parquet", labels)
    return {"p": src("p.parquet"), "l": src("l.parquet", timestamp="lt")}


def recall(name: str, **kw) -> dict:
    return {
        "name": name,
        "source": "p",
        "type": "recall",
        "prediction": "pred",
        "target": "y",
        "join": {"source": "l", "on": "id"},
        "window": "1d",
        "compare": {"offset": "7d"},
        "critical": {"below": -0.1},
        **kw,
    }


def test_recall_week_over_week_with_delayed_labels(h):
    res = h.run(
        {
            "sources": recall_logs(h),
            "metrics": [
                recall("rel"),
                recall("abs", compare={"offset": "7d", "mode": "absolute"}),
                recall("guarded", min_label_coverage=0.8),
                recall("loose", min_label_coverage=0.7),
            ],
        }
    )
    by = {r.monitor: r for r in res}
    # now, ids 1-5 labelled (6's label comes after at): tp 1,4; fp 2; fn 3; tn 5
    # then, labels known at at-7d: ids 11-16: tp 11,12,13; fn 14; tn 15; fp 16
    # (17, 18 were labelled later: counting them would give 3/6, not 3/4)
    now, then = 2 / 3, 3 / 4
    rel = by["rel"]
    assert rel.value == pytest.approx((now - then) / then, abs=1e-12)  # -1/9
    assert rel.status == "critical"
    assert rel.details["current"] == pytest.approx(now)
    assert rel.details["previous"] == pytest.approx(then)
    assert rel.details["previous_rows"] == 6
    assert (rel.details["tp"], rel.details["fp"], rel.details["fn"], rel.details["tn"]) == (
        2,
        1,
        1,
        1,
    )
    prev = rel.details["previous_details"]
    assert (prev["tp"], prev["fp"], prev["fn"], prev["tn"]) == (3, 1, 1, 1)
    assert prev["label_coverage"] == pytest.approx(6 / 8)
    assert rel.details["label_coverage"] == pytest.approx(5 / 6)
    assert rel.window_end == AT and rel.window_start == AT - DAY

    ab = by["abs"]
    assert ab.value == pytest.approx(now - then, abs=1e-12)  # -1/12
    assert (ab.status, ab.details["mode"]) == ("ok", "absolute")

    # the guard applies on both sides: 5/6 passes 0.8, the earlier 6/8 does not
    guarded = by["guarded"]
    assert (guarded.value, guarded.status) == (None, "insufficient_data")
    assert guarded.details["reason"] == (
        "comparison window: label coverage 0.75 is below min_label_coverage 0.8"
    )
    assert by["loose"].value == pytest.approx(-1 / 9, abs=1e-12)


def test_compare_shifts_the_delayed_window(h):
    hours = [2.5, 2.5, 1.0, 3.5]  # ago; the window is (at-3h, at-2h] with delay 2h
    times = [AT - timedelta(hours=x) for x in hours]
    df = pl.DataFrame(
        {
            "ts": times + [t - WEEK for t in times],
            "x": [10.0, 20.0, 1000.0, -1000.0, 4.0, 6.0, 999.0, -999.0],
        }
    )
    h.frame("d.parquet", df)
    mean = {"name": "m", "source": "s", "type": "mean", "column": "x", "delay": "2h"}
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "metrics": [
                {**mean, "compare": {"offset": "7d"}, "warn": {"above": 1.5}},
                {
                    **mean,
                    "name": "m-abs",
                    "compare": {"offset": "7d", "mode": "absolute"},
                    "warn": {"above": 10},
                },
                {**mean, "name": "m-short", "compare": {"offset": "30d"}, "warn": {"above": 1}},
                {
                    **mean,
                    "name": "m-rows",
                    "compare": {"offset": "7d"},
                    "min_rows": 3,
                    "warn": {"above": 1},
                },
            ],
        }
    )
    by = {r.monitor: r for r in res}
    # now: mean(10, 20) = 15; a week earlier: mean(4, 6) = 5
    assert (by["m"].value, by["m"].status) == (2.0, "warn")
    assert (by["m"].details["current"], by["m"].details["previous"]) == (15.0, 5.0)
    assert (by["m-abs"].value, by["m-abs"].status) == (10.0, "ok")
    short = by["m-short"]  # nothing 30 days earlier
    assert (short.value, short.status) == (None, "insufficient_data")
    assert short.details["reason"] == "comparison window: no rows in the window"
    # min_rows guards the current side (2 rows) before anything is compared
    assert by["m-rows"].details["reason"] == "2 rows, min_rows is 3"


def test_compare_relative_from_zero_is_undefined(h):
    df = pl.DataFrame(
        {"ts": [AT - timedelta(minutes=5), AT - WEEK - timedelta(minutes=5)], "x": [3.0, 0.0]}
    )
    h.frame("d.parquet", df)
    base = {"source": "s", "type": "max", "column": "x", "compare": {"offset": "7d"}}
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "metrics": [
                {**base, "name": "rel", "critical": {"above": 1}},
                {
                    **base,
                    "name": "abs",
                    "compare": {"offset": "7d", "mode": "absolute"},
                    "critical": {"above": 1},
                },
            ],
        }
    )
    by = {r.monitor: r for r in res}
    assert by["rel"].status == "insufficient_data"
    assert by["rel"].details["reason"] == (
        "relative change is undefined: the earlier value is 0 or null"
    )
    assert (by["abs"].value, by["abs"].status) == (3.0, "critical")
