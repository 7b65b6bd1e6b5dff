"""Data checks: counts and rates over the window's rows.

Each rate is over the non-null values of its column unless said otherwise. The
per-column checks (``null_count``, ``null_rate``, ``out_of_range``,
``allowed_values``, ``new_categories``, ``pattern``) take ``column:`` or
``columns:`` (a list, or a selector resolved by :mod:`rulesengine.monitors.columns`)
and then give one result per column, every column's aggregates in the same query.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import polars as pl

from rulesengine.engine.files import display_path
from rulesengine.engine.sources import FILE_COLUMN, file_schema, hive_columns
from rulesengine.engine.timestamps import timestamp_expr
from rulesengine.monitors.aggs import Decomposition, Part, additive, declare, distinct
from rulesengine.monitors.base import (  # metrics.py imports the same: base's whole API
    EvalContext,
    FrameKey,
    MonitorType,
    Need,
    Scored,
    Undefined,
    as_list,
    ratio,
    register,
)
from rulesengine.monitors.columns import select_columns, skipped_columns
from rulesengine.spec.model import CheckSpec, MonitorSpec


def window_frame(m: MonitorSpec, ctx: EvalContext) -> FrameKey:
    start, end = ctx.window(m)
    return FrameKey(m.source, start, end, m.filter)


class _Check(MonitorType):
    kind = "check"

    def aggs(self, m: CheckSpec, ctx: EvalContext) -> dict[str, pl.Expr]:
        return {}

    def needs(self, m: MonitorSpec, ctx: EvalContext) -> list[Need]:
        return [Need(window_frame(m, ctx), self.aggs(m, ctx))]  # type: ignore[arg-type]


class _PerColumn(_Check):
    """A check of one column, or of each of ``columns:`` (one result per column).
    With one ``column:`` the aggregates keep their plain names; with a list, each
    is named ``name:column`` in the monitor's one need."""

    @abstractmethod
    def column_aggs(self, m: CheckSpec, ctx: EvalContext, column: str) -> dict[str, pl.Expr]:
        """The aggregates one column needs, by plain name."""

    @abstractmethod
    def score_column(
        self, m: CheckSpec, v: Mapping[str, Any], column: str, rows: int, ctx: EvalContext
    ) -> Scored:
        """One column's value from its aggregates ``v`` and the segment's ``rows``."""

    def aggs(self, m, ctx):
        if m.column is not None:
            return self.column_aggs(m, ctx, m.column)
        return {
            f"{name}:{c}": expr
            for c in checked_columns(m, ctx)
            for name, expr in self.column_aggs(m, ctx, c).items()
        }

    def score(self, m, values, rows, ctx) -> Scored:
        return self.score_column(m, values["main"], m.column, rows["main"], ctx)

    def score_all(self, m, values, rows, ctx, segment=()) -> list[Scored]:
        if m.column is not None:
            return [self.score(m, values, rows, ctx)]
        columns = checked_columns(m, ctx)
        if not columns:
            why = f"columns: {m.selector} picks no column of source '{m.source}'"
            why += " (after exclude)" if m.exclude else ""
            return [Scored(None, {"error": why}, "error")]
        out = []
        for c in columns:
            suffix = f":{c}"
            v = {k.removesuffix(suffix): x for k, x in values["main"].items() if k.endswith(suffix)}
            try:
                scored = self.score_column(m, v, c, rows["main"], ctx)
            except Undefined as exc:
                scored = Scored(None, {"reason": str(exc)}, "insufficient_data")
            scored.column = c
            out.append(scored)
        return out


def checked_columns(m: CheckSpec, ctx: EvalContext) -> list[str]:
    """The columns a per-column check covers: ``column``, the ``columns`` list, or
    its selector resolved against the source's schema (file metadata, no scan)."""
    if m.column is not None:
        return [m.column]
    if m.selector is None:
        return list(m.columns)
    skip = skipped_columns(ctx.model, m.source, m.segment_by)
    return select_columns(ctx.schemas[m.source], m.selector, skip=skip, exclude=m.exclude)


