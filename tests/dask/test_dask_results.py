"""On a LocalCluster of two process workers, every monitor type gives the
single pass's results: partial states per file partition, label joins
partitioned by join-key hash, single-pass queries shipped whole; on a cold
cache, on a tick, and against NumPy and scipy on raw rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rulesengine.engine.distributed import HASH_SEED, DaskReport, executor_for
from rulesengine.engine.evaluate import plan_model
from rulesengine.engine.execute import execute
from rulesengine.engine.incremental import Report
from rulesengine.engine.plan import ROWS
from tests.dask.helpers import add_labels, dask_spec, on_dask, write_logs
from tests.incremental.helpers import (
    AT,
    assert_same,
    close,
    load_model,
    model_spec,
    with_undecomposed,
    write_hour,
)

pytestmark = pytest.mark.timeout(90)


def _full_spec(root: Path) -> dict[str, Any]:
    """Every monitor family: decomposed checks, metrics, drift; label-joined
    metrics; and aggregates without a decomposition (schema, duplicate_rate, an
    SQL KPI, wasserstein, ks), which run as whole queries on the workers."""
    return with_undecomposed(add_labels(model_spec(root), root))


def test_every_monitor_type_equals_a_single_pass(cluster: Any, tmp_path: Path) -> None:
    write_logs(tmp_path)
    model = load_model(tmp_path, _full_spec(tmp_path))
    report, dask_report = Report(), DaskReport()
    full, got = on_dask(
        model,
        cluster.scheduler_address,
        tmp_path / "cache",
        report=report,
        dask_report=dask_report,
        files_per_task=2,
    )
    assert_same(full, got)
    assert not any(r.status == "error" for r in got.results)
    assert dask_report.partial_tasks >= 4  # 8 files in runs of 2, on the workers
    assert dask_report.query_tasks >= 1  # the single-pass queries, shipped whole
    assert dask_report.local == []  # nothing ran on the driver
    assert len(report.scanned["req"]) == 8

    # a tick: one new file, computed on a worker; the rest from the cache
    write_hour(tmp_path / "logs", AT, 600, 100)
    report = Report()
    full, got = on_dask(
        model,
        cluster.scheduler_address,
        tmp_path / "cache",
        AT + timedelta(minutes=15),
        report=report,
    )
    assert_same(full, got)
    new = str(tmp_path / "logs" / f"{AT:%Y%m%dT%H%M}.parquet")
    # the new file, and at most the files whose requests got labels since (a cache of
    # label joins recomputes those): never the whole window again
    assert new in report.scanned["req"] and len(report.scanned["req"]) <= 2


def test_label_joins_partitioned_by_key_equal_a_single_pass(cluster: Any, tmp_path: Path) -> None:
    """The single-pass hook on queries over a label join: J tasks by join-key
    hash, merged on the driver, equal execute's frames; each task read exactly
    its share of the labels."""
    write_logs(tmp_path, hours=4, rows=400)
    model = load_model(tmp_path, add_labels(model_spec(tmp_path, window="4h"), tmp_path))
    plan = plan_model(model, AT)
    joined = [q for q in plan.queries if q.frame.join is not None]
    assert len(joined) == 2  # overall and per segment
    dask_report = DaskReport()
    ev = executor_for(dask_spec(cluster.scheduler_address)).evaluation(plan, dask_report, 3)
    got = ev.whole(joined, model)
    want = execute(joined, model)
    assert not got.lost and not want.lost
    for q, a, b in zip(joined, want.frames, got.frames, strict=True):
        assert isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame), b
        keys = [c for c in a.columns if c not in q.aggs and c != ROWS]
        assert a.columns == b.columns and a.height == b.height > 0
        close(a.sort(keys).to_dicts(), b.sort(keys).to_dicts())

    labels = pl.read_parquet(tmp_path / "labels" / "*.parquet").filter(pl.col("ts") <= AT)
    part = labels.select(pl.struct(["request_id"]).hash(seed=HASH_SEED) % 3).to_series()
    expected = [int((part == j).sum()) for j in range(3)]
    assert min(expected) > 0 and sum(expected) == labels.height
    assert len(dask_report.joins) == 2
    for join in dask_report.joins:  # on the workers, each task kept exactly its share
        assert join.partitions == 3
        assert join.label_rows == expected


def test_values_against_numpy_and_scipy_on_raw_rows(cluster: Any, tmp_path: Path) -> None:
    write_logs(tmp_path, hours=6, rows=500)
    model = load_model(tmp_path, add_labels(model_spec(tmp_path), tmp_path))
    _, got = on_dask(model, cluster.scheduler_address, tmp_path / "cache", join_partitions=3)
    value = {(r.monitor, tuple(r.segment.items())): r.value for r in got.results}

    raw = pl.read_parquet(tmp_path / "logs" / "*.parquet").filter(
        (pl.col("ts") > AT - timedelta(hours=6)) & (pl.col("ts") <= AT)
    )
    x = raw.get_column("x").drop_nulls().to_numpy()
    assert value[("x-mean", ())] == pytest.approx(np.mean(x), rel=1e-12)
    assert value[("x-std", ())] == pytest.approx(np.std(x, ddof=1), rel=1e-12)
    latency = raw.get_column("latency").to_numpy()
    assert value[("lat-p95", ())] == pytest.approx(np.quantile(latency, 0.95), rel=1e-12)

    # the label join on raw rows: the latest label per request known at AT
    labels = (
        pl.read_parquet(tmp_path / "labels" / "*.parquet")
        .filter(pl.col("ts") <= AT)
        .sort("ts")
        .unique("request_id", keep="last")
    )
    joined = raw.join(labels, on="request_id", how="inner")
    assert value[("labelled", ())] == joined.height
    y = joined.get_column("label").to_numpy()
    s = joined.get_column("score").to_numpy()
    assert value[("j-acc", ())] == pytest.approx(np.mean((s >= 0.5) == y), rel=1e-12)
    u = stats.mannwhitneyu(s[y], s[~y]).statistic
    assert value[("j-auc", ())] == pytest.approx(u / (y.sum() * (~y).sum()), rel=1e-12)
    mae = np.mean(np.abs(joined.get_column("pred").to_numpy() - joined["truth"].to_numpy()))
    assert value[("j-mae", ())] == pytest.approx(mae, rel=1e-12)


def test_the_partition_hash_is_the_same_on_every_worker(client: Any) -> None:
    """Partitions are disjoint and cover the rows only if every process hashes
    a key alike."""

    def hashes() -> list[int]:
        df = pl.DataFrame({"k": [1, 2, None, 10**12], "s": ["a", "é", None, ""]})
        return df.select(pl.struct(["k", "s"]).hash(seed=HASH_SEED)).to_series().to_list()

    here = hashes()
    there = client.run(hashes)
    assert len(there) == 2 and all(v == here for v in there.values())
