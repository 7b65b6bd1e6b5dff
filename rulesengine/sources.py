"""Log sources → Polars LazyFrames (local files, globs, hive folders, object storage).

A source becomes one LazyFrame whose timestamp column is normalised to
``Datetime("us", "UTC")`` whatever the files hold (datetimes with or without a
zone, epoch seconds/milliseconds/…, ISO strings). When a local source's files do
not all share one schema (a column renamed one day), each file is scanned on its
own and the scans are concatenated diagonally, so no column silently disappears;
:func:`file_schemas` reports the difference to the ``schema`` check.
"""

from __future__ import annotations

import glob as globlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from rulesengine.errors import DataError
from rulesengine.spec.model import SourceSpec

INFER_ROWS = 1000  # rows read to infer CSV / NDJSON dtypes
TS_DTYPE = pl.Datetime("us", "UTC")

_ZONED_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
)
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def local_files(source: SourceSpec) -> list[str] | None:
    """The local files a source covers, sorted; None for object storage (Polars
    expands remote globs itself)."""
    if source.is_remote:
        return None
    path = source.path.removeprefix("file://")
    if _has_glob(path):
        return sorted(p for p in globlib.glob(path, recursive=True) if os.path.isfile(p))
    if os.path.isdir(path):
        pattern = os.path.join(path, "**", "*")
        return sorted(p for p in globlib.glob(pattern, recursive=True) if os.path.isfile(p))
    return [path] if os.path.exists(path) else []


FILE_COLUMN = "__file"  # the file each row came from (projected only when used)


def _scan_one(
    source: SourceSpec,
    path: str | list[str],
    *,
    with_file: bool = False,
    schema: pl.Schema | None = None,
) -> pl.LazyFrame:
    opts = dict(source.storage_options) or None
    extra: dict[str, Any] = {"include_file_paths": FILE_COLUMN} if with_file else {}
    if schema is not None:  # parquet files with differing columns: read their union
        extra["schema"] = schema
        extra["cast_options"] = pl.ScanCastOptions(
            integer_cast=["upcast", "allow-float"], float_cast="upcast"
        )
    if source.format == "parquet":
        hive = True if source.hive_partitioning is None else source.hive_partitioning
        return pl.scan_parquet(
            path,
            hive_partitioning=hive,
            storage_options=opts,
            missing_columns="insert",
            extra_columns="ignore",
            **extra,
        )
    if source.format == "ipc":
        hive = bool(source.hive_partitioning)
        return pl.scan_ipc(path, hive_partitioning=hive, storage_options=opts, **extra)
    if source.format == "csv":
        return pl.scan_csv(
            path,
            separator=source.separator,
            infer_schema_length=INFER_ROWS,
            storage_options=opts,
            try_parse_dates=False,
            **extra,
        )
    return pl.scan_ndjson(path, infer_schema_length=INFER_ROWS, storage_options=opts, **extra)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class FileSchema:
    path: str
    schema: pl.Schema


_SCHEMA_CACHE: dict[tuple[Any, ...], pl.Schema] = {}


def file_schema(source: SourceSpec, path: str) -> pl.Schema:
    """One file's own schema (metadata or first lines only), cached by path, size
    and mtime for local files. Raises :class:`DataError` naming an unreadable file."""
    key: tuple[Any, ...] = (path, source.format, source.separator)
    if "://" not in path:
        st = os.stat(path)
        key = (*key, st.st_size, st.st_mtime_ns)
    schema = _SCHEMA_CACHE.get(key)
    if schema is None:
        try:
            schema = _scan_one(source, path).collect_schema()
        except Exception as exc:
            raise DataError(
                f"source '{source.name}': cannot read {path}: {_first_line(exc)}"
            ) from None
        _SCHEMA_CACHE[key] = schema
    return schema


def file_schemas(source: SourceSpec, files: Sequence[str] | None = None) -> list[FileSchema]:
    """Each local file's own schema; see :func:`file_schema`."""
    files = local_files(source) if files is None else files
    return [FileSchema(path, file_schema(source, path)) for path in files or []]


