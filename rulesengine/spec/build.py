"""Raw, already validated data → frozen spec objects."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rulesengine.durations import parse_duration
from rulesengine.spec.model import (
    DEFAULT_INHIBIT,
    THRESHOLD_OPS,
    AlertSpec,
    Change,
    CheckSpec,
    ColumnOverride,
    CompareSpec,
    DeliverySpec,
    Derived,
    DriftSpec,
    EngineSpec,
    EvaluationSpec,
    ExecutorSpec,
    GroupingSpec,
    HistorySpec,
    InhibitRule,
    JoinSpec,
    KpiSpec,
    Locator,
    MetricSpec,
    ModelSpec,
    MonitorSpec,
    Policy,
    ReceiverSpec,
    ReferenceSpec,
    ReportSpec,
    RouteSpec,
    SegmentOverride,
    TemplatesSpec,
    Threshold,
    Thresholds,
    ThresholdsFrom,
    TimeInterval,
    TimeRange,
)
from rulesengine.spec.semantic import format_of


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


def _td(value: str | None) -> timedelta | None:
    return None if value is None else parse_duration(value)


def _num(value: Any) -> float:
    return parse_duration(value).total_seconds() if isinstance(value, str) else float(value)


def threshold(raw: Mapping[str, Any] | None, every: timedelta | None = None) -> Threshold | None:
    """``{op: value}``, or ``{change: {offset, mode, tolerance, op: value}}`` whose
    tolerance defaults to ``every`` (the model's cadence)."""
    if not raw:
        return None
    op, value = next(iter(raw.items()))
    change = None
    if op == "derived":
        q = value.get("quantiles")
        derived = Derived(
            std=float(value["std"]) if "std" in value else None,
            quantiles=(float(q[0]), float(q[1])) if q else None,
            side=value.get("side", "both"),
        )
        return Threshold("outside", (0.0, 0.0), derived=derived)
    if op == "change":
        tolerance = _td(value.get("tolerance"))
        change = Change(
            offset=parse_duration(value["offset"]),
            mode=value.get("mode", "relative"),
            tolerance=tolerance if tolerance is not None else (every or EvaluationSpec().every),
        )
        op = next(k for k in value if k in THRESHOLD_OPS)
        value = value[op]
    if isinstance(value, list):
        return Threshold(op, (_num(value[0]), _num(value[1])), change)
    return Threshold(op, _num(value), change)


def thresholds(raw: Mapping[str, Any], every: timedelta | None = None) -> Thresholds:
    return Thresholds(
        threshold(raw.get("warn"), every),
        threshold(raw.get("critical"), every),
        threshold(raw.get("resolve"), every),
    )


def evaluation(raw: Mapping[str, Any], base: EvaluationSpec) -> EvaluationSpec:
    # `every` and `cron` are one setting in two forms: a model that sets `every`
    # replaces a `cron` inherited from the engine's defaults, and the other way round.
    if "cron" in raw:
        cron = raw["cron"]
    elif "every" in raw:
        cron = None
    else:
        cron = base.cron
    return EvaluationSpec(
        every=_td(raw.get("every")) or base.every,
        cron=cron,
        timezone=raw.get("timezone", base.timezone),
        catch_up=raw.get("catch_up", base.catch_up),
        catch_up_max=raw.get("catch_up_max", base.catch_up_max),
        deadline=_td(raw["deadline"]) if "deadline" in raw else base.deadline,
        window=_td(raw.get("window")) or base.window,
        delay=_td(raw["delay"]) if "delay" in raw else base.delay,
        segment_by=tuple(raw.get("segment_by", base.segment_by)),
        max_segments=raw.get("max_segments", base.max_segments),
        min_rows=raw.get("min_rows", base.min_rows),
        stale_after=raw.get("stale_after", base.stale_after),
    )


def resolve_path(path: str, root: Path) -> str:
    """Local relative paths are relative to the config root; URLs stay as they are."""
    if "://" in path:
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else root / p)


