"""Meaning checks that JSON Schema cannot express.

They run on the raw data even when the schema already found problems, reading it
defensively (a value of the wrong type is skipped, the schema reported it), so one
run lists every mistake of a file: references, duplicate names, durations,
threshold consistency, SQL that compiles and is safe, regexes, Apprise URLs.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.durations import PATTERN as DURATION_PATTERN
from rulesengine.durations import parse_duration
from rulesengine.errors import KeyPath, ProblemList, did_you_mean, first_line, one_of
from rulesengine.monitors.drift.vocabulary import CATEGORICAL_ONLY, NUMERIC_ONLY, PVALUE_METHODS
from rulesengine.spec.model import (
    COLUMN_SELECTORS,
    DIRECTIONS,
    PER_COLUMN_CHECKS,
    THRESHOLD_OPS,
)
from rulesengine.spec.schema import banned_keys
from rulesengine.spec.sql import SqlError, check_shape, compile_sql

SECTIONS = {"checks": "check", "drift": "drift", "metrics": "metric", "kpis": "kpi"}

FORMATS_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}


def _str(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, str) else None


def _dict(d: Any, key: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def _list(d: Any, key: str) -> list[Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, list) else []


def _duration(
    problems: ProblemList, value: Any, path: KeyPath, *, positive: bool = True
) -> float | None:
    """Seconds of a duration string, adding a problem if it is zero when it must not be."""
    if not isinstance(value, str):
        return None
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError:
        return None  # the schema pattern already reported it
    if positive and seconds <= 0:
        problems.add(path, f"must be longer than zero, got '{value}'")
    return seconds


def format_of(path: str) -> str | None:
    """The format implied by a path's extension (``.csv.gz`` counts as ``.csv``)."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".zst", ".bz2"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return FORMATS_BY_SUFFIX.get(Path(name).suffix)


# ----------------------------------------------------------------- thresholds


_DURATION = re.compile(DURATION_PATTERN)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond any float
        return False


def check_finite(problems: ProblemList, data: Any, path: KeyPath = ()) -> None:
    """Every number must be finite and fit a float: NaN compares false with
    everything, so a NaN threshold or bound would silently never trip."""
    if isinstance(data, dict):
        for k, v in data.items():
            check_finite(problems, v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            check_finite(problems, v, (*path, i))
    elif isinstance(data, int | float) and not isinstance(data, bool) and not _finite(data):
        shown = "a number too large" if isinstance(data, int) else str(data)
        problems.add(path, f"must be a finite number, got {shown}")


def _threshold_number(
    problems: ProblemList, value: Any, path: KeyPath, durations_ok: bool
) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not _finite(value):
            return None  # reported by check_finite
        return float(value)
    if isinstance(value, str):
        if not _DURATION.match(value):
            return None  # not a duration either: the schema reported it
        if not durations_ok:
            problems.add(
                path,
                f"'{value}' is a duration, but this monitor's value is not a time: use a number",
            )
            return None
        return _duration(problems, value, path, positive=False)
    return None


def _threshold(
    problems: ProblemList, raw: Any, path: KeyPath, durations_ok: bool
) -> tuple[str, Any] | None:
    """(op, value) of a threshold mapping, value a float or (lo, hi); for a
    change threshold ``("change", (op, value, mode, offset seconds))``."""
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    op, value = next(iter(raw.items()))
    if op == "change":
        return _change(problems, value, (*path, "change"))
    if op == "derived":
        return _derived(problems, value, (*path, "derived"))
    if op not in THRESHOLD_OPS:
        return None
    if op in ("outside", "between"):
        if not isinstance(value, list) or len(value) != 2:
            return None
        lo = _threshold_number(problems, value[0], (*path, op, 0), durations_ok)
        hi = _threshold_number(problems, value[1], (*path, op, 1), durations_ok)
        if lo is None or hi is None:
            return None
        if not lo < hi:
            problems.add((*path, op), f"needs lo < hi, got [{value[0]}, {value[1]}]")
            return None
        return op, (lo, hi)
    number = _threshold_number(problems, value, (*path, op), durations_ok)
    return None if number is None else (op, number)


def _change(problems: ProblemList, raw: Any, path: KeyPath) -> tuple[str, Any] | None:
    """A ``change`` mapping: exactly one condition (numbers only), an offset
    longer than zero, a tolerance of zero or more."""
    if not isinstance(raw, dict):
        return None  # the schema reported it
    ops = [k for k in raw if k in THRESHOLD_OPS]
    if len(ops) > 1:
        problems.add(
            (*path, ops[1]),
            f"a change threshold has exactly one condition, got {', '.join(ops)}",
            key=True,
        )
        return None
    offset = _duration(problems, raw.get("offset"), (*path, "offset"))
    _duration(problems, raw.get("tolerance"), (*path, "tolerance"), positive=False)
    if not ops or offset is None or offset <= 0:
        return None
    value = raw[ops[0]]
    if any(isinstance(v, str) for v in (value if isinstance(value, list) else [value])):
        return None  # numbers only: the schema reported it
    cond = _threshold(problems, {ops[0]: value}, path, durations_ok=False)  # lo < hi
    if cond is None:
        return None
    mode = raw.get("mode", "relative")
    return "change", (cond[0], cond[1], mode, offset)


def _derived(problems: ProblemList, raw: Any, path: KeyPath) -> tuple[str, Any] | None:
    """A ``derived`` mapping as ``("derived", (kind, spread, side))``: kind ``std``
    with k, or ``quantiles`` with (lo, hi), lo < hi."""
    if not isinstance(raw, dict):
        return None  # the schema reported it
    if "std" in raw and "quantiles" in raw:
        problems.add(
            (*path, "quantiles"),
            "a derived threshold needs exactly one of: std, quantiles, got both",
            key=True,
        )
        return None
    side = raw.get("side", "both")
    k = raw.get("std")
    q = raw.get("quantiles")
    if isinstance(k, int | float) and not isinstance(k, bool) and "quantiles" not in raw:
        return "derived", ("std", float(k), side)
    if isinstance(q, list) and len(q) == 2 and "std" not in raw:
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in q):
            return None
        if not q[0] < q[1]:
            problems.add((*path, "quantiles"), f"needs lo < hi, got [{q[0]}, {q[1]}]")
            return None
        return "derived", ("quantiles", (float(q[0]), float(q[1])), side)
    return None


