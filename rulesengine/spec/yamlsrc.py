"""Safe YAML loading that keeps the position of every key and value.

PyYAML's SafeLoader composes the document into nodes (which carry marks); we build
plain Python values from the nodes ourselves so that:

* only the JSON-compatible core tags are accepted (``!!python/...``, ``!!binary``,
  ``!!set`` and custom tags are errors, never objects);
* duplicate keys are errors;
* booleans follow YAML 1.2 (``yes``/``no``/``on``/``off`` stay strings, so a
  country code ``NO`` is not ``false``), and dates stay strings;
* every key path maps to the line and column where the user wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from rulesengine.errors import KeyPath, Pos, Problem, ProblemList

# Bounds on what a spec may be, checked while reading it, before any recursive step
# (substitution, JSON Schema, semantic checks) sees the data. See docs/spec.md, Limits.
MAX_NODES = 200_000  # values after expanding aliases: guards against "billion laughs"
MAX_DEPTH = 64  # levels of lists and maps, also through aliases (real specs use < 10)
MAX_KEY = 256  # characters in a mapping key (names have their own bound, 128, in the schema)
MAX_TEXT_CHARS = 4 * 1024 * 1024  # characters in a document (the loader bounds bytes)
TOO_DEEP = f"the document nests too deeply: more than {MAX_DEPTH} levels of lists or maps"

# YAML 1.2 core schema: no yes/no/on/off booleans, no sexagesimal 12:30 numbers,
# no 1_000 separators, and 1e-3 is a float.
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_REPLACED = (
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
)


class _TooDeep(yaml.composer.ComposerError):
    """Raised by the composer at the first collection nested beyond MAX_DEPTH."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema for scalars and no timestamps, and a
    nesting bound checked while composing (the composer recurses once per level)."""

    _depth = 0

    @contextmanager
    def _nested(self) -> Iterator[None]:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooDeep(None, None, TOO_DEEP, self.peek_event().start_mark)
        try:
            yield
        finally:
            self._depth -= 1

    def compose_sequence_node(self, anchor: str | None) -> yaml.SequenceNode:
        with self._nested():
            return super().compose_sequence_node(anchor)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        with self._nested():
            return super().compose_mapping_node(anchor)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:  # type: ignore[override]
        text = str(self.construct_scalar(node)).lower()
        if text.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        if text == ".nan":
            return float("nan")
        return float(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx, _firsts in (
    ("tag:yaml.org,2002:bool", _BOOL_12, "tTfF"),
    ("tag:yaml.org,2002:int", _INT_12, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT_12, "-+.0123456789"),
):
    for _first in _firsts:
        _Loader.yaml_implicit_resolvers.setdefault(_first, []).append((_tag, _rx))

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"


def _pos(mark: Any) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


@dataclass
class LoadedYaml:
    """A document's data plus where each part of it was written."""

    data: Any
    problems: ProblemList
    # paths of plain (unquoted) scalars: a whole-value ${VAR} there is re-typed
    plain: set[KeyPath] = field(default_factory=set)
    # paths whose value was refused (a tag, an alias bomb): already reported, so
    # later stages say nothing more about them
    refused: set[KeyPath] = field(default_factory=set)


def resolve_plain_scalar(text: str) -> Any:
    """Type a plain scalar the way our loader would (int, float, bool, null, str)."""
    tag = _Loader.resolve(_Loader, yaml.ScalarNode, text, (True, False))
    node = yaml.ScalarNode(tag, text)
    return _Loader.construct_object(_Loader(""), node) if tag in _SCALAR_TAGS else text


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document. Syntax errors and forbidden constructs become
    positioned problems; the data is ``None`` when nothing usable was parsed."""
    problems = ProblemList(file)
    out = LoadedYaml(None, problems)
    if len(text) > MAX_TEXT_CHARS:
        problems.add(
            (), f"the file is too large ({len(text)} characters; at most {MAX_TEXT_CHARS})"
        )
        return out
    composed = _compose(text, problems)
    if composed is None:
        return out
    loader, node = composed
    try:
        out.data = _Builder(loader, problems, out.plain, out.refused).build(node, ())
    except RecursionError:  # a last resort: the builder's own depth bound comes first
        problems.add((), TOO_DEEP)
    return out


def _compose(text: str, problems: ProblemList) -> tuple[_Loader, yaml.Node] | None:
    """The loader and the document's node tree (aliases not yet expanded), or None
    with a problem: no YAML, a control character, nesting too deep, an empty file."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
    except (yaml.YAMLError, RecursionError) as exc:
        pos, message = _unreadable(exc, text)
        if pos is not None:
            problems.positions[()] = pos
        problems.add((), message)
        return None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        problems.add((), "the file is empty")
        return None
    return loader, node


