"""``compare: {offset, mode}``, shared by metrics and KPIs: the value becomes the
change against the same monitor recomputed from the logs over the window one
``offset`` earlier.

The earlier side is the monitor's own needs with every frame shifted back by the
offset: the window ``(at - delay - window, at - delay]`` becomes
``(at - offset - delay - window, at - offset - delay]``, and joined labels are
those known at ``at - offset`` (as a run at that time would have seen them). Its
roles are the current ones renamed (``main`` → ``previous``, ``all`` →
``previous:all``), so both sides run in the same plan as any other aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from rulesengine.monitors.base import FrameKey, Need, Scored, Undefined
from rulesengine.spec.model import CompareSpec

PREVIOUS = "previous"


def previous_role(role: str) -> str:
    """The earlier side's name of a role: ``main`` → ``previous``, ``all`` →
    ``previous:all``."""
    return PREVIOUS if role == "main" else f"{PREVIOUS}:{role}"


def shift(frame: FrameKey, offset: timedelta) -> FrameKey:
    """``frame`` one ``offset`` earlier: its window and its label cutoff."""

    def back(t: Any) -> Any:
        return None if t is None else t - offset

    return replace(
        frame, start=back(frame.start), end=back(frame.end), label_cutoff=back(frame.label_cutoff)
    )


def earlier_needs(needs: list[Need], offset: timedelta) -> list[Need]:
    """The needs of the earlier side: each of ``needs`` shifted and renamed."""
    return [replace(n, frame=shift(n.frame, offset), role=previous_role(n.role)) for n in needs]


def earlier_side(
    values: Mapping[str, Mapping[str, Any]], rows: Mapping[str, int], roles: tuple[str, ...]
) -> tuple[dict[str, Mapping[str, Any]], dict[str, int]]:
    """The earlier side's values and rows under the current roles' names."""
    return (
        {r: values.get(previous_role(r), {}) for r in roles},
        {r: rows.get(previous_role(r), 0) for r in roles},
    )


def change(now: float, then: float, mode: str) -> float:
    """``relative``: (now - then) / |then| (undefined when then is 0);
    ``absolute``: now - then."""
    if mode == "absolute":
        return float(now) - float(then)
    if then == 0:
        raise Undefined("relative change is undefined: the earlier value is 0 or null")
    return (float(now) - float(then)) / abs(float(then))


def compared(
    compare: CompareSpec, now: float, then: float | None, then_rows: int, extra: dict | None = None
) -> Scored:
    """The change as a monitor's value, with ``current``, ``previous`` and
    ``previous_rows`` in its details (``mode`` too when it is absolute)."""
    details: dict[str, Any] = {"current": now, "previous": then, "previous_rows": then_rows}
    if compare.mode == "absolute":
        details["mode"] = "absolute"
    details.update(extra or {})
    if not then_rows:
        reason = "no rows in the comparison window"
        return Scored(None, {**details, "reason": reason}, "insufficient_data")
    if then is None and compare.mode == "absolute":
        raise Undefined("the change is undefined: the earlier value is null")
    if then is None:
        raise Undefined("relative change is undefined: the earlier value is 0 or null")
    return Scored(change(now, then, compare.mode), details)
