"""The daemon's log lines: text or JSON lines on stderr, secrets masked.

Each event is one record with a short message (``tick``, ``start``, ``stop``,
``tick failed``) and its fields passed as ``extra={"fields": {...}}``. The
message goes through the secret filter that ``cli._logging`` installs; string
field values are masked here too, as they may quote an error's text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from rulesengine.masking import mask_text

LOG_FORMATS = ("text", "json")
log = logging.getLogger("rulesengine.daemon")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None) or {}
    return {k: mask_text(v) if isinstance(v, str) else v for k, v in fields.items()}


def _ts(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``TS rulesengine: LEVEL: msg key=value …`` (dicts as ``key.sub=value``)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_ts(record)} rulesengine: {record.levelname}: {record.getMessage()}"]
        for key, value in _fields(record).items():
            if isinstance(value, dict):
                parts += [f"{key}.{k}={v}" for k, v in value.items()]
            else:
                parts.append(f"{key}={value}")
        line = " ".join(parts)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(fmt: str) -> None:
    """Show INFO and above in ``fmt`` on the root logger's handlers (which
    ``cli._logging`` set up with the secret filter)."""
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(formatter)


def event(level: int, msg: str, **fields: Any) -> None:
    log.log(level, msg, extra={"fields": fields})
