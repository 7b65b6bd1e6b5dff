"""SQL expressions in specs: parsed and allowlisted, then compiled by Polars.

Specs are untrusted input (they arrive in pull requests and are validated in CI),
and ``pl.sql_expr`` compiles far more than expressions: a subquery such as
``(SELECT count(*) FROM read_csv('/etc/passwd'))`` makes Polars open that file (or
fetch that URL) while *compiling*, and some functions panic or allocate without
bound. So the text is parsed with sqlglot first, every node of the tree must be on
the allowlist below, and Polars only ever sees SQL *regenerated* from that checked
tree (identifiers double-quoted, strings re-quoted, comments dropped). Whatever
quoting trick makes two SQL tokenizers disagree (backticks, ``-- '`` comments,
backslash escapes), Polars cannot see anything the allowlist did not accept.

The checking and compiling live in :mod:`rulesengine.spec.sql_tree`, which
imports sqlglot (about 0.2 s): a run whose specs hold no SQL never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import polars as pl

if TYPE_CHECKING:
    from sqlglot import exp

Shape = Literal["aggregate", "row", "unknown"]

MAX_LENGTH = 4000  # characters of one expression; longer ones are refused
MAX_NUMBER_DIGITS = 30  # a numeric literal longer than this is refused
MAX_ARGS = 64  # arguments of a variadic function (coalesce, concat)

# Aggregates: name -> (min args, max args). ``count(*)`` counts ``*`` as one.
AGGREGATES: dict[str, tuple[int, int]] = {
    "avg": (1, 1),
    "sum": (1, 1),
    "count": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "median": (1, 1),
    "stddev": (1, 1),
    "stddev_samp": (1, 1),
    "variance": (1, 1),
    "var_samp": (1, 1),
    "quantile_cont": (2, 2),
    "quantile_disc": (2, 2),
    "first": (1, 1),
    "last": (1, 1),
    "corr": (2, 2),
    "covar_samp": (2, 2),
    "covar_pop": (2, 2),
}
# Scalar functions, one value per row. Deliberately absent: anything that reads
# files or generates rows (read_*, scan_*, generate_series, unnest), greatest and
# least (they panic with no arguments), lpad/rpad (a huge width allocates without
# bound), array and date functions. (`duplicates` pairs runs of this table's rows:
# alike in shape only, each row is a different function.)
SCALARS: dict[str, tuple[int, int]] = {
    "abs": (1, 1),
    "ceil": (1, 1),
    "ceiling": (1, 1),
    "floor": (1, 1),
    "round": (1, 2),
    "sign": (1, 1),
    "sqrt": (1, 1),
    "cbrt": (1, 1),
    "exp": (1, 1),
    "ln": (1, 1),
    "log2": (1, 1),
    "log10": (1, 1),
    "log1p": (1, 1),
    "pow": (2, 2),
    "power": (2, 2),
    "mod": (2, 2),
    "coalesce": (1, MAX_ARGS),
    "nullif": (2, 2),
    "ifnull": (2, 2),
    "lower": (1, 1),
    "upper": (1, 1),
    "length": (1, 1),
    "char_length": (1, 1),
    "character_length": (1, 1),
    "octet_length": (1, 1),
    "trim": (1, 1),
    "ltrim": (1, 1),
    "rtrim": (1, 1),
    "concat": (1, MAX_ARGS),
    "left": (2, 2),
    "right": (2, 2),
    "substr": (2, 3),
    "replace": (3, 3),
    "reverse": (1, 1),
    "starts_with": (2, 2),
    "ends_with": (2, 2),
    "strpos": (2, 2),
    "initcap": (1, 1),
}
FUNCTIONS = {**AGGREGATES, **SCALARS}


class SqlError(ValueError):
    """An expression that does not parse, is not allowed, or does not compile."""


@dataclass(frozen=True)
class CompiledSql:
    text: str
    expr: pl.Expr
    columns: tuple[str, ...]
    canonical: str = ""  # the checked, regenerated text that Polars compiled


def compile_sql(text: str) -> CompiledSql:
    """Check one SQL expression against the allowlist and compile it with Polars.

    >>> compile_sql("avg(CAST(status >= 500 AS DOUBLE))").columns
    ('status',)
    """
    from rulesengine.spec.sql_tree import compile_checked

    return compile_checked(text)


def parse(text: str) -> exp.Expression:
    """The sqlglot tree of ``text``, raising :class:`SqlError` unless every node is allowed."""
    from rulesengine.spec.sql_tree import parse as parse_checked

    return parse_checked(text)


def to_sql(node: exp.Expression) -> str:
    """A (sub)tree of :func:`parse` as the text Polars compiles, as
    :func:`compile_sql` writes it."""
    from rulesengine.spec.sql_tree import to_sql as written

    return written(node)


_PROBE_DTYPES: tuple[pl.DataType, ...] = (pl.Null(), pl.Float64(), pl.String(), pl.Boolean())


def shape(compiled: CompiledSql) -> Shape:
    """Whether the expression aggregates rows to one value or yields one per row.

    Decided by evaluating it on three rows of an in-memory dummy frame (the
    allowlist leaves nothing that reads files or generates rows); ``unknown``
    when no dummy dtype fits (then the real schema decides, under
    ``--check-sources``).
    """
    for dtype in _PROBE_DTYPES:
        cols = {c: pl.Series(c, [None, None, None], dtype=dtype) for c in compiled.columns}
        frame = pl.DataFrame(cols) if cols else pl.DataFrame({"__row": [1, 2, 3]})
        try:
            height = frame.lazy().select(compiled.expr).collect().height
        except (Exception, pl.exceptions.PanicException):
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
