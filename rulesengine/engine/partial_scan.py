"""What the incremental executor reads: a source's current files with their
identities, a scan of some of them that reads rows exactly as the source's full
scan does, and the time-bucket grid.

A local file's identity is its size and modification time. An object in S3 (or
an S3-compatible store), Google Cloud Storage or Azure is identified by its size
and ETag, both from one listing (through obstore) of the folder that holds the
path's objects, made with the source's ``storage_options``; which objects count
is Polars' own expansion of the path, so the partials cover exactly the objects
the single pass reads.

The scan of a subset must give each row the values the full scan gives it, so
that partials computed file by file merge into the single pass's aggregates:
parquet and IPC files are read with the schema the full scan uses (the union of
every file's columns when they differ), CSV and NDJSON files are cast to the
full scan's columns, and the timestamp is normalised by the same expression
(for ISO strings, with formats picked from the full scan's first values).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

import polars as pl

from rulesengine.engine.partial_cache import Identity, file_identity
from rulesengine.engine.sources import (  # the full scan's own pieces, so both read alike
    FILE_COLUMN,
    NoFiles,
    _nonempty,
    _scan_one,
    _union,
    file_schema,
    remote_files,
    scan,
)
from rulesengine.engine.timestamps import TS_DTYPE, sample_values, timestamp_expr
from rulesengine.errors import DataError
from rulesengine.spec.model import ModelSpec, SourceSpec

MIN_BUCKET = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)

# parquet (or CSV) bytes on disk that one local batch of partial queries reads at
# most (a larger file alone): the in-memory engine holds a batch's columns, and
# one batch over a day of 200M rows held several GiB (see docs/scaling.md,
# "Memory at scale")
BATCH_BYTES = 32 * 2**20
# label files' bytes on disk per part of their deduplication (see
# ``frames.labels_once``): its sort held about ten times a part's bytes
LABEL_PART_BYTES = 16 * 2**20


def bucket_width(model: ModelSpec) -> timedelta:
    """The time-bucket width for ``model``: the greatest common divisor of its
    cadence and every window, delay and offset its monitors use, at least one
    minute. A window edge that falls on this grid is then a bucket edge whenever
    ``at`` lies on the cadence's grid (as the daemon's ticks do)."""
    spans = [model.evaluation.every]
    for m in model.monitors():
        spans += [m.window, m.delay]
        compare = getattr(m, "compare", None)
        if compare is not None:
            spans.append(compare.offset)
        ref = getattr(m, "reference", None)
        if ref is not None and not isinstance(ref, str):
            spans += [ref.offset or timedelta(0), ref.window or timedelta(0)]
    micros = [int(s / US) for s in spans if s and s > timedelta(0)]
    width = timedelta(microseconds=reduce(math.gcd, micros)) if micros else MIN_BUCKET
    return max(width, MIN_BUCKET)


def micros(t: datetime) -> int:
    return (t - EPOCH) // US


def on_grid(t: datetime, width: timedelta) -> bool:
    return micros(t) % (width // US) == 0


def bucket_expr(timestamp: str, width: timedelta) -> pl.Expr:
    """Each row's bucket b, holding the times in (b·width, (b + 1)·width] since
    the epoch: a window (start, end] on the grid is the buckets start/width to
    end/width − 1."""
    return (pl.col(timestamp).dt.epoch("us") - 1) // (width // US)


def current_files(source: SourceSpec) -> dict[str, Identity]:
    """The source's files now with their identities: non-empty local files with
    their size and mtime_ns, objects in object storage with their size and ETag
    (see :func:`remote_identities`)."""
    if source.is_remote:
        return remote_identities(source)
    out: dict[str, Identity] = {}
    for path in _nonempty(source):
        try:
            out[path] = file_identity(path)
        except OSError:  # vanished since the listing: not there
            continue
    return out


@dataclass(frozen=True)
class ScanShape:
    """What a subset scan takes from the source's full scan: its columns, the
    union of the parquet files' schemas when they differ (None when alike), and
    the first timestamps when they are text (the formats are picked from them).
    Computing it reads every file's footer, so an evaluation computes it once per
    source (see :class:`~rulesengine.engine.partial_run.Run`), not per batch."""

    raw: pl.Schema
    schema: pl.Schema | None
    sample: Any


def scan_shape(source: SourceSpec) -> ScanShape:
    full = scan(source)
    raw = full.collect_schema()
    schema = None
    if not source.is_remote and source.format == "parquet":
        schemas, unreadable = [], False
        for f in _nonempty(source):
            try:
                schemas.append(file_schema(source, f))
            except DataError:
                unreadable = True
        if len({tuple(x.items()) for x in schemas}) > 1 or unreadable:
            schema = _union(schemas)
    ts = source.timestamp
    sample = sample_values(full, ts) if ts is not None and raw.get(ts) == pl.String else None
    return ScanShape(raw, schema, sample)


def subset_scan(
    source: SourceSpec, files: list[str], shape: ScanShape | None = None
) -> pl.LazyFrame:
    """``files`` of ``source`` read as :func:`~rulesengine.engine.sources.scan`
    reads them among all the source's files, timestamp normalised (``shape``: the
    source's :func:`scan_shape`, computed here when not given)."""
    shape = shape or scan_shape(source)
    raw = shape.raw
    if source.is_remote:
        lf = _remote_subset(source, files, raw)
    elif source.format in ("parquet", "ipc"):
        lf = _scan_one(source, files, with_file=True, schema=shape.schema)
    else:
        parts = [_scan_one(source, f, with_file=True) for f in files]
        lf = pl.concat(parts, how="diagonal_relaxed")
        have = lf.collect_schema()
        lf = lf.select(
            [
                pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c)
                for c, t in raw.items()
            ]
        )
    ts = source.timestamp
    if ts is None or ts not in raw or raw[ts] == TS_DTYPE:
        return lf
    return lf.with_columns(timestamp_expr(source, raw[ts], sample=shape.sample).alias(ts))


