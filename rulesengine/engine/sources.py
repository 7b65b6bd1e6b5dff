"""Log sources → Polars LazyFrames (local files, globs, hive folders, object storage).

A source becomes one LazyFrame over its files (listed by :mod:`.files`); its
timestamp column is normalised afterwards (:mod:`.timestamps`). When a local
source's files do not all share one schema (a column renamed one day), each file
is scanned on its own and the scans are concatenated diagonally, so no column
silently disappears; :func:`file_schemas` reports the difference to the
``schema`` check. On the error path, :func:`bad_file` and :func:`dtype_conflicts`
name the file behind a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from rulesengine.engine.csvrows import ragged_row
from rulesengine.engine.files import display_path, local_files
from rulesengine.errors import DataError, first_line
from rulesengine.spec.model import SourceSpec

INFER_ROWS = 1000  # rows read to infer CSV / NDJSON dtypes


# Polars' Rust panics reach Python as PanicException, a BaseException: every place
# that runs Polars on user data catches this tuple, never a bare ``Exception``.
POLARS_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)


def reason(exc: BaseException) -> str:
    """Polars' message cut to its first line, with absolute paths shown relative,
    and a panic said to be one."""
    path = r"(?<![\w.])/[^\s'\"`,;:()]+"
    line = re.sub(path, lambda m: display_path(m.group(0)), first_line(exc))
    if isinstance(exc, pl.exceptions.PanicException):
        line = f"Polars panicked: {line}"
    return line[:300]


FILE_COLUMN = "__file"  # the file each row came from (projected only when used)


def hive_on(source: SourceSpec) -> bool:
    """Whether ``key=value`` folders become columns: by default for parquet, only
    when asked for ipc, never for CSV and NDJSON."""
    if source.format == "parquet":
        return True if source.hive_partitioning is None else source.hive_partitioning
    return source.format == "ipc" and bool(source.hive_partitioning)


def _scan_one(
    source: SourceSpec,
    path: str | list[str],
    *,
    with_file: bool = False,
    schema: pl.Schema | None = None,
    hive: bool | None = None,
) -> pl.LazyFrame:
    opts = dict(source.storage_options) or None
    extra: dict[str, Any] = {"include_file_paths": FILE_COLUMN} if with_file else {}
    literal = {} if source.is_remote else {"glob": False}  # our own expansion, see expand()
    if schema is not None:  # parquet files with differing columns: read their union
        extra["schema"] = schema
        extra["cast_options"] = pl.ScanCastOptions(
            integer_cast=["upcast", "allow-float"], float_cast="upcast"
        )
    if hive is None:
        hive = hive_on(source)
    if source.format == "parquet":
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
    """One file's schema as the source's scan reads it: its own columns (metadata
    or first lines only) plus, with hive partitioning on, the columns of its
    ``key=value`` folders (see :func:`hive_columns`). Cached by path, size and
    mtime for local files. A local CSV file is checked for ragged rows first
    (one pass over its bytes, cached the same way). Raises :class:`DataError`
    naming an unreadable file."""
    return _file_schema(source, path, hive_on(source))


def hive_columns(source: SourceSpec, path: str) -> frozenset[str]:
    """The columns of ``path`` that come from its ``key=value`` folders, not from
    the file itself: those of :func:`file_schema` that the file read without hive
    partitioning lacks. Empty when hive partitioning is off (CSV, NDJSON, ipc by
    default). A column the file stores itself is never one of them."""
    if not hive_on(source):
        return frozenset()
    own = _file_schema(source, path, False)
    return frozenset(c for c in file_schema(source, path).names() if c not in own)


def _file_schema(source: SourceSpec, path: str, hive: bool) -> pl.Schema:
    key: tuple[Any, ...] = (path, source.format, source.separator, hive)
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
            schema = _scan_one(source, path, hive=hive).collect_schema()
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


def matched_nothing(text: str, *also: str) -> bool:
    """Whether Polars' error ``text`` means the path matched no file: its "expanded
    paths were empty", or one of ``also`` (lower case) the caller takes for it too."""
    lower = text.lower()
    return "expanded paths were empty" in text or any(a in lower for a in also)


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
        if matched_nothing(text, "no such file"):
            return SourceSchema(source.name, None, 0)
        raise DataError(f"source '{source.name}': cannot read {source.path}: {text}") from None
    return SourceSchema(source.name, schema, None if files is None else len(files))
