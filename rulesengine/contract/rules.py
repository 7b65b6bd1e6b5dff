"""The contract as data (:class:`Contract`, :class:`Field`), its JSON Schema, and
the plain-Python validator compiled from it: one small function per rule, so a
request costs a few dictionary lookups and comparisons per field."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rulesengine.contract.dtypes import (
    ACCEPTS,
    INTS,
    KIND_OF,
    fits,
    json_type,
    kind_of,
    polars_dtypes,
)
from rulesengine.errors import did_you_mean

if TYPE_CHECKING:
    import polars as pl

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


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
        out: dict[str, Any] = json_type(self.dtype) if self.dtype else {}
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
        concrete = polars_dtypes()
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
    if f.dtype is not None and ACCEPTS.get(f.dtype) is not None:
        dtype, dt_check = f.dtype, f.dtype_check

        def typed(v: Any) -> Violation | None:
            if v is None:
                return None
            kind = KIND_OF.get(type(v)) or kind_of(v)
            if fits(dtype, v, kind):
                return None
            text = f"column '{name}' is {kind}, expected {dtype}"
            if kind == "integer" and dtype in INTS:
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
