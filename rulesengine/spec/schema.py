"""JSON Schema validation with messages a person can act on.

``schemas/*.schema.json`` is the single source of structural truth. jsonschema
finds the errors; this module turns each into ``key.path: message`` at the
position where the user wrote the offending key or value, with did-you-mean
hints for unknown keys and enum values.

Importing jsonschema costs about a tenth of a second, a good part of a small
``rulesengine run``. A document found valid is remembered by a digest of the
schema and the document (:func:`remembered_valid`), so an unchanged config is not
validated, nor jsonschema imported, again. Documents with ``${VAR}`` values are
never remembered: their digest would be derived from the environment's secrets.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rulesengine.errors import KeyPath, ProblemList, did_you_mean, one_of

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

KINDS = ("model", "engine")

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def schema_text(kind: str) -> str:
    """The JSON Schema of ``model`` or ``engine`` files, as shipped."""
    name = f"{kind}.schema.json"
    packaged = resources.files("rulesengine").joinpath("_schemas").joinpath(name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "schemas" / name).read_text(encoding="utf-8")


@cache
def load_schema(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown schema kind {kind!r}")
    return json.loads(schema_text(kind))


# A duration's bound is a keyword of our own next to its pattern: JSON Schema cannot
# sum "1d12h", and editors skip unknown keywords. Its value is the longest duration
# allowed; rulesengine.durations holds the same bound (a test keeps them equal).
MAX_DURATION_KEYWORD = "x-max-duration"


def _max_duration(validator: Any, bound: Any, instance: Any, schema: dict[str, Any]) -> Any:
    from jsonschema.exceptions import ValidationError

    from rulesengine.durations import bound_problem

    why = bound_problem(instance) if isinstance(instance, str) else None
    if why:  # (a text that is no duration at all is the pattern's to report)
        yield ValidationError(why)


def _canonical(value: Any) -> Any:
    """A hashable stand-in equal for values JSON Schema calls equal (1 == 1.0, but
    true != 1; maps by content). Depth is bounded by the YAML loader's MAX_DEPTH."""
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, dict):
        return ("map", frozenset((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_canonical(v) for v in value))
    return ("scalar", value)


def first_repeat(items: list[Any]) -> Any:
    """The first item that equals an earlier one (or None), in linear time."""
    seen: set[Any] = set()
    for item in items:
        key = _canonical(item)
        if key in seen:
            return item
        seen.add(key)
    return None


def _unique_items(validator: Any, unique: Any, instance: Any, schema: dict[str, Any]) -> Any:
    """uniqueItems in linear time: jsonschema's own compares every pair when the
    items do not sort (maps, or numbers mixed with strings)."""
    from jsonschema.exceptions import ValidationError

    if unique and isinstance(instance, list) and len(instance) > 1:
        seen: set[Any] = set()
        for item in instance:
            key = _canonical(item)
            if key in seen:
                yield ValidationError("has non-unique elements")
                return
            seen.add(key)


@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    import jsonschema

    cls = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        {MAX_DURATION_KEYWORD: _max_duration, "uniqueItems": _unique_items},
    )
    return cls(load_schema(kind))


CACHE_ENV = "RULESENGINE_CACHE_DIR"  # where valid documents are remembered
_REMEMBER = 512  # digests kept