def _alert(raw: Mapping[str, Any]) -> AlertSpec:
    f = raw.get("for")
    fire_after = raw.get("fire_after")
    return AlertSpec(
        for_evaluations=f if isinstance(f, int) else 1,
        for_duration=_td(f) if isinstance(f, str) else None,
        keep_firing_for=_td(raw.get("keep_firing_for")),
        fire_after=(fire_after["violations"], fire_after["of_last"]) if fire_after else None,
        policy=Policy(**raw.get("policy", {})),
    )


def _common(
    raw: Mapping[str, Any], kind: str, typ: str, ev: EvaluationSpec, path: tuple[Any, ...]
) -> dict[str, Any]:
    return {
        "name": raw["name"],
        "kind": kind,
        "type": typ,
        "source": raw["source"],
        "window": _td(raw.get("window")) or ev.window,
        "delay": _td(raw["delay"]) if "delay" in raw else ev.delay,
        "segment_by": tuple(raw.get("segment_by", ev.segment_by)),
        "min_rows": raw.get("min_rows", ev.min_rows),
        "alert": _alert(raw),
        "filter": raw.get("filter"),
        "description": raw.get("description"),
        "labels": _frozen(raw.get("labels")),
        "runbook": raw.get("runbook"),
        "enabled": raw.get("enabled", True),
        "path": path,
        **_derived_keys(raw, ev),
    }


def _derived_keys(raw: Mapping[str, Any], ev: EvaluationSpec) -> dict[str, Any]:
    """``thresholds_from``, ``bounds`` and ``segments`` (see engine/thresholds.py)."""
    out: dict[str, Any] = {}
    src = raw.get("thresholds_from")
    if src:
        chunk = src["chunk"]
        out["thresholds_from"] = ThresholdsFrom(
            src["source"], rows=chunk.get("rows"), every=_td(chunk.get("every"))
        )
    bounds = raw.get("bounds")
    if bounds:
        lo, hi = bounds.get("min"), bounds.get("max")
        out["bounds"] = (None if lo is None else float(lo), None if hi is None else float(hi))
    if raw.get("segments"):
        out["segments"] = tuple(
            SegmentOverride(
                _frozen(o["match"]),
                threshold(o.get("warn"), ev.every),
                threshold(o.get("critical"), ev.every),
                "warn" in o,
                "critical" in o,
            )
            for o in raw["segments"]
        )
    return out


def _join(raw: Mapping[str, Any] | None) -> JoinSpec | None:
    if not raw:
        return None
    on = raw["on"]
    return JoinSpec(raw["source"], (on,) if isinstance(on, str) else tuple(on))


_CHECK_FIELDS = (
    "column",
    "strict",
    "min",
    "max",
    "reference",
    "regex",
    "rate_of",
    "method",
    "factor",
    "expr",
)
_METRIC_FIELDS = (
    "prediction",
    "target",
    "score",
    "positive",
    "column",
    "q",
    "predicate",
    "expr",
    "min_label_coverage",
    "exact",
)


def _check(raw: Mapping[str, Any], ev: EvaluationSpec, path: tuple[Any, ...]) -> CheckSpec:
    typ = raw["type"]
    th = thresholds(raw, ev.every)
    if typ == "schema" and th.warn is None and th.critical is None:
        th = Thresholds(critical=Threshold("above", 0.0), resolve=th.resolve)
    return CheckSpec(
        **_common(raw, "check", typ, ev, path),
        thresholds=th,
        columns=tuple(raw["columns"]) if isinstance(raw.get("columns"), list) else (),
        selector=raw["columns"] if isinstance(raw.get("columns"), str) else None,
        exclude=tuple(raw.get("exclude", ())),
        expected_columns=_frozen(raw.get("expected_columns")),
        values=tuple(raw.get("values", ())),
        **{k: raw[k] for k in _CHECK_FIELDS if k in raw},
    )


def _metric(raw: Mapping[str, Any], ev: EvaluationSpec, path: tuple[Any, ...]) -> MetricSpec:
    typ = raw.get("type", "expr")
    return MetricSpec(
        **_common(raw, "metric", typ, ev, path),
        thresholds=thresholds(raw, ev.every),
        join=_join(raw.get("join")),
        compare=_compare(raw.get("compare")),
        **{k: raw[k] for k in _METRIC_FIELDS if k in raw},
    )