def _derived_pair(warn: tuple[str, Any], crit: tuple[str, Any]) -> str | None:
    """Why two derived thresholds disagree (warn must trip no later than critical,
    on the same side), if they do; bands of different kinds are not compared."""
    (wkind, w, wside), (ckind, c, cside) = warn[1], crit[1]
    if wside != cside:
        return f"warn is derived on side '{wside}' but critical on side '{cside}': use one side"
    if wkind != ckind:
        return None
    if wkind == "std" and w > c:
        return f"warn must trip no later than critical (warn std {w:g}, critical std {c:g})"
    if wkind == "quantiles" and not (c[0] <= w[0] and w[1] <= c[1]):
        return (
            "warn must trip no later than critical: warn's quantiles "
            f"{_fmt(w)} must lie inside critical's {_fmt(c)}"
        )
    return None


def _comparable(a: tuple[str, Any], b: tuple[str, Any]) -> tuple[Any, Any] | None:
    """Two thresholds as (op, value) pairs when they measure the same thing: both
    the value, or both the change with one mode and offset; else None. A derived
    band is known only at run time: never compared here (see _derived_pair)."""
    if "derived" in (a[0], b[0]):
        return None
    if a[0] != "change" and b[0] != "change":
        return a, b
    if a[0] == b[0] == "change" and a[1][2:] == b[1][2:]:
        return a[1][:2], b[1][:2]
    return None


def _no_later(warn: tuple[str, Any], crit: tuple[str, Any]) -> bool:
    """True if ``warn`` is violated whenever ``critical`` is."""
    d = DIRECTIONS[warn[0]]
    w, c = warn[1], crit[1]
    if d == "up":
        return w <= c
    if d == "down":
        return w >= c
    if d == "out":  # warn's allowed range lies inside critical's
        return c[0] <= w[0] and w[1] <= c[1]
    return w[0] <= c[0] and c[1] <= w[1]  # between: warn's band contains critical's


