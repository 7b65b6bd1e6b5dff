"""The SQL allowlist and compiler behind :mod:`rulesengine.spec.sql` (see its
docstring): the sqlglot dialect, the tree check, the messages. Imported only when
an expression is compiled."""

from __future__ import annotations

import logging
from typing import ClassVar

import polars as pl
import sqlglot
from sqlglot import exp, generator, parser, tokens
from sqlglot.dialects.dialect import Dialect

from rulesengine.errors import did_you_mean, first_line
from rulesengine.spec.sql import (
    AGGREGATES,
    FUNCTIONS,
    MAX_LENGTH,
    MAX_NUMBER_DIGITS,
    CompiledSql,
    SqlError,
)

# sqlglot logs a warning (to stderr) when it falls back to parsing text as a raw
# command; the allowlist refuses that with its own message, so the warning is noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# Numeric, boolean and string targets only: casting a large integer to a
# TIMESTAMP makes Polars panic, at compile time or later on real data.
CAST_TYPES = {
    exp.DataType.Type.DOUBLE: "DOUBLE",
    exp.DataType.Type.FLOAT: "FLOAT",
    exp.DataType.Type.INT: "INT (INTEGER)",
    exp.DataType.Type.BIGINT: "BIGINT",
    exp.DataType.Type.SMALLINT: "SMALLINT",
    exp.DataType.Type.TINYINT: "TINYINT",
    exp.DataType.Type.BOOLEAN: "BOOLEAN",
    exp.DataType.Type.VARCHAR: "VARCHAR",
    exp.DataType.Type.TEXT: "TEXT (STRING)",
}

# Node class -> the arguments it may carry. Everything else is refused.
_NODES: dict[type[exp.Expression], frozenset[str]] = {
    cls: frozenset(args)
    for cls, args in {
        exp.Column: ["this"],
        exp.Identifier: ["this", "quoted"],
        exp.Literal: ["this", "is_string"],
        exp.Boolean: ["this"],
        exp.Null: [],
        exp.Paren: ["this"],
        exp.Neg: ["this"],
        exp.Not: ["this"],
        exp.And: ["this", "expression"],
        exp.Or: ["this", "expression"],
        exp.Add: ["this", "expression"],
        exp.Sub: ["this", "expression"],
        exp.Mul: ["this", "expression"],
        exp.Div: ["this", "expression", "typed", "safe"],
        exp.Mod: ["this", "expression"],
        exp.EQ: ["this", "expression"],
        exp.NEQ: ["this", "expression"],
        exp.GT: ["this", "expression"],
        exp.GTE: ["this", "expression"],
        exp.LT: ["this", "expression"],
        exp.LTE: ["this", "expression"],
        exp.NullSafeEQ: ["this", "expression"],
        exp.NullSafeNEQ: ["this", "expression"],
        exp.DPipe: ["this", "expression", "safe"],
        exp.Is: ["this", "expression"],
        exp.In: ["this", "expressions"],
        exp.Between: ["this", "low", "high"],
        exp.Like: ["this", "expression", "negate"],
        exp.ILike: ["this", "expression", "negate"],
        exp.Case: ["this", "ifs", "default"],
        exp.If: ["this", "true", "false"],
        exp.Cast: ["this", "to"],
        exp.TryCast: ["this", "to", "safe"],
        exp.DataType: ["this", "nested"],
        exp.Anonymous: ["this", "expressions"],
        exp.Filter: ["this", "expression"],
        exp.Where: ["this"],
        exp.Star: [],
        exp.Distinct: ["expressions"],
    }.items()
}
# Polars reads these bare words as the current time; sqlglot, here, as columns.
_CLOCK = {"current_date", "current_time", "current_timestamp", "localtime", "localtimestamp"}
_QUERIES = (exp.Query, exp.Subquery, exp.Table, exp.From, exp.Join, exp.Lateral, exp.Values)


