"""``rulesengine plan``: the compiled chain, monitors → aggregates → Polars plan."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl

from rulesengine.engine.evaluate import plan_model, profile_cache
from rulesengine.engine.plan import Plan, Query
from rulesengine.engine.results import iso
from rulesengine.engine.thresholds import resolve
from rulesengine.spec.model import Config


def _frame_text(q: Query) -> str:
    f = q.frame
    parts = [f"source {f.source}"]
    if f.start is not None or f.end is not None:
        parts.append(f"window ({iso(f.start) or '-inf'}, {iso(f.end) or 'now'}]")
    else:
        parts.append("all rows")
    if f.filter:
        parts.append(f"filter {f.filter}")
    if f.join:
        parts.append(
            f"{f.how} join {f.join.source} on {', '.join(f.join.on)}"
            f" (labels known at {iso(f.label_cutoff)})"
        )
    parts.append("by " + ", ".join(q.segment_by) if q.segment_by else "overall")
    return "; ".join(parts)


def _derived_text(plan: Plan) -> list[str]:
    """The derived thresholds: where they come from and the overall bands (per
    segment, each segment's own chunks give its bands at run time)."""
    lines: list[str] = []
    for mp in plan.monitors:
        m = mp.monitor
        if m.name not in plan.ctx.derived:
            continue
        found = plan.ctx.derived[m.name]
        if isinstance(found, str):
            lines.append(f"  {m.name}: no bands: {found}")
            continue
        resolved = resolve(m, {}, found)
        origin = resolved.details.get("derived", {})
        chunk = ", ".join(f"{k}: {v}" for k, v in found.chunk.items())
        stats = ", ".join(f"{k} {origin[k]:.6g}" for k in ("mean", "std") if k in origin)
        lines.append(
            f"  {m.name}: from {found.source}, chunks of {chunk}: {len(found.overall)} chunk(s)"
            f" ({stats}; {found.dropped} dropped), cache {found.cache}"
        )
        for sev, shown in resolved.shown.items():
            lines.append(f"      {sev}: {json.dumps(shown)}")
        if found.segments:
            lines.append(f"      per segment: {len(found.segments)} segment(s) with chunk values")
    return ["", "derived thresholds:", *lines] if lines else []


def explain_plan(plan: Plan, *, polars_plan: bool = True) -> str:
    """The window's plan as text: each monitor's queries, each query's aggregates,
    the scans they share, and Polars' own plan of them all."""
    queries = plan.queries
    lines = [f"model {plan.model.model} at {iso(plan.at)}", "", "monitors:"]
    for mp in plan.monitors:
        m = mp.monitor
        head = f"  {m.name} ({m.kind} {m.type})"
        if mp.error:
            lines.append(f"{head}: error: {mp.error}")
            continue
        if mp.no_data:
            lines.append(f"{head}: no data: {mp.no_data}")
            continue
        uses = []
        for b in mp.bindings:
            ids = [f"q{b.overall}"] + ([f"q{b.segmented}"] if b.segmented is not None else [])
            aggs = ", ".join(sorted(set(b.names.values()))) or "rows"
            uses.append(f"{b.role}: {'+'.join(ids)} [{aggs}]")
        lines.append(f"{head} -> " + "; ".join(uses))
    lines += _derived_text(plan)
    lines += ["", "aggregates:"]
    for i, q in enumerate(queries):
        lines.append(f"  q{i}: {_frame_text(q)}")
        if q.select:
            lines.append("      per row; NumPy counts the cells (bincount)")
        else:
            if q.by is not None:
                lines.append(f"      by __bucket = {q.by}")
            lines.append("      __rows = len()")
        for name, expr in q.aggs.items():
            lines.append(f"      {name} = {expr}")
    by_source: dict[str, set[tuple[object, object]]] = {}
    for q in queries:
        by_source.setdefault(q.frame.source, set()).add((q.frame.start, q.frame.end))
    lines += ["", "scans:"]
    for source, windows in sorted(by_source.items()):
        lines.append(
            f"  {source}: {len(windows)} window(s), "
            f"{sum(1 for q in queries if q.frame.source == source)} queries "
            "sharing one scan per window"
        )
    if polars_plan and queries:
        lines += ["", "polars plan (all queries, run together with collect_all):"]
        text = pl.explain_all([q.lazy for q in queries])  # type: ignore[misc]
        lines += ["  " + ln for ln in text.splitlines()]
    return "\n".join(lines)


def explain(config: Config, at: datetime) -> str:
    """``rulesengine plan``: every model's plan as of ``at``, as text. The
    references are prepared (their queries run), as the window's plan needs them."""
    cache = profile_cache(config)
    return "\n\n".join(explain_plan(plan_model(model, at, cache)) for model in config.models)