def _compare(raw: Mapping[str, Any] | None) -> CompareSpec | None:
    if not raw:
        return None
    return CompareSpec(_td(raw["offset"]), raw.get("mode", "relative"))


def _kpi(raw: Mapping[str, Any], ev: EvaluationSpec, path: tuple[Any, ...]) -> KpiSpec:
    return KpiSpec(
        **_common(raw, "kpi", "kpi", ev, path),
        thresholds=thresholds(raw, ev.every),
        expr=raw["expr"],
        join=_join(raw.get("join")),
        compare=_compare(raw.get("compare")),
    )


DEFAULT_DRIFT_SHARE = Thresholds(critical=Threshold("at_or_above", 0.5))


def _drift(raw: Mapping[str, Any], ev: EvaluationSpec, path: tuple[Any, ...]) -> DriftSpec:
    ref = raw["reference"]
    reference = (
        ReferenceSpec(ref)
        if isinstance(ref, str)
        else ReferenceSpec(ref["source"], _td(ref["offset"]), _td(ref.get("window")))
    )
    share = raw.get("drift_share")
    return DriftSpec(
        **_common(raw, "drift", "drift", ev, path),
        thresholds=thresholds(share, ev.every) if share else DEFAULT_DRIFT_SHARE,
        reference=reference,
        columns=tuple(raw.get("columns", ())),
        exclude=tuple(raw.get("exclude", ())),
        method=raw.get("method", "auto"),
        threshold=raw.get("threshold"),
        overrides=_frozen({c: ColumnOverride(**o) for c, o in raw.get("overrides", {}).items()}),
        correction=raw.get("correction", "none"),
        bins=raw.get("bins", 10),
        column_severity=raw.get("column_severity", "warn"),
        exact=bool(raw.get("exact", False)),
    )


_BUILDERS = {"checks": _check, "drift": _drift, "metrics": _metric, "kpis": _kpi}


def build_model(
    raw: Mapping[str, Any], *, file: str, root: Path, base: EvaluationSpec, locator: Locator
) -> ModelSpec:
    from rulesengine.spec.model import SourceSpec

    sources = {}
    for name, s in raw["sources"].items():
        sources[name] = SourceSpec(
            name=name,
            path=resolve_path(s["path"], root),
            format=s.get("format") or format_of(s["path"]) or "parquet",
            timestamp=s.get("timestamp"),
            timestamp_unit=s.get("timestamp_unit"),
            timezone=s.get("timezone", "UTC"),
            partition_date=s.get("partition_date"),
            required=s.get("required", False),
            hive_partitioning=s.get("hive_partitioning"),
            separator=s.get("separator", "\t" if ".tsv" in s["path"].lower() else ","),
            storage_options=_frozen(s.get("storage_options")),
            description=s.get("description"),
        )
    ev = evaluation(raw.get("evaluation", {}), base)
    sections: dict[str, tuple[MonitorSpec, ...]] = {}
    for section, build in _BUILDERS.items():
        sections[section] = tuple(
            build(item, ev, (section, i)) for i, item in enumerate(raw.get(section, []))
        )
    return ModelSpec(
        model=raw["model"],
        sources=_frozen(sources),
        evaluation=ev,
        labels=_frozen(raw.get("labels")),
        description=raw.get("description"),
        file=file,
        root=str(root),
        locator=locator,
        **sections,  # type: ignore[arg-type]
    )


def _grouping(raw: Mapping[str, Any] | None, base: GroupingSpec) -> GroupingSpec:
    raw = raw or {}
    return GroupingSpec(
        by=tuple(raw.get("by", base.by)),
        wait=_td(raw.get("wait")) if "wait" in raw else base.wait,
        interval=_td(raw.get("interval")) or base.interval,
        repeat=_td(raw.get("repeat")) or base.repeat,
    )


