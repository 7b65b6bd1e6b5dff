"""Partial states out of Polars: one query gives the states of every group.

Two shapes, as the engine's plan has them:

* :func:`partial_states`: one ``group_by(keys).agg(...)`` holding every
  aggregate's expressions (an aggregate is a ``*Of`` value: ``CountsOf``,
  ``SumOf``, ``MomentsOf``, ``ExtremesOf``, ``ConfusionOf``, ``CategoriesOf``,
  ``ValuesOf``); each result row is one group's partial states.
* :func:`keyed_states`: one ``group_by([*keys, key]).agg(...)`` for an aggregate
  with a per-row key (``CellsOf``'s cell index, ``CategoriesOf``'s label,
  ``ValuesOf``'s value), like the engine's histogram queries; each group's rows
  fold into one state. Polars' streaming engine runs these without holding the
  column.

The keys are the partial's coordinates, e.g. ``["__file", "__bucket", *segment_by]``;
with no keys there is one group, ``()``.

Example::

    states = partial_states(lf, ["__file"], {"amount": MomentsOf(pl.col("amount"))})
    merged = merge_all(s["amount"] for s in states.values())
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import reduce
from typing import Any, Protocol, TypeVar

import polars as pl

from rulesengine.partials.histograms import KEY

ONE = "__one"  # the constant key of a query without keys
Group = tuple[Any, ...]


class Aggregate(Protocol):
    """A partial state's expressions inside a ``group_by().agg()``."""

    def exprs(self, name: str) -> dict[str, pl.Expr]: ...

    def state(self, row: Mapping[str, Any], name: str) -> Any: ...


class KeyedAggregate(Protocol):
    """A partial state computed per (group, per-row key), then folded per group."""

    def key(self) -> pl.Expr: ...

    def per_key(self) -> dict[str, pl.Expr]: ...

    def fold(self, part: pl.DataFrame) -> Any: ...


class Mergeable(Protocol):
    def merge(self, other: Any) -> Any: ...


M = TypeVar("M", bound=Mergeable)


def _group_keys(keys: Sequence[str]) -> list[pl.Expr]:
    return [pl.col(k) for k in keys] if keys else [pl.lit(1).alias(ONE)]


def _group_of(row: Mapping[str, Any], keys: Sequence[str]) -> Group:
    return tuple(row[k] for k in keys)


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts; lists of numbers as NumPy arrays (fast for long lists), lists
    of structs (value counts) as lists of dicts."""
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
    rows = list(df.drop(lists).iter_rows(named=True))
    for c in lists:
        nested = isinstance(df.schema[c].inner, pl.Struct)  # type: ignore[attr-defined]
        for row, cell in zip(rows, df.get_column(c), strict=True):
            row[c] = None if cell is None else cell.to_list() if nested else cell.to_numpy()
    return rows


def partial_query(
    lf: pl.LazyFrame, keys: Sequence[str], aggs: Mapping[str, Aggregate]
) -> pl.LazyFrame:
    """The lazy query whose rows are each group's partial aggregates."""
    exprs = [e.alias(col) for name, agg in aggs.items() for col, e in agg.exprs(name).items()]
    return lf.group_by(_group_keys(keys)).agg(exprs)


def partial_states(
    lf: pl.LazyFrame | pl.DataFrame,
    keys: Sequence[str],
    aggs: Mapping[str, Aggregate],
    *,
    engine: str = "in-memory",
) -> dict[Group, dict[str, Any]]:
    """Every group's partial states: ``{group: {name: state}}``, in one query."""
    df = partial_query(lf.lazy(), keys, aggs).collect(engine=engine)  # type: ignore[call-overload]
    if df.is_empty():
        return {}
    return {
        _group_of(row, keys): {name: agg.state(row, name) for name, agg in aggs.items()}
        for row in _rows(df)
    }


def keyed_states(
    lf: pl.LazyFrame | pl.DataFrame,
    keys: Sequence[str],
    agg: KeyedAggregate,
    *,
    engine: str = "streaming",
) -> dict[Group, Any]:
    """Every group's state of a keyed aggregate: ``{group: state}``."""
    per_key = [e.alias(n) for n, e in agg.per_key().items()]
    query = lf.lazy().group_by([*_group_keys(keys), agg.key().alias(KEY)]).agg(per_key)
    df = query.collect(engine=engine)  # type: ignore[call-overload]
    if df.is_empty():
        return {}
    if not keys:
        return {(): agg.fold(df)}
    parts = df.partition_by(list(keys), as_dict=True, maintain_order=False)
    return {tuple(group): agg.fold(part) for group, part in parts.items()}


def merge_all(states: Iterable[M]) -> M:
    """The merge of one or more states, left to right."""
    return reduce(lambda a, b: a.merge(b), states)


def merge_by(
    partials: Mapping[Group, Mapping[str, M]], project: Sequence[int]
) -> dict[Group, dict[str, M]]:
    """Partials merged onto some of their key positions, e.g. onto the segment
    columns from (file, bucket, *segment): ``project`` lists the kept positions
    (``()`` merges everything into one group)."""
    out: dict[Group, dict[str, M]] = {}
    for group, states in partials.items():
        target = tuple(group[i] for i in project)
        merged = out.setdefault(target, {})
        for name, state in states.items():
            merged[name] = merged[name].merge(state) if name in merged else state
    return out
