"""Shared pieces of the incremental tests: hourly log files, a model with one
monitor of each decomposed type (and some that are not), and a comparison of the
incremental executor's results with a single pass over the same plan."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from rulesengine.engine.evaluate import plan_model
from rulesengine.engine.execute import execute
from rulesengine.engine.incremental import Report, execute_incremental
from rulesengine.engine.results import ModelResults
from rulesengine.engine.score import score
from rulesengine.spec.loader import load
from rulesengine.spec.model import ModelSpec

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HIGH = {"critical": {"above": 1e12}}


def hour_frame(start: datetime, rows: int, seed: int) -> pl.DataFrame:
    """One hour of requests after ``start``: numbers with nulls, classes, scores."""
    rng = np.random.default_rng(seed)
    ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0.001, 3600, rows))]
    x = rng.normal(50, 10, rows).round(1)
    y = rng.random(rows) < 0.3
    score_ = np.clip(y * 0.3 + rng.random(rows) * 0.7, 0, 1).round(2)
    df = pl.DataFrame(
        {
            "ts": ts,
            "request_id": np.arange(rows) + seed * 1_000_000,
            "x": x,
            "latency": rng.integers(5, 200, rows),
            "country": rng.choice(["DE", "FR", "US", "xx"], rows),
            "model_version": rng.choice(["v1", "v2"], rows),
            "y": y,
            "score": score_,
            "target": rng.normal(3, 1, rows).round(2),
            "pred": rng.normal(3, 1.1, rows).round(2),
            "text": rng.choice(["ok", "", " ", "fine"], rows),
        }
    )
    nulls = rng.random(rows) < 0.05
    return df.with_columns(
        pl.when(pl.Series(nulls)).then(None).otherwise(pl.col("x")).alias("x"),
        pl.col("ts").dt.cast_time_unit("us"),
    )


def write_hour(folder: Path, start: datetime, rows: int, seed: int, fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{start:%Y%m%dT%H%M}.{fmt}"
    df = hour_frame(start, rows, seed)
    if fmt == "csv":
        df.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(path)
    else:
        df.write_parquet(path)
    return path


def write_reference(path: Path) -> None:
    hour_frame(AT - timedelta(days=30), 2000, 999).drop("ts").write_parquet(path)


def model_spec(root: Path, fmt: str = "parquet", window: str = "6h") -> dict[str, Any]:
    """A model with a monitor of each decomposed type, and a few that are not."""

    def check(name: str, type_: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "source": "req", "type": type_, **kw, **HIGH}

    def metric(name: str, type_: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "source": "req", "type": type_, **kw, **HIGH}

    return {
        "version": 1,
        "model": "m",
        "sources": {
            "req": {"path": str(root / "logs" / f"*.{fmt}"), "timestamp": "ts"},
            "ref": {"path": str(root / "ref.parquet")},
        },
        "evaluation": {"every": "15m", "window": window, "segment_by": ["model_version"]},
        "checks": [
            check("rows", "row_count"),
            check("x-nulls", "null_rate", column="x"),
            check("x-range", "out_of_range", column="x", min=30, max=70),
            check("countries", "allowed_values", column="country", values=["DE", "FR", "US"]),
            check("text", "pattern", column="text", regex="\\S"),
            check("new-countries", "new_categories", column="country", reference="ref"),
            check("outliers", "outlier_rate", column="x", reference="ref"),
            check("x-missing", "custom", expr="count(*) - count(x)"),
        ],
        "metrics": [
            metric("x-mean", "mean", column="x"),
            metric("x-std", "std", column="x"),
            metric("x-min", "min", column="x"),
            metric("lat-max", "max", column="latency"),
            metric("lat-p95", "quantile", column="latency", q=0.95),
            metric("x-p50", "quantile", column="x", q=0.5),
            metric("slow", "rate", predicate="latency > 150"),
            metric("count", "count"),
            metric("tput", "throughput"),
            metric("acc", "accuracy", prediction="score >= 0.5", target="y"),
            metric("auc", "roc_auc", score="score", target="y"),
            metric("ap", "average_precision", score="score", target="y"),
            metric("brier", "brier", score="score", target="y"),
            metric("mae", "mae", prediction="pred", target="target"),
            metric("rmse", "rmse", prediction="pred", target="target"),
            metric("r2", "r2", prediction="pred", target="target"),
            metric("lat-mean-wow", "mean", column="latency", compare={"offset": "1h"}),
            metric("resid", "expr", expr="avg(pred - target)"),
        ],
        # SQL aggregates whose calls merge (sum, count, avg, min, max)
        "kpis": [
            {"name": f"kpi-{i}", "source": "req", "expr": e, **HIGH}
            for i, e in enumerate(
                [
                    "sum(latency) / count(*)",
                    "round(avg(CAST(latency > 100 AS DOUBLE)), 4)",
                    "max(x) - min(x)",
                    "sum(y) + count(x) * 2",
                    "coalesce(sum(x), 0) / nullif(count(score), 0)",
                    "coalesce(sum(CASE WHEN latency > 1000 THEN x END), -1)",
                    "corr(score, CAST(y AS DOUBLE))",  # correlated: r about 0.5
                ]
            )
        ]
        + [
            {
                "name": "kpi-wow",
                "source": "req",
                "expr": "sum(latency)",
                "compare": {"offset": "1h"},
                **HIGH,
            }
        ],
        "drift": [
            {
                "name": "drift",
                "source": "req",
                "reference": "ref",
                "columns": ["x", "country"],
                "method": "psi",
            },
            *(
                {
                    "name": f"x-{m}",
                    "source": "req",
                    "reference": "ref",
                    "columns": ["x"],
                    "method": m,
                }
                for m in ("ks", "anderson", "cramer_von_mises", "mannw", "t_test", "energy")
            ),
        ],
    }


def load_model(root: Path, spec: dict[str, Any]) -> ModelSpec:
    path = root / "model.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    (model,) = load([path], env={}).models
    return model


def both(
    model: ModelSpec, cache: Path, at: datetime = AT, report: Report | None = None
) -> tuple[ModelResults, ModelResults]:
    """(single pass, incremental) results of the same plan."""
    plan = plan_model(model, at)
    full = score(plan, execute(plan.queries, model))
    inc = score(plan, execute_incremental(plan, model, cache, report=report))
    return full, inc


def all_from_partials(model: ModelSpec, cache: Path) -> ModelResults:
    """The incremental results, checked equal to a single pass with every query
    answered from partials (nothing left to a single pass)."""
    report = Report()
    full, inc = both(model, cache, report=report)
    assert_same(full, inc)
    assert set(report.queries.values()) == {"partials"}, report.queries
    return inc


def segment_rows(rows: pl.DataFrame, segment: dict[str, Any]) -> pl.DataFrame:
    """The raw rows of a result's segment (all of them for an overall result)."""
    for column, value in segment.items():
        rows = rows.filter(pl.col(column) == value)
    return rows