def _remote_subset(source: SourceSpec, files: list[str], raw: pl.Schema) -> pl.LazyFrame:
    """Objects of a source in object storage, read with its ``storage_options`` and
    cast to the full scan's columns. The full scan is one Polars scan of the
    path, whose columns are the first object's: parquet objects are read with
    that schema (a column an object lacks is null, one it adds is ignored, as
    there), the others one by one."""
    if source.format == "parquet":
        target = pl.Schema({c: t for c, t in raw.items() if c != FILE_COLUMN})
        lf = _scan_one(source, files, with_file=True, schema=target)
    elif source.format == "ipc":
        lf = _scan_one(source, files, with_file=True)
    else:
        parts = [_scan_one(source, f, with_file=True) for f in files]
        lf = pl.concat(parts, how="diagonal_relaxed")
    have = lf.collect_schema()
    return lf.select(
        [pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c) for c, t in raw.items()]
    )


def raw_schema_text(source: SourceSpec) -> str:
    """The full scan's columns and dtypes, as text (part of a query's fingerprint:
    partials computed under other columns are never merged)."""
    return str(list(scan(source).collect_schema().items()))


# ---------------------------------------------------------------- object storage
# Objects are identified by (size, ETag) from a listing made with obstore, the
# Python bindings of the Rust object_store crate Polars itself reads with (Polars
# lists objects but does not tell their ETags). obstore is imported only here, when
# a remote source is listed: local runs never load it.

