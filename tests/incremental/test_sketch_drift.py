"""Drift tests through merged partial states, against scipy on the raw rows.

Above the size bound (lowered here, as in test_incremental_sketch.py): ks,
mannw and energy come from the window's sketch, marked approximate column by
column, with their statistic within the stated bound of scipy's on the raw
rows; t_test comes from moments and equals the single pass (and scipy) within
1e-12; anderson and cramer_von_mises fall back to a single pass and equal it.
wasserstein merges its fine cells (counts, compensated sums, outer values) and
equals the single pass within 1e-12 under the bound."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rulesengine.engine.incremental import Report
from rulesengine.monitors.drift.profiles import SKETCH_POINTS
from rulesengine.partials import RANK_ERROR, order
from tests.incremental.helpers import AT, assert_same, both, close, load_model, write_hour

LIMIT = 300  # distinct values an exact state may hold here (1,000,000 by default)
HOURS = 6
METHODS = ("ks", "mannw", "energy", "t_test", "anderson", "cramer_von_mises", "wasserstein")
ESTIMATED = ("ks", "mannw", "energy")


def _spec(root: Path) -> dict:
    ref = {"source": "req", "reference": "ref", "columns": ["x", "latency"]}
    return {
        "version": 1,
        "model": "m",
        "sources": {
            "req": {"path": str(root / "logs" / "*.parquet"), "timestamp": "ts"},
            "ref": {"path": str(root / "ref.parquet")},
        },
        "evaluation": {"every": "1h", "window": f"{HOURS}h"},
        "drift": [{"name": m, **ref, "method": m} for m in METHODS],
    }


def _write(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Hourly logs of unrounded x (far more distinct values than LIMIT) and a
    reference; the raw non-null x of the window and of the reference."""
    rng = np.random.default_rng(17)
    frames = []
    for h in range(HOURS):
        path = write_hour(root / "logs", AT - timedelta(hours=HOURS - h), 2500, seed=60 + h)
        df = pl.read_parquet(path)
        df = df.with_columns(pl.col("x") * 1.05 + pl.Series(rng.normal(0.5, 0.01, df.height)))
        df.write_parquet(path)
        frames.append(df)
    ref = pl.DataFrame(
        {"x": rng.normal(50, 10, 4000), "latency": rng.integers(5, 200, 4000)},
    )
    ref.write_parquet(root / "ref.parquet")
    window = pl.concat(frames).get_column("x").drop_nulls().to_numpy()
    return window, ref.get_column("x").to_numpy()


def _results(results) -> dict:
    return {(r.monitor, r.column): r for r in results}


def test_sketched_drift_tests_within_their_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cur, ref = _write(tmp_path)
    monkeypatch.setattr(order, "SIZE_LIMIT", LIMIT)
    model = load_model(tmp_path, _spec(tmp_path))
    full, inc = both(model, tmp_path / "cache")
    single, got = _results(full.results), _results(inc.results)

    truth = {
        "ks": stats.ks_2samp(ref, cur).statistic,
        "mannw": stats.mannwhitneyu(ref, cur).statistic,
        "energy": stats.energy_distance(ref, cur),
    }
    delta = RANK_ERROR + 1 / SKETCH_POINTS
    for m in ESTIMATED:
        r = got[(m, "x")]
        d = r.details
        assert d["approximate"] is True and d["rank_error"] == RANK_ERROR, d
        assert d["current_rows"] == cur.size  # the true count, not the sample's
        bound = d["approximation_bound"]
        if m == "ks":
            assert bound == pytest.approx(delta)
        elif m == "mannw":
            assert bound == pytest.approx(delta * ref.size * cur.size)
        else:
            assert bound == pytest.approx(math.sqrt(2 * (cur.max() - cur.min())) * delta)
        assert abs(d["statistic"] - truth[m]) <= bound, (m, d["statistic"], truth[m], bound)
        # the single pass is exact: scipy on the raw rows
        assert single[(m, "x")].details["statistic"] == pytest.approx(truth[m], rel=1e-12)
        assert "approximate" not in single[(m, "x")].details
        share = got[(m, None)]
        assert share.type == "drift_share" and share.details["approximate"] is True
        # latency has fewer distinct values than LIMIT: exact, and the single pass's
        close(got[(m, "latency")].details, single[(m, "latency")].details)
        assert "approximate" not in got[(m, "latency")].details

    # t_test from moments: the single pass's and scipy's within 1e-12
    want = stats.ttest_ind(ref, cur)
    for results in (got, single):
        d = results[("t_test", "x")].details
        assert math.isclose(d["statistic"], want.statistic, rel_tol=1e-12)
        assert math.isclose(d["p_value"], want.pvalue, rel_tol=1e-12)
        assert "approximate" not in d
    # anderson and cramer_von_mises need the values: above the bound, a single pass
    for m in ("anderson", "cramer_von_mises", "t_test", "wasserstein"):
        for c in ("x", "latency", None):
            assert got[(m, c)].value == single[(m, c)].value or math.isclose(
                got[(m, c)].value, single[(m, c)].value, rel_tol=1e-12
            )
            close(got[(m, c)].details, single[(m, c)].details, f"{m}/{c}")
            assert "approximate" not in got[(m, c)].details


def test_under_the_bound_every_drift_test_equals_the_single_pass(tmp_path: Path) -> None:
    cur, ref = _write(tmp_path)
    model = load_model(tmp_path, _spec(tmp_path))
    report = Report()
    full, inc = both(model, tmp_path / "cache", report=report)
    assert_same(full, inc)
    assert not any("approximate" in r.details for r in inc.results)
    # wasserstein merges its cells: no query of this model runs whole
    assert set(report.queries.values()) == {"partials"}, report.queries
    # and the single pass is within its stated bound of scipy's
    (w,) = [r for r in full.results if r.monitor == "wasserstein" and r.column == "x"]
    expected = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert abs(w.value - expected) <= w.details["approximation_bound"] + 1e-12
    # a new hour: the cached cells merge with the new file's
    write_hour(tmp_path / "logs", AT, 2500, seed=99)
    full, inc = both(model, tmp_path / "cache", AT + timedelta(hours=1))
    assert_same(full, inc)


def test_exact_drift_never_estimates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``exact: true`` on a drift monitor: above the size bound ks, mannw and
    energy still come from exact value counts through partials, unmarked, and
    equal the single pass (scipy on the raw rows); a monitor without it beside
    them, over the same column, is still estimated."""
    cur, ref = _write(tmp_path)
    monkeypatch.setattr(order, "SIZE_LIMIT", LIMIT)
    spec = _spec(tmp_path)
    spec["drift"] = [{**d, "exact": True} for d in spec["drift"] if d["method"] in ESTIMATED] + [
        {**d, "name": "ks-sketched"} for d in spec["drift"] if d["method"] == "ks"
    ]
    model = load_model(tmp_path, spec)
    assert all(d.exact for d in model.drift if d.name != "ks-sketched")
    report = Report()
    full, inc = both(model, tmp_path / "cache", report=report)
    single, got = _results(full.results), _results(inc.results)
    assert set(report.queries.values()) == {"partials"}  # nothing in a single pass
    for method in ESTIMATED:
        for column in ("x", "latency"):
            r, s = got[(method, column)], single[(method, column)]
            assert not r.details.get("approximate"), method
            close(r.value, s.value, f"{method}/{column}")
            close(r.details, s.details, f"{method}/{column}")
    assert got[("ks", "x")].details["statistic"] == pytest.approx(
        stats.ks_2samp(ref, cur).statistic, rel=1e-12
    )
    assert got[("ks-sketched", "x")].details.get("approximate") is True
