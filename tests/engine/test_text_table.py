"""The text table says why a result is not ok (schema problems, an error's first
line, a reason) and shows freshness as an age, while the JSON keeps seconds."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest
from conftest import AT, minutes_ago, src, write_frame

from rulesengine.engine.results import Result, human_age, to_json, to_text, why


@pytest.fixture(autouse=True)
def _in_root(h, monkeypatch):
    monkeypatch.chdir(h.root)  # file names are shown relative to here


def _line_after(text: str, monitor: str) -> tuple[str, str]:
    lines = text.splitlines()
    i = next(i for i, ln in enumerate(lines) if f"  {monitor}  " in ln)
    return lines[i], lines[i + 1]


def test_schema_problems_and_freshness_age(h):
    stamps = [AT - timedelta(hours=2, minutes=13), AT - timedelta(hours=3)]
    write_frame(h.root / "logs" / "a.parquet", pl.DataFrame({"ts": stamps, "x": [1.0, 2.0]}))
    model = h.run_model(
        {
            "sources": {"s": src("logs/*.parquet")},
            "checks": [
                {
                    "name": "shape",
                    "source": "s",
                    "type": "schema",
                    "window": "1d",
                    "expected_columns": {"ts": "datetime", "latency": "float"},
                },
                {"name": "fresh", "source": "s", "type": "freshness", "critical": {"above": "30m"}},
            ],
        }
    )
    text = to_text([model])
    row, under = _line_after(text, "shape")
    assert row.split()[0] == "CRITICAL"
    assert under.strip() == "↳ missing column 'latency' in 1 of 1 file(s): logs/a.parquet"
    row, under = _line_after(text, "fresh")
    assert "  2h 13m  " in row and "critical above 30m" in row
    assert not under.strip().startswith("↳")  # over its threshold: no why line needed
    (fresh,) = [
        r for r in json.loads(to_json([model]))["models"][0]["results"] if r["type"] == "freshness"
    ]
    assert fresh["value"] == 2 * 3600 + 13 * 60  # exact seconds in the JSON
    assert fresh["threshold"] == {"critical": {"above": 1800.0}}


def test_an_error_shows_its_first_line_and_a_reason_shows_whole(h):
    write_frame(h.root / "logs" / "a.parquet", pl.DataFrame({"ts": [minutes_ago(5)]}))
    model = h.run_model(
        {
            "sources": {"s": src("logs/*.parquet")},
            "evaluation": {"min_rows": 3},
            "checks": [
                {"name": "nulls", "source": "s", "type": "null_rate", "column": "nope",
                 "critical": {"above": 0.1}},
                {"name": "rate", "source": "s", "type": "null_rate", "column": "ts",
                 "critical": {"above": 0.1}},
            ],
        }
    )  # fmt: skip
    text = to_text([model])
    error = next(r for r in model.results if r.monitor == "nulls")
    assert error.status == "error"
    row, under = _line_after(text, "nulls")
    assert under.strip() == "↳ " + str(error.details["error"]).splitlines()[0][:199]
    row, under = _line_after(text, "rate")
    assert row.split()[0] == "INSUFFICIENT_DATA"
    assert under.strip() == "↳ 1 rows, min_rows is 3"


def test_why_is_one_line_cut_at_200_characters():
    long = Result("m", "check", "custom", "s", "error", details={"error": "x" * 300 + "\nmore"})
    assert why(long) == "x" * 199 + "…"
    two = Result("m", "check", "schema", "s", "critical", 2.0, details={"problems": ["a", "b"]})
    assert why(two) == "a; b"
    assert why(Result("m", "check", "schema", "s", "ok", 0.0, details={"problems": []})) is None
    assert why(Result("m", "check", "null_rate", "s", "warn", 0.2)) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (125, "2m 5s"),
        (3600, "1h 0m"),
        (2 * 3600 + 13 * 60 + 59, "2h 13m"),
        (3 * 86400 + 4 * 3600 + 5, "3d 4h"),
        (-90, "-1m 30s"),
    ],
)
def test_human_age(seconds, text):
    assert human_age(seconds) == text


def test_a_check_with_a_column_list_names_each_column():
    from rulesengine.engine.results import ModelResults

    def res(monitor: str, column: str, value: float) -> Result:
        return Result(monitor, "check", "null_rate", "r", "ok", value, column=column)

    text = to_text(
        [
            ModelResults(
                "m",
                AT,
                (res("nulls", "a", 0.0), res("nulls", "b", 0.25), res("single", "c", 0.5)),
            )
        ]
    )
    assert "nulls[a]" in text and "nulls[b]" in text
    # one result per monitor: the name alone, as before
    assert "single[c]" not in text and "  single  " in text
