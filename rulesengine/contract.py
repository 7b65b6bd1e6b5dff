"""The input contract of one request, derived from a model's spec.

A spec's checks judge logged rows after the fact; the same rules, applied to one
request as it arrives, refuse it at the door. :func:`derive` reads a source's
``schema`` check (columns and dtypes, ``strict``), its ``allowed_values`` and
``out_of_range`` checks and its ``null_count`` / ``null_rate`` checks, and keeps
each rule that **one bad request alone would trip**: logged by itself, the
request makes a window of one row, where a rate is 0 or 1 and a count 0 or 1, so
a rule is kept when its ``warn`` or ``critical`` threshold is violated at 1 and
not at 0 (``null_rate`` with ``critical: {above: 0.05}`` makes the column
not-null; with ``{above: 1}`` it does not). The :class:`Contract` becomes a JSON
Schema (draft 2020-12) or a plain-Python validator for the request path::

    >>> check = validator("configs/models/fraud-detector.yaml")   # doctest: +SKIP
    >>> [str(v) for v in check({"amount": -5, "country": "DE"})]  # doctest: +SKIP
    ["amount: value -5 is outside [0, 50000] (amount-range)", ...]

Left out: checks with a ``filter`` (SQL over rows), ``change`` and derived
thresholds, per-segment overrides, and the check types that need a reference or
many rows (``new_categories``, ``pattern``, ``outlier_rate``, ``duplicate_rate``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rulesengine.errors import RulesEngineError, did_you_mean, one_of

if TYPE_CHECKING:
    import polars as pl

    from rulesengine.spec.model import CheckSpec, ModelSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CONTRACT_CHECKS = ("schema", "allowed_values", "out_of_range", "null_count", "null_rate")


class ContractError(RulesEngineError):
    """The contract cannot be derived as asked (no such source, nothing to derive)."""

    exit_code = 2


# ------------------------------------------------------------------ value kinds

_INTS = {
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**64 - 1),
}
# a request value's kind, in the words of the schema check's dtype families
_KIND_OF: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    datetime: "datetime",
    date: "date",
    time: "time",
    timedelta: "duration",
    list: "list",
    tuple: "list",
    dict: "struct",
    bytes: "binary",
    Decimal: "decimal",
    type(None): "null",
}


def kind_of(value: Any) -> str:
    """The kind of a request value: ``integer``, ``float``, ``string``, ``boolean``,
    ``datetime``, ``date``, ``time``, ``duration``, ``list``, ``struct``,
    ``binary``, ``decimal``, ``null`` (or the Python type's name)."""
    kind = _KIND_OF.get(type(value))
    if kind is not None:
        return kind
    for typ, name in _KIND_OF.items():  # subclasses (numpy scalars are not among them)
        if isinstance(value, typ):
            return name
    return type(value).__name__


def _iso(value: str, parse: Callable[[str], Any]) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


# which kinds each declared dtype takes (None = anything)
_ACCEPTS: dict[str, frozenset[str] | None] = {
    "any": None,
    "numeric": frozenset({"integer", "float", "decimal"}),
    "integer": frozenset({"integer"}),
    "float": frozenset({"integer", "float"}),  # JSON's 1 for 1.0; the logger's dtypes cast it
    "string": frozenset({"string"}),
    "categorical": frozenset({"string"}),
    "boolean": frozenset({"boolean"}),
    "temporal": frozenset({"datetime", "date", "time", "duration"}),
    "datetime": frozenset({"datetime"}),
    "date": frozenset({"date"}),
    "duration": frozenset({"duration"}),
    "time": frozenset({"time"}),
    "Float32": frozenset({"integer", "float"}),
    "Float64": frozenset({"integer", "float"}),
    "String": frozenset({"string"}),
    "Utf8": frozenset({"string"}),
    "Categorical": frozenset({"string"}),
    "Enum": frozenset({"string"}),
    "Boolean": frozenset({"boolean"}),
    "Date": frozenset({"date"}),
    "Datetime": frozenset({"datetime"}),
    "Duration": frozenset({"duration"}),
    "Time": frozenset({"time"}),
    "List": frozenset({"list"}),
    "Struct": frozenset({"struct"}),
    "Binary": frozenset({"binary"}),
    "Decimal": frozenset({"integer", "float", "decimal"}),
    "Null": frozenset({"null"}),
    **{name: frozenset({"integer"}) for name in _INTS},
}
_NUMERIC = {"numeric", "integer", "float", "Float32", "Float64", "Decimal", *_INTS}
_CATEGORICAL = {"string", "categorical", "boolean", "String", "Utf8", "Categorical"}
_CATEGORICAL |= {"Enum", "Boolean"}


def _fits(dtype: str, value: Any, kind: str) -> bool:
    """Whether a non-null request value fits a declared dtype."""
    accepts = _ACCEPTS.get(dtype)
    if accepts is None:
        return True
    if kind in accepts:
        if dtype in _INTS:
            lo, hi = _INTS[dtype]
            return lo <= value <= hi
        return True
    if kind == "float" and "integer" in accepts and value.is_integer():  # JSON's 3.0
        return dtype not in _INTS or _INTS[dtype][0] <= value <= _INTS[dtype][1]
    if kind == "string":  # JSON has no dates: ISO-8601 text stands for them
        if "datetime" in accepts and _iso(value, datetime.fromisoformat) and "T" in value:
            return True
        if "date" in accepts and _iso(value, date.fromisoformat) and len(value) == 10:
            return True
        if "time" in accepts and _iso(value, time.fromisoformat):
            return True
    return False


def _json_type(dtype: str) -> dict[str, Any]:
    """The JSON Schema of a non-null value of ``dtype``."""
    if dtype in _INTS:
        lo, hi = _INTS[dtype]
        return {"type": "integer", "minimum": lo, "maximum": hi}
    table: dict[str, dict[str, Any]] = {
        "numeric": {"type": "number"},
        "integer": {"type": "integer"},
        "float": {"type": "number"},
        "Float32": {"type": "number"},
        "Float64": {"type": "number"},
        "Decimal": {"type": "number"},
        "boolean": {"type": "boolean"},
        "Boolean": {"type": "boolean"},
        "datetime": {"type": "string", "format": "date-time"},
        "Datetime": {"type": "string", "format": "date-time"},
        "date": {"type": "string", "format": "date"},
        "Date": {"type": "string", "format": "date"},
        "time": {"type": "string", "format": "time"},
        "Time": {"type": "string", "format": "time"},
        "duration": {"type": "string", "format": "duration"},
        "Duration": {"type": "string", "format": "duration"},
        "temporal": {"type": "string"},
        "List": {"type": "array"},
        "Struct": {"type": "object"},
        "Binary": {"type": "string"},
        "Null": {"type": "null"},
    }
    if dtype in table:
        return dict(table[dtype])
    if dtype in _ACCEPTS and _ACCEPTS[dtype] == frozenset({"string"}):
        return {"type": "string"}
    return {}


# ------------------------------------------------------------------ the contract


@dataclass(frozen=True)
class Violation:
    """One way a request breaks the contract: the field, what is wrong (in the
    words of the check that would count it), the check's name and the rule
    (``required``, ``dtype``, ``unexpected``, ``not_null``, ``range``,
    ``allowed_values``)."""

    field: str
    message: str
    check: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} ({self.check})"

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "message": self.message,
            "check": self.check,
            "rule": self.rule,
        }


