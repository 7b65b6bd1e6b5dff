"""The demo config's report in headless Chromium (Debian's ``chromium``): it
renders without console errors, every drift and trend chart is there, the four
injected incidents show, and screenshots at 375 px and 1,400 px are taken
(``RULESENGINE_REPORT_SHOTS=DIR`` keeps them, as docs/report-*.png were made).

History comes from four ``run --notify`` ticks on the demo logs. Without
chromium the tests skip naming the package; under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from examples.demo import generate
from tests.conftest import CONFIGS, need_tool, run_cli

# the module's fixture runs the demo config five times (with deliveries that
# retry against receivers nobody listens on) and renders two reports: about 80 s
# alone, and it once passed 120 s beside the Dask tests in a CI run
pytestmark = pytest.mark.timeout(360)

PACKAGE = "needs Debian's chromium package (apt-get install chromium)"
TICKS = ("2026-11-27T06:00:00Z", "2026-11-27T09:00:00Z", "2026-11-27T10:30:00Z")
AT = "2026-11-27T12:00:00Z"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report") / "configs"
    shutil.copytree(CONFIGS, root, ignore=shutil.ignore_patterns("data", ".rulesengine"))
    generate(root / "data")
    for at in (*TICKS, AT):
        proc = run_cli("run", ".", "--notify", "--at", at, cwd=root, timeout=240)
        assert proc.returncode in (0, 1), proc.stderr
    for fmt, name in (("html", "report.html"), ("json", "report.json")):
        args = ("report", ".", "--at", AT, "--since", "1d", "--format", fmt, "--out", name)
        proc = run_cli(*args, cwd=root, timeout=240)
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def doc(demo: Path) -> dict:
    return json.loads((demo / "report.json").read_text(encoding="utf-8"))


def _chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = need_tool("chromium", PACKAGE)
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_the_page_is_self_contained(demo: Path):
    html = (demo / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html.lower()


def test_every_drift_and_trend_chart_renders(demo: Path, doc: dict, tmp_path: Path):
    proc = _chromium(demo / "report.html", tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    # the config's own drift columns and metrics/KPIs, read from the specs' results
    run = run_cli("run", ".", "--at", AT, "--format", "json", cwd=demo, timeout=240)
    results = [(m["model"], r) for m in json.loads(run.stdout)["models"] for r in m["results"]]
    drift = {
        (model, r["monitor"], r["column"])
        for model, r in results
        if r["kind"] == "drift"
        and r["column"]
        and not r["segment"]
        and r["status"] not in ("error", "insufficient_data", "no_data")
    }
    trends = {(model, r["monitor"]) for model, r in results if r["kind"] in ("metric", "kpi")}
    assert len(drift) == 7 and len(trends) == 14
    for model, monitor, column in drift:
        assert f'id="drift--{model}--{monitor}--{column}"' in dom, (model, monitor, column)
    for model, monitor in trends:
        assert f'id="trend--{model}--{monitor}"' in dom, (model, monitor)
    assert dom.count('class="chart drift"') == len(drift)
    assert dom.count('class="chart trend"') == len(trends)
    # label coverage over time, for each metric with joined (delayed) labels
    joined = {
        (model, r["monitor"])
        for model, r in results
        if r["kind"] == "metric" and "label_coverage" in r["details"]
    }
    assert joined
    for model, monitor in joined:
        assert f'id="coverage--{model}--{monitor}"' in dom, (model, monitor)
    assert dom.count('class="chart coverage"') == len(joined)
    # the coverage at the last tick is what that run reported for the overall result
    at_last = {
        (model, r["monitor"]): r["details"]["label_coverage"]
        for model, r in results
        if (model, r["monitor"]) in joined and not r["segment"]
    }
    for m in doc["models"]:
        for entry in m["label_coverage"]:
            [overall] = [s for s in entry["series"] if s["segment"] == "(all)"]
            want = at_last[(m["model"], entry["monitor"])]
            assert overall["points"][-1]["coverage"] == pytest.approx(want, rel=1e-9)


def test_no_console_errors_and_screenshots(demo: Path, tmp_path: Path):
    keep = os.environ.get("RULESENGINE_REPORT_SHOTS")
    for width in (375, 1400):
        shot = tmp_path / f"report-{width}.png"
        proc = _chromium(
            demo / "report.html",
            tmp_path,
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            f"--window-size={width},2000",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
        assert console == []
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(shot.read_bytes()[16:20], "big") == width  # the PNG's width
        if keep:
            shutil.copy(shot, Path(keep) / shot.name)


def test_the_demo_incidents_show(demo: Path, doc: dict):
    manifest = json.loads((demo / "data" / "incidents.json").read_text(encoding="utf-8"))
    models = {m["model"]: m for m in doc["models"]}
    assert len(manifest["incidents"]) == 4
    for incident in manifest["incidents"]:
        model = models[incident["model"]]
        monitor = incident["monitor"]
        shown = {
            (r["status"], json.dumps(r["segment"], sort_keys=True))
            for r in model["summary"]
            if r["monitor"] == monitor
        }
        for e in incident["expected"]:
            if e["status"] != "ok":  # each expected non-ok result is in the summary
                key = json.dumps(e["segment"], sort_keys=True)
                assert any(seg == key and s != "ok" for s, seg in shown), (incident["id"], e)
        html = (demo / "report.html").read_text(encoding="utf-8")
        assert monitor in html
        if any(
            e["status"] in ("warn", "critical") and not e["segment"] for e in incident["expected"]
        ):
            timeline = {t["monitor"] for t in model["timeline"]}
            assert monitor in timeline, incident["id"]
