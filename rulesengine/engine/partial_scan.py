"""What the incremental executor reads: a source's current files with their
identities, a scan of some of them that reads rows exactly as the source's full
scan does, and the time-bucket grid.

A local file's identity is its size and modification time. An object in S3 (or
an S3-compatible store) is identified by its size and ETag, both from one
ListObjectsV2 of the path's prefix (before its first wildcard) made with the
source's ``storage_options``; which objects count is Polars' own expansion of
the path, so the partials cover exactly the objects the single pass reads.

The scan of a subset must give each row the values the full scan gives it, so
that partials computed file by file merge into the single pass's aggregates:
parquet and IPC files are read with the schema the full scan uses (the union of
every file's columns when they differ), CSV and NDJSON files are cast to the
full scan's columns, and the timestamp is normalised by the same expression
(for ISO strings, with formats picked from the full scan's first values).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import reduce

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


def subset_scan(source: SourceSpec, files: list[str]) -> pl.LazyFrame:
    """``files`` of ``source`` read as :func:`~rulesengine.engine.sources.scan`
    reads them among all the source's files, timestamp normalised."""
    full = scan(source)
    raw = full.collect_schema()
    if source.is_remote:
        lf = _remote_subset(source, files, raw)
    elif source.format in ("parquet", "ipc"):
        schemas, unreadable = [], False
        for f in _nonempty(source):
            try:
                schemas.append(file_schema(source, f))
            except DataError:
                unreadable = True
        same = source.format == "ipc" or (
            len({tuple(x.items()) for x in schemas}) <= 1 and not unreadable
        )
        lf = _scan_one(source, files, with_file=True, schema=None if same else _union(schemas))
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
    sample = sample_values(full, ts) if raw[ts] == pl.String else None
    return lf.with_columns(timestamp_expr(source, raw[ts], sample=sample).alias(ts))


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
# Objects are identified by (size, ETag) from S3's ListObjectsV2, requested here with
# the standard library and signed with AWS Signature V4: Polars lists objects but
# does not tell their ETags, and no other object-store client is a dependency.

S3_SCHEMES = ("s3", "s3a")
LIST_TIMEOUT = 30.0  # seconds per LIST request
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = "-_.~"
# storage_options keys as Polars' object store reads them (case-insensitive)
_KEY_ID = ("aws_access_key_id", "access_key_id")
_SECRET = ("aws_secret_access_key", "secret_access_key")
_TOKEN = ("aws_session_token", "aws_token", "session_token", "token")
_REGION = ("aws_region", "region", "aws_default_region", "default_region")
_ENDPOINT = ("aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url")
_VIRTUAL = ("aws_virtual_hosted_style_request", "virtual_hosted_style_request")
_SKIP_SIGNATURE = ("aws_skip_signature", "skip_signature")


def etag_listable(source: SourceSpec) -> bool:
    """Whether the identities of ``source``'s objects can be listed: a path in S3
    or an S3-compatible store (``s3://``, ``s3a://``)."""
    return source.is_remote and source.path.split("://", 1)[0].lower() in S3_SCHEMES


def remote_identities(source: SourceSpec) -> dict[str, Identity]:
    """The objects of ``source`` (in S3) with their (size, ETag): the objects are
    those Polars' expansion of the path gives (what the single pass reads), their
    identities from one listing of the path's prefix. Raises :class:`NoFiles`
    when nothing matches, :class:`OSError` when the objects cannot be listed or
    an object Polars lists is not in the listing (it changed in between)."""
    if not etag_listable(source):
        raise OSError(f"no ETag listing for {source.path.split('://', 1)[0]}:// paths")
    paths = remote_files(source)
    if paths is None:
        raise OSError(f"Polars cannot list {source.path}")
    if not paths:
        raise NoFiles(f"no files match {source.path}")
    listed = list_objects(source.path, source.storage_options)
    out: dict[str, Identity] = {}
    for path in paths:
        if path not in listed:
            raise OSError(f"{path} is not in the listing of its prefix")
        out[path] = listed[path]
    return out


def list_objects(path: str, storage_options: Mapping[str, str]) -> dict[str, Identity]:
    """Every object under the prefix of ``path`` (an ``s3://bucket/key`` URL or
    glob; the prefix ends before its first wildcard) as URL → (size, ETag), from
    ListObjectsV2 pages of up to 1,000 keys. Raises :class:`OSError` when S3
    cannot be reached or refuses (the message names no secret)."""
    scheme, rest = path.split("://", 1)
    bucket, _, pattern = rest.partition("/")
    wild = min((i for i, c in enumerate(pattern) if c in "*?["), default=len(pattern))
    prefix = pattern if wild == len(pattern) else pattern[: pattern.rfind("/", 0, wild) + 1]
    conf = _s3_config(storage_options)
    url = _bucket_url(bucket, conf)
    out: dict[str, Identity] = {}
    token: str | None = None
    while True:
        params = {"list-type": "2", "prefix": prefix}
        if token is not None:
            params["continuation-token"] = token
        where = f"listing of {scheme}://{bucket}/{prefix}"
        try:
            root = ET.fromstring(_get(url, params, conf))
        except ET.ParseError:
            raise OSError(f"{where}: not a ListObjectsV2 answer") from None
        for item in root.iterfind("{*}Contents"):
            key = item.findtext("{*}Key")
            etag, size = item.findtext("{*}ETag"), item.findtext("{*}Size") or ""
            if key is None or not etag or not size.isdigit():
                raise OSError(f"{where}: an object without ETag or size")
            out[f"{scheme}://{bucket}/{key}"] = (int(size), etag)
        token = root.findtext("{*}NextContinuationToken")
        if root.findtext("{*}IsTruncated") != "true" or not token:
            return out


