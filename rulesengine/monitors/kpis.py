"""KPI rules: a SQL aggregate over a window, optionally as its change against the
same KPI one ``compare.offset`` earlier (:mod:`rulesengine.monitors.compare`)."""

from __future__ import annotations

from rulesengine.monitors.base import FrameKey, MonitorType, Need, Scored, Undefined, register
from rulesengine.monitors.compare import compared, earlier_needs
from rulesengine.monitors.metrics import frame_schema
from rulesengine.monitors.sql_aggs import sql_aggregate
from rulesengine.spec.model import KpiSpec


@register
class Kpi(MonitorType):
    kind = "kpi"
    names = ("kpi",)

    def _frame(self, m: KpiSpec, ctx) -> FrameKey:
        start, end = ctx.window(m)
        if m.join is None:
            return FrameKey(m.source, start, end, m.filter)
        return FrameKey(m.source, start, end, m.filter, m.join, ctx.at, "inner")

    def needs(self, m, ctx):
        value = sql_aggregate(m.expr, frame_schema(m, ctx))
        needs = [Need(self._frame(m, ctx), {"value": value})]
        if m.compare is not None:
            needs += earlier_needs(needs, m.compare.offset)
        return needs

    def zero_rows_ok(self, m):
        return m.compare is not None  # a drop to nothing is a -100 % change

    def score(self, m, values, rows, ctx) -> Scored:
        if not rows.get("main") and not rows.get("previous"):
            return Scored(None, {"reason": "no rows in either window"}, "no_data")
        now = values["main"].get("value")
        if now is None:
            raise Undefined("the KPI expression is null for these rows")
        if m.compare is None:
            return Scored(float(now))
        then = values.get("previous", {}).get("value")
        return compared(m.compare, now, then, rows.get("previous", 0))
