"""Thresholds derived from the reference, and per-segment thresholds, on real
files: bands against NumPy on chunk values computed here by hand, the cache (a
hit reads the file: a tampered cache file's numbers come back), invalidation,
per-segment overrides and per-segment bands, ``plan`` and ``run --format json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rulesengine.engine.evaluate import evaluate
from rulesengine.spec.loader import load

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
N_REF = 1200
CHUNK = 100


def _reference(rng: np.random.Generator) -> pl.DataFrame:
    """1200 rows: 12 chunks of 100; segment 'a' every third row (400 rows), 'b'
    the rest (800); chunk means vary by design."""
    shift = np.repeat(rng.normal(0, 0.5, N_REF // CHUNK), CHUNK)
    x = 10 + shift + rng.normal(0, 1, N_REF)
    seg = np.where(np.arange(N_REF) % 3 == 0, "a", "b")
    ts = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(N_REF)]
    return pl.DataFrame({"x": x, "seg": seg, "ts": ts, "ok": rng.random(N_REF) < 0.9})


def _write(tmp_path: Path, current_x: list[float], monitor: str) -> Path:
    rng = np.random.default_rng(7)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    _reference(rng).write_parquet(data / "ref.parquet")
    n = len(current_x)
    pl.DataFrame(
        {
            "x": current_x,
            "seg": ["a", "b"] * (n // 2),
            "ts": [AT - timedelta(minutes=i + 1) for i in range(n)],
            "ok": [True] * n,
        }
    ).write_parquet(data / "cur.parquet")
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "engine.yaml").write_text("version: 1\nstate: state/state.db\n")
    (tmp_path / "models" / "m.yaml").write_text(
        "version: 1\nmodel: m\nsources:\n"
        "  cur: {path: data/cur.parquet, timestamp: ts}\n"
        "  ref: {path: data/ref.parquet, timestamp: ts}\n"
        "evaluation: {window: 1h}\n" + monitor
    )
    return tmp_path


MEAN = """metrics:
  - name: xmean
    source: cur
    type: mean
    column: x
    segment_by: [seg]
    thresholds_from: {source: ref, chunk: {rows: 100}}
    critical: {derived: {std: 3}}
    warn: {derived: {quantiles: [0.1, 0.9]}}
"""


def _run(root: Path) -> dict:
    [res] = evaluate(load([root]), AT)
    return {(r.monitor, tuple(r.segment.items())): r for r in res.results}


def _chunks(values: np.ndarray, size: int) -> np.ndarray:
    full = len(values) // size
    return np.array([values[i * size : (i + 1) * size].mean() for i in range(full)])


def test_bands_match_numpy_on_chunk_values(tmp_path: Path) -> None:
    root = _write(tmp_path, [10.0] * 40, MEAN)
    ref = pl.read_parquet(root / "data" / "ref.parquet")
    x, seg = ref["x"].to_numpy(), ref["seg"].to_numpy()
    results = _run(root)
    for key, rows in (((), x), ((("seg", "a"),), x[seg == "a"]), ((("seg", "b"),), x[seg == "b"])):
        chunks = _chunks(rows, CHUNK)  # 'a': 400 rows -> 4 chunks, 'b': 8, overall 12
        r = results[("xmean", key)]
        lo, hi = chunks.mean() - 3 * chunks.std(), chunks.mean() + 3 * chunks.std()
        got = r.threshold["critical"]["outside"]
        assert got == pytest.approx([lo, hi], abs=1e-9)
        qlo, qhi = np.quantile(chunks, [0.1, 0.9])
        assert r.threshold["warn"]["outside"] == pytest.approx([qlo, qhi], abs=1e-9)
        d = r.details["derived"]
        assert d["chunks"] == len(chunks) and d["source"] == "ref"
        assert d["chunk"] == {"rows": 100}
        assert d["mean"] == pytest.approx(chunks.mean(), abs=1e-9)
        assert d["std"] == pytest.approx(chunks.std(ddof=0), abs=1e-9)
        assert d["critical"]["band"] == pytest.approx([lo, hi], abs=1e-9)
        status = "critical" if not lo <= 10.0 <= hi else "warn" if not qlo <= 10 <= qhi else "ok"
        assert r.status == status


def test_short_last_chunk_dropped_and_time_chunks(tmp_path: Path) -> None:
    monitor = MEAN.replace("rows: 100", "rows: 500").replace("segment_by: [seg]", "segment_by: []")
    monitor += """  - name: daily
    source: cur
    type: mean
    column: x
    thresholds_from: {source: ref, chunk: {every: 1d}}
    critical: {derived: {std: 2, side: lower}}
    bounds: {min: 9.9}