@register
class RowCount(_Check):
    names = ("row_count",)
    counts_rows = True

    def score(self, m, values, rows, ctx) -> Scored:
        return Scored(float(rows["main"]))


@register
class NullCount(_PerColumn):
    names = ("null_count", "null_rate")

    def column_aggs(self, m, ctx, column):
        return {"nulls": additive(pl.col(column).null_count())}

    def score_column(self, m, v, column, rows, ctx) -> Scored:
        nulls = v["nulls"]
        value = float(nulls) if m.type == "null_count" else ratio(nulls, rows, "null_rate")
        return Scored(value, {"nulls": nulls})


@register
class Freshness(_Check):
    """Age in seconds of the newest row at ``at``; looks back over the whole source
    (not just the window), so a stalled log shows as old, not as missing."""

    names = ("freshness",)

    def needs(self, m, ctx):
        source = ctx.model.sources[m.source]
        column = m.column or source.timestamp
        dtype = ctx.schemas[m.source][column]
        newest = timestamp_expr(source, dtype, column).max()
        end = ctx.at if source.timestamp else None
        return [Need(FrameKey(m.source, None, end, m.filter), {"newest": newest})]

    def score(self, m, values, rows, ctx) -> Scored:
        newest = values["main"]["newest"]
        if newest is None:
            column = m.column or ctx.model.sources[m.source].timestamp
            raise Undefined(f"freshness is undefined: '{column}' has no usable time values")
        return Scored((ctx.at - newest).total_seconds(), {"newest": newest})


def dtype_matches(dtype: pl.DataType, expected: str) -> bool:
    """Whether a Polars dtype fits a declared type name or family."""
    name = type(dtype).__name__ if not isinstance(dtype, type) else dtype.__name__
    families = {
        "any": True,
        "numeric": dtype.is_numeric(),
        "integer": dtype.is_integer(),
        "float": dtype.is_float(),
        "string": name in ("String", "Categorical", "Enum"),
        "boolean": name == "Boolean",
        "temporal": dtype.is_temporal(),
        "date": name == "Date",
        "datetime": name == "Datetime",
        "duration": name == "Duration",
        "time": name == "Time",
        "categorical": name in ("Categorical", "Enum"),
    }
    if expected in families:
        return bool(families[expected])
    return name == expected or (expected == "Utf8" and name == "String")


@register
class Schema(_Check):
    """Problems in the schemas of the files that hold the window's rows."""

    names = ("schema",)

    def aggs(self, m, ctx):
        return {"files": pl.col(FILE_COLUMN).unique()}

    def needs(self, m, ctx):
        return [Need(window_frame(m, ctx), self.aggs(m, ctx), segmented=False)]

    def score(self, m, values, rows, ctx) -> Scored:
        source = ctx.model.sources[m.source]
        files = sorted(f for f in as_list(values["main"].get("files")) if f is not None)
        schemas = [(f, file_schema(source, f)) for f in files]
        if not schemas:
            schemas = [(None, ctx.schemas[m.source])]
        problems: dict[str, list[str]] = {}
        for file, schema in schemas:
            # a hive partition column is checked only when expected_columns names it
            partition = hive_columns(source, file) if file else frozenset()
            for column, expected in m.expected_columns.items():
                if column not in schema:
                    problems.setdefault(f"missing column '{column}'", []).append(file)
                elif not dtype_matches(schema[column], expected):
                    problems.setdefault(
                        f"column '{column}' is {schema[column]}, expected {expected}", []
                    ).append(file)
            if m.strict:
                for column in schema.names():
                    if column not in m.expected_columns and column not in (
                        FILE_COLUMN,
                        *partition,
                    ):
                        problems.setdefault(f"unexpected column '{column}'", []).append(file)
        listing = []
        for text, in_files in sorted(problems.items()):
            named = [f for f in in_files if f]
            if named:
                text += f" in {len(named)} of {len(schemas)} file(s): " + ", ".join(
                    display_path(f) for f in named[:3]
                )
                text += " …" if len(named) > 3 else ""
            listing.append(text)
        return Scored(float(len(problems)), {"problems": listing, "files": len(files)})


