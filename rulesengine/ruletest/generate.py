"""The compact column notation of rule tests: one string per column expands to a
list of values (see docs/testing.md, "Generator notation").

=========================================  =========================================
``"100+10x5"``                             100, 110, 120, 130, 140 (``start±step x N``)
``"7x3"`` / ``"nullx3"``                   7, 7, 7 / three nulls
``"2026-11-27T10:00:00Z+1mx3"``            10:00, 10:01, 10:02 UTC (ISO time, step, N)
``"cycle(DE,FR,null)x4"``                  DE, FR, null, DE
``"normal(0,1)x1000 seed 7"``              seeded draws; also ``uniform(lo,hi)``,
                                           ``choice(a,b,...)``
``"cycle(DE,FR)"`` / ``DE`` / ``5``        no ``xN``: as long as the other columns
=========================================  =========================================

A column may also be a YAML list of such parts, concatenated. Raises
:class:`NotationError` with a one-line message on anything else.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rulesengine.durations import parse_duration
from rulesengine.spec.yamlsrc import resolve_plain_scalar

MAX_ROWS = 1_000_000

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COUNT = r"\s*x\s*(?P<n>\d+)"
_ARITH = re.compile(rf"^(?P<start>{_NUM})\s*(?P<sign>[-+])\s*(?P<step>{_NUM}){_COUNT}$")
_REPEAT = re.compile(rf"^(?P<value>.+?){_COUNT}$")
_TIME = re.compile(
    r"^(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[-+]\d\d:\d\d))"
    rf"\s*(?P<sign>[-+])\s*(?P<step>\d+[a-z][0-9a-z]*){_COUNT}$"
)
_CALL = re.compile(
    r"^(?P<fn>cycle|normal|uniform|choice)\((?P<args>[^()]*)\)"
    r"(?:\s*x\s*(?P<n>\d+))?(?:\s+seed\s+(?P<seed>\d+))?$"
)


class NotationError(ValueError):
    """A column's notation that cannot be expanded (the message is one line)."""


class Column:
    """One column part, expanded lazily to ``n`` values (``fixed`` False: the
    length comes from the other columns)."""

    def __init__(self, values: list[Any] | None, fill: list[Any] | None = None) -> None:
        self.values = values  # a fixed list, or None when it fills to a length
        self.fill = fill  # the values a fill part repeats (cycle or a constant)

    @property
    def fixed(self) -> bool:
        return self.values is not None

    def expand(self, n: int) -> list[Any]:
        if self.values is not None:
            return self.values
        assert self.fill is not None
        return [self.fill[i % len(self.fill)] for i in range(n)]


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a zone (``Z`` or ``±HH:MM``), as UTC."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise NotationError(f"'{text}' is not an ISO-8601 time") from None
    if t.tzinfo is None:
        raise NotationError(f"'{text}' has no time zone; add Z for UTC")
    return t.astimezone(UTC)