def _s3_config(storage_options: Mapping[str, str]) -> dict[str, str | None]:
    """The settings that matter for a LIST: ``storage_options`` first, then the
    ``AWS_*`` environment variables (as Polars' object store reads them), then, for
    credentials only, botocore's chain when it is installed."""
    opts = {k.lower(): str(v) for k, v in storage_options.items()}

    def get(names: tuple[str, ...]) -> str | None:
        for n in names:
            if n in opts:
                return opts[n]
        for n in names:
            if n.startswith("aws_") and os.environ.get(n.upper()):
                return os.environ[n.upper()]
        return None

    conf = {
        "key": get(_KEY_ID),
        "secret": get(_SECRET),
        "token": get(_TOKEN),
        "region": get(_REGION) or "us-east-1",
        "endpoint": get(_ENDPOINT),
        "virtual": get(_VIRTUAL),
        "unsigned": get(_SKIP_SIGNATURE),
    }
    if not _truthy(conf["unsigned"]) and not (conf["key"] and conf["secret"]):
        conf["key"], conf["secret"], conf["token"] = _botocore_credentials()
    return conf


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "on", "yes", "y")


def _botocore_credentials() -> tuple[str | None, str | None, str | None]:
    """Credentials from botocore's chain (profiles, instance roles, …), if installed."""
    try:
        import botocore.session
    except ImportError:
        return None, None, None
    try:
        creds = botocore.session.get_session().get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except Exception:  # botocore raises its own errors for broken profiles
        return None, None, None
    if frozen is None:
        return None, None, None
    return frozen.access_key, frozen.secret_key, frozen.token


def _bucket_url(bucket: str, conf: Mapping[str, str | None]) -> str:
    """The bucket's URL as Polars' object store builds it: path style by default
    (``<endpoint>/<bucket>``), the endpoint itself with virtual-hosted requests."""
    endpoint, region = conf["endpoint"], conf["region"]
    if _truthy(conf["virtual"]):
        url = endpoint or f"https://{bucket}.s3.{region}.amazonaws.com"
    else:
        url = f"{(endpoint or f'https://s3.{region}.amazonaws.com').rstrip('/')}/{bucket}"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):  # Polars takes an http endpoint as it is, so do we
        raise OSError(f"S3 endpoint {scheme}:// is neither http nor https")
    return url


def _get(url: str, params: Mapping[str, str], conf: Mapping[str, str | None]) -> bytes:
    """One signed GET of ``url`` with query ``params``; the body."""
    query = _canonical_query(params)
    headers = {}
    if not _truthy(conf["unsigned"]):
        if not conf["key"] or not conf["secret"]:
            raise OSError("no S3 credentials in storage_options or the environment")
        headers = sign_v4(
            "GET",
            url,
            params,
            region=conf["region"] or "us-east-1",
            key_id=conf["key"],
            secret=conf["secret"],
            token=conf["token"],
            now=datetime.now(UTC),
        )
    request = urllib.request.Request(f"{url}?{query}", headers=headers, method="GET")
    bucket = urllib.parse.urlsplit(url)
    try:
        with urllib.request.urlopen(request, timeout=LIST_TIMEOUT) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise OSError(f"S3 LIST at {bucket.netloc}{bucket.path}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(f"S3 LIST at {bucket.netloc}{bucket.path}: {exc}") from None


def _quote(text: str, safe: str = _UNRESERVED) -> str:
    return urllib.parse.quote(text, safe=safe)


def _canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(params.items()))


def sign_v4(
    method: str,
    url: str,
    params: Mapping[str, str],
    *,
    region: str,
    key_id: str,
    secret: str,
    token: str | None,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers of an AWS Signature Version 4 request without a body (``host``,
    ``x-amz-date``, ``x-amz-content-sha256``, the session token if any, and
    ``Authorization``) for ``method`` on ``url`` with query ``params``."""
    parts = urllib.parse.urlsplit(url)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    host = parts.hostname or ""
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [
            method,
            _quote(parts.path or "/", safe="/" + _UNRESERVED),
            _canonical_query(params),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            signed,
            _EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, digest])
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers
