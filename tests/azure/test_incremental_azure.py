"""The incremental cache over Azure Blob Storage, against a real emulator (Azurite
on loopback): the scenarios of tests/s3 and tests/gcs (objects identified by size
and ETag from one listing with the source's ``storage_options``; an overwritten
object computed again, a deleted one dropped, a new label object reaching only
the request objects it labels; CSV and NDJSON objects), and ``rulesengine run``
cached against ``--no-cache``."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from rulesengine.engine.partial_scan import current_files, list_objects
from tests.azure.conftest import AzureServer
from tests.conftest import run_cli
from tests.incremental.helpers import AT, load_model
from tests.s3.test_incremental_s3 import (
    Bucket,
    _entries,
    _header,
    _ids,
    _same_results,
    _spec,
    csv_requests_and_ndjson_labels,
    rewritten_deleted_and_new_objects,
)

pytestmark = pytest.mark.timeout(120)


def test_objects_are_identified_by_size_and_etag(azure_server: AzureServer, tmp_path: Path) -> None:
    import obstore

    bucket = Bucket(azure_server)
    a = bucket.hour(0)
    b = bucket.hour(1)
    bucket.put("logs/_SUCCESS", pl.DataFrame({"x": [1]}))  # under the prefix, not a match
    model = load_model(tmp_path, _spec(bucket))
    ids = current_files(model.sources["req"])
    assert sorted(ids) == [a, b]  # the objects Polars' expansion reads
    head = obstore.head(azure_server.store(), a.split("/", 3)[3])
    assert ids[a] == (head["size"], head["e_tag"].strip('"'))  # a HEAD quotes it, a LIST not
    listed = list_objects(bucket.url("logs/"), azure_server.storage_options)
    assert set(listed) == {a, b, bucket.url("logs/_SUCCESS")}
    # every write is another version with another ETag, even of the same bytes
    old = ids[a]
    bucket.hour(0)
    assert current_files(model.sources["req"])[a] != old


def test_rewritten_deleted_and_new_objects(azure_server: AzureServer, tmp_path: Path) -> None:
    rewritten_deleted_and_new_objects(azure_server, tmp_path)


def test_csv_requests_and_ndjson_labels(azure_server: AzureServer, tmp_path: Path) -> None:
    csv_requests_and_ndjson_labels(azure_server, tmp_path)


def test_cli_run_cached_equals_no_cache(azure_server: AzureServer, tmp_path: Path) -> None:
    """``rulesengine run`` through the cache (cold, then warm) prints what ``run
    --no-cache`` prints; the account key comes from ``${AZ_KEY}`` and is never
    printed; the cache holds entries identified by ETag."""
    bucket = Bucket(azure_server)
    for h in range(4):
        bucket.hour(h)
    bucket.labels("a", _ids(1)[::2], AT - timedelta(hours=2), 1)
    spec = _spec(bucket)
    options = azure_server.storage_options
    key = options["azure_storage_account_key"]
    for source in spec["sources"].values():
        source["storage_options"] = {**options, "azure_storage_account_key": "${AZ_KEY}"}
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    engine = {"version": 1, "state": str(tmp_path / "state" / "state.db")}
    (tmp_path / "engine.yaml").write_text(yaml.safe_dump(engine), encoding="utf-8")
    env = {**azure_server.env, "AZ_KEY": key}

    def run(*flags: str) -> dict[str, Any]:
        at = AT.astimezone(UTC).isoformat()
        args = ["run", str(tmp_path), "--at", at, "--format", "json", "--fail-on", "never"]
        done = run_cli(*args, *flags, cwd=tmp_path, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert key not in done.stdout + done.stderr
        (model,) = json.loads(done.stdout)["models"]
        return model

    cold, single, warm = run(), run("--no-cache"), run()
    assert cold["results"]
    for cached in (cold, warm):
        _same_results(cached["results"], single["results"])
    entries = _entries(tmp_path / "state" / "partials")
    assert entries and all(_header(e)["path"].startswith("az://") for e in entries)
    assert all("etag" in _header(e) and "mtime_ns" not in _header(e) for e in entries)
