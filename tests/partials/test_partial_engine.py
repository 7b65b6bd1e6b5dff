"""The partial states can back today's engine: over the same log files, states
computed per file (``include_file_paths``) and merged finalise to the values the
engine's single pass reports for mean, std, p95, null_rate and a psi drift test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from rulesengine.engine.evaluate import evaluate
from rulesengine.monitors.drift.methods import histogram_method
from rulesengine.partials import (
    CellsOf,
    CountsOf,
    MomentsOf,
    ValuesOf,
    keyed_states,
    merge_all,
    merge_by,
    partial_states,
)
from rulesengine.spec.loader import load

AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
FILE = "__file"


def _write_logs(root: Path) -> None:
    rng = np.random.default_rng(11)
    for i, n in enumerate((400, 250, 600)):
        x = rng.lognormal(3.0 + 0.1 * i, 0.5, n)
        x[rng.random(n) < 0.05] = np.nan  # becomes null below
        ts = [AT - timedelta(minutes=59.0 * (k + 0.5) / n) for k in range(n)]
        df = pl.DataFrame({"ts": ts, "x": x}).with_columns(pl.col("x").fill_nan(None))
        (root / "logs").mkdir(exist_ok=True)
        df.write_parquet(root / "logs" / f"part-{i}.parquet")
    pl.DataFrame({"x": rng.lognormal(3.0, 0.5, 2000)}).write_parquet(root / "ref.parquet")


def _engine_values(root: Path) -> dict[str, float]:
    big = {"critical": {"above": 1e12}}
    spec = {
        "version": 1,
        "model": "m",
        "sources": {
            "s": {"path": str(root / "logs" / "*.parquet"), "timestamp": "ts"},
            "ref": {"path": str(root / "ref.parquet")},
        },
        "evaluation": {"window": "1h"},
        "checks": [{"name": "nulls", "source": "s", "type": "null_rate", "column": "x", **big}],
        "metrics": [
            {"name": "mean", "source": "s", "type": "mean", "column": "x", **big},
            {"name": "std", "source": "s", "type": "std", "column": "x", **big},
            {"name": "p95", "source": "s", "type": "quantile", "column": "x", "q": 0.95, **big},
        ],
        "drift": [
            {"name": "d", "source": "s", "reference": "ref", "columns": ["x"], "method": "psi"}
        ],
    }
    path = root / "model.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    (model,) = evaluate(load([path], env={}), AT)
    out = {}
    for r in model.results:
        assert r.status != "error", r
        if r.kind != "drift" or r.column == "x":
            out[r.monitor] = r.value
    return out


def test_partials_per_file_finalise_to_the_engines_results(tmp_path: Path) -> None:
    _write_logs(tmp_path)
    engine = _engine_values(tmp_path)

    window = pl.scan_parquet(tmp_path / "logs" / "*.parquet", include_file_paths=FILE).filter(
        (pl.col("ts") > AT - timedelta(hours=1)) & (pl.col("ts") <= AT)
    )
    x = pl.col("x")
    aggs = {"counts": CountsOf.column("x"), "moments": MomentsOf(x), "values": ValuesOf(x)}
    per_file = partial_states(window, [FILE], aggs)
    assert len(per_file) == 3  # one partial row per file
    (whole,) = merge_by(per_file, ()).values()

    counts, moments, values = whole["counts"], whole["moments"], whole["values"]
    assert counts.rate("nulls", "rows") == engine["nulls"]
    assert moments.average() == pytest.approx(engine["mean"], rel=1e-12, abs=0)
    assert moments.std(ddof=1) == pytest.approx(engine["std"], rel=1e-12, abs=0)
    p95 = values.quantile(0.95, nulls=counts["nulls"])
    assert p95.value == engine["p95"] and not p95.approximate  # bit for bit

    # psi: the reference's decile edges from its value counts (NumPy's
    # interpolation, as profiles are cut), both sides counted into those cells
    reference = pl.scan_parquet(tmp_path / "ref.parquet").with_row_index("i")
    halves = partial_states(reference.with_columns(pl.col("i") % 2), ["i"], {"v": ValuesOf(x)})
    ref_values = merge_all(s["v"] for s in halves.values())
    edges = np.unique([ref_values.quantile(k / 10, lerp="numpy").value for k in range(1, 10)])
    cells = CellsOf(
        x.cast(pl.Float64).bin_intervals(list(edges), labels=False, right_closed=True),
        len(edges) + 1,
    )
    ref_cells = merge_all(
        keyed_states(reference.with_columns(pl.col("i") % 3), ["i"], cells).values()
    )
    cur_cells = merge_all(keyed_states(window, [FILE], cells).values())
    assert cur_cells.counts[-1] == counts["nulls"]  # the null slot
    psi = histogram_method("psi", ref_cells.counts[:-1], cur_cells.counts[:-1]).value
    assert psi == pytest.approx(engine["d"], rel=1e-12, abs=0)
