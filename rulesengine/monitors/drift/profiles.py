"""Reference profiles for drift: the reference reduced once, cached on disk.

A column profile holds what every drift method needs from the reference: the
sorted non-null values (exact up to ``SAMPLE_CAP`` values; above it, a sketch of
``SKETCH_POINTS`` evenly spaced order statistics, so a CDF read from it is off by
at most 1/(SKETCH_POINTS − 1)), the category counts, the histogram bins fixed
from the reference quantiles with their counts, and the fine cells (counts and
sums, and the values in the two outer cells) that wasserstein integrates over.

Fine cells: ``GRID_CELLS`` cells of equal width between the reference quantiles at
``GRID_TAIL`` and 1 − ``GRID_TAIL``, plus two open-ended outer cells. Equal widths
make a value's cell one multiply-add (:func:`grid_index` / :func:`grid_expr`, the
same float64 arithmetic on both sides) instead of a search among the edges.

Binning rule: ``bins`` (default 10) cells between the reference quantiles at
k/bins, right-closed, the outer cells open-ended; edges that coincide collapse.
Categories: the reference's own plus one "unseen" bucket for anything else.

Profiles are plain data: :mod:`~rulesengine.monitors.drift.profile_cache` keeps
them on disk, and what the monitor decides from one lives beside it
(:mod:`~rulesengine.monitors.drift.choices`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

SAMPLE_CAP = 1_000_000
SKETCH_POINTS = 100_001
GRID_CELLS = 2048  # equal-width fine cells between the GRID_TAIL quantiles
GRID_TAIL = 0.001
UNSEEN = "__unseen__"


@dataclass
class ColumnProfile:
    name: str
    kind: str  # numeric | categorical
    n: int  # non-null values
    nulls: int
    unique: int
    exact: bool = True  # sample holds every value
    sample_array: np.ndarray | None = None
    # a cached profile reads its (large) sample only when an exact test needs it
    sample_ref: tuple[str, str] | None = None
    categories: list[str] = field(default_factory=list)
    counts: np.ndarray = field(default_factory=lambda: np.empty(0))  # per category
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))  # coarse bins
    bin_counts: np.ndarray = field(default_factory=lambda: np.empty(0))
    fine_edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    fine_counts: np.ndarray = field(default_factory=lambda: np.empty(0))
    fine_sums: np.ndarray = field(default_factory=lambda: np.empty(0))  # of x − sum_origin
    tail_low: np.ndarray = field(default_factory=lambda: np.empty(0))  # in the outer
    tail_high: np.ndarray = field(default_factory=lambda: np.empty(0))  # fine cells
    grid_lo: float = 0.0  # the fine grid: cell of x is ⌊(x − grid_lo)·grid_scale⌋ + 1
    grid_scale: float = 1.0
    # sums are of x − sum_origin: grid_lo for values far from 0 next to their spread
    # (epoch timestamps, large ids), where plain sums would lose the digits that
    # matter; else 0, which spares the window's side a subtraction per row
    sum_origin: float = 0.0
    minimum: float = 0.0
    maximum: float = 0.0
    std: float = 0.0  # population std, as Evidently norms wasserstein

    @property
    def sample(self) -> np.ndarray:
        """The sorted reference values (or the sketch above the cap)."""
        if self.sample_array is None:
            if self.sample_ref is None:
                self.sample_array = np.empty(0)
            else:
                with np.load(self.sample_ref[0], allow_pickle=False) as data:
                    self.sample_array = data[self.sample_ref[1]]
        return self.sample_array


@dataclass
class Profile:
    rows: int
    columns: dict[str, ColumnProfile]
    # a trailing baseline split like the window: each segment's own profile
    segmented: bool = False
    segments: dict[tuple[Any, ...], Profile] = field(default_factory=dict)


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed cell, the same cells Polars'
    ``bin_intervals(edges, right_closed=True)`` gives the current window."""
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(float)


def grid_of(values: np.ndarray) -> tuple[float, float]:
    """(lo, scale) of the fine grid over sorted ``values``: GRID_CELLS equal cells
    between the GRID_TAIL quantiles (between min and max if those coincide; a unit
    span if every value is the same)."""
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.quantile(values, [GRID_TAIL, 1 - GRID_TAIL], method="linear")
    if not hi > lo:
        lo, hi = values[0], values[-1]
    if not hi > lo:
        hi = lo + 1.0
    span = float(hi) - float(lo)
    if not np.isfinite(span):  # wider than float64 holds: the widest finite span
        span = float(np.finfo(float).max)
    return float(lo), GRID_CELLS / span


