"""The cadence keys (``every``/``cron``, ``timezone``, ``catch_up``, ``catch_up_max``) and
``history.retention`` as the later stages see them: real files loaded from a tmp dir,
checked against values written out by hand. The positioned messages for bad values
are golden fixtures (tests/fixtures/invalid/35*, 36*)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rulesengine.spec.loader import load_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = """\
version: 1
model: {name}
sources:
  requests: {{path: logs/*.parquet, timestamp: ts}}
{evaluation}checks:
  - {{name: volume, source: requests, type: row_count, critical: {{below: 10}}}}
"""


def test_layers_of_cadence_resolve_as_written_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """engine defaults: cron in Berlin, catch_up all/24; a model that sets `every`
    drops the inherited cron but keeps the other defaults key by key."""
    case = FIXTURES / "valid" / "08-cron-cadence-and-history"
    monkeypatch.chdir(case)
    report = load_report(["."], env={})
    assert report.problems == []
    assert report.config is not None
    engine = report.config.engine
    assert engine.history.retention == timedelta(days=90)
    got = {
        m.model: (
            m.evaluation.cron,
            m.evaluation.every,
            m.evaluation.timezone,
            m.evaluation.catch_up,
            m.evaluation.catch_up_max,
        )
        for m in report.config.models
    }
    assert got == {
        "inherits-cron": ("0 6 * * mon-fri", timedelta(minutes=15), "Europe/Berlin", "all", 24),
        "overrides-with-every": (None, timedelta(seconds=1), "Europe/Berlin", "none", 24),
        "own-cron": ("30 2 L * *", timedelta(minutes=15), "America/New_York", "all", 24),
    }


def test_built_in_defaults_without_an_engine_file(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(MODEL.format(name="plain", evaluation=""), encoding="utf-8")
    report = load_report([str(f)], env={})
    assert report.problems == [] and report.config is not None
    ev = report.config.models[0].evaluation
    assert (ev.every, ev.cron, ev.timezone, ev.catch_up, ev.catch_up_max) == (
        timedelta(minutes=15),
        None,
        "UTC",
        "latest",
        100,
    )
    assert report.config.engine.history.retention == timedelta(days=30)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("*/15 * * * *", None),
        ("0 6 * * 1-5", None),
        ("0 0 L * *", None),
        ("0 0 29 2 *", None),  # only in leap years, but it matches a date
        ("0 0 * * * *", "a cron expression has 5 fields"),
        ("@daily", "a cron expression has 5 fields"),
        (
            "   ",
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got 0",
        ),
        ("* 24 * * *", "invalid cron hour field '24'"),
        ("* * 0 * *", "invalid cron day-of-month field '0'"),
        ("* * * 13 *", "invalid cron month field '13'"),
        ("*/0 * * * *", "invalid cron minute field '*/0'"),
        ("0 0 31 4 *", "matches no date"),
    ],
)
def test_cron_expressions(tmp_path: Path, cron: str, message: str | None) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(MODEL.format(name="m", evaluation=f'evaluation: {{cron: "{cron}"}}\n'), "utf-8")
    report = load_report([str(f)], env={})
    texts = [f"{p.render()}" for p in report.problems]
    if message is None:
        assert texts == []
    else:
        assert len(texts) == 1 and "m.yaml:5:20: evaluation.cron: " in texts[0], texts
        assert message in texts[0], texts
