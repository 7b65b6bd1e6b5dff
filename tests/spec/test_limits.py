"""Bounds on specs (issue 9, finding 7): durations, names, nesting, sizes, file size,
alias expansion, and validation time that grows linearly with the file.

The crashes were CLI crashes (exit 70, a traceback), so each is checked through a real
``rulesengine`` subprocess: a positioned message, exit 1 (validate) or 3 (run). Growth is
measured by counting Python function calls (deterministic), never by wall-clock time.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rulesengine.durations import MAX_DURATION, MAX_TEXT, format_duration, parse_duration
from rulesengine.errors import ProblemList
from rulesengine.spec import schema as schema_mod
from rulesengine.spec import yamlsrc
from rulesengine.spec.loader import MAX_FILE_BYTES, load_report
from rulesengine.spec.yamlsrc import MAX_DEPTH, MAX_KEY, MAX_NODES, load_yaml
from tests.conftest import ROOT, run_cli

HEAD = "version: 1\nmodel: fraud\nsources:\n  requests: {path: logs/*.parquet, timestamp: ts}\n"
CHECK = "checks:\n  - {name: volume, source: requests, type: row_count, critical: {below: 10}}\n"
POSITIONED = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?P<col>\d+): \S")


def assert_clean(result: Any, code: int) -> list[str]:
    """The command failed the documented way: ``code``, positioned lines, no traceback."""
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "Traceback" not in out and "internal error" not in out, out
    lines = [ln for ln in out.splitlines() if POSITIONED.match(ln.removeprefix("error: "))]
    assert lines, out
    return lines


def col_of(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, col), 1-based, of the nth occurrence of ``needle`` in ``text``."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    before = text[:at]
    return before.count("\n") + 1, at - (before.rfind("\n") + 1) + 1


# ----------------------------------------------------------------- durations


UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@settings(max_examples=150, deadline=None, database=None)
@given(parts=st.lists(st.tuples(st.integers(0, 10**25), st.sampled_from(list(UNIT_SECONDS)))))
def test_parse_duration_is_exact_or_a_value_error(parts: list[tuple[int, str]]):
    text = "".join(f"{n}{u}" for n, u in parts)
    # the oracle: exact rational arithmetic in whole milliseconds
    ms = sum(n * round(UNIT_SECONDS[u] * 1000) for n, u in parts)
    if not parts:
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(text)
    elif len(text) > MAX_TEXT:
        with pytest.raises(ValueError, match="too long for a duration"):
            parse_duration(text)
    elif ms > MAX_DURATION.total_seconds() * 1000:
        with pytest.raises(ValueError, match="longest duration allowed, 3650d"):
            parse_duration(text)
    else:
        assert parse_duration(text) == timedelta(milliseconds=ms)


@settings(max_examples=150, deadline=None, database=None)
@given(st.one_of(st.text(max_size=80), st.integers(), st.none(), st.floats()))
def test_parse_duration_raises_only_value_error(value: Any):
    try:
        parse_duration(value)
    except ValueError as exc:
        assert str(exc)
        assert len(str(exc)) < 200  # a huge input is never echoed whole


def test_the_bound_itself():
    assert parse_duration("3650d") == MAX_DURATION == timedelta(days=3650)
    assert parse_duration("520w10d") == timedelta(days=3650)
    assert format_duration(MAX_DURATION) == "521w3d"
    for text in ("3650d1ms", "3651d", "99999999999999999999d", "1000000d", "87601h"):
        with pytest.raises(ValueError, match="longest duration allowed"):
            parse_duration(text)
    with pytest.raises(ValueError, match="too long for a duration"):
        parse_duration("1" * 5000 + "s")  # int() of > 4300 digits would raise otherwise


def schema_nodes(node: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            out.extend(schema_nodes(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(schema_nodes(v))
    return out


@pytest.mark.parametrize("kind", ["model", "engine"])
def test_every_duration_in_the_schemas_carries_the_bound(kind: str):
    schema = json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text("utf-8"))
    durations = [
        n for n in schema_nodes(schema) if n.get("pattern") == r"^([0-9]+(ms|s|m|h|d|w))+$"
    ]
    assert len(durations) >= 5
    for node in durations:
        assert parse_duration(node["x-max-duration"]) == MAX_DURATION, node


# ----------------------------------------------------------------- the findings, via the CLI


def test_huge_window_is_positioned_not_an_overflow(tmp_path: Path):
    text = HEAD + "evaluation:\n  window: 99999999999999999999d\n" + CHECK
    (tmp_path / "m.yaml").write_text(text, "utf-8")
    lines = assert_clean(run_cli("validate", "m.yaml", cwd=tmp_path), 1)
    line, col = col_of(text, "99999999999999999999d")
    assert lines == [
        f"m.yaml:{line}:{col}: evaluation.window: '99999999999999999999d' is longer than "
        "the longest duration allowed, 3650d (10 years)"
    ]


def write_config(folder: Path, model: str, engine: str = "version: 1\n") -> None:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "engine.yaml").write_text(engine, "utf-8")
    (folder / "models" / "m.yaml").write_text(model, "utf-8")
    (folder / "logs").mkdir(exist_ok=True)
    ts = pl.datetime_range(
        pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1, 23), "1h", eager=True
    ).alias("ts")
    pl.DataFrame({"ts": ts, "x": range(len(ts))}).write_parquet(folder / "logs" / "a.parquet")


def test_window_of_a_million_days_fails_validation_not_every_run(tmp_path: Path):
    text = HEAD + "evaluation:\n  window: 1000000d\n" + CHECK
    write_config(tmp_path, text)
    at = "--at=2026-01-02T00:00:00Z"
    lines = assert_clean(run_cli("run", ".", at, "--no-notify", cwd=tmp_path), 3)
    line, col = col_of(text, "1000000d")
    assert any(f"models/m.yaml:{line}:{col}: evaluation.window:" in ln for ln in lines), lines
    # the longest window allowed runs, and counts every one of the 24 rows
    write_config(tmp_path, text.replace("1000000d", "3650d").replace("below: 10", "below: 0"))
    result = run_cli("run", ".", at, "--no-notify", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (res,) = json.loads(result.stdout)["models"][0]["results"]
    assert res["value"] == 24 and res["status"] == "ok"
    start = datetime(2026, 1, 2, tzinfo=UTC) - timedelta(days=3650)
    assert res["window"]["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_long_receiver_name_and_state_path(tmp_path: Path):
    name = "r" * 300
    engine = (
        f"version: 1\nstate: .rulesengine/{'s' * 300}.db\n"
        f"receivers:\n  {name[:200]}: ['json://127.0.0.1:9/x']\n"
        f"routes:\n  - {{receivers: [{name[:200]}]}}\n"
    )
    write_config(tmp_path, HEAD + CHECK, engine)
    for args, code in ((("validate", "."), 1), (("run", ".", "--no-notify"), 3)):
        lines = assert_clean(run_cli(*args, cwd=tmp_path), code)
        joined = "\n".join(lines)
        line, col = col_of(engine, name[:200])
        assert f"engine.yaml:{line}:{col}: receivers.{name[:200]}: '{'r' * 40}…' is too long " in (
            joined
        ), joined
        assert "(200 characters; at most 128)" in joined
        line, col = col_of(engine, ".rulesengine/")
        assert f"engine.yaml:{line}:{col}: state: " in joined
        assert "is not a path whose parts (between '/') have at most 255 characters" in joined


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 2000, 100_000])
def test_deeply_nested_lists(tmp_path: Path, depth: int):
    """Depth counts the document's own mapping: a list at depth 64 is fine, at 65 not."""
    text = HEAD + CHECK + "description: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"
    (tmp_path / "m.yaml").write_text(text, "utf-8")
    result = run_cli("validate", "m.yaml", cwd=tmp_path)
    if depth <= MAX_DEPTH:
        lines = assert_clean(result, 1)
        assert lines == [
            f"m.yaml:{text.count(chr(10))}:14: description: expected a string, got a list"
        ]
        return
    lines = assert_clean(result, 1)
    line, col = col_of(text, "[" * (MAX_DEPTH - 1) + "[")
    # the first list beyond the bound: the 64th bracket (the root mapping is level 1)
    assert lines == [
        f"m.yaml:{line}:{col + MAX_DEPTH - 1}: the document nests too deeply: more than "
        f"{MAX_DEPTH} levels of lists or maps"
    ]


