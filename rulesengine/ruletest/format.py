"""Rule test files: read with positions and checked into plain objects.

The format is documented in docs/testing.md. Every mistake becomes a positioned
:class:`~rulesengine.errors.Problem` (``file:line:col``, as ``validate`` prints
them); a file with any is refused as a whole with :class:`TestFileError` (exit 2).
Names that need the config (model, sources, monitors, receivers) are checked by
the runner, which reports them the same way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rulesengine.errors import KeyPath, Problem, ProblemList, SpecError, did_you_mean
from rulesengine.ruletest.generate import NotationError, expand_columns, times_of
from rulesengine.spec.loader import display
from rulesengine.spec.yamlsrc import load_yaml

ALERT_STATES = ("inactive", "pending", "firing", "resolved", "no_data")
STATUSES = ("ok", "warn", "critical", "no_data", "insufficient_data", "error")
DEFAULT_TOLERANCE = 1e-9
MAX_BYTES = 10 * 1024 * 1024

_TOP = ("config", "tests")
_TEST = ("name", "model", "sources", "at", "expect")
_SOURCE = ("rows", "columns", "file")
_EXPECT = ("at", "results", "alerts", "notifications")
_RESULT = ("monitor", "status", "value", "tolerance", "segment", "column")
_ALERT = ("monitor", "state", "segment", "column")
_NOTE = ("receiver", "count", "title", "body")


class TestFileError(SpecError):
    """An invalid test file (exit 2; an invalid config keeps exit 3)."""

    __test__ = False  # not a pytest class
    exit_code = 2


@dataclass(frozen=True)
class Fixture:
    """One source's rows: a list of row mappings, or a file to copy."""

    source: str
    line: int
    rows: list[dict[str, Any]] | None = None
    file: Path | None = None


@dataclass(frozen=True)
class ResultExp:
    line: int
    monitor: str
    status: str | None = None
    value: float | None = None
    tolerance: float = DEFAULT_TOLERANCE
    segment: dict[str, Any] | None = None
    column: str | None = None


@dataclass(frozen=True)
class AlertExp:
    line: int
    monitor: str
    state: str
    segment: dict[str, Any] | None = None
    column: str | None = None


@dataclass(frozen=True)
class NoteExp:
    line: int
    receiver: str
    count: int = 1
    title: str | None = None
    body: str | None = None


@dataclass(frozen=True)
class Expectation:
    line: int
    at: datetime
    results: tuple[ResultExp, ...] = ()
    alerts: tuple[AlertExp, ...] = ()
    notifications: tuple[NoteExp, ...] | None = None  # None: not checked; (): none


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class

    index: int
    name: str
    line: int
    model: str | None
    fixtures: tuple[Fixture, ...]
    times: tuple[datetime, ...]
    expects: tuple[Expectation, ...]
    model_path: KeyPath = ()


@dataclass
class TestFile:
    __test__ = False  # not a pytest class

    path: Path
    shown: str
    config: list[Path]
    tests: list[TestCase]
    problems: ProblemList = field(default_factory=lambda: ProblemList(""))


