"""Notification text from templates with ``$name`` substitution only.

Templates are ``string.Template``s filled with ``safe_substitute``: no attribute
access, no expressions, no code; an unknown ``$name`` stays as written. The title
is filled once per notification (from its most severe alert, plus ``$count`` and
``$status``); the body template once per alert, the parts joined by blank lines.

Variables: model, monitor, description, kind, type, severity, state
(FIRING/RESOLVED), status (the result's), segment, column, value, threshold,
window, rows, runbook, reason, source, drift (the top drifting columns), labels,
count (title only), and every alert label as ``label_<name>``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from typing import Any

from rulesengine.engine.results import iso, threshold_text

DEFAULT_TITLE = "[$state] $model / $monitor ($severity)$more"
DEFAULT_RESOLVED_TITLE = "[RESOLVED] $model / $monitor$more"
DEFAULT_BODY = """[$state] $model / $monitor ($kind $type, $severity)
$description_line
segment: $segment$column_line
value: $value (threshold: $threshold)
window: $window
$runbook_line
$drift_line
$reason_line"""


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _threshold_text(threshold: Mapping[str, Any]) -> str:
    return threshold_text(threshold.items(), _num, spaced=True) or "-"


def alert_vars(alert: Mapping[str, Any], runbook: str | None) -> dict[str, str]:
    """Template variables of one alert (a row of the alerts table, decoded)."""
    labels: dict[str, str] = alert["labels"]
    details: Mapping[str, Any] = alert.get("details") or {}
    state = "RESOLVED" if alert["state"] in ("resolved", "inactive") else "FIRING"
    top = details.get("top") or []
    drift = ", ".join(f"{t['column']} ({t['method']} {_num(t['value'])})" for t in top)
    window = "-"
    if alert.get("window_end"):
        start = alert.get("window_start")
        window = f"{iso(start) if start else '…'} – {iso(alert['window_end'])}"
    reason = alert.get("reason") or details.get("reason") or details.get("error") or ""
    out = {
        "model": alert["model"],
        "monitor": alert["monitor"],
        "kind": labels.get("kind", ""),
        "type": labels.get("type", ""),
        "severity": alert.get("severity") or "-",
        "state": state,
        "status": alert.get("status") or "",
        "segment": labels.get("segment") or "(all)",
        "column": alert.get("column") or "",
        "column_line": f"\ncolumn: {alert['column']}" if alert.get("column") else "",
        "value": _num(alert.get("value")),
        "threshold": _threshold_text(alert.get("threshold") or {}),
        "window": window,
        "rows": _num(details.get("rows")),
        "runbook": runbook or "",
        "runbook_line": f"runbook: {runbook}" if runbook else "",
        "drift": drift,
        "drift_line": f"top drifting columns: {drift}" if drift else "",
        "reason": reason,
        "reason_line": f"reason: {reason}" if reason else "",
        "description": alert.get("description") or "",
        "description_line": alert.get("description") or "",
        "source": labels.get("source", ""),
        "labels": ", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
    }
    out.update({f"label_{k}": str(v) for k, v in labels.items()})
    return out


def render(template: str, variables: Mapping[str, str]) -> str:
    """Fill ``template``; a line left empty only because its variables were empty
    (no runbook, no drift) is dropped, blank lines written in the template stay.
    A variable's own line breaks expand within its line."""
    out = []
    for line in template.splitlines():
        text = string.Template(line).safe_substitute(variables)
        if line.strip() and not text.strip():
            continue
        out.extend(part.rstrip() for part in text.split("\n"))
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def notification_text(
    alerts: Sequence[Mapping[str, Any]],
    runbooks: Mapping[str, str | None],
    *,
    title: str | None,
    body: str | None,
    resolved_title: str | None,
) -> tuple[str, str]:
    """(title, body) of one notification about ``alerts`` (firing first)."""
    firing = [a for a in alerts if a["state"] == "firing"]
    lead = sorted(firing or alerts, key=lambda a: (a.get("severity") != "critical", a["monitor"]))[
        0
    ]
    lead_vars = alert_vars(lead, runbooks.get(lead["id"]))
    more = len(alerts) - 1
    lead_vars.update({"count": str(len(alerts)), "more": f" and {more} more" if more > 0 else ""})
    if firing:
        title_text = render(title or DEFAULT_TITLE, lead_vars)
    else:
        title_text = render(resolved_title or DEFAULT_RESOLVED_TITLE, lead_vars)
    parts = [
        render(body or DEFAULT_BODY, alert_vars(a, runbooks.get(a["id"])))
        for a in sorted(
            alerts,
            key=lambda a: (
                a["state"] != "firing",
                a.get("severity") != "critical",
                a["monitor"],
                a["labels"].get("segment"),
                a.get("column") or "",
            ),
        )
    ]
    return title_text, "\n\n".join(parts)