def _route(raw: Mapping[str, Any], base: GroupingSpec) -> RouteSpec:
    grouping = _grouping(raw["grouping"], base) if "grouping" in raw else None
    return RouteSpec(
        match=_frozen(raw.get("match")),
        match_re=_frozen(raw.get("match_re")),
        receivers=tuple(raw.get("receivers", ())),
        continue_=raw.get("continue", False),
        grouping=grouping,
        send_resolved=raw.get("send_resolved", True),
        mute_time_intervals=tuple(raw.get("mute_time_intervals", ())),
        routes=tuple(_route(r, grouping or base) for r in raw.get("routes", ())),
    )


def _history(raw: Mapping[str, Any]) -> HistorySpec:
    retention = _td(raw.get("retention"))
    return HistorySpec(retention) if retention else HistorySpec()


def _executor(raw: Mapping[str, Any]) -> ExecutorSpec:
    timeout = _td(raw.get("timeout"))
    kw: dict[str, Any] = {"timeout": timeout} if timeout else {}
    if raw.get("cache_mib") is not None:
        kw["cache_bytes"] = int(raw["cache_mib"]) * 2**20
    return ExecutorSpec(type=raw.get("type", "local"), address=raw.get("address"), **kw)


# ``since`` of a cron report that does not set it
CRON_REPORT_SINCE = timedelta(days=7)


def _report(raw: Mapping[str, Any]) -> ReportSpec:
    every = _td(raw.get("every"))
    since = _td(raw.get("since")) or every or CRON_REPORT_SINCE
    return ReportSpec(
        name=raw["name"],
        receivers=tuple(raw["receivers"]),
        since=since,
        every=every,
        cron=raw.get("cron"),
        timezone=raw.get("timezone", "UTC"),
        models=tuple(raw.get("models", ())),
    )


def build_engine(raw: Mapping[str, Any], *, file: str | None, root: Path) -> EngineSpec:
    receivers = {}
    for name, r in raw.get("receivers", {}).items():
        if isinstance(r, list):
            receivers[name] = ReceiverSpec(name, urls=tuple(r))
        else:
            receivers[name] = ReceiverSpec(
                name,
                urls=tuple(r.get("urls", ())),
                config=resolve_path(r["config"], root) if "config" in r else None,
                tags=tuple(r.get("tags", ())),
                title=r.get("title"),
                body=r.get("body"),
            )
    grouping = _grouping(raw.get("grouping"), GroupingSpec())
    inhibit = (
        tuple(
            InhibitRule(
                _frozen(i["source_match"]),
                _frozen(i["target_match"]),
                tuple(i.get("equal", InhibitRule({}, {}).equal)),
            )
            for i in raw["inhibit"]
        )
        if "inhibit" in raw
        else DEFAULT_INHIBIT
    )
    intervals = {
        name: tuple(
            TimeInterval(
                times=tuple(TimeRange(t["start"], t["end"]) for t in span.get("times", ())),
                weekdays=tuple(span.get("weekdays", ())),
                days_of_month=tuple(span.get("days_of_month", ())),
                months=tuple(span.get("months", ())),
                location=span.get("location", "UTC"),
            )
            for span in spans
        )
        for name, spans in raw.get("time_intervals", {}).items()
    }
    delivery = {k: parse_duration(v) for k, v in raw.get("delivery", {}).items()}
    kwargs: dict[str, Any] = {}
    if "models" in raw:
        kwargs["models"] = tuple(raw["models"])
    return EngineSpec(
        file=file,
        root=str(root),
        state=resolve_path(raw.get("state", EngineSpec(None, "").state), root),
        defaults=evaluation(raw.get("defaults", {}), EvaluationSpec()),
        receivers=_frozen(receivers),
        routes=tuple(_route(r, grouping) for r in raw.get("routes", ())),
        grouping=grouping,
        inhibit=inhibit,
        time_intervals=_frozen(intervals),
        templates=TemplatesSpec(**raw.get("templates", {})),
        delivery=DeliverySpec(**delivery),
        listen=raw.get("server", {}).get("listen", "127.0.0.1:9108"),
        history=_history(raw.get("history", {})),
        reports=tuple(_report(r) for r in raw.get("reports", ())),
        executor=_executor(raw.get("executor", {})),
        **kwargs,
    )