def grid_edges(lo: float, scale: float) -> np.ndarray:
    """The GRID_CELLS + 1 inner edges; cell k (1..GRID_CELLS) is [e[k-1], e[k]),
    cell 0 lies below e[0] and cell GRID_CELLS + 1 at or above e[-1]."""
    return lo + np.arange(GRID_CELLS + 1) / scale


def sum_origin_of(lo: float, scale: float) -> float:
    """What the fine cells' sums are taken relative to (see ColumnProfile)."""
    return lo if abs(lo) > GRID_CELLS / scale else 0.0


def grid_index(values: np.ndarray, lo: float, scale: float) -> np.ndarray:
    """Each value's fine cell, 0..GRID_CELLS + 1 (what :func:`grid_expr` computes)."""
    u = np.clip((values - lo) * scale + 1.0, 0.0, GRID_CELLS + 1.0)
    return u.astype(np.int64)  # truncation = floor, as u >= 0


def grid_expr(x: pl.Expr, lo: float, scale: float) -> pl.Expr:
    """Each row's fine cell as a Polars expression over Float64 ``x``, the same
    arithmetic as :func:`grid_index`. Null and NaN give null; ±inf land in the
    outer cells, where the caller finds them among the outer values (cheaper
    than masking every row)."""
    u = ((x - lo) * scale + 1.0).clip(0.0, GRID_CELLS + 1.0)
    return u.cast(pl.UInt16, strict=False)


def quantile_edges(sample: np.ndarray, cells: int) -> np.ndarray:
    if sample.size == 0 or cells < 2:
        return np.empty(0)
    levels = np.arange(1, cells) / cells
    return np.unique(np.quantile(sample, levels, method="linear"))


def numeric_profile(
    name: str, values: np.ndarray, nulls: int, bins: int, like: ColumnProfile | None = None
) -> ColumnProfile:
    """A numeric column's profile. With ``like`` (the whole baseline's profile of the
    column), one segment's, cut by the same bins and fine grid."""
    values = np.sort(np.asarray(values, dtype=float))
    n = int(values.size)
    exact = n <= SAMPLE_CAP
    sample = (
        values if exact else np.quantile(values, np.linspace(0, 1, SKETCH_POINTS), method="linear")
    )
    unique = int(np.unique(values).size)
    if like is not None and like.kind == "numeric":
        edges, lo, scale = like.edges, like.grid_lo, like.grid_scale
    else:
        edges = quantile_edges(values, bins)
        lo, scale = grid_of(values)
    cell = grid_index(values, lo, scale)
    k = GRID_CELLS + 2
    fine_counts = np.bincount(cell, minlength=k).astype(float)
    low, high = int(fine_counts[0]), int(fine_counts[-1])
    origin = sum_origin_of(lo, scale)
    return ColumnProfile(
        name,
        "numeric",
        n,
        nulls,
        unique,
        exact,
        sample,
        edges=edges,
        bin_counts=_bin_counts(values, edges),
        fine_edges=grid_edges(lo, scale),
        fine_counts=fine_counts,
        fine_sums=np.bincount(cell, weights=values - origin, minlength=k),
        tail_low=values[:low],
        tail_high=values[n - high :],
        grid_lo=lo,
        grid_scale=scale,
        sum_origin=origin,
        minimum=float(values[0]) if n else 0.0,
        maximum=float(values[-1]) if n else 0.0,
        std=float(values.std()) if n else 0.0,
    )


def categorical_profile(name: str, counts: Mapping[Any, int]) -> ColumnProfile:
    nulls = int(counts.get(None, 0))
    cats = sorted((str(k), int(v)) for k, v in counts.items() if k is not None)
    return ColumnProfile(
        name,
        "categorical",
        sum(v for _, v in cats),
        nulls,
        len(cats),
        categories=[c for c, _ in cats],
        counts=np.array([v for _, v in cats], dtype=float),
    )


def as_categorical(p: ColumnProfile) -> ColumnProfile:
    """A numeric profile seen as categories (few distinct values), labelled as
    Polars casts numbers to strings so both sides agree."""
    values, counts = np.unique(p.sample, return_counts=True)
    labels = pl.Series(values).cast(pl.String).to_list()
    if not p.exact:  # the sketch's multiplicities are not counts: rescale
        counts = counts * (p.n / counts.sum())
    return ColumnProfile(
        p.name,
        "categorical",
        p.n,
        p.nulls,
        p.unique,
        p.exact,
        categories=labels,
        counts=counts.astype(float),
    )