def check_thresholds(
    problems: ProblemList,
    item: dict[str, Any],
    path: KeyPath,
    *,
    required: bool,
    durations_ok: bool = False,
) -> None:
    """warn/critical/resolve of one monitor (or a drift_share block)."""
    parsed = {}
    for sev in ("warn", "critical", "resolve"):
        if sev in item:
            parsed[sev] = _threshold(problems, item[sev], (*path, sev), durations_ok)
    if required and "warn" not in item and "critical" not in item:
        problems.add(path, "no threshold: add warn: and/or critical:, e.g. critical: {above: 0.01}")
    warn, crit, res = parsed.get("warn"), parsed.get("critical"), parsed.get("resolve")
    blocked = _change_resolve(problems, item, path) or _derived_resolve(problems, item, path)
    if warn and crit and warn[0] == crit[0] == "derived":
        why = _derived_pair(warn, crit)
        if why:
            problems.add((*path, "warn"), why)
    warn = None if warn and warn[0] == "derived" else warn
    crit = None if crit and crit[0] == "derived" else crit
    pair = _comparable(warn, crit) if warn and crit else None
    if pair:
        warn, crit = pair
        if DIRECTIONS[warn[0]] != DIRECTIONS[crit[0]]:
            problems.add(
                (*path, "warn"),
                f"warn uses '{warn[0]}' but critical uses "
                f"'{crit[0]}': both must point the same way",
            )
        elif not _no_later(warn, crit):
            problems.add(
                (*path, "warn"),
                "warn must trip no later than critical "
                f"(warn {warn[0]} {_fmt(warn[1])}, critical {crit[0]} "
                f"{_fmt(crit[1])})",
            )
    if res and not blocked:
        for sev, trig in (("warn", warn), ("critical", crit)):
            if not trig:
                continue
            if DIRECTIONS[res[0]] != DIRECTIONS[trig[0]]:
                problems.add(
                    (*path, "resolve"),
                    f"resolve must use the same direction as {sev} ('{trig[0]}'), got '{res[0]}'",
                )
                break
            if not _no_later(res, trig):
                problems.add(
                    (*path, "resolve"),
                    f"resolve must be looser than {sev}: an "
                    "alert must stop violating it later, not sooner",
                )
                break
        derived_only = any(
            isinstance(item.get(k), dict) and "derived" in item[k] for k in ("warn", "critical")
        )
        if not warn and not crit and "resolve" in item and not derived_only:
            problems.add((*path, "resolve"), "resolve needs a warn or critical threshold")


def _change_resolve(problems: ProblemList, item: dict[str, Any], path: KeyPath) -> bool:
    """A problem for ``resolve`` next to a change threshold (hysteresis compares
    the value itself, so it needs fixed ones); True when one was added."""
    raw = item.get("resolve")
    if isinstance(raw, dict) and "change" in raw:
        problems.add(
            (*path, "resolve", "change"),
            "resolve cannot be a change threshold: hysteresis compares the value "
            "itself; use a fixed condition such as resolve: {above: 0.004}",
            key=True,
        )
        return True
    changed = [
        sev
        for sev in ("warn", "critical")
        if isinstance(item.get(sev), dict) and "change" in item[sev]
    ]
    if "resolve" in item and changed:
        problems.add(
            (*path, "resolve"),
            f"resolve cannot be used with a change threshold ({changed[0]}): hysteresis "
            "compares the value itself, not its change",
            key=True,
        )
        return True
    return False


def _derived_resolve(problems: ProblemList, item: dict[str, Any], path: KeyPath) -> bool:
    """A problem for a derived ``resolve`` (True when one was added)."""
    raw = item.get("resolve")
    if isinstance(raw, dict) and "derived" in raw:
        problems.add(
            (*path, "resolve", "derived"),
            "resolve cannot be derived: hysteresis needs a fixed condition such as "
            "resolve: {below: 0.75}",
            key=True,
        )
        return True
    return False


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    return f"{v:g}"


# ----------------------------------------------------------------- SQL and names


def check_sql(
    problems: ProblemList, item: dict[str, Any], path: KeyPath, key: str, shape: str
) -> None:
    text = _str(item, key)
    if text is None:
        return
    try:
        compiled = compile_sql(text)
    except SqlError as exc:
        problems.add((*path, key), str(exc))
        return
    message = check_shape(compiled, shape)  # type: ignore[arg-type]
    if message:
        problems.add((*path, key), message)


def check_ref(
    problems: ProblemList, name: Any, known: Iterable[str], path: KeyPath, what: str
) -> bool:
    if not isinstance(name, str):
        return False
    pool = list(known)
    if name in pool:
        return True
    hint = did_you_mean(name, pool) or (f"; defined: {', '.join(pool)}" if pool else "")
    problems.add(path, f"unknown {what} '{name}'{hint}")
    return False