def test_nesting_through_aliases_and_self_reference():
    # each alias adds 10 levels while the text nests only 10: the composer sees little
    lines = ["a: &a [[[[[[[[[[1]]]]]]]]]]"]
    for prev, cur in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{cur}: &{cur} [[[[[[[[[[*{prev}]]]]]]]]]]")
    loaded = load_yaml("\n".join(lines) + "\n", "f.yaml")
    msgs = [p.message for p in loaded.problems.problems]
    assert msgs and all("nests too deeply" in m and "through aliases" in m for m in msgs)
    assert all(len(p.path) <= MAX_DEPTH for p in loaded.problems.problems)
    # a list that holds itself
    loaded = load_yaml("x: &x [1, *x]\n", "f.yaml")
    (p,) = loaded.problems.problems
    assert (p.line, p.col) == (1, 4) and "nests too deeply" in p.message


def test_long_keys_are_refused_at_the_key():
    text = "version: 1\n" + "k" * (MAX_KEY + 1) + ": 1\n" + "k" * MAX_KEY + ": 2\n"
    loaded = load_yaml(text, "f.yaml")
    assert [(p.line, p.col, p.message) for p in loaded.problems.problems] == [
        (2, 1, f"key '{'k' * 40}…' is too long ({MAX_KEY + 1} characters; at most {MAX_KEY})")
    ]
    assert set(loaded.data) == {"version", "k" * MAX_KEY}


