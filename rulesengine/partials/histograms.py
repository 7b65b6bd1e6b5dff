"""Count-shaped partial states: histograms over fixed cells, category counts,
confusion counts, and sets of distinct text keys. All merge exactly: counts add,
key sets unite (up to a size bound, above which only the overflow is kept).

:class:`CellCounts` is the partial form of the engine's ``Cells`` (see
``monitors/base.py``): ``n`` cells plus one last slot for rows whose cell index
is null, optional per-cell sums of ``weights − origin`` (float, added cell by
cell) and optionally the sorted weights of the rows in the first and the last
cell (``outer``, merged by a sorted merge). A grid tag names the cells (e.g. a
profile's fingerprint) so that histograms over different grids never merge.

Example::

    a = CellCounts.of(np.array([0, 1, 1]), 3)
    a.merge(CellCounts.of(np.array([2, -1]), 3)).counts  # [1, 2, 1, 1]: -1 is null
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl

from rulesengine.partials.codec import Arrays, Meta, check, floats, int_of, kind

KEY = "__key"  # the per-row key column of a keyed aggregate's rows


@kind("cells")
@dataclass(frozen=True, eq=False)
class CellCounts:
    """Rows per cell of a fixed grid of ``n`` cells plus the null slot (index n)."""

    n: int
    counts: np.ndarray  # int64, n + 1 slots
    sums: np.ndarray | None = None  # float64, n + 1 slots: Σ(weight − origin)
    outer: np.ndarray | None = None  # sorted weights of the rows in cells 0 and n − 1
    origin: float = 0.0
    grid: str = ""

    @classmethod
    def of(
        cls,
        index: np.ndarray,
        n: int,
        weights: np.ndarray | None = None,
        *,
        outer: bool = False,
        origin: float = 0.0,
        grid: str = "",
    ) -> CellCounts:
        """From per-row cell indices (negative: null) and optional weights."""
        idx = np.where(np.asarray(index) < 0, n, np.asarray(index)).astype(np.intp)
        counts = np.bincount(idx, minlength=n + 1).astype(np.int64)
        sums = kept = None
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            sums = np.bincount(idx, weights=w - origin, minlength=n + 1)
            if outer:
                kept = np.sort(w[(idx == 0) | (idx == n - 1)])
        return cls(n, counts, sums, kept, origin, grid)

    @classmethod
    def empty(cls, like: CellCounts) -> CellCounts:
        return cls(
            like.n,
            np.zeros(like.n + 1, dtype=np.int64),
            None if like.sums is None else np.zeros(like.n + 1),
            None if like.outer is None else np.empty(0),
            like.origin,
            like.grid,
        )

    def merge(self, other: CellCounts) -> CellCounts:
        same = (self.n, self.origin, self.grid, self.sums is None, self.outer is None) == (
            other.n,
            other.origin,
            other.grid,
            other.sums is None,
            other.outer is None,
        )
        if not same:
            raise ValueError("cannot merge histograms over different cells")
        sums = None if self.sums is None else self.sums + other.sums  # type: ignore[operator]
        outer = None
        if self.outer is not None and other.outer is not None:
            outer = np.sort(np.concatenate([self.outer, other.outer]), kind="stable")
        return CellCounts(self.n, self.counts + other.counts, sums, outer, self.origin, self.grid)

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellCounts):
            return NotImplemented
        return self._fields()[0] == other._fields()[0] and all(
            np.array_equal(a, b, equal_nan=True)
            for a, b in zip(self._fields()[1].values(), other._fields()[1].values(), strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def _fields(self) -> tuple[Meta, Arrays]:
        meta = {"n": self.n, "grid": self.grid, "sums": self.sums is not None}
        meta["outer"] = self.outer is not None
        arrays: Arrays = {"counts": self.counts.astype(np.int64), "origin": np.array([self.origin])}
        if self.sums is not None:
            arrays["sums"] = self.sums.astype(float)
        if self.outer is not None:
            arrays["outer"] = self.outer.astype(float)
        return meta, arrays

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> CellCounts:
        n = int_of(meta, "n", minimum=1)
        counts = arrays["counts"]
        check(counts.dtype == np.int64 and counts.size == n + 1, "'counts' has the wrong size")
        check(bool(np.all(counts >= 0)), "negative counts")
        sums = floats(arrays, "sums", n + 1) if meta["sums"] else None
        outer = floats(arrays, "outer") if meta["outer"] else None
        if outer is not None:
            check(bool(np.all(np.diff(outer) >= 0)), "'outer' is not sorted")
        check(isinstance(meta["grid"], str), "'grid' is not text")
        origin = float(floats(arrays, "origin", 1)[0])
        return cls(n, counts, sums, outer, origin, meta["grid"])


@dataclass(frozen=True)
class CellsOf:
    """The Polars side of :class:`CellCounts`, as a keyed aggregate: rows are
    grouped by the partial's keys and the cell index (``index``: each row's cell in
    [0, n), null when missing), as the engine groups a segmented ``Cells``."""

    index: pl.Expr
    n: int
    weights: pl.Expr | None = None
    outer: bool = False
    origin: float = 0.0
    grid: str = ""

    def key(self) -> pl.Expr:
        dtype = pl.UInt16 if self.n < 2**16 - 1 else pl.UInt32
        return self.index.fill_null(self.n).cast(dtype)

    def per_key(self) -> dict[str, pl.Expr]:
        out = {"rows": pl.len()}
        if self.weights is not None:
            w = self.weights.cast(pl.Float64)
            out["sums"] = (w - self.origin).sum()
            if self.outer:
                out["outer"] = w.filter(self.key().is_in([0, self.n - 1]))
        return out

    def fold(self, part: pl.DataFrame) -> CellCounts:
        """One group's rows (one per cell) as its state."""
        cells = part.get_column(KEY).to_numpy().astype(np.intp)
        counts = np.zeros(self.n + 1, dtype=np.int64)
        counts[cells] = part.get_column("rows").to_numpy()
        sums = outer = None
        if self.weights is not None:
            sums = np.zeros(self.n + 1)
            sums[cells] = part.get_column("sums").fill_null(0.0).to_numpy()
            if self.outer:
                values = part.get_column("outer").explode().drop_nulls().cast(pl.Float64)
                outer = np.sort(values.to_numpy())
        return CellCounts(self.n, counts, sums, outer, self.origin, self.grid)


