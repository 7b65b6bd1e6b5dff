"""The executor's configuration, and Dask staying out of a local process: the
spec parses and validates, a local run imports neither dask nor distributed,
and a Dask executor without the extra stops with one line naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from rulesengine.spec.loader import load, load_report
from rulesengine.spec.model import ExecutorSpec
from tests.incremental.helpers import AT, model_spec, write_hour, write_reference

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def _config(root: Path, executor: dict[str, object] | None = None) -> Path:
    """An engine file with one model over two hours of logs."""
    write_hour(root / "logs", AT - timedelta(hours=2), 200, 1)
    write_hour(root / "logs", AT - timedelta(hours=1), 200, 2)
    write_reference(root / "ref.parquet")
    (root / "models").mkdir(exist_ok=True)
    spec = model_spec(root, window="2h")
    (root / "models" / "m.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    engine: dict[str, object] = {"version": 1, "state": str(root / "state" / "state.db")}
    if executor is not None:
        engine["executor"] = executor
    (root / "engine.yaml").write_text(yaml.safe_dump(engine), encoding="utf-8")
    return root


def test_the_executor_parses_with_its_defaults(tmp_path: Path) -> None:
    root = _config(tmp_path)
    assert load([root], env={}).engine.executor.type == "local"
    executor = {"type": "dask", "address": "${SCHEDULER}", "timeout": "30s"}
    _config(tmp_path, executor)
    spec = load([root], env={"SCHEDULER": "tls://10.0.0.5:8786"}).engine.executor
    assert (spec.type, spec.address, spec.timeout) == (
        "dask",
        "tls://10.0.0.5:8786",
        timedelta(seconds=30),
    )
    _config(tmp_path, {"type": "dask", "address": "tcp://h:8786"})
    assert load([root], env={}).engine.executor.timeout == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ({"type": "local", "address": "tcp://h:1"}, "a local executor has no address"),
        ({"type": "dask", "address": "tcp://h:70000"}, "port must be at most 65535, got 70000"),
        ({"type": "dask", "address": "http://h:8786"}, "is not the scheduler's address"),
        ({"type": "dask"}, "type dask needs address"),
        ({"type": "spark", "address": "tcp://h:1"}, "expected 'local' or 'dask'"),
    ],
)
def test_bad_executors_are_reported(
    tmp_path: Path, executor: dict[str, object], message: str
) -> None:
    root = _config(tmp_path, executor)
    report = load_report([str(root)], env={})
    text = "\n".join(f"{'.'.join(p.path)}: {p.message}" for p in report.problems)
    assert message in text, text


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=50,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
    )


def test_a_local_run_imports_no_dask(tmp_path: Path) -> None:
    root = _config(tmp_path)
    code = f"""
import atexit, json, sys
atexit.register(lambda: print("MODULES", json.dumps(
    sorted(m for m in ("dask", "distributed") if m in sys.modules)), file=sys.stderr))
import rulesengine.engine.distributed  # importing the module loads no Dask either
from rulesengine.cli import main
main(["run", {str(root)!r}, "--at", "{AT.isoformat()}", "--format", "json", "--fail-on", "never"])
"""
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results["models"][0]["results"], results
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    assert json.loads(line.removeprefix("MODULES ")) == []


def test_a_dask_executor_without_the_extra_names_it(tmp_path: Path) -> None:
    root = _config(tmp_path, {"type": "dask", "address": "tcp://127.0.0.1:8786"})
    code = f"""
import sys
sys.modules["distributed"] = None  # as if rulesengine[dask] were not installed
from rulesengine.cli import main
main(["run", {str(root)!r}, "--at", "{AT.isoformat()}"])
"""
    done = _python(code, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: executor type dask needs dask.distributed: pip install 'rulesengine[dask]'"
    ]


def test_run_on_the_cluster_equals_a_local_single_pass(cluster: Any, tmp_path: Path) -> None:
    """``rulesengine run`` with ``executor: dask`` (cold, then warm cache, then
    --no-cache) gives the local single pass's results (the JSON keeps 12
    significant digits)."""
    from rulesengine.engine.evaluate import evaluate
    from tests.conftest import run_cli

    root = _config(tmp_path, {"type": "dask", "address": cluster.scheduler_address})
    local = load([root], env={})
    local = replace(local, engine=replace(local.engine, executor=ExecutorSpec()))
    (expected,) = evaluate(local, AT, cache=False)
    for flags in ([], [], ["--no-cache"]):
        done = run_cli(
            "run",
            str(root),
            "--at",
            AT.isoformat(),
            "--format",
            "json",
            "--fail-on",
            "never",
            *flags,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        (model,) = json.loads(done.stdout)["models"]
        got = {
            (r["monitor"], r.get("column"), json.dumps(r["segment"])): r for r in model["results"]
        }
        assert len(got) == len(expected.results)
        for r in expected.results:
            g = got[(r.monitor, r.column, json.dumps(dict(r.segment)))]
            assert (g["status"], g["rows"]) == (r.status, r.rows), r.monitor
            if r.value is None:
                assert g["value"] is None
            else:
                assert g["value"] == pytest.approx(r.value, rel=1e-11), r.monitor
    assert (root / "state" / "partials").is_dir()  # the driver keeps the cache