def violations_json(violations: Sequence[Violation]) -> str:
    """``{"valid": …, "violations": [{field, message, check, rule}]}``: a 422 body."""
    doc = {"valid": not violations, "violations": [v.as_dict() for v in violations]}
    return json.dumps(doc)


@dataclass(frozen=True)
class Field:
    """What the contract says about one column. Each rule keeps the name of the
    check it comes from."""

    name: str
    dtype: str | None = None
    dtype_check: str = ""
    required: bool = False  # missing is a violation (schema check)
    not_null: str | None = None  # the null check that forbids null
    ranges: tuple[tuple[float | None, float | None, str], ...] = ()  # (min, max, check)
    allowed: tuple[tuple[tuple[Any, ...], str], ...] = ()  # (values, check)

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = _json_type(self.dtype) if self.dtype else {}
        los = [lo for lo, _, _ in self.ranges if lo is not None]
        his = [hi for _, hi, _ in self.ranges if hi is not None]
        if self.ranges:
            out.setdefault("type", "number")
            if out["type"] not in ("number", "integer"):
                out["type"] = "number"
        if los:
            out["minimum"] = max([*los, out.get("minimum", -math.inf)])
        if his:
            out["maximum"] = min([*his, out.get("maximum", math.inf)])
        enum: list[Any] | None = None
        for values, _ in self.allowed:
            if enum is None:
                enum = [_json_value(v) for v in values]
            else:
                enum = [v for v in enum if v in [_json_value(x) for x in values]]
        if enum is not None:
            out["enum"] = enum
        if self.not_null is None:
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif "type" not in out and "enum" not in out:
            out["not"] = {"type": "null"}
        rules = [f"{self.dtype} ({self.dtype_check})"] if self.dtype else []
        rules += [_range_text(lo, hi) + f" ({c})" for lo, hi, c in self.ranges]
        rules += [f"one of {_values_text(vs)} ({c})" for vs, c in self.allowed]
        rules += [f"not null ({self.not_null})"] if self.not_null else []
        if rules:
            out["description"] = "; ".join(rules)
        return out