class _PolarsLike(Dialect):
    """Close to Polars' SQL: backticks and double quotes are identifiers.

    Every function call parses as a plain call by its written name (no rewriting
    of e.g. ``log2(x)`` into ``LOG(2, x)``), so the allowlist is on names and the
    regenerated call is the one the user wrote. Backslashes are not escapes here;
    strings holding one are refused below, because Polars reads them as escapes.
    """

    class Tokenizer(tokens.Tokenizer):
        IDENTIFIERS: ClassVar = ['"', "`"]
        STRING_ESCAPES: ClassVar = ["'"]

    class Parser(parser.Parser):
        FUNCTIONS: ClassVar = {}
        FUNCTION_PARSERS: ClassVar = {
            k: v for k, v in parser.Parser.FUNCTION_PARSERS.items() if k in ("CAST", "TRY_CAST")
        }
        NO_PAREN_FUNCTIONS: ClassVar = {}

    class Generator(generator.Generator):
        def not_sql(self, expression: exp.Not) -> str:
            # sqlglot reads `x IS NOT NULL` as NOT (x IS NULL); write it back the way
            # Polars compiles it best (is_not_null, not a cast and a negation).
            inner = expression.this
            if isinstance(inner, exp.Is):
                return f"{self.sql(inner, 'this')} IS NOT {self.sql(inner, 'expression')}"
            if isinstance(inner, exp.In) and not inner.args.get("query"):
                return f"{self.sql(inner, 'this')} NOT IN ({self.expressions(inner, flat=True)})"
            if isinstance(inner, exp.Between):
                this, low, high = (self.sql(inner, k) for k in ("this", "low", "high"))
                return f"{this} NOT BETWEEN {low} AND {high}"
            return super().not_sql(expression)


def compile_checked(text: str) -> CompiledSql:
    """Check one SQL expression against the allowlist and compile it with Polars.

    >>> compile_sql("avg(CAST(status >= 500 AS DOUBLE))").columns
    ('status',)
    """
    tree = parse(text)
    try:
        canonical = tree.sql(dialect=_PolarsLike, identify=True, comments=False)
    except RecursionError:
        raise SqlError("invalid SQL expression: nested too deeply") from None
    try:
        expr = pl.sql_expr(canonical)
    except (Exception, pl.exceptions.PanicException) as exc:  # a panic is a BaseException
        raise SqlError(_polars_message(exc)) from None
    roots = tuple(dict.fromkeys(expr.meta.root_names()))
    # Belt and braces: the allowlist admits no subquery, so Polars must not show one.
    if "subplan" in str(expr).lower() or any(r.startswith("_POLARS_TMP") for r in roots):
        raise SqlError("subqueries are not allowed: write an expression over the source's columns")
    return CompiledSql(text, expr, roots, canonical)


def to_sql(node: exp.Expression) -> str:
    """A (sub)tree of :func:`parse` as the text Polars compiles, as
    :func:`compile_sql` writes it."""
    return node.sql(dialect=_PolarsLike, identify=True, comments=False)


def parse(text: str) -> exp.Expression:
    """The sqlglot tree of ``text``, raising :class:`SqlError` unless every node is allowed."""
    if len(text) > MAX_LENGTH:
        raise SqlError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        trees = sqlglot.parse(text, read=_PolarsLike)
    except sqlglot.errors.ParseError as exc:
        raise SqlError(_parse_message(text, exc)) from None
    except sqlglot.errors.TokenError:
        raise SqlError(
            "invalid SQL expression: cannot split it into tokens "
            "(an unclosed quote, backtick or comment?)"
        ) from None
    except RecursionError:
        raise SqlError("invalid SQL expression: nested too deeply") from None
    statements = [t for t in trees if t is not None]
    if not statements:
        raise SqlError("invalid SQL expression: it is empty")
    if len(statements) > 1 or _has_semicolon(text):
        raise SqlError("';' is not allowed: write a single expression")
    tree = statements[0]
    # sqlglot's walk is iterative, so a deep tree cannot overflow the stack here.
    for node in tree.walk(bfs=False):
        problem = _refusal(node)
        if problem:
            at = _where(node, _PolarsLike().tokenize(text))
            raise SqlError(problem.replace("{at}", at) if "{at}" in problem else problem + at)
    return tree


def _has_semicolon(text: str) -> bool:
    """A ';' token (not one inside quotes): sqlglot drops a trailing one silently."""
    toks = _PolarsLike().tokenize(text)
    return any(t.token_type == tokens.TokenType.SEMICOLON for t in toks)