def check_regex(problems: ProblemList, text: Any, path: KeyPath) -> None:
    if not isinstance(text, str):
        return
    try:
        pl.Series([""]).str.contains(text)
    except (Exception, pl.exceptions.PanicException) as exc:  # a panic is a BaseException
        lines = str(exc).splitlines()
        detail = next((ln.strip() for ln in lines if ln.strip().startswith("error")), None)
        problems.add(path, f"invalid regular expression: {detail or first_line(exc)}")


def check_timezone(problems: ProblemList, tz: Any, path: KeyPath) -> None:
    if not isinstance(tz, str):
        return
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(tz, sorted(zoneinfo.available_timezones()))
        problems.add(path, f"unknown time zone '{tz}'{hint}")


CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def cron_problem(expr: str) -> str | None:
    """Why croniter cannot use ``expr`` as a 5-field cron expression, or None.

    Each field is tried alone (the others ``*``) so the message names the field;
    then the whole expression must match some date (``0 0 30 2 *`` never does).
    """
    from croniter import CroniterBadDateError, CroniterError, croniter

    fields = expr.split()
    if len(fields) != len(CRON_FIELDS):
        return (
            f"a cron expression has 5 fields ({' '.join(CRON_FIELDS)}), "
            f"got {len(fields)} in '{expr}'"
        )
    start = datetime(2000, 1, 1, tzinfo=UTC)
    for i, name in enumerate(CRON_FIELDS):
        probe = ["*"] * len(CRON_FIELDS)
        probe[i] = fields[i]
        try:
            croniter(" ".join(probe), start)
        except (CroniterError, ValueError, KeyError):
            return f"invalid cron {name} field '{fields[i]}' in '{expr}'"
    try:
        croniter(expr, start).get_next(datetime)
    except CroniterBadDateError:
        return f"cron expression '{expr}' matches no date"
    except (CroniterError, ValueError, KeyError):
        return f"invalid cron expression '{expr}'"
    return None


def check_cadence(problems: ProblemList, evaluation: dict[str, Any], path: KeyPath) -> None:
    """``cron`` and ``timezone`` of an ``evaluation`` (or engine ``defaults``) mapping."""
    cron = _str(evaluation, "cron")
    if "cron" in evaluation and "every" in evaluation:
        problems.add((*path, "cron"), "set either every or cron, not both")
    if cron is not None:
        why = cron_problem(cron)
        if why:
            problems.add((*path, "cron"), why)
    if "timezone" in evaluation:
        check_timezone(problems, evaluation.get("timezone"), (*path, "timezone"))


# ----------------------------------------------------------------- the model


def check_model(data: Any, problems: ProblemList) -> None:
    """Add every semantic problem of a model file's raw data."""
    if not isinstance(data, dict):
        return
    check_finite(problems, data)
    sources = _dict(data, "sources")
    for name, src in sources.items():
        _check_source(problems, src, ("sources", name))
    evaluation = _dict(data, "evaluation")
    for key in ("every", "window", "deadline"):
        _duration(problems, evaluation.get(key), ("evaluation", key))
    _duration(problems, evaluation.get("delay"), ("evaluation", "delay"), positive=False)
    check_cadence(problems, evaluation, ("evaluation",))

    seen: dict[str, KeyPath] = {}
    for section in SECTIONS:
        for i, item in enumerate(_list(data, section)):
            path: KeyPath = (section, i)
            if not isinstance(item, dict):
                continue
            name = _str(item, "name")
            if name is not None:
                if name in seen:
                    first = problems.pos_of((*seen[name], "name"))
                    problems.add(
                        (*path, "name"),
                        f"duplicate monitor name '{name}' (first "
                        f"used at line {first.line}); names are unique within a model",
                    )
                else:
                    seen[name] = path
            _check_monitor(problems, section, item, path, sources)
            if section != "drift":
                check_derived(problems, item, path, sources, evaluation)


