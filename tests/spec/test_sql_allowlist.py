"""Issue 9, findings 1 and 2: SQL in a spec can neither reach files or the network
nor crash Polars, because it is parsed and allowlisted before Polars sees it.

The attacks run through the real ``rulesengine validate`` in a subprocess, against real
tripwires: a FIFO (opening it would block validation forever), a file whose first line
is a marker (it must never show up in any output) and a loopback HTTP server (it must
receive no request).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest

from rulesengine.spec.sql import (
    AGGREGATES,
    FUNCTIONS,
    CompiledSql,
    SqlError,
    check_shape,
    compile_sql,
    shape,
)
from tests.conftest import ROOT

MARKER = "root:x:0:0:MARKER-5f1c9a:/root:/bin/bash"
MAX_RSS_KIB = 1_500_000  # validate of a tiny spec stays far below this


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # a fetch would land here
        _Recorder.hits.append(self.path)
        body = f"{MARKER}\n1\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_target() -> Iterator[tuple[str, list[str]]]:
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/secret.csv", _Recorder.hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "blocking.csv"
    os.mkfifo(path)
    return path


@pytest.fixture
def marker_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwd.csv"
    path.write_text(f"{MARKER}\n1\n", encoding="utf-8")
    return path


# The examples of the issue; {target} is the FIFO, the marker file or the URL.
READERS = [
    "sum(x) + `'` + (SELECT nonexist FROM read_csv('{target}'))",
    "sum(x) -- '\n + (SELECT nonexist FROM read_csv('{target}'))",
    "sum(x) + read_csv('{target}')",
    "count(*) FILTER (WHERE x IN (SELECT * FROM read_csv('{target}')))",
]
CRASHERS = [
    ("greatest()", "function 'greatest' at character 1 is not allowed"),
    ("least()", "function 'least' at character 1 is not allowed"),
    ("generate_series(count(), 1e308)", "function 'generate_series' at character 1 is not allowed"),
    ("NOT CAST(9223372036854775807 AS TIMESTAMP)", "CAST to TIMESTAMP at character 33"),
    (
        "array_length(generate_series(1, 300000000))",
        "function 'array_length' at character 1 is not allowed",
    ),
    ("array_length(generate_series(1, 3e10))", "function 'array_length' at character 1"),
]


def _spec(expressions: list[str]) -> str:
    lines = [
        "version: 1",
        "model: m",
        "sources:",
        "  requests: {path: logs/*.parquet, timestamp: ts}",
        "kpis:",
    ]
    for i, text in enumerate(expressions):
        # A JSON string is a valid YAML double-quoted scalar: newlines and quotes survive.
        lines += [f"  - name: k{i}", "    source: requests", f"    expr: {json.dumps(text)}"]
        lines.append("    warn: {above: 0}")
    return "\n".join(lines) + "\n"


def _expr_line(i: int) -> int:
    return 6 + 4 * i + 2  # header lines, then 4 lines per KPI; expr is the third


# Runs the command line in a child and reports that child's own peak RSS (KiB).
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(code)\n"
)


def _validate(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``rulesengine validate`` and return its result and its peak RSS in KiB."""
    rss = tmp_path / "rss.txt"
    command = [sys.executable, "-m", "rulesengine.cli", "validate", "model.yaml", *args]
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(rss), *command],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a child blocked on the FIFO can be killed with it
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # e.g. blocked opening the FIFO: the bug this guards
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"validate did not return within 60 s: {out}{err}")
    peak = int(rss.read_text()) if rss.is_file() else 0
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), peak


def _assert_refused(tmp_path: Path, texts: list[str], fragments: list[str], *args: str) -> str:
    (tmp_path / "model.yaml").write_text(_spec(texts), encoding="utf-8")
    start = time.monotonic()
    result, peak = _validate(tmp_path, *args)
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert elapsed < 30, f"validate took {elapsed:.1f} s"
    assert peak < MAX_RSS_KIB, f"peak RSS {peak} KiB"
    assert "Traceback" not in output and "panicked" not in output, output
    assert MARKER not in output and "MARKER-5f1c9a" not in output, output
    for i, fragment in enumerate(fragments):
        line = _expr_line(i)
        expected = f"model.yaml:{line}:11: kpis[{i}].expr: {fragment}"
        assert any(row.startswith(expected) for row in result.stdout.splitlines()), (
            expected,
            result.stdout,
        )
    return output


