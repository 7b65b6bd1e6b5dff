"""Claims of the docs, run as the docs write them.

Each claim sits in a fenced block after a ``<!-- claim: NAME ... -->`` marker:
a spec (YAML) whose outcome the next sentence states, or ``rulesengine``
commands whose ``# … → outcome`` comments state what each one leads to. The
tests read the block and the stated outcome from the markdown and run them, so
the docs cannot drift from the code again.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from rulesengine.engine.evaluate import evaluate
from rulesengine.spec.loader import load
from tests.conftest import ROOT, run_cli
from tests.delivery.conftest import HttpReceiver, free_port

DOCS = ROOT / "docs"


def claim(doc: str, name: str) -> tuple[str, str]:
    """The fenced block after the ``claim: name`` marker of ``docs/doc``, and the
    paragraph that follows it."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    found = re.search(
        rf"<!-- claim: {re.escape(name)}\b.*?-->\n```[a-z]*\n(.*?)\n```\n(.*?)(?:\n\n|\Z)",
        text,
        re.S,
    )
    assert found, f"docs/{doc} has no claim '{name}'"
    return found.group(1), found.group(2)


def commands(block: str) -> list[tuple[list[str], str]]:
    """``rulesengine ARGS  # … → outcome`` lines as (ARGS, outcome)."""
    out = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        args = shlex.split(command)
        assert args[0] == "rulesengine", line
        assert "→" in comment, f"no stated outcome in: {line}"
        out.append((args[1:], comment.rsplit("→", 1)[1].strip()))
    return out


# ------------------------------------------------------------ KPI compare, min_rows


def test_kpi_compare_min_rows_claim(tmp_path: Path):
    spec, sentence = claim("evaluation.md", "kpi-compare-min-rows")
    reason = re.search(r"with the reason `([^`]+)`", sentence).group(1)
    empty_value = float(re.search(r"the value is `(-?[\d.]+)`", sentence).group(1))
    kpi = yaml.safe_load(spec)["kpis"][0]
    at = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    now = [at - timedelta(minutes=50) + timedelta(seconds=20 * i) for i in range(95)]
    then = [at - timedelta(days=7, minutes=50) + timedelta(seconds=20 * i) for i in range(100)]

    def run(stamps: list[datetime]):
        pl.DataFrame({"ts": stamps}, schema={"ts": pl.Datetime("us", "UTC")}).write_parquet(
            tmp_path / "orders.parquet"
        )
        model = {
            "version": 1,
            "model": "shop",
            "sources": {"orders": {"path": "orders.parquet", "timestamp": "ts"}},
            "evaluation": {"window": "1h"},
            "kpis": [kpi],
        }
        (tmp_path / "model.yaml").write_text(yaml.safe_dump(model), encoding="utf-8")
        ((result,),) = [m.results for m in evaluate(load([tmp_path / "model.yaml"], env={}), at)]
        return result

    short = run(now + then)
    assert (short.status, short.details["reason"], short.rows) == ("insufficient_data", reason, 95)
    assert reason == f"{len(now)} rows, min_rows is {kpi['min_rows']}"
    empty = run(then)
    assert empty.value == empty_value == (0 - len(then)) / len(then)


def test_no_doc_still_says_min_rows_skips_kpis_with_compare():
    texts = [p.read_text(encoding="utf-8") for p in [*DOCS.glob("*.md"), ROOT / "README.md"]]
    for text in texts:
        flat = " ".join(text.split())
        assert "does not apply to a KPI with `compare`" not in flat
        assert "apply to `row_count`, `count`, `throughput` and KPIs with `compare`" not in flat
        assert "`min_rows` does not apply. `details`" not in flat


# ------------------------------------------------------------ the alerting commands

AT1 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def _config(root: Path, receiver: str | None, for_: int | None = None) -> None:
    """A model whose amount-nulls check violates around AT1 and in the last two
    hours of the wall clock."""
    wall = datetime.now(UTC).replace(microsecond=0)
    stamps = [AT1 - timedelta(hours=2) + timedelta(minutes=i) for i in range(150)]
    stamps += [wall - timedelta(hours=2) + timedelta(minutes=i) for i in range(119)]
    (root / "data").mkdir(parents=True)
    pl.DataFrame(
        {"ts": stamps, "amount": [None if i % 2 else 1.0 for i in range(len(stamps))]},
        schema={"ts": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    ).write_parquet(root / "data" / "requests.parquet")
    check = {
        "name": "amount-nulls",
        "source": "requests",
        "type": "null_rate",
        "column": "amount",
        "critical": {"above": 0.05},
    }
    if for_ is not None:
        check["for"] = for_
    model = {
        "version": 1,
        "model": "fraud",
        "labels": {"team": "risk"},
        "sources": {"requests": {"path": "data/requests.parquet", "timestamp": "ts"}},
        "evaluation": {"every": "15m", "window": "1h"},
        "checks": [check],
    }
    (root / "models").mkdir()
    (root / "models" / "fraud.yaml").write_text(yaml.safe_dump(model), encoding="utf-8")
    engine: dict = {"version": 1, "state": "state/state.db"}
    if receiver:
        engine |= {
            "receivers": {"hook": [receiver]},
            "routes": [{"receivers": ["hook"]}],
            "grouping": {"by": ["model"], "wait": "0s", "interval": "1m", "repeat": "4h"},
        }
    (root / "engine.yaml").write_text(yaml.safe_dump(engine), encoding="utf-8")


def _cli(root: Path, args: list[str]) -> None:
    proc = run_cli(*args, cwd=root, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr  # 1: a critical result
    assert "Traceback" not in proc.stderr, proc.stderr


def test_same_at_claim(tmp_path: Path):
    steps = commands(claim("alerting.md", "same-at")[0])
    assert [outcome for _, outcome in steps] == ["pending", "pending", "firing"]
    for_ = int(re.search(r"for: (\d+)", claim("alerting.md", "same-at")[0]).group(1))
    _config(tmp_path, None, for_=for_)
    for args, outcome in steps:
        _cli(tmp_path, args)
        listed = run_cli("alerts", "-c", ".", "--format", "json", cwd=tmp_path, timeout=60)
        (alert,) = json.loads(listed.stdout)["alerts"]
        assert alert["state"] == outcome, (args, listed.stdout)


@pytest.fixture
def receiver():
    r = HttpReceiver(free_port())
    yield r
    r.close()


def test_silence_at_claim(tmp_path: Path, receiver: HttpReceiver):
    steps = commands(claim("alerting.md", "silence-at")[0])
    assert [outcome for _, outcome in steps] == ["starts now", "notified", "muted"]
    _config(tmp_path, f"json://127.0.0.1:{receiver.port}/hook")
    queued = []
    for args, _ in steps:
        _cli(tmp_path, args)
        with sqlite3.connect(tmp_path / "state" / "state.db") as db:
            queued.append(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    # the silence queues nothing; the run before it began notifies; the one inside it not
    assert queued == [0, 1, 1]
    (sent,) = receiver.wait_for(1, "/hook", timeout=20)
    assert sent.payload["type"] == "failure"  # a critical alert