def cache_dir() -> Path:
    """``$RULESENGINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/rulesengine``, else
    ``~/.cache/rulesengine``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rulesengine"


def _digest(data: Any, kind: str) -> str:
    doc = json.dumps(data, sort_keys=True, ensure_ascii=True, default=repr)
    text = f"{kind}\0{schema_text(kind)}\0{doc}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _valid_file() -> Path:
    return cache_dir() / "valid-documents"


def remembered_valid(data: Any, kind: str) -> bool:
    """Whether this exact document was found valid against this schema before."""
    try:
        known = _valid_file().read_text(encoding="ascii").split()
        return _digest(data, kind) in known
    except (OSError, ValueError, TypeError, RecursionError):  # unreadable cache, odd data
        return False


def remember_valid(data: Any, kind: str) -> None:
    """Note a valid document; best effort (an unwritable cache is no error)."""
    path = _valid_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            known = path.read_text(encoding="ascii").split()
        except FileNotFoundError:
            known = []
        kept = [d for d in known if len(d) == 64][-(_REMEMBER - 1) :]
        known = [*kept, _digest(data, kind)]
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text("\n".join(known) + "\n", encoding="ascii")
        os.replace(tmp, path)
    except (OSError, ValueError, TypeError, RecursionError):
        return


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null (an empty value)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


_BOUND_OPS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


class _Renderer:
    """Words each jsonschema error as a problem at the user's key or value.

    :meth:`emit` hands an error to the method named for its keyword in ``_WORDING``.
    """

    def __init__(self, data: Any, problems: ProblemList, secret: set[KeyPath]) -> None:
        self.data = data
        self.problems = problems
        self.secret = secret
        self.reported: set[tuple[KeyPath, str]] = set()
        self.oversize: list[KeyPath] = []  # lists and maps beyond their maxItems/maxProperties

    def show(self, value: Any, path: KeyPath) -> str:
        if any(path[: i + 1] in self.secret for i in range(len(path))) or path in self.secret:
            return "(the value from the environment)"
        text = (
            json.dumps(value, ensure_ascii=False, default=str)
            if not isinstance(value, str)
            else f"'{value}'"
        )
        return text if len(text) <= 60 else text[:57] + "…'"

    def got(self, words: str, value: Any, path: KeyPath) -> str:
        """``expected a number, got a string 'x'``: a scalar is shown, anything else named."""
        text = f"expected {words}, got {_describe(value)}"
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text += f" {self.show(value, path)}"
        return text

    def at(self, path: KeyPath) -> Any:
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def kind_of(self, path: KeyPath) -> str:
        """``check type 'null_rate'`` for the monitor enclosing ``path``."""
        for cut in range(len(path), 0, -1):
            parent = self.at(path[:cut])
            if (
                isinstance(parent, dict)
                and isinstance(parent.get("type"), str)
                and path[0] in ("checks", "metrics")
            ):
                noun = "check" if path[0] == "checks" else "metric"
                return f"{noun} type '{parent['type']}'"
        return "this item"

    def walk(self, err: ValidationError) -> None:
        """Add the problems of one error: a bad key name is worded here, once per key
        (from its sub-errors); everything else by :meth:`emit`."""
        if err.validator == "propertyNames":
            path: KeyPath = tuple(err.absolute_path)
            for sub in err.context or []:
                name = sub.instance
                hint = sub.schema.get("x-hint") if isinstance(sub.schema, dict) else None
                self.problems.add(
                    (*path, name), f"'{name}' is not {hint or 'a valid name'}", key=True
                )
            return
        self.emit(err)

    def emit(self, err: ValidationError) -> None:
        path: KeyPath = tuple(err.absolute_path)
        if err.schema is False or err.validator is None:
            self._forbidden(path)
            return
        schema = err.schema if isinstance(err.schema, dict) else {}
        # x-max-duration (worded already), or a keyword we have no wording for
        word = _WORDING.get(str(err.validator), _Renderer._as_given)
        word(self, err, path, schema)

    def _as_given(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        self.problems.add(path, err.message)

    def _forbidden(self, path: KeyPath) -> None:
        # jsonschema leaves the key out of the path of a `false` property schema:
        # find which keys of the item the type-specific `then` forbids
        item = self.at(path)
        if len(path) != 2 or path[0] not in _ITEM_DEFS or not isinstance(item, dict):
            return
        for key in banned_keys(_ITEM_DEFS[str(path[0])], item.get("type"), item):
            if (path, key) not in self.reported:
                self.reported.add((path, key))
                self.problems.add(
                    (*path, key), f"key '{key}' does not apply to {self.kind_of(path)}", key=True
                )

    def _unknown_keys(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        allowed = list(schema.get("properties", {}))
        for key in err.instance:
            if key in allowed:
                continue
            hint = did_you_mean(key, allowed)
            if not hint and 0 < len(allowed) <= 12:
                hint = f"; allowed keys: {', '.join(allowed)}"
            self.problems.add((*path, key), f"unknown key '{key}'{hint}", key=True)

    def _missing(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        where = f" (needed by {self.kind_of(path)})" if "then" in err.schema_path else ""
        for key in err.validator_value:
            if key not in err.instance:
                self.problems.add(path, f"missing required key '{key}'{where}", key=True)

    def _type(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        want = err.validator_value
        words = " or ".join(
            _TYPE_WORDS.get(w, w) for w in (want if isinstance(want, list) else [want])
        )
        if schema.get("x-hint"):  # e.g. a number where a duration such as 15m goes
            words = schema["x-hint"]
        self.problems.add(path, self.got(words, err.instance, path))

    def _enum(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        options = [str(o) for o in err.validator_value]
        field = path[-1] if path and isinstance(path[-1], str) else "value"
        if len(path) >= 2 and path[-2] == "expected_columns":
            field = "dtype"
        hint = did_you_mean(str(err.instance), options)
        listing = f"; expected {one_of(options, limit=20)}" if len(options) <= 20 else ""
        self.problems.add(path, f"unknown {field} {self.show(err.instance, path)}{hint}{listing}")

    def _const(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        want = json.dumps(err.validator_value)
        self.problems.add(path, f"must be {want}, got {self.show(err.instance, path)}")

    def _pattern(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        if "propertyNames" in err.schema_path:
            name = err.instance  # a key that is not a valid name: point at the key
            hint = schema.get("x-hint") or "a valid name"
            self.problems.add((*path, name), f"'{name}' is not {hint}", key=True)
        else:
            hint = schema.get("x-hint") or f"matching {err.validator_value}"
            self.problems.add(path, f"{self.show(err.instance, path)} is not {hint}")

    def _max_length(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        limit, size = err.validator_value, len(err.instance)
        if "propertyNames" in err.schema_path:
            name = err.instance  # a key that is too long a name: point at the key
            shown = f"{name[:40]}…" if len(name) > 40 else name
            message = f"'{shown}' is too long a name ({size} characters; at most {limit})"
            self.problems.add((*path, name), message, key=True)
        else:
            self.problems.add(path, f"is too long ({size} characters; at most {limit})")

    def _empty(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        self.problems.add(path, "must not be empty")

    def _bound(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        op = _BOUND_OPS[str(err.validator)]
        shown = self.show(err.instance, path)
        self.problems.add(path, f"must be {op} {err.validator_value}, got {shown}")

    def _key_count(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        if schema.get("x-hint"):
            keys = ", ".join(err.instance) if err.instance else "none"
            self.problems.add(path, f"{schema['x-hint']}, got {keys}")
        elif err.validator == "minProperties":
            self.problems.add(path, "must not be empty")
        else:
            self.oversize.append(path)
            size, limit = len(err.instance), err.validator_value
            self.problems.add(path, f"has too many keys ({size}; at most {limit})")

    def _item_count(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        n = len(err.instance)
        if lo is not None and lo == hi:
            self.problems.add(path, f"needs exactly {lo} items, got {n}")
        elif err.validator == "minItems":
            self.problems.add(
                path, "must not be empty" if lo == 1 else f"needs at least {lo} items"
            )
        else:
            self.oversize.append(path)
            self.problems.add(path, f"has {n} items; at most {hi} allowed")

    def _unique(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        repeated = self.show(first_repeat(err.instance), path)
        self.problems.add(path, f"lists {repeated} more than once")

    def _alternatives(self, err: ValidationError, path: KeyPath, schema: dict[str, Any]) -> None:
        only_required = all(
            isinstance(b, dict) and set(b) == {"required"} for b in err.validator_value
        )
        if err.validator == "anyOf" and schema.get("x-hint") and only_required:
            self.problems.add(path, schema["x-hint"])
        else:
            self._union(err, path)

    def _number_only(self, path: KeyPath) -> bool:
        """A threshold value (warn/critical/resolve) of a monitor that is not a
        freshness check, or a drift_share bound: only numbers go there."""
        if len(path) < 4 or path[0] not in ("checks", "metrics", "kpis", "drift"):
            return False
        if not any(p in ("warn", "critical", "resolve") for p in path[2:4]):
            return False
        item = self.at(path[:2])
        return not (
            path[0] == "checks" and isinstance(item, dict) and item.get("type") == "freshness"
        )

    def _union(self, err: ValidationError, path: KeyPath) -> None:
        branches: dict[int, list[ValidationError]] = {}
        for sub in err.context or []:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        fitting = [
            i
            for i, errs in branches.items()
            if not any(e.validator == "type" and not e.relative_path for e in errs)
        ]
        if len(fitting) == 1 and isinstance(err.instance, str) and self._number_only(path):
            # a threshold of a monitor whose value is no time: durations do not apply
            self.problems.add(path, self.got("a number", err.instance, path))
        elif len(fitting) == 1:
            for sub in branches[fitting[0]]:
                self.walk(sub)
        else:
            words = " or ".join(dict.fromkeys(_branch_words(err.validator_value)))
            self.problems.add(path, self.got(words, err.instance, path))


def _branch_words(schemas: list[Any]) -> list[str]:
    """What each branch of a oneOf/anyOf accepts, in words (branches without a type
    or hint say nothing)."""
    words = []
    for s in schemas:
        t = s.get("type") if isinstance(s, dict) else None
        desc = s.get("x-hint") if isinstance(s, dict) else None
        if desc:
            words.append(desc)
        elif t == "integer" and "minimum" in s:
            words.append(f"a whole number >= {s['minimum']}")
        elif t:
            words.append(_TYPE_WORDS.get(t, t))
    return words


_WORDING = {
    "additionalProperties": _Renderer._unknown_keys,
    "required": _Renderer._missing,
    "type": _Renderer._type,
    "enum": _Renderer._enum,
    "const": _Renderer._const,
    "pattern": _Renderer._pattern,
    "maxLength": _Renderer._max_length,
    "minLength": _Renderer._empty,
    **dict.fromkeys(_BOUND_OPS, _Renderer._bound),
    "minProperties": _Renderer._key_count,
    "maxProperties": _Renderer._key_count,
    "minItems": _Renderer._item_count,
    "maxItems": _Renderer._item_count,
    "uniqueItems": _Renderer._unique,
    "anyOf": _Renderer._alternatives,
    "oneOf": _Renderer._alternatives,
}

_ITEM_DEFS = {"checks": "check", "metrics": "metric"}


def banned_keys(definition: str, type_name: Any, item: dict[str, Any]) -> list[str]:
    """Keys of ``item`` that the model schema's ``$defs[definition]`` forbids for
    items of ``type_name`` (its ``allOf`` of if-type-then rules).

    >>> banned_keys("metric", "expr", {"expr": "avg(x)", "column": "x"})
    ['column']
    """
    for rule in load_schema("model")["$defs"][definition].get("allOf", []):
        if rule["if"]["properties"]["type"]["const"] == type_name:
            banned = rule["then"].get("properties", {})
            return [k for k in item if banned.get(k) is False]
    return []


def validate_structure(
    data: Any,
    kind: str,
    problems: ProblemList,
    secret: set[KeyPath],
    oversize: list[KeyPath] | None = None,
) -> bool:
    """Validate ``data`` against the ``kind`` schema, adding problems. True if valid.
    The paths of lists and maps larger than their bound are added to ``oversize``.

    A document without environment values that was valid before is not validated
    again (see the module's docstring)."""
    if not secret and remembered_valid(data, kind):
        return True
    renderer = _Renderer(data, problems, secret)
    before = len(problems.problems)
    try:
        for err in _validator(kind).iter_errors(data):
            renderer.walk(err)
    except RecursionError:
        # a last resort: the YAML loader bounds nesting (MAX_DEPTH) before this runs,
        # but data may come from Python callers too
        problems.add((), "the document nests too deeply for validation")
    if oversize is not None:
        oversize.extend(renderer.oversize)
    valid = len(problems.problems) == before
    if valid and not secret:
        remember_valid(data, kind)
    return valid