def close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats within 1e-12 relative (merged floating sums)."""
    if isinstance(a, float) and isinstance(b, float | int):
        if math.isnan(a):
            assert math.isnan(b), path
        else:
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300), (path, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, a, b)
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def assert_same(full: ModelResults, inc: ModelResults) -> None:
    assert len(full.results) == len(inc.results)
    for r, s in zip(full.results, inc.results, strict=True):
        where = f"{r.monitor}/{r.column}/{r.segment}"
        assert (r.monitor, r.column, r.segment, r.status, r.rows) == (
            s.monitor,
            s.column,
            s.segment,
            s.status,
            s.rows,
        ), where
        cur, prev = r.details.get("current"), r.details.get("previous")
        if isinstance(r.value, float) and isinstance(cur, float) and isinstance(prev, float):
            # a change between two merged means: each is within 1e-12 relative, and
            # their difference is as close as the sizes of both sides allow
            scale = (abs(cur) + abs(prev)) / (abs(prev) if r.details.get("mode") is None else 1)
            assert math.isclose(r.value, s.value, rel_tol=0, abs_tol=1e-12 * scale), where
            close({**r.details}, {**s.details}, where)
        else:
            close(r.value, s.value, where)
            a, b = dict(r.details), dict(s.details)
            if a.get("method") == "t_test" and "statistic" in a:
                # t = (mean_ref - mean_cur) / se: each merged mean is within 1e-12
                # relative, so t is within 1e-12 of |mean| / se, not of itself
                # when the means nearly cancel
                x, y = a.pop("statistic"), b.pop("statistic", None)
                assert isinstance(y, float), where
                assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-10), (where, x, y)
            close(a, b, where)
    assert full.warnings == inc.warnings


def with_undecomposed(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` plus monitors whose aggregates have no decomposition (schema, SQL
    KPIs with ``first`` and ``last``, a duplicate_rate over two columns and
    text): they run as single-pass queries or aggregates beside the partials; and
    drift that does decompose (wasserstein, ks)."""
    spec["checks"] += [
        {"name": "schema", "source": "req", "type": "schema", "expected_columns": {"x": "float"}},
        {"name": "dups", "source": "req", "type": "duplicate_rate", "columns": ["x"], **HIGH},
    ]
    spec["kpis"] += [  # SQL aggregates that do not merge
        {
            "name": "k",
            "source": "req",
            "expr": "first(latency)",
            "compare": {"offset": "1h"},
            **HIGH,
        },
        {"name": "k2", "source": "req", "expr": "last(x) + sum(x)", **HIGH},
    ]
    ref = {"source": "req", "reference": "ref", "columns": ["x"]}
    spec["drift"] += [
        {"name": "w", **ref, "method": "wasserstein"},
        {"name": "ks", **ref, "method": "ks"},
    ]
    return spec
