"""Property tests: whatever a user writes, loading reports problems and never raises.

Starting from the valid example configs (configs/models/*.yaml and configs/engine.yaml),
hypothesis mutates either the parsed data (deleted keys, wrong types, typo'd keys,
reordered sections, odd unicode, huge ints, NaN/inf, deeply nested lists, ${VAR}
references) or the YAML text itself (inserted, deleted and replaced characters and
bytes, duplicated or swapped lines, truncation, appended junk). Every outcome must be a
LoadReport whose problems are positioned (line >= 1, col >= 1, within the file) and
carry a non-empty message.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulesengine.spec.loader import LoadReport, load_report
from rulesengine.spec.yamlsrc import load_yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
MODEL_TEXTS = {p.name: p.read_text("utf-8") for p in sorted((CONFIGS / "models").glob("*.yaml"))}
ENGINE_TEXT = (CONFIGS / "engine.yaml").read_text("utf-8")
# parsed the way rulesengine parses (YAML 1.2 booleans: `on: request_id` is a key "on")
MODEL_DATA = {name: load_yaml(text, name).data for name, text in MODEL_TEXTS.items()}
ENGINE_DATA = load_yaml(ENGINE_TEXT, "engine.yaml").data

# PROPERTY_EXAMPLES=5000 pytest tests/spec/test_properties.py  for a longer hunt
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ENGINE_SETTINGS = settings(SETTINGS, max_examples=max(1, EXAMPLES // 2))

ENV_NAMES = ["HOME_DIR", "WINDOW", "MIN_ROWS", "SLACK_TOKEN", "ML_TEAM_WEBHOOK", "EMPTY"]

# ----------------------------------------------------------------- building blocks

text_chars = st.characters(exclude_categories=("Cs",))  # no lone surrogates: files are UTF-8
odd_strings = st.one_of(
    st.text(text_chars, max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "0s",
            "1h",
            "-1h",
            "1e400",
            "${WINDOW}",
            "${MIN_ROWS:-500}",
            "${UNSET_VAR}",
            "${X:-}",
            "$${LITERAL}",
            "${",
            "${1BAD}",
            "yes",
            "NO",
            "~",
            "null",
            "SELECT 1",
            "read_csv('/etc/passwd')",
            "avg(",
            "(SELECT count(*) FROM t)",
            "[a-",
            "slack://",
            "::",
            "\u202e\u200b\ufeff",
            "\x00\x1b\x7f",
            "💥🔥",
            "Ünïcödé ✓ 日本語",
            "a" * 2000,
        ]
    ),
)


def nested_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0]),
    odd_strings,
)
odd_values = st.one_of(
    odd_scalars,
    st.recursive(
        odd_scalars,
        lambda kids: (
            st.lists(kids, max_size=4)
            | st.dictionaries(st.text(text_chars, max_size=12), kids, max_size=4)
        ),
        max_leaves=12,
    ),
    # deep lists, up to past the loader's nesting limit
    st.integers(1, 120).map(nested_list),  # yaml.safe_dump recurses: keep it shallow enough
)
env_strategy = st.dictionaries(st.sampled_from(ENV_NAMES), odd_strings, max_size=4)


def all_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a key or list item in the document."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out.extend(all_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out.extend(all_paths(v, (*prefix, i)))
    return out


def parent_of(doc: Any, path: tuple) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def typo(draw: st.DrawFn, key: str) -> str:
    if not key:
        return "x"
    i = draw(st.integers(0, len(key) - 1))
    kind = draw(st.sampled_from(["drop", "double", "swap", "upper", "replace"]))
    if kind == "drop":
        return key[:i] + key[i + 1 :] or "k"
    if kind == "double":
        return key[:i] + key[i] + key[i:]
    if kind == "swap" and i + 1 < len(key):
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    if kind == "upper":
        return key.upper()
    return key[:i] + draw(st.characters(exclude_categories=("Cs",))) + key[i + 1 :]


@st.composite
def mutated_data(draw: st.DrawFn, base: Any) -> Any:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 5))):
        paths = all_paths(doc)
        op = draw(
            st.sampled_from(
                ["delete", "replace", "typo", "reorder", "wrap", "duplicate", "insert", "root"]
            )
        )
        if op == "root":
            doc = draw(st.one_of(odd_values, st.just([doc]), st.just({"root": doc})))
            continue
        if op == "reorder" and isinstance(doc, dict):
            keys = draw(st.permutations(list(doc)))
            doc = {k: doc[k] for k in keys}
            continue
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent, last = parent_of(doc, path), path[-1]
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(odd_values)
        elif op == "typo" and isinstance(parent, dict):
            value = parent.pop(last)
            parent[typo(draw, str(last))] = value
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"value": parent[last]}]))
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(int(last), copy.deepcopy(parent[last]))
        elif op == "insert" and isinstance(parent[last], dict):
            parent[last][draw(st.text(text_chars, max_size=12))] = draw(odd_values)
        elif op == "insert" and isinstance(parent[last], list):
            parent[last].append(draw(odd_values))
    return doc


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)


snippets = st.one_of(
    st.text(st.sampled_from(list(":-[]{}&*!|>#'\"%@`,? \t\n$\\")), min_size=1, max_size=6),
    st.text(text_chars, min_size=1, max_size=8),
    st.sampled_from(
        [
            ": ",
            "- ",
            "&a ",
            "*a",
            "*undefined",
            "<<: *a\n",
            "<<: [1, 2]\n",
            "!!python/object/apply:os.system ['id'] ",
            "!!binary aGk= ",
            "!custom ",
            "!!set ",
            "!!timestamp 2020-01-01 ",
            "---\n",
            "...\n",
            "%YAML 1.1\n",
            "%TAG ! tag:x,2000:\n",
            "? [a, b]\n: c\n",
            "${WINDOW}",
            "${UNSET_VAR}",
            "${X:-1}",
            "${",
            ".nan",
            ".inf",
            "-.inf",
            "1e400",
            "9" * 400,
            "\ufeff",
            "\u2028",
            "\x85",
            "\x00",
            "\x1b[31m",
            "\x08",
            "\r\n",
            "\r",
            "💥",
            "\u202e",
            "  " * 40,
            "[" * 20,
            "{" * 20,
            "\nextra: key\n",
            "\nversion: 2\n",
        ]
    ),
)


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 6))):
        op = draw(
            st.sampled_from(
                ["insert", "delete", "replace", "truncate", "append", "dup_line", "swap", "indent"]
            )
        )
        pos = draw(st.integers(0, len(text)))
        lines = text.split("\n")
        if op == "insert":
            text = text[:pos] + draw(snippets) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)) :]
        elif op == "replace":
            text = text[:pos] + draw(snippets) + text[pos + draw(st.integers(1, 10)) :]
        elif op == "truncate":
            text = text[:pos]
        elif op == "append":
            text += draw(snippets)
        elif op == "dup_line":
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == "swap":
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == "indent":
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t", "      "])) + lines[i].lstrip()
            text = "\n".join(lines)
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, text: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "flip", "delete"]))
        if op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            del data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data)


# ----------------------------------------------------------------- the invariants


def check(report: Any, texts: dict[str, str]) -> None:
    """texts: file name (as reported) → its content, for files whose size we know."""
    assert isinstance(report, LoadReport)
    assert isinstance(report.problems, list)
    for p in report.problems:
        assert isinstance(p.line, int) and p.line >= 1, p
        assert isinstance(p.col, int) and p.col >= 1, p
        assert isinstance(p.message, str) and p.message.strip(), p
        assert p.file, p
        assert "Traceback" not in p.message, p
        rendered = p.render()
        assert rendered.startswith(f"{p.file}:{p.line}:{p.col}: "), rendered
        json.dumps(p.as_dict(), ensure_ascii=False)
        name = Path(p.file).name
        if name in texts:
            n_lines = len(texts[name].splitlines()) or 1
            assert p.line <= n_lines + 1, (p, n_lines)
    if report.ok:
        assert report.config is not None
    else:
        assert report.problems


def load(paths: list[Path], env: dict[str, str]) -> LoadReport:
    return load_report(paths, env=env)


def load_model_text(name: str, text: str | bytes, env: dict[str, str]) -> LoadReport:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return load([path], env)


def load_engine_text(text: str, env: dict[str, str]) -> LoadReport:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "models").mkdir()
        for name, model in MODEL_TEXTS.items():
            (folder / "models" / name).write_text(model, encoding="utf-8")
        (folder / "engine.yaml").write_text(text, encoding="utf-8")
        return load([folder], env)


# ----------------------------------------------------------------- the properties

model_names = st.sampled_from(sorted(MODEL_TEXTS))


@SETTINGS
@given(data=st.data(), name=model_names, env=env_strategy)
def test_mutated_model_data_never_raises(data: st.DataObject, name: str, env: dict[str, str]):
    doc = data.draw(mutated_data(MODEL_DATA[name]))
    text = dump(doc)
    check(load_model_text(name, text, env), {name: text})


@SETTINGS
@given(data=st.data(), name=model_names, env=env_strategy)
def test_mutated_model_text_never_raises(data: st.DataObject, name: str, env: dict[str, str]):
    text = data.draw(mutated_text(MODEL_TEXTS[name]))
    check(load_model_text(name, text, env), {name: text})


@settings(SETTINGS, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data(), name=model_names)
def test_mutated_model_bytes_never_raise(data: st.DataObject, name: str):
    raw = data.draw(mutated_bytes(MODEL_TEXTS[name]))
    check(load_model_text(name, raw, {}), {name: raw.decode("utf-8", "replace")})


@ENGINE_SETTINGS
@given(data=st.data(), env=env_strategy, as_text=st.booleans())
def test_mutated_engine_never_raises(data: st.DataObject, env: dict[str, str], as_text: bool):
    if as_text:
        text = data.draw(mutated_text(ENGINE_TEXT))
    else:
        text = dump(data.draw(mutated_data(ENGINE_DATA)))
    check(load_engine_text(text, env), {"engine.yaml": text})


def test_unmutated_configs_are_valid():
    """The starting points are valid, so problems above come from the mutations."""
    for name, text in MODEL_TEXTS.items():
        report = load_model_text(name, text, {})
        assert report.ok, [p.render() for p in report.problems]
        report = load_model_text(name, dump(MODEL_DATA[name]), {})
        assert report.ok, [p.render() for p in report.problems]
    assert load_engine_text(ENGINE_TEXT, {}).ok
    assert load_engine_text(dump(ENGINE_DATA), {}).ok


def test_deeply_nested_yaml_is_a_problem_not_a_crash():
    """PyYAML's composer recurses once per nesting level; the loader must turn that
    into a problem (it used to raise RecursionError out of load_report)."""
    for nested in ("[" * 2000 + "]" * 2000, "\n" + "".join(" " * i + "-\n" for i in range(1500))):
        text = MODEL_TEXTS["fraud-detector.yaml"] + "description: " + nested + "\n"
        report = load_model_text("fraud-detector.yaml", text, {})
        check(report, {"fraud-detector.yaml": text})
        assert not report.ok
        assert any("nests too deeply" in p.message for p in report.problems)