def _check_source(problems: ProblemList, src: Any, path: KeyPath) -> None:
    if not isinstance(src, dict):
        return
    p = _str(src, "path")
    fmt = _str(src, "format")
    if p is not None and fmt is None and format_of(p) is None:
        problems.add(
            (*path, "path"),
            f"cannot tell the format of '{p}' from its extension: "
            "add format: parquet, csv, ndjson or ipc",
        )
    if "partition_date" in src and "timestamp" not in src:
        problems.add((*path, "partition_date"), "partition_date needs a timestamp column")
    if "timestamp_unit" in src and "timestamp" not in src:
        problems.add((*path, "timestamp_unit"), "timestamp_unit needs a timestamp column")
    if "timezone" in src:
        check_timezone(problems, src.get("timezone"), (*path, "timezone"))
    effective = fmt or (format_of(p) if p else None)
    if src.get("hive_partitioning") is True and effective in ("csv", "ndjson"):
        problems.add(
            (*path, "hive_partitioning"),
            f"hive_partitioning applies to parquet and "
            f"ipc sources; Polars cannot read {effective} that way",
        )
    if "separator" in src and effective not in (None, "csv"):
        problems.add(
            (*path, "separator"), f"separator only applies to csv, this source is {effective}"
        )


def _check_monitor(
    problems: ProblemList,
    section: str,
    item: dict[str, Any],
    path: KeyPath,
    sources: dict[str, Any],
) -> None:
    kind = SECTIONS[section]
    typ = _str(item, "type")
    source_name = _str(item, "source")
    has_source = check_ref(problems, source_name, sources, (*path, "source"), "source")
    source = sources.get(source_name) if has_source else None
    timestamped = isinstance(source, dict) and "timestamp" in source
    # the name of a known source without a timestamp column, for monitors that need one
    untimed = source_name if has_source and not timestamped else None
    _check_timing(problems, item, path)
    check_sql(problems, item, path, "filter", "row")
    if kind == "drift":
        _check_drift(problems, item, path, sources, timestamped)
        return
    durations_ok = kind == "check" and typ == "freshness"
    needs_threshold = not (kind == "check" and typ == "schema")
    check_thresholds(problems, item, path, required=needs_threshold, durations_ok=durations_ok)
    if kind == "check":
        _check_check(problems, item, path, sources, untimed)
    elif kind == "metric":
        _check_metric(problems, item, path, untimed)
    else:
        _check_kpi(problems, item, path, untimed)
    join = _dict(item, "join")
    if join and (
        check_ref(problems, join.get("source"), sources, (*path, "join", "source"), "source")
        and join.get("source") == source_name
    ):
        problems.add((*path, "join", "source"), "a source cannot be joined onto itself")
    if "min_label_coverage" in item and not join:
        problems.add((*path, "min_label_coverage"), "min_label_coverage needs join:")


def _check_timing(problems: ProblemList, item: dict[str, Any], path: KeyPath) -> None:
    """A monitor's durations, and when an alert fires."""
    _duration(problems, item.get("window"), (*path, "window"))
    _duration(problems, item.get("delay"), (*path, "delay"), positive=False)
    _duration(problems, item.get("keep_firing_for"), (*path, "keep_firing_for"))
    _duration(problems, item.get("for"), (*path, "for"))
    fire_after = _dict(item, "fire_after")
    v, n = fire_after.get("violations"), fire_after.get("of_last")
    if isinstance(v, int) and isinstance(n, int) and v > n:
        problems.add((*path, "fire_after"), f"violations ({v}) cannot exceed of_last ({n})")
    if "fire_after" in item and "for" in item:
        problems.add((*path, "fire_after"), "use either for: or fire_after:, not both")


def _check_check(
    problems: ProblemList,
    item: dict[str, Any],
    path: KeyPath,
    sources: dict[str, Any],
    untimed: str | None,
) -> None:
    typ = _str(item, "type")
    if typ in ("new_categories", "outlier_rate"):
        check_ref(problems, item.get("reference"), sources, (*path, "reference"), "source")
    if typ == "custom":
        check_sql(problems, item, path, "expr", "aggregate")
    if typ == "pattern":
        check_regex(problems, item.get("regex"), (*path, "regex"))
    if typ == "out_of_range":
        lo, hi = item.get("min"), item.get("max")
        if lo is None and hi is None:
            problems.add(path, "out_of_range needs min:, max: or both")
        elif isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            problems.add((*path, "min"), f"min ({lo}) must not exceed max ({hi})")
    if typ == "freshness" and untimed is not None and "column" not in item:
        problems.add(
            (*path, "source"),
            f"freshness needs a time column: source "
            f"'{untimed}' has no timestamp; add one there or set column:",
        )
    if typ in PER_COLUMN_CHECKS:
        _check_columns(problems, item, path, typ)


