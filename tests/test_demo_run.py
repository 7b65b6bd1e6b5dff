"""The main job on the bundled example: the demo logs' injected incidents, and
nothing else, through the real command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from examples.demo import DEMO_AT, generate
from tests.conftest import CONFIGS, run_cli

AT = DEMO_AT.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "configs"
    shutil.copytree(CONFIGS, root, ignore=shutil.ignore_patterns("data", ".rulesengine"))
    generate(root / "data")
    return root


def test_run_reports_exactly_the_injected_incidents(demo: Path):
    result = run_cli("run", str(demo), "--at", AT, "--format", "json", cwd=demo, timeout=240)
    assert result.returncode == 1, result.stderr  # critical results
    doc = json.loads(result.stdout)
    manifest = json.loads((demo / "data" / "incidents.json").read_text())
    not_ok = {
        (m["model"], r["monitor"], json.dumps(r["segment"], sort_keys=True)): r
        for m in doc["models"]
        for r in m["results"]
        if r["status"] != "ok"
    }
    expected = set()
    for incident in manifest["incidents"]:
        for e in incident["expected"]:
            if e["status"] != "ok":
                key = (
                    incident["model"],
                    incident["monitor"],
                    json.dumps(e["segment"], sort_keys=True),
                )
                expected.add(key)
                got = not_ok.get(key)
                assert got is not None, f"{incident['id']}: {key} is ok"
                if e["status"] in ("critical", "warn"):
                    assert got["status"] == e["status"], (incident["id"], got)
                    assert got["value"] == pytest.approx(e["value"], rel=1e-3, abs=1e-6)
    # the schema change is caught as such by the assistant's schema check
    schema = not_ok.pop(("support-assistant", "request-schema", "{}"))
    assert schema["status"] == "critical"
    assert "missing column 'latency_ms'" in schema["details"]["problems"][0]
    assert set(not_ok) == expected, set(not_ok) ^ expected


def test_plan_shows_one_scan_per_source_and_window(demo: Path):
    result = run_cli(
        "plan", str(demo / "models" / "fraud-detector.yaml"), "--at", AT, cwd=demo, timeout=120
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "monitors:" in text and "aggregates:" in text and "polars plan" in text
    # queries over the same source and window share one cached scan in the plan
    assert "CACHE" in text


def test_check_sources_passes_on_the_demo(demo: Path):
    result = run_cli("validate", str(demo), "--check-sources", cwd=demo, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


SNAPSHOT = Path(__file__).parent / "fixtures" / "snapshots" / "run-configs.json"


def test_the_readme_command_prints_the_snapshot_byte_for_byte(demo: Path):
    """The README's first command, `rulesengine run configs/ --at … --format json
    --fail-on never`, run from the folder that holds `configs/`, prints exactly the
    kept document. A refactor must not change a byte of it; a deliberate change of
    the results updates the snapshot in the same commit (see the file's history).
    Twice: cold (profiles built) and warm (profiles read from the cache)."""
    args = ("run", "configs/", "--at", AT, "--format", "json", "--fail-on", "never")
    for _ in range(2):
        result = run_cli(*args, cwd=demo.parent, timeout=240)
        assert result.returncode == 0, result.stderr
        if result.stdout != SNAPSHOT.read_text(encoding="utf-8"):
            got = json.loads(result.stdout)
            want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
            assert got == want  # pytest shows where the documents differ
            pytest.fail("same document, different bytes (key order or formatting)")
