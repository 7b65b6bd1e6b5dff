"""Evaluated results: statuses, the stable JSON document, and the text table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


def _fmt_threshold(threshold: Mapping[str, Any], status: str) -> str:
    pick = threshold.get(status) if status in ("warn", "critical") else None
    return threshold_text([(status, pick)] if pick else list(threshold.items()), _fmt_value)


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


def to_text(models: Sequence[ModelResults]) -> str:
    """A readable table per model, worst first, and a one-line summary."""
    header = ("STATUS", "MODEL", "MONITOR", "SEGMENT", "VALUE", "THRESHOLD", "ROWS")
    rows: list[tuple[str, ...]] = []
    counts: dict[str, int] = {}
    for m in models:
        for r in worst_first(m.results):
            counts[r.status] = counts.get(r.status, 0) + 1
            name = r.monitor + (f"[{r.column}]" if r.column and r.kind == "drift" else "")
            note = r.details.get("reason") or r.details.get("error")
            if note and len(str(note)) > 70:  # the JSON output has it whole
                note = str(note)[:69] + "…"
            value = _fmt_value(r.value) if r.value is not None else f"- ({note})" if note else "-"
            rows.append(
                (
                    r.status.upper(),
                    m.model,
                    name,
                    segment_text(r.segment),
                    value,
                    _fmt_threshold(r.threshold, r.status),
                    "-" if r.rows is None else str(r.rows),
                )
            )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    widths[-2] = min(widths[-2], 40)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), *(line(r) for r in rows)]
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=SEVERITY_ORDER.get))
    out.append("")
    out.append(
        f"{len(models)} model{'s' if len(models) != 1 else ''}, {total} result"
        f"{'s' if total != 1 else ''}: {summary or 'nothing evaluated'}"
    )
    return "\n".join(out)
