"""A cluster that fails an evaluation never yields partial numbers: a killed
worker's tasks are retried by Dask and the results are complete; a cluster that
cannot be reached, or closes mid-run, makes the affected monitors report
``error`` naming the cluster."""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rulesengine.engine.distributed import DaskReport
from rulesengine.engine.results import ModelResults
from tests.dask.conftest import local_cluster
from tests.dask.helpers import add_labels, fast_tasks, on_dask, slow_tasks, write_logs
from tests.incremental.helpers import assert_same, close, load_model, model_spec

pytestmark = pytest.mark.timeout(90)


def _model(root: Path, hours: int = 12) -> Any:
    write_logs(root, hours=hours, rows=200)
    return load_model(root, add_labels(model_spec(root, window="12h"), root))


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _wait_for(cond: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _complete_or_error(full: ModelResults, got: ModelResults) -> int:
    """Each monitor's results equal the single pass's, or the monitor reports an
    error naming the cluster, with no value; the number of monitors in error."""

    def by_monitor(m: ModelResults) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for r in m.results:
            out.setdefault(r.monitor, []).append(r)
        return out

    want, have = by_monitor(full), by_monitor(got)
    assert set(want) == set(have)
    errors = 0
    for name, results in have.items():
        if any(s.status == "error" for s in results):
            assert not any(r.status == "error" for r in want[name])
            for s in results:  # the monitor's error, never a value beside it
                assert s.status == "error" and s.value is None, s
                assert str(s.details["error"]).startswith("Dask cluster at tcp://127.0.0.1:"), s
            errors += 1
            continue
        assert len(results) == len(want[name]), name
        for r, s in zip(want[name], results, strict=True):
            assert (r.column, r.segment, r.status, r.rows) == (
                s.column,
                s.segment,
                s.status,
                s.rows,
            )
            if isinstance(r.value, float) and math.isnan(r.value):
                assert math.isnan(s.value)
            else:
                assert r.value == pytest.approx(s.value, rel=1e-9, abs=1e-12), name
    return errors


def test_a_worker_killed_mid_evaluation_still_gives_complete_results(
    cluster: Any, client: Any, tmp_path: Path
) -> None:
    model = _model(tmp_path)
    client.run(slow_tasks, 0.25)  # 12 files one per task: a few seconds of work
    try:
        pids = client.run(os.getpid)
        dask_report = DaskReport()
        t, out = _in_thread(
            lambda: on_dask(
                model,
                cluster.scheduler_address,
                tmp_path / "cache",
                files_per_task=1,
                dask_report=dask_report,
            )
        )
        # kill a worker while it runs one of this evaluation's tasks
        busy: list[str] = []
        assert _wait_for(
            lambda: busy.extend(w for w, ks in client.processing().items() if ks) or busy, 20
        )
        victim = busy[0]
        time.sleep(0.3)
        assert t.is_alive(), "the evaluation ended before a worker could be killed"
        os.kill(pids[victim], signal.SIGKILL)
        t.join(60)
        assert not t.is_alive() and "error" not in out, out.get("error")
        full, got = out["value"]
        assert_same(full, got)
        assert not any(r.status == "error" for r in got.results)
        assert dask_report.partial_tasks >= 12
    finally:
        client.run(fast_tasks)
        client.wait_for_workers(2, timeout=30)  # the nanny restarts the killed one
        client.run(fast_tasks)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cluster_that_does_not_answer_gives_errors(tmp_path: Path) -> None:
    model = _model(tmp_path, hours=3)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    full, got = on_dask(model, address, tmp_path / "cache", timeout=timedelta(seconds=2))
    assert time.monotonic() - started < 30
    assert not any(r.status == "error" for r in full.results)
    for r in got.results:
        assert r.status == "error" and r.value is None, r
        message = r.details["error"]
        assert message.startswith(f"Dask cluster at {address}: cannot connect within 2s"), message


def test_a_cluster_closed_mid_run_gives_errors_never_partial_values(tmp_path: Path) -> None:
    from distributed import Client

    model = _model(tmp_path)
    cluster = local_cluster()
    try:
        with Client(cluster.scheduler_address, set_as_default=False, timeout=20) as c:
            c.run(slow_tasks, 0.4)
            t, out = _in_thread(
                lambda: on_dask(
                    model,
                    cluster.scheduler_address,
                    tmp_path / "cache",
                    timeout=timedelta(seconds=15),
                    files_per_task=1,
                )
            )
            assert _wait_for(lambda: any(c.processing().values()), 20)
            time.sleep(0.3)
        assert t.is_alive()
        cluster.close(timeout=20)
        t.join(60)
        assert not t.is_alive() and "error" not in out, out.get("error")
        full, got = out["value"]
        assert _complete_or_error(full, got) > 0
    finally:
        cluster.close(timeout=20)


def test_close_compares_floats_relatively() -> None:  # the helper the others lean on
    close(1.0, 1.0 + 1e-13)
    with pytest.raises(AssertionError):
        close(1.0, 1.0 + 1e-9)
