"""Which columns of a source a per-column monitor covers.

Drift and the per-column checks (``null_rate``, ``out_of_range``, …) share this:
a list of columns is taken as given; a selector (``all``, ``numeric``,
``categorical``) is resolved against the source's schema as the engine reads it
from the files' metadata, without scanning any rows. ``all`` is every column
except the source's timestamp, the file-name column, the monitor's segment
columns, ``exclude``, and temporal and nested columns; ``numeric`` keeps the
columns of a numeric dtype (booleans are not numbers here) and ``categorical``
the others. Only dtypes decide: drift's own choice of how to compare a column
(:mod:`rulesengine.monitors.drift.choices`) also counts unique values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from rulesengine.engine.sources import FILE_COLUMN
from rulesengine.spec.model import COLUMN_SELECTORS, ModelSpec

__all__ = ["COLUMN_SELECTORS", "numeric_dtype", "select_columns", "skipped_columns"]


def numeric_dtype(dtype: pl.DataType) -> bool:
    """Whether a column is compared and selected as numbers (not booleans)."""
    return dtype.is_numeric() and dtype != pl.Boolean


def skipped_columns(model: ModelSpec, source: str, segment_by: Iterable[str]) -> set[str]:
    """Columns a selector never picks: the source's timestamp, the file-name
    column, and the monitor's segment columns."""
    return {model.sources[source].timestamp or "", FILE_COLUMN, *segment_by} - {""}


def select_columns(
    schema: Mapping[str, pl.DataType],
    selector: str,
    *,
    skip: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> list[str]:
    """The columns of ``schema`` that ``selector`` picks, in the schema's order."""
    if selector not in COLUMN_SELECTORS:
        raise ValueError(f"unknown column selector {selector!r}")
    left_out = set(skip) | set(exclude)
    picked = [
        c
        for c, t in schema.items()
        if c not in left_out and not t.is_temporal() and not t.is_nested()
    ]
    if selector == "numeric":
        return [c for c in picked if numeric_dtype(schema[c])]
    if selector == "categorical":
        return [c for c in picked if not numeric_dtype(schema[c])]
    return picked
