"""Ragged CSV rows: the first row whose field count differs from the header's,
found in one pass over a file's bytes (NumPy, a block at a time), so an error can
name ``file:line`` where Polars would only say that a row is malformed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # NumPy is imported on use (see engine/score.py)
    import numpy as np

CSV_CHUNK = 1 << 20  # bytes per block: NumPy works a block at a time, in cache


@dataclass
class _Records:
    """Where the field-count scan of a CSV file stands between blocks."""

    quoted: bool = False  # inside a quoted field at the end of the last block
    seps: int = 0  # separators in the record in progress
    length: int = 0  # bytes in the record in progress
    line: int = 1  # physical line where the record in progress starts
    lines: int = 1  # physical line at the start of the next block
    header: int | None = None  # the header's field count


def _block(state: _Records, a: np.ndarray, sep: int) -> tuple[int, int, int] | None:
    """Scan one block: (line, fields, length) of the first record whose field count
    differs from the header's. Separators and newlines inside quotes do not count;
    an escaped quote ("") toggles twice, so parity alone tells inside from outside."""
    import numpy as np

    newline = a == ord("\n")
    is_sep = a == sep
    quotes = a == ord('"')
    if quotes.any():
        inside = np.logical_xor.accumulate(quotes) ^ state.quoted
        state.quoted = bool(inside[-1])
        is_sep &= ~inside
        ends = np.flatnonzero(newline & ~inside)
    elif state.quoted:  # the whole block lies inside one quoted field
        is_sep[:] = False
        ends = np.empty(0, np.intp)
    else:
        ends = np.flatnonzero(newline)
    if not len(ends):
        state.seps += int(np.count_nonzero(is_sep))
        state.length += len(a)
        state.lines += int(np.count_nonzero(newline))
        return None
    starts = np.concatenate(([0], ends[:-1] + 1))
    per = np.add.reduceat(is_sep[: ends[-1] + 1], starts, dtype=np.int64)
    per[0] += state.seps
    if state.header is None:
        state.header = int(per[0]) + 1
    bad = np.flatnonzero(per + 1 != state.header)
    if len(bad):
        k = int(bad[0])
        line = state.line if k == 0 else state.lines + int(np.count_nonzero(newline[: starts[k]]))
        length = int(ends[k] - starts[k]) + (state.length if k == 0 else 0)
        return line, int(per[k]) + 1, length
    rest = int(ends[-1]) + 1
    state.seps = int(np.count_nonzero(is_sep[rest:]))
    state.length = len(a) - rest
    state.line = state.lines + int(np.count_nonzero(newline[:rest]))
    state.lines += int(np.count_nonzero(newline))
    return None


def ragged_row(path: str, separator: str = ",") -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first row of a CSV file whose number of
    fields differs from the header's, or None. Lines are 1-based, the header is line 1.
    A blank line counts as a row of one empty field (Polars reads it as a row of nulls)."""
    import numpy as np

    state = _Records()
    sep = ord(separator)
    with open(path, "rb") as fh:
        while block := fh.read(CSV_CHUNK):
            found = _block(state, np.frombuffer(block, np.uint8), sep)
            if found:
                line, fields, length = found
                return line, (0 if length == 0 else fields), state.header or fields
    if state.length > 0 and state.header is not None and state.seps + 1 != state.header:
        return state.line, state.seps + 1, state.header
    return None
