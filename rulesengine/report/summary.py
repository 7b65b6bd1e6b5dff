"""The short markdown summary of a report (the body of a scheduled report's
message; the HTML page goes as its attachment).

Per model, from the report's data (:func:`rulesengine.report.build.build_report`):
the alerts that fired and those that resolved between ``since`` and ``at`` (from
the timeline: every episode, not only each alert's latest), the
worst drift (the first overall drift result of the status summary, which is worst
first), and for each metric and KPI its first and last recorded value over the
period, per segment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _in(ts: str | None, start: datetime, end: datetime) -> bool:
    return ts is not None and start <= datetime.fromisoformat(ts) <= end


def _alert(row: dict[str, Any], span: dict[str, Any]) -> str:
    col = f" ({row['column']})" if row.get("column") else ""
    seg = ", ".join(f"{k}={v}" for k, v in sorted((row.get("segment") or {}).items()))
    seg = f" [{seg}]" if seg else ""
    sev = f" {span['severity']}" if span.get("severity") else ""
    return f"{row['monitor']}{col}{seg}{sev} at {span['start']}"


def _episodes(m: dict[str, Any], start: datetime, end: datetime) -> tuple[list[str], list[str]]:
    """The alerts that started firing (not a firing alert's change of severity)
    and those that resolved in ``[start, end]``, in time order."""
    fired: list[tuple[str, str]] = []
    resolved: list[tuple[str, str]] = []
    for row in m["timeline"]:
        before: dict[str, Any] = {}
        for span in row["spans"]:
            escalated = before.get("state") == "firing" and before.get("end") == span["start"]
            if _in(span["start"], start, end):
                if span["state"] == "firing" and not escalated:
                    fired.append((span["start"], _alert(row, span)))
                elif span["state"] == "resolved":
                    resolved.append((span["start"], _alert(row, span)))
            before = span
    return [t for _, t in sorted(fired)], [t for _, t in sorted(resolved)]


def _worst_drift(m: dict[str, Any]) -> str:
    for s in m["summary"]:
        if s["kind"] == "drift" and s["column"] is not None and not s["segment"]:
            return f"{s['monitor']} {s['column']}: {_num(s['value'])} ({s['status']})"
    return "none"


def _trend(t: dict[str, Any]) -> list[str]:
    out = []
    for series in t["series"]:
        values = [p["value"] for p in series["points"] if p["value"] is not None]
        if not values:
            continue
        seg = "" if series["segment"] == "(all)" else f" [{series['segment']}]"
        last = series["points"][-1]["status"]
        out.append(
            f"- {t['monitor']}{seg}: {_num(values[0])} → {_num(values[-1])}"
            f" ({len(values)} points, now {last})"
        )
    return out or [f"- {t['monitor']}: no recorded values"]


def summary_markdown(report: dict[str, Any], name: str) -> str:
    """The markdown body for report ``name``."""
    start = datetime.fromisoformat(report["since"])
    end = datetime.fromisoformat(report["at"])
    lines = [f"Report {name} as of {report['at']} (since {report['since']})."]
    if report["history"] != "read":
        lines.append(f"History: {report['history']}.")
    for m in report["models"]:
        fired, resolved = _episodes(m, start, end)
        lines += ["", f"## {m['model']}", ""]
        lines.append(f"Fired: {'; '.join(fired) if fired else 'none'}")
        lines.append(f"Resolved: {'; '.join(resolved) if resolved else 'none'}")
        lines.append(f"Worst drift: {_worst_drift(m)}")
        trends = [line for t in m["trends"] for line in _trend(t)]
        if trends:
            lines += ["Trends:", *trends]
    return "\n".join(lines) + "\n"