class _Reader:
    """Checks one parsed document, collecting positioned problems."""

    def __init__(self, path: Path, problems: ProblemList) -> None:
        self.path = path
        self.p = problems

    def line(self, path: KeyPath) -> int:
        return self.p.pos_of(path).line

    def mapping(self, value: Any, path: KeyPath, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.p.add(path, f"expected a mapping with {', '.join(keys)}")
            return {}
        for k in value:
            if k not in keys:
                hint = did_you_mean(str(k), keys)
                self.p.add((*path, k), f"unknown key '{k}'{hint}", key=True)
        return value

    def items(self, value: Any, path: KeyPath, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.p.add(path, f"expected a list of {what}")
            return []
        return value

    def text(self, d: dict[str, Any], key: str, path: KeyPath, required: bool = True) -> Any:
        v = d.get(key)
        if v is None:
            if required:
                self.p.add(path, f"'{key}' is required", key=False)
            return None
        if not isinstance(v, str) or not v:
            self.p.add((*path, key), f"'{key}' must be a non-empty text")
            return None
        return v

    def choice(self, d: dict[str, Any], key: str, path: KeyPath, allowed: tuple[str, ...]) -> Any:
        v = self.text(d, key, path, required=False)
        if v is not None and v not in allowed:
            hint = did_you_mean(v, allowed)
            self.p.add((*path, key), f"'{v}' is not one of {', '.join(allowed)}{hint}")
            return None
        return v

    def number(self, d: dict[str, Any], key: str, path: KeyPath) -> float | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.p.add((*path, key), f"'{key}' must be a finite number")
            return None
        return float(v)

    def time(self, value: Any, path: KeyPath) -> datetime | None:
        try:
            return times_of([value])[0]
        except NotationError as exc:
            self.p.add(path, str(exc))
            return None

    def segment(self, d: dict[str, Any], path: KeyPath) -> dict[str, Any] | None:
        v = d.get("segment")
        if v is None:
            return None
        if not isinstance(v, dict) or any(isinstance(x, dict | list) for x in v.values()):
            self.p.add((*path, "segment"), "'segment' maps segment columns to values")
            return None
        return v

    # ------------------------------------------------------------------ sections

    def fixture(self, name: str, value: Any, path: KeyPath) -> Fixture | None:
        d = self.mapping(value, path, _SOURCE)
        given = [k for k in _SOURCE if k in d]
        if len(given) != 1:
            self.p.add(path, "give exactly one of rows, columns or file")
            return None
        line = self.line(path)
        if "file" in d:
            f = self.text(d, "file", path)
            if f is None:
                return None
            file = (self.path.parent / f).resolve()
            if not file.is_file():
                self.p.add((*path, "file"), f"no such file: {display(file)}")
                return None
            return Fixture(name, line, file=file)
        if "rows" in d:
            rows = self.items(d["rows"], (*path, "rows"), "rows")
            for i, r in enumerate(rows):
                if not isinstance(r, dict) or not r:
                    self.p.add((*path, "rows", i), "a row maps column names to values")
                    return None
            if not rows:
                self.p.add((*path, "rows"), "give at least one row (leave the source out for none)")
                return None
            return Fixture(name, line, rows=rows)
        cols = d["columns"]
        if not isinstance(cols, dict) or not cols:
            self.p.add((*path, "columns"), "'columns' maps column names to generators")
            return None
        try:
            expanded = expand_columns(cols)
        except NotationError as exc:
            self.p.add((*path, "columns"), str(exc))
            return None
        n = len(next(iter(expanded.values())))
        rows = [{k: v[i] for k, v in expanded.items()} for i in range(n)]
        return Fixture(name, line, rows=rows)

    def result(self, value: Any, path: KeyPath) -> ResultExp | None:
        d = self.mapping(value, path, _RESULT)
        monitor = self.text(d, "monitor", path)
        status = self.choice(d, "status", path, STATUSES)
        val = self.number(d, "value", path)
        tol = self.number(d, "tolerance", path)
        if tol is not None and tol < 0:
            self.p.add((*path, "tolerance"), "'tolerance' must be >= 0")
        if d and status is None and val is None and "status" not in d and "value" not in d:
            self.p.add(path, "say what to expect: 'status', 'value' or both")
        if monitor is None:
            return None
        column = self.text(d, "column", path, required=False)
        return ResultExp(
            self.line(path),
            monitor,
            status,
            val,
            DEFAULT_TOLERANCE if tol is None else tol,
            self.segment(d, path),
            column,
        )

    def alert(self, value: Any, path: KeyPath) -> AlertExp | None:
        d = self.mapping(value, path, _ALERT)
        monitor = self.text(d, "monitor", path)
        state = self.choice(d, "state", path, ALERT_STATES)
        if d and "state" not in d:
            self.p.add(path, "'state' is required")
        if monitor is None or state is None:
            return None
        column = self.text(d, "column", path, required=False)
        return AlertExp(self.line(path), monitor, state, self.segment(d, path), column)

    def note(self, value: Any, path: KeyPath) -> NoteExp | None:
        d = self.mapping(value, path, _NOTE)
        receiver = self.text(d, "receiver", path)
        count = d.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.p.add((*path, "count"), "'count' must be a whole number >= 0")
            count = 1
        title = self.text(d, "title", path, required=False)
        body = self.text(d, "body", path, required=False)
        if receiver is None:
            return None
        return NoteExp(self.line(path), receiver, count, title, body)

    def expectation(self, value: Any, path: KeyPath) -> Expectation | None:
        d = self.mapping(value, path, _EXPECT)
        if not d:
            return None
        if "at" not in d:
            self.p.add(path, "'at' is required")
            return None
        at = self.time(d["at"], (*path, "at"))
        parts: dict[str, list[Any]] = {}
        for key, fn in (
            ("results", self.result),
            ("alerts", self.alert),
            ("notifications", self.note),
        ):
            got = [
                fn(v, (*path, key, i))
                for i, v in enumerate(self.items(d.get(key), (*path, key), key))
            ]
            parts[key] = [g for g in got if g is not None]
        if at is None:
            return None
        notes = tuple(parts["notifications"]) if "notifications" in d else None
        return Expectation(
            self.line(path), at, tuple(parts["results"]), tuple(parts["alerts"]), notes
        )

    def times(self, d: dict[str, Any], path: KeyPath, expects: list[Expectation]) -> list[datetime]:
        if "at" not in d:
            return sorted({e.at for e in expects})
        raw = d["at"]
        if not isinstance(raw, str | list) or not raw:
            self.p.add((*path, "at"), "'at' is a list of ISO times or a generator TIME+STEPxN")
            return []
        try:
            times = times_of(raw)
        except NotationError as exc:
            self.p.add((*path, "at"), str(exc))
            return []
        if any(b <= a for a, b in itertools.pairwise(times)):
            self.p.add((*path, "at"), "evaluation times must be in increasing order")
        known = set(times)
        for j, e in enumerate(expects):
            if e.at not in known:
                self.p.add(
                    (*path, "expect", j, "at"), "this time is not one of the test's 'at' times"
                )
        return times

    def test(self, index: int, value: Any, path: KeyPath) -> TestCase | None:
        d = self.mapping(value, path, _TEST)
        if not d:
            return None
        name = self.text(d, "name", path)
        model = self.text(d, "model", path, required=False)
        sources = d.get("sources") or {}
        fixtures = []
        if not isinstance(sources, dict):
            self.p.add((*path, "sources"), "'sources' maps source names to rows, columns or a file")
        else:
            for src, spec in sources.items():
                f = self.fixture(str(src), spec, (*path, "sources", src))
                if f is not None:
                    fixtures.append(f)
        raw = self.items(d.get("expect"), (*path, "expect"), "expectations")
        if not raw:
            self.p.add(path, "'expect' needs at least one expectation")
        expects = [self.expectation(v, (*path, "expect", j)) for j, v in enumerate(raw)]
        kept = [e for e in expects if e is not None]
        times = self.times(d, path, kept)
        if name is None:
            return None
        return TestCase(
            index,
            name,
            self.line(path),
            model,
            tuple(fixtures),
            tuple(times),
            tuple(kept),
            (*path, "model"),
        )


def read_test_file(path: str | Path) -> TestFile:
    """Read and check one test file; raises :class:`TestFileError` with every
    problem found (positioned) when it is not valid."""
    p = Path(path)
    shown = display(p)
    problems = ProblemList(shown)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TestFileError([Problem(shown, 1, 1, (), f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise TestFileError([Problem(shown, 1, 1, (), "the file is larger than 10 MiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TestFileError([Problem(shown, 1, 1, (), "not UTF-8 text")]) from None
    loaded = load_yaml(text, shown)
    problems = loaded.problems
    if problems.problems:
        raise TestFileError(problems.problems)
    r = _Reader(p.resolve(), problems)
    top = r.mapping(loaded.data, (), _TOP)
    config = _config_paths(r, top)
    tests = [
        r.test(i, v, ("tests", i))
        for i, v in enumerate(r.items(top.get("tests"), ("tests",), "tests"))
    ]
    if top and not top.get("tests"):
        problems.add((), "'tests' needs at least one test")
    names = [t.name for t in tests if t is not None]
    for t in tests:
        if t is not None and names.count(t.name) > 1:
            problems.add(("tests", t.index, "name"), f"two tests are named '{t.name}'")
    if problems.problems:
        raise TestFileError(problems.problems)
    return TestFile(p, shown, config, [t for t in tests if t is not None], problems)


def _config_paths(r: _Reader, top: dict[str, Any]) -> list[Path]:
    raw = top.get("config")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
        if top:
            r.p.add(
                ("config",),
                "'config' is the config directory (or files) this file tests, relative to it",
            )
        return []
    out = []
    for i, item in enumerate(items):
        q = (r.path.parent / item).resolve()
        if not q.exists():
            r.p.add(("config",) if isinstance(raw, str) else ("config", i), f"no such path: {item}")
        out.append(q)
    return out
