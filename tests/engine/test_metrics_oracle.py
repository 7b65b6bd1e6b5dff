"""Metrics and KPIs against hand-computed tables, numpy and scipy.

Brute-force oracles (pairwise AUC, sklearn's average-precision definition) are
written out here in plain Python, independent of the engine's formulas.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from conftest import AT, get, minutes_ago, one, src, stamps
from scipy import stats

# ------------------------------------------------------------------ helpers


def spread(n: int, minutes: float = 59.0) -> list:
    """``n`` timestamps spread over the last ``minutes`` before AT."""
    return [minutes_ago(minutes * (i + 0.5) / n) for i in range(n)]


def metric(name: str, type_: str | None, **kw) -> dict:
    out = {"name": name, "source": "s"}
    if type_ is not None:
        out["type"] = type_
    out.update(kw)
    if "warn" not in out and "critical" not in out:
        out["critical"] = {"above": 1e12}
    return out


def run_metrics(h, df: pl.DataFrame, metrics: list[dict], **extra):
    h.frame("d.parquet", df)
    return h.run({"sources": {"s": src("d.parquet")}, "metrics": metrics, **extra})


def brute_auc(scores, labels) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie), over every (pos, neg) pair."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    total = 0.0
    for p in pos:
        for q in neg:
            total += 1.0 if p > q else 0.5 if p == q else 0.0
    return total / (len(pos) * len(neg))


def brute_average_precision(scores, labels) -> float:
    """sklearn's definition: AP = Σ_n (R_n − R_{n−1}) P_n, one operating point per
    distinct score threshold (descending), R_0 = 0."""
    scores = [float(s) for s in scores]
    total_pos = sum(bool(y) for y in labels)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        selected = [y for s, y in zip(scores, labels, strict=True) if s >= t]
        tp = sum(bool(y) for y in selected)
        precision = tp / len(selected)
        recall = tp / total_pos
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


# ------------------------------------------------------------------ classification

# hand-made confusion table: tp=3, fp=2, fn=1, tn=4 (plus one row with a null target)
PRED = [True, True, True, True, True, False, False, False, False, False, True]
TRUE = [True, True, True, False, False, True, False, False, False, False, None]
TP, FP, FN, TN = 3, 2, 1, 4


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("accuracy", (TP + TN) / (TP + FP + FN + TN)),
        ("precision", TP / (TP + FP)),
        ("recall", TP / (TP + FN)),
        ("f1", 2 * TP / (2 * TP + FP + FN)),
        ("fpr", FP / (FP + TN)),
        ("fnr", FN / (FN + TP)),
    ],
)
def test_classification_from_confusion_table(h, type_, expected):
    df = pl.DataFrame({"ts": stamps(len(PRED)), "pred": PRED, "y": TRUE})
    res = run_metrics(h, df, [metric("m", type_, prediction="pred", target="y")])
    r = one(res, "m")
    assert r.value == pytest.approx(expected)
    assert (r.kind, r.type) == ("metric", type_)


def test_classification_with_sql_prediction_and_int_target(h):
    score = [0.9, 0.5, 0.49, 0.1, 0.7, 0.2, 0.6, 0.3]
    y = [1, 0, 1, 0, 1, 0, 0, 1]
    # pred = score >= 0.5: T, T, F, F, T, F, T, F
    # tp: (0.9,1),(0.7,1) = 2; fp: (0.5,0),(0.6,0) = 2; fn: (0.49,1),(0.3,1) = 2; tn: 2
    df = pl.DataFrame({"ts": stamps(8), "score": score, "y": y})
    res = run_metrics(
        h,
        df,
        [
            metric("acc", "accuracy", prediction="score >= 0.5", target="y"),
            metric("prec", "precision", prediction="score >= 0.5", target="y"),
            metric("rec", "recall", prediction="score >= 0.5", target="y", critical={"below": 0.6}),
        ],
    )
    assert one(res, "acc").value == pytest.approx(0.5)
    assert one(res, "prec").value == pytest.approx(0.5)
    assert one(res, "rec").value == pytest.approx(0.5)
    assert one(res, "rec").status == "critical"


def test_classification_with_positive_string_classes(h):
    pred = ["fraud", "fraud", "ok", "ok", "fraud", "ok", "review"]
    true = ["fraud", "ok", "fraud", "ok", "fraud", "ok", "fraud"]
    # positive = fraud: tp 2 (rows 0, 4), fp 1 (row 1), fn 2 (rows 2, 6), tn 2 (rows 3, 5)
    df = pl.DataFrame({"ts": stamps(7), "pred": pred, "y": true})
    res = run_metrics(
        h,
        df,
        [
            metric(t, t, prediction="pred", target="y", positive="fraud")
            for t in ("accuracy", "precision", "recall", "f1", "fpr", "fnr")
        ],
    )
    tp, fp, fn, tn = 2, 1, 2, 2
    assert one(res, "accuracy").value == pytest.approx(4 / 7)
    assert one(res, "precision").value == pytest.approx(tp / (tp + fp))
    assert one(res, "recall").value == pytest.approx(tp / (tp + fn))
    assert one(res, "f1").value == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert one(res, "fpr").value == pytest.approx(fp / (fp + tn))
    assert one(res, "fnr").value == pytest.approx(fn / (fn + tp))


def test_classification_with_positive_integer_class(h):
    pred = [2, 2, 1, 0, 2, 1]
    true = [2, 1, 2, 0, 2, 2]
    # positive 2: tp rows 0, 4; fp row 1; fn rows 2, 5; tn row 3
    df = pl.DataFrame({"ts": stamps(6), "pred": pred, "y": true})
    res = run_metrics(h, df, [metric("rec", "recall", prediction="pred", target="y", positive=2)])
    assert one(res, "rec").value == pytest.approx(2 / 4)


def test_boolean_prediction_with_string_target_classes(h):
    score = [0.9, 0.8, 0.2, 0.1, 0.7]
    label = ["fraud", "ok", "fraud", "ok", "fraud"]
    # prediction score >= 0.5: T, T, F, F, T → tp 2, fp 1, fn 1, tn 1
    df = pl.DataFrame({"ts": stamps(5), "score": score, "label": label})
    res = run_metrics(
        h,
        df,
        [metric("rec", "recall", prediction="score >= 0.5", target="label", positive="fraud")],
    )
    assert one(res, "rec").value == pytest.approx(2 / 3)


def test_classification_random_vs_numpy(h):
    rng = np.random.default_rng(8)
    n = 1200
    y = rng.random(n) < 0.3
    score = np.clip(y * 0.25 + rng.random(n) * 0.75, 0, 1)
    p = score >= 0.5
    df = pl.DataFrame({"ts": spread(n), "score": score, "y": y})
    res = run_metrics(
        h,
        df,
        [
            metric(t, t, prediction="score >= 0.5", target="y")
            for t in ("accuracy", "precision", "recall", "f1", "fpr", "fnr")
        ],
    )
    tp = np.sum(p & y)
    fp = np.sum(p & ~y)
    fn = np.sum(~p & y)
    tn = np.sum(~p & ~y)
    expected = {
        "accuracy": (tp + tn) / n,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "fpr": fp / (fp + tn),
        "fnr": fn / (fn + tp),
    }
    for name, value in expected.items():
        assert one(res, name).value == pytest.approx(value, abs=1e-12), name


def test_undefined_ratios_are_insufficient_data(h):
    # no predicted positives → precision 0/0; no actual positives → recall 0/0
    df = pl.DataFrame(
        {"ts": stamps(4), "pred": [False, False, False, False], "y": [False, False, False, False]}
    )
    res = run_metrics(
        h,
        df,
        [
            metric("prec", "precision", prediction="pred", target="y", critical={"below": 0.5}),
            metric("rec", "recall", prediction="pred", target="y", critical={"below": 0.5}),
            metric("fnr", "fnr", prediction="pred", target="y", critical={"above": 0.5}),
            metric("acc", "accuracy", prediction="pred", target="y", critical={"below": 0.5}),
            metric("fpr", "fpr", prediction="pred", target="y", critical={"above": 0.5}),
        ],
    )
    for name in ("prec", "rec", "fnr"):
        r = one(res, name)
        assert r.status == "insufficient_data", r
        assert r.value is None
    assert one(res, "acc").value == 1.0
    assert one(res, "acc").status == "ok"
    assert one(res, "fpr").value == 0.0


# ------------------------------------------------------------------ scores


def test_roc_auc_with_ties_vs_pairwise_and_mannwhitney(h):
    rng = np.random.default_rng(21)
    n = 600
    y = rng.random(n) < 0.4
    # rounded scores → many ties
    score = np.round(np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1), 1)
    df = pl.DataFrame({"ts": spread(n), "score": score, "y": y})
    res = run_metrics(h, df, [metric("auc", "roc_auc", score="score", target="y")])
    u = stats.mannwhitneyu(score[y], score[~y], alternative="two-sided").statistic
    auc_mw = u / (y.sum() * (~y).sum())
    auc_brute = brute_auc(score.tolist(), y.tolist())
    assert auc_mw == pytest.approx(auc_brute, abs=1e-12)
    assert one(res, "auc").value == pytest.approx(auc_brute, abs=1e-12)


def test_roc_auc_closed_form_and_string_positive(h):
    # pos scores 0.8, 0.4, 0.6 ; neg scores 0.4, 0.2
    # pairs: (0.8>0.4,0.8>0.2)=2, (0.4=0.4 → .5, 0.4>0.2)=1.5, (0.6>0.4, 0.6>0.2)=2 → 5.5/6
    df = pl.DataFrame(
        {
            "ts": stamps(6),
            "score": [0.8, 0.4, 0.4, 0.6, 0.2, None],
            "label": ["fraud", "fraud", "ok", "fraud", "ok", "fraud"],
        }
    )
    res = run_metrics(
        h,
        df,
        [
            metric(
                "auc",
                "roc_auc",
                score="score",
                target="label",
                positive="fraud",
                warn={"below": 0.95},
            )
        ],
    )
    r = one(res, "auc")
    assert r.value == pytest.approx(5.5 / 6)
    assert r.status == "warn"


def test_roc_auc_single_class_is_insufficient_data(h):
    df = pl.DataFrame({"ts": stamps(3), "score": [0.1, 0.5, 0.9], "y": [True, True, True]})
    res = run_metrics(h, df, [metric("auc", "roc_auc", score="score", target="y")])
    assert one(res, "auc").status == "insufficient_data"


def test_average_precision_closed_form(h):
    # scores desc: 0.9(T) 0.8(F) 0.7(T) 0.7(F) 0.3(T)
    # thresholds: .9 → P=1, R=1/3; .8 → P=1/2, R=1/3; .7 → P=2/4, R=2/3; .3 → P=3/5, R=1
    # AP = 1/3·1 + 0 + 1/3·1/2 + 1/3·3/5 = 0.3333 + 0.1667 + 0.2 = 0.7
    df = pl.DataFrame(
        {"ts": stamps(5), "score": [0.7, 0.9, 0.3, 0.8, 0.7], "y": [True, True, True, False, False]}
    )
    res = run_metrics(h, df, [metric("ap", "average_precision", score="score", target="y")])
    assert brute_average_precision([0.7, 0.9, 0.3, 0.8, 0.7], [1, 1, 1, 0, 0]) == pytest.approx(0.7)
    assert one(res, "ap").value == pytest.approx(0.7)


def test_average_precision_random_with_ties_vs_brute_force(h):
    rng = np.random.default_rng(22)
    n = 500
    y = rng.random(n) < 0.25
    score = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)
    df = pl.DataFrame({"ts": spread(n), "score": score, "y": y})
    res = run_metrics(h, df, [metric("ap", "average_precision", score="score", target="y")])
    expected = brute_average_precision(score.tolist(), y.tolist())
    assert one(res, "ap").value == pytest.approx(expected, abs=1e-12)


def test_log_loss_and_brier_vs_numpy(h):
    rng = np.random.default_rng(23)
    n = 900
    y = rng.random(n) < 0.35
    p = np.clip(0.3 * y + rng.random(n) * 0.69 + 0.005, 0.005, 0.995)
    df = pl.DataFrame({"ts": spread(n), "p": p, "y": y.astype(int)})
    res = run_metrics(
        h,
        df,
        [
            metric("ll", "log_loss", score="p", target="y"),
            metric("brier", "brier", score="p", target="y"),
        ],
    )
    yf = y.astype(float)
    ll = -np.mean(yf * np.log(p) + (1 - yf) * np.log(1 - p))
    brier = np.mean((p - yf) ** 2)
    assert one(res, "ll").value == pytest.approx(ll, rel=1e-9)
    assert one(res, "brier").value == pytest.approx(brier, rel=1e-9)


def test_log_loss_closed_form_string_positive(h):
    df = pl.DataFrame(
        {"ts": stamps(4), "p": [0.8, 0.3, 0.6, 0.1], "label": ["yes", "yes", "no", "no"]}
    )
    res = run_metrics(
        h,
        df,
        [
            metric("ll", "log_loss", score="p", target="label", positive="yes"),
            metric("brier", "brier", score="p", target="label", positive="yes"),
        ],
    )
    ll = -(math.log(0.8) + math.log(0.3) + math.log(0.4) + math.log(0.9)) / 4
    brier = (0.2**2 + 0.7**2 + 0.6**2 + 0.1**2) / 4
    assert one(res, "ll").value == pytest.approx(ll)
    assert one(res, "brier").value == pytest.approx(brier)


# ------------------------------------------------------------------ regression


def test_regression_closed_form(h):
    pred = [2.0, 4.0, 5.0, 0.0, None, 10.0]
    target = [1.0, 4.0, 10.0, 0.0, 3.0, 8.0]
    # compared rows: 0, 1, 2, 3, 5 ; residuals 1, 0, -5, 0, 2
    df = pl.DataFrame({"ts": stamps(6), "pred": pred, "y": target})
    res = run_metrics(
        h,
        df,
        [metric(t, t, prediction="pred", target="y") for t in ("mae", "rmse", "mape", "r2")],
    )
    assert one(res, "mae").value == pytest.approx(8 / 5)
    assert one(res, "rmse").value == pytest.approx(math.sqrt(30 / 5))
    # mape skips the zero target: |1|/1, 0/4, 5/10, 2/8 over 4 rows
    assert one(res, "mape").value == pytest.approx((1 + 0 + 0.5 + 0.25) / 4)
    t = np.array([1.0, 4.0, 10.0, 0.0, 8.0])
    ss_tot = np.sum((t - t.mean()) ** 2)
    assert one(res, "r2").value == pytest.approx(1 - 30 / ss_tot)


def test_regression_random_vs_numpy(h):
    rng = np.random.default_rng(31)
    n = 1000
    y = rng.gamma(2.0, 10.0, size=n).round(0)  # some zero targets
    pred = y + rng.normal(0, 4, size=n)
    df = pl.DataFrame({"ts": spread(n), "pred": pred, "y": y})
    res = run_metrics(
        h,
        df,
        [metric(t, t, prediction="pred", target="y") for t in ("mae", "rmse", "mape", "r2")],
    )
    r = pred - y
    nz = y != 0
    assert (~nz).sum() > 0
    assert one(res, "mae").value == pytest.approx(np.mean(np.abs(r)), rel=1e-9)
    assert one(res, "rmse").value == pytest.approx(np.sqrt(np.mean(r**2)), rel=1e-9)
    assert one(res, "mape").value == pytest.approx(np.mean(np.abs(r[nz]) / np.abs(y[nz])), rel=1e-9)
    r2 = 1 - np.sum(r**2) / np.sum((y - y.mean()) ** 2)
    assert one(res, "r2").value == pytest.approx(r2, rel=1e-9)


def test_r2_of_constant_target_is_insufficient_data(h):
    df = pl.DataFrame({"ts": stamps(3), "pred": [1.0, 2.0, 3.0], "y": [2.0, 2.0, 2.0]})
    res = run_metrics(h, df, [metric("r2", "r2", prediction="pred", target="y")])
    assert one(res, "r2").status == "insufficient_data"


# ------------------------------------------------------------------ column statistics


def test_column_statistics_vs_numpy(h):
    rng = np.random.default_rng(41)
    n = 777
    x = rng.lognormal(3, 0.7, size=n)
    null = rng.random(n) < 0.1
    xs = pl.Series(np.where(null, np.nan, x)).fill_nan(None)
    df = pl.DataFrame({"ts": spread(n), "x": xs})
    res = run_metrics(
        h,
        df,
        [
            metric("mean", "mean", column="x"),
            metric("std", "std", column="x"),
            metric("min", "min", column="x"),
            metric("max", "max", column="x"),
            metric("p95", "quantile", column="x", q=0.95),
            metric("p50", "quantile", column="x", q=0.5),
            metric("p0", "quantile", column="x", q=0),
            metric("p1", "quantile", column="x", q=1),
        ],
    )
    v = x[~null]
    assert one(res, "mean").value == pytest.approx(v.mean(), rel=1e-9)
    assert one(res, "std").value == pytest.approx(v.std(ddof=1), rel=1e-9)
    assert one(res, "min").value == pytest.approx(v.min())
    assert one(res, "max").value == pytest.approx(v.max())
    for name, q in (("p95", 0.95), ("p50", 0.5), ("p0", 0.0), ("p1", 1.0)):
        expected = np.quantile(v, q, method="linear")
        assert one(res, name).value == pytest.approx(expected, rel=1e-12), name


def test_column_statistics_closed_form_int_column(h):
    x = [1, 2, 3, 4, 10]
    df = pl.DataFrame({"ts": stamps(5), "x": x})
    res = run_metrics(
        h,
        df,
        [
            metric("mean", "mean", column="x", warn={"outside": [0, 3.9]}),
            metric("std", "std", column="x"),
            metric("q", "quantile", column="x", q=0.9),
            metric("max", "max", column="x", critical={"at_or_above": 10}),
        ],
    )
    assert one(res, "mean").value == pytest.approx(4.0)
    assert one(res, "mean").status == "warn"
    # sample variance: deviations -3,-2,-1,0,6 → (9+4+1+0+36)/4 = 12.5
    assert one(res, "std").value == pytest.approx(math.sqrt(12.5))
    # linear: position 0.9·4 = 3.6 → 4 + 0.6·(10 - 4) = 7.6
    assert one(res, "q").value == pytest.approx(7.6)
    assert one(res, "max").status == "critical"


def test_std_of_one_value_is_insufficient_data(h):
    df = pl.DataFrame({"ts": stamps(1), "x": [3.0]})
    res = run_metrics(h, df, [metric("std", "std", column="x")])
    assert one(res, "std").status == "insufficient_data"


# ------------------------------------------------------------------ rates, counts, throughput


def test_rate_and_count_null_counts_as_false(h):
    reason = ["stop", "refusal", None, "refusal", "length", "stop", None, "refusal"]
    df = pl.DataFrame({"ts": stamps(8), "reason": reason})
    res = run_metrics(
        h,
        df,
        [
            metric("rate", "rate", predicate="reason = 'refusal'", warn={"above": 0.3}),
            metric("count", "count", predicate="reason = 'refusal'"),
            metric("not-rate", "rate", predicate="reason <> 'refusal'"),
            metric("all", "count"),
        ],
    )
    assert one(res, "rate").value == pytest.approx(3 / 8)
    assert one(res, "rate").status == "warn"
    assert one(res, "count").value == 3.0
    # null <> 'refusal' is null → counts as false: stop, length, stop
    assert one(res, "not-rate").value == pytest.approx(3 / 8)
    assert one(res, "all").value == 8.0


def test_count_of_empty_window_is_zero(h):
    df = pl.DataFrame({"ts": [AT - timedelta(hours=2)], "x": [1]})
    res = run_metrics(
        h, df, [metric("count", "count", predicate="x > 0", critical={"at_or_below": 0})]
    )
    r = one(res, "count")
    assert r.value == 0.0
    assert r.status == "critical"


def test_throughput_is_rows_per_window_second(h):
    ts = [minutes_ago(m) for m in (1, 5, 9, 14, 20, 29, 31, 45, 59, 61)]
    df = pl.DataFrame({"ts": ts})
    res = run_metrics(
        h,
        df,
        [
            metric("tp", "throughput", warn={"below": 0.01}),
            metric("tp30", "throughput", window="30m"),
            metric("tp-delayed", "throughput", window="30m", delay="30m"),
        ],
    )
    assert one(res, "tp").value == pytest.approx(9 / 3600)
    assert one(res, "tp").status == "warn"
    assert one(res, "tp30").value == pytest.approx(6 / 1800)
    # (at-60m, at-30m]: 31, 45, 59 (61 is outside)
    assert one(res, "tp-delayed").value == pytest.approx(3 / 1800)


def test_throughput_of_empty_window_is_zero(h):
    df = pl.DataFrame({"ts": [AT - timedelta(hours=2)]})
    res = run_metrics(h, df, [metric("tp", "throughput", critical={"below": 0.001})])
    assert one(res, "tp").value == 0.0
    assert one(res, "tp").status == "critical"


def test_expr_metrics(h):
    status = [200, 200, 500, 503, 200, 404, 200, 200]
    latency = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
    df = pl.DataFrame({"ts": stamps(8), "status": status, "latency": latency})
    res = run_metrics(
        h,
        df,
        [
            metric(
                "err",
                None,
                expr="avg(CAST(status >= 500 AS DOUBLE))",
                critical={"above": 0.2},
            ),
            metric("err2", "expr", expr="sum(CASE WHEN status = 200 THEN latency ELSE 0 END)"),
            metric("med", None, expr="median(latency)"),
            metric("null", None, expr="avg(CASE WHEN status > 999 THEN latency END)"),
        ],
    )
    assert one(res, "err").value == pytest.approx(2 / 8)
    assert one(res, "err").status == "critical"
    assert one(res, "err").type == "expr"
    assert one(res, "err2").value == pytest.approx(10 + 20 + 50 + 70 + 80)
    assert one(res, "med").value == pytest.approx(45.0)
    assert one(res, "null").status == "insufficient_data"


def test_metric_min_rows(h):
    df = pl.DataFrame({"ts": stamps(3), "x": [1.0, 2.0, 3.0]})
    res = run_metrics(
        h,
        df,
        [
            metric("mean3", "mean", column="x", min_rows=3),
            metric("mean4", "mean", column="x", min_rows=4),
        ],
        evaluation={"min_rows": 10},
    )
    assert one(res, "mean3").value == pytest.approx(2.0)
    r = one(res, "mean4")
    assert r.status == "insufficient_data"
    assert r.value is None


def test_evaluation_min_rows_applies_to_every_monitor(h):
    df = pl.DataFrame({"ts": stamps(3), "x": [1.0, 2.0, 3.0]})
    res = run_metrics(h, df, [metric("mean", "mean", column="x")], evaluation={"min_rows": 4})
    assert one(res, "mean").status == "insufficient_data"


# ------------------------------------------------------------------ KPIs


def kpi(name: str, expr: str, **kw) -> dict:
    out = {"name": name, "source": "s", "expr": expr}
    out.update(kw)
    if "warn" not in out and "critical" not in out:
        out["critical"] = {"above": 1e12}
    return out


def test_kpi_value(h):
    df = pl.DataFrame(
        {
            "ts": stamps(5),
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
            "fraud": [True, False, True, True, False],
            "blocked": [False, False, True, False, False],
        }
    )
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "kpis": [
                kpi(
                    "loss",
                    "sum(CASE WHEN fraud AND NOT blocked THEN amount ELSE 0 END)",
                    critical={"above": 49},
                )
            ],
        }
    )
    r = one(res, "loss")
    assert r.value == pytest.approx(50.0)
    assert (r.kind, r.status) == ("kpi", "critical")


def test_kpi_compare_offset_is_relative_change(h):
    now = [minutes_ago(m) for m in (5, 15, 25)]
    week_ago = [t - timedelta(days=7) for t in (minutes_ago(10), minutes_ago(50))]
    # a row exactly at at-7d-1h belongs to neither window
    edge = [AT - timedelta(days=7, hours=1)]
    df = pl.DataFrame(
        {"ts": now + week_ago + edge, "units": [10.0, 20.0, 30.0, 25.0, 15.0, 1000.0]}
    )
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "kpis": [
                kpi("wow", "sum(units)", compare={"offset": "7d"}, warn={"outside": [-0.3, 0.3]}),
                kpi("plain", "sum(units)"),
            ],
        }
    )
    r = one(res, "wow")
    assert r.value == pytest.approx((60 - 40) / 40)
    assert r.status == "warn"
    assert one(res, "plain").value == pytest.approx(60.0)


def test_kpi_compare_relative_change_negative_base(h):
    now = [minutes_ago(5)]
    then = [minutes_ago(5) - timedelta(days=1)]
    df = pl.DataFrame({"ts": now + then, "v": [-30.0, -20.0]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "kpis": [kpi("dod", "sum(v)", compare={"offset": "1d"})],
        }
    )
    # (now - then) / |then| = (-30 + 20) / 20
    assert one(res, "dod").value == pytest.approx(-0.5)


def test_kpi_compare_without_earlier_rows_is_insufficient_data(h):
    df = pl.DataFrame({"ts": [minutes_ago(5)], "v": [3.0]})
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "kpis": [kpi("dod", "sum(v)", compare={"offset": "1d"})],
        }
    )
    assert one(res, "dod").status == "insufficient_data"
    assert one(res, "dod").value is None


def test_kpi_segments(h):
    df = pl.DataFrame(
        {
            "ts": stamps(6),
            "country": ["DE", "FR", "DE", "FR", "IT", "DE"],
            "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    h.frame("d.parquet", df)
    res = h.run(
        {
            "sources": {"s": src("d.parquet")},
            "kpis": [kpi("total", "sum(v)", segment_by=["country"], critical={"above": 9})],
        }
    )
    assert get(res, "total").value == 21.0
    assert get(res, "total", {"country": "DE"}).value == 10.0
    assert get(res, "total", {"country": "DE"}).status == "critical"
    assert get(res, "total", {"country": "FR"}).value == 6.0
    assert get(res, "total", {"country": "IT"}).value == 5.0
    assert len([r for r in res if r.monitor == "total"]) == 4