def _refusal(node: exp.Expression) -> str | None:
    """Why ``node`` is not allowed, or None."""
    if isinstance(node, _QUERIES) or (isinstance(node, exp.In) and node.args.get("query")):
        return "subqueries{at} are not allowed: write an expression over the source's columns"
    if isinstance(node, exp.Command):  # sqlglot's fallback for text it cannot parse
        return (
            "invalid SQL expression: not an expression (a column named like a SQL keyword "
            'must be double-quoted, e.g. "comment")'
        )
    if isinstance(node, exp.Window):
        return "window functions (OVER ...){at} are not allowed"
    allowed = _NODES.get(type(node))
    if allowed is None and isinstance(node, exp.Func):
        return _function_refusal(node.sql_name().lower())
    if allowed is None:
        return f"'{_snippet(node)}'{{at}} is not allowed ({type(node).__name__})"
    if isinstance(node, exp.Column) and len(node.parts) > 1:
        return (
            f"qualified name '{_snippet(node)}'{{at}} is not allowed: name a column of the "
            'source; double-quote a name that holds a dot ("a.b")'
        )
    if isinstance(node, exp.DataType) and (message := _specific(node)):
        return message  # says which types a CAST may use
    extra = [k for k, v in node.args.items() if v not in (None, False, []) and k not in allowed]
    if extra:
        what = f"{type(node).__name__} with {', '.join(extra)}"
        return f"'{_snippet(node)}'{{at}} is not allowed ({what})"
    return _specific(node)


def _specific(node: exp.Expression) -> str | None:
    """Checks that depend on where a node sits, not only on its class."""
    parent = node.parent
    if isinstance(node, exp.Anonymous):
        return _call_refusal(node)
    if isinstance(node, exp.Column) and not node.this.quoted and node.name.lower() in _CLOCK:
        return (
            f"'{node.name}'{{at}} is not allowed: a result must not depend on the clock "
            "(evaluations run as of --at); double-quote it if it is a column"
        )
    if isinstance(node, exp.Identifier | exp.Literal) and "\\" in str(node.this):
        what = "a string" if isinstance(node, exp.Literal) else "a quoted name"
        return f"a backslash in {what}{{at}} is not allowed (Polars reads it as an escape)"
    if isinstance(node, exp.Literal) and not node.is_string and len(node.this) > MAX_NUMBER_DIGITS:
        return (
            f"number '{node.this[:20]}...'{{at}} is too long (at most {MAX_NUMBER_DIGITS} digits)"
        )
    if isinstance(node, exp.DataType) and (node.this not in CAST_TYPES or node.expressions):
        shown = ", ".join(CAST_TYPES.values())
        return f"CAST to {node.sql()}{{at}} is not allowed (allowed types: {shown})"
    if isinstance(node, exp.Is) and not isinstance(node.expression, exp.Null | exp.Boolean):
        return "IS{at} must be followed by NULL, TRUE or FALSE"
    if isinstance(node, exp.Star) and not _sole_arg_of_count(node):
        return "'*'{at} is only allowed in count(*)"
    if isinstance(node, exp.Distinct) and not (
        _sole_arg_of_count(node) and len(node.expressions) == 1
    ):
        return "DISTINCT{at} is only allowed as count(DISTINCT column)"
    if isinstance(node, exp.Filter) and not (
        isinstance(node.this, exp.Anonymous) and node.this.name.lower() in AGGREGATES
    ):
        return "FILTER (WHERE ...){at} only applies to an aggregate such as count(*) or sum(x)"
    if isinstance(node, exp.Where) and not isinstance(parent, exp.Filter):
        return "WHERE{at} is only allowed in an aggregate's FILTER (WHERE ...)"
    return None


def _sole_arg_of_count(node: exp.Expression) -> bool:
    parent = node.parent
    return (
        isinstance(parent, exp.Anonymous)
        and parent.name.lower() == "count"
        and len(parent.expressions) == 1
    )


