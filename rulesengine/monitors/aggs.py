"""Aggregates declared with their decomposition into partial states.

A monitor builds its aggregates as plain Polars expressions, and the engine's
single pass runs them as they are. The helpers here return **the very same
expression** the monitor built before, and also record how that aggregate comes
from mergeable partial states (:mod:`rulesengine.partials`): which states, over
which inner expressions, and how the merged states give the value. The
incremental executor (:mod:`rulesengine.engine.incremental`) looks an aggregate
up by its identity, the serialised expression
(:func:`~rulesengine.engine.plan.expr_key`), and computes it from cached
partials when it has a decomposition.

Example::

    nulls = additive(pl.col("x").null_count())  # the expression, unchanged
    decomposition(nulls).what                   # "count"

Counts and integer sums add exactly; a float sum, a mean and a standard
deviation merge to within 1e-12 of a single pass (docs/scaling.md); minima,
maxima, quantiles and rank sums are exact while value counts stay under their
size bound. Above it the value counts become a KLL sketch and the finaliser
returns an :class:`Approximate` value carrying the sketch's rank error, which
the result shows as ``details.approximate`` (a part declared ``exact`` never
becomes a sketch). A finaliser that cannot give the single pass's value (NaN
among rank-summed scores) raises :class:`NotExact`, and the executor computes
that query in a single pass instead.

This module imports only Polars: the states (NumPy, DataSketches) are named
here by kind (:data:`PART_KINDS`) and built by the executor, so a plain
``rulesengine run`` does not load them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

REGISTRY_SIZE = 8192  # declared expressions kept (the oldest forgotten first)
# what a part is: a Polars aggregate that adds up ("additive"), or the *Of of a
# partial state over an inner expression
PART_KINDS = ("additive", "moments", "extremes", "values", "keys")
# the key under which a monitor that marks its own estimates (``own_rank_errors``)
# finds, in a role's values, {aggregate: rank error} of those from sketches
RANK_ERRORS = "__rank_errors"


class NotExact(Exception):
    """A merged state cannot give the single pass's value (e.g. NaN among scores)."""


@dataclass(frozen=True)
class Approximate:
    """A finalised value estimated from a sketch: within ``rank_error`` (the
    normalised rank error DataSketches states at 99 % confidence) of the exact
    one. Frames built from states carry it as the value plus a rank-error column
    (see :func:`~rulesengine.engine.partial_units.frame_from_states`)."""

    value: Any
    rank_error: float


@dataclass(frozen=True)
class Part:
    """One partial state of a decomposition: its kind and its expression (the
    aggregate itself for ``additive``, the inner expression otherwise); a
    ``values`` part with ``exact`` never turns into a sketch."""

    kind: str
    expr: pl.Expr
    exact: bool = False


Finish = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Decomposition:
    """How one aggregate comes from partial states: ``parts`` name the states,
    ``finish`` turns the merged states ({part: state}) into the value the single
    pass gives (``additive`` parts merge into a
    :class:`~rulesengine.partials.Sum`)."""

    parts: Mapping[str, Part]
    finish: Finish
    what: str  # a short name for reports: "count", "mean", …


_REGISTRY: OrderedDict[str, Decomposition] = OrderedDict()


def _key(expr: pl.Expr) -> str:
    from rulesengine.engine.plan import expr_key  # the plan's own identity

    return expr_key(expr)


def declare(expr: pl.Expr, how: Decomposition) -> pl.Expr:
    """Record ``how`` for ``expr`` and return ``expr`` unchanged."""
    key = _key(expr)
    _REGISTRY[key] = how
    _REGISTRY.move_to_end(key)
    while len(_REGISTRY) > REGISTRY_SIZE:
        _REGISTRY.popitem(last=False)
    return expr


def decomposition(expr: pl.Expr) -> Decomposition | None:
    """The declared decomposition of ``expr``, or None."""
    return _REGISTRY.get(_key(expr))


# ------------------------------------------------------------------ finishers


def _total(states: Mapping[str, Any]) -> Any:
    return states["v"].total


def _mean(states: Mapping[str, Any]) -> float | None:
    return states["m"].average()


def _root_mean(states: Mapping[str, Any]) -> float | None:
    mean = _mean(states)
    return None if mean is None else math.sqrt(mean) if mean >= 0 else math.nan


def _m2(states: Mapping[str, Any]) -> float:
    m = states["m"]
    return float(m.m2) if m.n else 0.0


def _std(ddof: int) -> Finish:
    def finish(states: Mapping[str, Any]) -> float | None:
        return states["m"].std(ddof)

    return finish


def _min(states: Mapping[str, Any]) -> Any:
    return states["e"].minimum


def _max(states: Mapping[str, Any]) -> Any:
    return states["e"].maximum


def _quantile(q: float) -> Finish:
    def finish(states: Mapping[str, Any]) -> float | Approximate | None:
        got = states["values"].quantile(q, nulls=int(states["nulls"].total))
        return Approximate(got.value, got.rank_error) if got.approximate else got.value

    return finish


def _expanded(states: Mapping[str, Any]) -> Any:
    """The values themselves, sorted (each repeated by its count), from exact
    value counts without NaN; a sketch or NaN (whose order among ties the single
    pass keeps from the rows) raises :class:`NotExact`."""
    import numpy as np

    values = states["values"]
    if values.approximate or values.nans:
        raise NotExact("the values themselves need exact value counts without NaN")
    return np.repeat(values.values, values.counts)


def _sample(points: int) -> Finish:
    def finish(states: Mapping[str, Any]) -> Any:
        from rulesengine.partials.order import order_statistics

        values = states["values"]
        if not values.approximate:
            return _expanded(states)
        if values.nans:
            raise NotExact("the values themselves need value counts without NaN")
        return Approximate(order_statistics(values, points), values.bound)

    return finish


