"""Fuzz the spec loader with YAML written from scratch (issue 9: "a hypothesis-based
fuzz test ... covering the spec loader"; its crash corpus is kept as fixtures).

test_properties.py mutates the valid example configs; this test writes whole documents:
mappings of known and unknown keys, wrong types, deep nesting, huge numbers and
durations, odd strings and unicode, anchors, aliases and merge keys (defined, undefined,
self-referencing), duplicated keys, tabs, control characters, random bytes and invalid
UTF-8. Each becomes a model file or the engine file of a config directory, goes through
:func:`rulesengine.spec.validate.validate` and :func:`rulesengine.spec.loader.load`, and the
only outcomes allowed are a valid config or positioned problems (a ``SpecError`` carrying
them) - never any other exception.

Every input that once crashed the loader is kept in ``tests/fixtures/fuzz_corpus/``
(``NAME.model.yaml`` or ``NAME.engine.yaml``; ``NAME.xfail`` holds the reason while the
fix is pending) and replayed by :func:`test_corpus_replays_cleanly`.

FUZZ_EXAMPLES=5000 pytest tests/spec/test_loader_fuzz.py   for a longer hunt.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulesengine.errors import SpecError
from rulesengine.spec.loader import LoadReport, load
from rulesengine.spec.validate import validate

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "fuzz_corpus"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID_MODEL = """version: 1
model: fuzz
sources:
  requests: {path: logs/*.parquet, timestamp: ts}
checks:
  - {name: volume, source: requests, type: row_count, critical: {below: 10}}
"""
VALID_ENGINE = "version: 1\n"
ENV = {"WINDOW": "1h", "BIG": "99999999999999999999d", "TOKEN": "xoxb-secret-token-1234"}


def schema_keys() -> list[str]:
    """Every key the schemas know, so documents hit real branches of the validator."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(k for k in node.get("properties", {}) if isinstance(k, str))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for kind in ("model", "engine"):
        walk(json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text("utf-8")))
    return sorted(keys)


KNOWN_KEYS = schema_keys()
text_chars = st.characters(exclude_categories=("Cs",))
keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.sampled_from(KNOWN_KEYS).map(lambda k: k[:-1] or "x"),  # typos
    st.text(text_chars, min_size=1, max_size=12),
    st.sampled_from(["<<", "?", "-", "on", "1", "null", "k" * 300, "a b", "ü", "${TOKEN}"]),
)
scalars = st.one_of(
    st.integers(),
    st.sampled_from(["99999999999999999999", "1e400", "-0", "0x1F", "0o17", ".nan", "-.inf"]),
    st.floats(),
    st.booleans(),
    st.sampled_from(["null", "~", "yes", "NO", "2026-11-27", "12:30", "1_000"]),
    st.builds(
        lambda n, u: f"{n}{u}",
        st.one_of(st.integers(0, 100), st.integers(0, 10**30)),
        st.sampled_from(["ms", "s", "m", "h", "d", "w", "x", ""]),
    ),
    st.sampled_from(["${WINDOW}", "${BIG}", "${TOKEN}", "${UNSET}", "${X:-1h}", "${"]),
    st.sampled_from(["sum(x)", "avg(", "read_csv('/etc/passwd')", "[a-", "json://127.0.0.1:9"]),
    st.text(text_chars, max_size=30).map(json.dumps),  # a quoted string, any unicode
    st.text(st.characters(codec="ascii", categories=("L", "N")), max_size=20),  # plain
    st.sampled_from(["r" * 300, "x" * 70, "'", '"', "#", "&", "*", "!", "|", ">", "%"]),
)


class Doc:
    """Renders a random tree as YAML text, with anchors, aliases and merge keys."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.anchors: list[str] = []

    def value(self, depth: int, indent: int) -> str:
        choice = self.draw(st.integers(0, 9)) if depth < 6 else 0
        if choice <= 3:
            scalar = self.draw(scalars)
            return scalar if isinstance(scalar, str) else str(scalar)
        if choice == 4 and self.anchors:
            return "*" + self.draw(st.sampled_from([*self.anchors, "undefined"]))
        if choice == 5:
            deep = self.draw(st.integers(1, 120))
            return "[" * deep + self.draw(st.sampled_from(["", "1", "*a0"])) + "]" * deep
        anchor = ""
        if self.draw(st.booleans()):
            name = f"a{len(self.anchors)}"
            anchor = f"&{name} "
            self.anchors.append(name)
        if choice in (6, 7):
            return anchor + self.flow(depth)
        return anchor.rstrip() + "\n" + self.block(depth + 1, indent + 2)

    def flow(self, depth: int) -> str:
        items = self.draw(st.lists(st.integers(0, 1), max_size=4))
        if self.draw(st.booleans()):
            return "[" + ", ".join(self.value(depth + 1, 0).replace("\n", " ") for _ in items) + "]"
        pairs = [
            f"{json.dumps(self.draw(keys))}: {self.value(depth + 1, 0).replace(chr(10), ' ')}"
            for _ in items
        ]
        return "{" + ", ".join(pairs) + "}"

    def block(self, depth: int, indent: int) -> str:
        pad = " " * indent
        lines = []
        for _ in range(self.draw(st.integers(1, 5))):
            if self.draw(st.integers(0, 5)) == 0:
                lines.append(f"{pad}- {self.value(depth, indent + 2).lstrip()}")
                continue
            key = self.draw(keys)
            if key == "<<" and self.anchors:
                lines.append(f"{pad}<<: *{self.draw(st.sampled_from(self.anchors))}")
                continue
            shown = key if key.isidentifier() else json.dumps(key)
            lines.append(f"{pad}{shown}: {self.value(depth, indent)}")
            if self.draw(st.integers(0, 7)) == 0:  # the same key again
                lines.append(f"{pad}{shown}: {self.value(depth, indent)}")
        return "\n".join(lines)


# shaped documents: the right keys in the right places, with edge values in the slots,
# so that values reach the deeper stages (semantic checks, building the typed spec)
durations = st.one_of(
    st.sampled_from(["1h", "15m", "0s", "7d", "3650d", "3650d1ms", "1000000d", "520w10d"]),
    st.integers(0, 10**25).map(lambda n: f"{n}d"),
    st.sampled_from(["9" * 5000 + "s", "1s" * 40, "1.5h", "-1h", "${WINDOW}", "${BIG}"]),
)
names = st.one_of(
    st.sampled_from(["requests", "a", "A-1.b_c", "r" * 128, "r" * 129, "r" * 300, "ü", "-x", ""]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)
numbers = st.one_of(
    st.integers(), st.floats(), st.sampled_from(["10**400", "1e400", "${BIG}", "x"])
)
THRESHOLD_OPS = ["above", "below", "at_or_above", "at_or_below", "outside", "between", "x"]
MONITOR_TYPES = ["row_count", "null_rate", "freshness", "allowed_values", "quantile", "recall", "x"]


def slot(draw: Any, key: str) -> Any:
    """A value for ``key``: mostly of the kind the key takes, at its edges."""
    if draw(st.integers(0, 5)) == 0:
        return draw(scalars)
    if key in ("window", "delay", "every", "keep_firing_for", "offset", "wait", "repeat", "for"):
        return (
            draw(st.one_of(durations, st.integers(-1, 10**20))) if key == "for" else draw(durations)
        )
    if key in ("name", "source", "model", "column", "reference", "receivers"):
        value = draw(names)
        return [value] if key == "receivers" else value
    if key in ("warn", "critical", "resolve"):
        op = draw(st.sampled_from(THRESHOLD_OPS))
        n = draw(st.one_of(numbers, durations))
        return {op: [n, draw(numbers)] if op in ("outside", "between") else n}
    if key == "type":
        return draw(st.sampled_from(MONITOR_TYPES))
    return draw(st.one_of(numbers, names, st.lists(names, max_size=3)))


def flow(value: Any) -> str:
    """A value as YAML flow text; numbers spelled as strings stay plain (10**400 → a
    huge integer), everything else is quoted by JSON."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if value == "10**400":
        return "1" + "0" * 400
    if isinstance(value, str) and (value in ("1e400",) or value.startswith("${")):
        return value
    return json.dumps(value) if isinstance(value, str) else str(value)


@st.composite
def shaped_model(draw: Any) -> str:
    monitor_keys = [
        "name",
        "source",
        "type",
        "column",
        "window",
        "delay",
        "for",
        "keep_firing_for",
        "warn",
        "critical",
        "resolve",
        "reference",
        "q",
        "x",
    ]
    lines = ["version: 1", f"model: {flow(slot(draw, 'model'))}", "sources:"]
    lines.append(f"  {flow(draw(names))}: {{path: logs/*.parquet, timestamp: ts}}")
    ev = {k: slot(draw, k) for k in draw(st.sets(st.sampled_from(["every", "window", "delay"])))}
    lines.append(f"evaluation: {flow(ev)}")
    for section in draw(
        st.lists(st.sampled_from(["checks", "metrics", "kpis", "drift"]), max_size=3)
    ):
        lines.append(f"{section}:")
        for _ in range(draw(st.integers(1, 3))):
            item = {
                k: slot(draw, k) for k in draw(st.sets(st.sampled_from(monitor_keys), max_size=8))
            }
            lines.append(f"  - {flow(item)}")
    return "\n".join(lines) + "\n"


RECEIVER_TARGETS = [
    "['json://127.0.0.1:9/x']",
    "[]",
    "{urls: []}",
    "{config: a.yml}",
    "{config: " + "c" * 300 + "}",
]


@st.composite
def shaped_engine(draw: Any) -> str:
    receiver = draw(names)
    lines = [
        "version: 1",
        f"state: {flow(draw(st.sampled_from(['s.db', 's' * 300, 'a/' + 'b' * 256])))}",
    ]
    defaults = {
        k: slot(draw, k) for k in draw(st.sets(st.sampled_from(["every", "window", "delay"])))
    }
    lines.append(f"defaults: {flow(defaults)}")
    target = draw(st.sampled_from(RECEIVER_TARGETS))
    lines.append(f"receivers: {{{flow(receiver)}: {target}}}")
    route = {k: slot(draw, k) for k in draw(st.sets(st.sampled_from(["receivers", "match", "x"])))}
    lines.append(f"routes: [{flow(route)}]")
    grouping = {k: slot(draw, k) for k in draw(st.sets(st.sampled_from(["wait", "repeat", "x"])))}
    lines.append(f"grouping: {flow(grouping)}")
    return "\n".join(lines) + "\n"


@st.composite
def documents(draw: Any, role: str) -> bytes:
    doc = Doc(draw)
    shape = draw(st.integers(0, 2))
    if shape < 2:  # two thirds shaped: most edge values then reach the deeper stages
        text = draw(shaped_model() if role == "model" else shaped_engine())
    else:
        head = draw(st.sampled_from(["", VALID_MODEL, "version: 1\n", "version: 2\nmodel: m\n"]))
        text = head + doc.block(0, 0) + "\n"
    data = text.encode("utf-8")
    mutation = draw(st.integers(0, 9))
    if mutation == 0:  # random bytes somewhere, often invalid UTF-8 or control chars
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif mutation == 1:  # a tab in the indentation, or anywhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\t" + data[at:]
    elif mutation == 2:  # truncated
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == 3:  # a second document, or a directive
        data += draw(st.sampled_from([b"---\nb: 1\n", b"%YAML 1.1\n", b"...\n"]))
    return data


def write_case(folder: Path, data: bytes, role: str) -> Path:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    engine, model = (
        (data, VALID_MODEL.encode()) if role == "engine" else (VALID_ENGINE.encode(), data)
    )
    (folder / "engine.yaml").write_bytes(engine)
    (folder / "models" / "m.yaml").write_bytes(model)
    return folder


def check_outcome(folder: Path, data: bytes) -> None:
    """The whole contract: a config, or positioned problems; nothing else."""
    lines = data.count(b"\n") + 1
    report = validate([folder], env=ENV)
    assert isinstance(report, LoadReport)
    if report.config is None:
        assert report.errors
    for p in report.problems:
        assert p.line >= 1 and p.col >= 1, p
        assert p.message.strip(), p
        assert "xoxb-secret-token-1234" not in p.message, p  # never a value from the env
        if p.file.endswith("m.yaml") or p.file.endswith("engine.yaml"):
            assert p.line <= lines + 1, (p, lines)
    try:
        config = load([folder], env=ENV)
    except SpecError as exc:
        assert exc.problems and all(p.line >= 1 and p.col >= 1 for p in exc.problems)
    else:
        assert report.ok and config.models


@SETTINGS
@given(st.data(), st.sampled_from(["model", "engine"]))
def test_generated_documents_load_or_report_positioned_problems(data: Any, role: str):
    text = data.draw(documents(role), label="document")
    with tempfile.TemporaryDirectory() as tmp:
        check_outcome(write_case(Path(tmp), text, role), text)


def corpus_cases() -> list[Any]:
    out = []
    for path in sorted(CORPUS.glob("*.yaml")):
        name, role = path.name.split(".")[0], path.name.split(".")[-2]
        reason = CORPUS / f"{name}.xfail"
        marks = (
            [pytest.mark.xfail(strict=True, reason=reason.read_text("utf-8").strip())]
            if reason.is_file()
            else []
        )
        out.append(pytest.param(path, role, id=path.name, marks=marks))
    return out


def test_corpus_is_there():
    assert len(corpus_cases()) >= 5
    for path in CORPUS.glob("*.yaml"):
        assert path.name.split(".")[-2] in ("model", "engine"), path.name


@pytest.mark.parametrize(("path", "role"), corpus_cases())
def test_corpus_replays_cleanly(path: Path, role: str, tmp_path: Path):
    data = path.read_bytes()
    check_outcome(write_case(tmp_path, data, role), data)
    assert not validate([tmp_path], env=ENV).ok  # every corpus case is an invalid spec
