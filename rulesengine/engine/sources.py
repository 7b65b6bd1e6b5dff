"""Log sources → Polars LazyFrames (local files, globs, hive folders, object storage).

A source becomes one LazyFrame whose timestamp column is normalised to
``Datetime("us", "UTC")`` whatever the files hold (datetimes with or without a
zone, epoch seconds/milliseconds/…, ISO strings). When a local source's files do
not all share one schema (a column renamed one day), each file is scanned on its
own and the scans are concatenated diagonally, so no column silently disappears;
:func:`file_schemas` reports the difference to the ``schema`` check.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rulesengine.errors import DataError
from rulesengine.spec.loader import display
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


# Polars' Rust panics reach Python as PanicException, a BaseException: every place
# that runs Polars on user data catches this tuple, never a bare ``Exception``.
POLARS_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)


def display_path(path: str) -> str:
    """A file as the user would type it: relative to the working directory when
    inside it (``logs/a.parquet``), an object-storage URL as it is."""
    if "://" in path and not path.startswith("file://"):
        return path
    return display(Path(path.removeprefix("file://")))


def reason(exc: BaseException) -> str:
    """Polars' message cut to its first line, with absolute paths shown relative,
    and a panic said to be one."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    line = re.sub(r"(?<![\w.])/[^\s'\"`,;:()]+", lambda m: display_path(m.group(0)), line)
    if isinstance(exc, pl.exceptions.PanicException):
        line = f"Polars panicked: {line}"
    return line[:300]


def _dir_names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:  # unreadable or vanished: glob skips it too
        return []


def _visible(name: str, segment: str) -> bool:
    """Like glob: a wildcard matches a name starting with a dot only if it does too."""
    return not name.startswith(".") or segment.startswith(".")


def _walk(
    folder: str, segments: list[str], parents: frozenset[tuple[int, int, int]], out: list[str]
) -> None:
    """Append the files below ``folder`` matching ``segments`` (``**`` = any depth).
    Symlinks are followed, except into a folder that is already being walked with
    the same rest of the pattern (a link back to a parent: a loop). A folder reached
    twice otherwise is walked twice; :func:`_once` keeps each file once."""
    try:
        st = os.stat(folder)
    except OSError:
        return
    key = (st.st_dev, st.st_ino, len(segments))
    if key in parents:
        return
    parents = parents | {key}
    segment, rest = segments[0], segments[1:]
    if segment == "**":
        _walk(folder, rest or ["*"], parents, out)
        for name in _dir_names(folder):
            sub = os.path.join(folder, name)
            if _visible(name, "") and os.path.isdir(sub):
                _walk(sub, segments, parents, out)
        return
    if _has_glob(segment):
        names = [n for n in _dir_names(folder) if _visible(n, segment)]
        names = [n for n in names if fnmatch.fnmatchcase(n, segment)]
    else:
        names = [segment]
    for name in names:
        path = os.path.join(folder, name)
        if rest:
            if os.path.isdir(path):
                _walk(path, rest, parents, out)
        elif os.path.isfile(path):  # follows a file symlink; a FIFO or device is skipped
            out.append(path)


def _once(paths: list[str]) -> list[str]:
    """Each real file once (by device and inode), sorted. Of the paths to one file
    the one without symlinks wins, then the shortest: its folders are the ones a
    hive partition is read from."""
    best: dict[tuple[int, int], tuple[bool, int, str]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        rank = (os.path.realpath(path) != os.path.abspath(path), path.count(os.sep), path)
        key = (st.st_dev, st.st_ino)
        if key not in best or rank < best[key]:
            best[key] = rank
    return sorted(rank[2] for rank in best.values())


def expand(pattern: str) -> list[str]:
    """The local files a glob (or a directory: every file below it) matches,
    each real file once, sorted. ``**`` matches any depth; hidden names match only
    a pattern that starts with a dot, as in :mod:`glob`."""
    if not _has_glob(pattern):
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**", "*")
        else:
            return [pattern] if os.path.isfile(pattern) else []
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not _has_glob(parts[fixed]):
        fixed += 1
    base = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else ".")
    found: list[str] = []
    _walk(base, parts[fixed:], frozenset(), found)
    return _once(found)


def local_files(source: SourceSpec) -> list[str] | None:
    """The local files a source covers (see :func:`expand`); None for object
    storage (Polars expands remote globs itself)."""
    if source.is_remote:
        return None
    return expand(source.path.removeprefix("file://"))


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
    literal = {} if source.is_remote else {"glob": False}  # our own expansion, see expand()
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
            **literal,
            **extra,
        )
    if source.format == "ipc":
        hive = bool(source.hive_partitioning)
        return pl.scan_ipc(path, hive_partitioning=hive, storage_options=opts, **literal, **extra)
    if source.format == "csv":
        return pl.scan_csv(
            path,
            separator=source.separator,
            infer_schema_length=INFER_ROWS,
            storage_options=opts,
            try_parse_dates=False,
            **literal,
            **extra,
        )
    return pl.scan_ndjson(path, infer_schema_length=INFER_ROWS, storage_options=opts, **extra)


