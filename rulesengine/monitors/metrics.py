"""Metric monitors: model quality (classification, ranking, regression), column
statistics, rates, throughput and SQL aggregates.

Every quality metric is built from mergeable aggregates (confusion counts, sums of
residuals, rank sums) except average precision, which needs the sorted scores.
With ``join:``, rows without a label are left out and ``label_coverage`` (labelled
rows / all rows in the window) goes into the details. With ``compare:``, the value
is the change against the same metric over the window one offset earlier
(:mod:`rulesengine.monitors.compare`), each side with its own label coverage guard.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import polars as pl

from rulesengine.monitors.aggs import (
    additive,
    maximum,
    mean,
    minimum,
    quantile,
    rank_sum,
    root_mean_square,
    sorted_values,
    squared_deviations,
    std,
)
from rulesengine.monitors.base import (
    EvalContext,
    FrameKey,
    MonitorType,
    Need,
    Scored,
    Undefined,
    as_list,
    ratio,
    register,
)
from rulesengine.monitors.compare import compared, earlier_needs, earlier_side
from rulesengine.monitors.sql_aggs import sql_aggregate
from rulesengine.spec.model import MetricSpec, MonitorSpec
from rulesengine.spec.sql import compile_sql

LOG_LOSS_EPS = 1e-15
CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "fpr", "fnr")
SCORED = ("roc_auc", "average_precision", "log_loss", "brier")
REGRESSION = ("mae", "rmse", "mape", "r2")


def sql(text: str) -> pl.Expr:
    return compile_sql(text).expr


def frame_schema(m: MonitorSpec, ctx: EvalContext) -> dict[str, pl.DataType]:
    """The columns a monitor sees: its source's, plus the joined label source's
    (a clashing label column gets the suffix ``_label``, as the join names it)."""
    schema = dict(ctx.schemas.get(m.source, {}))
    join = getattr(m, "join", None)
    if join is not None:
        for name, dtype in ctx.schemas.get(join.source, {}).items():
            if name in join.on:
                continue
            schema[f"{name}_label" if name in schema else name] = dtype
    return schema


def expr_dtype(text: str, schema: dict[str, pl.DataType]) -> pl.DataType | None:
    try:
        return pl.LazyFrame(schema=schema).select(sql(text).alias("x")).collect_schema()["x"]
    except (Exception, pl.exceptions.PanicException):  # a panic is no dtype either
        return None


def as_label(text: str, positive: Any, dtype: pl.DataType | None = None) -> pl.Expr:
    """A boolean: a boolean expression as it is; otherwise whether it equals
    ``positive``, or is true / 1 when there is no ``positive``."""
    expr = sql(text)
    if dtype == pl.Boolean or positive is None:
        return expr.cast(pl.Boolean)
    if isinstance(positive, str):
        return expr.cast(pl.String) == positive
    return expr == positive


def metric_frames(m: MetricSpec, ctx: EvalContext) -> tuple[FrameKey, FrameKey | None]:
    """The frame the metric runs over, and the all-rows frame for label coverage."""
    start, end = ctx.window(m)
    if m.join is None:
        return FrameKey(m.source, start, end, m.filter), None
    inner = FrameKey(m.source, start, end, m.filter, m.join, ctx.at, "inner")
    return inner, FrameKey(m.source, start, end, m.filter, m.join, ctx.at, "left")


def confusion_ratio(name: str, tp: int, fp: int, fn: int, tn: int) -> tuple[int, int]:
    """A classification metric's numerator and denominator from the confusion
    counts (``accuracy``, ``precision``, ``recall``, ``f1``, ``fpr``, ``fnr``)."""
    return {
        "accuracy": (tp + tn, tp + fp + fn + tn),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "f1": (2 * tp, 2 * tp + fp + fn),
        "fpr": (fp, fp + tn),
        "fnr": (fn, fn + tp),
    }[name]


class _Metric(MonitorType):
    kind = "metric"

    @abstractmethod
    def aggs(self, m: MetricSpec, ctx: EvalContext) -> dict[str, pl.Expr]:
        """The metric's aggregates over the (labelled) rows."""

    def needs(self, m, ctx):
        frame, everything = metric_frames(m, ctx)
        needs = [Need(frame, self.aggs(m, ctx))]
        if everything is not None:
            needs.append(Need(everything, {}, role="all"))
        if m.compare is not None:
            needs += earlier_needs(needs, m.compare.offset)
        return needs

    @abstractmethod
    def value(self, m: MetricSpec, v: dict[str, Any], rows: int) -> tuple[float, dict]:
        """The metric's value and details from its aggregates."""

    def when_empty(self, m, rows):
        if m.join is not None and rows.get("all", 0) > 0:
            return "insufficient_data", "no labelled rows yet (label coverage 0)"
        return super().when_empty(m, rows)

    def score(self, m, values, rows, ctx) -> Scored:
        now = self.side(m, values, rows)
        if m.compare is None:
            return now
        if now.status is not None:  # the value would be the metric, not its change
            return Scored(None, now.details, now.status)
        roles = ("main", "all") if m.join is not None else ("main",)
        then = self.earlier(m, *earlier_side(values, rows, roles))
        if then.status is not None:
            why = f"comparison window: {then.details['reason']}"
            return Scored(None, {**now.details, "reason": why}, then.status)
        extra = {**now.details, "previous_details": then.details}
        assert now.value is not None and then.value is not None
        return compared(m.compare, now.value, then.value, rows.get("previous", 0), extra)

    def side(self, m: MetricSpec, values: Mapping, rows: Mapping[str, int]) -> Scored:
        """The metric over one side's rows, with its label coverage guard."""
        value, details = self.value(m, dict(values["main"]), rows["main"])
        if m.join is not None:
            total = rows.get("all", 0)
            coverage = rows["main"] / total if total else 0.0
            details["label_coverage"] = coverage
            details["unlabelled_rows"] = total - rows["main"]
            if m.min_label_coverage is not None and coverage < m.min_label_coverage:
                details["reason"] = (
                    f"label coverage {coverage:.3g} is below "
                    f"min_label_coverage {m.min_label_coverage:g}"
                )
                return Scored(value, details, "insufficient_data")
        return Scored(value, details)

    def earlier(self, m: MetricSpec, values: Mapping, rows: Mapping[str, int]) -> Scored:
        """The earlier side (compare), guarded as the current one is: rows, labels,
        ``min_rows``, label coverage, a defined value."""
        n = rows["main"]
        if n == 0 and not self.zero_rows_ok(m):
            _, why = self.when_empty(m, rows)
            return Scored(None, {"reason": why}, "insufficient_data")
        if self.min_rows_apply(m) and n < m.min_rows:
            why = f"{n} rows, min_rows is {m.min_rows}"
            return Scored(None, {"reason": why}, "insufficient_data")
        try:
            return self.side(m, values, rows)
        except Undefined as exc:
            return Scored(None, {"reason": str(exc)}, "insufficient_data")