# URL schemes Polars reads → the scheme obstore builds the store from
STORE_SCHEMES = {
    "s3": "s3",
    "s3a": "s3a",
    "gs": "gs",
    "gcs": "gs",
    "gcp": "gs",
    "az": "az",
    "azure": "azure",
    "adl": "adl",
    "abfs": "abfs",
    "abfss": "abfss",
}
LIST_TIMEOUT = "30s"  # per LIST request (Polars' own reads have no timeout)
CONNECT_TIMEOUT = "5s"
LIST_RETRIES = 2  # object_store's default is 10 retries within 3 minutes
LIST_RETRY_TIMEOUT = timedelta(seconds=30)
# storage_options keys Polars reads itself, not object_store: not for the listing
_POLARS_KEYS = frozenset(
    {
        "file_cache_ttl",
        "max_retries",
        "retry_timeout_ms",
        "retry_init_backoff_ms",
        "retry_max_backoff_ms",
        "retry_base_multiplier",
        "rate_read_init",
        "rate_read_floor",
        "rate_read_ceiling",
        "rate_write_init",
        "rate_write_floor",
        "rate_write_ceiling",
    }
)
# object_store's HTTP client keys (``aws_``/``google_``/``azure_`` prefix allowed, as
# in Polars): obstore takes them as client options, apart from the store's config
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_max_frame_size",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "timeout",
        "user_agent",
    }
)
_PROFILE = frozenset({"aws_profile", "profile"})  # boto3's, as Polars reads it
_AWS_SECRETS = frozenset({"access_key_id", "secret_access_key", "session_token", "token"})


def etag_listable(source: SourceSpec) -> bool:
    """Whether the identities of ``source``'s objects can be listed: a path in S3 or
    an S3-compatible store (``s3://``, ``s3a://``), Google Cloud Storage (``gs://``,
    ``gcs://``) or Azure (``az://``, ``azure://``, ``adl://``, ``abfs[s]://``)."""
    return source.is_remote and _scheme(source.path) in STORE_SCHEMES


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def remote_identities(source: SourceSpec) -> dict[str, Identity]:
    """The objects of ``source`` with their (size, ETag): the objects are those
    Polars' expansion of the path gives (what the single pass reads), their
    identities from one listing of the folder that holds them all. Raises
    :class:`NoFiles` when nothing matches, :class:`OSError` when the objects cannot
    be listed or an object Polars lists is not in the listing (it changed in
    between)."""
    if not etag_listable(source):
        raise OSError(f"no ETag listing for {_scheme(source.path)}:// paths")
    paths = remote_files(source)
    if paths is None:
        raise OSError(f"Polars cannot list {source.path}")
    if not paths:
        raise NoFiles(f"no files match {source.path}")
    listed = list_objects(_common_folder(paths), source.storage_options)
    out: dict[str, Identity] = {}
    for path in paths:
        if path not in listed:
            raise OSError(f"{path} is not in the listing of its folder")
        out[path] = listed[path]
    return out


def _common_folder(urls: list[str]) -> str:
    """The deepest folder (``scheme://bucket/dir/``) that holds every URL."""
    common = urls[0][: urls[0].rfind("/")].split("/")
    for url in urls[1:]:
        parts = url[: url.rfind("/")].split("/")
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return "/".join(common) + "/"


def list_objects(folder: str, storage_options: Mapping[str, str]) -> dict[str, Identity]:
    """Every object under ``folder`` (``scheme://bucket/`` or ``scheme://bucket/dir/``;
    a key prefix that is not a whole folder is cut back to one) as URL → (size,
    ETag), listed with ``storage_options`` as Polars reads them. Raises
    :class:`OSError` when the store cannot be reached, refuses, or gives an object
    without an ETag (the message names no secret)."""
    scheme, rest = folder.split("://", 1)
    bucket, _, key = rest.partition("/")
    prefix = key[: key.rfind("/") + 1].strip("/")
    where = f"listing of {scheme}://{bucket}/{prefix}{'/' if prefix else ''}"
    failure = None
    try:
        import obstore

        store = _store(scheme, bucket, storage_options)
        metas = [
            m
            for chunk in obstore.list(store, prefix=prefix or None, chunk_size=1000)
            for m in chunk
        ]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # obstore's errors, a bad option, a Rust panic (pyo3's
        # PanicException is a BaseException of obstore's own, not Polars')
        failure = f"{where}: {_reason(exc, storage_options)}"
    if failure is not None:  # raised outside the handler: obstore's own error, which
        # may quote a secret, is not kept as the OSError's __context__
        raise OSError(failure)
    out: dict[str, Identity] = {}
    for meta in metas:
        if not meta["e_tag"]:
            raise OSError(f"{where}: {meta['path']} has no ETag")
        out[f"{scheme}://{bucket}/{meta['path']}"] = (meta["size"], meta["e_tag"])
    return out


