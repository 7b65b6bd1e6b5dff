"""Declared dtypes against request values: which Python values fit a schema
check's dtype (family or Polars name), the JSON Schema of each, and the concrete
Polars dtype the logger casts to."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

INTS = {
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
KIND_OF: dict[type, str] = {
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
    kind = KIND_OF.get(type(value))
    if kind is not None:
        return kind
    for typ, name in KIND_OF.items():  # subclasses (numpy scalars are not among them)
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
ACCEPTS: dict[str, frozenset[str] | None] = {
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
    **{name: frozenset({"integer"}) for name in INTS},
}
NUMERIC = {"numeric", "integer", "float", "Float32", "Float64", "Decimal", *INTS}
CATEGORICAL = {"string", "categorical", "boolean", "String", "Utf8", "Categorical"}
CATEGORICAL |= {"Enum", "Boolean"}


def fits(dtype: str, value: Any, kind: str) -> bool:
    """Whether a non-null request value fits a declared dtype."""
    accepts = ACCEPTS.get(dtype)
    if accepts is None:
        return True
    if kind in accepts:
        if dtype in INTS:
            lo, hi = INTS[dtype]
            return lo <= value <= hi
        return True
    if kind == "float" and "integer" in accepts and value.is_integer():  # JSON's 3.0
        return dtype not in INTS or INTS[dtype][0] <= value <= INTS[dtype][1]
    if kind == "string":  # JSON has no dates: ISO-8601 text stands for them
        if "datetime" in accepts and _iso(value, datetime.fromisoformat) and "T" in value:
            return True
        if "date" in accepts and _iso(value, date.fromisoformat) and len(value) == 10:
            return True
        if "time" in accepts and _iso(value, time.fromisoformat):
            return True
    return False


def json_type(dtype: str) -> dict[str, Any]:
    """The JSON Schema of a non-null value of ``dtype``."""
    if dtype in INTS:
        lo, hi = INTS[dtype]
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
    if dtype in ACCEPTS and ACCEPTS[dtype] == frozenset({"string"}):
        return {"type": "string"}
    return {}


def polars_dtypes() -> dict[str, pl.DataType]:
    """The concrete Polars dtype written for each declared dtype that has one."""
    import polars as pl

    return {
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
        **{name: getattr(pl, name)() for name in INTS},
    }
