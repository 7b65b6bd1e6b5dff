"""Fixture rows written as real files, in the format and layout a source expects.

A source's path is split at its first wildcard segment: the fixed folders before
it are replaced by a folder of the test's temporary directory, and the rest is
kept as a pattern the engine expands as usual. The file written matches that
pattern: each ``*`` in a name becomes ``fixture``, ``?`` becomes ``x``, and a
``**`` segment becomes a hive folder ``KEY=YYYY-MM-DD`` per day of the rows when
the source has ``partition_date: KEY`` (nothing otherwise). The format is the
source's own (parquet, CSV, NDJSON, IPC). A source without fixture rows points at
an empty folder, so it matches no file (the engine's ``no_data``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.ruletest.format import Fixture
from rulesengine.spec.model import SourceSpec

_WILD = "*?["


class FixtureError(ValueError):
    """Rows or a file that cannot be written for a source (one-line message)."""


def _split(path: str) -> tuple[list[str], list[str]]:
    """(fixed folders, pattern segments) of a source path."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if any(c in part for c in _WILD):
            return list(parts[:i]), list(parts[i:])
    return list(parts[:-1]), [parts[-1]]


def _name(segment: str) -> str:
    if "[" in segment:
        raise FixtureError(f"the pattern segment '{segment}' uses [...]; fixtures cannot name it")
    return segment.replace("*", "fixture").replace("?", "x")


def _frame(source: SourceSpec, rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    try:
        frame = pl.DataFrame(rows, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise FixtureError(f"source '{source.name}': rows of mixed types ({exc})") from None
    ts = source.timestamp
    if (
        ts
        and ts in frame.columns
        and frame.schema[ts] == pl.String
        and source.format
        in (
            "parquet",
            "ipc",
        )
    ):
        frame = frame.with_columns(
            pl.col(ts).str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
        )
    return frame


def _text_times(frame: pl.DataFrame) -> pl.DataFrame:
    """Datetime columns as ISO text with Z, for CSV and NDJSON."""
    zoned = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    return frame.with_columns(
        pl.col(c).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ") for c in zoned
    )


def _write(frame: pl.DataFrame, fmt: str, target: Path, separator: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.write_parquet(target)
    elif fmt == "ipc":
        frame.write_ipc(target)
    elif fmt == "csv":
        _text_times(frame).write_csv(target, separator=separator)
    elif fmt in ("ndjson", "json"):
        _text_times(frame).write_ndjson(target)
    else:
        raise FixtureError(f"cannot write fixture rows as {fmt}")


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d}"
    return str(value)[:10]


def _pieces(
    source: SourceSpec, frame: pl.DataFrame, pattern: list[str]
) -> list[tuple[list[str], pl.DataFrame]]:
    """(folder names, rows) per file: one file, or one per day for hive folders."""
    hive = "**" in pattern and source.partition_date
    if not hive:
        return [([_name(s) for s in pattern if s != "**"], frame)]
    ts = source.timestamp
    if not ts or ts not in frame.columns:
        raise FixtureError(
            f"source '{source.name}': partition_date needs the timestamp column '{ts}' in the rows"
        )
    days = [_day(v) for v in frame[ts].to_list()]
    out = []
    for day in sorted(set(days)):
        rows = frame.filter(pl.Series([d == day for d in days]))
        names = [f"{source.partition_date}={day}" if s == "**" else _name(s) for s in pattern]
        out.append((names, rows))
    return out


def place(source: SourceSpec, fixture: Fixture | None, base: Path) -> SourceSpec:
    """Write ``fixture`` for ``source`` under ``base`` and return the source pointed
    at it (at an empty folder when ``fixture`` is None)."""
    if source.is_remote:
        pattern = [p for p in source.path.split("://", 1)[1].split("/") if p][-1:]
    else:
        pattern = _split(source.path)[1]
    folder = base / source.name
    folder.mkdir(parents=True, exist_ok=True)
    pointed = replace(source, path=str(folder.joinpath(*pattern)), storage_options={})
    if fixture is None:
        return pointed
    if fixture.file is not None:
        names = [_name(s) for s in pattern if s != "**"]
        target = folder.joinpath(*names)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fixture.file, target)
        return pointed
    frame = _frame(source, fixture.rows or [])
    for names, rows in _pieces(source, frame, pattern):
        _write(rows, source.format, folder.joinpath(*names), source.separator)
    return pointed
