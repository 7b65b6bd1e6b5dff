"""The markdown body of a scheduled report, from a hand-written report document,
and the ``reports`` key of engine.yaml as the spec builder reads it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rulesengine.report.summary import summary_markdown
from rulesengine.spec.build import build_engine


def _span(state: str, start: str, end: str | None, severity: str | None = None) -> dict:
    return {"state": state, "severity": severity, "start": start, "end": end}


REPORT = {
    "at": "2026-11-30T08:00:00Z",
    "since": "2026-11-23T08:00:00Z",
    "history": "read",
    "models": [
        {
            "model": "fraud",
            "summary": [
                {
                    "monitor": "nulls",
                    "segment": {},
                    "kind": "check",
                    "column": "amount",
                    "status": "critical",
                    "value": 0.2,
                },
                {
                    "monitor": "drift",
                    "segment": {"v": "2"},
                    "kind": "drift",
                    "column": "amount",
                    "status": "critical",
                    "value": 0.9,
                },
                {
                    "monitor": "drift",
                    "segment": {},
                    "kind": "drift",
                    "column": "country",
                    "status": "warn",
                    "value": 0.123456,
                },
                {
                    "monitor": "drift",
                    "segment": {},
                    "kind": "drift",
                    "column": "amount",
                    "status": "ok",
                    "value": 0.01,
                },
            ],
            "trends": [
                {
                    "monitor": "recall",
                    "series": [
                        {
                            "segment": "(all)",
                            "points": [
                                {"at": "a", "value": 0.9, "status": "ok"},
                                {"at": "b", "value": None, "status": "error"},
                                {"at": "c", "value": 0.65, "status": "critical"},
                            ],
                        },
                        {"segment": "v=2", "points": [{"at": "a", "value": 0.5, "status": "warn"}]},
                    ],
                },
                {"monitor": "ctr", "series": []},
            ],
            "timeline": [
                # fired before the period, resolved in it
                {
                    "monitor": "nulls",
                    "segment": {},
                    "column": "amount",
                    "spans": [
                        _span("firing", "2026-11-20T00:00:00Z", "2026-11-24T00:00:00Z", "critical"),
                        _span("resolved", "2026-11-24T00:00:00Z", "2026-11-24T01:00:00Z"),
                    ],
                },
                # fired in the period and escalated (not a second firing), still firing
                {
                    "monitor": "drift",
                    "segment": {"v": "2"},
                    "column": None,
                    "spans": [
                        _span("pending", "2026-11-29T09:00:00Z", "2026-11-29T10:00:00Z"),
                        _span("firing", "2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z", "warn"),
                        _span("firing", "2026-11-29T11:00:00Z", None, "critical"),
                    ],
                },
                # pending only; two episodes in the period; one after the report's time
                {
                    "monitor": "x",
                    "segment": {},
                    "column": None,
                    "spans": [_span("pending", "2026-11-25T00:00:00Z", None)],
                },
                {
                    "monitor": "w",
                    "segment": {},
                    "column": None,
                    "spans": [
                        _span("firing", "2026-11-25T00:00:00Z", "2026-11-25T01:00:00Z", "warn"),
                        _span("resolved", "2026-11-25T01:00:00Z", "2026-11-25T02:00:00Z"),
                        _span("firing", "2026-11-26T00:00:00Z", "2026-11-26T01:00:00Z", "warn"),
                        _span("resolved", "2026-11-26T01:00:00Z", "2026-11-26T02:00:00Z"),
                    ],
                },
                {
                    "monitor": "y",
                    "segment": {},
                    "column": None,
                    "spans": [_span("firing", "2026-11-30T09:00:00Z", None, "warn")],
                },
            ],
        }
    ],
}

FIRED = (
    "Fired: w warn at 2026-11-25T00:00:00Z; w warn at 2026-11-26T00:00:00Z;"
    " drift [v=2] warn at 2026-11-29T10:00:00Z"
)
RESOLVED = (
    "Resolved: nulls (amount) at 2026-11-24T00:00:00Z; w at 2026-11-25T01:00:00Z;"
    " w at 2026-11-26T01:00:00Z"
)
EXPECTED = f"""\
Report weekly as of 2026-11-30T08:00:00Z (since 2026-11-23T08:00:00Z).

## fraud

{FIRED}
{RESOLVED}
Worst drift: drift country: 0.1235 (warn)
Trends:
- recall: 0.9 → 0.65 (2 points, now critical)
- recall [v=2]: 0.5 → 0.5 (1 points, now warn)
- ctr: no recorded values
"""


def test_summary_lists_fired_resolved_worst_drift_and_trends() -> None:
    assert summary_markdown(REPORT, "weekly") == EXPECTED


def test_reports_defaults(tmp_path: Path) -> None:
    raw = {
        "version": 1,
        "reports": [
            {"name": "a", "every": "1d", "receivers": ["r"]},
            {"name": "b", "cron": "0 8 * * 1", "receivers": ["r"], "models": ["m"]},
            {"name": "c", "every": "1d", "since": "30d", "receivers": ["r"]},
        ],
    }
    a, b, c = build_engine(raw, file=None, root=tmp_path).reports
    assert (a.since, a.every, a.cron, a.models) == (timedelta(days=1), timedelta(days=1), None, ())
    assert (b.since, b.cron, b.timezone, b.models) == (
        timedelta(days=7),
        "0 8 * * 1",
        "UTC",
        ("m",),
    )
    assert c.since == timedelta(days=30)