"""
    root = _write(tmp_path, [10.0] * 40, monitor)
    ref = pl.read_parquet(root / "data" / "ref.parquet")
    x = ref["x"].to_numpy()
    results = _run(root)
    chunks = _chunks(x, 500)  # 1200 rows: two chunks of 500, the last 200 dropped
    assert len(chunks) == 2
    r = results[("xmean", ())]
    assert r.details["derived"]["chunks"] == 2
    assert r.threshold["critical"]["outside"] == pytest.approx(
        [chunks.mean() - 3 * chunks.std(), chunks.mean() + 3 * chunks.std()], abs=1e-9
    )
    # 1d chunks: hourly rows from 2026-01-01, 50 days (the last one 0:00..23:00)
    days = np.array([x[i * 24 : (i + 1) * 24].mean() for i in range(N_REF // 24)])
    d = results[("daily", ())]
    lo = days.mean() - 2 * days.std()
    assert d.details["derived"]["chunks"] == 50
    assert d.details["derived"]["critical"]["band"][0] == pytest.approx(lo, abs=1e-9)
    assert d.threshold["critical"] == {"below": pytest.approx(max(lo, 9.9), abs=1e-9)}


def test_cache_hit_reads_the_file_and_a_changed_reference_invalidates(tmp_path: Path) -> None:
    root = _write(tmp_path, [10.0] * 40, MEAN)
    first = _run(root)[("xmean", ())]
    assert first.details["derived"]["cache"] == "miss"
    [slot] = list((root / "state" / "profiles" / "derived").glob("*.json"))
    # tamper with the kept values: a hit must give bands from these numbers
    kept = json.loads(slot.read_text())
    kept["overall"] = [1.0, 2.0, 3.0, 4.0]
    slot.write_text(json.dumps(kept))
    second = _run(root)[("xmean", ())]
    assert second.details["derived"]["cache"] == "hit"
    fake = np.array([1.0, 2.0, 3.0, 4.0])
    assert second.threshold["critical"]["outside"] == pytest.approx(
        [fake.mean() - 3 * fake.std(), fake.mean() + 3 * fake.std()], abs=1e-9
    )
    # the reference file changes (new mtime): computed again, a new slot
    ref_file = root / "data" / "ref.parquet"
    st = ref_file.stat()
    os.utime(ref_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = _run(root)[("xmean", ())]
    assert third.details["derived"]["cache"] == "miss"
    assert third.threshold == first.threshold
    assert len(list(slot.parent.glob("*.json"))) == 2


def test_settings_change_invalidates(tmp_path: Path) -> None:
    root = _write(tmp_path, [10.0] * 40, MEAN)
    _run(root)
    model = root / "models" / "m.yaml"
    model.write_text(model.read_text().replace("column: x", 'column: x\n    filter: "ok"'))
    r = _run(root)[("xmean", ())]
    assert r.details["derived"]["cache"] == "miss"
    # std: 3 -> 2 reuses the kept chunk values (the bands are not cached)
    model.write_text(model.read_text().replace("std: 3", "std: 2"))
    assert _run(root)[("xmean", ())].details["derived"]["cache"] == "hit"


def test_segment_overrides_by_hand(tmp_path: Path) -> None:
    monitor = """metrics:
  - name: xmean
    source: cur
    type: mean
    column: x
    segment_by: [seg]
    min_rows: 1
    critical: {below: 5}
    warn: {below: 8}
    segments:
      - match: {seg: a}
        warn: {below: 9.8}
        critical: {below: 9.5}
      - match: {seg: b}
        warn: {above: 11}
        critical: {above: 12}
