"""The incremental executor gives the single pass's results: every decomposed
monitor type over parquet and CSV, on a cold cache and on ticks after a new file,
checked against ``score(plan, execute(plan.queries, model))`` and, for a few
values, against NumPy and scipy on the raw rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rulesengine.engine.evaluate import plan_model
from rulesengine.engine.incremental import Report, execute_incremental
from rulesengine.engine.score import score
from tests.incremental.helpers import (
    AT,
    HIGH,
    assert_same,
    both,
    load_model,
    model_spec,
    with_undecomposed,
    write_hour,
    write_reference,
)


def _logs(root: Path, fmt: str, hours: int = 8, rows: int = 600) -> None:
    for h in range(hours):
        write_hour(root / "logs", AT - timedelta(hours=hours - h), rows, h, fmt)
    write_reference(root / "ref.parquet")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_cold_cache_and_ticks_equal_a_single_pass(tmp_path: Path, fmt: str) -> None:
    _logs(tmp_path, fmt)
    model = load_model(tmp_path, model_spec(tmp_path, fmt))
    report = Report()
    full, inc = both(model, tmp_path / "cache", report=report)
    assert_same(full, inc)
    plan = plan_model(model, AT)
    # every query of this model is answered from partials (nothing left over)
    assert set(report.queries.values()) == {"partials"}
    assert len(report.queries) == len(plan.queries)
    assert len(report.scanned["req"]) == 8
    assert not any(r.status == "error" for r in inc.results)

    write_hour(tmp_path / "logs", AT, 600, 100, fmt)
    for minutes in (15, 30, 60):
        report = Report()
        full, inc = both(model, tmp_path / "cache", AT + timedelta(minutes=minutes), report)
        assert_same(full, inc)
        expected = [str(tmp_path / "logs" / f"{AT:%Y%m%dT%H%M}.{fmt}")] if minutes == 15 else []
        assert report.scanned.get("req", []) == expected


def test_values_against_numpy_and_scipy_on_raw_rows(tmp_path: Path) -> None:
    _logs(tmp_path, "parquet")
    model = load_model(tmp_path, model_spec(tmp_path))
    both(model, tmp_path / "cache")  # fill the cache
    write_hour(tmp_path / "logs", AT, 600, 100)
    at = AT + timedelta(hours=1)
    report = Report()
    _, inc = both(model, tmp_path / "cache", at, report)
    assert report.scanned["req"] == [str(tmp_path / "logs" / f"{AT:%Y%m%dT%H%M}.parquet")]

    raw = pl.read_parquet(tmp_path / "logs" / "*.parquet").filter(
        (pl.col("ts") > at - timedelta(hours=6)) & (pl.col("ts") <= at)
    )
    value = {(r.monitor, tuple(r.segment.items())): r.value for r in inc.results}
    x = raw.get_column("x").drop_nulls().to_numpy()
    assert value[("x-mean", ())] == pytest.approx(np.mean(x), rel=1e-12)
    assert value[("x-std", ())] == pytest.approx(np.std(x, ddof=1), rel=1e-12)
    assert value[("x-nulls", ())] == raw.get_column("x").null_count() / raw.height
    assert value[("rows", ())] == raw.height
    latency = raw.get_column("latency").to_numpy()
    assert value[("lat-p95", ())] == pytest.approx(np.quantile(latency, 0.95), rel=1e-12)
    y = raw.get_column("y").to_numpy()
    s = raw.get_column("score").to_numpy()
    u = stats.mannwhitneyu(s[y], s[~y]).statistic
    assert value[("auc", ())] == pytest.approx(u / (y.sum() * (~y).sum()), rel=1e-12)
    v2 = raw.filter(pl.col("model_version") == "v2").get_column("latency").to_numpy()
    assert value[("lat-max", (("model_version", "v2"),))] == v2.max()


def test_undeclared_aggregates_run_in_a_single_pass_beside_the_partials(tmp_path: Path) -> None:
    """The schema check and SQL KPIs with ``first`` or ``last`` have no
    decomposition: their aggregates (or queries) run in a single pass, and the
    rest of their queries still come from partials."""
    _logs(tmp_path, "parquet", hours=4, rows=300)
    model = load_model(tmp_path, with_undecomposed(model_spec(tmp_path)))
    report = Report()
    full, inc = both(model, tmp_path / "cache", report=report)
    assert_same(full, inc)
    reasons = set(report.queries.values())
    assert "partials" in reasons
    beside = [r for r in reasons if r.startswith("partials; single pass for ")]
    assert beside, reasons  # undecomposed aggregates beside the partials of their query
    write_hour(tmp_path / "logs", AT, 300, 50)
    full, inc = both(model, tmp_path / "cache", AT + timedelta(minutes=45))
    assert_same(full, inc)


def test_an_empty_window_gives_the_single_pass_results(tmp_path: Path) -> None:
    """No row in the window (the files hold older rows): the overall query still
    has its one row, as Polars gives it for an empty frame (a count of 0, a sum
    of 0, a mean of null), so a KPI's change against an earlier window is -100 %
    both ways."""
    _logs(tmp_path, "parquet", hours=3, rows=200)
    spec = model_spec(tmp_path, window="1h")
    spec["kpis"].append(
        {
            "name": "count-wow",
            "source": "req",
            "expr": "count(*)",
            "compare": {"offset": "4h"},
            **HIGH,
        }
    )
    model = load_model(tmp_path, spec)
    full, inc = both(model, tmp_path / "cache", AT + timedelta(hours=4))
    assert_same(full, inc)
    (wow,) = [r for r in inc.results if r.monitor == "count-wow" and not r.segment]
    assert wow.value == -1.0


def test_histograms_come_back_as_counts_per_cell_not_rows(tmp_path: Path) -> None:
    """An overall histogram's select query is answered from partials with one row
    per cell and its count (the single pass gives one index per row): the scored
    results are the same, and the frame does not grow with the rows."""
    from rulesengine.engine.evaluate import plan_model
    from rulesengine.engine.execute import execute
    from rulesengine.engine.incremental import execute_incremental
    from rulesengine.engine.plan import CELL_COUNT
    from rulesengine.engine.score import score

    _logs(tmp_path, "parquet", hours=4, rows=300)
    model = load_model(tmp_path, model_spec(tmp_path))
    plan = plan_model(model, AT)
    whole = execute(plan.queries, model)
    got = execute_incremental(plan, model, tmp_path / "cache")
    selects = [i for i, q in enumerate(plan.queries) if q.select]
    assert selects
    for i in selects:
        frame = got[i]
        assert isinstance(frame, pl.DataFrame)
        counted = [c for c in frame.columns if c.endswith(CELL_COUNT)]
        assert counted and frame.height < whole[i].height  # type: ignore[union-attr]
        for c in counted:
            assert frame.get_column(c).sum() == whole[i].height  # type: ignore[union-attr]
    assert_same(score(plan, whole), score(plan, got))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_two_evaluations_of_the_same_files_agree_bit_for_bit(tmp_path: Path, fmt: str) -> None:
    """Partial states merge in one order (entries by path, groups by their keys),
    not in the order a group_by or a batch happens to give them: two cold caches
    over the same files, and a warm one, give the same values to the last bit, so
    a value at a threshold or a round() tie never flips between evaluations."""
    _logs(tmp_path, fmt, hours=5, rows=300)
    write_hour(tmp_path / "logs", AT - timedelta(minutes=50), 90, 77, fmt)  # off the grid
    model = load_model(tmp_path, model_spec(tmp_path, fmt, window="3h"))
    at = AT - timedelta(minutes=7)  # off the grid: edge buckets read fresh
    plan = plan_model(model, at)

    def values(cache: Path) -> list[tuple[str, str, str | None, str, str]]:
        got = score(plan, execute_incremental(plan, model, cache))
        return [(r.monitor, str(r.segment), r.column, repr(r.value), r.status) for r in got.results]

    first = values(tmp_path / "a")
    assert first == values(tmp_path / "b") == values(tmp_path / "a")
    assert len({v for _, _, _, v, _ in first}) > 20  # many distinct values compared