@dataclass(frozen=True)
class FileSchema:
    path: str
    schema: pl.Schema


_SCHEMA_CACHE: dict[tuple[Any, ...], pl.Schema] = {}


def cannot_read(source: SourceSpec, path: str, why: str) -> DataError:
    """The error for one unreadable file: ``source 's': cannot read logs/a.csv: why``."""
    return DataError(f"source '{source.name}': cannot read {display_path(path)}: {why}")


def file_schema(source: SourceSpec, path: str) -> pl.Schema:
    """One file's own schema (metadata or first lines only), cached by path, size
    and mtime for local files. A local CSV file is checked for ragged rows first
    (one pass over its bytes, cached the same way). Raises :class:`DataError`
    naming an unreadable file."""
    key: tuple[Any, ...] = (path, source.format, source.separator)
    if "://" not in path:
        st = os.stat(path)
        key = (*key, st.st_size, st.st_mtime_ns)
    schema = _SCHEMA_CACHE.get(key)
    if schema is None:
        if source.format == "csv" and "://" not in path:
            ragged = ragged_row(path, source.separator)
            if ragged is not None:
                line, fields, header = ragged
                what = "empty line" if fields == 0 else f"row has {fields} fields"
                raise DataError(
                    f"source '{source.name}': {display_path(path)}:{line}: {what}, "
                    f"the header has {header}"
                )
        try:
            schema = _scan_one(source, path).collect_schema()
        except POLARS_ERRORS as exc:
            raise cannot_read(source, path, reason(exc)) from None
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


def _nonempty(source: SourceSpec) -> list[str]:
    files = local_files(source)
    assert files is not None
    if not files:
        raise NoFiles(f"no files match {source.path}")
    nonempty = [f for f in files if os.path.getsize(f) > 0]
    if not nonempty:
        raise NoFiles(f"the files matching {source.path} are all empty")
    return nonempty


def _scan_columnar(source: SourceSpec, files: list[str]) -> pl.LazyFrame:
    """Parquet / IPC: one scan over the listed files. A file whose metadata cannot
    be read stays in the scan (a pruned hive partition never opens it; a query
    that reads it fails and :func:`bad_file` names it), but the schema is then
    given, so the scan's schema never depends on it."""
    schemas, unreadable = [], []
    for f in files:
        try:
            schemas.append(file_schema(source, f))
        except DataError as exc:
            unreadable.append(exc)
    if not schemas:
        raise unreadable[0]
    if source.format == "ipc" or (len({tuple(x.items()) for x in schemas}) <= 1 and not unreadable):
        return _scan_one(source, files, with_file=True)
    return _scan_one(source, files, with_file=True, schema=_union(schemas))


