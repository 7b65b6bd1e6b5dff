"""The floors: the current side's drift aggregates in one pass, nothing else.

    .venv/bin/python benchmarks/floor.py prepare DATA_DIR   # the reference's grids, once
    .venv/bin/python benchmarks/floor.py run DATA_DIR [--numpy]

``prepare`` reads ``reference.parquet`` and writes ``floor-grid.json``: per numeric
column the fine grid rulesengine's profile fixes for wasserstein, by the same rule
(GRID_CELLS equal cells between the reference quantiles at 0.001 and 0.999, linear
interpolation; min and max if those coincide). ``run.py`` checks that it equals the
grid in rulesengine's cached profile. It is not timed, like a cached profile.

``run`` is what is timed. It scans ``current.parquet``, keeps the rows of the window,
and computes each row's cell, ``⌊(x − lo)·scale⌋ + 1`` clipped to the outer cells, as
rulesengine does. Then:

* by default, pure Polars: ``group_by(cell).len()`` for each numeric column and
  ``group_by(column).len()`` for each categorical one, all in one
  ``pl.collect_all(engine="in-memory")`` so that they share one scan (see NOTES.md).
  This is the floor of the issue: the same histograms, pure Polars.
* with ``--numpy``, what rulesengine itself computes, without the rest of it: one
  Polars ``select`` of every numeric column's cells and values, NumPy's ``bincount``
  for the per-cell counts and sums, the sorted values of the two outer cells, and the
  same categorical ``group_by``s, in one ``collect_all``.

It imports Polars (and NumPy with ``--numpy``) only, and prints one JSON line: phase
timings and a checksum.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.perf_counter()

import polars as pl  # noqa: E402  (timed import)

T_IMPORT = time.perf_counter()

GRID_CELLS = 2048  # rulesengine.monitors.drift.profiles.GRID_CELLS
GRID_TAIL = 0.001  # rulesengine.monitors.drift.profiles.GRID_TAIL


def prepare(data: str) -> None:
    import numpy as np

    with open(f"{data}/manifest.json") as fh:
        manifest = json.load(fh)
    ref = pl.read_parquet(f"{data}/reference.parquet", columns=manifest["numeric"])
    grids = {}
    for c in manifest["numeric"]:
        values = np.sort(ref[c].drop_nulls().cast(pl.Float64).to_numpy())
        lo, hi = np.quantile(values, [GRID_TAIL, 1 - GRID_TAIL], method="linear")
        if not hi > lo:
            lo, hi = values[0], values[-1]
        grids[c] = [float(lo), GRID_CELLS / float(hi - lo)]
    out = {
        "numeric": manifest["numeric"],
        "categorical": manifest["categorical"],
        "at": manifest["at"],
        "grids": grids,
    }
    with open(f"{data}/floor-grid.json", "w") as fh:
        json.dump(out, fh)


def cell(c: str, lo: float, scale: float) -> pl.Expr:
    x = pl.col(c).cast(pl.Float64)
    u = ((x - lo) * scale + 1.0).clip(0.0, GRID_CELLS + 1.0)
    return u.cast(pl.UInt16, strict=False).fill_null(GRID_CELLS + 2)


def run(data: str, numpy: bool) -> dict:
    from datetime import datetime, timedelta

    with open(f"{data}/floor-grid.json") as fh:
        spec = json.load(fh)
    end = datetime.fromisoformat(spec["at"].replace("Z", "+00:00"))
    start = end - timedelta(days=1)
    ts = pl.col("ts")
    lf = pl.scan_parquet(f"{data}/current.parquet").filter((ts > start) & (ts <= end))
    numeric, grids = spec["numeric"], spec["grids"]
    queries = []
    if numpy:
        cells = [cell(c, *grids[c]).alias(f"i_{c}") for c in numeric]
        queries.append(lf.select(*cells, *(pl.col(c).alias(f"w_{c}") for c in numeric)))
    else:
        queries += [lf.group_by(cell(c, *grids[c]).alias("b")).len() for c in numeric]
    for c in spec["categorical"]:
        queries.append(lf.group_by(pl.col(c).alias("b")).len())
    t_plan = time.perf_counter()
    frames = pl.collect_all(queries, engine="in-memory")
    t_collect = time.perf_counter()
    if numpy:
        import numpy as np

        slots = GRID_CELLS + 3
        rows = frames[0]
        totals = set()
        for c in numeric:
            index = rows[f"i_{c}"].to_numpy()
            weights = rows[f"w_{c}"].to_numpy()
            counts = np.bincount(index, minlength=slots)
            np.bincount(index, weights=weights, minlength=slots)
            np.sort(weights[(index == 0) | (index == GRID_CELLS + 1)])
            totals.add(int(counts.sum()))
        totals |= {int(f["len"].sum()) for f in frames[1:]}
        cells_out = len(numeric) * slots + sum(f.height for f in frames[1:])
    else:
        # checksum: every histogram must count every row of the window
        totals = {int(f["len"].sum()) for f in frames}
        cells_out = sum(f.height for f in frames)
    t_fold = time.perf_counter()
    return {
        "queries": len(queries),
        "cells": cells_out,
        "rows_per_histogram": sorted(totals),
        "plan_s": t_plan - T_IMPORT,
        "collect_s": t_collect - t_plan,
        "fold_s": t_fold - t_collect,
        "import_s": T_IMPORT - T0,
    }


def main() -> None:
    cmd, data, *rest = sys.argv[1:]
    if cmd == "prepare":
        prepare(data)
    elif cmd == "run":
        result = run(data, "--numpy" in rest)
        result["total_s"] = time.perf_counter() - T0
        print(json.dumps(result))
    else:
        raise SystemExit(f"unknown command {cmd!r}: prepare or run")


if __name__ == "__main__":
    main()
