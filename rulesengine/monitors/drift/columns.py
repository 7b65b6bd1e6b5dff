"""How the drift monitor reads a column: the Polars expressions of its values and
labels, and the roles under which its aggregates travel through the plan.

A role is what one aggregate of one column is for (:class:`Use`) plus the
column's name. :attr:`Role.key` is the one place that turns it into the binding
name the plan, ``rulesengine plan`` and the scorer's values use (``"h:amount"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import polars as pl

from rulesengine.monitors.columns import numeric_dtype
from rulesengine.monitors.drift.profiles import ColumnProfile

# numeric_dtype lives in monitors/columns.py, shared with the per-column checks
__all__ = ["Role", "Use", "as_array", "as_float", "changed_type", "labels"]
__all__ += ["numbers", "numeric_dtype"]


class Use(Enum):
    """What a column's aggregates are for; the value is the key's prefix."""

    NUMBERS = "n"  # the reference's sorted non-null values and null count
    CATEGORIES = "c"  # rows per label, on either side
    EMPTY = "e"  # the window's counts of a column the reference has no values of
    NOT_NUMBERS = "u"  # text values in the window that do not read as numbers
    SAMPLE = "s"  # the window's values, for the exact tests
    CELLS = "h"  # the window's counts over the reference's bins or fine grid
    TAILS = "t"  # the window's values in the fine grid's two outer cells


@dataclass(frozen=True)
class Role:
    """One column's aggregates of one :class:`Use`, e.g. ``Role(Use.CELLS, "amount")``."""

    use: Use
    column: str

    @property
    def key(self) -> str:
        """The binding name in the plan and in the values the scorer receives."""
        return f"{self.use.value}:{self.column}"

    @classmethod
    def parse(cls, key: str) -> Role | None:
        """The role a binding name stands for; None for the monitor's own names
        (``main``, the segments)."""
        prefix, _, column = key.partition(":")
        try:
            return cls(Use(prefix), column)
        except ValueError:
            return None


def as_array(values: Any) -> np.ndarray:
    """A list aggregate (numpy array, list or None) as a float array."""
    return np.empty(0) if values is None else np.asarray(values, dtype=float)


def _text(dtype: pl.DataType | None) -> bool:
    """A window column that may hold numbers as text (a CSV column read as strings),
    or only nulls (a Parquet column of type Null)."""
    return dtype in (pl.String, pl.Null)


def as_float(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """The column as Float64; text that is not a number gives null (counted apart:
    see :attr:`Use.NOT_NUMBERS`), anything else must cast."""
    return pl.col(name).cast(pl.Float64, strict=not _text(dtype))


def numbers(name: str, dtype: pl.DataType | None = None) -> pl.Expr:
    """A numeric column as Float64 with NaN and ±inf as missing (as Evidently drops
    them), so both sides and every method see the same values. Integers cannot be
    NaN or infinite: they are only cast."""
    x = as_float(name, dtype)
    if dtype is not None and dtype.is_integer():
        return x
    return pl.when(x.is_finite()).then(x).otherwise(None)


def labels(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """Category labels; numbers are labelled as their Float64 text on both sides."""
    if dtype is not None and numeric_dtype(dtype):
        return numbers(name, dtype).cast(pl.String)
    return pl.col(name).cast(pl.String)


def changed_type(
    col: ColumnProfile, name: str, schema: Mapping[str, pl.DataType], not_numbers: int = 0
) -> str | None:
    """Why a column compared as numeric cannot be read as numbers in the window
    (its type changed since the reference), so that only this column fails. Text
    columns are read as numbers unless ``not_numbers`` of their values are not."""
    dtype = schema[name]
    if col.kind != "numeric" or numeric_dtype(dtype) or (_text(dtype) and not not_numbers):
        return None
    what = f"holds {not_numbers} values that are not numbers" if not_numbers else f"is {dtype}"
    return (
        f"column '{name}' {what} in the window but is numeric in the reference: "
        f"its type changed; fix the data, or compare it as categories with "
        f"overrides: {{{name}: {{type: categorical}}}}"
    )
