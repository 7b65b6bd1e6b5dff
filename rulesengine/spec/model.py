"""Frozen, typed spec objects. Later stages only ever see these, never raw dicts.

Field names equal the YAML keys, so an error about a field reads like the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from rulesengine.durations import format_duration
from rulesengine.errors import KeyPath, Pos, position

Severity = Literal["warn", "critical"]
PolicyAction = Literal["alert", "ok", "keep_last"]

THRESHOLD_OPS = ("above", "at_or_above", "below", "at_or_below", "outside", "between")
DIRECTIONS = {
    "above": "up",
    "at_or_above": "up",
    "below": "down",
    "at_or_below": "down",
    "outside": "out",
    "between": "in",
}


ChangeMode = Literal["relative", "absolute"]


@dataclass(frozen=True)
class Change:
    """What a ``change`` threshold compares: the value against the same series'
    value recorded ``offset`` earlier (the newest one at or before ``at - offset``
    and not before ``at - offset - tolerance``). ``relative``: (v - v0) / |v0|;
    ``absolute``: v - v0. See :mod:`rulesengine.history.change`."""

    offset: timedelta
    mode: ChangeMode = "relative"
    tolerance: timedelta = timedelta(minutes=15)  # the model's evaluation.every by default

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": format_duration(self.offset),
            "mode": self.mode,
            "tolerance": format_duration(self.tolerance),
        }


DerivedSide = Literal["both", "lower", "upper"]


@dataclass(frozen=True)
class Derived:
    """A band derived from the reference's chunk values (see
    :mod:`rulesengine.engine.derived`): mean ± ``std``·σ (σ the population
    standard deviation, ddof 0) or the ``quantiles`` (linear interpolation).
    ``side`` picks ``outside`` the band, ``below`` its low edge or ``above`` its
    high edge."""

    std: float | None = None
    quantiles: tuple[float, float] | None = None
    side: DerivedSide = "both"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"std": self.std} if self.std is not None else {}
        if self.quantiles is not None:
            out["quantiles"] = list(self.quantiles)
        return {**out, "side": self.side}


@dataclass(frozen=True)
class ThresholdsFrom:
    """Where derived thresholds come from: ``source`` read whole, cut into chunks
    of ``rows`` rows or of ``every`` (aligned to the Unix epoch on the source's
    timestamp)."""

    source: str
    rows: int | None = None
    every: timedelta | None = None

    def chunk(self) -> dict[str, Any]:
        if self.rows is not None:
            return {"rows": self.rows}
        assert self.every is not None
        return {"every": format_duration(self.every)}


@dataclass(frozen=True)
class SegmentOverride:
    """``segments[i]``: thresholds for the segments whose values match ``match``
    (every key; a value matches when it equals the segment's value or its text
    does). ``warn``/``critical`` replace the monitor's, each one left out keeps
    the monitor's."""

    match: Mapping[str, Any]
    warn: Threshold | None = None
    critical: Threshold | None = None
    has_warn: bool = False
    has_critical: bool = False


@dataclass(frozen=True)
class Threshold:
    """One violation condition, e.g. ``{above: 0.01}`` or ``{outside: [0, 1]}``.
    With ``change``, the condition applies to the value's change since an offset
    earlier (``{change: {offset: 7d, below: -0.1}}``), not to the value. With
    ``derived``, the condition is a band computed from the reference at scoring
    time (:mod:`rulesengine.engine.thresholds`); ``op``/``value`` are unused."""

    op: str
    value: float | tuple[float, float]
    change: Change | None = None
    derived: Derived | None = None

    @property
    def direction(self) -> str:
        """``up`` (large values are bad), ``down``, ``out`` or ``in``."""
        return DIRECTIONS[self.op]

    def violated(self, x: float) -> bool:
        """Whether the value ``x`` violates this threshold. A change threshold is
        never violated by the value alone: :mod:`rulesengine.history.change`
        decides it from the result history (with :meth:`holds` on the change)."""
        return self.change is None and self.derived is None and self.holds(x)

    def holds(self, x: float) -> bool:
        """Whether ``x`` meets the condition ``op`` ``value`` (the value itself,
        or for a change threshold, the change)."""
        v = self.value
        if self.op == "above":
            return x > v  # type: ignore[operator]
        if self.op == "at_or_above":
            return x >= v  # type: ignore[operator]
        if self.op == "below":
            return x < v  # type: ignore[operator]
        if self.op == "at_or_below":
            return x <= v  # type: ignore[operator]
        lo, hi = v  # type: ignore[misc]
        if self.op == "outside":
            return x < lo or x > hi
        return lo <= x <= hi

    def as_dict(self) -> dict[str, Any]:
        if self.derived is not None:
            return {"derived": self.derived.as_dict()}
        cond = {self.op: list(self.value) if isinstance(self.value, tuple) else self.value}
        return cond if self.change is None else {"change": {**self.change.as_dict(), **cond}}