def _rank_sum(states: Mapping[str, Any]) -> float | Approximate:
    """Mann–Whitney U plus the positives' own ranks; from sketches, U within the
    two sides' rank errors times n_pos·n_neg (so the AUC within their sum)."""
    from rulesengine.partials.order import mann_whitney_u

    pos, neg = states["pos"], states["neg"]
    if pos.nans or neg.nans:
        raise NotExact("rank sums need value counts without NaN")
    p = pos.n
    if p == 0:
        return 0.0
    own = p * (p + 1) / 2  # the positives' ranks among themselves
    if neg.n == 0:
        return float(own)
    u = mann_whitney_u(pos, neg)
    assert u.value is not None
    if u.approximate:
        return Approximate(float(u.value + own), u.rank_error)
    return float(u.value + own)


# ------------------------------------------------------------------ helpers


def additive(expr: pl.Expr) -> pl.Expr:
    """``expr`` (a count, or a sum over the rows), declared as adding up over
    disjoint rows. Example: ``additive(pl.col("x").null_count())``."""
    return declare(expr, Decomposition({"v": Part("additive", expr)}, _total, "count"))


def mean(x: pl.Expr) -> pl.Expr:
    """``x.mean()``, from moments."""
    return declare(x.mean(), Decomposition({"m": Part("moments", x)}, _mean, "mean"))


def root_mean_square(r: pl.Expr) -> pl.Expr:
    """``(r ** 2).mean().sqrt()``, from the moments of ``r ** 2``."""
    sq = r**2
    how = Decomposition({"m": Part("moments", sq)}, _root_mean, "rms")
    return declare(sq.mean().sqrt(), how)


def squared_deviations(x: pl.Expr) -> pl.Expr:
    """``((x - x.mean()) ** 2).sum()``: the moments' M2."""
    expr = ((x - x.mean()) ** 2).sum()
    return declare(expr, Decomposition({"m": Part("moments", x)}, _m2, "m2"))


def std(x: pl.Expr, ddof: int = 1) -> pl.Expr:
    """``x.std(ddof=ddof)``, from moments."""
    how = Decomposition({"m": Part("moments", x)}, _std(ddof), "std")
    return declare(x.std(ddof=ddof), how)


def minimum(x: pl.Expr) -> pl.Expr:
    """``x.min()``, from extremes."""
    return declare(x.min(), Decomposition({"e": Part("extremes", x)}, _min, "min"))


def maximum(x: pl.Expr) -> pl.Expr:
    """``x.max()``, from extremes."""
    return declare(x.max(), Decomposition({"e": Part("extremes", x)}, _max, "max"))


def distinct(expr: pl.Expr, tag: str) -> pl.Expr:
    """``expr`` under a name of its own: the same values, another expression.
    Decompositions are declared by expression, so an aggregate that must merge
    differently from the same expression elsewhere (an ``exact`` quantile beside
    a sketched one, an SQL sum over integers beside one over floats) is declared
    under its tag (the plan renames every aggregate, so the name changes nothing
    else)."""
    return expr.alias(f"__{tag}")


def quantile(x: pl.Expr, q: float, *, exact: bool = False) -> pl.Expr:
    """``x.quantile(q, "linear")`` for a Float64 ``x``, from its value counts and
    its null count (Polars places the nulls before the values); with ``exact``
    the value counts never become a sketch."""
    parts = {"values": Part("values", x, exact), "nulls": Part("additive", x.null_count())}
    expr = x.quantile(q, "linear")
    how = Decomposition(parts, _quantile(q), "quantile")
    return declare(distinct(expr, "exact") if exact else expr, how)


def sorted_values(x: pl.Expr, *, exact: bool = False) -> pl.Expr:
    """``x.drop_nulls().sort()`` per group (a list), from its value counts: every
    value repeated by its count. For aggregates that need the values themselves
    but not their row order (average precision from the scores of each class);
    with ``exact`` the value counts never become a sketch (an aggregate of its
    own, apart from the same values without it)."""
    expr = x.drop_nulls().sort()
    how = Decomposition({"values": Part("values", x, exact)}, _expanded, "values")
    return declare(distinct(expr, "exact") if exact else expr, how)


def sample(x: pl.Expr, points: int) -> pl.Expr:
    """``x.drop_nulls().sort()`` per group (a list), as :func:`sorted_values`
    while the value counts are exact; from a sketch, an estimate: ``points``
    order statistics of the sketch, evenly spaced in rank (their CDF within the
    sketch's rank error plus 1/points of the values'; see
    :func:`~rulesengine.partials.order.order_statistics`), as an
    :class:`Approximate`. For two-sample tests that can use such a sample with
    the true count beside it (KS, Mann–Whitney U, energy distance)."""
    expr = distinct(x.drop_nulls().sort(), "sample")
    how = Decomposition({"values": Part("values", x)}, _sample(points), "sample")
    return declare(expr, how)


def rank_sum(score: pl.Expr, ok: pl.Expr, positive: pl.Expr, *, exact: bool = False) -> pl.Expr:
    """``score.filter(ok).rank("average").filter(positive.filter(ok)).sum()``: the
    positives' rank sum (ties averaged), from the value counts of the positives'
    and the negatives' scores: Mann–Whitney U plus p(p + 1)/2; with ``exact`` the
    value counts never become a sketch."""
    expr = score.filter(ok).rank("average").filter(positive.filter(ok)).sum()
    parts = {
        "pos": Part("values", score.filter(ok & positive), exact),
        "neg": Part("values", score.filter(ok & ~positive), exact),
    }
    how = Decomposition(parts, _rank_sum, "rank_sum")
    return declare(distinct(expr, "exact") if exact else expr, how)