SUBQUERY = "subqueries at character {n} are not allowed"
READER_FRAGMENTS = [
    SUBQUERY.format(n=17),
    SUBQUERY.format(n=17),
    "function 'read_csv' at character 10 is not allowed (expressions cannot read files)",
    SUBQUERY.format(n=30),
]


@pytest.mark.parametrize("target_kind", ["fifo", "marker", "http"])
def test_sql_never_opens_what_it_names(
    tmp_path: Path, target_kind: str, fifo: Path, marker_file: Path, http_target
):
    url, hits = http_target
    target = {"fifo": str(fifo), "marker": str(marker_file), "http": url}[target_kind]
    texts = [t.format(target=target) for t in READERS]
    _assert_refused(tmp_path, texts, READER_FRAGMENTS)
    assert hits == []


def test_check_sources_never_opens_what_sql_names(
    tmp_path: Path, fifo: Path, marker_file: Path, http_target
):
    """--check-sources reads the source's metadata, but never a file named in SQL."""
    url, hits = http_target
    (tmp_path / "logs").mkdir()
    pl.DataFrame({"ts": [1, 2], "x": [1.0, 2.0]}).write_parquet(tmp_path / "logs" / "a.parquet")
    texts = [READERS[0].format(target=t) for t in (str(fifo), str(marker_file), url)]
    _assert_refused(tmp_path, texts, [SUBQUERY.format(n=17)] * 3, "--check-sources")
    assert hits == []


def test_crashers_are_refused_without_panic_or_memory(tmp_path: Path):
    texts = [text for text, _ in CRASHERS]
    _assert_refused(tmp_path, texts, [fragment for _, fragment in CRASHERS])


def test_the_bypass_was_real(marker_file: Path):
    """Guards the reason for all this: Polars itself opens the file while compiling."""
    text = READERS[0].format(target=marker_file)
    with pytest.raises(Exception) as info:
        pl.DataFrame({"x": [1.0]}).lazy().select(pl.sql_expr(text)).collect()
    assert "MARKER-5f1c9a" in str(info.value)
    with pytest.raises(SqlError, match="subqueries at character 17 are not allowed"):
        compile_sql(text)


