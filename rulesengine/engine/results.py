"""Evaluated results: statuses, the stable JSON document, and the text table."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

STATUSES = ("ok", "warn", "critical", "no_data", "insufficient_data", "error")
# worst first, for tables and summaries
SEVERITY_ORDER = {
    "error": 0,
    "critical": 1,
    "warn": 2,
    "insufficient_data": 3,
    "no_data": 4,
    "ok": 5,
}


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


SIGNIFICANT_DIGITS = 12


def reported(value: float) -> float:
    """``value`` to 12 significant digits. Polars adds up floats in parallel, in an
    order that changes from run to run, so the last bits of a mean vary; rounded,
    one input gives one Results document, byte for byte, every time."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else value


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf become None, numpy scalars become Python ones, and
    floats are :func:`reported` to 12 significant digits."""
    if isinstance(value, float):
        return reported(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return _clean(value.item())
    if isinstance(value, datetime):
        return iso(value)
    return value


@dataclass(frozen=True)
class Result:
    """One monitor's outcome for one segment (and column, for drift)."""

    monitor: str
    kind: str
    type: str
    source: str
    status: str
    value: float | None = None
    column: str | None = None
    segment: Mapping[str, Any] = field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int | None = None
    threshold: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        window = (
            {"start": iso(self.window_start), "end": iso(self.window_end)}
            if self.window_end is not None
            else None
        )
        return {
            "monitor": self.monitor,
            "kind": self.kind,
            "type": self.type,
            "source": self.source,
            "column": self.column,
            "segment": _clean(dict(self.segment)),
            "window": window,
            "value": _clean(self.value),
            "status": self.status,
            "rows": self.rows,
            "threshold": _clean(dict(self.threshold)),
            "details": _clean(dict(self.details)),
        }


@dataclass(frozen=True)
class ModelResults:
    model: str
    at: datetime
    results: tuple[Result, ...]
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "at": iso(self.at),
            "results": [r.as_dict() for r in self.results],
        }


def to_json(models: Sequence[ModelResults]) -> str:
    """The stable Results document of DESIGN.md."""
    return json.dumps({"models": [m.as_dict() for m in models]}, indent=2, ensure_ascii=False)


def worst_first(results: Iterable[Result]) -> list[Result]:
    return sorted(
        results,
        key=lambda r: (
            SEVERITY_ORDER[r.status],
            r.monitor,
            json.dumps(_clean(dict(r.segment)), sort_keys=True),
            r.column or "",
        ),
    )


def _fmt_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _fmt_threshold(
    threshold: Mapping[str, Any], status: str, number: Callable[[Any], str] | None = None
) -> str:
    pick = threshold.get(status) if status in ("warn", "critical") else None
    items = [(status, pick)] if pick else list(threshold.items())
    return threshold_text(items, number or _fmt_value)


def threshold_text(
    items: Iterable[tuple[str, Any]], number: Callable[[Any], str], *, spaced: bool = False
) -> str:
    """``warn above 5; critical outside [1, 9]``: (severity, {op: value}) pairs as
    the text table and alert messages write them, numbers through ``number``;
    ``spaced`` writes ``at_or_above`` as ``at or above``."""
    out = []
    for sev, cond in items:
        change = cond.get("change") if isinstance(cond, Mapping) else None
        if isinstance(change, Mapping):  # {change: {offset, mode, tolerance, op: v}}
            words = f"{change.get('mode')} change over {change.get('offset')}"
            rest = {k: v for k, v in change.items() if k not in ("offset", "mode", "tolerance")}
            sev, cond = f"{sev} {words}", rest
        if isinstance(cond, Mapping):
            for op, v in cond.items():
                shown = f"[{number(v[0])}, {number(v[1])}]" if isinstance(v, list) else number(v)
                out.append(f"{sev} {op.replace('_', ' ') if spaced else op} {shown}")
    return "; ".join(out)


