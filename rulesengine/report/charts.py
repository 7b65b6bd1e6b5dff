"""The report's charts: inline SVG drawn with matplotlib's SVG backend.

matplotlib is the optional ``report`` extra; :func:`require` raises a one-line
error naming it when it is missing. Every chart comes back as an ``<svg>``
element with an ``id``, a ``viewBox`` and ``width:100%`` so the page scales it.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

from rulesengine.errors import RulesEngineError

COLORS = {"ok": "#2e7d32", "warn": "#f9a825", "critical": "#c62828"}
REF, CUR = "#7f8c9a", "#1565c0"


class MissingExtra(RulesEngineError):
    """matplotlib is not installed."""

    exit_code = 2


def require() -> Any:
    """The pyplot module on the SVG backend, or :class:`MissingExtra`."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra(
            "the report needs matplotlib: pip install 'rulesengine[report]'"
        ) from None
    matplotlib.use("svg", force=True)
    matplotlib.rcParams.update(
        {"svg.fonttype": "none", "svg.hashsalt": "rulesengine", "font.size": 9}
    )
    import matplotlib.pyplot as plt

    return plt


def _svg(fig: Any, chart_id: str, cls: str) -> str:
    """The figure as an inline ``<svg>`` element that scales to its container."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    require().close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    attrs = f'<svg id="{chart_id}" class="chart {cls}" style="width:100%;height:auto"'
    return text.replace("<svg", attrs, 1)


def drift_chart(entry: dict[str, Any], chart_id: str) -> str:
    """Reference against current: shares per bin (numeric) or per category."""
    plt = require()
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    if entry["kind"] == "categorical":
        names = entry["categories"]
        x = list(range(len(names)))
        ax.bar([i - 0.2 for i in x], entry["reference_shares"], 0.4, color=REF, label="reference")
        ax.bar([i + 0.2 for i in x], entry["current_shares"], 0.4, color=CUR, label="current")
        ax.set_xticks(x, names, rotation=30, ha="right")
    else:
        edges = entry["edges"]
        if entry["open_ends"]:  # cells (-inf, e0] and (e_last, inf): drawn one step wide
            step = (edges[-1] - edges[0]) / max(len(edges) - 1, 1) or 1.0
            edges = [edges[0] - step, *edges, edges[-1] + step]
        for key, color in (("reference", REF), ("current", CUR)):
            counts = entry[key]
            total = sum(counts) or 1.0
            ax.stairs(
                [c / total for c in counts],
                edges,
                color=color,
                label=key,
                fill=key == "reference",
                alpha=0.5 if key == "reference" else 1.0,
            )
    ax.set_ylabel("share")
    stat = "n/a" if entry["statistic"] is None else f"{entry['statistic']:.4g}"
    ax.set_title(
        f"{entry['monitor']} · {entry['column']}: {entry['method']} {stat} "
        f"(threshold {entry['threshold']:.4g}, {entry['status']})"
    )
    ax.legend(loc="upper right", frameon=False)
    return _svg(fig, chart_id, "drift")


def _bands(ax: Any, threshold: dict[str, Any]) -> None:
    """Shade where each severity's fixed threshold holds."""
    for sev in ("warn", "critical"):
        cond = threshold.get(sev) or {}
        color = COLORS[sev]
        if "above" in cond:
            ax.axhline(cond["above"], color=color, ls="--", lw=1, label=f"{sev} above")
        if "below" in cond:
            ax.axhline(cond["below"], color=color, ls="--", lw=1, label=f"{sev} below")
        if "outside" in cond:
            lo, hi = cond["outside"]
            ax.axhline(lo, color=color, ls=":", lw=1, label=f"{sev} outside [{lo:g}, {hi:g}]")
            ax.axhline(hi, color=color, ls=":", lw=1)


def _lines(series: list[dict[str, Any]], key: str) -> tuple[Any, Any]:
    """A figure with one line per segment of ``series``' points' ``key`` over time."""
    plt = require()
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    for s in series:
        pts = [p for p in s["points"] if p[key] is not None]
        xs = [datetime.fromisoformat(p["at"]) for p in pts]
        ax.plot(xs, [p[key] for p in pts], marker="o", ms=3, label=s["segment"])
    if not series:
        ax.text(0.5, 0.5, "no history in this range", ha="center", transform=ax.transAxes)
    return fig, ax


def trend_chart(trend: dict[str, Any], chart_id: str) -> str:
    """One line per segment over time, with the thresholds as lines or bands."""
    fig, ax = _lines(trend["series"], "value")
    _bands(ax, trend["threshold"])
    ax.set_title(f"{trend['monitor']} ({trend['kind']})")
    fig.autofmt_xdate()
    ax.legend(loc="best", frameon=False, fontsize=7)
    return _svg(fig, chart_id, "trend")


def coverage_chart(entry: dict[str, Any], chart_id: str) -> str:
    """A metric's label coverage (0..1) per segment over time, with its
    ``min_label_coverage`` as a line."""
    fig, ax = _lines(entry["series"], "coverage")
    floor = entry["min_label_coverage"]
    if floor is not None:
        ax.axhline(
            floor, color=COLORS["warn"], ls="--", lw=1, label=f"min_label_coverage {floor:g}"
        )
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{entry['monitor']} label coverage")
    fig.autofmt_xdate()
    ax.legend(loc="best", frameon=False, fontsize=7)
    return _svg(fig, chart_id, "coverage")


STATE_COLORS = {"pending": "#90a4ae", "resolved": COLORS["ok"]}


def _span_color(span: dict[str, Any]) -> str:
    if span["state"] == "firing":
        return COLORS["critical" if span["severity"] == "critical" else "warn"]
    return STATE_COLORS[span["state"]]


def timeline_label(row: dict[str, Any]) -> str:
    """An alert's name on the timeline: monitor, column, segment."""
    parts = [row["monitor"], row["column"] or ""]
    parts.append(", ".join(f"{k}={v}" for k, v in sorted(row["segment"].items())))
    return " · ".join(p for p in parts if p)


def timeline_chart(
    timeline: list[dict[str, Any]], start: datetime, end: datetime, chart_id: str
) -> str:
    """Pending, firing (warn or critical) and resolved spans per alert, from its
    state changes; a span still open runs to ``end``."""
    plt = require()
    import matplotlib.dates as mdates
    from matplotlib.patches import Patch

    rows = timeline or []
    fig, ax = plt.subplots(figsize=(6.4, 1.0 + 0.35 * max(len(rows), 1)))
    for i, row in enumerate(rows):
        for span in row["spans"]:
            a = max(datetime.fromisoformat(span["start"]), start)
            b = datetime.fromisoformat(span["end"]) if span["end"] else end
            width = max(mdates.date2num(b) - mdates.date2num(a), 0.002)
            ax.broken_barh([(mdates.date2num(a), width)], (i - 0.35, 0.7), color=_span_color(span))
    ax.set_yticks(range(len(rows)), [timeline_label(r) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(mdates.date2num(start), mdates.date2num(end))
    ax.xaxis_date()
    legend = [
        Patch(color=STATE_COLORS["pending"], label="pending"),
        Patch(color=COLORS["warn"], label="firing (warn)"),
        Patch(color=COLORS["critical"], label="firing (critical)"),
        Patch(color=STATE_COLORS["resolved"], label="resolved"),
    ]
    ax.legend(handles=legend, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.autofmt_xdate()
    return _svg(fig, chart_id, "timeline")