def _check_metric(
    problems: ProblemList, item: dict[str, Any], path: KeyPath, untimed: str | None
) -> None:
    typ = _str(item, "type")
    if typ is None and "expr" not in item:
        problems.add(path, "a metric needs type: (e.g. recall, quantile, rate) or expr:")
    elif typ is None:
        for key in banned_keys("metric", "expr", item):
            problems.add(
                (*path, key),
                f"key '{key}' does not apply to a metric without type: (an expr metric); set type:",
                key=True,
            )
    for key in ("prediction", "target", "score", "predicate"):
        check_sql(problems, item, path, key, "row")
    if typ in (None, "expr"):
        check_sql(problems, item, path, "expr", "aggregate")
    if typ == "throughput" and untimed is not None:
        problems.add(
            (*path, "source"), f"throughput needs a timestamp: source '{untimed}' has none"
        )
    _check_compare(problems, item, path, untimed)


def _check_kpi(
    problems: ProblemList, item: dict[str, Any], path: KeyPath, untimed: str | None
) -> None:
    check_sql(problems, item, path, "expr", "aggregate")
    _check_compare(problems, item, path, untimed)


def _check_compare(
    problems: ProblemList, item: dict[str, Any], path: KeyPath, untimed: str | None
) -> None:
    """``compare:`` of a metric or KPI: a duration, over a source with a timestamp."""
    compare = _dict(item, "compare")
    _duration(problems, compare.get("offset"), (*path, "compare", "offset"))
    if compare and untimed is not None:
        problems.add((*path, "compare"), f"compare needs a timestamp: source '{untimed}' has none")


def _check_columns(problems: ProblemList, item: dict[str, Any], path: KeyPath, typ: str) -> None:
    """``columns:`` (a list or a selector) and ``exclude:`` of a per-column check."""
    columns = item.get("columns")
    if "column" in item and "columns" in item:
        problems.add(
            (*path, "columns"),
            f"{typ} takes either column: (one column) or columns: (several), not both",
            key=True,
        )
    if isinstance(columns, str) and columns not in COLUMN_SELECTORS:
        hint = did_you_mean(columns, COLUMN_SELECTORS) or f" (for one column: [{columns}])"
        problems.add(
            (*path, "columns"),
            f"unknown selector '{columns}'{hint}; columns: takes a list of columns "
            f"or a selector: {one_of(COLUMN_SELECTORS)}",
        )
    if "columns" in item and "thresholds_from" in item:
        problems.add(
            (*path, "thresholds_from"),
            "thresholds_from derives one band for one column: use column:, or one check per column",
            key=True,
        )
    if "exclude" in item and not isinstance(columns, str):
        why = (
            "with a list of columns, leave the names out of the list"
            if isinstance(columns, list)
            else "there is no columns: selector to exclude from"
        )
        problems.add(
            (*path, "exclude"),
            f"exclude applies to a columns: selector (numeric, categorical or all); {why}",
            key=True,
        )


def _check_drift(
    problems: ProblemList,
    item: dict[str, Any],
    path: KeyPath,
    sources: dict[str, Any],
    timestamped: bool,
) -> None:
    ref = item.get("reference")
    if isinstance(ref, str):
        check_ref(problems, ref, sources, (*path, "reference"), "source")
    elif isinstance(ref, dict):
        name = ref.get("source")
        known = check_ref(problems, name, sources, (*path, "reference", "source"), "source")
        if known and (not isinstance(sources.get(name), dict) or "timestamp" not in sources[name]):
            problems.add(
                (*path, "reference", "source"),
                f"a trailing baseline needs a timestamp: source '{name}' has none",
            )
        _duration(problems, ref.get("offset"), (*path, "reference", "offset"))
        _duration(problems, ref.get("window"), (*path, "reference", "window"))
    if "columns" in item and "exclude" in item:
        problems.add((*path, "exclude"), "exclude only applies when columns: is not given")
    columns = [c for c in _list(item, "columns") if isinstance(c, str)]
    method = _str(item, "method")
    _check_drift_threshold(problems, method, item.get("threshold"), (*path, "threshold"))
    for col, override in _dict(item, "overrides").items():
        opath = (*path, "overrides", col)
        if columns and col not in columns:
            problems.add(
                opath, f"column '{col}' is not in columns{did_you_mean(col, columns)}", key=True
            )
        if not isinstance(override, dict):
            continue
        m = override.get("method") if isinstance(override.get("method"), str) else method
        t = override.get("type")
        if m in NUMERIC_ONLY and t == "categorical":
            problems.add(
                (*opath, "method"),
                f"method '{m}' needs a numeric column, but '{col}' is declared categorical",
            )
        if m in CATEGORICAL_ONLY and t == "numeric":
            problems.add(
                (*opath, "method"),
                f"method '{m}' needs a categorical column, but '{col}' is declared numeric",
            )
        _check_drift_threshold(problems, m, override.get("threshold"), (*opath, "threshold"))
    share = item.get("drift_share")
    if isinstance(share, dict):
        check_thresholds(problems, share, (*path, "drift_share"), required=False)
        for sev in ("warn", "critical", "resolve"):
            raw = share.get(sev)
            if isinstance(raw, dict):
                for op, value in raw.items():
                    values = value if isinstance(value, list) else [value]
                    if any(isinstance(x, int | float) and not 0 <= x <= 1 for x in values):
                        problems.add(
                            (*path, "drift_share", sev, op),
                            "drift_share is a share of columns: use values in 0..1",
                        )