@register
class Classification(_Metric):
    names = CLASSIFICATION

    def aggs(self, m, ctx):
        schema = frame_schema(m, ctx)
        y = as_label(m.target, m.positive, expr_dtype(m.target, schema))
        p = as_label(m.prediction, m.positive, expr_dtype(m.prediction, schema))
        both = y.is_not_null() & p.is_not_null()
        return {
            "tp": additive((both & y & p).sum()),
            "fp": additive((both & ~y & p).sum()),
            "fn": additive((both & y & ~p).sum()),
            "tn": additive((both & ~y & ~p).sum()),
        }

    def value(self, m, v, rows):
        tp, fp, fn, tn = (int(v[k] or 0) for k in ("tp", "fp", "fn", "tn"))
        num, den = confusion_ratio(m.type, tp, fp, fn, tn)
        details = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
        return ratio(num, den, m.type), details


@register
class ScoreMetrics(_Metric):
    names = SCORED

    def aggs(self, m, ctx):
        y = as_label(m.target, m.positive, expr_dtype(m.target, frame_schema(m, ctx)))
        s = sql(m.score).cast(pl.Float64)
        ok = y.is_not_null() & s.is_not_null()
        yf = y.cast(pl.Float64)
        if m.type == "roc_auc":
            return {
                "n": additive(ok.sum()),
                "pos": additive((ok & y).sum()),
                "rank_pos": rank_sum(s, ok, y, exact=m.exact),
            }
        if m.type == "average_precision":  # the scores of each class, sorted
            return {
                "pos": sorted_values(s.filter(ok & y)),
                "neg": sorted_values(s.filter(ok & ~y)),
            }
        if m.type == "brier":
            return {"n": additive(ok.sum()), "value": mean(((s - yf) ** 2).filter(ok))}
        p = s.clip(LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        loss = -(yf * p.log() + (1 - yf) * (1 - p).log())
        return {"n": additive(ok.sum()), "value": mean(loss.filter(ok))}

    def value(self, m, v, rows):
        if m.type == "roc_auc":
            n, pos = int(v["n"] or 0), int(v["pos"] or 0)
            neg = n - pos
            if pos == 0 or neg == 0:
                raise Undefined("roc_auc is undefined: the labels hold only one class")
            u = float(v["rank_pos"]) - pos * (pos + 1) / 2
            return u / (pos * neg), {"positives": pos, "negatives": neg}
        if m.type == "average_precision":
            pos, neg = as_list(v["pos"]), as_list(v["neg"])
            return average_precision(pos + neg, [True] * len(pos) + [False] * len(neg))
        if not v["n"]:
            raise Undefined(f"{m.type} is undefined: no row has both score and target")
        return float(v["value"]), {"scored_rows": int(v["n"])}


def average_precision(scores: list[float], labels: list[bool]) -> tuple[float, dict]:
    """AP = Σ (R_k − R_{k−1}) · P_k over distinct score thresholds, highest first.
    Only the counts of each class at or above each threshold matter, so the order
    of tied rows does not (but NaN scores are each a threshold of their own)."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos = int(y.sum())
    if pos == 0:
        raise Undefined("average_precision is undefined: no positive labels")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    last_of_threshold = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp_at = tp[last_of_threshold]
    precision = tp_at / (last_of_threshold + 1)
    recall = tp_at / pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision)), {"positives": pos, "scored_rows": len(s)}


@register
class Regression(_Metric):
    names = REGRESSION

    def aggs(self, m, ctx):
        pred = sql(m.prediction).cast(pl.Float64)
        target = sql(m.target).cast(pl.Float64)
        ok = pred.is_not_null() & target.is_not_null()
        r = (pred - target).filter(ok)
        t = target.filter(ok)
        if m.type == "mae":
            return {"n": additive(ok.sum()), "value": mean(r.abs())}
        if m.type == "rmse":
            return {"n": additive(ok.sum()), "value": root_mean_square(r)}
        if m.type == "mape":
            nz = ok & (target != 0)
            return {
                "n": additive(nz.sum()),
                "value": mean(((pred - target).abs() / target.abs()).filter(nz)),
                "zero_targets": additive((ok & (target == 0)).sum()),
            }
        return {
            "n": additive(ok.sum()),
            "ss_res": additive((r**2).sum()),
            "ss_tot": squared_deviations(t),
        }

    def value(self, m, v, rows):
        n = int(v["n"] or 0)
        if n == 0:
            raise Undefined(f"{m.type} is undefined: no row has both prediction and target")
        details: dict[str, Any] = {"compared_rows": n}
        if m.type == "r2":
            if not v["ss_tot"]:
                raise Undefined("r2 is undefined: the target is constant")
            return 1.0 - float(v["ss_res"]) / float(v["ss_tot"]), details
        if m.type == "mape":
            details["zero_targets_skipped"] = int(v["zero_targets"] or 0)
        return float(v["value"]), details


@register
class ColumnStat(_Metric):
    names = ("mean", "std", "min", "max", "quantile")

    def aggs(self, m, ctx):
        c = pl.col(m.column)
        if m.type == "quantile":
            agg = quantile(c.cast(pl.Float64), m.q, exact=m.exact)
        else:
            agg = {"mean": mean, "std": std, "min": minimum, "max": maximum}[m.type](c)
        return {"value": agg, "n": additive(c.count())}

    def value(self, m, v, rows):
        if not v["n"]:
            raise Undefined(f"{m.type} is undefined: '{m.column}' has no non-null values")
        if v["value"] is None:
            raise Undefined(f"{m.type} is undefined for {int(v['n'])} value(s)")
        return float(v["value"]), {"non_null": int(v["n"])}


@register
class RateCount(_Metric):
    names = ("rate", "count")

    def zero_rows_ok(self, m):
        return m.type == "count"

    def min_rows_apply(self, m):
        return m.type != "count"

    def aggs(self, m, ctx):
        if m.predicate is None:
            return {}
        return {"hits": additive(sql(m.predicate).fill_null(False).cast(pl.Boolean).sum())}

    def value(self, m, v, rows):
        hits = rows if m.predicate is None else int(v["hits"] or 0)
        if m.type == "count":
            return float(hits), {}
        return ratio(hits, rows, "rate"), {"matching_rows": hits}


@register
class Throughput(_Metric):
    names = ("throughput",)
    counts_rows = True

    def aggs(self, m, ctx):
        return {}

    def value(self, m, v, rows):
        return rows / m.window.total_seconds(), {"per": "second"}


@register
class Expression(_Metric):
    names = ("expr",)

    def aggs(self, m, ctx):
        return {"value": sql_aggregate(m.expr, frame_schema(m, ctx))}

    def value(self, m, v, rows):
        value = v["value"]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise Undefined("the expression is null for these rows")
        return float(value), {}