# ------------------------------------------------------------------ categories


@kind("categories")
@dataclass(frozen=True)
class CategoryCounts:
    """Rows per category label (text; None for null).

    Example: ``CategoryCounts.of(["a", "b", "a"]).counts == {"a": 2, "b": 1}``."""

    counts: Mapping[str | None, int] = field(default_factory=dict)

    @classmethod
    def of(cls, labels: Iterable[str | None]) -> CategoryCounts:
        out: dict[str | None, int] = {}
        for label in labels:
            out[label] = out.get(label, 0) + 1
        return cls(out)

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        out = dict(self.counts)
        for label, n in other.counts.items():
            out[label] = out.get(label, 0) + n
        return CategoryCounts(out)

    def aligned(self, categories: Iterable[str]) -> tuple[np.ndarray, int, int]:
        """(counts per given category, rows of any other label, nulls): the vector a
        drift method compares with a reference's categories and its unseen bucket."""
        known = list(categories)
        vector = np.array([self.counts.get(c, 0) for c in known], dtype=np.int64)
        nulls = self.counts.get(None, 0)
        other = sum(self.counts.values()) - int(vector.sum()) - nulls
        return vector, other, nulls

    def _fields(self) -> tuple[Meta, Arrays]:
        items = sorted(self.counts.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))
        return {"labels": [k for k, _ in items], "counts": [v for _, v in items]}, {}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> CategoryCounts:
        labels, counts = meta["labels"], meta["counts"]
        check(isinstance(labels, list) and isinstance(counts, list), "labels/counts not lists")
        check(len(labels) == len(counts) == len(set(labels)), "labels and counts do not pair")
        check(all(x is None or isinstance(x, str) for x in labels), "a label is not text")
        by_position = dict(enumerate(counts))
        return cls({label: int_of(by_position, i) for i, label in enumerate(labels)})


@dataclass(frozen=True)
class CategoriesOf:
    """The Polars side of :class:`CategoryCounts`. ``labels`` is the per-row label
    (cast to text). In a ``group_by().agg()`` it uses ``value_counts``; as a keyed
    aggregate (:func:`~rulesengine.partials.collect.keyed_states`) it groups by the
    label, which Polars' streaming engine runs without holding the column."""

    labels: pl.Expr

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        label = self.labels.cast(pl.String).alias("v")
        return {f"{name}.vc": label.value_counts(name="c")}

    def state(self, row: Mapping[str, Any], name: str) -> CategoryCounts:
        return CategoryCounts({d["v"]: int(d["c"]) for d in row[f"{name}.vc"] or []})

    def key(self) -> pl.Expr:
        return self.labels.cast(pl.String)

    def fold(self, part: pl.DataFrame) -> CategoryCounts:
        keys, rows = part.get_column(KEY).to_list(), part.get_column("rows").to_list()
        return CategoryCounts(dict(zip(keys, map(int, rows), strict=True)))

    def per_key(self) -> dict[str, pl.Expr]:
        return {"rows": pl.len()}


# ------------------------------------------------------------------ confusion


CONFUSION = ("tp", "fp", "fn", "tn")


