"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no
script and no external asset, so it reads the same in a browser and in an email
client, at 375 px and at 1,400 px wide."""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from typing import Any

from rulesengine.engine.results import threshold_text
from rulesengine.report.charts import coverage_chart, drift_chart, timeline_chart, trend_chart

CSS = """
body{margin:0;padding:12px;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;
color:#1f2933;background:#fff;line-height:1.4}
main{max-width:1360px;margin:0 auto}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.2em;border-bottom:2px solid #dde3ea;
padding-bottom:4px;margin-top:1.6em}h3{font-size:1em;margin:1em 0 .4em}
.meta{color:#52606d;font-size:.9em}
.table{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.85em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e4e7eb;vertical-align:top;
overflow-wrap:break-word}td.n{white-space:nowrap}
.s-critical{color:#fff;background:#c62828}.s-warn{background:#f9a825}.s-ok{color:#2e7d32}
.s-error{color:#fff;background:#6a1b9a}.status{font-weight:600;padding:1px 5px;border-radius:3px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,420px),1fr));gap:12px}
.cell{min-width:0;margin-bottom:8px}
svg.chart{display:block;max-width:100%;height:auto}
.note{color:#52606d;font-size:.85em}
"""


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _threshold(threshold: dict[str, Any]) -> str:
    return threshold_text(threshold.items(), _number) if threshold else ""


def _summary(summary: list[dict[str, Any]]) -> str:
    rows = []
    for r in summary:
        monitor = r["monitor"] + (f" · {r['column']}" if r["column"] else "")
        if r["segment"]:
            monitor += " [" + ", ".join(f"{k}={v}" for k, v in r["segment"].items()) + "]"
        rows.append(
            f'<tr><td class="n"><span class="status s-{escape(r["status"])}">{escape(r["status"])}'
            f"</span></td><td>{escape(monitor)}</td><td>{escape(r['kind'])}</td>"
            f'<td class="n">{escape(_number(r["value"]))}</td>'
            f"<td>{escape(_threshold(r['threshold']))}</td></tr>"
        )
    head = "<tr><th>status</th><th>monitor</th><th>kind</th><th>value</th><th>threshold</th></tr>"
    return f'<div class="table"><table class="summary">{head}{"".join(rows)}</table></div>'


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "--".join(parts)).strip("-")


def _charts(svgs: list[str]) -> str:
    return '<div class="grid">' + "".join(f'<div class="cell">{s}</div>' for s in svgs) + "</div>"


def _model(m: dict[str, Any], start: datetime, end: datetime) -> str:
    name = m["model"]
    parts = [f'<section id="{_slug(name)}"><h2>{escape(name)}</h2>', "<h3>Status</h3>"]
    parts.append(_summary(m["summary"]))
    if m["drift"]:
        parts.append("<h3>Drift: reference against the current window</h3>")
        ids = (_slug("drift", name, d["monitor"], d["column"]) for d in m["drift"])
        parts.append(_charts([drift_chart(d, i) for d, i in zip(m["drift"], ids, strict=True)]))
    if m["trends"]:
        parts.append("<h3>Metric and KPI trends</h3>")
        ids = (_slug("trend", name, t["monitor"]) for t in m["trends"])
        parts.append(_charts([trend_chart(t, i) for t, i in zip(m["trends"], ids, strict=True)]))
    if m["label_coverage"]:
        parts.append("<h3>Label coverage (metrics with delayed labels)</h3>")
        ids = (_slug("coverage", name, c["monitor"]) for c in m["label_coverage"])
        charts = [coverage_chart(c, i) for c, i in zip(m["label_coverage"], ids, strict=True)]
        parts.append(_charts(charts))
    parts.append("<h3>Alert timeline</h3>")
    if m["timeline"]:
        parts.append(timeline_chart(m["timeline"], start, end, _slug("timeline", name)))
    else:
        parts.append('<p class="note">No alert was pending or firing in this range.</p>')
    if m["alerts"]:
        rows = "".join(
            f"<tr><td>{escape(a['monitor'])}</td><td>{escape(str(a['segment'] or '(all)'))}</td>"
            f"<td>{escape(a['state'])}</td><td>{escape(str(a['severity'] or ''))}</td>"
            f"<td>{escape(str(a['fired_at'] or a['pending_since'] or ''))}</td></tr>"
            for a in m["alerts"]
        )
        head = (
            "<tr><th>monitor</th><th>segment</th><th>state</th><th>severity</th><th>since</th></tr>"
        )
        parts.append(f'<div class="table"><table class="alerts">{head}{rows}</table></div>')
    parts.append("</section>")
    return "".join(parts)


def to_html(report: dict[str, Any]) -> str:
    """The whole page."""
    start = datetime.fromisoformat(report["since"])
    end = datetime.fromisoformat(report["at"])
    history = report["history"]
    note = "" if history == "read" else f'<p class="note">History: {escape(history)}.</p>'
    body = "".join(_model(m, start, end) for m in report["models"])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>rulesengine report {escape(report['at'])}</title><style>{CSS}</style></head>"
        f'<body><main><h1>rulesengine report</h1><p class="meta">As of {escape(report["at"])};'
        f" history since {escape(report['since'])}.</p>{note}{body}</main></body></html>\n"
    )