@dataclass(frozen=True)
class Thresholds:
    warn: Threshold | None = None
    critical: Threshold | None = None
    resolve: Threshold | None = None

    @property
    def derives(self) -> bool:
        """Whether ``warn`` or ``critical`` is derived from the reference."""
        return any(t is not None and t.derived is not None for t in (self.warn, self.critical))

    @property
    def changes(self) -> bool:
        """Whether ``warn`` or ``critical`` is a change threshold."""
        return any(t is not None and t.change is not None for t in (self.warn, self.critical))

    def as_dict(self) -> dict[str, Any]:
        out = {}
        if self.warn:
            out["warn"] = self.warn.as_dict()
        if self.critical:
            out["critical"] = self.critical.as_dict()
        return out


@dataclass(frozen=True)
class Policy:
    no_data: PolicyAction = "keep_last"
    insufficient_data: PolicyAction = "keep_last"
    error: PolicyAction = "keep_last"


@dataclass(frozen=True)
class AlertSpec:
    """How a monitor's violations become alerts."""

    for_evaluations: int = 1
    for_duration: timedelta | None = None
    keep_firing_for: timedelta | None = None
    fire_after: tuple[int, int] | None = None  # (violations, of_last)
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class SourceSpec:
    """A log source. ``path`` is absolute (or a URL) after loading."""

    name: str
    path: str
    format: str
    timestamp: str | None = None
    timestamp_unit: str | None = None
    timezone: str = "UTC"
    partition_date: str | None = None
    required: bool = False
    hive_partitioning: bool | None = None
    separator: str = ","
    storage_options: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None

    @property
    def is_remote(self) -> bool:
        return "://" in self.path and not self.path.startswith("file://")


CatchUpPolicy = Literal["latest", "all", "none"]


@dataclass(frozen=True)
class EvaluationSpec:
    """``every`` or ``cron`` (with ``timezone``) sets the daemon's cadence; when
    ``cron`` is set it wins and ``every`` is not used (see daemon/schedule.py)."""

    every: timedelta = timedelta(minutes=15)
    cron: str | None = None
    timezone: str = "UTC"
    catch_up: CatchUpPolicy = "latest"
    catch_up_max: int = 100
    deadline: timedelta | None = None  # None: the cadence
    window: timedelta = timedelta(hours=1)
    delay: timedelta = timedelta(0)
    segment_by: tuple[str, ...] = ()
    max_segments: int = 100
    min_rows: int = 1
    stale_after: int = 3


@dataclass(frozen=True)
class JoinSpec:
    source: str
    on: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    """Fields every monitor has. ``window``/``delay``/``segment_by``/``min_rows``
    are already resolved against the model's evaluation defaults."""

    name: str
    kind: str  # check | drift | metric | kpi
    type: str
    source: str
    window: timedelta
    delay: timedelta
    segment_by: tuple[str, ...]
    min_rows: int
    thresholds: Thresholds = field(default_factory=Thresholds)
    alert: AlertSpec = field(default_factory=AlertSpec)
    filter: str | None = None
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    runbook: str | None = None
    enabled: bool = True
    path: KeyPath = ()
    # derived thresholds and per-segment overrides (engine/derived.py, engine/thresholds.py)
    thresholds_from: ThresholdsFrom | None = None
    bounds: tuple[float | None, float | None] = (None, None)  # clamps derived edges
    segments: tuple[SegmentOverride, ...] = ()


