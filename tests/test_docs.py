"""The docs keep up with the schemas and the CLI (in the spirit of datasette's test_docs.py).

These tests fail when:

* a key anywhere in ``schemas/*.schema.json`` is not mentioned in docs/spec.md as `key`;
* a check type, metric type, drift method, source format (or any other enum value)
  is not documented as `value`;
* a schema property has no description (on itself or on its ``$ref`` target);
* an object schema with ``properties`` accepts unknown keys;
* a CLI command, option or choice is mentioned neither in docs/spec.md nor in README.md;
* a complete model or engine file shown in docs/spec.md does not validate;
* docs/layout.md (the map of the tree) names a module that does not exist, or leaves
  one out; the README's layout block names a folder that does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from rulesengine.cli import main
from rulesengine.spec.loader import load_report
from rulesengine.spec.yamlsrc import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC_MD = ROOT / "docs" / "spec.md"
README_MD = ROOT / "README.md"
KINDS = ("model", "engine")
SCHEMAS: dict[str, dict[str, Any]] = {
    kind: json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8"))
    for kind in KINDS
}

# Keywords whose values are one subschema, a list of subschemas, or a map of them.
_ONE = ("items", "additionalProperties", "if", "then", "else", "not", "contains", "propertyNames")
_MANY = ("oneOf", "anyOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "patternProperties")

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
_INLINE = re.compile(r"(`+)(.+?)\1", re.S)
_YAML_BLOCK = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)

# Values for the environment variables the examples use (the engine example's Apprise
# URLs are checked by Apprise, so they must look real). Others get a placeholder.
DOC_ENV = {
    "SLACK_TOKEN": "xoxb-1234-1234-4ddbc191d40ee098cbaae6f3523ada2d",
    "PD_INTEGRATION_KEY": "integrationkey",
    "PD_API_KEY": "apikey",
}
MINIMAL_MODEL = """\
version: 1
model: docs-minimal
sources:
  logs: {path: logs/*.parquet, timestamp: ts}
checks:
  - {name: volume, source: logs, type: row_count, critical: {below: 1}}
"""


# ----------------------------------------------------------------- helpers


def walk(
    node: Any, pointer: str = "#", via: tuple[str, ...] = ()
) -> Iterator[tuple[str, dict[str, Any], tuple[str, ...]]]:
    """Every subschema: (JSON pointer, schema, keywords passed on the way there)."""
    if not isinstance(node, dict):
        return  # boolean schemas (`false` in a type's `then`) hold no keys
    yield pointer, node, via
    for key in _ONE:
        if key in node:
            yield from walk(node[key], f"{pointer}/{key}", (*via, key))
    for key in _MANY:
        for i, sub in enumerate(node.get(key) or []):
            yield from walk(sub, f"{pointer}/{key}/{i}", (*via, key))
    for key in _MAP:
        for name, sub in (node.get(key) or {}).items():
            yield from walk(sub, f"{pointer}/{key}/{name}", (*via, key))


def resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    return target


def property_names() -> set[str]:
    names: set[str] = set()
    for schema in SCHEMAS.values():
        for _, node, _ in walk(schema):
            names.update(node.get("properties") or {})
    return names


def enum_values() -> dict[str, set[str]]:
    """pointer -> the string values of its enum."""
    out: dict[str, set[str]] = {}
    for kind, schema in SCHEMAS.items():
        for pointer, node, _ in walk(schema):
            values = {v for v in node.get("enum") or [] if isinstance(v, str)}
            if values:
                out[f"{kind}.schema.json{pointer}"] = values
    return out


def inline_code(markdown: str) -> set[str]:
    """The text of every inline code span outside fenced blocks."""
    prose = _FENCE.sub("", markdown)
    return {m.group(2).strip() for m in _INLINE.finditer(prose)}


def mentioned(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def complete_examples(markdown: str) -> list[tuple[int, str]]:
    """(line number, text) of each ```yaml block that is a whole file (starts with version: 1)."""
    out = []
    for m in _YAML_BLOCK.finditer(markdown):
        body = m.group(1)
        first = next(
            (ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")),
            "",
        )
        if first.strip() == "version: 1" or first.startswith("version: 1 "):
            out.append((markdown.count("\n", 0, m.start()) + 1, body))
    return out


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def spec_md() -> str:
    assert SPEC_MD.is_file(), "docs/spec.md is missing"
    return SPEC_MD.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documented(spec_md: str) -> set[str]:
    return inline_code(spec_md)


# ----------------------------------------------------------------- keys and values


@pytest.mark.parametrize("name", sorted(property_names()))
def test_schema_key_is_documented(name: str, documented: set[str]) -> None:
    assert name in documented, f"schema key `{name}` is not mentioned in docs/spec.md"


def _enum_of(kind: str, *path: str) -> list[str]:
    node: Any = SCHEMAS[kind]
    for part in path:
        node = node[part]
    return list(node["enum"])


KEY_ENUMS = {
    "check type": _enum_of("model", "$defs", "check", "properties", "type"),
    "metric type": _enum_of("model", "$defs", "metric", "properties", "type"),
    "drift method": _enum_of("model", "$defs", "drift", "properties", "method"),
    "source format": _enum_of("model", "$defs", "source", "properties", "format"),
}


@pytest.mark.parametrize(
    ("what", "value"), [(what, v) for what, values in KEY_ENUMS.items() for v in values]
)
def test_type_method_and_format_are_documented(what: str, value: str, documented: set[str]):
    assert value in documented, f"{what} `{value}` is not documented in docs/spec.md"


def test_every_other_enum_value_is_documented(documented: set[str]) -> None:
    missing = {
        pointer: sorted(values - documented)
        for pointer, values in enum_values().items()
        if values - documented
    }
    assert not missing, f"enum values not documented in docs/spec.md as `value`: {missing}"


# ----------------------------------------------------------------- schema hygiene


def test_every_property_has_a_description() -> None:
    missing = []
    for kind, schema in SCHEMAS.items():
        for pointer, node, via in walk(schema):
            if via and via[-1] == "if":
                continue  # a condition such as {type: {const: null_rate}}, not a key
            for name, sub in (node.get("properties") or {}).items():
                if not isinstance(sub, dict):
                    continue  # `false`: the key does not apply to this type
                text = sub.get("description") or resolve(schema, sub).get("description")
                if not (isinstance(text, str) and text.strip()):
                    missing.append(f"{kind}.schema.json{pointer}/properties/{name}")
    assert not missing, "properties without a description:\n" + "\n".join(missing)


def test_objects_with_properties_reject_unknown_keys() -> None:
    open_objects = []
    for kind, schema in SCHEMAS.items():
        for pointer, node, via in walk(schema):
            if not node.get("properties") or {"if", "then", "else"} & set(via):
                continue  # if/then only constrain an object defined elsewhere
            if node.get("additionalProperties") is not False:
                open_objects.append(f"{kind}.schema.json{pointer}")
    assert not open_objects, "objects that accept unknown keys:\n" + "\n".join(open_objects)


def test_walk_sees_nested_definitions() -> None:
    names = property_names()
    # a key inside an item of an additionalProperties map inside $defs, and one behind oneOf
    assert {"start", "end", "offset", "urls", "above", "no_data"} <= names


# ----------------------------------------------------------------- command line


def _cli_mentions() -> list[Any]:
    """pytest params (what, text that must appear) for every command, option and choice."""
    out: list[Any] = []

    def params(command: click.Command, label: str) -> None:
        for param in command.params:
            if isinstance(param, click.Option):
                opts = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
                for opt in opts or param.opts:
                    out.append(pytest.param(f"option {opt} of {label}", opt, id=f"{label} {opt}"))
            if isinstance(param.type, click.Choice):
                for choice in param.type.choices:
                    what = f"choice {choice!r} of {param.name} in {label}"
                    out.append(pytest.param(what, str(choice), id=f"{label} {choice}"))

    params(main, "rulesengine")
    for name, command in sorted(main.commands.items()):
        label = f"rulesengine {name}"
        out.append(pytest.param(f"command {label}", label, id=label))
        params(command, label)
    return out


@pytest.mark.parametrize(("what", "text"), _cli_mentions())
def test_cli_is_documented(what: str, text: str, spec_md: str) -> None:
    readme = README_MD.read_text(encoding="utf-8") if README_MD.is_file() else ""
    assert mentioned(text, spec_md) or mentioned(text, readme), (
        f"{what} is mentioned neither in docs/spec.md nor in README.md"
    )


# ----------------------------------------------------------------- examples


def test_every_yaml_example_parses(spec_md: str) -> None:
    bad = []
    for m in _YAML_BLOCK.finditer(spec_md):
        line = spec_md.count("\n", 0, m.start()) + 1
        parsed = load_yaml(m.group(1), f"docs/spec.md:{line}")
        bad.extend(p.render() for p in parsed.problems.problems)
    assert not bad, "\n".join(bad)


def _env_for(text: str) -> dict[str, str]:
    names = re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)
    return {name: DOC_ENV.get(name, "doc-example") for name in names}


def _write_example(text: str, tmp: Path) -> Path:
    """Write a whole-file example as a config; return the path to validate."""
    data = load_yaml(text, "example").data
    assert isinstance(data, dict), "a complete example must be a mapping"
    if "model" in data:
        (tmp / "model.yaml").write_text(text, encoding="utf-8")
        return tmp / "model.yaml"
    (tmp / "engine.yaml").write_text(text, encoding="utf-8")
    (tmp / "models").mkdir()
    (tmp / "models" / "minimal.yaml").write_text(MINIMAL_MODEL, encoding="utf-8")
    for receiver in (data.get("receivers") or {}).values():
        config = receiver.get("config") if isinstance(receiver, dict) else None
        if isinstance(config, str) and "://" not in config:
            (tmp / config).parent.mkdir(parents=True, exist_ok=True)
            (tmp / config).write_text("urls:\n  - json://localhost/hook\n", encoding="utf-8")
    return tmp


def _examples() -> list[Any]:
    text = SPEC_MD.read_text(encoding="utf-8") if SPEC_MD.is_file() else ""
    return [pytest.param(body, id=f"spec.md:{line}") for line, body in complete_examples(text)]


@pytest.mark.parametrize("example", _examples())
def test_complete_example_validates(example: str, tmp_path: Path) -> None:
    path = _write_example(example, tmp_path)
    report = load_report([path], _env_for(example))
    assert not report.problems, "\n".join(p.render() for p in report.problems)
    assert report.config is not None


def test_docs_show_a_complete_model_and_engine_file(spec_md: str) -> None:
    kinds = {
        "model" if "model" in (load_yaml(body, "x").data or {}) else "engine"
        for _, body in complete_examples(spec_md)
    }
    assert kinds == {"model", "engine"}


LAYOUT_MD = ROOT / "docs" / "layout.md"


def test_the_layout_map_matches_the_tree() -> None:
    """Every module of the package is on the map, and everything on the map exists."""
    text = LAYOUT_MD.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:rulesengine/)?[\w/]+\.py)`", text))
    package = ROOT / "rulesengine"
    mapped = {n if n.startswith("rulesengine/") else f"rulesengine/{n}" for n in named}
    mapped = {
        n for n in mapped if not n.startswith(("rulesengine/examples/", "rulesengine/tests/"))
    }
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for p in package.rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    }
    assert sorted(on_disk - mapped) == [], "modules missing from docs/layout.md"
    assert sorted(mapped - on_disk) == [], "docs/layout.md names modules that do not exist"
    assert (ROOT / "examples" / "demo.py").is_file() and "`examples/demo.py`" in text


def test_the_readme_layout_names_real_paths() -> None:
    block = README_MD.read_text(encoding="utf-8").split("## Layout", 1)[1].split("```")[1]
    for line in block.splitlines():
        m = re.match(r"\s{0,2}([\w.]+/?(?:[\w.]+)?)\s{2,}", line)
        if m and (m.group(1).endswith("/") or m.group(1).endswith(".py")):
            first = m.group(1)
            where = ROOT / first if line.startswith(first) else ROOT / "rulesengine" / first
            assert where.exists(), f"README layout names {first}, which does not exist"


def test_the_readme_quick_start_uses_files_that_exist() -> None:
    """The README's first command runs the demo generator from examples/ (it is not
    installed) and then the engine on configs/."""
    readme = README_MD.read_text(encoding="utf-8")
    command = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    scripts = re.findall(r"python (\S+\.py)", command)
    assert scripts == ["examples/demo.py"]
    assert all((ROOT / s).is_file() for s in scripts)
    assert "rulesengine run configs/" in command
