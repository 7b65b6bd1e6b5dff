"""SQL aggregates (``expr`` metrics, KPIs, ``custom`` checks) with a decomposition
into mergeable partial states where their shape allows one.

An SQL aggregate such as ``sum(amount) / count(*)`` or
``round(avg(CAST(status >= 500 AS DOUBLE)), 4)`` is *aggregate calls over row
expressions*, combined by scalar arithmetic. Each call of ``sum``, ``count``,
``avg``, ``min`` or ``max`` (without ``DISTINCT``) merges: a sum or a count adds,
an average merges as moments, a minimum and a maximum as extremes (see
:mod:`rulesengine.monitors.aggs`). The rest of the expression is evaluated by
Polars over the merged values, each in the dtype the single pass gives that call
over the frame's columns, so the value is the single pass's: exactly for counts,
integer sums, minima and maxima, within 1e-12 relative for float sums and
averages.

An expression is left whole (no decomposition: its query runs in a single pass)
when an aggregate call is not one of those five, holds ``DISTINCT`` or another
aggregate, reads a column outside any aggregate call, or when a call's input is
not a number or a boolean.

Example::

    expr = sql_aggregate("sum(amount) / count(*)", schema)  # compileto_sql(...).expr
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from rulesengine.monitors.aggs import Decomposition, NotExact, Part, declare, distinct
from rulesengine.spec.sql import AGGREGATES, compile_sql, parse, to_sql

if TYPE_CHECKING:
    from sqlglot import exp

# how each call merges: the kind of its part, and what of the merged state it is
_MERGEABLE = {"sum": "additive", "count": "additive", "avg": "moments"}
_MERGEABLE |= {"min": "extremes", "max": "extremes"}
_PLACEHOLDER = "__sql_part_{}"


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


def _decomposition(text: str, schema: pl.Schema) -> Decomposition | None:
    from sqlglot import exp  # loaded by compile_sql already

    tree = parse(text)
    calls = _calls(tree)
    if not calls or any(any(_is_call(p) for p in _parents(c)) for c in calls):
        return None  # no aggregate, or an aggregate inside an aggregate
    parts: dict[str, Part] = {}
    finishers: list[tuple[str, str, pl.DataType]] = []  # (part name, what, dtype)
    empty = pl.LazyFrame(schema=schema)
    outer = tree.copy()
    outer_calls = _calls(outer)
    for i, (call, twin) in enumerate(zip(calls, outer_calls, strict=True)):
        name = str(call.this).lower()
        args = call.expressions
        if name not in _MERGEABLE or len(args) != 1 or isinstance(args[0], exp.Distinct):
            return None
        try:
            agg = pl.sql_expr(to_sql(call))
            dtype = empty.select(agg.alias("v")).collect_schema()["v"]
            inner = None
            if not isinstance(args[0], exp.Star):
                inner = pl.sql_expr(to_sql(args[0]))
                inner_dtype = empty.select(inner.alias("v")).collect_schema()["v"]
        except Exception:  # Polars' own errors: the single pass reports them
            return None
        key = f"p{i}"
        if name == "count":
            parts[key] = Part("additive", agg)
        elif inner is None or not (inner_dtype.is_integer() or inner_dtype.is_float()):
            if not (name in ("sum", "avg") and inner_dtype == pl.Boolean):
                return None  # min/max of booleans, decimals, text, times: left whole
            parts[key] = Part(_MERGEABLE[name], agg if name == "sum" else inner)
        else:
            parts[key] = Part(_MERGEABLE[name], agg if name == "sum" else inner)
        if name == "sum":  # SQL's sum is null without a non-null input (Polars' too)
            parts[f"{key}n"] = Part("additive", inner.count())  # type: ignore[union-attr]
        finishers.append((key, name, dtype))
        placeholder = exp.column(_PLACEHOLDER.format(i), quoted=True)
        if twin is outer:  # the whole expression is this call
            outer = placeholder
        else:
            twin.replace(placeholder)
    if any(
        isinstance(c, exp.Column) and not any(_is_call(p) for p in _parents(c)) for c in tree.walk()
    ):
        return None  # a column read outside every aggregate call (whatever its name)
    try:
        outer_expr = pl.sql_expr(to_sql(outer))
    except Exception:
        return None

    def finish(states: Mapping[str, Any]) -> Any:
        try:
            values = [
                pl.Series(_PLACEHOLDER.format(key[1:]), [_value(what, key, states)], dtype=dtype)
                for key, what, dtype in finishers
            ]
        except (TypeError, OverflowError) as exc:  # a narrow integer sum that overflows:
            raise NotExact(str(exc)) from None  # the single pass's own dtype wraps it
        return pl.DataFrame(values).select(outer_expr.alias("v")).item()

    return Decomposition(parts, finish, "sql")


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


def _value(what: str, key: str, states: Mapping[str, Any]) -> Any:
    """A call's value from its merged state, as the single pass gives it."""
    state = states[key]
    if what == "sum":
        return state.total if states[f"{key}n"].total else None
    if what == "count":
        return state.total
    if what == "avg":
        return state.average()
    return state.minimum if what == "min" else state.maximum