def scan(source: SourceSpec) -> pl.LazyFrame:
    """A LazyFrame over every file of ``source`` (raw columns). Nothing is read
    except schemas (and, for CSV, each file's field counts). Raises
    :class:`NoFiles` when there is nothing to read, :class:`DataError` naming the
    file when a CSV or NDJSON file cannot be read.

    Local files are listed by :func:`expand` (each real file once, no symlink
    loop) and handed to Polars as a list, never as a glob. Parquet is one scan
    (hive columns, partition and row-group pruning apply) over the union of the
    files' columns: a column some files lack reads as null there, none
    disappears. CSV and NDJSON files are scanned one by one and concatenated
    diagonally when their columns differ, because a single scan would silently keep
    only the first file's columns. Empty (0-byte) files are skipped.
    """
    if source.is_remote:  # object storage: Polars lists and reads
        return _scan_one(source, source.path, with_file=True)
    files = _nonempty(source)
    if source.format in ("parquet", "ipc"):
        return _scan_columnar(source, files)
    schemas = [file_schema(source, f) for f in files]
    same = len({tuple(x.items()) for x in schemas}) <= 1
    return pl.concat(
        [_scan_one(source, f, with_file=True) for f in files],
        how="vertical" if same else "diagonal_relaxed",
    )


def remote_files(source: SourceSpec) -> list[str] | None:
    """The objects an object-storage path covers, as URLs, sorted; None if Polars
    cannot list them. Uses Polars' own listing (a private helper of Polars 2.1, so
    a later Polars without it only loses the object's name in error messages)."""
    try:
        from polars.io._expand_paths import _expand_paths
    except ImportError:
        return None
    opts = dict(source.storage_options) or None
    try:
        listed = _expand_paths(source.path, storage_options=opts).collect()
    except POLARS_ERRORS:
        return None
    return sorted(str(p) for p in listed.to_series().to_list())


def bad_file(source: SourceSpec, columns: Sequence[str] = ()) -> str | None:
    """After a query over ``source`` failed: the first file that fails on its own,
    as ``source 's': cannot read logs/b.parquet: why``; None if each file reads
    (the failure lies elsewhere) or the files cannot be listed. Each file is read as
    the source's scan reads it (same schema and casts), limited to ``columns``
    when given, so a corrupt page, a dtype that does not fit, or a broken line is
    found. Objects in object storage are listed and read one by one the same way.
    Used on the error path only: it reads those columns of every file."""
    try:
        files = remote_files(source) if source.is_remote else _nonempty(source)
        schemas = [file_schema(source, f) for f in files or []]
    except DataError as exc:
        return str(exc)
    except NoFiles:
        return None
    if not files:
        return None
    target = None
    if source.format == "parquet" and len({tuple(x.items()) for x in schemas}) > 1:
        target = _union(schemas)
    for f, own in zip(files, schemas, strict=True):
        names = [c for c in columns if c in (target or own)]
        lf = _scan_one(source, f, schema=target)
        # a hash of every value forces each page to be decoded; statistics cannot answer it
        probe = [pl.col(c).hash().sum() for c in names] if names else [pl.all().hash().sum()]
        try:
            lf.select(probe).collect(engine="streaming")
        except POLARS_ERRORS as exc:
            return str(cannot_read(source, f, reason(exc)))
    return None