def _rate(bad: Any, n: Any, what: str) -> float:
    return ratio(bad, n, what)


@register
class OutOfRange(_PerColumn):
    names = ("out_of_range",)

    def column_aggs(self, m, ctx, column):
        c = pl.col(column)
        cond = pl.lit(False)
        if m.min is not None:
            cond = cond | (c < m.min)
        if m.max is not None:
            cond = cond | (c > m.max)
        return {"bad": additive(cond.sum()), "n": additive(c.count())}

    def score_column(self, m, v, column, rows, ctx) -> Scored:
        return Scored(
            _rate(v["bad"], v["n"], "out_of_range"), {"outside": v["bad"], "non_null": v["n"]}
        )


def _not_in(column: str, allowed: list[Any], dtype: pl.DataType | None) -> pl.Expr:
    c = pl.col(column)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in allowed)
    if numeric and dtype is not None and dtype.is_numeric():
        return ~c.cast(pl.Float64).is_in([float(v) for v in allowed])
    return ~c.cast(pl.String).is_in(
        [str(v).lower() if isinstance(v, bool) else str(v) for v in allowed]
    )


@register
class AllowedValues(_PerColumn):
    names = ("allowed_values",)

    def column_aggs(self, m, ctx, column):
        dtype = ctx.schemas[m.source].get(column)
        bad = _not_in(column, list(m.values), dtype)
        return {"bad": additive(bad.sum()), "n": additive(pl.col(column).count())}

    def score_column(self, m, v, column, rows, ctx) -> Scored:
        return Scored(
            _rate(v["bad"], v["n"], "allowed_values"), {"not_allowed": v["bad"], "non_null": v["n"]}
        )


@register
class NewCategories(_PerColumn):
    names = ("new_categories",)

    @staticmethod
    def _key(m: CheckSpec, column: str) -> str:
        return "values" if m.column is not None else f"values:{column}"

    def prepare(self, m, ctx):
        aggs = {
            self._key(m, c): pl.col(c).drop_nulls().cast(pl.String).unique()
            for c in checked_columns(m, ctx)
        }
        return [Need(FrameKey(m.reference, None, None), aggs, segmented=False)]

    def column_aggs(self, m, ctx, column):
        known = sorted(as_list(ctx.prepared[m.name][self._key(m, column)]))  # stable plan text
        bad = ~pl.col(column).cast(pl.String).is_in(known)
        return {"bad": additive(bad.sum()), "n": additive(pl.col(column).count())}

    def score_column(self, m, v, column, rows, ctx) -> Scored:
        known = len(as_list(ctx.prepared[m.name][self._key(m, column)]))
        return Scored(
            _rate(v["bad"], v["n"], "new_categories"),
            {"unseen": v["bad"], "non_null": v["n"], "reference_categories": known},
        )


@register
class DuplicateRate(_Check):
    names = ("duplicate_rate",)

    def aggs(self, m, ctx):
        schema = ctx.schemas.get(m.source, {})
        return {"unique": distinct_rows(list(m.columns), schema)}

    def score(self, m, values, rows, ctx) -> Scored:
        unique = values["main"]["unique"]
        dup = rows["main"] - unique
        return Scored(_rate(dup, rows["main"], "duplicate_rate"), {"duplicates": dup})


