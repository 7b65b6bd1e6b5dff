"""Result history as text (a table), JSON or CSV, for ``rulesengine history``.

Times and values are written as in the Results JSON: ISO-8601 UTC with ``Z``, and
values to 12 significant digits (they are stored that way).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from rulesengine.engine.results import iso, segment_text
from rulesengine.history.query import HistoryRow

CSV_FIELDS = (
    "at",
    "monitor",
    "kind",
    "type",
    "segment",
    "column",
    "value",
    "status",
    "rows",
    "window_start",
    "window_end",
)


def row_dict(r: HistoryRow) -> dict[str, Any]:
    """One row of the JSON document."""
    window = {"start": iso(r.window_start), "end": iso(r.window_end)} if r.window_end else None
    return {
        "at": iso(r.at),
        "monitor": r.monitor,
        "kind": r.kind,
        "type": r.type,
        "segment": dict(r.segment),
        "column": r.column,
        "value": r.value,
        "status": r.status,
        "rows": r.rows,
        "window": window,
    }


def to_json(model: str, rows: Sequence[HistoryRow]) -> str:
    """``{"model": …, "rows": [{"at", "monitor", "kind", …, "window"}]}``."""
    doc = {"model": model, "rows": [row_dict(r) for r in rows]}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _value_text(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def to_text(model: str, rows: Sequence[HistoryRow]) -> str:
    """A table, oldest first, and a one-line count."""
    header = ("AT", "MONITOR", "SEGMENT", "COLUMN", "VALUE", "STATUS")
    cells = [
        (
            iso(r.at) or "",
            r.monitor,
            segment_text(r.segment),
            r.column or "-",
            _value_text(r.value),
            r.status,
        )
        for r in rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(header)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *cells)
    ]
    lines.append("")
    lines.append(f"{model}: {len(rows)} row{'s' if len(rows) != 1 else ''}")
    return "\n".join(lines)


def to_csv(rows: Sequence[HistoryRow]) -> str:
    """A header line, then one line per row; the segment as its JSON text and
    an empty field for a missing value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        d = row_dict(r)
        window = d.pop("window") or {}
        d["segment"] = json.dumps(d["segment"], sort_keys=True, ensure_ascii=False)
        d["window_start"], d["window_end"] = window.get("start"), window.get("end")
        writer.writerow(["" if d[f] is None else d[f] for f in CSV_FIELDS])
    return out.getvalue().rstrip("\n")