def dtype_conflicts(source: SourceSpec, columns: Sequence[str]) -> str | None:
    """Where the files of ``source`` disagree on the dtype of one of ``columns``:
    ``column 'x' is Int64 in logs/a.csv; String in logs/b.csv``; None if they agree."""
    seen: dict[str, dict[str, list[str]]] = {}
    for f in local_files(source) or []:
        try:
            schema = file_schema(source, f) if os.path.getsize(f) else None
        except (OSError, DataError):
            continue
        for c in columns:
            if schema is not None and c in schema:
                seen.setdefault(c, {}).setdefault(str(schema[c]), []).append(display_path(f))
    for c, by_dtype in seen.items():
        if len(by_dtype) > 1:
            parts = [
                f"{dtype} in {', '.join(fs[:2])}{' …' if len(fs) > 2 else ''}"
                for dtype, fs in by_dtype.items()
            ]
            return f"column '{c}' is " + "; ".join(parts)
    return None


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
    except POLARS_ERRORS as exc:  # polars raises ComputeError, OSError, … for bad files
        text = reason(exc)
        if "expanded paths were empty" in text or "no such file" in text.lower():
            return SourceSchema(source.name, None, 0)
        raise DataError(f"source '{source.name}': cannot read {source.path}: {text}") from None
    return SourceSchema(source.name, schema, None if files is None else len(files))


# ------------------------------------------------------------------ ragged CSV

CSV_CHUNK = 1 << 20  # bytes per block: NumPy works a block at a time, in cache


@dataclass
class _Records:
    """Where the field-count scan of a CSV file stands between blocks."""

    quoted: bool = False  # inside a quoted field at the end of the last block
    seps: int = 0  # separators in the record in progress
    length: int = 0  # bytes in the record in progress
    line: int = 1  # physical line where the record in progress starts
    lines: int = 1  # physical line at the start of the next block
    header: int | None = None  # the header's field count


def _block(state: _Records, a: np.ndarray, sep: int) -> tuple[int, int, int] | None:
    """Scan one block: (line, fields, length) of the first record whose field count
    differs from the header's. Separators and newlines inside quotes do not count;
    an escaped quote ("") toggles twice, so parity alone tells inside from outside."""
    newline = a == ord("\n")
    is_sep = a == sep
    quotes = a == ord('"')
    if quotes.any():
        inside = np.logical_xor.accumulate(quotes) ^ state.quoted
        state.quoted = bool(inside[-1])
        is_sep &= ~inside
        ends = np.flatnonzero(newline & ~inside)
    elif state.quoted:  # the whole block lies inside one quoted field
        is_sep[:] = False
        ends = np.empty(0, np.intp)
    else:
        ends = np.flatnonzero(newline)
    if not len(ends):
        state.seps += int(np.count_nonzero(is_sep))
        state.length += len(a)
        state.lines += int(np.count_nonzero(newline))
        return None
    starts = np.concatenate(([0], ends[:-1] + 1))
    per = np.add.reduceat(is_sep[: ends[-1] + 1], starts, dtype=np.int64)
    per[0] += state.seps
    if state.header is None:
        state.header = int(per[0]) + 1
    bad = np.flatnonzero(per + 1 != state.header)
    if len(bad):
        k = int(bad[0])
        line = state.line if k == 0 else state.lines + int(np.count_nonzero(newline[: starts[k]]))
        length = int(ends[k] - starts[k]) + (state.length if k == 0 else 0)
        return line, int(per[k]) + 1, length
    rest = int(ends[-1]) + 1
    state.seps = int(np.count_nonzero(is_sep[rest:]))
    state.length = len(a) - rest
    state.line = state.lines + int(np.count_nonzero(newline[:rest]))
    state.lines += int(np.count_nonzero(newline))
    return None


def ragged_row(path: str, separator: str = ",") -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first row of a CSV file whose number of
    fields differs from the header's, or None. Lines are 1-based, the header is line 1.
    A blank line counts as a row of one empty field (Polars reads it as a row of nulls)."""
    state = _Records()
    sep = ord(separator)
    with open(path, "rb") as fh:
        while block := fh.read(CSV_CHUNK):
            found = _block(state, np.frombuffer(block, np.uint8), sep)
            if found:
                line, fields, length = found
                return line, (0 if length == 0 else fields), state.header or fields
    if state.length > 0 and state.header is not None and state.seps + 1 != state.header:
        return state.line, state.seps + 1, state.header
    return None


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
    except POLARS_ERRORS:
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
