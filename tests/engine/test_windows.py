"""Windows, timestamps, segments and delayed labels.

Each evaluation at ``at`` reads rows with ``at - delay - window < ts <= at - delay``;
whatever the timestamps look like in the files, the answer is computed here by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from conftest import AT, get, minutes_ago, one, src, stamps, write_frame, write_ndjson_rows

US = timedelta(microseconds=1)


def row_count(name: str = "rc", **kw) -> dict:
    return {"name": name, "source": "s", "type": "row_count", "critical": {"below": 0}, **kw}


def count_rows(h, path: str, df: pl.DataFrame | None = None, checks=None, **source):
    if df is not None:
        write_frame(h.root / path, df)
    res = h.run({"sources": {"s": src(path, **source)}, "checks": checks or [row_count()]})
    return res


# ------------------------------------------------------------------ window edges


def test_window_is_open_at_start_and_closed_at_end(h):
    ts = [
        AT - timedelta(hours=1),  # excluded: exactly at - window
        AT - timedelta(hours=1) + US,  # included
        minutes_ago(30),  # included
        AT,  # included: exactly at
        AT + US,  # excluded: after at
        AT - timedelta(hours=1) - US,  # excluded
    ]
    res = count_rows(h, "d.parquet", pl.DataFrame({"ts": ts, "i": range(6)}))
    r = one(res, "rc")
    assert r.value == 3.0
    assert (r.window_start, r.window_end) == (AT - timedelta(hours=1), AT)


def test_window_edges_with_sum_identify_the_rows(h):
    ts = [AT - timedelta(hours=1), AT - timedelta(hours=1) + US, AT, AT + US]
    df = pl.DataFrame({"ts": ts, "v": [1.0, 10.0, 100.0, 1000.0]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "kpis": [{"name": "k", "source": "s", "expr": "sum(v)", "critical": {"above": 1e9}}],
        }
    )
    assert one(res, "k").value == 110.0


def test_delay_shifts_the_window(h):
    # delay 2h, window 1h: (at-3h, at-2h]
    ts = [
        AT - timedelta(hours=3),  # excluded
        AT - timedelta(hours=3) + US,  # included
        AT - timedelta(hours=2, minutes=30),  # included
        AT - timedelta(hours=2),  # included
        AT - timedelta(hours=2) + US,  # excluded
        minutes_ago(5),  # excluded
    ]
    res = count_rows(
        h,
        "d.parquet",
        pl.DataFrame({"ts": ts}),
        checks=[row_count(), row_count("rc-delayed", delay="2h")],
    )
    assert one(res, "rc").value == 1.0
    d = one(res, "rc-delayed")
    assert d.value == 3.0
    assert (d.window_start, d.window_end) == (AT - timedelta(hours=3), AT - timedelta(hours=2))


def test_evaluation_delay_and_window_defaults_and_monitor_overrides(h):
    ts = [minutes_ago(m) for m in (1, 10, 20, 40, 70, 100, 130, 200)]
    h.frame("d.parquet", pl.DataFrame({"ts": ts}))
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "evaluation": {"window": "30m", "delay": "15m"},
            "checks": [
                row_count("default"),  # (at-45m, at-15m]: 20, 40
                row_count("wide", window="2h"),  # (at-2h15m, at-15m]: 20, 40, 70, 100, 130
                row_count("nodelay", delay="0s"),  # (at-30m, at]: 1, 10, 20
                row_count("both", window="1h", delay="1h"),  # (at-2h, at-1h]: 70, 100
            ],
        }
    )
    assert one(res, "default").value == 2.0
    assert one(res, "wide").value == 5.0
    assert one(res, "nodelay").value == 3.0
    assert one(res, "both").value == 2.0


# ------------------------------------------------------------------ timestamp flavours


def _edge_instants() -> tuple[list[datetime], int]:
    """Instants around the window edges and how many of them are inside."""
    inst = [
        AT - timedelta(hours=1),  # out
        AT - timedelta(hours=1) + timedelta(seconds=1),  # in
        minutes_ago(30),  # in
        AT,  # in
        AT + timedelta(seconds=1),  # out
        AT - timedelta(days=1),  # out
    ]
    return inst, 3


def test_tz_aware_datetimes_in_another_zone(h):
    inst, inside = _edge_instants()
    berlin = [t.astimezone(ZoneInfo("Europe/Berlin")) for t in inst]
    df = pl.DataFrame({"ts": pl.Series(berlin, dtype=pl.Datetime("ms", "Europe/Berlin"))})
    assert df.schema["ts"] == pl.Datetime("ms", "Europe/Berlin")
    res = count_rows(h, "d.parquet", df)
    assert one(res, "rc").value == inside


def test_naive_datetimes_with_source_timezone(h):
    inst, inside = _edge_instants()
    ny = [t.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None) for t in inst]
    df = pl.DataFrame({"ts": pl.Series(ny, dtype=pl.Datetime("ns"))})
    res = count_rows(h, "ny.parquet", df, timezone="America/New_York")
    assert one(res, "rc").value == inside
    # the same naive values read as UTC land five hours earlier: none inside
    res_utc = count_rows(h, "ny.parquet")
    assert one(res_utc, "rc").value == 0


def test_naive_datetimes_default_to_utc(h):
    inst, inside = _edge_instants()
    naive = [t.replace(tzinfo=None) for t in inst]
    res = count_rows(h, "d.parquet", pl.DataFrame({"ts": naive}))
    assert one(res, "rc").value == inside


@pytest.mark.parametrize(
    ("unit", "scale"),
    [("s", 1), ("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)],
)
@pytest.mark.parametrize("explicit", [True, False])
def test_epoch_numbers(h, unit, scale, explicit):
    inst, inside = _edge_instants()
    epoch = [round(t.timestamp()) * scale for t in inst]
    extra = {"timestamp_unit": unit} if explicit else {}
    res = count_rows(h, "d.parquet", pl.DataFrame({"ts": epoch}), **extra)
    assert one(res, "rc").value == inside


def test_epoch_float_seconds(h):
    base = AT.timestamp()
    epoch = [base - 3600.0, base - 3599.5, base - 0.25, base, base + 0.5]
    res = count_rows(h, "d.parquet", pl.DataFrame({"ts": epoch}), timestamp_unit="s")
    assert one(res, "rc").value == 3
    res = count_rows(h, "d.parquet", pl.DataFrame({"ts": epoch}))
    assert one(res, "rc").value == 3


def test_epoch_milliseconds_in_csv(h):
    inst, inside = _edge_instants()
    epoch = [int(t.timestamp() * 1000) for t in inst]
    df = pl.DataFrame({"ts": epoch, "x": range(len(epoch))})
    res = count_rows(h, "d.csv", df, timestamp_unit="ms")
    assert one(res, "rc").value == inside


ISO_CASES = [
    ("2026-11-27T14:00:00Z", False),  # exactly at - 1h
    ("2026-11-27T14:00:00.000001Z", True),
    ("2026-11-27T15:00:00Z", True),  # exactly at
    ("2026-11-27T15:00:00.000001Z", False),
    ("2026-11-27T16:30:00+02:00", True),  # 14:30Z
    ("2026-11-27T09:59:59-05:00", True),  # 14:59:59Z
    ("2026-11-27T10:00:01-05:00", False),  # 15:00:01Z
    ("2026-11-27T16:00:00+01:00", True),  # exactly at
    ("2026-11-27T15:00:00+01:00", False),  # exactly at - 1h
    ("2026-11-27 14:30:00+00:00", True),
]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_iso_strings_with_z_and_offsets(h, fmt):
    values = [v for v, _ in ISO_CASES]
    expected = sum(inside for _, inside in ISO_CASES)
    path = f"d.{fmt}"
    if fmt == "csv":
        (h.root / path).write_text("ts,x\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values)))
    else:
        write_ndjson_rows(h.root / path, [{"ts": v, "x": i} for i, v in enumerate(values)])
    res = count_rows(h, path)
    assert one(res, "rc").value == expected


def test_naive_iso_strings_use_source_timezone(h):
    values = [
        "2026-11-27 15:00:00",  # Berlin = 14:00Z: excluded
        "2026-11-27 15:00:01",  # included
        "2026-11-27T15:30:00",  # included
        "2026-11-27T16:00:00.000",  # exactly at: included
        "2026-11-27 16:00:01",  # excluded
        "2026-11-27 15:45",  # included (no seconds)
    ]
    write_ndjson_rows(h.root / "d.ndjson", [{"ts": v} for v in values])
    res = count_rows(h, "d.ndjson", timezone="Europe/Berlin")
    assert one(res, "rc").value == 4
    # read as UTC, only "2026-11-27 15:00:00" (exactly at) is inside
    res = count_rows(h, "d.ndjson")
    assert one(res, "rc").value == 1


def test_iso_string_with_zone_without_seconds(h):
    write_ndjson_rows(
        h.root / "d.ndjson", [{"ts": "2026-11-27T14:30Z"}, {"ts": "2026-11-27T14:40:00Z"}]
    )
    res = count_rows(h, "d.ndjson")
    assert one(res, "rc").value == 2


def test_timezone_applies_to_naive_only(h):
    # a tz-aware column is not shifted by the source timezone
    inst, inside = _edge_instants()
    df = pl.DataFrame({"ts": pl.Series(inst, dtype=pl.Datetime("us", "UTC"))})
    res = count_rows(h, "d.parquet", df, timezone="Asia/Tokyo")
    assert one(res, "rc").value == inside


# ------------------------------------------------------------------ segments


def test_segments_overall_and_per_value(h):
    rng = np.random.default_rng(99)
    n = 300
    version = rng.choice(["v1", "v2", "v3"], size=n, p=[0.5, 0.3, 0.2])
    x = rng.normal(size=n)
    null = rng.random(n) < 0.2
    xs = pl.Series(np.where(null, np.nan, x)).fill_nan(None)
    ts = [minutes_ago(59 * (i + 0.5) / n) for i in range(n)]
    h.frame("d.parquet", pl.DataFrame({"ts": ts, "model_version": version, "x": xs}))
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "evaluation": {"segment_by": ["model_version"]},
            "checks": [
                row_count(),
                {
                    "name": "nr",
                    "source": "s",
                    "type": "null_rate",
                    "column": "x",
                    "critical": {"above": 0.2},
                },
            ],
            "metrics": [
                {
                    "name": "mean",
                    "source": "s",
                    "type": "mean",
                    "column": "x",
                    "critical": {"above": 100},
                },
                {"name": "tp", "source": "s", "type": "throughput", "critical": {"below": 0}},
            ],
        }
    )
    for name in ("rc", "nr", "mean", "tp"):
        assert len([r for r in res if r.monitor == name]) == 4, name
    assert get(res, "rc").value == n
    assert get(res, "nr").value == pytest.approx(null.mean())
    assert get(res, "mean").value == pytest.approx(x[~null].mean())
    for v in ("v1", "v2", "v3"):
        sel = version == v
        seg = {"model_version": v}
        assert get(res, "rc", seg).value == sel.sum()
        assert get(res, "rc", seg).rows == sel.sum()
        nr = get(res, "nr", seg)
        assert nr.value == pytest.approx(null[sel].mean())
        assert nr.status == ("critical" if null[sel].mean() > 0.2 else "ok")
        assert get(res, "mean", seg).value == pytest.approx(x[sel & ~null].mean())
        assert get(res, "tp", seg).value == pytest.approx(sel.sum() / 3600)


def test_segments_by_two_columns_and_monitor_override(h):
    rows = [
        ("v1", "DE"), ("v1", "DE"), ("v1", "FR"), ("v2", "DE"), ("v2", "DE"), ("v2", "DE"),
    ]  # fmt: skip
    df = pl.DataFrame({"ts": stamps(6), "v": [r[0] for r in rows], "c": [r[1] for r in rows]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "evaluation": {"segment_by": ["v"]},
            "checks": [
                row_count("by-v"),
                row_count("by-v-c", segment_by=["v", "c"]),
                row_count("overall-only", segment_by=[]),
            ],
        }
    )
    assert get(res, "by-v", {"v": "v1"}).value == 3
    assert get(res, "by-v", {"v": "v2"}).value == 3
    assert get(res, "by-v-c", {"v": "v1", "c": "DE"}).value == 2
    assert get(res, "by-v-c", {"v": "v1", "c": "FR"}).value == 1
    assert get(res, "by-v-c", {"v": "v2", "c": "DE"}).value == 3
    assert len([r for r in res if r.monitor == "by-v-c"]) == 4
    assert [dict(r.segment) for r in res if r.monitor == "overall-only"] == [{}]


def test_segment_metric_values_with_scores(h):
    # roc_auc and average precision per segment must use only that segment's rows
    rng = np.random.default_rng(5)
    n = 400
    seg = rng.choice(["a", "b"], size=n)
    y = rng.random(n) < np.where(seg == "a", 0.3, 0.6)
    score = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)
    ts = [minutes_ago(59 * (i + 0.5) / n) for i in range(n)]
    h.frame("d.parquet", pl.DataFrame({"ts": ts, "seg": seg, "score": score, "y": y}))
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "metrics": [
                {
                    "name": "auc",
                    "source": "s",
                    "type": "roc_auc",
                    "score": "score",
                    "target": "y",
                    "segment_by": ["seg"],
                    "warn": {"below": 0},
                },
                {
                    "name": "prec",
                    "source": "s",
                    "type": "precision",
                    "prediction": "score >= 0.5",
                    "target": "y",
                    "segment_by": ["seg"],
                    "warn": {"below": 0},
                },
            ],
        }
    )

    def auc(s, yy):
        pos, neg = s[yy], s[~yy]
        greater = (pos[:, None] > neg[None, :]).sum()
        ties = (pos[:, None] == neg[None, :]).sum()
        return (greater + 0.5 * ties) / (len(pos) * len(neg))

    assert get(res, "auc").value == pytest.approx(auc(score, y))
    for v in ("a", "b"):
        sel = seg == v
        assert get(res, "auc", {"seg": v}).value == pytest.approx(auc(score[sel], y[sel]))
        p = score[sel] >= 0.5
        assert get(res, "prec", {"seg": v}).value == pytest.approx((p & y[sel]).sum() / p.sum())


def test_max_segments_keeps_the_largest_with_a_warning(h):
    sizes = {"a": 5, "b": 1, "c": 4, "d": 2, "e": 3}
    seg = [k for k, n in sizes.items() for _ in range(n)]
    h.frame("d.parquet", pl.DataFrame({"ts": stamps(len(seg)), "k": seg}))
    model = h.run_model(
        {
            "sources": {"s": src("d.parquet")},
            "evaluation": {"segment_by": ["k"], "max_segments": 3},
            "checks": [row_count()],
        }
    )
    res = list(model.results)
    kept = sorted(r.segment["k"] for r in res if r.segment)
    assert kept == ["a", "c", "e"]
    assert get(res, "rc").value == 15  # overall still counts every row
    for k in kept:
        assert get(res, "rc", {"k": k}).value == sizes[k]
    assert len(model.warnings) == 1
    assert "max_segments" in model.warnings[0] and "rc" in model.warnings[0]


def test_segment_with_null_value_is_not_lost(h):
    df = pl.DataFrame({"ts": stamps(5), "k": ["a", None, "a", None, "b"]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "checks": [row_count(segment_by=["k"])],
        }
    )
    per_segment = {r.segment["k"]: r.value for r in res if r.segment}
    assert per_segment == {"a": 2, "b": 1, None: 2}
    assert sum(per_segment.values()) == get(res, "rc").value


def test_missing_segment_column_is_an_error_for_that_monitor_only(h):
    h.frame("d.parquet", pl.DataFrame({"ts": stamps(3), "k": ["a", "b", "a"]}))
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "checks": [row_count("bad", segment_by=["nope"]), row_count("good", segment_by=["k"])],
        }
    )
    assert one(res, "bad").status == "error"
    assert get(res, "good", {"k": "a"}).value == 2


# ------------------------------------------------------------------ delayed labels


def _delayed_label_setup(h):
    """Predictions in the window (at-1d-1h, at-1d]; labels arrive later.

    id  pred  labels (time → value)                       known at `at`
    1   T     at-1d+2h → T (after the window, before at)  T   tp
    2   F     at-10m → F                                  F   tn
    3   T     at+1m → T (after at)                        –   unlabelled
    4   T     at-2h → T, at-20h → F (later row first)     T   tp (latest wins)
    5   F     at-3h → T, at+1h → F (after at)             T   fn
    6   T     none                                        –   unlabelled
    7   T     (prediction outside the window) at-5m → F   –   not in window
    """
    end = AT - timedelta(days=1)
    preds = pl.DataFrame(
        {
            "ts": [end - timedelta(minutes=m) for m in (55, 45, 35, 25, 15, 0)]
            + [end - timedelta(hours=1)],
            "request_id": [1, 2, 3, 4, 5, 6, 7],
            "pred": [True, False, True, True, False, True, True],
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        }
    )
    labels = [
        {"labeled_at": end + timedelta(hours=2), "request_id": 1, "is_fraud": True},
        {"labeled_at": AT - timedelta(minutes=10), "request_id": 2, "is_fraud": False},
        {"labeled_at": AT + timedelta(minutes=1), "request_id": 3, "is_fraud": True},
        {"labeled_at": AT - timedelta(hours=2), "request_id": 4, "is_fraud": True},
        {"labeled_at": AT - timedelta(hours=20), "request_id": 4, "is_fraud": False},
        {"labeled_at": AT - timedelta(hours=3), "request_id": 5, "is_fraud": True},
        {"labeled_at": AT + timedelta(hours=1), "request_id": 5, "is_fraud": False},
        {"labeled_at": AT - timedelta(minutes=5), "request_id": 7, "is_fraud": False},
    ]
    h.frame("preds.parquet", preds)
    write_ndjson_rows(
        h.root / "labels.ndjson",
        [{**r, "labeled_at": r["labeled_at"].isoformat().replace("+00:00", "Z")} for r in labels],
    )
    return {
        "preds": src("preds.parquet"),
        "labels": src("labels.ndjson", timestamp="labeled_at"),
    }


def _joined_metric(name: str, type_: str, **kw) -> dict:
    out = {
        "name": name,
        "source": "preds",
        "type": type_,
        "prediction": "pred",
        "target": "is_fraud",
        "join": {"source": "labels", "on": "request_id"},
        "delay": "1d",
        "critical": {"below": 0},
    }
    out.update(kw)
    return out


def test_delayed_labels_join(h):
    sources = _delayed_label_setup(h)
    res = h.run(
        {
            "sources": sources,
            "metrics": [
                _joined_metric("recall", "recall"),
                _joined_metric("precision", "precision"),
                _joined_metric("accuracy", "accuracy"),
                _joined_metric("cov-low", "recall", min_label_coverage=0.6),
                _joined_metric("cov-high", "recall", min_label_coverage=0.7),
            ],
        }
    )
    # labelled: 1 tp, 2 tn, 4 tp, 5 fn
    recall = one(res, "recall")
    assert recall.value == pytest.approx(2 / 3)
    assert recall.rows == 4
    assert recall.details["label_coverage"] == pytest.approx(4 / 6)
    assert recall.details["unlabelled_rows"] == 2
    assert one(res, "precision").value == pytest.approx(1.0)
    assert one(res, "accuracy").value == pytest.approx(3 / 4)
    assert one(res, "cov-low").status == "ok"
    high = one(res, "cov-high")
    assert high.status == "insufficient_data"
    assert high.details["label_coverage"] == pytest.approx(4 / 6)


def test_delayed_labels_seen_from_an_earlier_at(h):
    """Re-running as of an earlier time sees only the labels known then."""
    sources = _delayed_label_setup(h)
    res = h.run(
        {"sources": sources, "metrics": [_joined_metric("acc", "accuracy", delay="1d")]},
        at=AT - timedelta(hours=4),
    )
    # window (at-4h-1d-1h, at-4h-1d]: none of the predictions → no_data
    assert one(res, "acc").status == "no_data"
    res = h.run(
        {
            "sources": sources,
            "metrics": [_joined_metric("acc", "accuracy", delay="20h")],
        },
        at=AT - timedelta(hours=4),
    )
    # same prediction window; labels known at at-4h: 1 (T), 4 (at-20h → F; the at-2h T is later)
    # 1: tp ; 4: pred T, label F → fp → accuracy 1/2
    r = one(res, "acc")
    assert r.value == pytest.approx(1 / 2)
    assert r.details["label_coverage"] == pytest.approx(2 / 6)


def test_delayed_labels_kpi_join(h):
    sources = _delayed_label_setup(h)
    res = h.run(
        {
            "sources": sources,
            "kpis": [
                {
                    "name": "fraud-amount",
                    "source": "preds",
                    "expr": "sum(CASE WHEN is_fraud THEN amount ELSE 0 END)",
                    "join": {"source": "labels", "on": "request_id"},
                    "delay": "1d",
                    "critical": {"above": 1e9},
                }
            ],
        }
    )
    # known fraud among window rows: ids 1, 4, 5 → 10 + 40 + 50
    assert one(res, "fraud-amount").value == pytest.approx(100.0)


def test_join_on_two_keys(h):
    preds = pl.DataFrame(
        {
            "ts": stamps(4),
            "store": ["a", "a", "b", "b"],
            "day": [1, 2, 1, 2],
            "forecast": [10.0, 20.0, 30.0, 40.0],
        }
    )
    actuals = pl.DataFrame(
        {
            "at_ts": [minutes_ago(1)] * 4,
            "store": ["a", "a", "b", "c"],
            "day": [2, 1, 2, 1],
            "units": [25.0, 8.0, 40.0, 99.0],
        }
    )
    h.frame("p.parquet", preds)
    h.frame("a.parquet", actuals)
    res = h.run(
        {
            "sources": {"s": src("p.parquet"), "act": src("a.parquet", timestamp="at_ts")},
            "metrics": [
                {
                    "name": "mae",
                    "source": "s",
                    "type": "mae",
                    "prediction": "forecast",
                    "target": "units",
                    "join": {"source": "act", "on": ["store", "day"]},
                    "warn": {"above": 100},
                }
            ],
        }
    )
    r = one(res, "mae")
    # (a,1): |10-8| = 2 ; (a,2): |20-25| = 5 ; (b,2): |40-40| = 0 ; (b,1) unlabelled
    assert r.value == pytest.approx(7 / 3)
    assert r.details["label_coverage"] == pytest.approx(3 / 4)


def test_delayed_labels_random_vs_python(h):
    """Many predictions, each with 0..3 label versions at random times (some after
    at), shuffled over two files; accuracy and coverage vs a plain-Python join."""
    rng = np.random.default_rng(17)
    n = 300
    end = AT - timedelta(hours=6)
    pred_ts = [end - timedelta(seconds=float(s)) for s in rng.uniform(0, 7200, size=n)]
    pred = rng.random(n) < 0.5
    preds = pl.DataFrame({"ts": pred_ts, "id": np.arange(n), "pred": pred})
    labels = []
    for i in range(n):
        for _ in range(rng.integers(0, 4)):
            offset = float(rng.uniform(-7 * 3600, 1 * 3600))  # up to 1h after at
            labels.append(
                {
                    "lt": AT + timedelta(seconds=round(offset)),
                    "id": i,
                    "y": bool(rng.random() < 0.5),
                }
            )
    order = rng.permutation(len(labels))
    shuffled = [labels[k] for k in order]
    half = len(shuffled) // 2
    for name, part in (("a", shuffled[:half]), ("b", shuffled[half:])):
        write_frame(h.root / "labels" / f"{name}.parquet", pl.DataFrame(part))
    h.frame("preds.parquet", preds)
    res = h.run(
        {
            "sources": {"s": src("preds.parquet"), "l": src("labels/*.parquet", timestamp="lt")},
            "metrics": [
                {
                    "name": "acc",
                    "source": "s",
                    "type": "accuracy",
                    "prediction": "pred",
                    "target": "y",
                    "join": {"source": "l", "on": "id"},
                    "window": "1h",
                    "delay": "6h",
                    "critical": {"below": 0},
                }
            ],
        }
    )
    in_window = [i for i in range(n) if end - timedelta(hours=1) < pred_ts[i] <= end]
    known: dict[int, tuple] = {}
    for lab in labels:
        if lab["lt"] <= AT and (lab["id"] not in known or lab["lt"] > known[lab["id"]][0]):
            known[lab["id"]] = (lab["lt"], lab["y"])
    labelled = [i for i in in_window if i in known]
    correct = sum(bool(pred[i]) == known[i][1] for i in labelled)
    r = one(res, "acc")
    assert r.rows == len(labelled)
    assert r.value == pytest.approx(correct / len(labelled))
    assert r.details["label_coverage"] == pytest.approx(len(labelled) / len(in_window))


def test_kpi_compare_with_join_uses_labels_known_at_each_time(h):
    """The earlier window sees only the labels known at at - offset."""
    now_ts = [minutes_ago(30), minutes_ago(20)]
    then_ts = [t - timedelta(days=1) for t in now_ts]
    preds = pl.DataFrame(
        {"ts": now_ts + then_ts, "id": [1, 2, 3, 4], "amount": [10.0, 20.0, 30.0, 40.0]}
    )
    labels = pl.DataFrame(
        {
            "lt": [
                minutes_ago(1),  # id 1, known now
                minutes_ago(2),  # id 2, known now
                AT - timedelta(days=1, minutes=5),  # id 3, known at at-1d
                minutes_ago(3),  # id 4, labelled only after at-1d
            ],
            "id": [1, 2, 3, 4],
            "fraud": [True, False, True, True],
        }
    )
    h.frame("p.parquet", preds)
    h.frame("l.parquet", labels)
    res = h.run(
        {
            "sources": {"s": src("p.parquet"), "l": src("l.parquet", timestamp="lt")},
            "kpis": [
                {
                    "name": "loss-dod",
                    "source": "s",
                    "expr": "sum(CASE WHEN fraud THEN amount ELSE 0 END)",
                    "join": {"source": "l", "on": "id"},
                    "compare": {"offset": "1d"},
                    "critical": {"above": 1e9},
                },
            ],
        }
    )
    # now: id 1 fraud → 10 ; then (as known at at-1d): id 3 fraud → 30
    assert one(res, "loss-dod").value == pytest.approx((10 - 30) / 30)


def test_at_in_another_zone_is_the_same_instant(h):
    h.frame("d.parquet", pl.DataFrame({"ts": [minutes_ago(59), minutes_ago(61), AT]}))
    spec = {"sources": {"s": src("d.parquet")}, "checks": [row_count()]}
    utc = one(h.run(spec), "rc")
    tokyo = one(h.run(spec, at=AT.astimezone(ZoneInfo("Asia/Tokyo"))), "rc")
    assert utc.value == tokyo.value == 2
    assert tokyo.window_end == AT


def test_segment_without_any_label_is_reported(h):
    preds = pl.DataFrame(
        {
            "ts": [minutes_ago(m) for m in (10, 20, 30, 40)],
            "id": [1, 2, 3, 4],
            "seg": ["a", "a", "b", "b"],
            "pred": [True, False, True, True],
        }
    )
    labels = pl.DataFrame({"lt": [minutes_ago(1)] * 2, "id": [1, 2], "y": [True, False]})
    h.frame("p.parquet", preds)
    h.frame("l.parquet", labels)
    res = h.run(
        {
            "sources": {"s": src("p.parquet"), "l": src("l.parquet", timestamp="lt")},
            "metrics": [
                {
                    "name": "acc",
                    "source": "s",
                    "type": "accuracy",
                    "prediction": "pred",
                    "target": "y",
                    "join": {"source": "l", "on": "id"},
                    "segment_by": ["seg"],
                    "min_label_coverage": 0.5,
                    "critical": {"below": 0.5},
                }
            ],
        }
    )
    assert get(res, "acc", {"seg": "a"}).value == 1.0
    b = get(res, "acc", {"seg": "b"})
    assert b.status in ("insufficient_data", "no_data")


def test_date_timestamps_are_midnight_in_the_source_zone(h):
    from datetime import date

    days = [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)]
    h.frame("d.parquet", pl.DataFrame({"ts": days}))
    res = h.run(
        {
            "sources": {
                "s": src("d.parquet"),
                "berlin": src("d.parquet", timezone="Europe/Berlin"),
            },
            "checks": [
                row_count("utc", window="1d"),  # (26th 15:00, 27th 15:00]: 27th 00:00
                row_count("utc2", window="2d"),  # (25th 15:00, ...]: 26th, 27th
                # Berlin midnight of the 27th is 26th 23:00 UTC: still inside one day
                row_count("berlin", source="berlin", window="1d"),
                # (27th 00:00, 27th 15:00]: 27th 00:00 UTC is exactly the open start
                row_count("utc-15h", window="15h"),
                # Berlin's midnight (26th 23:00 UTC) is exactly the open start of 16h
                row_count("berlin-16h", source="berlin", window="16h"),
                row_count("berlin-17h", source="berlin", window="17h"),
            ],
        }
    )
    assert one(res, "utc").value == 1
    assert one(res, "utc2").value == 2
    assert one(res, "berlin").value == 1
    assert one(res, "utc-15h").value == 0
    assert one(res, "berlin-16h").value == 0
    assert one(res, "berlin-17h").value == 1


def test_average_precision_per_segment(h):
    rng = np.random.default_rng(12)
    n = 200
    seg = rng.choice(["a", "b"], size=n)
    y = rng.random(n) < 0.4
    score = np.round(rng.random(n) * 0.7 + 0.3 * y, 2)
    ts = [minutes_ago(59 * (i + 0.5) / n) for i in range(n)]
    h.frame("d.parquet", pl.DataFrame({"ts": ts, "seg": seg, "score": score, "y": y}))
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "metrics": [
                {
                    "name": "ap",
                    "source": "s",
                    "type": "average_precision",
                    "score": "score",
                    "target": "y",
                    "segment_by": ["seg"],
                    "warn": {"below": 0},
                }
            ],
        }
    )

    def ap(s, yy):
        total, prev, pos = 0.0, 0.0, yy.sum()
        for t in sorted(set(s.tolist()), reverse=True):
            sel = s >= t
            tp = (yy & sel).sum()
            total += (tp / pos - prev) * tp / sel.sum()
            prev = tp / pos
        return total

    assert get(res, "ap").value == pytest.approx(ap(score, y))
    for v in ("a", "b"):
        sel = seg == v
        assert get(res, "ap", {"seg": v}).value == pytest.approx(ap(score[sel], y[sel]))
