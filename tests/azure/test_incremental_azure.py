"""The incremental cache over Azure Blob Storage, against a real emulator (Azurite
on loopback): the scenarios of tests/s3 and tests/gcs (objects identified by size
and ETag from one listing with the source's ``storage_options``; an overwritten
object computed again, a deleted one dropped, a new label object reaching only
the request objects it labels; CSV and NDJSON objects), and ``rulesengine run``
cached against ``--no-cache``."""

from __future__ import annotations

from pathlib import Path

import pytest

from rulesengine.engine.partial_scan import current_files
from tests.azure.conftest import AzureServer
from tests.s3.test_incremental_s3 import (
    cli_run_cached_equals_no_cache,
    csv_requests_and_ndjson_labels,
    rewritten_deleted_and_new_objects,
    two_objects,
)

pytestmark = pytest.mark.timeout(120)


def test_objects_are_identified_by_size_and_etag(azure_server: AzureServer, tmp_path: Path) -> None:
    import obstore

    bucket, model, a, ids = two_objects(azure_server, tmp_path)
    head = obstore.head(azure_server.store(), a.split("/", 3)[3])
    assert ids[a] == (head["size"], head["e_tag"].strip('"'))  # a HEAD quotes it, a LIST not
    # every write is another version with another ETag, even of the same bytes
    old = ids[a]
    bucket.hour(0)
    assert current_files(model.sources["req"])[a] != old


def test_rewritten_deleted_and_new_objects(azure_server: AzureServer, tmp_path: Path) -> None:
    rewritten_deleted_and_new_objects(azure_server, tmp_path)


def test_csv_requests_and_ndjson_labels(azure_server: AzureServer, tmp_path: Path) -> None:
    csv_requests_and_ndjson_labels(azure_server, tmp_path)


def test_cli_run_cached_equals_no_cache(azure_server: AzureServer, tmp_path: Path) -> None:
    """The account key comes from ``${AZ_KEY}`` and is never printed."""
    options = azure_server.storage_options
    key = options["azure_storage_account_key"]
    spec_options = {**options, "azure_storage_account_key": "${AZ_KEY}"}
    env = {**azure_server.env, "AZ_KEY": key}
    cli_run_cached_equals_no_cache(azure_server, tmp_path, env, spec_options, key)
