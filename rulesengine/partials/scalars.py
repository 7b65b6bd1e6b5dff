"""Scalar partial states: named counts, sums, moments, co-moments, and the extremes.

Each state is a frozen value with ``merge`` (associative and commutative), a
``*Of`` aggregate that says which Polars expressions compute it per group, and
accessors that finalise it. Merges:

* counts and integer sums add exactly (Python ints, no overflow);
* float sums add with a compensation term (Neumaier's two-sum), so merging adds
  no rounding of its own beyond the last step; the per-partition sums Polars
  computes still round, so a merged sum equals a single pass to about 1e-12 of
  Σ|x| (not of |Σx|, which cancellation can make arbitrarily small);
* moments merge by Chan, Golub and LeVeque's pairwise update (1979):
  δ = mean_b − mean_a, mean = mean_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n;
  each partition's M2 is Polars' two-pass Σ(x − mean)², so no sum of squares of
  large values ever cancels. No monitor reports skew or kurtosis, so M3/M4 are
  not kept. The mean reported is the compensated sum over n, not Chan's running
  mean: Chan's mean rounds at every merge, so a mean of 0/1 values (a share)
  could land one ulp off k/n, and a threshold or ``round()`` at a tie (0.46875
  to 4 places) would then differ from the single pass, which divides its sum.
* co-moments (for ``corr`` and the covariances) merge the same way over the
  pairs where both sides are non-null: C = C_a + C_b + δx·δy·n_a·n_b/n;
* extremes take the smaller minimum and larger maximum, ignoring NaN as Polars'
  ``min``/``max`` do (NaN only when a side has nothing else).

Example::

    a, b = Moments.of([1.0, 2.0]), Moments.of([4.0])
    a.merge(b).variance(ddof=1)  # == np.var([1, 2, 4], ddof=1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from rulesengine.partials.codec import Arrays, Meta, check, floats, int_of, kind


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """s = fl(a + b) and the rounding error e, with a + b = s + e exactly."""
    s = a + b
    if not math.isfinite(s):
        return s, 0.0
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _column(row: Mapping[str, Any], name: str, field_: str) -> Any:
    return row[f"{name}.{field_}"]


# ------------------------------------------------------------------ counts


@kind("counts")
@dataclass(frozen=True)
class Counts:
    """Named integer counts: rows, nulls, non-null values, matches of a condition.
    Merging adds them name by name (a name missing on one side counts 0).

    Example: ``Counts({"rows": 10, "nulls": 2}).rate("nulls", "rows") == 0.2``."""

    counts: Mapping[str, int] = field(default_factory=dict)

    def merge(self, other: Counts) -> Counts:
        out = dict(self.counts)
        for name, n in other.counts.items():
            out[name] = out.get(name, 0) + n
        return Counts(out)

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)

    def rate(self, numerator: str, denominator: str) -> float | None:
        """numerator / denominator, None when the denominator is 0."""
        den = self[denominator]
        return self[numerator] / den if den else None

    def _fields(self) -> tuple[Meta, Arrays]:
        return {"counts": dict(sorted(self.counts.items()))}, {}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> Counts:
        counts = meta["counts"]
        check(isinstance(counts, dict), "'counts' is not a mapping")
        return cls({str(k): int_of(counts, k) for k in counts})


@dataclass(frozen=True)
class CountsOf:
    """The Polars aggregates of a :class:`Counts`: each expression must give an
    integer per group, e.g. ``{"rows": pl.len(), "nulls": pl.col("x").null_count()}``."""

    exprs_by_name: Mapping[str, pl.Expr]

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        return {f"{name}.{k}": e for k, e in self.exprs_by_name.items()}

    def state(self, row: Mapping[str, Any], name: str) -> Counts:
        return Counts({k: int(_column(row, name, k) or 0) for k in self.exprs_by_name})

    @staticmethod
    def column(column: str) -> CountsOf:
        """Rows, non-null values and nulls of ``column``."""
        c = pl.col(column)
        return CountsOf({"rows": pl.len(), "non_null": c.count(), "nulls": c.null_count()})


# ------------------------------------------------------------------ sums


@kind("sum")
@dataclass(frozen=True)
class Sum:
    """A sum: exact for integers (``value`` an int), compensated for floats
    (``value`` + ``error`` is the sum carried to twice the precision).

    Example: ``Sum.of([0.1] * 10).total == sum of the ten, rounded once``."""

    value: int | float = 0
    error: float = 0.0

    @classmethod
    def of(cls, values: Iterable[int | float]) -> Sum:
        out = cls()
        for v in values:
            out = out.merge(cls(v))
        return out

    def merge(self, other: Sum) -> Sum:
        if isinstance(self.value, int) and isinstance(other.value, int):
            return Sum(self.value + other.value)
        s, e = _two_sum(float(self.value), float(other.value))
        err = self.error + other.error + e
        return Sum(s, err if math.isfinite(s) else 0.0)

    @property
    def total(self) -> int | float:
        """The sum, rounded once at the end."""
        return self.value if isinstance(self.value, int) else self.value + self.error

    def _fields(self) -> tuple[Meta, Arrays]:
        if isinstance(self.value, int):
            return {"int": self.value}, {}
        return {"int": None}, {"float": np.array([self.value, self.error])}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> Sum:
        if meta["int"] is not None:
            return cls(int_of(meta, "int", minimum=None))
        value, error = floats(arrays, "float", 2)
        return cls(float(value), float(error))


@dataclass(frozen=True)
class SumOf:
    """The Polars aggregate of a :class:`Sum` over ``expr`` (nulls skipped)."""

    expr: pl.Expr

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        return {f"{name}.sum": self.expr.sum()}

    def state(self, row: Mapping[str, Any], name: str) -> Sum:
        value = _column(row, name, "sum")
        if value is None:
            return Sum()
        return Sum(value if isinstance(value, int) else float(value))


# ------------------------------------------------------------------ moments


@kind("moments")
@dataclass(frozen=True)
class Moments:
    """Count, mean and M2 = Σ(x − mean)² of the non-null values, merged by Chan et
    al.'s update. NaN values make the mean and M2 NaN, as in Polars.

    Example: ``Moments.of([1.0, 3.0]).std(ddof=0) == 1.0``."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    sum: Sum = field(default_factory=Sum)  # compensated: the mean reported

    @classmethod
    def of(cls, values: Iterable[float]) -> Moments:
        x = np.asarray(list(values), dtype=float)
        if x.size == 0:
            return cls()
        # an infinity makes the spread NaN, as in one pass: no warning for it
        with np.errstate(invalid="ignore", over="ignore"):
            mean = float(x.mean())
            m2 = float(np.sum((x - mean) ** 2))
            return cls(int(x.size), mean, m2, Sum(float(np.sum(x))))

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.n * other.n / n)
        return Moments(n, mean, m2, self.sum.merge(other.sum))

    def average(self) -> float | None:
        """The mean, None without values: the compensated sum over n, as the
        single pass divides its sum (exactly k/n for a share of 0/1 values)."""
        return float(self.sum.total) / self.n if self.n else None

    def variance(self, ddof: int = 1) -> float | None:
        """M2 / (n − ddof), None when n ≤ ddof (as Polars' ``var`` gives null)."""
        return self.m2 / (self.n - ddof) if self.n > ddof else None

    def std(self, ddof: int = 1) -> float | None:
        var = self.variance(ddof)
        return None if var is None else math.sqrt(var) if var >= 0 else math.nan

    def _fields(self) -> tuple[Meta, Arrays]:
        total = float(self.sum.value)
        return {"n": self.n}, {"float": np.array([self.mean, self.m2, total, self.sum.error])}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> Moments:
        mean, m2, total, error = floats(arrays, "float", 4)
        return cls(int_of(meta, "n"), float(mean), float(m2), Sum(float(total), float(error)))


