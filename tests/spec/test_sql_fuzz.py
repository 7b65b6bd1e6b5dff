"""Fuzzing the SQL allowlist (issue 9): whatever text a spec holds, ``compile_sql``
either returns a checked expression or raises ``SqlError``; it never lets another
exception or a Polars panic through, never opens a file or a URL, and what it accepts
holds nothing but allowlisted nodes.

Texts come from a grammar mixing allowed and forbidden constructs (subqueries, table
functions, casts, comments, backticks, quotes) and from mutations of known attacks.
Every text that ever broke an invariant is kept in ``tests/fixtures/sql_corpus/`` and
replayed on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from rulesengine.spec.sql import FUNCTIONS, CompiledSql, SqlError, compile_sql, parse, shape

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "sql_corpus" / "crashers.jsonl"
MARKER = "MARKER-93e1d7"


# The server runs in its own process: Polars holds the GIL while it compiles, so a
# fetch from a server thread in this process would deadlock instead of being counted.
_SERVER = """
import http.server, sys
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.command + " " + self.path + "\\n")
        body = b"MARKER-93e1d7\\n1\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Tripwires:
    """A FIFO (opening it blocks), a marker file and a loopback URL that logs hits."""

    def __init__(self, root: Path, url: str, log: Path) -> None:
        self.fifo = root / "fifo.csv"
        os.mkfifo(self.fifo)
        self.marker = root / "marker.csv"
        self.marker.write_text(f"{MARKER}\n1\n", encoding="utf-8")
        self.url = url
        self.log = log
        self.targets = [str(self.fifo), str(self.marker), url]

    def hits(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def wires(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tripwires]:
    root = tmp_path_factory.mktemp("sqlfuzz")
    log = root / "hits.log"
    log.touch()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        wires = Tripwires(root, f"http://127.0.0.1:{port}/t.csv", log)
        yield wires
        assert wires.hits() == [], "SQL made Polars fetch a URL"
    finally:
        server.kill()
        server.wait(timeout=10)


# ------------------------------------------------------------------ invariants

_QUERY_TOKENS = {sqlglot.tokens.TokenType.SELECT, sqlglot.tokens.TokenType.FROM}


def check_invariants(text: str) -> CompiledSql | None:
    """The contract of compile_sql on any text; returns what it accepted, if anything."""
    try:
        compiled = compile_sql(text)
    except SqlError as exc:
        assert MARKER not in str(exc)
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # PanicException is a BaseException
        raise AssertionError(f"{type(exc).__name__} escaped for {text!r}: {exc}") from exc
    # What Polars compiled is the checked text, and that text passes the check again.
    tree = parse(compiled.canonical)
    for node in tree.walk():
        assert not isinstance(node, exp.Query | exp.Subquery | exp.Table), text
        if isinstance(node, exp.Anonymous):
            assert node.name.lower() in FUNCTIONS, text
    toks = sqlglot.tokens.Tokenizer().tokenize(compiled.canonical)
    assert not any(t.token_type in _QUERY_TOKENS for t in toks), compiled.canonical
    # Polars' own view: no subplan, no temporary table.
    assert "subplan" not in str(compiled.expr).lower(), text
    assert not any(c.startswith("_POLARS_TMP") for c in compiled.columns), text
    assert shape(compiled) in ("aggregate", "row", "unknown")
    return compiled


# ------------------------------------------------------------------ grammar

ALLOWED_NAMES = sorted(FUNCTIONS)
FORBIDDEN_NAMES = [
    "read_csv",
    "read_parquet",
    "read_json",
    "read_ndjson",
    "read_ipc",
    "scan_csv",
    "generate_series",
    "greatest",
    "least",
    "array_length",
    "unnest",
    "lpad",
    "rpad",
    "repeat",
    "date_part",
    "strftime",
    "now",
    "random",
]
TYPES = ["DOUBLE", "INT", "BIGINT", "BOOLEAN", "VARCHAR", "TIMESTAMP", "DATE", "INTERVAL", "TIME"]
TRICKY = ["'", '"', "`", "\\", "-- '\n", "/* ' */", "/*", "*/", ";", "(", ")", "\n", "$$", "::"]


# {target} stands for a tripwire; each test substitutes every one of them.
def _leaf() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["x", "y", "amount", "status", '"select"', "`'`", '"a""b"', "`a b`"]),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["1e308", "-1e308", "0.5", "9223372036854775807", "3e10", "1" * 35]),
        st.sampled_from(["NULL", "TRUE", "FALSE", "*", "'it''s'", "'a\\'", "''", "'{target}'"]),
    )