def test_file_larger_than_the_bound_is_not_read_whole(tmp_path: Path):
    text = HEAD + CHECK + "description: |\n" + ("  " + "x" * 1000 + "\n") * 4200
    assert len(text.encode()) > MAX_FILE_BYTES
    (tmp_path / "m.yaml").write_text(text, "utf-8")
    lines = assert_clean(run_cli("validate", "m.yaml", cwd=tmp_path), 1)
    assert lines == [
        "m.yaml:1:1: the file is too large (more than 4 MiB): a spec is a few KiB; "
        "split it, or move data out of it"
    ]
    # a file of exactly the bound is read (and then judged on its content)
    valid = (HEAD + CHECK).encode()
    padding = b"#" * (MAX_FILE_BYTES - len(valid) - 1) + b"\n"
    (tmp_path / "m.yaml").write_bytes(valid + padding)
    assert (tmp_path / "m.yaml").stat().st_size == MAX_FILE_BYTES
    report = load_report([tmp_path / "m.yaml"], env={})
    assert report.ok, [p.render() for p in report.problems]


def test_name_bounds_in_the_schema_hold_for_every_name():
    """Names that become keys or references: the schema's name pattern and 128."""
    schema = json.loads((ROOT / "schemas" / "model.schema.json").read_text("utf-8"))
    engine = json.loads((ROOT / "schemas" / "engine.schema.json").read_text("utf-8"))
    names = [
        n
        for n in schema_nodes(schema) + schema_nodes(engine)
        if n.get("pattern") == "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
    ]
    assert len(names) >= 8 and all(n.get("maxLength") == 128 for n in names)
    labels = schema["$defs"]["labels"]["propertyNames"]
    assert labels["maxLength"] == 128


# ----------------------------------------------------------------- growth


