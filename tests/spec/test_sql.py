"""SQL expressions: allowlisted, compiled by Polars, queries refused, shape detected."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rulesengine.spec.sql import SqlError, compile_sql, shape


@pytest.mark.parametrize(
    "text",
    [
        "(SELECT count(*) FROM read_csv('/etc/passwd'))",
        "x IN (SELECT 1)",
        "read_parquet('/tmp/a.parquet')",
        "READ_CSV('x')",
        "scan_ndjson('x')",
        "avg(x) ; avg(y)",
        "x in (VALUES (1))",
        "(WITH t AS (SELECT 1) SELECT * FROM t)",
    ],
)
def test_queries_and_file_access_are_refused(text):
    with pytest.raises(SqlError):
        compile_sql(text)


def test_refused_query_would_really_have_read_the_file(tmp_path: Path):
    """Guards the reason for the check: Polars itself accepts the subquery."""
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n2\n")
    expr = pl.sql_expr(f"(SELECT count(*) FROM read_csv('{secret}'))")
    assert "subplan" in str(expr)
    with pytest.raises(SqlError):
        compile_sql(f"(SELECT count(*) FROM read_csv('{secret}'))")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("avg(CAST(status >= 500 AS DOUBLE))", "aggregate"),
        ("sum(CASE WHEN is_fraud AND NOT blocked THEN amount ELSE 0 END)", "aggregate"),
        ("count(*) FILTER (WHERE x > 1)", "aggregate"),
        ("count(*)", "aggregate"),
        ("median(x)", "aggregate"),
        ("score >= 0.5", "row"),
        ("country = 'DE' AND amount > 0", "row"),
        ("x + 1", "row"),
    ],
)
def test_shape(text, want):
    assert shape(compile_sql(text)) == want


def test_keywords_inside_strings_and_quoted_identifiers_are_fine():
    assert compile_sql("note = 'select from table'").columns == ("note",)
    assert compile_sql('"values" > 1').columns == ("values",)


def test_syntax_errors_and_unknown_functions():
    with pytest.raises(SqlError, match="invalid SQL expression: expecting '\\)' at the end"):
        compile_sql("avg(x")
    with pytest.raises(SqlError, match="function 'nope' at character 1 is not allowed"):
        compile_sql("nope(x)")
    with pytest.raises(SqlError, match=r"function 'summ' .* \(did you mean 'sum'\?\)"):
        compile_sql("summ(x)")


def test_polars_compiles_the_checked_text_not_the_raw_one():
    """Quotes and comments cannot smuggle anything past the parser: Polars gets
    SQL regenerated from the checked tree, every name double-quoted, no comments."""
    compiled = compile_sql("sum(x) -- ' hidden\n + `a b`")
    assert compiled.canonical == 'SUM("x") + "a b"'
    assert compiled.columns == ("x", "a b")
    assert compile_sql('"it""s" > 1').canonical == '"it""s" > 1'
    assert compile_sql("x = 'it''s'").canonical == "\"x\" = 'it''s'"
