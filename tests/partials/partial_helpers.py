"""Shared pieces of the partial-state tests: raw rows split into random
partitions, partial states per partition through the Polars aggregates, merged in
a random order and grouping."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from hypothesis import strategies as st

from rulesengine.partials.collect import keyed_states, partial_states

PART = "__part"

# values with ties (small integers) or spread out, and some nulls
values_st = st.one_of(
    st.integers(-5, 5).map(float),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
maybe_values_st = st.one_of(st.none(), values_st)


def merge_randomly(states: Sequence[Any], rng: random.Random) -> Any:
    """Merge ``states`` by repeatedly merging two random ones, either way round:
    any order, any grouping."""
    pool = list(states)
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        a, b = pool[i], pool[j]
        merged = a.merge(b) if rng.random() < 0.5 else b.merge(a)
        pool = [s for k, s in enumerate(pool) if k not in (i, j)] + [merged]
    return pool[0]


def partitioned(df: pl.DataFrame, parts: Sequence[int]) -> pl.DataFrame:
    """``df`` with each row's partition id in ``PART``."""
    return df.with_columns(pl.Series(PART, list(parts), dtype=pl.Int64))


def through_partials(
    df: pl.DataFrame, parts: Sequence[int], aggs: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """The states of ``aggs`` per partition (one ``group_by().agg()``), merged."""
    per_part = partial_states(partitioned(df, parts), [PART], aggs)
    rng = random.Random(seed)
    return {name: merge_randomly([s[name] for s in per_part.values()], rng) for name in aggs}


def through_keyed(df: pl.DataFrame, parts: Sequence[int], agg: Any, seed: int) -> Any:
    """A keyed aggregate's states per partition, merged."""
    per_part = keyed_states(partitioned(df, parts), [PART], agg)
    return merge_randomly(list(per_part.values()), random.Random(seed))


@st.composite
def split_rows(draw: Any, elements: Any = maybe_values_st, min_size: int = 1, max_size: int = 60):
    """(values, partition per row, merge seed)."""
    values = draw(st.lists(elements, min_size=min_size, max_size=max_size))
    k = draw(st.integers(1, 6))
    parts = draw(st.lists(st.integers(0, k - 1), min_size=len(values), max_size=len(values)))
    return values, parts, draw(st.integers(0, 2**32))


def sketch_data(rng: np.random.Generator, trial: int, n: int, shift: float = 0.0) -> np.ndarray:
    """Trial data for the sketch tests: lognormal, normal, or exponential rounded
    to 3 decimals (many ties), by ``trial``."""
    kind = trial % 3
    if kind == 0:
        return rng.lognormal(shift, 1.0, n)
    if kind == 1:
        return rng.normal(shift, 1.0, n)
    return np.round(rng.exponential(1.0 + shift, n), 3)  # many ties