def _check_drift_threshold(
    problems: ProblemList, method: str | None, threshold: Any, path: KeyPath
) -> None:
    if method in PVALUE_METHODS and isinstance(threshold, int | float) and not (0 < threshold < 1):
        problems.add(
            path,
            f"'{method}' compares a p-value: the threshold must be between 0 "
            f"and 1, got {threshold}",
        )


# ------------------------------------------- derived thresholds and segments

# types whose value means nothing over a chunk of the reference
NOT_DERIVABLE = {
    ("check", "schema"): "the schema check counts problems in the window's files",
    ("check", "freshness"): "freshness is an age at `at`",
    ("metric", "throughput"): "throughput divides by the monitor's window",
}


def _derived_severities(item: dict[str, Any]) -> list[KeyPath]:
    """The paths of every derived threshold of a monitor, its segments' included."""
    found: list[KeyPath] = []
    for sev in ("warn", "critical"):
        if isinstance(item.get(sev), dict) and "derived" in item[sev]:
            found.append((sev, "derived"))
    for i, entry in enumerate(_list(item, "segments")):
        for sev in ("warn", "critical"):
            raw = entry.get(sev) if isinstance(entry, dict) else None
            if isinstance(raw, dict) and "derived" in raw:
                found.append(("segments", i, sev, "derived"))
    return found


def check_derived(
    problems: ProblemList,
    item: dict[str, Any],
    path: KeyPath,
    sources: dict[str, Any],
    evaluation: dict[str, Any],
) -> None:
    """``thresholds_from``, ``bounds``, derived thresholds and ``segments`` of a
    check, metric or KPI."""
    uses = _derived_severities(item)
    src = _dict(item, "thresholds_from")
    if uses and "thresholds_from" not in item:
        problems.add(
            (*path, *uses[0]),
            "a derived threshold needs thresholds_from: "
            "{source: <reference>, chunk: {rows: 5000}} on the monitor",
            key=True,
        )
    if "thresholds_from" in item and not uses:
        problems.add(
            (*path, "thresholds_from"),
            "thresholds_from feeds derived thresholds, but none is set: "
            "add e.g. critical: {derived: {std: 3}}",
            key=True,
        )
    if "bounds" in item and not uses:
        problems.add(
            (*path, "bounds"), "bounds clamps derived thresholds, but none is set", key=True
        )
    bounds = _dict(item, "bounds")
    lo, hi = bounds.get("min"), bounds.get("max")
    if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
        problems.add((*path, "bounds", "min"), f"min ({lo}) must not exceed max ({hi})")
    if src:
        _check_thresholds_from(problems, src, (*path, "thresholds_from"), sources)
    _check_not_derivable(problems, item, path, uses)
    _check_segments(problems, item, path, evaluation)


def _check_thresholds_from(
    problems: ProblemList, src: dict[str, Any], path: KeyPath, sources: dict[str, Any]
) -> None:
    name = src.get("source")
    known = check_ref(problems, name, sources, (*path, "source"), "source")
    chunk = _dict(src, "chunk")
    _duration(problems, chunk.get("every"), (*path, "chunk", "every"))
    if "every" in chunk and known and "timestamp" not in _dict(sources, str(name)):
        problems.add(
            (*path, "chunk", "every"),
            f"chunks by time need a timestamp: source '{name}' has none; use rows: instead",
        )


