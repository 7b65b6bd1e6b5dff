"""Above the size bound, through the engine: a quantile and a ROC AUC whose
merged value counts hold more distinct values than allowed come from KLL
sketches, say so in ``details.approximate`` with their rank error, and stay
within that error of the truth on the raw rows (NumPy and scipy oracles);
``exact: true`` on the same monitors never sketches and equals the single pass
bit for bit, and an average precision, which needs the scores themselves,
falls back to the single pass rather than estimate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rulesengine.partials import RANK_ERROR, order
from tests.incremental.helpers import AT, HIGH, assert_same, both, load_model, write_hour

LIMIT = 300  # distinct values an exact state may hold here (1,000,000 by default)
HOURS = 6


def _spec(root: Path) -> dict:
    def metric(name: str, type_: str, **kw: object) -> dict:
        return {"name": name, "source": "req", "type": type_, **kw, **HIGH}

    return {
        "version": 1,
        "model": "m",
        "sources": {"req": {"path": str(root / "logs" / "*.parquet"), "timestamp": "ts"}},
        "evaluation": {"every": "1h", "window": f"{HOURS}h"},
        "metrics": [
            metric("x-p90", "quantile", column="x", q=0.9),
            metric("x-p90-exact", "quantile", column="x", q=0.9, exact=True),
            metric("auc", "roc_auc", score="score", target="y"),
            metric("auc-exact", "roc_auc", score="score", target="y", exact=True),
            metric("ap", "average_precision", score="score", target="y"),
        ],
    }


@pytest.fixture
def logs(tmp_path: Path) -> pl.DataFrame:
    for h in range(HOURS):
        write_hour(tmp_path / "logs", AT - timedelta(hours=HOURS - h), 3000, seed=40 + h)
    frame = pl.read_parquet(tmp_path / "logs" / "*.parquet")
    # unrounded values, so that the hours together hold far more than LIMIT
    rng = np.random.default_rng(7)
    return frame.with_columns(
        pl.col("x") + pl.Series(rng.normal(0, 0.01, frame.height)),
        pl.col("score") * 0.98 + pl.Series(rng.uniform(0, 0.01, frame.height)),
    )


def _rewrite(root: Path, frame: pl.DataFrame) -> None:
    for path in sorted((root / "logs").glob("*.parquet")):
        old = pl.read_parquet(path)
        mine = frame.filter(pl.col("request_id").is_in(old.get_column("request_id").implode()))
        mine.write_parquet(path)


def test_sketched_results_say_so_and_stay_within_the_bound(
    tmp_path: Path, logs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:

    _rewrite(tmp_path, logs)
    monkeypatch.setattr(order, "SIZE_LIMIT", LIMIT)
    model = load_model(tmp_path, _spec(tmp_path))
    full, inc = both(model, tmp_path / "cache")
    single = {r.monitor: r for r in full.results}
    got = {r.monitor: r for r in inc.results}

    x = logs.get_column("x").drop_nulls().sort().to_numpy()
    for name in ("x-p90", "auc"):
        assert got[name].details["approximate"] is True, got[name].details
        assert got[name].details["rank_error"] == pytest.approx(
            RANK_ERROR if name == "x-p90" else 2 * RANK_ERROR
        )
    # average precision needs the scores themselves: sketched, its query runs whole
    for name in ("x-p90-exact", "auc-exact", "ap"):  # never a sketch: the single pass's value
        assert "approximate" not in got[name].details
        assert got[name].value == single[name].value
        assert got[name].details == single[name].details

    # the quantile's true rank range holds 0.9 within the rank error
    v = got["x-p90"].value
    low = np.searchsorted(x, v, side="left") / x.size
    high = np.searchsorted(x, v, side="right") / x.size
    assert low - RANK_ERROR <= 0.9 <= high + RANK_ERROR, (low, high)
    assert single["x-p90"].value == pytest.approx(np.quantile(x, 0.9), rel=1e-12)

    # the AUC within the two sides' rank errors of scipy's U on the raw rows
    rows = logs.filter(pl.col("score").is_not_null() & pl.col("y").is_not_null())
    s, y = rows.get_column("score").to_numpy(), rows.get_column("y").to_numpy()
    u = stats.mannwhitneyu(s[y], s[~y]).statistic / (y.sum() * (~y).sum())
    assert abs(got["auc"].value - u) <= 2 * RANK_ERROR
    assert got["auc-exact"].value == pytest.approx(u, rel=1e-12)


def test_under_the_bound_nothing_is_approximate(tmp_path: Path, logs: pl.DataFrame) -> None:

    _rewrite(tmp_path, logs)
    model = load_model(tmp_path, _spec(tmp_path))
    full, inc = both(model, tmp_path / "cache")
    assert_same(full, inc)
    assert not any("approximate" in r.details for r in inc.results)