def _reason(exc: BaseException, storage_options: Mapping[str, str]) -> str:
    """The first line of ``exc``'s message, every option value (but endpoints and
    regions) and every URL's credentials, path and query values masked
    (object_store's messages can quote a request URL)."""
    from rulesengine.masking import mask_text

    line = (str(exc).strip().splitlines() or [""])[0]
    plain = ("endpoint", "region", "base_url")
    values = [str(v) for k, v in storage_options.items() if not any(p in k.lower() for p in plain)]
    return f"{type(exc).__name__}: {mask_text(line, values)}".rstrip(": ")


def _store(scheme: str, bucket: str, storage_options: Mapping[str, str]) -> Any:
    """An obstore store for ``bucket`` (without a prefix: listed paths are whole
    keys), configured from ``storage_options`` as Polars reads them: the store's
    own keys as config, the HTTP client's keys as client options (http endpoints
    allowed, as Polars allows them), Polars' own keys left out; anything unset
    comes from the environment (obstore reads the ``AWS_*``, ``GOOGLE_*`` and
    ``AZURE_*`` variables). For S3 without a key in the options or the
    environment, credentials come from boto3's chain (profiles, SSO, …) when boto3
    is installed, as Polars takes them."""
    from obstore.store import from_url

    kind = STORE_SCHEMES[scheme.lower()]
    strip = {"s3": "aws_", "s3a": "aws_", "gs": "google_"}.get(kind, "azure_")
    config: dict[str, str] = {}
    client = {"allow_http": "true", "timeout": LIST_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT}
    profile = None
    for raw, value in storage_options.items():
        key = raw.lower()
        if key in _POLARS_KEYS:
            continue
        if key in _PROFILE and strip == "aws_":
            profile = str(value)
        elif key.removeprefix(strip) in _CLIENT_KEYS:
            client[key.removeprefix(strip)] = str(value)
        else:
            config[key] = str(value)
    provider = _boto3_provider(config, profile) if strip == "aws_" else None
    return from_url(
        f"{kind}://{bucket}",
        config=config,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
        retry_config={
            "max_retries": LIST_RETRIES,
            "retry_timeout": LIST_RETRY_TIMEOUT,
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        },
        credential_provider=provider,
    )


def _boto3_provider(config: Mapping[str, str], profile: str | None) -> Any | None:
    """boto3's credentials for an S3 store whose options and environment hold no
    access key and that signs its requests; None otherwise, or without boto3, or
    when boto3 finds none (object_store's own chain then: web identity, container
    and instance credentials)."""
    keys = {k.removeprefix("aws_") for k in config}
    skip = config.get("aws_skip_signature", config.get("skip_signature", ""))
    if keys & _AWS_SECRETS or skip.strip().lower() in ("1", "true", "yes", "on"):
        return None
    if profile is None and os.environ.get("AWS_ACCESS_KEY_ID"):
        return None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider

        return Boto3CredentialProvider(boto3.Session(profile_name=profile))
    except Exception:  # no boto3, an unknown profile, no credentials found
        return None


def size_batches(files: list[str], sizes: Mapping[str, Identity], limit: int) -> list[list[str]]:
    """``files`` in runs of consecutive files of at most ``limit`` bytes on disk
    together (a larger file alone; ``sizes``: their identities), for the local
    collector and the label summaries."""
    out: list[list[str]] = []
    total = 0
    for path in files:
        size = sizes[path][0] if path in sizes else 0
        if out and total + size <= limit:
            out[-1].append(path)
            total += size
        else:
            out.append([path])
            total = size
    return out
