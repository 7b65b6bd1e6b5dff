"""Log sources → Polars LazyFrames (local files, globs, hive folders, object storage)."""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass

import polars as pl

from rulesengine.errors import DataError
from rulesengine.spec.model import SourceSpec

INFER_ROWS = 1000  # rows read to infer CSV / NDJSON dtypes


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def local_files(source: SourceSpec) -> list[str] | None:
    """The local files a source covers, sorted; None for object storage (Polars
    expands remote globs itself)."""
    if source.is_remote:
        return None
    path = source.path.removeprefix("file://")
    if _has_glob(path):
        return sorted(p for p in globlib.glob(path, recursive=True) if not p.endswith("/"))
    import os

    if os.path.isdir(path):
        return sorted(
            p
            for p in globlib.glob(os.path.join(path, "**", "*"), recursive=True)
            if os.path.isfile(p)
        )
    return [path] if os.path.exists(path) else []


def scan(source: SourceSpec) -> pl.LazyFrame:
    """A LazyFrame over every file of ``source``. Nothing is read yet."""
    opts = dict(source.storage_options) or None
    path = source.path
    if source.format == "parquet":
        hive = True if source.hive_partitioning is None else source.hive_partitioning
        return pl.scan_parquet(path, hive_partitioning=hive, storage_options=opts)
    if source.format == "ipc":
        return pl.scan_ipc(
            path, hive_partitioning=bool(source.hive_partitioning), storage_options=opts
        )
    if source.format == "csv":
        return pl.scan_csv(
            path,
            separator=source.separator,
            infer_schema_length=INFER_ROWS,
            storage_options=opts,
            try_parse_dates=False,
        )
    return pl.scan_ndjson(path, infer_schema_length=INFER_ROWS, storage_options=opts)


@dataclass(frozen=True)
class SourceSchema:
    """What a source's files declare, read from metadata or first lines only."""

    source: str
    schema: pl.Schema | None  # None: no files
    files: int | None  # None: unknown (object storage)


def read_schema(source: SourceSpec) -> SourceSchema:
    """Read only the schema of ``source`` (parquet/IPC metadata, the CSV header and
    first rows, the first NDJSON lines). Raises :class:`DataError` naming the file
    when it cannot be read."""
    files = local_files(source)
    if files == []:
        return SourceSchema(source.name, None, 0)
    try:
        schema = scan(source).collect_schema()
    except FileNotFoundError:
        return SourceSchema(source.name, None, 0)
    except Exception as exc:  # polars raises ComputeError, OSError, … for bad files
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "expanded paths were empty" in text:
            return SourceSchema(source.name, None, 0)
        where = files[0] if files and len(files) == 1 else source.path
        raise DataError(f"source '{source.name}': cannot read {where}: {text}") from None
    return SourceSchema(source.name, schema, None if files is None else len(files))
