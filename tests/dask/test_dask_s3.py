"""Object storage from the workers: sources on a real S3 server (moto on
loopback) evaluated on the LocalCluster, whose worker processes read s3:// with
the storage_options that travel inside the serialised plan (the workers have no
AWS settings of their own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rulesengine.engine.distributed import DaskReport
from tests.dask.helpers import add_labels, on_dask, write_logs
from tests.incremental.helpers import assert_same, load_model, model_spec, with_undecomposed
from tests.s3.conftest import S3Server, _fake_aws_env  # noqa: F401 (an autouse fixture)
from tests.s3.conftest import s3_server as s3_server_fixture

s3_server = s3_server_fixture

pytestmark = pytest.mark.timeout(90)


def _drop_aws_env() -> dict[str, str]:
    """On a worker: remove its AWS settings; the ones removed."""
    import os

    return {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}


def _set_env(values: dict[str, str]) -> None:
    import os

    os.environ.update(values)


def test_workers_read_object_storage_with_the_sources_storage_options(
    cluster: Any,
    client: Any,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    saved = client.run(_drop_aws_env)  # the workers' own settings: none
    try:
        _evaluate(cluster, s3_server, tmp_path)
    finally:
        for worker, values in saved.items():
            client.run(_set_env, values, workers=[worker])


def _evaluate(cluster: Any, s3_server: S3Server, tmp_path: Path) -> None:
    write_logs(tmp_path, hours=4, rows=300)
    s3_server.upload_tree(tmp_path / "logs", "dask/logs")
    s3_server.upload_tree(tmp_path / "labels", "dask/labels")
    spec = with_undecomposed(add_labels(model_spec(tmp_path, window="4h"), tmp_path))
    for name, folder in (("req", "logs"), ("labels", "labels")):
        spec["sources"][name]["path"] = s3_server.url("dask", f"{folder}/*.parquet")
        spec["sources"][name]["storage_options"] = s3_server.storage_options
    model = load_model(tmp_path, spec)
    dask_report = DaskReport()
    full, got = on_dask(
        model, cluster.scheduler_address, tmp_path / "cache", dask_report=dask_report
    )
    assert_same(full, got)
    assert not any(r.status == "error" for r in got.results)
    # objects in S3 are cached by ETag: the workers compute their partials (label
    # joins included) and run the single-pass queries, all reading the bucket
    assert dask_report.local == [] and dask_report.query_tasks > 0
    assert dask_report.partial_tasks > 0 and dask_report.joins == []

    # the same rows from local files give the same values
    local = load_model(
        tmp_path, with_undecomposed(add_labels(model_spec(tmp_path, window="4h"), tmp_path))
    )
    _, here = on_dask(local, cluster.scheduler_address, tmp_path / "cache2")
    assert_same(here, got)