def _json_value(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{_num(lo)}, {_num(hi)}]"
    return f"at least {_num(lo)}" if lo is not None else f"at most {_num(hi)}"  # type: ignore[arg-type]


def _values_text(values: Iterable[Any]) -> str:
    return "[" + ", ".join(_shown(v) for v in values) + "]"


def _shown(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float):
        return _num(v)
    return str(v)


@dataclass(frozen=True)
class Contract:
    """The input contract of one request to ``model`` on ``source``.

    ``fields`` hold the rules per column; ``optional`` the columns the logger
    fills in (the source's timestamp, ``request_id``): typed when present, never
    required; ``excluded`` the columns left out on request (the model's outputs):
    allowed, never checked; ``strict`` (from a ``strict: true`` schema check)
    makes any other column a violation."""

    model: str
    source: str
    fields: tuple[Field, ...]
    strict: str | None = None  # the strict schema check's name
    optional: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    partition: frozenset[str] = frozenset()

    def json_schema(self) -> dict[str, Any]:
        """The contract as a JSON Schema (draft 2020-12) for one request object."""
        props = {f.name: f.json_schema() for f in self.fields}
        for name in sorted(self.excluded - set(props)):
            props[name] = {"description": "left out of the contract (--exclude)"}
        doc: dict[str, Any] = {
            "$schema": SCHEMA_DIALECT,
            "title": f"{self.model} {self.source}: one request",
            "description": (
                f"The input contract of model '{self.model}': the rules of its checks on "
                f"source '{self.source}' that one request can break "
                "(written by rulesengine contract)."
            ),
            "type": "object",
            "properties": props,
            "required": [f.name for f in self.fields if f.required],
        }
        if self.strict:
            doc["additionalProperties"] = False
        return doc

    def validator(self) -> Callable[[Mapping[str, Any]], list[Violation]]:
        """A plain-Python function from one request (a mapping) to its violations,
        every one of them, empty when the request conforms. The rules are
        compiled once; no JSON Schema library runs per request."""
        plan = [(f.name, f.required, f.dtype_check, _tests(f)) for f in self.fields]
        known = {f.name for f in self.fields} | self.optional | self.excluded
        strict = self.strict
        names = sorted(known)

        def validate(request: Mapping[str, Any]) -> list[Violation]:
            if not isinstance(request, Mapping):
                return [
                    Violation("", f"a request is an object, not {kind_of(request)}", "", "type")
                ]
            out: list[Violation] = []
            for name, required, check, tests in plan:
                if name in request:
                    value = request[name]
                    for test in tests:
                        bad = test(value)
                        if bad is not None:
                            out.append(bad)
                elif required:
                    out.append(Violation(name, f"missing column '{name}'", check, "required"))
            if strict:
                for key in request:
                    if key not in known:
                        hint = did_you_mean(key, names)
                        text = f"unexpected column '{key}'{hint}"
                        out.append(Violation(str(key), text, strict, "unexpected"))
            return out

        return validate

    def dtypes(self) -> dict[str, pl.DataType]:
        """Polars dtypes for :class:`rulesengine.logger.ModelLogger`'s ``dtypes``:
        a concrete dtype per declared column (``numeric`` and ``float`` as
        ``Float64``, ``integer`` as ``Int64``, ``datetime`` as microseconds in UTC),
        so a batch of ints or of nulls keeps the declared dtype."""
        import polars as pl

        concrete: dict[str, pl.DataType] = {
            "numeric": pl.Float64(),
            "float": pl.Float64(),
            "Float64": pl.Float64(),
            "Float32": pl.Float32(),
            "integer": pl.Int64(),
            "string": pl.String(),
            "String": pl.String(),
            "Utf8": pl.String(),
            "boolean": pl.Boolean(),
            "Boolean": pl.Boolean(),
            "datetime": pl.Datetime("us", "UTC"),
            "Datetime": pl.Datetime("us", "UTC"),
            "date": pl.Date(),
            "Date": pl.Date(),
            "duration": pl.Duration("us"),
            "Duration": pl.Duration("us"),
            "time": pl.Time(),
            "Time": pl.Time(),
            **{name: getattr(pl, name)() for name in _INTS},
        }
        return {
            f.name: concrete[f.dtype]
            for f in self.fields
            if f.dtype in concrete and f.name not in self.optional
        }


