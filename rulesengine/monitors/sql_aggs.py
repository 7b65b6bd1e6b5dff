"""SQL aggregates (``expr`` metrics, KPIs, ``custom`` checks) with a decomposition
into mergeable partial states where their shape allows one.

An SQL aggregate such as ``sum(amount) / count(*)`` or
``round(avg(CAST(status >= 500 AS DOUBLE)), 4)`` is *aggregate calls over row
expressions*, combined by scalar arithmetic. Each call below merges (see
:mod:`rulesengine.monitors.aggs` and :mod:`rulesengine.partials`):

* ``sum`` and ``count`` add;
* ``avg`` merges as moments, ``stddev``/``stddev_samp`` and
  ``variance``/``var_samp`` too (Chan et al.'s update of n, mean and M2), for an
  input whose single-pass result is Float64 (integers, Float64, booleans);
* ``min`` and ``max`` merge as extremes;
* ``median``, ``quantile_cont(x, q)`` and ``quantile_disc(x, q)`` (Polars'
  ``linear`` and ``equiprobable`` quantiles) read exact value counts of a number
  column together with its null count;
* ``count(DISTINCT x)`` counts the distinct values of exact value counts of x,
  for numbers, booleans and times (as their integer epoch), see
  :func:`distinct_parts`.

A call with ``FILTER (WHERE cond)`` merges as the same call over the rows that
``cond`` keeps (true, not false or null), as Polars filters them.

The rest of the expression is evaluated by Polars over the merged values, each in
the dtype the single pass gives that call over the frame's columns, so the value
is the single pass's: exactly for counts, integer sums, minima, maxima, quantiles
and distinct counts, within 1e-12 relative for float sums, averages, variances
and standard deviations.

Above the value counts' size bound (1,000,000 distinct values) they become a KLL
sketch: a quantile that is the whole expression (``median(x)``,
``quantile_cont(x, 0.9)``) is then an :class:`~rulesengine.monitors.aggs.Approximate`
estimate with the sketch's rank error; a quantile inside a larger expression and a
distinct count raise :class:`~rulesengine.monitors.aggs.NotExact`, and that
aggregate runs in a single pass.

An expression is left whole (no decomposition: it runs in a single pass) when an
aggregate call is not one of those, holds another aggregate (in its input or its
``FILTER``), reads a column outside any aggregate call, or when a call's input
has a dtype it does not merge exactly: text for ``min``, ``max``, a distinct
count or a quantile (value counts hold numbers); Float32 for a variance, which the
single pass rounds to Float32 (and for the same reason a Float32 input of
``corr`` or a covariance). ``first`` and ``last`` depend on the rows' order.
``corr``, ``covar_samp`` and ``covar_pop`` merge through co-moments over the
pairs where both inputs are non-null, as Polars computes them.

Example::

    expr = sql_aggregate("sum(amount) / count(*)", schema)  # compileto_sql(...).expr
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from rulesengine.monitors.aggs import (
    Approximate,
    Decomposition,
    NotExact,
    Part,
    declare,
    distinct,
)
from rulesengine.spec.sql import AGGREGATES, compile_sql, parse, to_sql

if TYPE_CHECKING:
    from sqlglot import exp

# how each call merges: the kind of its main part
_MERGEABLE = {"sum": "additive", "count": "additive", "avg": "moments"}
_MERGEABLE |= {"min": "extremes", "max": "extremes"}
_MERGEABLE |= {name: "moments" for name in ("stddev", "stddev_samp", "variance", "var_samp")}
_MERGEABLE |= {name: "values" for name in ("median", "quantile_cont", "quantile_disc")}
_SPREADS = {"stddev": "std", "stddev_samp": "std", "variance": "var", "var_samp": "var"}
_COMOMENTS = ("corr", "covar_samp", "covar_pop")
_MERGEABLE |= {name: "comoments" for name in _COMOMENTS}
_PLACEHOLDER = "__sql_part_{}"
EXACT_INTEGERS = 2**53  # integers up to this magnitude are exact as Float64


def sql_aggregate(text: str, schema: Mapping[str, pl.DataType] | None = None) -> pl.Expr:
    """The compiled SQL aggregate (as :func:`~rulesengine.spec.sql.compile_sql`
    gives it), declared with its decomposition when it has one over a frame with
    these columns (``schema``; none without it)."""
    compiled = compile_sql(text)
    if schema is not None:
        how = _decomposition(text, pl.Schema(dict(schema)))
        if how is not None:
            # the merge depends on the dtypes read (a sum of integers or of
            # floats): the same text over other dtypes is another aggregate
            read = [f"{c}:{schema.get(c)}" for c in compiled.columns]
            digest = hashlib.sha256("\0".join(read).encode()).hexdigest()[:16]
            return declare(distinct(compiled.expr, f"sql_{digest}"), how)
    return compiled.expr


# ------------------------------------------------------------------ distinct values


def distinct_parts(x: pl.Expr, dtype: pl.DataType, key: str) -> dict[str, Part] | None:
    """Parts whose merged states give the number of distinct non-null values of
    ``x`` (of this ``dtype``) exactly, as Polars' ``n_unique`` counts them: the
    value counts of ``x`` cast to Float64 (NaN counted apart, as one value; 0.0 and
    -0.0 one value, as Polars hashes them), which is one-to-one for floats and
    booleans, and for integers and times (their integer epoch) within ±2**53, which
    the extremes part (``{key}e``) checks. None for other dtypes (text, decimals,
    categoricals, whose physical codes differ between files)."""
    if dtype.is_float() or dtype == pl.Boolean:
        return {key: Part("values", x)}
    if dtype.is_temporal():
        x = x.to_physical()
    elif not dtype.is_integer():
        return None
    return {key: Part("values", x), f"{key}e": Part("extremes", x)}


def distinct_count(states: Mapping[str, Any], key: str) -> int:
    """The distinct non-null values from the merged states of
    :func:`distinct_parts`; :class:`NotExact` when the value counts turned into a
    sketch (it keeps no count of distinct values) or an integer lies beyond
    ±2**53 (two of them may share a Float64)."""
    values = states[key]
    if not hasattr(values, "approximate"):  # a set of text keys
        if values.count is None:
            raise NotExact("more distinct values than the state keeps")
        return int(values.count)
    if values.approximate:
        raise NotExact("a distinct count needs exact value counts (these are a sketch)")
    extremes = states.get(f"{key}e")
    widest = (
        0
        if extremes is None or extremes.minimum is None
        else max(abs(extremes.minimum), abs(extremes.maximum))
    )
    if widest > EXACT_INTEGERS:
        raise NotExact("integers beyond 2**53 need not stay distinct as Float64")
    return int(values.values.size) + (1 if values.nans else 0)


def key_text(columns: list[str], schema: Mapping[str, pl.DataType]) -> pl.Expr | None:
    """One text key per row (never null), equal for two rows exactly when Polars'
    ``pl.struct(columns).n_unique()`` counts them as one: each column as text
    (NaN as ``NaN``, -0.0 as ``0``, times as their integer epoch), length-prefixed
    so that the concatenation is one-to-one, a null marked apart (``-``). None for
    dtypes without such a text (nested, objects, decimals, unknown columns)."""
    dtypes = [schema.get(c) for c in columns]
    fields = []
    for c, dtype in zip(columns, dtypes, strict=True):
        text = None if dtype is None else _as_text(pl.col(c), dtype)
        if text is None:
            return None
        field = pl.concat_str([text.str.len_bytes().cast(pl.String), pl.lit(":"), text])
        fields.append(pl.when(pl.col(c).is_null()).then(pl.lit("-")).otherwise(field))
    return pl.concat_str(fields) if fields else None


def _textual(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum  # class or instance


def _as_text(x: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    if _textual(dtype) or dtype.is_integer() or dtype == pl.Boolean:
        return x.cast(pl.String)
    if dtype.is_float():  # shortest round-trip text; every NaN one, both zeros one
        nan, zero = pl.lit("NaN"), pl.lit("0")
        return pl.when(x.is_nan()).then(nan).when(x == 0).then(zero).otherwise(x.cast(pl.String))
    if dtype.is_temporal():
        return x.to_physical().cast(pl.String)
    return None


# ------------------------------------------------------------------ decomposition


@dataclass(frozen=True)
class _Call:
    """One aggregate call: its part name, function, single-pass dtype, and q."""

    key: str
    name: str
    dtype: pl.DataType
    q: float = 0.5
    distinct: bool = False


def _decomposition(text: str, schema: pl.Schema) -> Decomposition | None:
    from sqlglot import exp  # loaded by compile_sql already

    tree = parse(text)
    calls = _calls(tree)
    if not calls or any(any(_is_call(p) for p in _parents(c)) for c in calls):
        return None  # no aggregate, or an aggregate inside an aggregate
    if any(any(isinstance(p, exp.Where) for p in _parents(c)) for c in calls):
        return None  # … or inside a FILTER's condition
    parts: dict[str, Part] = {}
    finishers: list[_Call] = []
    empty = pl.LazyFrame(schema=schema)
    outer = tree.copy()
    outer_calls = _calls(outer)
    for i, (call, twin) in enumerate(zip(calls, outer_calls, strict=True)):
        got = _call_parts(call, f"p{i}", empty)
        twin = _with_filter(twin)
        if got is None:
            return None
        parts.update(got[0])
        finishers.append(got[1])
        placeholder = exp.column(_PLACEHOLDER.format(i), quoted=True)
        if twin is outer:  # the whole expression is this call
            outer = placeholder
        else:
            twin.replace(placeholder)
    if any(
        isinstance(c, exp.Column) and not any(_is_call(_call_of(p)) for p in _parents(c))
        for c in tree.walk()
    ):
        return None  # a column read outside every aggregate call (whatever its name)
    try:
        outer_expr = pl.sql_expr(to_sql(outer))
    except Exception:
        return None
    whole = len(calls) == 1 and _with_filter(calls[0]) is tree  # an estimate can stand for it

    def finish(states: Mapping[str, Any]) -> Any:
        errors: list[float] = []
        values = []
        for c in finishers:
            value = _value(c, states)
            if isinstance(value, Approximate):
                if not whole:
                    raise NotExact("a sketch's estimate inside a larger expression")
                errors.append(value.rank_error)
                value = value.value
            try:
                values.append(pl.Series(_PLACEHOLDER.format(c.key[1:]), [value], dtype=c.dtype))
            except (TypeError, OverflowError) as exc:  # a narrow integer sum that overflows:
                raise NotExact(str(exc)) from None  # the single pass's own dtype wraps it
        got = pl.DataFrame(values).select(outer_expr.alias("v")).item()
        return Approximate(got, max(errors)) if errors else got

    return Decomposition(parts, finish, "sql")


def _call_parts(
    call: exp.Expression, key: str, empty: pl.LazyFrame
) -> tuple[dict[str, Part], _Call] | None:
    """The parts of one aggregate call and how its value is read, or None when it
    does not merge exactly."""
    from sqlglot import exp

    name = str(call.this).lower()
    args = call.expressions
    node = _with_filter(call)  # the call with its FILTER (WHERE ...), if any
    if name not in _MERGEABLE or not args:
        return None
    is_distinct = isinstance(args[0], exp.Distinct)
    if is_distinct and (name != "count" or len(args[0].expressions) != 1):
        return None
    first = args[0].expressions[0] if is_distinct else args[0]
    if name in _COMOMENTS:
        return None if is_distinct or len(args) != 2 else _comoment_parts(node, key, name, empty)
    q = 0.5
    if name.startswith("quantile_"):
        if len(args) != 2 or not isinstance(args[1], exp.Literal) or args[1].is_string:
            return None
        q = float(args[1].this)  # the allowlist keeps it in [0, 1]
    elif len(args) != 1:
        return None
    try:
        agg = pl.sql_expr(to_sql(node))
        dtype = empty.select(agg.alias("v")).collect_schema()["v"]
        inner = inner_dtype = None
        if not isinstance(first, exp.Star):
            inner = pl.sql_expr(to_sql(first))
            inner_dtype = empty.select(inner.alias("v")).collect_schema()["v"]
            inner = _kept_rows(node, inner)
    except Exception:  # Polars' own errors: the single pass reports them
        return None
    this = _Call(key, name, dtype, q, is_distinct)
    if name == "count" and is_distinct:
        assert inner is not None and inner_dtype is not None
        parts = distinct_parts(inner, inner_dtype, key)
        if parts is None and _textual(inner_dtype):  # text: the set of its values
            parts = {key: Part("keys", inner.cast(pl.String))}
        return None if parts is None else (parts, this)
    if name == "count":
        return {key: Part("additive", agg)}, this
    assert inner is not None and inner_dtype is not None
    number = inner_dtype.is_integer() or inner_dtype.is_float()
    kind = _MERGEABLE[name]
    if name in _SPREADS:
        # Polars rounds a Float32 column's variance to Float32: not within 1e-12
        if not (number or inner_dtype == pl.Boolean) or dtype != pl.Float64:
            return None
        return {key: Part("moments", inner)}, this
    if kind == "values":
        if not number:
            return None
        return {key: Part("values", inner), f"{key}n": Part("additive", inner.null_count())}, this
    if not number and not (name in ("sum", "avg") and inner_dtype == pl.Boolean):
        return None  # min/max of booleans, decimals, text, times: left whole
    parts = {key: Part(kind, agg if name == "sum" else inner)}
    if name == "sum":  # SQL's sum is null without a non-null input (Polars' too)
        parts[f"{key}n"] = Part("additive", inner.count())
    return parts, this


def _comoment_parts(
    node: exp.Expression, key: str, name: str, empty: pl.LazyFrame
) -> tuple[dict[str, Part], _Call] | None:
    """The co-moments part of ``corr``/``covar_samp``/``covar_pop`` (``node``, with
    its ``FILTER``), over numbers only and with a Float64 result (a Float32 input
    gives Float32, rounded: not within 1e-12)."""
    from rulesengine.partials import CoMomentsOf

    call = _call_of(node)
    try:
        agg = pl.sql_expr(to_sql(node))
        dtype = empty.select(agg.alias("v")).collect_schema()["v"]
        x, y = (pl.sql_expr(to_sql(arg)) for arg in call.expressions)
        dtypes = [empty.select(e.alias("v")).collect_schema()["v"] for e in (x, y)]
        pair = _kept_rows(node, CoMomentsOf.pair(x, y))
    except Exception:  # Polars' own errors: the single pass reports them
        return None
    if dtype != pl.Float64 or not all(d.is_integer() or d.is_float() for d in dtypes):
        return None
    return {key: Part("comoments", pair)}, _Call(key, name, dtype, 0.5, False)


def _kept_rows(node: exp.Expression, inner: pl.Expr) -> pl.Expr:
    """``inner`` over the rows a call's ``FILTER (WHERE cond)`` keeps, as Polars
    filters them (a null condition drops the row); ``inner`` itself without one."""
    from sqlglot import exp

    if not isinstance(node, exp.Filter):
        return inner
    where = pl.sql_expr(to_sql(node.expression.this))
    return inner.filter(pl.when(where).then(True).otherwise(False))


def _with_filter(call: exp.Expression) -> exp.Expression:
    """``call``, or the ``FILTER (WHERE ...)`` node that holds it."""
    from sqlglot import exp

    return call.parent if isinstance(call.parent, exp.Filter) else call


def _call_of(node: exp.Expression) -> exp.Expression:
    """The aggregate call of a ``FILTER`` node (its condition reads the rows as the
    call does), else ``node``."""
    from sqlglot import exp

    return node.this if isinstance(node, exp.Filter) else node


def _is_call(node: exp.Expression) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Anonymous) and str(node.this).lower() in AGGREGATES


def _calls(tree: exp.Expression) -> list[exp.Expression]:
    """The aggregate calls of ``tree``, in walk order."""
    return [node for node in tree.walk() if _is_call(node)]


def _parents(node: exp.Expression) -> list[exp.Expression]:
    out = []
    parent = node.parent
    while parent is not None:
        out.append(parent)
        parent = parent.parent
    return out


def _value(c: _Call, states: Mapping[str, Any]) -> Any:
    """A call's value from its merged state, as the single pass gives it."""
    key, what = c.key, c.name
    state = states[key]
    if what == "sum":
        return state.total if states[f"{key}n"].total else None
    if what == "count":
        return distinct_count(states, key) if c.distinct else state.total
    if what == "avg":
        return state.average()
    if what in _SPREADS:
        return state.std(1) if _SPREADS[what] == "std" else state.variance(1)
    if what in _COMOMENTS:
        return (
            state.correlation() if what == "corr" else state.covariance(int(what == "covar_samp"))
        )
    if what == "quantile_disc":
        return equiprobable(state, c.q)
    if what in ("median", "quantile_cont"):
        got = state.quantile(c.q, nulls=int(states[f"{key}n"].total))
        return Approximate(got.value, got.rank_error) if got.approximate else got.value
    return state.minimum if what == "min" else state.maximum


def equiprobable(values: Any, q: float) -> float | Approximate | None:
    """Polars' ``quantile(q, "equiprobable")`` (SQL's ``quantile_disc``) from value
    counts: the value at 0-based position max(⌈m·q⌉ − 1, 0) of the m non-null
    values sorted with NaN last, no interpolation; None without values. From a
    sketch, the item at that rank, within its rank error."""
    n = values.n
    m = n + values.nans
    if m == 0:
        return None
    at = max(math.ceil(float(m) * q) - 1, 0)
    if at >= n:  # among the NaNs
        value = math.nan
    elif values.approximate:
        value = float(values.sketch.get_quantile((at + 1) / n, True))
    else:
        cum = values.counts.cumsum()
        value = float(values.values[int(cum.searchsorted(at, side="right"))])
    return Approximate(value, values.bound) if values.approximate else value