def count_calls(fn: Callable[[], Any]) -> int:
    """Python function calls (and generator resumptions) made by ``fn``: a measure of
    work that does not depend on the machine's load."""
    calls = 0

    def profiler(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def bomb_and_keys(n: int) -> str:
    """The issue's case: an alias bomb, then ``n`` unknown keys (all refused)."""
    lines = [HEAD.rstrip("\n"), CHECK.rstrip("\n")]
    lines.append('a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    lines.extend(f"unknown_key_{i}: {i}" for i in range(n))
    return "\n".join(lines) + "\n"


def keys_then_bomb(n: int) -> str:
    """``n`` unknown keys, each reported, then a bomb: many problems and many refused
    paths at once (the loop that compared every problem with every refused path)."""
    lines = [HEAD.rstrip("\n"), CHECK.rstrip("\n")]
    lines.extend(f"unknown_key_{i}: {{a: [{i}, {i}]}}" for i in range(n))
    lines.append('a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    lines.extend(f"k{i}: &k{i} [*a9, *a9]" for i in range(n))
    return "\n".join(lines) + "\n"


def checks_with_mistakes(n: int) -> str:
    item = (
        "  - {{name: c{i}, source: s{i}, type: nul_rate, column: x, window: 9999999d, "
        "critical: {{above: x}}, bogus: 1, columns: [{{a: 1}}, 1, {{a: 1}}]}}\n"
    )
    return HEAD + "checks:\n" + "".join(item.format(i=i) for i in range(n))


def unique_items(n: int) -> str:
    cols = ",".join(f"{{a: {i}}}" if i % 2 else str(i) for i in range(n))
    return (
        HEAD
        + CHECK
        + f"drift:\n  - {{name: d, source: requests, reference: requests, columns: [{cols}]}}\n"
    )


def test_lists_and_maps_beyond_their_bound_skip_the_cross_checks(tmp_path: Path):
    """Each unknown reference gets a did-you-mean hint over every receiver: a cost of
    routes x receivers. Beyond the schema's bound (1000 receivers) the sizes are
    reported and the references are checked once they fit."""
    n = 1001
    rec = "".join(f"  r{i}: ['json://127.0.0.1:9/x{i}']\n" for i in range(n))
    engine = "version: 1\nreceivers:\n" + rec + "routes:\n  - {receivers: [q1]}\n"
    write_config(tmp_path, HEAD + CHECK, engine)
    report = load_report([tmp_path], env={})
    assert [(p.file.rsplit("/", 1)[-1], p.line, p.col, p.message) for p in report.problems] == [
        ("engine.yaml", 3, 3, f"has too many keys ({n}; at most 1000)")
    ]
    # within the bound, the reference is checked
    write_config(
        tmp_path, HEAD + CHECK, engine.replace(f"  r{n - 1}: ['json://127.0.0.1:9/x{n - 1}']\n", "")
    )
    report = load_report([tmp_path], env={})
    (problem,) = report.problems
    assert problem.message.startswith("unknown receiver 'q1'")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("make", "kind", "n"),
    [
        (bomb_and_keys, "model", 400),
        (keys_then_bomb, "model", 200),
        (checks_with_mistakes, "model", 60),
        (unique_items, "model", 400),
    ],
)
def test_validation_work_grows_linearly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[int], str],
    kind: str,
    n: int,
):
    # a smaller bomb bound, so that the bomb's fixed cost does not hide the growth
    monkeypatch.setattr(yamlsrc, "MAX_NODES", 3000)

    def work(size: int) -> int:
        folder = tmp_path / str(size)
        if kind == "engine":
            write_config(folder, HEAD + CHECK, make(size))
            target = folder
        else:
            folder.mkdir()
            target = folder / "m.yaml"
            target.write_text(make(size), "utf-8")
        report: list[Any] = []
        calls = count_calls(lambda: report.append(load_report([target], env={})))
        assert report[0].problems and all(p.line >= 1 for p in report[0].problems)
        return calls

    work(n // 2)  # first-time costs: imports, the compiled schema
    w1, w2, w4 = work(n), work(2 * n), work(4 * n)
    # the work added by each doubling doubles when linear (it quadruples when quadratic);
    # differences cancel the fixed cost (imports, the bomb)
    assert (w4 - w2) / (w2 - w1) < 2.5, (w1, w2, w4)


@pytest.mark.timeout(60)
def test_the_issue_case_alias_bomb_and_20k_keys(tmp_path: Path):
    """Took 75 s; a pytest-timeout bound is the safety net, the counts above the proof."""
    (tmp_path / "m.yaml").write_text(bomb_and_keys(20_000), "utf-8")
    result = run_cli("validate", "m.yaml", cwd=tmp_path)
    lines = assert_clean(result, 1)
    assert any(f"more than {MAX_NODES} values (too many aliases?)" in ln for ln in lines)


# ----------------------------------------------------------------- last resorts


def test_deep_python_data_is_a_problem_not_a_recursion_error():
    """Callers may validate data that did not come through the YAML loader: a route
    tree thousands of levels deep makes jsonschema recurse past Python's limit."""
    data: dict[str, Any] = {"receivers": ["x"]}
    for _ in range(5000):
        data = {"routes": [data]}
    data["version"] = 1
    problems = ProblemList("engine.yaml")
    assert schema_mod.validate_structure(data, "engine", problems, set()) is False
    assert [p.message for p in problems.problems][-1] == (
        "the document nests too deeply for validation"
    )
    assert all((p.line, p.col) >= (1, 1) for p in problems.problems)


def test_text_beyond_the_bound_is_refused_before_parsing():
    text = "a: " + "x" * (4 * 1024 * 1024) + "\n"
    loaded = load_yaml(text, "f.yaml")
    (p,) = loaded.problems.problems
    assert (p.line, p.col) == (1, 1) and "too large" in p.message and loaded.data is None


@pytest.mark.timeout(60)
def test_a_fifo_or_a_device_is_refused_not_read(tmp_path: Path):
    """Reading a FIFO with no writer blocks forever, and /dev/zero never ends."""
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    for target in ("m.yaml", "/dev/zero"):
        lines = assert_clean(run_cli("validate", target, cwd=tmp_path, timeout=30), 1)
        assert lines == [f"{target}:1:1: not a regular file: a spec is a YAML file"]
