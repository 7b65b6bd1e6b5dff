"""The thresholds one result is judged by: per-segment overrides and bands
derived from the reference.

For a result of segment S, the first ``segments`` entry whose ``match`` holds
for S replaces the monitor's ``warn`` and/or ``critical`` (the overall result
keeps the monitor's). A ``derived`` threshold then becomes a fixed one from
S's chunk values (:mod:`rulesengine.engine.derived`; the overall chunks for the
overall result): the band is mean ± k·σ (σ with ddof 0, as NumPy's default
``std`` and NannyML's) or the chosen quantiles (linear interpolation); each edge
is clamped into ``bounds``; ``side`` makes it ``outside`` the band, ``below`` its
low edge or ``above`` its high edge. A derived severity without a band (fewer
than 2 chunk values, no reference rows of the segment, an unreadable reference)
decides nothing: the status is the worst fixed or derived severity that holds,
else ``insufficient_data`` with the reason, as for ``change`` thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rulesengine.spec.model import MonitorSpec, SegmentOverride, Threshold, Thresholds

MIN_CHUNKS = 2


@dataclass(frozen=True)
class Resolved:
    """The thresholds of one result, what ``details`` says about them, and why a
    derived severity has no band (if one has none)."""

    thresholds: Thresholds
    shown: dict[str, Any]  # the result's "threshold"
    details: dict[str, Any] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()


def matches(override: SegmentOverride, segment: Mapping[str, Any]) -> bool:
    """Whether every ``match`` value equals the segment's value, or its text."""
    for col, want in override.match.items():
        if col not in segment:
            return False
        have = segment[col]
        if not (have == want or str(have) == str(want)):
            return False
    return True


def needs_resolving(m: MonitorSpec) -> bool:
    return bool(m.segments) or m.thresholds.derives


def resolve(m: MonitorSpec, segment: Mapping[str, Any], derived: Any) -> Resolved:
    """The thresholds of ``m``'s result for ``segment`` ({} overall), with
    ``derived`` its :class:`~rulesengine.engine.derived.ChunkValues`, or why
    there are none (a string), or None."""
    warn, crit = m.thresholds.warn, m.thresholds.critical
    details: dict[str, Any] = {}
    if segment:
        entry = next(((i, o) for i, o in enumerate(m.segments) if matches(o, segment)), None)
        if entry is not None:
            i, o = entry
            warn = o.warn if o.has_warn else warn
            crit = o.critical if o.has_critical else crit
            details["segment_thresholds"] = {"entry": i, "match": dict(o.match)}
    concrete: dict[str, Threshold | None] = {}
    shown: dict[str, Any] = {}
    unknown: list[str] = []
    info: dict[str, Any] = {}
    for sev, t in (("warn", warn), ("critical", crit)):
        if t is None:
            concrete[sev] = None
            continue
        if t.derived is None:
            concrete[sev], shown[sev] = t, t.as_dict()
            continue
        band = _band(m, t, tuple(segment.values()), derived)
        if isinstance(band, str):
            concrete[sev], shown[sev] = None, t.as_dict()
            unknown.append(f"{sev}: {band}")
            info[sev] = {**t.derived.as_dict(), "reason": band}
            continue
        fixed, entry_info = band
        concrete[sev], shown[sev] = fixed, fixed.as_dict()
        info[sev] = entry_info
    if info:
        details["derived"] = {**_origin(derived, tuple(segment.values())), **info}
    out = Thresholds(concrete["warn"], concrete["critical"], m.thresholds.resolve)
    return Resolved(out, shown, details, tuple(unknown))


def _origin(derived: Any, segment: tuple[Any, ...]) -> dict[str, Any]:
    """Where the bands come from: the reference, its chunking and chunk values."""
    import numpy as np

    if derived is None or isinstance(derived, str):
        return {"from": "reference"}
    values = derived.values(segment)
    out: dict[str, Any] = {
        "from": "reference",
        "source": derived.source,
        "chunk": dict(derived.chunk),
        "chunks": len(values) if values is not None else 0,
        "dropped_chunks": derived.dropped,
        "cache": derived.cache,
    }
    if values:
        arr = np.asarray(values, dtype=float)
        out.update(mean=float(arr.mean()), std=float(arr.std()), min=float(arr.min()))
        out["max"] = float(arr.max())
    return out


def _band(
    m: MonitorSpec, t: Threshold, segment: tuple[Any, ...], derived: Any
) -> tuple[Threshold, dict[str, Any]] | str:
    """The fixed threshold a derived one stands for here, with its details; or
    why there is none."""
    import numpy as np

    d = t.derived
    assert d is not None
    if derived is None:
        return "no reference chunk values"
    if isinstance(derived, str):
        return derived
    values = derived.values(segment)
    if values is None:
        return "the reference has no rows of this segment"
    if len(values) < MIN_CHUNKS:
        return f"{len(values)} reference chunk(s) with a value, {MIN_CHUNKS} needed"
    arr = np.asarray(values, dtype=float)
    if d.std is not None:
        mean, sigma = float(arr.mean()), float(arr.std(ddof=0))
        lo, hi = mean - d.std * sigma, mean + d.std * sigma
    else:
        assert d.quantiles is not None
        lo, hi = (float(q) for q in np.quantile(arr, list(d.quantiles)))
    info: dict[str, Any] = {**d.as_dict(), "band": [lo, hi]}
    bmin, bmax = m.bounds
    if bmin is not None or bmax is not None:
        info["bounds"] = {k: v for k, v in (("min", bmin), ("max", bmax)) if v is not None}
        lo, hi = _clamp(lo, bmin, bmax), _clamp(hi, bmin, bmax)
        info["clamped"] = [lo, hi]
    if d.side == "lower":
        return Threshold("below", lo), info
    if d.side == "upper":
        return Threshold("above", hi), info
    return Threshold("outside", (lo, hi)), info


def _clamp(x: float, lo: float | None, hi: float | None) -> float:
    if lo is not None and x < lo:
        x = lo
    if hi is not None and x > hi:
        x = hi
    return x