@kind("confusion")
@dataclass(frozen=True)
class Confusion:
    """A binary confusion table. ``metric`` gives the engine's classification
    metrics (None where the denominator is 0).

    Example: ``Confusion(3, 2, 1, 4).metric("recall") == 0.75``."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def merge(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    def metric(self, name: str) -> float | None:
        from rulesengine.monitors.metrics import confusion_ratio

        num, den = confusion_ratio(name, self.tp, self.fp, self.fn, self.tn)
        return num / den if den else None

    def _fields(self) -> tuple[Meta, Arrays]:
        return {k: getattr(self, k) for k in CONFUSION}, {}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> Confusion:
        return cls(*(int_of(meta, k) for k in CONFUSION))


@dataclass(frozen=True)
class ConfusionOf:
    """The Polars aggregates of :class:`Confusion` from boolean ``target`` and
    ``prediction`` expressions; rows where either is null are left out (as the
    engine's classification metrics do)."""

    target: pl.Expr
    prediction: pl.Expr

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        y, p = self.target, self.prediction
        both = y.is_not_null() & p.is_not_null()
        return {
            f"{name}.tp": (both & y & p).sum(),
            f"{name}.fp": (both & ~y & p).sum(),
            f"{name}.fn": (both & y & ~p).sum(),
            f"{name}.tn": (both & ~y & ~p).sum(),
        }

    def state(self, row: Mapping[str, Any], name: str) -> Confusion:
        return Confusion(*(int(row[f"{name}.{k}"] or 0) for k in CONFUSION))


# ------------------------------------------------------------------ distinct keys


KEYS_LIMIT = 1_000_000  # distinct keys a state may hold (as value counts' bound)


@kind("keys")
@dataclass(frozen=True)
class DistinctKeys:
    """The distinct text keys of some rows, sorted, while there are at most
    ``limit`` of them; above it the keys are dropped and only ``overflow`` is
    kept, so the count is unknown (no estimate) and memory stays bounded.
    Merging is a set union, exact.

    Example: ``DistinctKeys.of(["a", "b"]).merge(DistinctKeys.of(["b"])).count == 2``."""

    keys: tuple[str, ...] = ()
    overflow: bool = False
    limit: int = KEYS_LIMIT

    @classmethod
    def of(cls, keys: Iterable[str], *, limit: int = KEYS_LIMIT) -> DistinctKeys:
        return cls(tuple(sorted(set(keys))), False, limit)._bounded()

    def _bounded(self) -> DistinctKeys:
        if self.overflow or len(self.keys) <= self.limit:
            return self
        return DistinctKeys((), True, self.limit)

    def merge(self, other: DistinctKeys) -> DistinctKeys:
        return DistinctKeys.union([self, other])

    @staticmethod
    def union(states: Iterable[DistinctKeys]) -> DistinctKeys:
        """The merge of several states in one set union and one sort (merging
        them pairwise sorts the growing union again at every step)."""
        states = list(states)
        limit = states[0].limit
        if any(s.limit != limit for s in states):
            raise ValueError("cannot merge distinct keys kept with different limits")
        if any(s.overflow for s in states):
            return DistinctKeys((), True, limit)
        keys: set[str] = set()
        for s in states:
            keys.update(s.keys)
            if len(keys) > limit:
                return DistinctKeys((), True, limit)
        return DistinctKeys(tuple(sorted(keys)), False, limit)

    @property
    def count(self) -> int | None:
        """The number of distinct keys; None above the limit."""
        return None if self.overflow else len(self.keys)

    def _fields(self) -> tuple[Meta, Arrays]:
        encoded = [k.encode() for k in self.keys]
        ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
        raw = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        meta = {"overflow": self.overflow, "limit": self.limit, "n": len(self.keys)}
        return meta, {"bytes": raw, "ends": ends}

    @classmethod
    def _from_fields(cls, meta: Meta, arrays: Arrays) -> DistinctKeys:
        overflow = meta["overflow"]
        check(isinstance(overflow, bool), "'overflow' is not a boolean")
        limit, n = int_of(meta, "limit"), int_of(meta, "n")
        raw, ends = arrays["bytes"], arrays["ends"]
        check(raw.dtype == np.uint8 and ends.dtype == np.int64, "keys are not bytes and ends")
        check(ends.size == n and (n == 0 or int(ends[-1]) == raw.size), "keys do not pair")
        check(bool(np.all(np.diff(ends, prepend=0) >= 0)), "key ends go backwards")
        check(not (overflow and n), "an overflowed state holds keys")
        data = raw.tobytes()
        starts = [0, *(int(e) for e in ends[:-1])][:n]
        try:
            keys = tuple(data[s : int(e)].decode() for s, e in zip(starts, ends, strict=True))
        except UnicodeDecodeError:
            check(False, "a key is not UTF-8")
        check(all(a < b for a, b in pairwise(keys)), "keys are not sorted")
        return cls(keys, overflow, limit)


@dataclass(frozen=True)
class KeysOf:
    """The Polars side of :class:`DistinctKeys`: ``key`` gives one text key per
    row (a null key is left out); each group's distinct keys come back as a
    list."""

    key: pl.Expr
    limit: int = KEYS_LIMIT

    def exprs(self, name: str) -> dict[str, pl.Expr]:
        return {f"{name}.keys": self.key.cast(pl.String).drop_nulls().unique()}

    def state(self, row: Mapping[str, Any], name: str) -> DistinctKeys:
        cell = row[f"{name}.keys"]
        return DistinctKeys.of([] if cell is None else [str(k) for k in cell], limit=self.limit)