COLUMN_SELECTORS = ("numeric", "categorical", "all")  # columns: as a word, not a list
PER_COLUMN_CHECKS = (
    "null_count",
    "null_rate",
    "out_of_range",
    "allowed_values",
    "new_categories",
    "pattern",
)


@dataclass(frozen=True)
class CompareSpec:
    """``compare: {offset, mode}`` on a metric or KPI: the value becomes its change
    against the same monitor recomputed over the window ``offset`` earlier."""

    offset: timedelta
    mode: ChangeMode = "relative"


@dataclass(frozen=True, kw_only=True)
class CheckSpec(MonitorSpec):
    column: str | None = None
    # duplicate_rate: the key columns; a per-column check: the listed columns
    columns: tuple[str, ...] = ()
    selector: str | None = None  # a per-column check's ``columns: numeric|categorical|all``
    exclude: tuple[str, ...] = ()  # … minus these
    expected_columns: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] = ()
    reference: str | None = None
    regex: str | None = None
    rate_of: str = "non_matching"
    method: str = "zscore"
    factor: float | None = None
    expr: str | None = None


@dataclass(frozen=True, kw_only=True)
class MetricSpec(MonitorSpec):
    prediction: str | None = None
    target: str | None = None
    score: str | None = None
    positive: Any = None
    column: str | None = None
    q: float | None = None
    predicate: str | None = None
    expr: str | None = None
    join: JoinSpec | None = None
    min_label_coverage: float | None = None
    compare: CompareSpec | None = None
    exact: bool = False  # quantile, roc_auc: never a sketch in partial states

    @property
    def compare_offset(self) -> timedelta | None:
        return self.compare.offset if self.compare else None


@dataclass(frozen=True, kw_only=True)
class KpiSpec(MonitorSpec):
    expr: str
    join: JoinSpec | None = None
    compare: CompareSpec | None = None

    @property
    def compare_offset(self) -> timedelta | None:
        return self.compare.offset if self.compare else None


@dataclass(frozen=True)
class ReferenceSpec:
    """A static source read whole, or a trailing baseline ``offset`` earlier."""

    source: str
    offset: timedelta | None = None
    window: timedelta | None = None


# `duplicates` pairs the field lists around here (MetricSpec's, KpiSpec's,
# ColumnOverride's, DriftSpec's): alike in shape only, they declare different fields.
@dataclass(frozen=True)
class ColumnOverride:
    type: str | None = None
    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True, kw_only=True)
class DriftSpec(MonitorSpec):
    reference: ReferenceSpec
    columns: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    method: str = "auto"
    threshold: float | None = None
    overrides: Mapping[str, ColumnOverride] = field(default_factory=dict)
    correction: str = "none"
    bins: int = 10
    column_severity: Severity = "warn"
    exact: bool = False  # ks, mannw, energy never from a sketch (docs/scaling.md)


@dataclass(frozen=True)
class Locator:
    """Maps key paths of one file back to line and column."""

    file: str
    positions: Mapping[KeyPath, Pos]
    key_positions: Mapping[KeyPath, Pos]

    def pos(self, path: KeyPath, *, key: bool = False) -> Pos:
        return position(self.positions, self.key_positions, path, key=key)


