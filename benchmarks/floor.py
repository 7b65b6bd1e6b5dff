"""The pure-Polars floor: the current side's drift aggregates in one pass, nothing else.

    .venv/bin/python benchmarks/floor.py prepare DATA_DIR   # reference edges, once
    .venv/bin/python benchmarks/floor.py run DATA_DIR [--sums]

``prepare`` reads ``reference.parquet`` and writes ``floor-edges.json``: per numeric
column the fine cells rulesengine's profile fixes for wasserstein (the reference
quantiles at k/1000, k = 1..999, linear interpolation, duplicates collapsed), as
rulesengine's profile cache holds them. It is not timed, like a cached profile.

``run`` is what is timed. It scans ``current.parquet``, keeps the rows of the window,
and builds one query per column:

* numeric: ``group_by(bin_intervals(edges, labels=False, right_closed=True)).len()``,
  the histogram over the reference's fine cells;
* categorical: ``group_by(column).len()``, the category counts;

and runs them all with ``pl.collect_all(engine="in-memory")`` so that they share
one scan (see NOTES.md). With ``--sums`` it also computes what rulesengine's
wasserstein needs beyond counts: the per-cell sums and each column's min and max,
i.e. exactly the aggregates rulesengine's plan asks Polars for.

It imports Polars only, and prints one JSON line: phase timings and a checksum.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()

import polars as pl  # noqa: E402  (timed import)

T_IMPORT = time.perf_counter()

FINE_CELLS = 1000  # rulesengine.profiles.FINE_CELLS


def prepare(data: str) -> None:
    import numpy as np

    with open(f"{data}/manifest.json") as fh:
        manifest = json.load(fh)
    ref = pl.read_parquet(f"{data}/reference.parquet", columns=manifest["numeric"])
    levels = np.arange(1, FINE_CELLS) / FINE_CELLS
    edges = {}
    for c in manifest["numeric"]:
        values = np.sort(ref[c].drop_nulls().cast(pl.Float64).to_numpy())
        edges[c] = np.unique(np.quantile(values, levels, method="linear")).tolist()
    out = {
        "numeric": manifest["numeric"],
        "categorical": manifest["categorical"],
        "at": manifest["at"],
        "edges": edges,
    }
    with open(f"{data}/floor-edges.json", "w") as fh:
        json.dump(out, fh)


def run(data: str, sums: bool) -> dict:
    from datetime import datetime, timedelta

    with open(f"{data}/floor-edges.json") as fh:
        spec = json.load(fh)
    end = datetime.fromisoformat(spec["at"].replace("Z", "+00:00"))
    start = end - timedelta(days=1)
    ts = pl.col("ts")
    lf = pl.scan_parquet(f"{data}/current.parquet").filter((ts > start) & (ts <= end))
    queries = []
    for c in spec["numeric"]:
        x = pl.col(c).cast(pl.Float64)
        bucket = x.bin_intervals(spec["edges"][c], labels=False, right_closed=True).alias("b")
        aggs = [pl.len(), x.sum().alias("sum")] if sums else [pl.len()]
        queries.append(lf.group_by(bucket).agg(aggs))
    for c in spec["categorical"]:
        queries.append(lf.group_by(pl.col(c).alias("b")).agg(pl.len()))
    if sums:
        x = [pl.col(c).cast(pl.Float64) for c in spec["numeric"]]
        extremes = [e.min().name.suffix("_min") for e in x]
        extremes += [e.max().name.suffix("_max") for e in x]
        queries.append(lf.select(pl.len(), *extremes))
    t_plan = time.perf_counter()
    frames = pl.collect_all(queries, engine="in-memory")
    t_collect = time.perf_counter()
    # checksum: every histogram must count every row of the window
    histograms = frames[: len(spec["numeric"]) + len(spec["categorical"])]
    totals = {int(f["len"].sum()) for f in histograms}
    cells = sum(f.height for f in frames)
    return {
        "queries": len(queries),
        "cells": cells,
        "rows_per_histogram": sorted(totals),
        "plan_s": t_plan - T_IMPORT,
        "collect_s": t_collect - t_plan,
        "import_s": T_IMPORT - T0,
    }


def main() -> None:
    cmd, data, *rest = sys.argv[1:]
    if cmd == "prepare":
        prepare(data)
    elif cmd == "run":
        result = run(data, "--sums" in rest)
        result["total_s"] = time.perf_counter() - T0
        print(json.dumps(result))
    else:
        raise SystemExit(f"unknown command {cmd!r}: prepare or run")


if __name__ == "__main__":
    main()