def _unreadable(exc: yaml.YAMLError | RecursionError, text: str) -> tuple[Pos | None, str]:
    """Where (when known) and why ``text`` is no document we can read."""
    if isinstance(exc, _TooDeep):
        return _pos(exc.problem_mark), TOO_DEEP
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}: {what}"
        lines = text.splitlines()
        if mark and mark.line < len(lines) and "${" in lines[mark.line] and "flow" in what:
            what += ' (inside [...] or {...}, quote a value holding ${VAR}: "${VAR}")'
        return (_pos(mark) if mark else Pos(1, 1)), f"invalid YAML: {what}"
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[0])
        return Pos(line, col), (
            f"invalid character U+{char:04X} (a control character): specs are text "
            "(remove control characters)"
        )
    if isinstance(exc, RecursionError):  # a last resort: MAX_DEPTH stops the composer first
        return None, TOO_DEEP
    return None, f"invalid YAML: {exc}"  # e.g. a second document


class _Builder:
    """Plain values from composed nodes, recording positions, plain scalars and refused
    paths on the way, within MAX_NODES values and MAX_DEPTH levels."""

    def __init__(
        self, loader: _Loader, problems: ProblemList, plain: set[KeyPath], refused: set[KeyPath]
    ) -> None:
        self.loader = loader
        self.problems = problems
        self.plain = plain
        self.refused = refused
        self.count = 0
        self.exploded = False
        self.too_deep = False

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.count += 1
        self.problems.positions.setdefault(path, _pos(node.start_mark))
        if self.count > MAX_NODES:
            if not self.exploded:
                self.exploded = True
                self.problems.add(
                    path,
                    f"the document expands to more than {MAX_NODES} values (too many aliases?)",
                )
            self.refused.add(path)
            return None
        if len(path) >= MAX_DEPTH and isinstance(node, yaml.CollectionNode):
            # deeper than the composer saw: aliases nest one part inside another (or
            # inside itself); refused like an alias bomb, and reported once
            if not self.too_deep:
                self.too_deep = True
                self.problems.add(path, TOO_DEEP + " (through aliases)")
            self.refused.add(path)
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != SEQ_TAG:
                return self._bad_tag(node, path)
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if node.tag not in _SCALAR_TAGS:
            return self._bad_tag(node, path)
        if node.style is None:
            self.plain.add(path)
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.constructor.ConstructorError, ValueError) as exc:
            self.problems.add(path, f"cannot read value: {exc}")
            return None

    def _bad_tag(self, node: yaml.Node, path: KeyPath) -> None:
        self.refused.add(path)
        tag = node.tag
        short = tag.replace("tag:yaml.org,2002:", "!!")
        self.problems.add(
            path,
            f"tag '{short}' is not allowed: specs hold only plain maps, lists, strings, "
            "numbers, booleans and null",
        )
        return None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any] | None:
        if node.tag != MAP_TAG:
            return self._bad_tag(node, path)
        explicit = {id(k) for k, _ in node.value}  # the keys written here, not merged in
        written = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        try:
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys
        except yaml.constructor.ConstructorError as exc:
            self.problems.add(path, f"invalid merge key: {exc.problem}")
            return {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.problems.positions.setdefault(path, _pos(node.start_mark))
                self.problems.problems.append(
                    _at(self.problems.file, key_node, path, "keys must be plain strings")
                )
                continue
            key = key_node.value  # keys are names: always their text
            child = (*path, key)
            if len(key) > MAX_KEY:
                self.problems.problems.append(
                    _at(
                        self.problems.file,
                        key_node,
                        path,
                        f"key '{key[:40]}…' is too long ({len(key)} characters; at most {MAX_KEY})",
                    )
                )
                continue
            if id(key_node) not in explicit:
                # from a merge: earlier merges win, and a key written here wins over
                # all of them (skipped now rather than built and removed later)
                if key in result or key in written:
                    continue
            elif key in result:
                first = self.problems.key_positions[child]
                self.problems.problems.append(
                    _at(
                        self.problems.file,
                        key_node,
                        child,
                        f"duplicate key '{key}' (first defined at line {first.line})",
                    )
                )
                continue
            self.problems.key_positions[child] = _pos(key_node.start_mark)
            result[key] = self.build(value_node, child)
        return result


def _at(file: str, node: yaml.Node, path: KeyPath, message: str) -> Problem:
    pos = _pos(node.start_mark)
    return Problem(file, pos.line, pos.col, path, message)