# ------------------------------------------------------------------ the allowlist itself


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(SELECT 1)", "subqueries at character 2 are not allowed"),
        ("x IN (SELECT 1)", "subqueries at character 7"),
        ("EXISTS (SELECT 1)", "is not allowed"),
        ("sum(x) OVER (PARTITION BY y)", "window functions (OVER ...) at character 8"),
        ("read_parquet('a.parquet')", "function 'read_parquet' at character 1 is not allowed"),
        ("\"read_csv\"('a')", "function 'read_csv' at character 1 is not allowed"),
        ("READ_CSV('a')", "function 'read_csv'"),
        ("unnest(x)", "function 'unnest' at character 1 is not allowed"),
        ("lpad(s, 1000000000)", "function 'lpad' at character 1 is not allowed"),
        ("summ(x)", "function 'summ' at character 1 is not allowed (did you mean 'sum'?)"),
        ("CAST(x AS TIMESTAMP)", "CAST to TIMESTAMP at character 11 is not allowed"),
        ("CAST(x AS DATE)", "CAST to DATE"),
        ("x::VARCHAR(10)", "CAST to VARCHAR(10) at character 4"),
        ("x.y", "qualified name 'x.y' at character 1 is not allowed"),
        ("x[1]", "'x[1]' at character 1 is not allowed (Bracket)"),
        ("x AS y", "'x AS y' at character 1 is not allowed (Alias)"),
        ("x = 'a\\'", "a backslash in a string at character 5 is not allowed"),
        ('"a\\" = 1', "a backslash in a quoted name at character 1"),
        ("avg(*)", "'*' at character 5 is only allowed in count(*)"),
        ("sum(DISTINCT x)", "DISTINCT at character 5 is only allowed as count(DISTINCT column)"),
        ("lower(x) FILTER (WHERE y)", "FILTER (WHERE ...) at character 10 only applies to an"),
        ("count(x, y)", "function 'count' at character 1 takes 1 argument, got 2"),
        ("quantile_cont(x, 2)", "the second argument of quantile_cont at character 1"),
        ("quantile_cont(x, y)", "must be a number between 0 and 1"),
        ("x IS y", "IS at character 1 must be followed by NULL, TRUE or FALSE"),
        ("1" * 40, "is too long (at most 30 digits)"),
        ("count(*); DROP TABLE logs", "';' is not allowed: write a single expression"),
        ("count(*);", "';' is not allowed"),
        ("avg(x", "invalid SQL expression: expecting ')' at the end of the expression"),
        ("x == == 1", "invalid SQL expression: incomplete expression at character 6 near '=='"),
        ("x + `abc", "invalid SQL expression: cannot split it into tokens"),
        ("", "invalid SQL expression: it is empty"),
        ("(" * 3000 + "x" + ")" * 3000, "is 6001 characters long; the limit is 4000"),
        ("(" * 1900 + "x" + ")" * 1900, "invalid SQL expression"),
        ("?", "'?' is not allowed (Placeholder)"),
        ("x ~ 'a'", "invalid SQL expression"),
        ("x -> 'a'", "is not allowed"),
        ("INTERVAL '1 day'", "is not allowed"),
        ("ts > current_date", "'current_date' at character 6 is not allowed: a result must not"),
        ("comment > 1", "not an expression (a column named like a SQL keyword must be double"),
    ],
)
def test_refused(text: str, fragment: str):
    with pytest.raises(SqlError) as info:
        compile_sql(text)
    assert fragment in str(info.value)


# What configs/, docs/ and tests/ use today (and the examples of docs/spec.md).
USED_TODAY = [
    "avg(CAST(status >= 500 AS DOUBLE))",
    "sum(CASE WHEN is_fraud AND NOT blocked THEN amount ELSE 0 END)",
    "avg(CASE WHEN status > 999 THEN latency END)",
    "avg(CAST(rating = 'up' AS DOUBLE))",
    "avg(prompt_tokens * 0.000003 + completion_tokens * 0.000015)",
    "avg(upper(amount))",
    "count(*) * 1.0",
    "count(*) FILTER (WHERE x > 1)",
    "count(DISTINCT x)",
    "max(latency_ms) - min(latency_ms)",
    "median(latency)",
    "stddev(x)",
    "quantile_cont(latency_ms, 0.95)",
    "sum(CAST(country AS INTEGER))",
    "sum(amount) / count(*)",
    "sum(coalesce(amount, amt))",
    "lower(country) IN ('de', 'at')",
    "country <> 'NO' AND amount IS NOT NULL",
    "country IS NOT NULL AND country <> 'US'",
    '"order" IS NOT NULL',
    '"values" > 1',
    "finish_reason = 'refusal'",
    "note = 'select from table'",
    "score >= 0.5",
    "forecast - units_sold",
    "x BETWEEN 1 AND 2 OR x NOT IN (5, 6)",
    "name LIKE 'a%' OR name ILIKE 'B%'",
    "TRY_CAST(x AS BIGINT) IS NULL",
    "round(abs(x - y), 2) > nullif(z, 0)",
    "CASE x WHEN 1 THEN 'one' ELSE 'many' END = 'one'",
    "-x * (y + 1) % 3 <> 0",
    "x IS TRUE OR x IS NOT FALSE",
    "a IS DISTINCT FROM b",
    "'it''s' = label",
    "`a b` > 1",
    "s || 'a' = 'ba'",
    "x NOT LIKE 'a%' AND x NOT BETWEEN 1 AND 2",
    "CAST(x AS VARCHAR) = CAST(y AS TEXT)",
    '"comment" > 1 AND "current_date" > 2',
]