def _call_refusal(node: exp.Anonymous) -> str | None:
    name = node.name.lower()
    if name not in FUNCTIONS:
        return _function_refusal(name)
    lo, hi = FUNCTIONS[name]
    n = len(node.expressions)
    if not lo <= n <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        return f"function '{name}'{{at}} takes {want} argument{'s' if hi > 1 else ''}, got {n}"
    if name.startswith("quantile_"):
        q = node.expressions[1]
        if not (isinstance(q, exp.Literal) and not q.is_string and 0 <= float(q.this) <= 1):
            return f"the second argument of {name}{{at}} must be a number between 0 and 1"
    return None


def _function_refusal(name: str) -> str:
    hint = did_you_mean(name, FUNCTIONS)
    if name.startswith(("read_", "scan_")):
        hint = " (expressions cannot read files)"
    allowed = ", ".join(sorted(FUNCTIONS))
    return f"function '{name}'{{at}} is not allowed{hint}; allowed functions: {allowed}"


def _snippet(node: exp.Expression) -> str:
    try:
        shown = node.sql(dialect=_PolarsLike, comments=False)
    except Exception:  # only for the message: never let it hide the refusal
        shown = type(node).__name__
    return shown if len(shown) <= 40 else shown[:37] + "..."


T = tokens.TokenType
# The keyword that opens a construct, for constructs sqlglot keeps no position of.
_LEADS: dict[type[exp.Expression], frozenset[tokens.TokenType]] = {
    exp.Subquery: frozenset({T.SELECT, T.WITH, T.VALUES, T.FROM}),
    exp.Select: frozenset({T.SELECT, T.WITH}),
    exp.In: frozenset({T.SELECT, T.WITH, T.VALUES}),
    exp.Distinct: frozenset({T.DISTINCT}),
    exp.Filter: frozenset({T.FILTER}),
    exp.Window: frozenset({T.OVER}),
    exp.Star: frozenset({T.STAR}),
    exp.DataType: frozenset({T.ALIAS, T.DCOLON}),  # the type follows AS or ::
}


def _where(node: exp.Expression, toks: list[tokens.Token]) -> str:
    """`` at character N`` (1-based) where ``node`` starts in the text, when known.

    sqlglot records positions on names and values only; a construct is placed at its
    opening keyword, found in the tokens nearest to the first position inside it.
    """
    anchor, inside = None, True
    for scope in (node, node.parent):
        starts = [n.meta["start"] for n in scope.walk() if "start" in n.meta] if scope else []
        if starts:
            anchor = min(starts)
            break
        inside = False
    leads = _LEADS.get(type(node))
    if leads and anchor is not None:
        before = [t for t in toks if t.token_type in leads and t.start <= anchor]
        after = [t for t in toks if t.token_type in leads and t.start >= anchor]
        # The opening keyword precedes the first position inside the node (SELECT
        # before its columns) or follows it (OVER after the call, AS after a CAST's value).
        found = before[-1] if before and inside else (after[0] if after else None)
        if found is not None and type(node) is exp.DataType:
            following = [t for t in toks if t.start > found.start]
            found = following[0] if following else found
        if found is not None:
            anchor = found.start
    return f" at character {anchor + 1}" if anchor is not None else ""


def _parse_message(text: str, exc: sqlglot.errors.ParseError) -> str:
    first = exc.errors[0] if exc.errors else {}
    description = str(first.get("description") or "cannot parse")
    if description.startswith("Expecting "):
        description = f"expecting '{description.removeprefix('Expecting ').strip()}'"
    elif description.startswith("Required keyword"):
        description = "incomplete expression"
    else:  # sqlglot's other wordings name its internals, not the user's text
        description = "unexpected token"
    line, col = first.get("line"), first.get("col")
    if not (isinstance(line, int) and isinstance(col, int)):
        return f"invalid SQL expression: {description}"
    offset = sum(len(x) + 1 for x in text.split("\n")[: line - 1]) + col
    if offset >= len(text.rstrip()):
        return f"invalid SQL expression: {description} at the end of the expression"
    near = str(first.get("highlight") or "")
    offset = max(1, offset - len(near) + 1)  # sqlglot's column is where the token ends
    return f"invalid SQL expression: {description} at character {offset} near '{near[:30]}'"


def _polars_message(exc: BaseException) -> str:
    first = first_line(exc)
    if isinstance(exc, pl.exceptions.PanicException):
        return f"invalid SQL expression: Polars cannot compile it ({first})"
    return f"invalid SQL expression: {first}"
