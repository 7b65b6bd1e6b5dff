"""SQL expressions in specs, compiled by Polars' own SQL support.

Specs may hold SQL *expressions* (``expr``, ``filter``, ``prediction`` …), never
queries: ``pl.sql_expr`` would also accept a subquery such as
``(SELECT count(*) FROM read_csv('/etc/passwd'))`` and read that file at collect
time, so subqueries and table functions are rejected before and after compiling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import polars as pl

Shape = Literal["aggregate", "row", "unknown"]

# Keywords that only occur in queries, never in a scalar expression.
# (A column with one of these names can still be used when double-quoted.)
_QUERY_WORDS = {
    "select",
    "with",
    "values",
    "table",
    "union",
    "intersect",
    "except",
    "join",
    "lateral",
    "unnest",
    "pivot",
    "unpivot",
}
_FILE_FUNCS = re.compile(r"^(read|scan)_[a-z_]+$")
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[A-Za-z_][A-Za-z0-9_]*|\S")


class SqlError(ValueError):
    """An expression that does not compile or is not allowed."""


@dataclass(frozen=True)
class CompiledSql:
    text: str
    expr: pl.Expr
    columns: tuple[str, ...]


def _words(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text) if t[0] not in "'\""]


def compile_sql(text: str) -> CompiledSql:
    """Compile one SQL expression into a Polars expression, refusing queries.

    >>> compile_sql("avg(CAST(status >= 500 AS DOUBLE))").columns
    ('status',)
    """
    tokens = _words(text)
    lowered = [t.lower() for t in tokens]
    for i, word in enumerate(lowered):
        if word in _QUERY_WORDS:
            raise SqlError(
                f"'{tokens[i]}' is not allowed: write an expression over the "
                "source's columns, not a query"
            )
        if _FILE_FUNCS.match(word) and i + 1 < len(lowered) and lowered[i + 1] == "(":
            raise SqlError(f"function '{tokens[i]}' is not allowed: expressions cannot read files")
    if text.count(";"):
        raise SqlError("';' is not allowed: write a single expression")
    try:
        expr = pl.sql_expr(text)
    except Exception as exc:  # polars raises several types for bad SQL
        raise SqlError(_clean(str(exc))) from None
    rendered = str(expr)
    roots = tuple(dict.fromkeys(expr.meta.root_names()))
    if "subplan" in rendered or any(r.startswith("_POLARS_TMP") for r in roots):
        raise SqlError("subqueries are not allowed: write an expression over the source's columns")
    return CompiledSql(text, expr, roots)


def _clean(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "invalid SQL"
    return f"invalid SQL expression: {first}"


_PROBE_DTYPES: tuple[pl.DataType, ...] = (pl.Null(), pl.Float64(), pl.String(), pl.Boolean())


def shape(compiled: CompiledSql) -> Shape:
    """Whether the expression aggregates rows to one value or yields one per row.

    Decided by evaluating it on three rows of a dummy frame; ``unknown`` when no
    dummy dtype fits (then the real schema decides, under ``--check-sources``).
    """
    for dtype in _PROBE_DTYPES:
        cols = {c: pl.Series(c, [None, None, None], dtype=dtype) for c in compiled.columns}
        frame = pl.DataFrame(cols) if cols else pl.DataFrame({"__row": [1, 2, 3]})
        try:
            height = frame.lazy().select(compiled.expr).collect().height
        except Exception:
            continue
        return "aggregate" if height == 1 else "row"
    return "unknown"


def check_shape(compiled: CompiledSql, want: Shape) -> str | None:
    """A message if the expression has the wrong shape, else None."""
    got = shape(compiled)
    if got == "unknown" or got == want:
        return None
    if want == "aggregate":
        return (
            "must aggregate the rows to one value (e.g. avg(...), sum(...), count(*)); "
            "this is a per-row expression"
        )
    return "must be a per-row expression; this one aggregates the rows (e.g. uses avg/sum)"
