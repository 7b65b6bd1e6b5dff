"""Durations written as ``30s``, ``15m``, ``1h``, ``7d``, ``2w`` or ``1h30m``."""

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
PATTERN = r"^([0-9]+(ms|s|m|h|d|w))+$"
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(PATTERN)


def parse_duration(text: str) -> timedelta:
    """Parse a duration.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"'{text}' is not a duration: write a whole number and a unit "
            "(ms, s, m, h, d, w), e.g. 30s, 15m, 1h, 7d"
        )
    seconds = sum(int(n) * UNITS[u] for n, u in _PART.findall(text))
    return timedelta(seconds=seconds)


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
