"""The order-statistics partial state: exact value counts up to a size bound, an
Apache DataSketches KLL sketch above it.

Quantiles, the two-sample Kolmogorov–Smirnov statistic, Mann–Whitney U and ROC
AUC need the order of the values, which no fixed-size sum keeps. :class:`ValueCounts`
holds the distinct values, sorted, with their multiplicities: merging is a sorted
merge that adds the counts of equal values, so a merged state is exactly the
value counts of all rows and everything computed from it equals scipy and NumPy
on the raw rows.

The exact form costs 16 bytes per distinct value. Above ``SIZE_LIMIT`` distinct
values (1,000,000, the engine's exact-sample cap for drift references too: 16 MB
of state), a state turns into a KLL sketch with ``SKETCH_K`` = 2000: about 47 KB
however many rows it summarises, with a normalised rank error of ``RANK_ERROR``
(≈ 0.142 %), which DataSketches derives as the 99th percentile of the largest
rank error over all ranks of a sketch in thousands of trials: with 99 %
confidence, every quantile it returns has a true rank within ±0.142 % of the
one asked for, and every CDF value is within 0.142 % of the truth. A result
from a sketch is an :class:`Estimate` with ``approximate`` true and that bound;
KS and AUC from two states are within the sum of the two sides' bounds (an exact
side adds 0). With ``exact=True`` a state never turns into a sketch, and its
memory is not bounded.

NaN is kept apart, as a count: quantiles sort it after every number, as Polars'
``quantile`` does (so a rank among the NaNs gives NaN), and KS and Mann–Whitney
give NaN when a side has NaN, as scipy does by default.

Example::

    a = ValueCounts.of([3.0, 1.0, 2.0])
    a.merge(ValueCounts.of([2.0])).quantile(0.5).value  # 2.0, as np.quantile
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, reduce
from typing import Any

import numpy as np
import polars as pl
from datasketches import kll_doubles_sketch

from rulesengine.partials.codec import Arrays, Meta, check, floats, int_of, kind
from rulesengine.partials.histograms import KEY

SIZE_LIMIT = 1_000_000  # distinct values an exact state may hold
SKETCH_K = 2000  # KLL's accuracy parameter
CONFIDENCE = 0.99  # of the rank error bound DataSketches states
_CHUNK = 1 << 20  # values expanded at a time when a state turns into a sketch


def rank_error(k: int = SKETCH_K) -> float:
    """The normalised rank error of a KLL sketch with this ``k``, at ``CONFIDENCE``
    for the largest error over all ranks (DataSketches' single-sided bound)."""
    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


RANK_ERROR = rank_error()


@dataclass(frozen=True)
class Estimate:
    """A finalised order statistic: its value, and whether it comes from a sketch
    with which rank error (0 when exact). ``details`` goes into a result's details.

    Example: ``Estimate(2.5).details() == {}``;
    ``Estimate(2.5, True, 0.0014).details() == {"approximate": True, "rank_error": 0.0014}``.
    """

    value: float | None
    approximate: bool = False
    rank_error: float = 0.0

    def details(self) -> dict[str, Any]:
        if not self.approximate:
            return {}
        return {"approximate": True, "rank_error": self.rank_error}


def _runs(ordered: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of sorted ``ordered`` (no NaN) with their summed counts
    (each value counting 1 when ``counts`` is None), in one pass over the runs of
    equal values (0.0 and -0.0 are one value, the first of its run kept, as
    ``np.unique`` keeps it)."""
    if ordered.size == 0:
        return ordered.astype(float), np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    if counts is None:
        summed = np.diff(np.append(starts, ordered.size)).astype(np.int64)
    else:
        summed = np.add.reduceat(counts.astype(np.int64), starts)
    return ordered[starts], summed


def _merge_sorted(values: Sequence[np.ndarray], counts: Sequence[np.ndarray]):
    """Several sorted (value, count) runs as one: a stable sort (which finds the
    runs already sorted) and one pass adding the counts of equal values."""
    v = np.concatenate(values)
    c = np.concatenate(counts)
    order = np.argsort(v, kind="stable")
    return _runs(v[order], c[order])


def _expand(values: np.ndarray, counts: np.ndarray) -> Iterable[np.ndarray]:
    """The values repeated by their counts, ``_CHUNK`` at a time."""
    cum = np.cumsum(counts)
    total = int(cum[-1]) if cum.size else 0
    for start in range(0, total, _CHUNK):
        positions = np.arange(start, min(start + _CHUNK, total))
        yield values[np.searchsorted(cum, positions, side="right")]


def _lerp_polars(a: float, b: float, t: float) -> float:
    """Polars' ``quantile(q, "linear")`` step: the lower value when t is 0."""
    return a if t == 0 else a + (b - a) * t


def _lerp_numpy(a: float, b: float, t: float) -> float:
    """NumPy's ``_lerp`` for ``method="linear"``, operation for operation."""
    fa, fb, ft = np.float64(a), np.float64(b), np.float64(t)
    with np.errstate(all="ignore"):
        d = fb - fa
        return float(fb - d * (1 - ft)) if ft >= 0.5 else float(fa + d * ft)


LERPS = {"polars": _lerp_polars, "numpy": _lerp_numpy}


@cache
def polars_offsets_nulls() -> bool:
    """Whether the installed Polars' linear quantile positions past the column's
    nulls (up to 2.1) or among the non-null values alone (2.2 on). The two differ
    in the last bit of the fraction interpolated by: over ``[null, 0, 1]`` at
    q = 0.01 the first interpolates by 1.01 − 1 = 0.010000000000000009, the
    second by 0.01. Asked of Polars itself, once, so that a merged quantile equals
    the single pass of whichever Polars runs it."""
    probe = pl.Series([None, 0.0, 1.0], dtype=pl.Float64).quantile(0.01, "linear")
    return probe != 0.01


@kind("values")
@dataclass(frozen=True, eq=False)
class ValueCounts:
    """The sorted distinct values with their counts, or a KLL sketch of them."""

    values: np.ndarray  # float64, strictly increasing, no NaN (empty for a sketch)
    counts: np.ndarray  # int64 > 0, one per value
    nans: int = 0
    sketch: kll_doubles_sketch | None = None  # never changed in place
    exact: bool = False  # never turn into a sketch (memory unbounded)
    limit: int = SIZE_LIMIT
    k: int = SKETCH_K

    @classmethod
    def of(
        cls,
        values: Iterable[float] | np.ndarray,
        *,
        exact: bool = False,
        limit: int = SIZE_LIMIT,
        k: int = SKETCH_K,
    ) -> ValueCounts:
        """From raw values (NaN counted apart)."""
        x = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
        nan = np.isnan(x)
        return cls.from_sorted(np.sort(x[~nan]), int(nan.sum()), exact=exact, limit=limit, k=k)

    @classmethod
    def from_counts(
        cls,
        values: np.ndarray,
        counts: np.ndarray,
        nans: int = 0,
        *,
        exact: bool = False,
        limit: int = SIZE_LIMIT,
        k: int = SKETCH_K,
    ) -> ValueCounts:
        """From distinct values and their counts (any order, no NaN)."""
        v = np.asarray(values, dtype=float)
        c = np.asarray(counts, dtype=np.int64)
        order = np.argsort(v, kind="stable")
        v, c = _runs(v[order], c[order])
        return cls(v, c, nans, None, exact, limit, k)._bounded()

    @classmethod
    def from_sorted(
        cls,
        ordered: np.ndarray,
        nans: int = 0,
        *,
        exact: bool = False,
        limit: int = SIZE_LIMIT,
        k: int = SKETCH_K,
    ) -> ValueCounts:
        """From raw values already sorted ascending, without NaN (as Polars'
        ``sort`` gives them): the runs of equal values are the counts."""
        v, c = _runs(np.asarray(ordered, dtype=float))
        return cls(v, c, nans, None, exact, limit, k)._bounded()

    def _bounded(self) -> ValueCounts:
        """Self, or its sketch when it holds more distinct values than allowed."""
        if self.sketch is not None or self.exact or self.values.size <= self.limit:
            return self
        sketch = kll_doubles_sketch(self.k)
        for chunk in _expand(self.values, self.counts):
            sketch.update(chunk)
        return self._with_sketch(sketch)

    def _with_sketch(self, sketch: kll_doubles_sketch) -> ValueCounts:
        empty = np.empty(0)
        return ValueCounts(
            empty, empty.astype(np.int64), self.nans, sketch, False, self.limit, self.k
        )

    # ---------------------------------------------------------------- merge

    def merge(self, other: ValueCounts) -> ValueCounts:
        if (self.exact, self.limit, self.k) != (other.exact, other.limit, other.k):
            raise ValueError("cannot merge value counts kept with different exact/limit/k")
        nans = self.nans + other.nans
        if self.sketch is None and other.sketch is None:
            uniq, counts = _merge_sorted([self.values, other.values], [self.counts, other.counts])
            return ValueCounts(uniq, counts, nans, None, self.exact, self.limit, self.k)._bounded()
        sketch = copy.copy(self.sketch if self.sketch is not None else other.sketch)
        rest = other if self.sketch is not None else self
        if rest.sketch is not None:
            sketch.merge(rest.sketch)
        else:
            for chunk in _expand(rest.values, rest.counts):
                sketch.update(chunk)
        return replace_nans(self._with_sketch(sketch), nans)

    # ---------------------------------------------------------------- reading

    @property
    def approximate(self) -> bool:
        return self.sketch is not None

    @property
    def bound(self) -> float:
        """The normalised rank error of what this state gives (0 when exact)."""
        return rank_error(self.k) if self.approximate else 0.0

    @property
    def n(self) -> int:
        """Values other than NaN."""
        return int(self.sketch.n) if self.sketch is not None else int(self.counts.sum())

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct values, weights): the counts, or the sketch's retained
        items with their weights, the distribution every rank query of the sketch
        reads."""
        if self.sketch is None:
            return self.values, self.counts
        # the weights the iterator reports do not add up to n after a merge
        # (datasketches 5.2), so read them from the sketch's own CDF at its items
        items = np.unique(np.array([x for x, _ in self.sketch], dtype=float))
        ranks = np.asarray(self.sketch.get_cdf(items.tolist(), True), dtype=float)[:-1]
        cum = np.rint(ranks * self.n).astype(np.int64)
        weights = np.diff(np.concatenate([[0], cum]))
        keep = weights > 0
        return items[keep], weights[keep]

    def quantile(self, q: float, lerp: str = "polars", nulls: int = 0) -> Estimate:
        """The q-quantile with linear interpolation between order statistics: as
        Polars' ``quantile(q, "linear")`` bit for bit (``lerp="polars"``, the
        engine's), or as ``np.quantile(x, q, method="linear")`` (``"numpy"``). A
        sketch returns one of its items instead, within its rank error.

        Polars up to 2.1 finds the position past the column's nulls (sorted
        first), so the fraction it interpolates by is ``nulls + (n − 1)·q`` minus
        its floor, which rounds differently with nulls: pass the column's null
        count (a :class:`~rulesengine.partials.scalars.Counts`) to reproduce it.
        It is ignored under a Polars that does not offset
        (:func:`polars_offsets_nulls`)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must lie in [0, 1], not {q}")
        n, total = self.n, self.n + self.nans
        if total == 0:
            return Estimate(None, self.approximate, self.bound)
        offset = nulls if lerp == "polars" and polars_offsets_nulls() else 0
        h = offset + (total - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, offset + total - 1)
        h, lo, hi = h - offset, lo - offset, hi - offset
        if self.sketch is not None:
            if h > n - 1:  # among the NaNs
                return Estimate(math.nan, True, self.bound)
            rank = 0.0 if n == 1 else h / (n - 1)
            return Estimate(float(self.sketch.get_quantile(rank, True)), True, self.bound)
        cum = np.cumsum(self.counts)

        def at(i: int) -> float:
            if i >= n:
                return math.nan
            return float(self.values[int(np.searchsorted(cum, i, side="right"))])

        return Estimate(LERPS[lerp](at(lo), at(hi), h - lo))

    def cdf(self, x: float) -> Estimate:
        """The share of all values (NaN included in the count) that are ≤ x."""
        total = self.n + self.nans
        if total == 0:
            return Estimate(None, self.approximate, self.bound)
        if self.sketch is not None:
            return Estimate(self.sketch.get_rank(x, True) * self.n / total, True, self.bound)
        below = int(self.counts[: int(np.searchsorted(self.values, x, side="right"))].sum())
        return Estimate(below / total)

    # ---------------------------------------------------------------- serialising

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValueCounts):
            return NotImplemented
        a, b = self._fields(), other._fields()
        return a[0] == b[0] and all(
            np.array_equal(x, y) for x, y in zip(a[1].values(), b[1].values(), strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def _fields(self) -> tuple[Meta, Arrays]:
        meta = {"exact": self.exact, "limit": self.limit, "k": self.k, "nans": self.nans}
        meta["n"] = self.n
        if self.sketch is not None:
            raw = np.frombuffer(self.sketch.serialize(), dtype=np.uint8)
            return {**meta, "mode": "sketch"}, {"sketch": raw}
        # counts of 255 or less (most are 1 for a continuous column) as one byte each
        small = self.counts.size == 0 or int(self.counts.max()) <= 255
        counts = self.counts.astype(np.uint8 if small else np.int64)
        return {**meta, "mode": "exact"}, {"values": self.values.astype(float), "counts": counts}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> ValueCounts:
        exact = meta["exact"]
        check(isinstance(exact, bool), "'exact' is not a boolean")
        limit, k, nans, n = (int_of(meta, f) for f in ("limit", "k", "nans", "n"))
        check(8 <= k <= 65535, f"k {k} is outside KLL's 8..65535")
        if meta["mode"] == "sketch":
            check(not exact, "an exact state holds a sketch")
            raw = arrays["sketch"]
            check(raw.dtype == np.uint8, "'sketch' is not bytes")
            try:
                sketch = kll_doubles_sketch.deserialize(raw.tobytes())
            except (ValueError, RuntimeError) as exc:
                check(False, f"the sketch does not deserialise ({exc})")
            check(sketch.k == k and sketch.n == n, "the sketch does not match its header")
            empty = np.empty(0)
            return cls(empty, empty.astype(np.int64), nans, sketch, False, limit, k)
        check(meta["mode"] == "exact", f"unknown mode {meta['mode']!r}")
        values = floats(arrays, "values")
        counts = arrays["counts"]
        check(
            counts.dtype in (np.int64, np.uint8) and counts.size == values.size,
            "counts do not pair",
        )
        counts = counts.astype(np.int64)
        check(not bool(np.isnan(values).any()), "NaN among the values")
        check(bool(np.all(np.diff(values) > 0)), "values are not strictly increasing")
        check(bool(np.all(counts > 0)), "a count is not positive")
        check(int(counts.sum()) == n, "counts do not add up to n")
        check(exact or values.size <= limit, "more values than the limit")
        return cls(values, counts, nans, None, exact, limit, k)


def merge_many(states: Sequence[ValueCounts]) -> ValueCounts:
    """The merge of several states at once: equal to merging them one by one
    (a sorted merge adding the counts of equal values), in one sort instead of
    one per pair while every state is exact; sketches fold in one by one."""
    if len(states) == 1:
        return states[0]
    shape = {(s.exact, s.limit, s.k) for s in states}
    if len(shape) > 1:
        raise ValueError("cannot merge value counts kept with different exact/limit/k")
    if any(s.sketch is not None for s in states):
        return reduce(lambda a, b: a.merge(b), states)
    first = states[0]
    uniq, summed = _merge_sorted([s.values for s in states], [s.counts for s in states])
    nans = sum(s.nans for s in states)
    return ValueCounts(uniq, summed, nans, None, first.exact, first.limit, first.k)._bounded()


def replace_nans(state: ValueCounts, nans: int) -> ValueCounts:
    return ValueCounts(
        state.values, state.counts, nans, state.sketch, state.exact, state.limit, state.k
    )


# ------------------------------------------------------------------ two samples


def _cumulative(values: np.ndarray, weights: np.ndarray, at: np.ndarray, side: str) -> np.ndarray:
    """Σ weights of values < at (side="left") or ≤ at (side="right"), as ints."""
    cum = np.concatenate([[0], np.cumsum(weights)])
    return cum[np.searchsorted(values, at, side=side)]


def ks_statistic(a: ValueCounts, b: ValueCounts) -> Estimate:
    """The two-sample Kolmogorov–Smirnov statistic D = sup |F_a − F_b|, from
    integer counts: D = max |c_a·n_b − c_b·n_a| / (n_a·n_b), correctly rounded.
    That is ``scipy.stats.ks_2samp``'s statistic bit for bit whenever scipy takes
    its exact path (both samples up to 10,000 values), which rounds D the same way;
    on its asymptotic path scipy subtracts two rounded CDFs, within an ulp of it."""
    approx, bound = a.approximate or b.approximate, a.bound + b.bound
    if a.nans or b.nans:
        return Estimate(math.nan, approx, bound)
    if a.n == 0 or b.n == 0:
        return Estimate(None, approx, bound)
    (va, wa), (vb, wb) = a.points(), b.points()
    union = np.union1d(va, vb)
    ca = _cumulative(va, wa, union, "right")
    cb = _cumulative(vb, wb, union, "right")
    na, nb = a.n, b.n
    if na * nb < 2**62:  # exact in int64
        gap = int(np.max(np.abs(ca * nb - cb * na)))
        g = math.gcd(na, nb)
        return Estimate((gap // g) / ((na // g) * nb), approx, bound)
    diffs = ca / na - cb / nb
    return Estimate(float(np.max(np.abs(diffs))), approx, bound)


def mann_whitney_u(x: ValueCounts, y: ValueCounts) -> Estimate:
    """U of the first sample, as ``scipy.stats.mannwhitneyu(x, y).statistic``:
    U = Σ over x of (#y below it + ½ #y equal to it), with integer arithmetic
    when exact. The bound is in units of U / (n_x n_y) (see :func:`auc`)."""
    approx, bound = x.approximate or y.approximate, x.bound + y.bound
    if x.nans or y.nans:
        return Estimate(math.nan, approx, bound)
    if x.n == 0 or y.n == 0:
        return Estimate(None, approx, bound)
    (vx, wx), (vy, wy) = x.points(), y.points()
    below = _cumulative(vy, wy, vx, "left")
    equal = _cumulative(vy, wy, vx, "right") - below
    if x.n * y.n < 2**61:  # 2U fits in int64: exact
        twice = int(np.dot(wx, 2 * below + equal))
        u = twice / 2
    else:
        u = float(np.dot(wx.astype(float), below + equal / 2))
    return Estimate(u, approx, bound)


def order_statistics(state: ValueCounts, points: int) -> np.ndarray:
    """``points`` (≥ 2) values standing for the state's distribution: the values at
    ranks j/(points − 1), j = 0 … points − 1 (the smallest v whose share of values
    ≤ v reaches the rank), the first and last being the state's true minimum and
    maximum (a sketch keeps both). As a sample, its CDF lies within 1/points of
    the state's CDF everywhere, and outside [min, max] both are 0 or 1; so for a
    sketch it lies within its rank error plus 1/points of the true CDF.

    Example: ``order_statistics(ValueCounts.of([1.0, 2.0, 3.0, 4.0]), 3)`` is
    ``[1.0, 2.0, 4.0]``."""
    if points < 2:
        raise ValueError(f"points must be at least 2, not {points}")
    values, weights = state.points()
    if values.size == 0:
        return np.empty(0)
    cum = np.cumsum(weights).astype(float)
    targets = np.arange(points) / (points - 1) * cum[-1]
    at = np.minimum(np.searchsorted(cum, targets, side="left"), values.size - 1)
    out = values[at].astype(float)
    if state.sketch is not None:
        out[0], out[-1] = state.sketch.get_min_value(), state.sketch.get_max_value()
    else:
        out[0], out[-1] = values[0], values[-1]
    return out


def auc(positives: ValueCounts, negatives: ValueCounts) -> Estimate:
    """ROC AUC from the scores of positive and of negative rows:
    U / (n_pos n_neg), ties counting half (as the engine's rank-sum form)."""
    u = mann_whitney_u(positives, negatives)
    if u.value is None or math.isnan(u.value):
        return u
    return Estimate(u.value / (positives.n * negatives.n), u.approximate, u.rank_error)


# ------------------------------------------------------------------ Polars


@dataclass(frozen=True)
class ValuesOf:
    """The Polars side of :class:`ValueCounts` over ``expr`` (cast to Float64;
    nulls left out, NaN counted apart). In a ``group_by().agg()`` each group's
    values come back sorted by Polars, one list per group (a sort per group, no
    hashing), and the counts are the runs of equal values, found with NumPy; as a
    keyed aggregate it groups by the value itself."""

    expr: pl.Expr
    exact: bool = False
    limit: int = SIZE_LIMIT
    k: int = SKETCH_K

    def _x(self) -> pl.Expr:
        return self.expr.cast(pl.Float64)

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        x = self._x()
        return {
            f"{name}.sorted": x.filter(x.is_not_nan()).sort(),
            f"{name}.nans": x.is_nan().sum(),
        }

    def state(self, row: Mapping[str, Any], name: str) -> ValueCounts:
        ordered = np.asarray(_listed(row[f"{name}.sorted"]), dtype=float)
        nans = int(row[f"{name}.nans"] or 0)
        return ValueCounts.from_sorted(ordered, nans, exact=self.exact, limit=self.limit, k=self.k)

    def key(self) -> pl.Expr:
        return self._x()

    def per_key(self) -> dict[str, pl.Expr]:
        return {"rows": pl.len()}

    def fold(self, part: pl.DataFrame) -> ValueCounts:
        part = part.filter(pl.col(KEY).is_not_null())
        nan = part.get_column(KEY).is_nan()
        nans = int(part.filter(nan).get_column("rows").sum() or 0)
        kept = part.filter(~nan)
        return ValueCounts.from_counts(
            kept.get_column(KEY).to_numpy(),
            kept.get_column("rows").to_numpy(),
            nans,
            exact=self.exact,
            limit=self.limit,
            k=self.k,
        )


def _listed(cell: Any) -> Any:
    return [] if cell is None else cell
