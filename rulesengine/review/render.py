"""``rulesengine diff`` output: plain text, Markdown for a pull-request comment,
or one JSON document (the same content; see docs/diff.md for its keys).

Receiver URLs reach this module already masked (:mod:`rulesengine.review.diff`
keeps no other form of them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rulesengine.review.diff import SpecDiff


def summary_line(d: SpecDiff) -> str:
    """One sentence of counts."""
    c = d.counts()
    parts = [
        f"{c['monitors_added']} monitor(s) added, {c['monitors_removed']} removed, "
        f"{c['monitors_changed']} changed",
        f"{c['thresholds_loosened']} threshold(s) loosened, "
        f"{c['thresholds_tightened']} tightened, {c['thresholds_changed']} changed",
        f"{c['receivers_changed']} receiver(s) and {c['routes_changed']} route line(s) changed",
        f"{c['alerts_rerouted']} alert(s) reach other receivers",
    ]
    return "; ".join(parts)


def to_json(d: SpecDiff) -> str:
    """The document described in docs/diff.md."""
    doc = {
        "base": d.base,
        "head": d.head,
        "summary": d.counts(),
        "models": {"added": d.models_added, "removed": d.models_removed},
        "models_changed": d.models_changed,
        "monitors": d.monitors,
        "thresholds": d.thresholds,
        "receivers": d.receivers,
        "routes": d.routes,
        "engine_changed": d.engine_changed,
        "routing": d.routing,
        "replay": d.replay,
    }
    return json.dumps(doc, indent=2)


def _table(head: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        esc: Callable[[str], str] = lambda s: s.replace("|", "\\|")  # noqa: E731
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return out + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return [fmt(head), *(fmt(r) for r in rows)]


def _join(xs: list[str] | None) -> str:
    return ", ".join(xs) if xs else "-"


def _sections(d: SpecDiff, md: bool) -> list[tuple[str, list[str]]]:
    """(title, lines) of each non-empty section."""
    out: list[tuple[str, list[str]]] = []
    models = [f"added: {m}" for m in d.models_added] + [f"removed: {m}" for m in d.models_removed]
    models += [f"changed: {m['model']} ({_join(m['keys'])})" for m in d.models_changed]
    if models:
        out.append(("Models", [("- " if md else "  ") + m for m in models]))
    if d.monitors:
        rows = [[m["model"], m["monitor"], m["change"], _join(m.get("keys"))] for m in d.monitors]
        out.append(("Monitors", _table(["MODEL", "MONITOR", "CHANGE", "KEYS"], rows, md)))
    if d.thresholds:
        rows = [
            [
                t["model"],
                t["monitor"],
                f"{t['severity']}: {t['base']} → {t['head']}",
                t["direction"],
            ]
            for t in d.thresholds
        ]
        out.append(("Thresholds", _table(["MODEL", "MONITOR", "THRESHOLD", "DIRECTION"], rows, md)))
    if d.receivers:
        out.append(("Receivers", _receiver_lines(d, md)))
    if d.routes["removed"] or d.routes["added"]:
        lines = [f"- {r}" for r in d.routes["removed"]] + [f"+ {r}" for r in d.routes["added"]]
        out.append(("Routes", ["```diff", *lines, "```"] if md else ["  " + x for x in lines]))
    if d.engine_changed:
        out.append(("Engine", [("- " if md else "  ") + "changed: " + _join(d.engine_changed)]))
    if d.routing:
        out.append(("Who hears about what", _routing_lines(d, md)))
    if d.replay is not None:
        out.append(("Replay", _replay_lines(d.replay, md)))
    return out


def _receiver_lines(d: SpecDiff, md: bool) -> list[str]:
    rows = []
    for r in d.receivers:
        before = _join(r["base"]["urls"]) if r["base"] else "-"
        after = _join(r["head"]["urls"]) if r["head"] else "-"
        what = r["change"] + (f" ({_join(r.get('keys'))})" if r.get("keys") else "")
        if r.get("note"):
            what += f"; {r['note']}"
        rows.append([r["receiver"], what, before, after])
    return _table(["RECEIVER", "CHANGE", "BASE URLS", "HEAD URLS"], rows, md)


def _routing_lines(d: SpecDiff, md: bool) -> list[str]:
    rows = []
    for r in d.routing:
        name = r["monitor"] + (f" ({r['source']})" if "source" in r else "")
        after = _join(r["head"])
        if r["receivers_changed"]:
            after += f" (URLs changed: {_join(r['receivers_changed'])})"
        rows.append([r["model"], name, r["severity"], _join(r["base"]), after])
    return _table(["MODEL", "ALERT", "SEVERITY", "BASE", "HEAD"], rows, md)


def _replay_lines(rp: dict[str, Any], md: bool) -> list[str]:
    def pair(row: dict[str, Any], key: str) -> str:
        a = "-" if row["base"] is None else str(row["base"][key])
        b = "-" if row["head"] is None else str(row["head"][key])
        return f"{a} → {b}" if a != b else a

    head = (
        f"{rp['from']} .. {rp['to']}: BASE {rp['base']['ticks']} tick(s), "
        f"{rp['base']['notifications']} notification(s); HEAD {rp['head']['ticks']} tick(s), "
        f"{rp['head']['notifications']} notification(s)"
    )
    rows = [
        [
            r["model"],
            r["monitor"],
            pair(r, "fired"),
            pair(r, "firing_ticks"),
            pair(r, "notifications"),
        ]
        for r in rp["monitors"]
    ]
    cols = ["MODEL", "MONITOR", "FIRED", "FIRING TICKS", "NOTIFIED"]
    return [head, "", *_table(cols, rows, md)]


def to_text(d: SpecDiff) -> str:
    """Plain text: a header, the summary line, then each section."""
    lines = [f"diff {d.base} → {d.head}", summary_line(d)]
    for title, body in _sections(d, md=False):
        lines += ["", f"{title}:", *body]
    if len(lines) == 2:
        lines.append("no change")
    return "\n".join(lines)


def to_markdown(d: SpecDiff) -> str:
    """A pull-request comment: a heading, the summary in bold, a heading and a
    table (or list) per section."""
    lines = [f"## rulesengine diff: `{d.base}` → `{d.head}`", "", f"**{summary_line(d)}**"]
    for title, body in _sections(d, md=True):
        lines += ["", f"### {title}", "", *body]
    return "\n".join(lines) + "\n"
