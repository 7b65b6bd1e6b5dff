"""The same evaluation on a LocalCluster of two workers against this process.

    .venv/bin/python benchmarks/dask_overhead.py                  # the benchmark
    .venv/bin/python benchmarks/dask_overhead.py --rows 20000 --rounds 2   # a trial

The data and model of benchmarks/incremental.py (a one-day window over 24
hourly parquet files of ``--rows`` rows, default 50,000: 1.2M rows; 11 monitors
segmented by ``model_version``, PSI drift). Timed per round, in one process
with the drift profile cached beforehand:

* **single pass**: ``execute`` (what ``run --no-cache`` does);
* **cold, local**: ``execute_incremental`` with an empty cache: every file's
  partial states computed here, merged and finalised;
* **cold, Dask**: ``execute_on`` with an empty cache: the same partial states
  computed on the workers (24 files in 4 file partitions per query group);
* **tick, local** and **tick, Dask**: after one new hourly file, the next
  15-minute tick with the earlier files' partials cached (the new file's
  partials computed here, or on a worker).

The cluster is ``LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`` on 127.0.0.1, started once (its start is timed apart). Every
round checks that the Dask results equal the single pass's (floats within
1e-12 relative). Reports medians over ``--rounds`` rounds (default 3). On a
2-core machine the workers share the cores with the driver, so this measures
overhead, not speed-up. Writes ``results/dask.json`` and ``results/dask.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.incremental import AT, check, hour_file, hour_frame, spec, timed
from rulesengine.engine.distributed import DaskReport, close_executors, execute_on
from rulesengine.engine.evaluate import plan_model
from rulesengine.engine.execute import execute
from rulesengine.engine.incremental import execute_incremental
from rulesengine.engine.score import score
from rulesengine.spec.loader import load
from rulesengine.spec.model import ExecutorSpec

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("single pass", "cold, local", "cold, Dask", "tick, local", "tick, Dask")


def measure(rows: int, rounds: int) -> dict[str, Any]:
    from distributed import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="rulesengine-dask-"))
    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    cluster_start = time.perf_counter() - started
    executor = ExecutorSpec("dask", cluster.scheduler_address, timedelta(minutes=10))
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    tasks: list[int] = []
    try:
        (root / "logs").mkdir()
        for h in range(24):
            hour_file(root / "logs", AT - timedelta(hours=24 - h), rows, h)
        hour_frame(AT - timedelta(days=30), rows, 999).drop("ts").write_parquet(
            root / "training.parquet"
        )
        (root / "model.yaml").write_text(yaml.safe_dump(spec(root)), encoding="utf-8")
        (model,) = load([root / "model.yaml"], env={}).models
        plan_model(model, AT, root / "profiles")  # the drift profile, cached
        for r in range(rounds):
            at = AT + timedelta(hours=r)
            plan = plan_model(model, at, root / "profiles")
            t, full_frames = timed(lambda plan=plan: execute(plan.queries, model))
            times["single pass"].append(t)
            full = score(plan, full_frames)
            for kind, run in (
                ("cold, local", lambda c, plan=plan: execute_incremental(plan, model, c)),
                ("cold, Dask", lambda c, plan=plan: execute_on(executor, plan, model, c)),
            ):
                cache = root / f"cache-{kind[6:]}-{r}"  # empty: a cold cache
                t, frames = timed(lambda run=run, cache=cache: run(cache))
                times[kind].append(t)
                check(full, score(plan, frames))
            # a new hourly file, then the next tick
            hour_file(root / "logs", at, rows, 100 + r)
            tick = at + timedelta(minutes=15)
            plan = plan_model(model, tick, root / "profiles")
            full = score(plan, execute(plan.queries, model))
            report = DaskReport()
            t, frames = timed(
                lambda plan=plan, r=r: execute_incremental(plan, model, root / f"cache-local-{r}")
            )
            times["tick, local"].append(t)
            check(full, score(plan, frames))
            t, frames = timed(
                lambda plan=plan, r=r, report=report: execute_on(
                    executor, plan, model, root / f"cache-Dask-{r}", dask_report=report
                )
            )
            times["tick, Dask"].append(t)
            tasks.append(report.partial_tasks + report.query_tasks)
            check(full, score(plan, frames))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    finally:
        close_executors()
        cluster.close(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows_per_file": rows,
        "files": 24,
        "rows_in_window": rows * 24,
        "rounds": rounds,
        "cluster_start_s": round(cluster_start, 2),
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "overhead": {
            "cold": round(med["cold, Dask"] / med["cold, local"], 2),
            "tick": round(med["tick, Dask"] / med["tick, local"], 2),
            "tick_extra_s": round(med["tick, Dask"] - med["tick, local"], 3),
        },
        "tick_tasks": tasks,
        "results_equal": True,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "polars": pl.__version__,
    }


def render(res: dict[str, Any]) -> str:
    med = res["median_s"]
    lines = [
        "# Dask overhead: a LocalCluster of 2 workers against one process",
        "",
        f"{res['rows_in_window']:,} rows in the window ({res['files']} hourly parquet files), "
        f"medians of {res['rounds']} rounds, {res['machine']}, Polars {res['polars']}; "
        "2 cores shared by the driver, both workers and other work. "
        "Every round's Dask results equal the single pass's.",
        "",
        "| Run | Median (s) |",
        "|---|---|",
        *(f"| {k} | {med[k]:.2f} |" for k in KINDS),
        "",
        f"- Cold cache, Dask / local: **{res['overhead']['cold']}x**.",
        f"- Tick, Dask / local: **{res['overhead']['tick']}x** "
        f"(+{res['overhead']['tick_extra_s']:.2f} s per tick; tasks per tick: "
        f"{res['tick_tasks']}).",
        f"- Starting the cluster (once, not in the figures): {res['cluster_start_s']} s.",
        "",
        "Run: `.venv/bin/python benchmarks/dask_overhead.py` (see its docstring).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    res = measure(args.rows, args.rounds)
    text = render(res)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "dask.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        (RESULTS / "dask.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