@st.composite
def _call(draw: st.DrawFn, children: st.SearchStrategy[str]) -> str:
    """Mostly allowed functions with a fitting number of arguments, sometimes not."""
    if draw(st.integers(0, 3)) == 0:
        name, lo, hi = draw(st.sampled_from(FORBIDDEN_NAMES)), 0, 3
    else:
        name = draw(st.sampled_from(ALLOWED_NAMES))
        lo, hi = FUNCTIONS[name]
    n = draw(st.integers(max(0, lo - 1), min(hi, 3) + 1))
    return f"{name}({', '.join(draw(st.lists(children, min_size=n, max_size=n)))})"


def _grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = st.sampled_from(["+", "-", "*", "/", "%", "=", "<>", ">=", "AND", "OR", "||"])
    two = st.tuples(children, children)
    allowed = [
        _call(children),
        st.tuples(children, ops, children).map(" ".join),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"({c})"),
        st.tuples(children, st.sampled_from(TYPES)).map(lambda t: f"CAST({t[0]} AS {t[1]})"),
        two.map(lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE 0 END"),
        two.map(lambda t: f"{t[0]} IN ({t[1]})"),
        two.map(lambda t: f"{t[0]} BETWEEN {t[1]} AND 1"),
        children.map(lambda c: f"{c} IS NOT NULL"),
        two.map(lambda t: f"count(*) FILTER (WHERE {t[0]}) + {t[1]}"),
        children.map(lambda c: f"count(DISTINCT {c})"),
    ]
    hostile = [
        children.map(lambda c: f"{c} IN (SELECT * FROM read_csv('{{target}}'))"),
        st.just("(SELECT count(*) FROM read_csv('{target}'))"),
        children.map(lambda c: f"sum({c}) OVER ()"),
        st.tuples(children, st.sampled_from(TRICKY), children).map("".join),
    ]
    return st.one_of(*allowed, *allowed, *hostile)  # allowed twice: more texts get through


SQL_TEXTS = st.recursive(_leaf(), _grow, max_leaves=10)
ATTACKS = [
    "sum(x) + `'` + (SELECT nonexist FROM read_csv('{target}'))",
    "sum(x) -- '\n + (SELECT nonexist FROM read_csv('{target}'))",
    "sum(x) + 'a\\' + (SELECT nonexist FROM read_csv('{target}')) + '\\'",
    "count(*) FILTER (WHERE x IN (SELECT * FROM read_csv('{target}')))",
    "avg(x) /* ' */ + read_parquet('{target}')",
    "array_length(generate_series(1, 3e10))",
    "NOT CAST(9223372036854775807 AS TIMESTAMP)",
    "greatest() + least()",
]


@st.composite
def mutated_attacks(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(ATTACKS))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:pos] + draw(st.sampled_from(TRICKY)) + text[pos:]
        else:
            text = text[:pos] + text[pos + draw(st.integers(1, 3)) :]
    return text


def check_everywhere(wires: Tripwires, text: str) -> list[CompiledSql | None]:
    """check_invariants with {target} as each tripwire in turn."""
    return [check_invariants(text.replace("{target}", t)) for t in wires.targets]


# ------------------------------------------------------------------ tests

TABLE_CALL = re.compile(r"(?<![\"\w])read_\w*\s*\(", re.IGNORECASE)  # a call, not "a name"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # the corpus below is the memory of failures, not a local cache
)


@FUZZ
@given(text=SQL_TEXTS)
def test_grammar_fuzz(wires: Tripwires, text: str) -> None:
    check_everywhere(wires, text)


@FUZZ
@given(text=mutated_attacks())
def test_mutated_attacks_fuzz(wires: Tripwires, text: str) -> None:
    for compiled in check_everywhere(wires, text):
        # whatever survives of an attack compiles only without its payload: no
        # read_* call ("read_parquet" / ('…'), a column divided by a string, may
        # survive a deleted parenthesis: a name, which reads nothing)
        assert compiled is None or not TABLE_CALL.search(compiled.canonical), compiled


def _corpus() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("text", _corpus())
def test_crash_corpus(wires: Tripwires, text: str) -> None:
    check_everywhere(wires, text)


def test_tripwires_are_live(tmp_path: Path) -> None:
    """The marker file and the URL really are what Polars would read: without the
    allowlist, the marker shows up and the server is hit (a server of its own, so
    that the module's server stays at zero hits)."""
    log = tmp_path / "hits.log"
    log.touch()
    wires = Tripwires(tmp_path, "", log)
    text = f"sum(x) + `'` + (SELECT nonexist FROM read_csv('{wires.marker}'))"
    with pytest.raises(Exception, match=MARKER):
        pl.DataFrame({"x": [1.0]}).lazy().select(pl.sql_expr(text)).collect()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/t.csv"
        with contextlib.suppress(Exception):  # only the request matters here
            pl.sql_expr(f"(SELECT nonexist FROM read_csv('{url}'))")
    finally:
        server.kill()
        server.wait(timeout=10)
    assert wires.hits(), "Polars did not fetch the URL: the tripwire would miss a fetch"