def _tests(f: Field) -> list[Callable[[Any], Violation | None]]:
    """The field's rules as small functions of the value, cheapest first."""
    name = f.name
    tests: list[Callable[[Any], Violation | None]] = []
    if f.not_null is not None:
        nn_check = f.not_null

        def not_null(v: Any) -> Violation | None:
            if v is None:
                return Violation(name, f"null value in column '{name}'", nn_check, "not_null")
            return None

        tests.append(not_null)
    if f.dtype is not None and _ACCEPTS.get(f.dtype) is not None:
        dtype, dt_check = f.dtype, f.dtype_check

        def typed(v: Any) -> Violation | None:
            if v is None:
                return None
            kind = _KIND_OF.get(type(v)) or kind_of(v)
            if _fits(dtype, v, kind):
                return None
            text = f"column '{name}' is {kind}, expected {dtype}"
            if kind == "integer" and dtype in _INTS:
                text = f"value {v} of column '{name}' does not fit {dtype}"
            return Violation(name, text, dt_check, "dtype")

        tests.append(typed)
    for lo, hi, r_check in f.ranges:
        tests.append(_range_test(name, lo, hi, r_check))
    for values, a_check in f.allowed:
        tests.append(_allowed_test(name, values, a_check))
    return tests


def _range_test(
    name: str, lo: float | None, hi: float | None, check: str
) -> Callable[[Any], Violation | None]:
    low = -math.inf if lo is None else lo
    high = math.inf if hi is None else hi
    where = _range_text(lo, hi)

    def in_range(v: Any) -> Violation | None:
        if v is None:
            return None
        kind = type(v)
        if kind is bool or not (kind is int or kind is float or isinstance(v, int | float)):
            text = f"value {_shown(v)} is not a number, expected one {where}"
            return Violation(name, text, check, "range")
        if low <= v <= high:
            return None
        if lo is not None and hi is not None:
            text = f"value {_shown(v)} is outside [{_num(lo)}, {_num(hi)}]"
        elif lo is not None:
            text = f"value {_shown(v)} is below min {_num(lo)}"
        else:
            text = f"value {_shown(v)} is above max {_num(high)}"
        return Violation(name, text, check, "range")

    return in_range


def _allowed_test(
    name: str, values: tuple[Any, ...], check: str
) -> Callable[[Any], Violation | None]:
    """Equal to one of ``values`` as JSON Schema's ``enum`` compares: numbers as
    numbers (200 matches 200.0), text as text, booleans as booleans. This is never
    looser than the check, which compares numbers as numbers in a numeric column
    and everything else as text."""
    keys = frozenset(_key(v) for v in values)
    listing = _values_text(values)

    def allowed(v: Any) -> Violation | None:
        if v is None or _key(v) in keys:
            return None
        return Violation(
            name, f"value {_shown(v)} is not allowed: {listing}", check, "allowed_values"
        )

    return allowed


def _key(v: Any) -> tuple[str, Any]:
    kind = type(v)
    if kind is bool:
        return ("b", v)
    if kind is int or kind is float or (isinstance(v, int | float) and not isinstance(v, bool)):
        return ("n", float(v))
    if kind is str:
        return ("s", v)
    return ("s", str(v))


# ------------------------------------------------------------------ deriving


def _trips(m: CheckSpec) -> bool:
    """Whether one bad request alone (a value of 1 in a window of one row) trips
    the check's warn or critical threshold, while a good one (0) does not."""
    for t in (m.thresholds.warn, m.thresholds.critical):
        if t is not None and t.violated(1.0) and not t.violated(0.0):
            return True
    return False


def _selected(m: CheckSpec, declared: Mapping[str, str], skip: set[str]) -> list[str]:
    """The columns a per-column check covers; a selector is resolved against the
    schema check's declared dtypes (a column declared ``any`` is not selected)."""
    if m.column is not None:
        return [m.column]
    if m.selector is None:
        return list(m.columns)
    left_out = skip | set(m.exclude) | set(m.segment_by)
    picked = []
    for c, dtype in declared.items():
        if c in left_out:
            continue
        numeric = dtype in _NUMERIC and m.selector in ("numeric", "all")
        if numeric or (dtype in _CATEGORICAL and m.selector in ("categorical", "all")):
            picked.append(c)
    return picked


def _contract_sources(model: ModelSpec) -> list[str]:
    return list(
        dict.fromkeys(
            m.source
            for m in model.checks
            if m.enabled and m.type in CONTRACT_CHECKS and m.filter is None and _trips(m)
        )
    )


