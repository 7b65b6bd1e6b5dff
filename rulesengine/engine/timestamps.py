"""Timestamps: a source's timestamp column normalised to ``Datetime("us", "UTC")``
whatever the files hold (datetimes with or without a zone, epoch seconds,
milliseconds, …, ISO strings), and the window filter over it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from rulesengine.engine.sources import POLARS_ERRORS
from rulesengine.errors import DataError
from rulesengine.spec.model import SourceSpec

TS_DTYPE = pl.Datetime("us", "UTC")
SAMPLE_ROWS = 1000  # first values of an ISO string column read to pick its formats

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