def _check_not_derivable(
    problems: ProblemList, item: dict[str, Any], path: KeyPath, uses: list[KeyPath]
) -> None:
    """Derived thresholds on a type whose value a chunk cannot give, or next to a
    ``compare`` or a ``change`` threshold."""
    if not uses:
        return
    typ = _str(item, "type")
    for (_kind, t), why in NOT_DERIVABLE.items():
        if typ == t:  # the three names belong to one section each
            problems.add((*path, *uses[0]), f"{t} cannot derive thresholds: {why}", key=True)
            return
    if "compare" in item:
        problems.add(
            (*path, *uses[0]),
            "a derived threshold cannot be used with compare: chunks of the reference "
            "have no earlier window",
            key=True,
        )
    _check_no_change(problems, item, path, "a derived threshold")


def _check_no_change(problems: ProblemList, item: dict[str, Any], path: KeyPath, what: str) -> None:
    changed = [
        sev
        for sev in ("warn", "critical")
        if isinstance(item.get(sev), dict) and "change" in item[sev]
    ]
    if changed:
        problems.add(
            (*path, changed[0], "change"),
            f"a change threshold cannot be combined with {what} on one monitor",
            key=True,
        )


def _check_segments(
    problems: ProblemList, item: dict[str, Any], path: KeyPath, evaluation: dict[str, Any]
) -> None:
    """Each ``segments`` entry: a warn or critical, match keys among the segment
    columns (when the model file names them), consistent with the monitor's."""
    entries = _list(item, "segments")
    if not entries:
        return
    _check_no_change(problems, item, path, "segments")
    seg_by = item.get("segment_by", evaluation.get("segment_by"))
    columns = [c for c in seg_by if isinstance(c, str)] if isinstance(seg_by, list) else None
    for i, entry in enumerate(entries):
        epath = (*path, "segments", i)
        if not isinstance(entry, dict):
            continue
        if "warn" not in entry and "critical" not in entry:
            problems.add(epath, "a segments entry needs warn: or critical:")
        for col in _dict(entry, "match"):
            if columns is not None and col not in columns:
                problems.add(
                    (*epath, "match", col),
                    f"'{col}' is not a segment column of this monitor "
                    f"(segment_by: [{', '.join(columns)}]){did_you_mean(col, columns)}",
                    key=True,
                )
        merged = {k: entry.get(k, item.get(k)) for k in ("warn", "critical")}
        for sev in ("warn", "critical"):
            if isinstance(entry.get(sev), dict) and "change" in entry[sev]:
                problems.add(
                    (*epath, sev, "change"),
                    "a segment's threshold cannot be a change threshold",
                    key=True,
                )
        _check_segment_pair(problems, entry, merged, epath)


def _check_segment_pair(
    problems: ProblemList, entry: dict[str, Any], merged: dict[str, Any], path: KeyPath
) -> None:
    """The entry's thresholds, merged with the monitor's, follow the warn/critical
    rules of check_thresholds (reported at the entry)."""
    parsed = {}
    for sev in ("warn", "critical"):
        raw = merged.get(sev)
        if sev in entry:
            parsed[sev] = _threshold(problems, raw, (*path, sev), durations_ok=True)
        else:
            # the monitor's own: its problems are reported at the monitor
            parsed[sev] = _threshold(ProblemList(problems.file), raw, (), durations_ok=True)
    warn, crit = parsed["warn"], parsed["critical"]
    if not warn or not crit:
        return
    if warn[0] == crit[0] == "derived":
        why = _derived_pair(warn, crit)
    elif "derived" in (warn[0], crit[0]) or "change" in (warn[0], crit[0]):
        why = None
    elif DIRECTIONS[warn[0]] != DIRECTIONS[crit[0]]:
        why = f"warn uses '{warn[0]}' but critical uses '{crit[0]}': both must point the same way"
    elif not _no_later(warn, crit):
        why = (
            f"warn must trip no later than critical (warn {warn[0]} {_fmt(warn[1])}, "
            f"critical {crit[0]} {_fmt(crit[1])})"
        )
    else:
        why = None
    if why:
        where = "warn" if "warn" in entry else "critical"
        problems.add((*path, where), why)
