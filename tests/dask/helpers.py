"""The Dask tests' data: the incremental tests' hourly logs and model, plus
labels joined by request id, evaluated through a Dask executor."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rulesengine.engine.distributed import DaskReport, execute_on
from rulesengine.engine.evaluate import plan_model
from rulesengine.engine.execute import execute
from rulesengine.engine.incremental import Report
from rulesengine.engine.results import ModelResults
from rulesengine.engine.score import score
from rulesengine.spec.model import ExecutorSpec, ModelSpec
from tests.incremental.helpers import AT, HIGH, hour_frame, write_hour, write_reference


def dask_spec(address: str, timeout: timedelta = timedelta(seconds=60)) -> ExecutorSpec:
    return ExecutorSpec(type="dask", address=address, timeout=timeout)


def write_logs(root: Path, hours: int = 8, rows: int = 600) -> None:
    """Hourly request files ending at AT, a reference, and labels for about 70 %
    of the requests (some twice: the latest counts), one file per hour."""
    for h in range(hours):
        start = AT - timedelta(hours=hours - h)
        write_hour(root / "logs", start, rows, h)
        df = hour_frame(start, rows, h)
        rng = np.random.default_rng(1000 + h)
        keep = df.filter(pl.Series(rng.random(rows) < 0.7))
        labels = keep.select(
            "request_id",
            (pl.col("ts") + timedelta(minutes=30)).alias("ts"),
            pl.Series("label", rng.random(keep.height) < 0.4),
            pl.Series("truth", rng.normal(3, 1, keep.height).round(2)),
        )
        again = labels.head(20).with_columns(pl.col("ts") + timedelta(minutes=5), ~pl.col("label"))
        (root / "labels").mkdir(parents=True, exist_ok=True)
        pl.concat([labels, again]).write_parquet(root / "labels" / f"{start:%Y%m%dT%H%M}.parquet")
    write_reference(root / "ref.parquet")


def join_metrics() -> list[dict[str, Any]]:
    """Metrics over the label join: counts, a confusion, a mean, a rank sum."""
    join = {"source": "labels", "on": "request_id"}

    def metric(name: str, type_: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "source": "req", "type": type_, "join": join, **kw, **HIGH}

    return [
        metric("labelled", "count"),
        metric("j-acc", "accuracy", prediction="score >= 0.5", target="label"),
        metric("j-auc", "roc_auc", score="score", target="label"),
        metric("j-mae", "mae", prediction="pred", target="truth"),
        metric("j-f1", "f1", prediction="score >= 0.5", target="label"),
    ]


def add_labels(spec: dict[str, Any], root: Path) -> dict[str, Any]:
    spec["sources"]["labels"] = {"path": str(root / "labels" / "*.parquet"), "timestamp": "ts"}
    spec["metrics"] += join_metrics()
    return spec


def on_dask(
    model: ModelSpec,
    address: str,
    cache: Path,
    at: datetime = AT,
    *,
    timeout: timedelta = timedelta(seconds=60),
    report: Report | None = None,
    dask_report: DaskReport | None = None,
    **kw: Any,
) -> tuple[ModelResults, ModelResults]:
    """(single pass, on the cluster) results of the same plan."""
    plan = plan_model(model, at)
    full = score(plan, execute(plan.queries, model))
    collected = execute_on(
        dask_spec(address, timeout),
        plan,
        model,
        cache,
        report=report,
        dask_report=dask_report,
        **kw,
    )
    return full, score(plan, collected)


def slow_tasks(delay: float) -> None:
    """Run on a worker: each task of this worker sleeps ``delay`` seconds first
    (so a test can act while an evaluation is under way)."""
    import time

    import rulesengine.engine.distributed as d

    original = getattr(d, "_original_collect_task", d.collect_task)
    d._original_collect_task = original  # type: ignore[attr-defined]

    def slow(blobs: list[bytes], engine: str) -> Any:
        time.sleep(delay)
        return original(blobs, engine)

    d.collect_task = slow  # type: ignore[assignment]


def fast_tasks() -> None:
    """Undo :func:`slow_tasks` on a worker."""
    import rulesengine.engine.distributed as d

    d.collect_task = getattr(d, "_original_collect_task", d.collect_task)
