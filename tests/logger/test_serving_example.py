"""examples/serving: the tiny server validates, predicts and logs, and
`rulesengine run` on its config sees exactly the accepted requests."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from tests.conftest import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "serving"


def copy_config(tmp_path: Path) -> Path:
    config = tmp_path / "serving"
    config.mkdir()
    shutil.copy(EXAMPLE / "engine.yaml", config)
    shutil.copytree(EXAMPLE / "models", config / "models")
    return config


def run_results(config: Path) -> dict[str, dict[str, Any]]:
    at = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = run_cli("run", str(config), "--at", at, "--format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    return {r["monitor"]: r for r in json.loads(out.stdout)["models"][0]["results"]}


def test_the_example_config_validates() -> None:
    out = run_cli("validate", str(EXAMPLE))
    assert out.returncode == 0, out.stdout + out.stderr


def test_simulated_traffic_is_validated_logged_and_monitored(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "serve.py"), "--config", str(config), "--simulate", "400"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["accepted"] + summary["refused"] == 400 and summary["refused"] > 0
    results = run_results(config)
    assert results["volume"]["value"] == summary["accepted"]
    assert {r["status"] for r in results.values()} == {"ok"}, results
    assert results["default-recall"]["rows"] == summary["accepted"]


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_refuses_a_bad_request_naming_its_fields_and_flushes_on_sigterm(
    tmp_path: Path,
) -> None:
    config = copy_config(tmp_path)
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "serve.py"), "--config", str(config),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base = server.stdout.readline().split()[-1]
        assert base.startswith("http://127.0.0.1:")
        good = {"amount": 12000, "term_months": 36, "income": 52000, "purpose": "car",
                "channel": "web"}  # fmt: skip
        status, body = post(f"{base}/predict", good)
        assert status == 200 and 0 <= body["score"] <= 1
        status, refused = post(f"{base}/predict", {**good, "amount": -1, "channel": "fax"})
        assert status == 422
        assert sorted(v["field"] for v in refused["violations"]) == ["amount", "channel"]
        assert (
            post(f"{base}/label", {"request_id": body["request_id"], "defaulted": False})[0] == 200
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    assert server.returncode == 0
    data = config / "data" / "loan-scorer"
    requests = pl.read_parquet(data / "requests" / "**" / "*.parquet")
    assert requests["request_id"].to_list() == [body["request_id"]]
    assert requests.schema["amount"] == pl.Float64  # the contract's dtypes: 12000 is a float
    labels = pl.read_parquet(data / "labels" / "**" / "*.parquet")
    assert labels["defaulted"].to_list() == [False]