class NoFiles(Exception):
    """A source with nothing to read: no file matches, or only empty files."""


def _union(schemas: Sequence[pl.Schema]) -> pl.Schema:
    """Every column of every file, each with the supertype of its dtypes."""
    frames = [pl.DataFrame(schema=s) for s in schemas]
    return pl.concat(frames, how="diagonal_relaxed").schema


def scan(source: SourceSpec) -> pl.LazyFrame:
    """A LazyFrame over every file of ``source`` (raw columns). Nothing is read
    except schemas. Raises :class:`NoFiles` when there is nothing to read.

    Parquet is one scan (hive columns, partition and row-group pruning apply) over
    the union of the files' columns: a column some files lack reads as null there,
    none disappears. CSV and NDJSON files are scanned one by one and concatenated
    diagonally when their columns differ, because a single scan would silently keep
    only the first file's columns. Empty (0-byte) files are skipped.
    """
    files = local_files(source)
    if files is None:  # object storage: Polars lists and reads
        return _scan_one(source, source.path, with_file=True)
    if not files:
        raise NoFiles(f"no files match {source.path}")
    nonempty = [f for f in files if os.path.getsize(f) > 0]
    if not nonempty:
        raise NoFiles(f"the files matching {source.path} are all empty")
    if source.format in ("parquet", "ipc"):
        schemas = []
        for f in nonempty:
            try:
                schemas.append(file_schema(source, f))
            except DataError:
                continue  # unreadable: named if a query ever needs to read it
        target: str | list[str] = source.path if len(nonempty) == len(files) else nonempty
        if source.format == "ipc" or len({tuple(x.items()) for x in schemas}) <= 1:
            return _scan_one(source, target, with_file=True)
        return _scan_one(source, target, with_file=True, schema=_union(schemas))
    schemas = [file_schema(source, f) for f in nonempty]
    same = len({tuple(x.items()) for x in schemas}) <= 1
    return pl.concat(
        [_scan_one(source, f, with_file=True) for f in nonempty],
        how="vertical" if same else "diagonal_relaxed",
    )


@dataclass(frozen=True)
class SourceSchema:
    """What a source's files declare, read from metadata or first lines only."""

    source: str
    schema: pl.Schema | None  # None: no files
    files: int | None  # None: unknown (object storage)


def read_schema(source: SourceSpec) -> SourceSchema:
    """The combined schema of ``source``. Raises :class:`DataError` naming the file
    when one cannot be read."""
    files = local_files(source)
    try:
        schema = scan(source).collect_schema()
    except NoFiles:
        return SourceSchema(source.name, None, 0)
    except DataError:
        raise
    except FileNotFoundError:
        return SourceSchema(source.name, None, 0)
    except Exception as exc:  # polars raises ComputeError, OSError, … for bad files
        text = _first_line(exc)
        if "expanded paths were empty" in text or "no such file" in text.lower():
            return SourceSchema(source.name, None, 0)
        raise DataError(f"source '{source.name}': cannot read {source.path}: {text}") from None
    return SourceSchema(source.name, schema, None if files is None else len(files))


# ----------------------------------------------------------------- timestamps


def _epoch_to_us(col: pl.Expr, unit: str | None) -> pl.Expr:
    """Epoch numbers → microseconds; without a unit, guessed per value from its size
    (seconds until year 5138, then milliseconds, microseconds, nanoseconds)."""
    value = col.cast(pl.Float64)
    factor = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
    if unit:
        return (value * factor[unit]).round(0).cast(pl.Int64)
    mag = value.abs()
    scaled = (
        pl.when(mag < 1e11)
        .then(value * 1e6)
        .when(mag < 1e14)
        .then(value * 1e3)
        .when(mag < 1e17)
        .then(value)
        .otherwise(value / 1e3)
    )
    return scaled.round(0).cast(pl.Int64)