"""
    # 'a' rows are 9.0 (below 9.5: critical by its override), 'b' rows 11.5
    root = _write(tmp_path, [9.0, 11.5] * 10, monitor)
    results = _run(root)
    overall = results[("xmean", ())]
    assert overall.value == pytest.approx(10.25)
    assert overall.status == "ok" and overall.threshold == {
        "warn": {"below": 8.0},
        "critical": {"below": 5.0},
    }
    a = results[("xmean", (("seg", "a"),))]
    assert a.status == "critical"
    assert a.threshold == {"warn": {"below": 9.8}, "critical": {"below": 9.5}}
    assert a.details["segment_thresholds"] == {"entry": 0, "match": {"seg": "a"}}
    b = results[("xmean", (("seg", "b"),))]
    assert b.status == "warn"
    assert b.threshold == {"warn": {"above": 11.0}, "critical": {"above": 12.0}}


def test_segment_without_reference_rows_is_insufficient(tmp_path: Path) -> None:
    root = _write(tmp_path, [10.0] * 40, MEAN)
    cur = pl.read_parquet(root / "data" / "cur.parquet")
    cur.with_columns(pl.lit("zz").alias("seg")).write_parquet(root / "data" / "cur.parquet")
    r = _run(root)[("xmean", (("seg", "zz"),))]
    assert r.status == "insufficient_data"
    assert "no rows of this segment" in r.details["reason"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "rulesengine"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_plan_and_json_show_the_derived_numbers(tmp_path: Path) -> None:
    root = _write(tmp_path, [10.0] * 40, MEAN)
    ref = pl.read_parquet(root / "data" / "ref.parquet")
    chunks = _chunks(ref["x"].to_numpy(), CHUNK)
    out = _cli("run", str(root), "--at", "2026-03-01T12:00:00Z", "--format", "json", cwd=root)
    assert out.returncode in (0, 1), out.stderr
    doc = json.loads(out.stdout)
    [overall] = [r for r in doc["models"][0]["results"] if r["segment"] == {}]
    lo, hi = overall["threshold"]["critical"]["outside"]
    assert lo == pytest.approx(chunks.mean() - 3 * chunks.std(), abs=1e-9)
    assert hi == pytest.approx(chunks.mean() + 3 * chunks.std(), abs=1e-9)
    assert overall["details"]["derived"]["from"] == "reference"
    assert overall["details"]["derived"]["critical"]["std"] == 3
    plan = _cli("plan", str(root), "--at", "2026-03-01T12:00:00Z", cwd=root)
    assert plan.returncode == 0, plan.stderr
    assert "derived thresholds:" in plan.stdout
    assert "xmean: from ref, chunks of rows: 100: 12 chunk(s)" in plan.stdout
    assert "cache hit" in plan.stdout  # the run kept the chunk values
    assert f"{chunks.mean():.6g}" in plan.stdout


def test_check_and_kpi_derive_from_daily_chunks(tmp_path: Path) -> None:
    monitor = """checks:
  - name: volume
    source: cur
    type: row_count
    thresholds_from: {source: ref, chunk: {every: 1d}}
    critical: {derived: {quantiles: [0, 1]}}
kpis:
  - name: okrate
    source: cur
    expr: "avg(CAST(ok AS DOUBLE))"
    thresholds_from: {source: ref, chunk: {every: 1d}}
    warn: {derived: {std: 1, side: lower}}
"""
    root = _write(tmp_path, [10.0] * 40, monitor)
    ref = pl.read_parquet(root / "data" / "ref.parquet")
    results = _run(root)
    # every day of the reference has 24 hourly rows: the band is [24, 24]
    volume = results[("volume", ())]
    assert volume.threshold == {"critical": {"outside": [24.0, 24.0]}}
    assert volume.value == 40 and volume.status == "critical"
    ok = ref["ok"].to_numpy().astype(float)
    days = np.array([ok[i * 24 : (i + 1) * 24].mean() for i in range(N_REF // 24)])
    kpi = results[("okrate", ())]
    assert kpi.threshold["warn"]["below"] == pytest.approx(days.mean() - days.std(), abs=1e-9)
    assert kpi.value == 1.0 and kpi.status == "ok"