def _number(text: str) -> int | float:
    value = resolve_plain_scalar(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotationError(f"'{text}' is not a number")
    return value


def _count(text: str) -> int:
    n = int(text)
    if n < 1 or n > MAX_ROWS:
        raise NotationError(f"the count x{n} must be between 1 and {MAX_ROWS:,}")
    return n


def _args(text: str) -> list[Any]:
    items = [a.strip() for a in text.split(",")] if text.strip() else []
    if not items or any(a == "" for a in items):
        raise NotationError(f"'({text})' needs comma-separated values")
    return [resolve_plain_scalar(a) for a in items]


def _distribution(fn: str, args: list[Any], n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    if fn == "choice":
        return [rng.choice(args) for _ in range(n)]
    if len(args) != 2 or not all(isinstance(a, int | float) for a in args):
        raise NotationError(f"{fn}(a,b) takes two numbers")
    a, b = float(args[0]), float(args[1])
    if fn == "normal":
        if b < 0:
            raise NotationError("normal(mean,sd) needs sd >= 0")
        return [rng.gauss(a, b) for _ in range(n)]
    if b < a:
        raise NotationError("uniform(low,high) needs low <= high")
    return [rng.uniform(a, b) for _ in range(n)]


def _call(m: re.Match[str]) -> Column:
    fn, args, n, seed = m["fn"], _args(m["args"]), m["n"], m["seed"]
    if fn == "cycle":
        if seed is not None:
            raise NotationError("cycle(...) takes no seed")
        if n is None:
            return Column(None, args)
        return Column([args[i % len(args)] for i in range(_count(n))])
    if n is None or seed is None:
        raise NotationError(f"{fn}(...) needs a count and a seed: {fn}(...)xN seed S")
    return Column(_distribution(fn, args, _count(n), int(seed)))


def parse_part(spec: Any) -> Column:
    """One part of a column: a notation string, or a plain YAML value (a constant)."""
    if not isinstance(spec, str):
        if isinstance(spec, dict | list):
            raise NotationError("a column part is a notation string or a single value")
        return Column(None, [spec])
    text = spec.strip()
    if m := _TIME.match(text):
        try:
            start, step = parse_time(m["start"]), parse_duration(m["step"])
        except ValueError as exc:
            raise NotationError(f"'{text}': {exc}") from None
        sign = -1 if m["sign"] == "-" else 1
        return Column([start + sign * i * step for i in range(_count(m["n"]))])
    if m := _CALL.match(text):
        return _call(m)
    if m := _ARITH.match(text):
        start, step = _number(m["start"]), _number(m["step"])
        step = -step if m["sign"] == "-" else step
        return Column([start + i * step for i in range(_count(m["n"]))])
    if re.match(r"^\d{4}-\d\d-\d\dT", text) and re.search(r"[-+]\s*\d+[a-z]+\s*x\s*\d+$", text):
        zoneless = text[:19]
        raise NotationError(
            f"'{text}' is not TIME±STEPxN: '{zoneless}' needs a time zone (Z for UTC)"
        )
    if m := _REPEAT.match(text):
        return Column([resolve_plain_scalar(m["value"].strip())] * _count(m["n"]))
    if text.startswith(("cycle(", "normal(", "uniform(", "choice(")):
        raise NotationError(f"'{text}' is not a valid generator (see docs/testing.md)")
    return Column(None, [resolve_plain_scalar(text)])


def parse_column(spec: Any) -> Column:
    """A column: one part, or a list of parts concatenated (every part fixed)."""
    if not isinstance(spec, list):
        return parse_part(spec)
    if not spec:
        raise NotationError("an empty list of parts")
    values: list[Any] = []
    for part in spec:
        col = parse_part(part)
        if not col.fixed:
            raise NotationError(f"the part '{part}' needs a count (xN) inside a list of parts")
        values.extend(col.expand(0))
    if len(values) > MAX_ROWS:
        raise NotationError(f"more than {MAX_ROWS:,} values")
    return Column(values)


def expand_columns(columns: dict[str, Any]) -> dict[str, list[Any]]:
    """Every column expanded to the same length. Raises :class:`NotationError`
    naming the column when one cannot be read or the lengths differ."""
    parsed: dict[str, Column] = {}
    for name, spec in columns.items():
        try:
            parsed[name] = parse_column(spec)
        except NotationError as exc:
            raise NotationError(f"column '{name}': {exc}") from None
    lengths = {name: len(c.expand(0)) for name, c in parsed.items() if c.fixed}
    if not lengths:
        raise NotationError("no column has a count (xN): say how many rows with one")
    n = max(lengths.values())
    if len(set(lengths.values())) > 1:
        which = ", ".join(f"'{name}' has {k}" for name, k in lengths.items())
        raise NotationError(f"columns differ in length: {which}")
    return {name: c.expand(n) for name, c in parsed.items()}


def times_of(spec: str | Sequence[Any]) -> list[datetime]:
    """Evaluation times: a list of ISO times, or one timestamp generator string."""
    if isinstance(spec, str):
        col = parse_part(spec)
        values = col.expand(1)
        if not all(isinstance(v, datetime) for v in values):
            raise NotationError(f"'{spec}' is not a time generator (TIME+STEPxN)")
        return values
    out = []
    for item in spec:
        if isinstance(item, datetime):
            out.append(item.astimezone(UTC))
        elif isinstance(item, str):
            out.append(parse_time(item))
        else:
            raise NotationError(f"'{item}' is not an ISO-8601 time")
    return out
