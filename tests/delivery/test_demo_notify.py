"""The alerting 'done when': the demo's incidents reach a local HTTP receiver and a
local SMTP server, grouped per model; a second run sends nothing new; a fixed
incident sends one resolved message."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl

from examples.demo import DEMO_AT, generate
from tests.conftest import CONFIGS, run_cli
from tests.delivery.conftest import free_port

AT = DEMO_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
LATER = (DEMO_AT + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _titles(requests) -> list[str]:
    return [json.loads(r.body)["title"] for r in requests]


def test_demo_incidents_are_delivered_grouped_then_deduplicated_then_resolved(
    tmp_path: Path, http_receiver, smtp_receiver
):
    root = tmp_path / "configs"
    shutil.copytree(CONFIGS, root, ignore=shutil.ignore_patterns("data", ".rulesengine"))
    generate(root / "data")
    http, smtp = http_receiver(free_port()), smtp_receiver(free_port())
    env = {
        "ML_TEAM_WEBHOOK": f"json://127.0.0.1:{http.port}/alerts",
        "RETRAIN_HOOK": f"json://127.0.0.1:{http.port}/retrain",
        "ONCALL_EMAIL_URL": f"mailto://127.0.0.1:{smtp.port}?from=rulesengine@example.com"
        "&to=oncall@example.com&mode=insecure",
    }

    def run(at: str) -> str:
        result = run_cli(
            "run",
            str(root),
            "--at",
            at,
            "--notify",
            "--fail-on",
            "never",
            cwd=root,
            env=env,
            timeout=240,
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    run(AT)
    # one notification per model with firing alerts (grouping by model), to the team
    # webhook; the critical ones also by mail to on-call; no drift, no retrain hook
    team = http.wait_for(2, "/alerts")
    titles = _titles(team)
    # configs/engine.yaml titles: "[$severity] $model / $monitor"
    assert sorted(t.split(" / ")[0] for t in titles) == [
        "[critical] fraud-detector",
        "[critical] support-assistant",
    ]
    bodies = {
        json.loads(r.body)["title"].split(" / ")[0]: json.loads(r.body)["message"] for r in team
    }
    fraud = bodies["[critical] fraud-detector"]
    assert "amount-nulls" in fraud and "latency-p95" in fraud
    assert "runbook: https://wiki.example.com/runbooks/fraud-nulls" in fraud
    assert "[FIRING] support-assistant / request-schema" in bodies["[critical] support-assistant"]
    mails = smtp.wait_for(2)
    assert sorted(m.subject.split(" / ")[0] for m in mails) == [
        "[critical] fraud-detector",
        "[critical] support-assistant",
    ]
    assert http.at("/retrain") == []

    # the same evaluation again, within repeat_interval: nothing new
    run(AT)
    assert len(http.at("/alerts")) == 2 and len(smtp.mails) == 2

    # the schema change is fixed upstream: the renamed field is restored
    path = root / "data" / "assistant" / "requests" / "2026-11-27.ndjson"
    fixed = (
        pl.read_ndjson(path)
        .with_columns((pl.col("latency_s") * 1000).round(1).alias("latency_ms"))
        .drop("latency_s")
    )
    fixed.write_ndjson(path)
    run(LATER)
    team = http.at("/alerts")
    resolved = [r for r in team[2:] if json.loads(r.body)["title"].startswith("[RESOLVED]")]
    assert len(resolved) == 1, _titles(team)
    message = json.loads(resolved[0].body)
    assert message["title"].startswith("[RESOLVED] support-assistant / request-schema")
    assert "[RESOLVED] support-assistant / request-schema" in message["message"]
    assert all(
        "support-assistant" not in t for t in _titles(team[2:]) if t not in [message["title"]]
    )
