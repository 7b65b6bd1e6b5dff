"""KPI rules: a SQL aggregate over a window, optionally as the relative change
against the same KPI one ``compare.offset`` earlier."""

from __future__ import annotations

from rulesengine.monitors.base import FrameKey, MonitorType, Need, Scored, Undefined, register
from rulesengine.spec.model import KpiSpec
from rulesengine.spec.sql import compile_sql


@register
class Kpi(MonitorType):
    kind = "kpi"
    names = ("kpi",)

    def _frame(self, m: KpiSpec, ctx, shift=None) -> FrameKey:
        from datetime import timedelta

        start, end = ctx.window(m, shift=shift or timedelta(0))
        if m.join is None:
            return FrameKey(m.source, start, end, m.filter)
        cutoff = ctx.at - (shift or timedelta(0))
        return FrameKey(m.source, start, end, m.filter, m.join, cutoff, "inner")

    def needs(self, m, ctx):
        expr = {"value": compile_sql(m.expr).expr}
        needs = [Need(self._frame(m, ctx), expr)]
        if m.compare_offset is not None:
            needs.append(Need(self._frame(m, ctx, m.compare_offset), expr, role="previous"))
        return needs

    def zero_rows_ok(self, m):
        return m.compare_offset is not None  # a drop to nothing is a -100 % change

    def score(self, m, values, rows, ctx) -> Scored:
        if not rows.get("main") and not rows.get("previous"):
            return Scored(None, {"reason": "no rows in either window"}, "no_data")
        now = values["main"].get("value")
        if now is None:
            raise Undefined("the KPI expression is null for these rows")
        if m.compare_offset is None:
            return Scored(float(now))
        then = values.get("previous", {}).get("value")
        details = {"current": now, "previous": then, "previous_rows": rows.get("previous", 0)}
        if not rows.get("previous"):
            return Scored(
                None, {**details, "reason": "no rows in the comparison window"}, "insufficient_data"
            )
        if then is None or then == 0:
            raise Undefined("relative change is undefined: the earlier value is 0 or null")
        return Scored((float(now) - float(then)) / abs(float(then)), details)
