"""Durations written as ``30s``, ``15m``, ``1h``, ``7d``, ``2w`` or ``1h30m``.

Every duration is bounded by :data:`MAX_DURATION` (10 years): a window, delay,
offset, cadence or ``for`` longer than that is a typo, and an unbounded one
overflows ``timedelta`` or makes ``at - window`` fall before year 1.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
PATTERN = r"^([0-9]+(ms|s|m|h|d|w))+$"
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(PATTERN)

MAX_DURATION = timedelta(days=3650)  # 10 years
MAX_DURATION_TEXT = "3650d (10 years)"
MAX_SECONDS = int(MAX_DURATION.total_seconds())
# no valid duration needs more characters ("3649d23h59m59s999ms" has 19); a longer
# text is refused before int() reads its digits (more than 4300 digits raise)
MAX_TEXT = 64


def _milliseconds(text: str) -> int:
    # whole milliseconds, added as integers: no float rounding, no overflow
    return sum(int(n) * _UNIT_MS[u] for n, u in _PART.findall(text))


def bound_problem(text: str) -> str | None:
    """Why the duration ``text`` is beyond the bounds (too long a text, or longer
    than :data:`MAX_DURATION`), or None. A text that is no duration at all is left to
    the syntax check. Linear in ``len(text)``: digits are summed only when short."""
    if not _WHOLE.match(text):
        return None
    if len(text) > MAX_TEXT:
        return f"'{text[:20]}…' is too long for a duration ({len(text)} characters)"
    if _milliseconds(text) > MAX_SECONDS * 1000:
        return f"'{text}' is longer than the longest duration allowed, {MAX_DURATION_TEXT}"
    return None


def duration_problem(text: str) -> str | None:
    """Why ``text`` is no usable duration, or None."""
    if not _WHOLE.match(text):
        shown = f"{text[:20]}…" if len(text) > 40 else text
        return (
            f"'{shown}' is not a duration: write a whole number and a unit "
            "(ms, s, m, h, d, w), e.g. 30s, 15m, 1h, 7d"
        )
    return bound_problem(text)


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raise ValueError (only) for anything that is not one.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    if not isinstance(text, str):
        kind = type(text).__name__
        raise ValueError(f"a {kind} is not a duration: write a text such as 30s, 15m, 1h, 7d")
    why = duration_problem(text)
    if why:
        raise ValueError(why)
    return timedelta(milliseconds=_milliseconds(text))


def format_duration(delta: timedelta) -> str:
    """The shortest spelling of ``delta``: ``timedelta(hours=36)`` → ``1d12h``."""
    ms = round(delta.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in (
        ("w", 604800000),
        ("d", 86400000),
        ("h", 3600000),
        ("m", 60000),
        ("s", 1000),
        ("ms", 1),
    ):
        n, ms = divmod(ms, size)
        if n:
            out += f"{n}{unit}"
    return out