@dataclass(frozen=True)
class MomentsOf:
    """The Polars aggregates of :class:`Moments` over ``expr`` (cast to Float64)."""

    expr: pl.Expr

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        x = self.expr.cast(pl.Float64)
        return {
            f"{name}.n": x.count(),
            f"{name}.mean": x.mean(),
            f"{name}.m2": ((x - x.mean()) ** 2).sum(),
            f"{name}.sum": x.sum(),
        }

    def state(self, row: Mapping[str, Any], name: str) -> Moments:
        n = int(_column(row, name, "n") or 0)
        if n == 0:
            return Moments()
        mean, m2 = float(_column(row, name, "mean")), float(_column(row, name, "m2"))
        return Moments(n, mean, m2, Sum(float(_column(row, name, "sum"))))


# ------------------------------------------------------------------ co-moments


@kind("comoments")
@dataclass(frozen=True)
class CoMoments:
    """Over the pairs where both x and y are non-null (as Polars' ``cov`` and
    ``pearson_corr`` skip the others): n, both means, C = Σ(x − x̄)(y − ȳ) and
    both M2, merged by Chan et al.'s update (C = C_a + C_b + δx·δy·n_a·n_b/n).

    Example: ``CoMoments.of([(1.0, 2.0), (2.0, 1.0), (5.0, 7.0)]).covariance(1)``
    equals ``np.cov([1, 2, 5], [2, 1, 7])[0, 1]``."""

    n: int = 0
    mean_x: float = 0.0
    mean_y: float = 0.0
    c: float = 0.0
    m2x: float = 0.0
    m2y: float = 0.0

    @classmethod
    def of(cls, pairs: Iterable[tuple[float | None, float | None]]) -> CoMoments:
        kept = [(x, y) for x, y in pairs if x is not None and y is not None]
        if not kept:
            return cls()
        xy = np.asarray(kept, dtype=float)
        with np.errstate(invalid="ignore", over="ignore"):
            dx, dy = xy[:, 0] - xy[:, 0].mean(), xy[:, 1] - xy[:, 1].mean()
            return cls(
                len(kept),
                float(xy[:, 0].mean()),
                float(xy[:, 1].mean()),
                float(np.sum(dx * dy)),
                float(np.sum(dx * dx)),
                float(np.sum(dy * dy)),
            )

    def merge(self, other: CoMoments) -> CoMoments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        w = self.n * other.n / n
        return CoMoments(
            n,
            self.mean_x + dx * (other.n / n),
            self.mean_y + dy * (other.n / n),
            self.c + other.c + dx * dy * w,
            self.m2x + other.m2x + dx * dx * w,
            self.m2y + other.m2y + dy * dy * w,
        )

    def covariance(self, ddof: int = 1) -> float | None:
        """C / (n − ddof); None when n ≤ ddof, as Polars' ``cov`` gives null."""
        return self.c / (self.n - ddof) if self.n > ddof else None

    def correlation(self) -> float | None:
        """Pearson's r = C / √(M2x·M2y); None without pairs, NaN when either side
        is constant (one pair included), as Polars' ``pearson_corr``."""
        if self.n == 0:
            return None
        scale = math.sqrt(self.m2x * self.m2y) if self.m2x * self.m2y >= 0 else math.nan
        return self.c / scale if scale > 0 and math.isfinite(scale) else math.nan

    def _fields(self) -> tuple[Meta, Arrays]:
        values = [self.mean_x, self.mean_y, self.c, self.m2x, self.m2y]
        return {"n": self.n}, {"float": np.array(values)}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> CoMoments:
        mx, my, c, m2x, m2y = (float(v) for v in floats(arrays, "float", 5))
        return cls(int_of(meta, "n"), mx, my, c, m2x, m2y)