@dataclass(frozen=True)
class ModelSpec:
    model: str
    sources: Mapping[str, SourceSpec]
    evaluation: EvaluationSpec
    checks: tuple[CheckSpec, ...] = ()
    drift: tuple[DriftSpec, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()
    kpis: tuple[KpiSpec, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    file: str = ""
    root: str = "."
    locator: Locator | None = None

    def monitors(self) -> Iterator[MonitorSpec]:
        """Every monitor, in file order of sections."""
        yield from self.checks
        yield from self.drift
        yield from self.metrics
        yield from self.kpis


@dataclass(frozen=True)
class ReceiverSpec:
    name: str
    urls: tuple[str, ...] = ()
    config: str | None = None
    tags: tuple[str, ...] = ()
    title: str | None = None
    body: str | None = None


@dataclass(frozen=True)
class GroupingSpec:
    by: tuple[str, ...] = ("model",)
    wait: timedelta = timedelta(seconds=30)
    interval: timedelta = timedelta(minutes=5)
    repeat: timedelta = timedelta(hours=4)


@dataclass(frozen=True)
class RouteSpec:
    match: Mapping[str, str] = field(default_factory=dict)
    match_re: Mapping[str, str] = field(default_factory=dict)
    receivers: tuple[str, ...] = ()
    continue_: bool = False
    grouping: GroupingSpec | None = None
    send_resolved: bool = True
    mute_time_intervals: tuple[str, ...] = ()
    routes: tuple[RouteSpec, ...] = ()


@dataclass(frozen=True)
class InhibitRule:
    source_match: Mapping[str, str]
    target_match: Mapping[str, str]
    equal: tuple[str, ...] = ("model", "monitor", "segment")


DEFAULT_INHIBIT = (InhibitRule({"severity": "critical"}, {"severity": "warn"}),)


@dataclass(frozen=True)
class TimeRange:
    start: str
    end: str


@dataclass(frozen=True)
class TimeInterval:
    times: tuple[TimeRange, ...] = ()
    weekdays: tuple[str, ...] = ()
    days_of_month: tuple[str, ...] = ()
    months: tuple[str, ...] = ()
    location: str = "UTC"


@dataclass(frozen=True)
class DeliverySpec:
    timeout: timedelta = timedelta(seconds=10)
    backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=10)
    deadline: timedelta = timedelta(hours=24)
    run_budget: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class TemplatesSpec:
    title: str | None = None
    body: str | None = None
    resolved_title: str | None = None


@dataclass(frozen=True)
class HistorySpec:
    """How long result history is kept in the store."""

    retention: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class ExecutorSpec:
    """Where evaluations run: ``local`` (this process) or ``dask`` (a cluster at
    ``address``; see docs/scaling.md), and how large the partial-state cache
    may grow per model."""

    type: str = "local"
    address: str | None = None
    timeout: timedelta = timedelta(minutes=10)
    # the partial-state cache's bound per model (``cache_mib``; the same default
    # as ``engine.partial_cache.DEFAULT_MAX_BYTES``)
    cache_bytes: int = 256 * 2**20


@dataclass(frozen=True)
class ReportSpec:
    """A report the daemon sends on a cadence (``every``, or ``cron`` read in
    ``timezone``): the models (empty: all), the receivers, and the history it
    covers (``since``, ending at the send time)."""

    name: str
    receivers: tuple[str, ...]
    since: timedelta
    every: timedelta | None = None
    cron: str | None = None
    timezone: str = "UTC"
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineSpec:
    file: str | None
    root: str
    models: tuple[str, ...] = ("models/*.yaml", "models/*.yml")
    state: str = ".rulesengine/state.db"
    defaults: EvaluationSpec = field(default_factory=EvaluationSpec)
    receivers: Mapping[str, ReceiverSpec] = field(default_factory=dict)
    routes: tuple[RouteSpec, ...] = ()
    grouping: GroupingSpec = field(default_factory=GroupingSpec)
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT
    time_intervals: Mapping[str, tuple[TimeInterval, ...]] = field(default_factory=dict)
    templates: TemplatesSpec = field(default_factory=TemplatesSpec)
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    listen: str = "127.0.0.1:9108"
    history: HistorySpec = field(default_factory=HistorySpec)
    reports: tuple[ReportSpec, ...] = ()
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)


@dataclass(frozen=True)
class Config:
    """Everything loaded from the paths given on the command line."""

    engine: EngineSpec
    models: tuple[ModelSpec, ...]
    files: tuple[str, ...] = ()
    # every model of the config is here (a directory or engine.yaml was given, not
    # single model files): a model missing from it has left the config
    complete: bool = False