def derive(model: ModelSpec, source: str | None = None, exclude: Iterable[str] = ()) -> Contract:
    """The contract of one request to ``model`` on ``source`` (by default the one
    source its contract checks cover). ``exclude``: columns a request does not
    carry, such as the model's outputs; their rules are left out. Raises
    :class:`ContractError` for an unknown source, or when there is no choice."""
    if source is None:
        candidates = _contract_sources(model)
        if not candidates:
            raise ContractError(
                f"model '{model.model}' has no check a single request can break "
                f"({', '.join(CONTRACT_CHECKS)} with thresholds that one bad row trips)"
            )
        if len(candidates) > 1:
            raise ContractError(
                f"model '{model.model}' has contract checks on sources {one_of(candidates)}: "
                "choose one with --source"
            )
        source = candidates[0]
    if source not in model.sources:
        raise ContractError(
            f"model '{model.model}' has no source '{source}'"
            + did_you_mean(source, model.sources)
            + f"; its sources are {one_of(model.sources)}"
        )
    spec = model.sources[source]
    excluded = frozenset(exclude)
    optional = frozenset({"request_id", *([spec.timestamp] if spec.timestamp else [])})
    partition = frozenset({spec.partition_date} if spec.partition_date else ())
    skip = set(optional | partition | excluded)
    checks = [
        m
        for m in model.checks
        if m.source == source
        and m.enabled
        and m.type in CONTRACT_CHECKS
        and m.filter is None
        and _trips(m)
    ]
    declared: dict[str, str] = {}
    dtype_of: dict[str, tuple[str, str]] = {}
    strict: str | None = None
    for m in checks:
        if m.type != "schema":
            continue
        if m.strict and strict is None:
            strict = m.name
        for column, dtype in m.expected_columns.items():
            declared.setdefault(column, dtype)
            if column not in partition and column not in excluded:
                dtype_of.setdefault(column, (dtype, m.name))
    order = [c for c in declared if c not in partition and c not in excluded]
    not_null: dict[str, str] = {}
    ranges: dict[str, list[tuple[float | None, float | None, str]]] = {}
    allowed: dict[str, list[tuple[tuple[Any, ...], str]]] = {}
    for m in checks:
        if m.type == "schema":
            continue
        for column in _selected(m, declared, skip - {"request_id"}):
            if column in partition or column in excluded:
                continue
            if column not in order:
                order.append(column)
            if m.type in ("null_count", "null_rate"):
                not_null.setdefault(column, m.name)
            elif m.type == "out_of_range":
                ranges.setdefault(column, []).append((m.min, m.max, m.name))
            else:
                allowed.setdefault(column, []).append((tuple(m.values), m.name))
    fields = tuple(
        Field(
            name=c,
            dtype=dtype_of[c][0] if c in dtype_of else None,
            dtype_check=dtype_of[c][1] if c in dtype_of else "",
            required=c in dtype_of and c not in optional,
            not_null=not_null.get(c),
            ranges=tuple(ranges.get(c, ())),
            allowed=tuple(allowed.get(c, ())),
        )
        for c in order
    )
    return Contract(
        model=model.model,
        source=source,
        fields=fields,
        strict=strict,
        optional=optional,
        excluded=excluded,
        partition=partition,
    )


def load_contract(
    model_file: str | os.PathLike[str],
    source: str | None = None,
    exclude: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Contract:
    """Load and validate one model file (raises :class:`SpecError` if invalid) and
    derive its contract (see :func:`derive`)."""
    from rulesengine.spec.loader import load

    config = load([model_file], env)
    if len(config.models) != 1:
        raise ContractError(f"{os.fspath(model_file)} is not one model file")
    return derive(config.models[0], source, exclude)


def validator(
    model_file: str | os.PathLike[str],
    source: str | None = None,
    exclude: Iterable[str] = (),
) -> Callable[[Mapping[str, Any]], list[Violation]]:
    """A fast callable for the request path: one request (a mapping) → the list of
    its :class:`Violation`\\ s, empty when it conforms.

    >>> check = validator("models/fraud-detector.yaml", exclude=["score"])  # doctest: +SKIP
    >>> check({"amount": 12.5, "country": "DE", "device": "ios"})           # doctest: +SKIP
    []
    """
    return load_contract(model_file, source, exclude).validator()


def json_schema_text(contract: Contract) -> str:
    """The JSON Schema as ``rulesengine contract`` prints it."""
    return json.dumps(contract.json_schema(), indent=2) + "\n"