@dataclass(frozen=True)
class CoMomentsOf:
    """The Polars aggregates of :class:`CoMoments` over ``expr``, a struct with
    fields ``x`` and ``y`` (each cast to Float64)."""

    expr: pl.Expr

    @staticmethod
    def pair(x: pl.Expr, y: pl.Expr) -> pl.Expr:
        """The struct of ``x`` and ``y`` that this aggregate reads."""
        return pl.struct(x.alias("x"), y.alias("y"))

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        x = self.expr.struct.field("x").cast(pl.Float64)
        y = self.expr.struct.field("y").cast(pl.Float64)
        both = x.is_not_null() & y.is_not_null()
        x, y = x.filter(both), y.filter(both)
        dx, dy = x - x.mean(), y - y.mean()
        return {
            f"{name}.n": both.sum(),
            f"{name}.mean_x": x.mean(),
            f"{name}.mean_y": y.mean(),
            f"{name}.c": (dx * dy).sum(),
            f"{name}.m2x": (dx * dx).sum(),
            f"{name}.m2y": (dy * dy).sum(),
        }

    def state(self, row: Mapping[str, Any], name: str) -> CoMoments:
        n = int(_column(row, name, "n") or 0)
        if n == 0:
            return CoMoments()
        fields = ("mean_x", "mean_y", "c", "m2x", "m2y")
        return CoMoments(n, *(float(_column(row, name, f)) for f in fields))