@pytest.mark.parametrize("text", USED_TODAY)
def test_used_today_compiles_to_what_polars_made_of_it(text: str):
    """The regenerated text means what the user wrote: Polars compiles both alike.

    (Compiling the raw text with Polars is safe here only because these are known.)
    """
    compiled = compile_sql(text)
    assert str(compiled.expr) == str(pl.sql_expr(text))
    assert compiled.text == text


# One call per allowed function, with arguments Polars accepts.
EXAMPLE_ARGS = {
    "quantile_cont": "x, 0.5",
    "quantile_disc": "x, 0.5",
    "corr": "x, y",
    "covar_samp": "x, y",
    "covar_pop": "x, y",
    "pow": "x, 2",
    "power": "x, 2",
    "mod": "x, 2",
    "nullif": "x, 0",
    "ifnull": "x, 0",
    "coalesce": "x, y, 0",
    "concat": "s, 'a'",
    "left": "s, 2",
    "right": "s, 2",
    "substr": "s, 1, 2",
    "replace": "s, 'a', 'b'",
    "starts_with": "s, 'a'",
    "ends_with": "s, 'a'",
    "strpos": "s, 'a'",
    "round": "x, 2",
}
STRING_FUNCTIONS = {"lower", "upper", "length", "char_length", "character_length"}
STRING_FUNCTIONS |= {"octet_length", "trim", "ltrim", "rtrim", "reverse", "initcap"}


def test_every_allowed_function_compiles_in_polars():
    """The allowlist names only functions Polars knows, with arities it accepts, and
    the probe on dummy rows tells aggregates from per-row functions."""
    for name, (lo, hi) in FUNCTIONS.items():
        args = EXAMPLE_ARGS.get(name, "s" if name in STRING_FUNCTIONS else "x")
        assert lo <= len(args.split(",")) <= hi, name
        compiled = compile_sql(f"{name}({args})")
        want = "aggregate" if name in AGGREGATES else "row"
        assert shape(compiled) in (want, "unknown"), name


def test_shape_and_sourcecheck_survive_a_panic():
    """A Polars panic is a BaseException; the probes must turn it into 'unknown'."""

    def boom(series: pl.Series) -> pl.Series:
        raise pl.exceptions.PanicException("boom")

    compiled = CompiledSql("x", pl.col("x").map_batches(boom), ("x",))
    assert shape(compiled) == "unknown"
    assert check_shape(compiled, "aggregate") is None


def test_check_sources_reports_a_panic_as_the_monitors_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """--check-sources runs the compiled expression on an empty frame with the
    source's schema; a Polars panic there becomes a problem of that key, not a crash."""
    import rulesengine.spec.sourcecheck as sourcecheck
    from rulesengine.spec.validate import validate

    def boom(series: pl.Series) -> pl.Series:
        raise pl.exceptions.PanicException("boom")

    real = sourcecheck.compile_sql

    def panicking(text: str) -> CompiledSql:
        compiled = real(text)
        return CompiledSql(text, compiled.expr.map_batches(boom), compiled.columns)

    (tmp_path / "logs").mkdir()
    pl.DataFrame({"ts": [1], "x": [1.0]}).write_parquet(tmp_path / "logs" / "a.parquet")
    spec = tmp_path / "m.yaml"
    spec.write_text(
        "version: 1\nmodel: m\nsources:\n"
        f'  r: {{path: "{tmp_path}/logs/*.parquet", timestamp: ts}}\n'
        "kpis:\n  - {name: k, source: r, expr: 'sum(x)', warn: {above: 0}}\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sourcecheck, "compile_sql", panicking)
    report = validate([spec], check_sources=True, env={})
    assert [(p.line, p.message) for p in report.problems] == [
        (6, "does not fit the source's columns: boom")
    ]
