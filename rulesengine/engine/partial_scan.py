"""What the incremental executor reads: a source's current files with their
identities, a scan of some of them that reads rows exactly as the source's full
scan does, and the time-bucket grid.

The scan of a subset must give each row the values the full scan gives it, so
that partials computed file by file merge into the single pass's aggregates:
parquet and IPC files are read with the schema the full scan uses (the union of
every file's columns when they differ), CSV and NDJSON files are cast to the
full scan's columns, and the timestamp is normalised by the same expression
(for ISO strings, with formats picked from the full scan's first values).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import reduce

import polars as pl

from rulesengine.engine.partial_cache import Identity, file_identity
from rulesengine.engine.sources import (  # the full scan's own pieces, so both read alike
    _nonempty,
    _scan_one,
    _union,
    file_schema,
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
    """The source's non-empty local files now, with their size and mtime_ns."""
    out = {}
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
    if source.format in ("parquet", "ipc"):
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


def raw_schema_text(source: SourceSpec) -> str:
    """The full scan's columns and dtypes, as text (part of a query's fingerprint:
    partials computed under other columns are never merged)."""
    return str(list(scan(source).collect_schema().items()))