def _formats_for(sample: list[str]) -> list[str]:
    """The fewest ISO formats that parse the sampled values (parsing every row
    with every format is slow). Values in a format the sample did not show parse
    as null."""
    values = pl.Series([v for v in sample if v is not None], dtype=pl.String)
    left = values
    chosen: list[str] = []
    for f in (*_ZONED_FORMATS, *_NAIVE_FORMATS):
        if left.is_empty():
            break
        ok = left.str.to_datetime(format=f, time_unit="us", strict=False).is_not_null()
        if ok.any():
            chosen.append(f)
            left = left.filter(~ok)
    return chosen or [*_ZONED_FORMATS, *_NAIVE_FORMATS]


def timestamp_expr(
    source: SourceSpec,
    dtype: pl.DataType,
    column: str | None = None,
    sample: list[str] | None = None,
) -> pl.Expr:
    """An expression turning the source's timestamp column into UTC microseconds.
    For ISO strings, ``sample`` (the first values) picks the formats to try."""
    name = column or source.timestamp
    assert name is not None
    col = pl.col(name)
    tz = source.timezone
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            col = col.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        return col.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype == pl.Date:
        return (
            col.cast(pl.Datetime("us"))
            .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
        )
    if dtype.is_numeric():
        return pl.from_epoch(
            _epoch_to_us(col, source.timestamp_unit), time_unit="us"
        ).dt.replace_time_zone("UTC")
    if dtype == pl.String:
        formats = _formats_for(sample) if sample else [*_ZONED_FORMATS, *_NAIVE_FORMATS]
        parsed = []
        for f in formats:
            expr = col.str.to_datetime(format=f, time_unit="us", strict=False)
            if f not in _ZONED_FORMATS:
                expr = expr.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
            parsed.append(expr.dt.convert_time_zone("UTC"))
        return parsed[0] if len(parsed) == 1 else pl.coalesce(parsed)
    raise DataError(
        f"source '{source.name}': timestamp column '{name}' is {dtype}; use a "
        "datetime, epoch numbers or ISO-8601 strings"
    )


def with_timestamp(frame: pl.LazyFrame, source: SourceSpec, schema: pl.Schema) -> pl.LazyFrame:
    """``frame`` with its timestamp column normalised to UTC (no-op without one)."""
    if source.timestamp is None:
        return frame
    if source.timestamp not in schema:
        raise DataError(
            f"source '{source.name}': timestamp column '{source.timestamp}' not "
            f"found (columns: {', '.join(schema.names())})"
        )
    dtype = schema[source.timestamp]
    if dtype == TS_DTYPE:
        return frame
    sample = None
    if dtype == pl.String:
        sample = sample_values(frame, source.timestamp)
    expr = timestamp_expr(source, dtype, sample=sample)
    return frame.with_columns(expr.alias(source.timestamp))


SAMPLE_ROWS = 1000


def sample_values(frame: pl.LazyFrame, column: str) -> list[str]:
    """The first non-null values of a string column (reads only the first rows)."""
    try:
        head = frame.select(pl.col(column)).head(SAMPLE_ROWS).collect()
    except Exception:
        return []
    return [v for v in head.get_column(column).to_list() if v is not None]


def in_window(
    source: SourceSpec,
    start: datetime | None,
    end: datetime | None,
    schema: pl.Schema | None = None,
) -> pl.Expr:
    """Rows with ``start < ts <= end`` (either bound may be open). With a
    ``partition_date`` column, the matching dates too, so Polars skips whole
    partitions."""
    ts = pl.col(source.timestamp or "")
    cond = pl.lit(True)
    if start is not None:
        cond = cond & (ts > pl.lit(start, dtype=TS_DTYPE))
    if end is not None:
        cond = cond & (ts <= pl.lit(end, dtype=TS_DTYPE))
    part = source.partition_date
    if part and schema is not None and part in schema:
        as_text = schema[part] == pl.String

        def day(t: datetime) -> Any:
            d = t.astimezone(UTC).date()
            return pl.lit(d.isoformat()) if as_text else pl.lit(d)

        if start is not None:
            cond = cond & (pl.col(part) >= day(start))
        if end is not None:
            cond = cond & (pl.col(part) <= day(end))
    return cond