# ------------------------------------------------------------------ extremes


def _lesser(a: Any, b: Any) -> Any:
    """min ignoring None and NaN (NaN only if both are)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b if b is not None else a
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a
    return min(a, b)


def _greater(a: Any, b: Any) -> Any:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b if b is not None else a
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a
    return max(a, b)


@kind("extremes")
@dataclass(frozen=True)
class Extremes:
    """The minimum and maximum (ints or floats; None without values).

    Example: ``Extremes(1, 5).merge(Extremes(-2, 3)) == Extremes(-2, 5)``."""

    minimum: int | float | None = None
    maximum: int | float | None = None

    def merge(self, other: Extremes) -> Extremes:
        return Extremes(_lesser(self.minimum, other.minimum), _greater(self.maximum, other.maximum))

    def _fields(self) -> tuple[Meta, Arrays]:
        ints = {k: v for k, v in (("min", self.minimum), ("max", self.maximum))}
        meta: Meta = {"types": [_type_of(self.minimum), _type_of(self.maximum)]}
        meta.update({k: v for k, v in ints.items() if isinstance(v, int)})
        values = [v if isinstance(v, float) else 0.0 for v in (self.minimum, self.maximum)]
        return meta, {"float": np.array(values, dtype=float)}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> Extremes:
        types = meta["types"]
        check(isinstance(types, list) and len(types) == 2, "'types' is not two names")
        values = floats(arrays, "float", 2)
        out: list[int | float | None] = []
        for key, t, f in zip(("min", "max"), types, values, strict=True):
            check(t in ("none", "int", "float"), f"unknown type {t!r}")
            out.append(
                None if t == "none" else int_of(meta, key, minimum=None) if t == "int" else float(f)
            )
        return cls(out[0], out[1])


def _type_of(v: Any) -> str:
    return "none" if v is None else "int" if isinstance(v, int) else "float"


@dataclass(frozen=True)
class ExtremesOf:
    """The Polars aggregates of :class:`Extremes` over a numeric ``expr`` (cast a
    timestamp to its integer epoch first)."""

    expr: pl.Expr

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        return {f"{name}.min": self.expr.min(), f"{name}.max": self.expr.max()}

    def state(self, row: Mapping[str, Any], name: str) -> Extremes:
        lo, hi = _column(row, name, "min"), _column(row, name, "max")
        return Extremes(_plain(lo), _plain(hi))


def _plain(v: Any) -> int | float | None:
    if v is None or isinstance(v, bool):
        return None if v is None else int(v)
    return v if isinstance(v, int) else float(v)
