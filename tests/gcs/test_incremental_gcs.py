"""The incremental cache over Google Cloud Storage, against a real GCS emulator
(fake-gcs-server on loopback): the same scenarios as tests/s3 (objects identified
by size and ETag from one listing with the source's ``storage_options``; an
overwritten object computed again, a deleted one dropped, a new label object
reaching only the request objects it labels; CSV and NDJSON objects), and
``rulesengine run`` cached against ``--no-cache`` with the key from ``${ENV}``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rulesengine.engine.partial_scan import current_files
from tests.gcs.conftest import GcsServer
from tests.s3.test_incremental_s3 import (
    cli_run_cached_equals_no_cache,
    csv_requests_and_ndjson_labels,
    rewritten_deleted_and_new_objects,
    two_objects,
)

pytestmark = pytest.mark.timeout(120)


def test_objects_are_identified_by_size_and_etag(gcs_server: GcsServer, tmp_path: Path) -> None:
    bucket, model, a, ids = two_objects(gcs_server, tmp_path)
    # the emulator's own metadata: size and ETag, as the listing gives them
    name = a.split("/", 3)[3].replace("/", "%2F")
    meta = json.loads(gcs_server._call("GET", f"/storage/v1/b/{gcs_server.bucket}/o/{name}"))
    assert ids[a] == (int(meta["size"]), meta["etag"])
    # another version of the object: another ETag; the same bytes again: the same
    old = ids[a]
    bucket.hour(0, seed=7)
    assert current_files(model.sources["req"])[a] != old
    bucket.hour(0)
    assert current_files(model.sources["req"])[a] == old


def test_rewritten_deleted_and_new_objects(gcs_server: GcsServer, tmp_path: Path) -> None:
    rewritten_deleted_and_new_objects(gcs_server, tmp_path)


def test_csv_requests_and_ndjson_labels(gcs_server: GcsServer, tmp_path: Path) -> None:
    csv_requests_and_ndjson_labels(gcs_server, tmp_path)


def test_cli_run_cached_equals_no_cache(gcs_server: GcsServer, tmp_path: Path) -> None:
    """The key comes from ``${GCS_KEY}`` and is never printed."""
    key = gcs_server.storage_options["google_service_account_key"]
    options = {"google_service_account_key": "${GCS_KEY}"}
    cli_run_cached_equals_no_cache(gcs_server, tmp_path, {"GCS_KEY": key}, options, key)