def segment_text(segment: Mapping[str, Any], empty: str = "(all)") -> str:
    """``region=eu,tier=1``: a segment as tables, logs and alert keys write it."""
    return ",".join(f"{k}={v}" for k, v in segment.items()) or empty


def human_age(seconds: float) -> str:
    """``2h 13m``: an age in its two largest units, whole seconds rounded down
    (``45s``, ``12m 5s``, ``2h 13m``, ``3d 4h``)."""
    sign, left = ("-" if seconds < 0 else ""), int(abs(seconds))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for i, (unit, size) in enumerate(units):
        if left >= size or size == 1:
            if size == 1:
                return f"{sign}{left}s"
            nxt, nsize = units[i + 1]
            return f"{sign}{left // size}{unit} {left % size // nsize}{nxt}"
    raise AssertionError("unreachable")  # pragma: no cover


WHY_WIDTH = 200  # the why line's length in the text table; the JSON has it whole


def why(r: Result) -> str | None:
    """Why a result is not ok, in one line: the schema check's problems, an
    error's first line, or the reason a value is missing; None for an ok result
    or one whose value and threshold say it all."""
    if r.status == "ok":
        return None
    problems = r.details.get("problems")
    text: str | None = None
    if isinstance(problems, list | tuple) and problems:
        text = "; ".join(str(p) for p in problems)
    elif r.details.get("error"):
        text = str(r.details["error"]).strip().splitlines()[0]
    elif r.details.get("reason"):
        text = str(r.details["reason"])
    if text is None:
        return None
    return text if len(text) <= WHY_WIDTH else text[: WHY_WIDTH - 1] + "…"


def _row(model: str, r: Result, per_column: bool = False) -> tuple[str, ...]:
    """One result's cells; a freshness value and threshold as durations. The
    column shows as ``monitor[column]`` for drift and for a monitor that reports
    per column (``per_column``: a check with a column list)."""
    shown = r.column and (r.kind == "drift" or per_column)
    name = r.monitor + (f"[{r.column}]" if shown else "")
    if r.type == "freshness":
        value = "-" if r.value is None else human_age(r.value)
        threshold = _fmt_threshold(r.threshold, r.status, _fmt_seconds)
    else:
        value = _fmt_value(r.value)
        threshold = _fmt_threshold(r.threshold, r.status)
    rows = "-" if r.rows is None else str(r.rows)
    return (r.status.upper(), model, name, segment_text(r.segment), value, threshold, rows)


def _fmt_seconds(value: Any) -> str:
    from rulesengine.durations import format_duration

    if isinstance(value, int | float) and math.isfinite(value):
        return format_duration(timedelta(seconds=value))
    return str(value)


def to_text(models: Sequence[ModelResults]) -> str:
    """A readable table per model, worst first, and a one-line summary. A result
    that is not ok says why on an indented line under its row (see :func:`why`)."""
    header = ("STATUS", "MODEL", "MONITOR", "SEGMENT", "VALUE", "THRESHOLD", "ROWS")
    rows: list[tuple[tuple[str, ...], str | None]] = []
    counts: dict[str, int] = {}
    for m in models:
        seen = Counter((r.monitor, segment_text(r.segment)) for r in m.results)
        for r in worst_first(m.results):
            counts[r.status] = counts.get(r.status, 0) + 1
            many = seen[(r.monitor, segment_text(r.segment))] > 1
            rows.append((_row(m.model, r, many), why(r)))
    widths = [
        max(len(h), *(len(row[i]) for row, _ in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    widths[-2] = min(widths[-2], 40)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header)]
    for cells, because in rows:
        out.append(line(cells))
        if because:
            out.append(f"{' ' * (widths[0] + 2)}↳ {because}")
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=SEVERITY_ORDER.get))
    out.append("")
    out.append(
        f"{len(models)} model{'s' if len(models) != 1 else ''}, {total} result"
        f"{'s' if total != 1 else ''}: {summary or 'nothing evaluated'}"
    )
    return "\n".join(out)
