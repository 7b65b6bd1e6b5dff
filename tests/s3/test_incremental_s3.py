"""The incremental cache over object storage, against a real S3 server (moto,
server mode, loopback): objects are identified by (size, ETag) from a LIST made
with the source's ``storage_options``, and the results equal a single pass.

Mirrors tests/incremental/test_incremental_labels.py for request and label
objects in the bucket: an overwritten object (new ETag) is computed again, a
deleted one drops out, a new label object reaches only the request objects whose
join keys it labels.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np
import polars as pl
import pytest
import yaml

from rulesengine.engine.incremental import Report
from rulesengine.engine.partial_cache import SUFFIX
from rulesengine.engine.partial_scan import current_files, etag_listable, list_objects
from rulesengine.spec.model import ModelSpec
from tests.conftest import run_cli
from tests.incremental.helpers import AT, HIGH, assert_same, both, hour_frame, load_model
from tests.s3.conftest import KEY_ID, SECRET, S3Server

pytestmark = pytest.mark.timeout(90)

ROWS = 150
CLI_TIMEOUT = 60


def _ids(seed: int) -> np.ndarray:
    """The request ids of the hour frame written with ``seed``."""
    return np.arange(ROWS) + seed * 1_000_000


class Store(Protocol):
    """An object store server of the tests: S3 (moto) or GCS (fake-gcs-server)."""

    bucket: str
    scheme: str

    @property
    def storage_options(self) -> dict[str, str]: ...

    def put(self, key: str, body: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class Bucket:
    """One test's objects under its own prefix of the shared bucket."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.prefix = f"inc-{uuid.uuid4().hex[:12]}"

    def url(self, key: str) -> str:
        return f"{self.store.scheme}://{self.store.bucket}/{self.prefix}/{key}"

    def put(self, key: str, df: pl.DataFrame, fmt: str = "parquet") -> str:
        buf = io.BytesIO()
        if fmt == "parquet":
            df.write_parquet(buf)
        elif fmt == "csv":
            df.write_csv(buf)
        else:
            df.write_ndjson(buf)
        self.store.put(f"{self.prefix}/{key}", buf.getvalue())
        return self.url(key)

    def delete(self, key: str) -> None:
        self.store.delete(f"{self.prefix}/{key}")

    def hour(self, h: int, seed: int | None = None, fmt: str = "parquet") -> str:
        """Requests of the hour starting at AT - (4 - h) h, in a hive folder ``dt=``
        for parquet; ids from ``seed`` (default ``h``)."""
        start = AT - timedelta(hours=4 - h)
        df = hour_frame(start, ROWS, h if seed is None else seed)
        if fmt == "csv":
            df = df.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
            return self.put(f"logs/{start:%Y%m%dT%H%M}.csv", df, "csv")
        return self.put(f"logs/dt={start:%Y-%m-%d}/{start:%H%M}.parquet", df)

    def labels(
        self,
        name: str,
        ids: np.ndarray,
        when: datetime,
        seed: int,
        fmt: str = "parquet",
        spread_s: float = 600,
    ) -> str:
        """Labels for ``ids``, known at times in (when, when + spread]."""
        rng = np.random.default_rng(seed)
        offsets = rng.uniform(1, spread_s * 1e6, len(ids)).astype("timedelta64[us]")
        base = np.datetime64(when.replace(tzinfo=None), "us")
        df = pl.DataFrame(
            {
                "request_id": ids.astype(np.int64),
                "label": rng.random(len(ids)) < 0.4,
                "ts": base + offsets,
            }
        ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        if fmt == "ndjson":
            df = df.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
        return self.put(f"labels/{name}.{fmt}", df, fmt)


def _spec(bucket: Bucket, fmt: str = "parquet", label_fmt: str = "parquet") -> dict[str, Any]:
    options = bucket.store.storage_options

    def metric(name: str, type_: str, **kw: Any) -> dict[str, Any]:
        join = {"source": "labels", "on": "request_id"}
        return {"name": name, "source": "req", "type": type_, "join": join, **kw, **HIGH}

    req: dict[str, Any] = {"timestamp": "ts", "storage_options": options}
    if fmt == "parquet":
        req |= {"path": bucket.url("logs/**/*.parquet"), "partition_date": "dt"}
    else:
        req |= {"path": bucket.url("logs/*.csv")}
    return {
        "version": 1,
        "model": "m",
        "sources": {
            "req": req,
            "labels": {
                "path": bucket.url(f"labels/*.{label_fmt}"),
                "timestamp": "ts",
                "storage_options": options,
            },
        },
        "evaluation": {"every": "15m", "window": "3h", "segment_by": ["model_version"]},
        "checks": [
            {"name": "rows", "source": "req", "type": "row_count", **HIGH},
            {"name": "x-nulls", "source": "req", "type": "null_rate", "column": "x", **HIGH},
        ],
        "metrics": [
            {"name": "x-mean", "source": "req", "type": "mean", "column": "x", **HIGH},
            {"name": "p95", "source": "req", "type": "quantile", "column": "latency", "q": 0.95}
            | HIGH,
            metric("acc", "accuracy", prediction="score >= 0.5", target="label"),
            metric("auc", "roc_auc", score="score", target="label"),
            metric("labelled", "count", min_label_coverage=0.2),
            metric("acc-hoh", "accuracy", prediction="score >= 0.5", target="label")
            | {"compare": {"offset": "1h"}},
        ],
    }


def _tick(model: ModelSpec, cache: Path, at: datetime = AT) -> Report:
    """One evaluation through the cache, equal to the single pass, every query
    from partials (none refused for being in object storage)."""
    report = Report()
    full, inc = both(model, cache, at, report)
    assert_same(full, inc)
    assert set(report.queries.values()) == {"partials"}, report.queries
    return report


def _entries(cache: Path) -> list[Path]:
    """The cache's entries (not the label summaries)."""
    return sorted(p for p in cache.rglob(f"*{SUFFIX}") if not p.parent.name.startswith("labels-"))


def _header(entry: Path) -> dict[str, Any]:
    """The JSON header of a cache entry (see partial_cache.encode)."""
    blob = entry.read_bytes()
    head = struct.Struct("<4sHI")
    _, _, n = head.unpack_from(blob)
    return json.loads(blob[head.size : head.size + n])


def test_objects_are_identified_by_size_and_etag(s3_server: S3Server, tmp_path: Path) -> None:
    bucket, model, a, ids = two_objects(s3_server, tmp_path)
    head = s3_server.client.head_object(Bucket=s3_server.bucket, Key=a.split("/", 3)[3])
    assert ids[a] == (head["ContentLength"], head["ETag"])
    # one listing of the folder that holds every match: other objects there too
    listed = list_objects(bucket.url("logs/"), s3_server.storage_options)
    assert list_objects(bucket.url("logs/_SUC"), s3_server.storage_options) == listed
    # credentials from the AWS_* variables when storage_options hold none, and an
    # http endpoint taken as it is (as Polars takes both)
    endpoint = {"aws_endpoint_url": s3_server.endpoint}
    assert list_objects(bucket.url("logs/"), endpoint) == listed
    # another version of the object: another ETag; the same bytes again: the same
    old = ids[a]
    bucket.hour(0, seed=7)
    assert current_files(model.sources["req"])[a] != old
    bucket.hour(0)
    assert current_files(model.sources["req"])[a] == old


def test_failing_listing_raises_oserror_without_secrets(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """A listing that fails (no such bucket, nothing listening, an unknown option)
    raises OSError soon, naming no secret; the queries then run in a single pass."""
    secret = "s3cr3t-never-printed"
    options = s3_server.storage_options | {"aws_secret_access_key": secret}
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    cases = [
        (f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/logs/", options),
        (f"s3://{s3_server.bucket}/logs/", options | {"aws_endpoint_url": closed}),
        (f"s3://{s3_server.bucket}/logs/", options | {"no_such_option": secret}),
    ]
    for folder, opts in cases:
        started = time.monotonic()
        with pytest.raises(OSError, match="listing of s3://") as failed:
            list_objects(folder, opts)
        assert time.monotonic() - started < 20
        assert secret not in str(failed.value) and SECRET not in str(failed.value)
        # nor in the chain an error reporter may walk
        assert failed.value.__context__ is None and failed.value.__cause__ is None


def test_credentials_from_a_profile(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key in storage_options or the environment: boto3's chain gives the
    credentials (here a named profile of a shared credentials file), as Polars."""
    pytest.importorskip("boto3")
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[ml]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    bucket = Bucket(s3_server)
    a = bucket.hour(0)
    options = {"aws_endpoint_url": s3_server.endpoint, "aws_profile": "ml"}
    assert set(list_objects(bucket.url("logs/"), options)) == {a}


def test_object_stores_with_an_etag_listing() -> None:
    """S3, GCS and Azure paths are listed (so cached); other remote paths are not."""
    listable = ["s3://b/x/*.parquet", "S3A://b/x", "gs://b/x", "gcs://b/x", "az://c/x"]
    listable += ["abfss://c@acct.dfs.core.windows.net/x", "adl://c/x", "azure://c/x"]
    for path in listable:
        assert etag_listable(SimpleNamespace(path=path, is_remote=True)), path  # type: ignore[arg-type]
    for path in ["https://example.com/x.parquet", "hf://datasets/x/y.parquet"]:
        assert not etag_listable(SimpleNamespace(path=path, is_remote=True)), path  # type: ignore[arg-type]


def test_rewritten_deleted_and_new_objects(s3_server: S3Server, tmp_path: Path) -> None:
    rewritten_deleted_and_new_objects(s3_server, tmp_path)


def rewritten_deleted_and_new_objects(store: Store, tmp_path: Path) -> None:
    """Request and label objects in the bucket, ticks equal to the single pass."""
    bucket = Bucket(store)
    files = [bucket.hour(h) for h in range(4)]
    bucket.labels("a", np.concatenate([_ids(0)[::2], _ids(1)[::2]]), AT - timedelta(hours=2), 1)
    model = load_model(tmp_path, _spec(bucket))
    cache = tmp_path / "cache"

    first = _tick(model, cache)
    assert first.scanned == {"req": sorted(files)}
    assert first.labels == {"labels": [bucket.url("labels/a.parquet")]}
    entries = _entries(cache)
    assert entries and all("etag" in _header(e) for e in entries)
    assert _tick(model, cache).scanned == {}  # nothing new: no request object read again

    # labels for some rows of the third object arrive: that object alone is read again
    new = bucket.labels("b", _ids(2)[:40], AT - timedelta(minutes=20), 2)
    report = _tick(model, cache)
    assert report.scanned == {"req": [files[2]]}
    assert report.labels == {"labels": [new]}

    # an overwritten request object (new ETag): that object alone
    bucket.hour(1, seed=11)
    assert _tick(model, cache).scanned == {"req": [files[1]]}

    # a deleted request object drops out (its entries deleted), nothing is read
    before = len(_entries(cache))
    bucket.delete(files[0].split("/", 4)[4])
    report = _tick(model, cache)
    assert report.scanned == {} and report.evicted > 0
    assert len(_entries(cache)) < before
    assert not any(_header(e)["path"] == files[0] for e in _entries(cache))

    # a deleted label object: the request objects it labelled
    bucket.delete("labels/b.parquet")
    assert _tick(model, cache).scanned == {"req": [files[2]]}

    # off the grid: the edges are read fresh from the bucket, nothing else
    report = _tick(model, cache, AT + timedelta(minutes=4, seconds=2))
    assert report.scanned == {} and report.edges > 0


def test_csv_requests_and_ndjson_labels(s3_server: S3Server, tmp_path: Path) -> None:
    csv_requests_and_ndjson_labels(s3_server, tmp_path)


def csv_requests_and_ndjson_labels(store: Store, tmp_path: Path) -> None:
    """Objects read one by one (CSV, NDJSON) give the single pass's results."""
    bucket = Bucket(store)
    files = [bucket.hour(h, fmt="csv") for h in range(4)]
    bucket.labels("a", _ids(1)[::3], AT - timedelta(hours=2), 1, fmt="ndjson")
    model = load_model(tmp_path, _spec(bucket, "csv", "ndjson"))
    cache = tmp_path / "cache"
    assert _tick(model, cache).scanned == {"req": sorted(files)}
    assert _tick(model, cache).scanned == {}
    bucket.labels("b", _ids(3)[:20], AT - timedelta(minutes=30), 2, fmt="ndjson")
    assert _tick(model, cache).scanned == {"req": [files[3]]}


def test_cli_run_cached_equals_no_cache(s3_server: S3Server, tmp_path: Path) -> None:
    cli_run_cached_equals_no_cache(s3_server, tmp_path, s3_server.env)


def cli_run_cached_equals_no_cache(
    store: Store,
    tmp_path: Path,
    env: dict[str, str],
    options: dict[str, str] | None = None,
    secret: str | None = None,
) -> None:
    """``rulesengine run`` through the cache (cold, then warm) prints what
    ``run --no-cache`` prints, and the cache holds entries identified by ETag.
    ``options``: the sources' storage_options as the spec writes them (default:
    the store's own), e.g. with a ``${VAR}`` that ``env`` sets to ``secret``,
    which no output may show."""
    bucket = Bucket(store)
    for h in range(4):
        bucket.hour(h)
    bucket.labels("a", np.concatenate([_ids(0)[::2], _ids(2)[::2]]), AT - timedelta(hours=2), 1)
    spec = _spec(bucket)
    for source in spec["sources"].values():
        source["storage_options"] = options or store.storage_options
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    engine = {"version": 1, "state": str(tmp_path / "state" / "state.db")}
    (tmp_path / "engine.yaml").write_text(yaml.safe_dump(engine), encoding="utf-8")

    def run(*flags: str) -> dict[str, Any]:
        at = AT.astimezone(UTC).isoformat()
        args = ["run", str(tmp_path), "--at", at, "--format", "json", "--fail-on", "never"]
        done = run_cli(*args, *flags, cwd=tmp_path, env=env, timeout=CLI_TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert secret is None or secret not in done.stdout + done.stderr
        (model,) = json.loads(done.stdout)["models"]
        return model

    with ThreadPoolExecutor(2) as pool:  # --no-cache touches no cache: side by side
        cold, single = pool.map(lambda flags: run(*flags), [(), ("--no-cache",)])
    warm = run()
    assert cold["results"]
    for cached in (cold, warm):
        _same_results(cached["results"], single["results"])
    entries = _entries(tmp_path / "state" / "partials")
    assert entries and all(_header(e)["path"].startswith(f"{store.scheme}://") for e in entries)
    assert all("etag" in _header(e) and "mtime_ns" not in _header(e) for e in entries)


def two_objects(store: Store, tmp_path: Path) -> tuple[Bucket, ModelSpec, str, dict[str, Any]]:
    """Two request objects and a ``_SUCCESS`` marker beside them: (the bucket, the
    model, the first object's URL, the identities Polars' expansion gives, checked
    to be the two objects and equal to one listing of their folder)."""
    bucket = Bucket(store)
    a = bucket.hour(0)
    b = bucket.hour(1)
    bucket.put("logs/_SUCCESS", pl.DataFrame({"x": [1]}))  # under the prefix, not a match
    model = load_model(tmp_path, _spec(bucket))
    ids = current_files(model.sources["req"])
    assert sorted(ids) == [a, b]  # the objects Polars' expansion reads
    listed = list_objects(bucket.url("logs/"), store.storage_options)
    assert set(listed) == {a, b, bucket.url("logs/_SUCCESS")}
    assert {k: listed[k] for k in (a, b)} == ids
    return bucket, model, a, ids


def _same_results(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same monitors, statuses and row counts; values within 1e-11 relative (the
    JSON keeps 12 significant digits of merged floating sums)."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        keys = ("monitor", "column", "segment", "status", "rows")
        assert [g.get(k) for k in keys] == [e.get(k) for k in keys]
        if isinstance(e["value"], float):
            assert g["value"] == pytest.approx(e["value"], rel=1e-11), e["monitor"]
        else:
            assert g["value"] == e["value"], e["monitor"]