def distinct_rows(columns: list[str], schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """``pl.struct(columns).n_unique()``: the distinct rows of the key columns, a
    null counting as one more value. Over one column of numbers, booleans or times
    it is declared with a decomposition that merges exactly across files (rows of
    different files may repeat each other): the exact value counts of the column
    (see :func:`~rulesengine.monitors.sql_aggs.distinct_parts`) and its null count.
    Over text or several columns: the set of each row's key text
    (:func:`~rulesengine.monitors.sql_aggs.key_text`). Above the size bound
    (1,000,000 distinct keys), or for integers beyond ±2**53, the finaliser
    raises :class:`~rulesengine.monitors.aggs.NotExact` and the aggregate runs in
    a single pass; it never estimates."""
    from rulesengine.monitors.aggs import NotExact
    from rulesengine.monitors.sql_aggs import distinct_count, distinct_parts, key_text

    unique = pl.struct([pl.col(c) for c in columns]).n_unique()
    dtype = schema.get(columns[0]) if len(columns) == 1 else None
    parts = None if dtype is None else distinct_parts(pl.col(columns[0]), dtype, "v")
    if parts is not None:
        parts["nulls"] = Part("additive", pl.col(columns[0]).null_count())

        def finish(states: Mapping[str, Any]) -> int:
            return distinct_count(states, "v") + (1 if states["nulls"].total else 0)

        # the parts depend on the dtype (a range check for integers): one name per dtype
        how = Decomposition(parts, finish, "distinct")
        return declare(distinct(unique, f"distinct_rows_{dtype}"), how)
    key = key_text(columns, schema)
    if key is None:
        return unique

    def count(states: Mapping[str, Any]) -> int:
        got = states["k"].count
        if got is None:
            raise NotExact("more distinct keys than the state keeps")
        return int(got)

    read = ",".join(f"{c}:{schema.get(c)}" for c in columns)
    how = Decomposition({"k": Part("keys", key)}, count, "distinct")
    return declare(distinct(unique, f"distinct_rows_{read}"), how)


@register
class Pattern(_PerColumn):
    names = ("pattern",)

    def column_aggs(self, m, ctx, column):
        c = pl.col(column)
        matching = c.cast(pl.String).str.contains(m.regex).sum()
        return {"matching": additive(matching), "n": additive(c.count())}

    def score_column(self, m, v, column, rows, ctx) -> Scored:
        matching = _rate(v["matching"], v["n"], "pattern")
        value = matching if m.rate_of == "matching" else 1.0 - matching
        return Scored(value, {"matching": v["matching"], "non_null": v["n"]})


@register
class OutlierRate(_Check):
    """|z| > factor against the reference mean/std (zscore, default 3), or outside
    [q1 - factor·iqr, q3 + factor·iqr] of the reference (iqr, default 1.5)."""

    names = ("outlier_rate",)

    def prepare(self, m, ctx):
        c = pl.col(m.column).cast(pl.Float64)
        if m.method == "iqr":
            aggs = {"q1": c.quantile(0.25, "linear"), "q3": c.quantile(0.75, "linear")}
        else:
            aggs = {"mean": c.mean(), "std": c.std(ddof=1)}
        return [Need(FrameKey(m.reference, None, None), aggs, segmented=False)]

    def bounds(self, m, ctx) -> tuple[float, float]:
        ref = ctx.prepared[m.name]
        if m.method == "iqr":
            k = 1.5 if m.factor is None else m.factor
            iqr = ref["q3"] - ref["q1"]
            return ref["q1"] - k * iqr, ref["q3"] + k * iqr
        k = 3.0 if m.factor is None else m.factor
        return ref["mean"] - k * ref["std"], ref["mean"] + k * ref["std"]

    def aggs(self, m, ctx):
        lo, hi = self.bounds(m, ctx)
        c = pl.col(m.column)
        return {"bad": additive(((c < lo) | (c > hi)).sum()), "n": additive(c.count())}

    def score(self, m, values, rows, ctx) -> Scored:
        v = values["main"]
        lo, hi = self.bounds(m, ctx)
        return Scored(
            _rate(v["bad"], v["n"], "outlier_rate"),
            {"outliers": v["bad"], "non_null": v["n"], "bounds": [lo, hi]},
        )


@register
class Custom(_Check):
    names = ("custom",)

    def aggs(self, m, ctx):
        from rulesengine.monitors.metrics import frame_schema
        from rulesengine.monitors.sql_aggs import sql_aggregate

        return {"value": sql_aggregate(m.expr, frame_schema(m, ctx))}

    def score(self, m, values, rows, ctx) -> Scored:
        return Scored(values["main"]["value"])
