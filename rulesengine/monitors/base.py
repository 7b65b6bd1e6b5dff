"""What every monitor type provides to the compiler and the scorer.

A monitor type turns a spec into *needs* (aggregates over a frame: a source, a
time window, a filter and maybe a label join) and turns the aggregated values back
into a value with details. The compiler merges the needs of all monitors into one
query per frame and segmentation; the type never sees Polars plans or other
monitors. Built-in types register in ``MONITOR_TYPES`` the way a plugin would.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from rulesengine.spec.model import JoinSpec, ModelSpec, MonitorSpec

ROWS = "__rows"  # the row count every query carries
ROWS_BY = "__rows_by"  # with a per-row key: {key: rows}
SEGMENTS = "__segments"  # prepared values of segmented reference needs: {key: {role: …}}


@dataclass(frozen=True)
class FrameKey:
    """The rows a set of aggregates runs over. Equal keys share one query."""

    source: str
    start: datetime | None  # exclusive; None: open
    end: datetime | None  # inclusive; None: open
    filter: str | None = None
    join: JoinSpec | None = None
    label_cutoff: datetime | None = None  # labels known at this time
    how: str = "inner"  # inner: labelled rows only; left: all rows (for coverage)


@dataclass(frozen=True)
class Cells:
    """A histogram counted by NumPy rather than by a ``group_by``: ``index`` gives
    each row's cell in [0, n), null for a missing value. The role's values are then
    ``{"counts": array, "sums": array | None}`` of n + 1 slots, the last one for
    rows whose index is null; ``sums`` adds up ``weights`` per cell (the null
    slot's sum is meaningless). The sums are of ``weights − origin``: values far
    from 0 next to their spread keep their precision. With ``outer``, ``"outer"``
    holds the weights (not shifted) of the rows in the first and the last cell,
    sorted."""

    index: pl.Expr
    n: int
    weights: pl.Expr | None = None
    outer: bool = False
    origin: float = 0.0


@dataclass(frozen=True)
class Need:
    """Aggregates a monitor needs over one frame, under a role name."""

    frame: FrameKey
    aggs: Mapping[str, pl.Expr]
    role: str = "main"
    segmented: bool = True  # False: computed overall only
    # group also by this per-row key (a histogram bucket, a category): each
    # aggregate then arrives as {key: value}, and "__rows" per key as "__rows"
    by: pl.Expr | None = None
    # or count rows per cell of a histogram (no aggregates, no ``by``)
    cells: Cells | None = None


@dataclass
class Scored:
    """A monitor's value for one segment; ``status`` overrides threshold scoring
    (e.g. ``insufficient_data`` for an undefined ratio) with ``reason`` in details."""

    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    rows: int | None = None
    column: str | None = None  # for monitors with one result per column (drift)
    type: str | None = None  # overrides the monitor's type in the result
    threshold: dict[str, Any] | None = None  # overrides the monitor's thresholds


Values = Mapping[str, Mapping[str, Any]]  # per role: its aggregates by local name
Rows = Mapping[str, int]  # per role: its row count
Segment = tuple[Any, ...]  # a segment's key, () overall


class Undefined(Exception):
    """A value that cannot be computed from the rows at hand (0/0, no labels…)."""


def ratio(num: float, den: float, what: str) -> float:
    if den == 0 or den is None or num is None:
        raise Undefined(f"{what} is undefined: no rows in its denominator")
    return float(num) / float(den)


@dataclass
class EvalContext:
    """What a monitor type may know when it plans and scores."""

    model: ModelSpec
    at: datetime
    schemas: Mapping[str, pl.Schema]  # per source, after timestamp normalisation
    prepared: dict[str, Any] = field(default_factory=dict)  # monitor → prepared values
    cache_dir: Path | None = None  # where reference profiles are kept
    # monitor → its reference chunk values for derived thresholds, or why none
    derived: dict[str, Any] = field(default_factory=dict)

    def window(
        self, m: MonitorSpec, *, shift: timedelta = timedelta(0)
    ) -> tuple[datetime | None, datetime | None]:
        """``(at - delay - window, at - delay]``, shifted back by ``shift``; open for a
        static source."""
        if self.model.sources[m.source].timestamp is None:
            return None, None
        end = self.at - m.delay - shift
        return end - m.window, end


class MonitorType(ABC):
    """Base of all monitor types. Subclasses set ``kind``/``names`` and override."""

    kind: ClassVar[str] = ""
    names: ClassVar[tuple[str, ...]] = ()
    # the value is meaningful with zero rows (a count), so no no_data/min_rows guard
    counts_rows: ClassVar[bool] = False

    def cached(self, m: MonitorSpec, ctx: EvalContext) -> Any | None:
        """A prepared reference kept from an earlier run (a cached profile), or None.
        When there is one, the engine uses it as ``ctx.prepared[m.name]`` and does not
        call ``prepare``: the reference is not read again."""
        return None

    def prepare(self, m: MonitorSpec, ctx: EvalContext) -> list[Need]:
        """Aggregates over reference data, run before ``needs`` as their own small
        plan (the engine's reference phase)."""
        return []

    def prepared(self, m: MonitorSpec, values: dict[str, Any], ctx: EvalContext) -> Any:
        """Turn the ``prepare`` aggregates ({role: {name: value}}) into what ``needs``
        and ``score`` read from ``ctx.prepared[m.name]``. Default: the main role's."""
        return values.get("main", {})

    @abstractmethod
    def needs(self, m: MonitorSpec, ctx: EvalContext) -> list[Need]:
        """The aggregates this monitor needs over the window (the engine's window
        phase, after ``prepared``)."""

    @abstractmethod
    def score(self, m: MonitorSpec, values: Values, rows: Rows, ctx: EvalContext) -> Scored:
        """The value of one segment from its aggregates."""

    def score_all(
        self, m: MonitorSpec, values: Values, rows: Rows, ctx: EvalContext, segment: Segment = ()
    ) -> list[Scored]:
        """Every result of one segment (its key; () overall): one, unless the type
        reports per column."""
        return [self.score(m, values, rows, ctx)]

    def when_empty(self, m: MonitorSpec, rows: Rows) -> tuple[str, str]:
        """(status, reason) when the window has no rows to compute from."""
        return "no_data", "no rows in the window"

    def min_rows_apply(self, m: MonitorSpec) -> bool:
        """Whether ``min_rows`` guards this monitor (not for plain counts)."""
        return not self.counts_rows

    def zero_rows_ok(self, m: MonitorSpec) -> bool:
        """True when the value means something without rows (a count), so neither
        no_data nor min_rows applies."""
        return self.counts_rows

    def column(self, m: MonitorSpec) -> str | None:
        return getattr(m, "column", None)

    def guard_rows(self, m: MonitorSpec, rows: Rows) -> int:
        """The row count compared with ``min_rows``."""
        return rows.get("main", 0)


MONITOR_TYPES: dict[tuple[str, str], MonitorType] = {}


def register(cls: type[MonitorType]) -> type[MonitorType]:
    instance = cls()
    for name in cls.names:
        MONITOR_TYPES[(cls.kind, name)] = instance
    return cls


def builtin_types() -> dict[tuple[str, str], MonitorType]:
    """Every registered type, the built-in families imported (they register
    themselves) on first use: importing ``rulesengine.monitors`` stays light, so the
    spec stage can read the drift vocabulary without loading the engine."""
    from rulesengine.monitors import checks, kpis, metrics  # noqa: F401
    from rulesengine.monitors.drift import monitor  # noqa: F401

    return MONITOR_TYPES


# the module of each built-in family, imported by lookup when its kind is first used
FAMILIES = {
    "check": "rulesengine.monitors.checks",
    "metric": "rulesengine.monitors.metrics",
    "kpi": "rulesengine.monitors.kpis",
    "drift": "rulesengine.monitors.drift.monitor",
}


def lookup(m: MonitorSpec) -> MonitorType:
    """The registered type of ``m`` (KeyError if none). Only ``m``'s own family is
    imported: a model without drift never loads the drift modules and NumPy."""
    key = (m.kind, m.type)
    if key not in MONITOR_TYPES and m.kind in FAMILIES:
        import_module(FAMILIES[m.kind])
    return MONITOR_TYPES[key]


def as_list(values: Any) -> list[Any]:
    """A list aggregate (a numpy array, a list or None) as a Python list."""
    return [] if values is None else list(values)


def finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
