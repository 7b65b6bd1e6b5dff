"""The demo-data generator: layout, injected incidents, normal data within the specs'
thresholds, determinism and cost.

Every statistic here is computed with plain Polars / NumPy / SciPy over the written
files, independent of the engine. Thresholds are read from configs/models/*.yaml.
"""

from __future__ import annotations

import glob
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm, wasserstein_distance

from examples.demo import DEMO_AT, generate, main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
AT = DEMO_AT
H = timedelta(hours=1)
D = timedelta(days=1)
M30 = timedelta(minutes=30)


# --- fixtures and helpers ---------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("demo") / "data"  # the specs' paths start with data/
    manifest = generate(out)
    return SimpleNamespace(out=out, root=out.parent, manifest=manifest)


@pytest.fixture(scope="module")
def specs() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(CONFIGS.glob("models/*.yaml")):
        spec = yaml.safe_load(path.read_text())
        out[spec["model"]] = spec
    return out


def monitor(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for section in ("checks", "drift", "metrics", "kpis"):
        for m in spec.get(section, []):
            if m["name"] == name:
                return m
    raise KeyError(name)


def utc(col: str, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> pl.Expr:
    return pl.col(col).str.strptime(pl.Datetime("us"), fmt).dt.replace_time_zone("UTC")


@pytest.fixture(scope="module")
def fraud(demo: SimpleNamespace) -> SimpleNamespace:
    out = demo.out / "fraud"
    requests = pl.read_parquet(out / "requests" / "**" / "*.parquet", hive_partitioning=True)
    labels = pl.scan_ndjson(sorted((out / "labels").glob("*.ndjson"))).collect()
    training = pl.read_parquet(out / "training.parquet")
    return SimpleNamespace(requests=requests, labels=labels, training=training)


@pytest.fixture(scope="module")
def demand(demo: SimpleNamespace) -> SimpleNamespace:
    out = demo.out / "demand"
    forecasts = pl.concat([pl.read_csv(p) for p in sorted((out / "forecasts").glob("*.csv"))])
    actuals = pl.concat([pl.read_csv(p) for p in sorted((out / "actuals").glob("*.csv"))])
    return SimpleNamespace(
        forecasts=forecasts.with_columns(t=utc("predicted_at")),
        actuals=actuals.with_columns(t=utc("recorded_at")),
    )


@pytest.fixture(scope="module")
def assistant(demo: SimpleNamespace) -> SimpleNamespace:
    out = demo.out / "assistant"
    files = sorted((out / "requests").glob("*.ndjson"))
    requests = pl.concat([pl.read_ndjson(p) for p in files], how="diagonal_relaxed")
    requests = requests.with_columns(
        t=pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC"),
        latency=pl.coalesce(pl.col("latency_ms"), pl.col("latency_s") * 1000),
    )
    feedback = pl.scan_ndjson(sorted((out / "feedback").glob("*.ndjson"))).collect()
    return SimpleNamespace(
        files=files, requests=requests, feedback=feedback.with_columns(t=utc("ts"))
    )


def window(df: pl.DataFrame, end: datetime, length: timedelta, col: str = "t") -> pl.DataFrame:
    """Rows with ``col`` in (end - length, end]."""
    return df.filter((pl.col(col) > end - length) & (pl.col(col) <= end))


def segments(df: pl.DataFrame, by: str) -> dict[str, pl.DataFrame]:
    """The overall frame ('') and one frame per value of ``by``."""
    out = {"": df}
    for value in sorted(df[by].unique().to_list()):
        out[value] = df.filter(pl.col(by) == value)
    return out


def ends(start: datetime, stop: datetime, step: timedelta) -> list[datetime]:
    out, t = [], start
    while t <= stop:
        out.append(t)
        t += step
    return out


def p95(values: pl.Series) -> float:
    return float(np.quantile(values.drop_nulls().to_numpy(), 0.95))


def wasserstein_norm(ref: np.ndarray, cur: np.ndarray) -> float:
    """Evidently's normed Wasserstein distance (its default for numeric columns)."""
    return float(wasserstein_distance(ref, cur) / np.std(ref))


def js_distance(ref: dict[str, int], cur: pl.Series) -> float:
    """Jensen-Shannon distance (Evidently's default for categories) from counts."""
    counts = dict(cur.value_counts().iter_rows())
    cats = sorted(set(ref) | set(counts))
    p = np.array([ref.get(c, 0) for c in cats], dtype=float)
    q = np.array([counts.get(c, 0) for c in cats], dtype=float)
    return float(jensenshannon(p / p.sum(), q / q.sum()))


def psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    edges = np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1]
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=bins) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=bins) / cur.size
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def labelled(fraud: SimpleNamespace, at: datetime) -> pl.DataFrame:
    """Requests joined with the labels known at ``at`` (the latest per request wins)."""
    known = (
        fraud.labels.with_columns(t=utc("labeled_at"))
        .filter(pl.col("t") <= at)
        .sort("t")
        .group_by("request_id")
        .last()
        .select("request_id", "is_fraud")
    )
    return fraud.requests.join(known, on="request_id", how="left")


def confusion(df: pl.DataFrame) -> dict[str, float]:
    lab = df.filter(pl.col("is_fraud").is_not_null())
    pred = lab["score"] >= 0.5
    truth = lab["is_fraud"]
    tp = int((pred & truth).sum())
    return {
        "coverage": lab.height / df.height,
        "recall": tp / int(truth.sum()),
        "precision": tp / int(pred.sum()),
    }


# --- layout -----------------------------------------------------------------------
def test_layout_matches_the_specs(demo: SimpleNamespace, specs: dict[str, Any]) -> None:
    changed = {demo.out / p for p in demo.manifest["incidents"][1]["files"]}
    for name, spec in specs.items():
        referenced: dict[str, set[str]] = {s: set() for s in spec["sources"]}
        segment_by = spec.get("evaluation", {}).get("segment_by", [])
        for section in ("checks", "drift", "metrics", "kpis"):
            for m in spec.get(section, []):
                cols = referenced[m["source"]]
                cols.update(m.get("segment_by", segment_by))
                cols.update(c for c in [m.get("column")] if c)
                cols.update(m.get("columns", []))
                cols.update(m.get("expected_columns", {}))
                if "join" in m:
                    join = m["join"]
                    on = join["on"] if "on" in join else join[True]  # YAML 1.1: on == true
                    keys = [on] if isinstance(on, str) else on
                    cols.update(keys)
                    referenced[m["join"]["source"]].update(keys)
                ref = m.get("reference")
                if section == "drift" and isinstance(ref, str):
                    referenced[ref].update(m["columns"])
        for source, src in spec["sources"].items():
            files = sorted(glob.glob(str(demo.root / src["path"]), recursive=True))
            assert files, f"{name}/{source}: nothing matches {src['path']}"
            need = referenced[source] | ({src["timestamp"]} if "timestamp" in src else set())
            for f in files:
                if f.endswith(".parquet"):
                    cols = set(pl.read_parquet_schema(f))
                elif f.endswith(".csv"):
                    cols = set(pl.read_csv(f, n_rows=1).columns)
                else:
                    cols = set(pl.read_ndjson(f, infer_schema_length=1000).columns)
                missing = need - cols
                if Path(f) in changed:
                    assert missing == {"latency_ms"}, f  # the injected schema change
                else:
                    assert not missing, f"{f}: missing {missing}"
    assert (demo.out / "incidents.json").is_file()
    parts = sorted(p.parent.name for p in (demo.out / "fraud/requests").glob("*/part-0.parquet"))
    assert parts[0] == "dt=2026-11-18" and parts[-1] == "dt=2026-11-27" and len(parts) == 10


def test_dtypes(fraud: SimpleNamespace, demand: SimpleNamespace, demo: SimpleNamespace) -> None:
    r = fraud.requests.schema
    assert r["ts"] == pl.Datetime("us", "UTC")
    assert r["request_id"] == pl.String and r["country"] == pl.String
    assert r["amount"] == pl.Float64 and r["score"] == pl.Float64
    assert r["account_age_days"] == pl.Int64 and r["latency_ms"] == pl.Float64
    assert "is_fraud" not in r
    assert fraud.labels.schema == pl.Schema(
        {
            "request_id": pl.String,
            "is_fraud": pl.Boolean,
            "labeled_at": pl.String,
            "model_version": pl.String,
        }
    )
    assert set(fraud.training.columns) >= {"amount", "country", "device", "account_age_days"}
    assert fraud.requests["score"].is_between(0, 1).all()
    assert demand.forecasts["predicted_at"].str.ends_with("Z").all()
    first = demo.out / "assistant/requests/2026-11-26.ndjson"
    row = json.loads(first.read_text().splitlines()[0])
    assert isinstance(row["ts"], int) and row["ts"] > 10**12  # epoch milliseconds
    assert isinstance(row["status"], int) and isinstance(row["latency_ms"], float)


# --- incidents --------------------------------------------------------------------
def test_manifest(demo: SimpleNamespace) -> None:
    m = demo.manifest
    assert json.loads((demo.out / "incidents.json").read_text()) == m
    assert m["at"] == "2026-11-27T12:00:00Z" and m["caveats"] == []
    assert [i["id"] for i in m["incidents"]] == [
        "null-burst",
        "schema-change",
        "latency-spike",
        "accuracy-drop",
    ]
    by_id = {i["id"]: i for i in m["incidents"]}
    assert by_id["null-burst"]["window"] == {
        "start": "2026-11-27T11:00:00Z",
        "end": "2026-11-27T12:00:00Z",
    }
    assert by_id["accuracy-drop"]["window"] == {
        "start": "2026-11-24T12:00:00Z",
        "end": "2026-11-25T12:00:00Z",
    }
    drop = {json.dumps(e["segment"]): e["status"] for e in by_id["accuracy-drop"]["expected"]}
    assert drop == {
        "{}": "ok",
        '{"model_version": "v3"}': "ok",
        '{"model_version": "v4"}': "critical",
    }
    assert by_id["schema-change"]["files"] == ["assistant/requests/2026-11-27.ndjson"]
    for files in m["files"]:
        assert (demo.out / files).is_file()


def test_null_burst(fraud: SimpleNamespace, specs: dict[str, Any], demo: SimpleNamespace) -> None:
    m = monitor(specs["fraud-detector"], "amount-nulls")
    crit, warn = m["critical"]["above"], m["warn"]["above"]
    last = window(fraud.requests, AT, H, "ts")
    expected = {
        json.dumps(e["segment"]): e["value"] for e in demo.manifest["incidents"][0]["expected"]
    }
    for name, seg in segments(last, "model_version").items():
        rate = seg["amount"].null_count() / seg.height
        assert 0.075 <= rate <= 0.085 and rate > crit, (name, rate)
        key = json.dumps({"model_version": name} if name else {})
        assert rate == pytest.approx(expected[key], abs=1e-6)
    for end in ends(AT - 8 * D, AT - H, H):  # every earlier hour stays far below warn
        for name, seg in segments(window(fraud.requests, end, H, "ts"), "model_version").items():
            assert seg["amount"].null_count() / seg.height < warn * 0.75, (end, name)


def test_latency_spike(fraud: SimpleNamespace, specs: dict[str, Any]) -> None:
    m = monitor(specs["fraud-detector"], "latency-p95")
    crit, warn = m["critical"]["above"], m["warn"]["above"]
    for name, seg in segments(window(fraud.requests, AT, H, "ts"), "model_version").items():
        assert p95(seg["latency_ms"]) > crit + 100, name
    for end in ends(AT - 8 * D, AT - H, H):
        for name, seg in segments(window(fraud.requests, end, H, "ts"), "model_version").items():
            assert p95(seg["latency_ms"]) < warn * 0.7, (end, name)


def test_schema_change(
    assistant: SimpleNamespace, specs: dict[str, Any], demo: SimpleNamespace
) -> None:
    for f in assistant.files:
        cols = pl.read_ndjson(f).columns
        if f.name == "2026-11-27.ndjson":
            assert "latency_s" in cols and "latency_ms" not in cols
            seconds = pl.read_ndjson(f)["latency_s"]
            assert seconds.dtype == pl.Float64 and 0.2 < seconds.median() < 3
        else:
            assert "latency_ms" in cols and "latency_s" not in cols
    # a naive scan over the glob keeps the first file's schema: latency_ms is all null
    path = demo.root / specs["support-assistant"]["sources"]["requests"]["path"]
    scanned = pl.scan_ndjson(str(path), infer_schema_length=1000).collect()
    last = scanned.filter(pl.col("ts") > int((AT - M30).timestamp() * 1000))
    assert last.height > 300 and last["latency_ms"].null_count() == last.height
    # the latency itself is normal: only its name and unit changed
    m = monitor(specs["support-assistant"], "latency-p95")
    for name, seg in segments(window(assistant.requests, AT, M30), "model_version").items():
        assert p95(seg["latency"]) < m["warn"]["above"] * 0.8, name


def test_accuracy_drop(
    fraud: SimpleNamespace, specs: dict[str, Any], demo: SimpleNamespace
) -> None:
    spec = specs["fraud-detector"]
    recall, precision = monitor(spec, "recall"), monitor(spec, "precision")
    assert recall["window"] == "1d" and recall["delay"] == "2d"
    crit, warn = recall["critical"]["below"], precision["warn"]["below"]
    joined = labelled(fraud, AT)
    seen = window(joined, AT - 2 * D, D, "ts")  # (at-3d, at-2d]
    got = {name: confusion(seg) for name, seg in segments(seen, "model_version").items()}
    for c in got.values():
        assert c["coverage"] > recall["min_label_coverage"] + 0.1
        assert c["precision"] > warn + 0.1
    assert got["v4"]["recall"] < crit - 0.15  # well below 0.7
    assert got["v3"]["recall"] > crit + 0.15
    assert got[""]["recall"] > crit + 0.04  # the overall recall stays ok
    expected = {
        json.dumps(e["segment"]): e["value"] for e in demo.manifest["incidents"][3]["expected"]
    }
    assert got[""]["recall"] == pytest.approx(expected["{}"], abs=1e-4)
    assert got["v4"]["recall"] == pytest.approx(expected['{"model_version": "v4"}'], abs=1e-4)
    # the days before were fine for both versions
    for delay in (3, 4, 5, 6):
        earlier = window(joined, AT - delay * D, D, "ts")
        for name, seg in segments(earlier, "model_version").items():
            c = confusion(seg)
            assert c["recall"] > crit + 0.12 and c["precision"] > warn + 0.1, (delay, name)
            assert c["coverage"] > 0.9


def test_labels_arrive_within_two_days(fraud: SimpleNamespace) -> None:
    lab = fraud.labels.with_columns(t=utc("labeled_at")).join(
        fraud.requests.select("request_id", "ts"), on="request_id"
    )
    delay = (lab["t"] - lab["ts"]).dt.total_seconds()
    assert delay.min() >= 0 and delay.max() <= 2 * 86400
    assert lab["t"].max() <= AT and lab["request_id"].is_unique().all()
    coverage = lab.height / fraud.requests.height
    assert 0.8 < coverage < 0.95  # the last two days are still partly unlabelled


# --- normal data within thresholds ------------------------------------------------
def test_label_rate_is_steady(fraud: SimpleNamespace) -> None:
    """The fraud rate among the labels of a day vs. a week earlier (label drift):
    a two-proportion z-test stays far from significance."""
    labels = fraud.labels.with_columns(t=utc("labeled_at"))
    for end in ends(AT - D, AT, 6 * H):
        for name, cur in segments(window(labels, end, D), "model_version").items():
            old = window(labels, end - 7 * D, D)
            old = old.filter(pl.col("model_version") == name) if name else old
            p1, n1 = cur["is_fraud"].mean(), cur.height
            p0, n0 = old["is_fraud"].mean(), old.height
            pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
            z = (p1 - p0) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
            assert 2 * norm.sf(abs(z)) > 0.3, (end, name, p1, p0)


def test_fraud_normal_windows(fraud: SimpleNamespace, specs: dict[str, Any]) -> None:
    spec = specs["fraud-detector"]
    min_rows = max(spec["evaluation"]["min_rows"], monitor(spec, "volume")["critical"]["below"])
    reqs = fraud.requests
    for end in ends(AT - 7 * D, AT, H):
        for name, seg in segments(window(reqs, end, H, "ts"), "model_version").items():
            assert seg.height > 1.5 * min_rows, (end, name)
    assert (AT - reqs["ts"].max()) < timedelta(minutes=5)  # freshness: critical above 30m
    assert reqs["ts"].max() <= AT
    rng = monitor(spec, "amount-range")
    assert reqs["amount"].drop_nulls().is_between(rng["min"], rng["max"]).all()
    assert set(reqs["country"].unique()) <= set(fraud.training["country"].unique())
    kpi = monitor(spec, "block-rate")
    lo, hi = kpi["warn"]["outside"]
    for end in ends(AT - 7 * D, AT, 6 * H):
        for name, seg in segments(window(reqs, end, D, "ts"), "model_version").items():
            rate = (seg["score"] >= 0.5).mean()
            assert 2 * lo < rate < hi / 2, (end, name)


def test_fraud_feature_drift_vs_training(fraud: SimpleNamespace) -> None:
    ref = fraud.training.head(20_000)  # i.i.d. rows; enough for a reference, and quick
    ref_num = {c: ref[c].to_numpy().astype(float) for c in ("amount", "account_age_days")}
    ref_cat = {c: dict(ref[c].value_counts().iter_rows()) for c in ("country", "device")}
    for end in [AT, *ends(AT - 7 * D + 3 * H, AT - H, 11 * H)]:
        for name, seg in segments(window(fraud.requests, end, H, "ts"), "model_version").items():
            for col, r in ref_num.items():
                cur = seg[col].drop_nulls().to_numpy().astype(float)
                assert wasserstein_norm(r, cur) < 0.06, (end, name, col)  # default: 0.1
            for col, r in ref_cat.items():
                assert js_distance(r, seg[col]) < 0.06, (end, name, col)  # default: 0.1


def test_fraud_score_drift_vs_last_week(fraud: SimpleNamespace, specs: dict[str, Any]) -> None:
    threshold = monitor(specs["fraud-detector"], "score-drift")["threshold"]
    for end in [AT, *ends(AT - 2 * D + 5 * H, AT - H, 5 * H)]:
        cur = segments(window(fraud.requests, end, H, "ts"), "model_version")
        old = segments(window(fraud.requests, end - 7 * D, H, "ts"), "model_version")
        for name in cur:
            value = psi(old[name]["score"].to_numpy(), cur[name]["score"].to_numpy())
            assert value < threshold / 3, (end, name, value)


def test_demand_normal_windows(demand: SimpleNamespace, specs: dict[str, Any]) -> None:
    spec = specs["demand-forecast"]
    mape_warn = monitor(spec, "mape")["warn"]["above"]
    bias_lo, bias_hi = monitor(spec, "bias")["warn"]["outside"]
    p50_lo, p50_hi = monitor(spec, "forecast-p50")["warn"]["outside"]
    wow_lo, wow_hi = monitor(spec, "forecast-volume-wow")["warn"]["outside"]
    fc = demand.forecasts
    assert fc["store_id"].null_count() == 0 and (fc["forecast"] >= 0).all()
    actuals = demand.actuals.rename({"t": "recorded"})
    joined = fc.join(actuals, on=["store_id", "sku", "horizon_date"], how="left")
    checked = 0
    for end in ends(AT - 7 * D, AT, 6 * H):
        now = segments(window(fc, end, D), "region")
        week_ago = segments(window(fc, end - 7 * D, D), "region")
        for name, seg in now.items():
            assert seg.height >= 3 * spec["evaluation"]["min_rows"], (end, name)
            keys = seg.select("store_id", "sku", "horizon_date")
            assert not keys.is_duplicated().any()
            assert p50_lo * 3 < seg["forecast"].median() < p50_hi / 2
            if name in week_ago and week_ago[name].height:
                change = seg["forecast"].sum() / week_ago[name]["forecast"].sum() - 1
                assert wow_lo / 3 < change < wow_hi / 3, (end, name, change)
        # mape and bias: delay 1d, with the actuals known at `end`
        for name, seg in segments(window(joined, end - D, D), "region").items():
            known = seg.filter(pl.col("recorded") <= end)
            assert known.height == seg.height  # every actual is in a day later
            error = known["forecast"] - known["units_sold"]
            mape = (error.abs() / known["units_sold"]).mean()
            assert mape < mape_warn * 0.7, (end, name, mape)
            assert bias_lo * 0.7 < error.mean() < bias_hi * 0.7, (end, name, error.mean())
            checked += 1
    assert checked > 50
    assert (demand.actuals["units_sold"] >= 1).all()
    assert demand.actuals["t"].max() <= AT


def test_assistant_normal_windows(assistant: SimpleNamespace, specs: dict[str, Any]) -> None:
    spec = specs["support-assistant"]
    min_rows = spec["evaluation"]["min_rows"]
    allowed = set(monitor(spec, "status-codes")["values"])
    err = monitor(spec, "error-rate")["critical"]["above"]
    refusal = monitor(spec, "refusal-rate")["warn"]["above"]
    cost = monitor(spec, "cost-per-request")["warn"]["above"]
    throughput = monitor(spec, "throughput")["warn"]["below"]
    lat_warn = monitor(spec, "latency-p95")["warn"]["above"]
    reqs = assistant.requests
    assert set(reqs["status"].unique()) <= allowed
    text = reqs["response_text"].drop_nulls()
    assert text.str.contains(r"\S").all()  # empty-responses: no empty strings
    for end in ends(AT - D - 11 * H, AT, M30):
        for name, seg in segments(window(reqs, end, M30), "model_version").items():
            assert seg.height > 1.5 * min_rows, (end, name)
            assert seg.height / 1800 > 1.5 * throughput
            assert (seg["status"] >= 500).mean() < err * 0.75, (end, name)
            assert (seg["finish_reason"] == "refusal").mean() < refusal * 0.8, (end, name)
            c = (seg["prompt_tokens"] * 0.000003 + seg["completion_tokens"] * 0.000015).mean()
            assert c < cost * 0.6
            assert p95(seg["latency"]) < lat_warn * 0.85, (end, name)


def test_assistant_prompt_drift_and_feedback(
    assistant: SimpleNamespace, specs: dict[str, Any]
) -> None:
    reqs = assistant.requests
    for end in ends(AT - 23 * H, AT, M30):
        cur = segments(window(reqs, end, M30), "model_version")
        ref = segments(window(reqs, end - D, M30), "model_version")
        for name in cur:
            r = ref[name]["prompt_tokens"].to_numpy().astype(float)
            c = cur[name]["prompt_tokens"].to_numpy().astype(float)
            assert wasserstein_norm(r, c) < 0.06, (end, name)  # Evidently's default: 0.1
    kpi = monitor(specs["support-assistant"], "thumbs-up-rate")
    for end in ends(AT - D, AT, 3 * H):
        for name, seg in segments(window(assistant.feedback, end, D), "model_version").items():
            assert seg.height > 10 * kpi["min_rows"]
            assert (seg["rating"] == "up").mean() > kpi["warn"]["below"] + 0.1, (end, name)
    assert assistant.feedback["t"].max() <= AT


# --- determinism, cost, command line ----------------------------------------------
def test_deterministic(demo: SimpleNamespace, tmp_path: Path) -> None:
    again = tmp_path / "data"
    assert generate(again) == demo.manifest
    first = sorted(p.relative_to(demo.out) for p in demo.out.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (demo.out / rel).read_bytes() == (again / rel).read_bytes(), rel
    # a different seed gives different data
    other = tmp_path / "other"
    assert generate(other, seed=8, days=4)["caveats"]  # too short for week-over-week
    rel = Path("assistant/requests/2026-11-26.ndjson")
    assert (other / rel).read_bytes() != (demo.out / rel).read_bytes()


def test_cost(demo: SimpleNamespace) -> None:
    """Counted, not timed: the generator's work is per row (vectorised), so rows and bytes
    written bound it. (It takes 2-3 s on two idle cores; `python examples/demo.py` prints
    its time.)"""
    rows = sum(demo.manifest["files"].values())
    assert rows < 1_000_000, rows  # 782,616 with the defaults
    size = sum(p.stat().st_size for p in demo.out.rglob("*") if p.is_file())
    assert size < 60 * 2**20, size


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    assert main([str(out), "--at", "2026-03-01T08:30:00+00:00", "--seed", "3", "--days", "5"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "incidents.json")
    manifest = json.loads((out / "incidents.json").read_text())
    assert manifest["at"] == "2026-03-01T08:30:00Z" and manifest["seed"] == 3
    at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    reqs = pl.read_parquet(out / "fraud/requests/**/*.parquet", hive_partitioning=True)
    assert reqs["ts"].max() <= at and reqs["ts"].min() > at - 5 * D
    last = window(reqs, at, H, "ts")
    assert last["amount"].null_count() / last.height == pytest.approx(0.08, abs=0.005)
    assert "latency_s" in pl.read_ndjson(out / "assistant/requests/2026-03-01.ndjson").columns
    with pytest.raises(SystemExit):
        main([str(out), "--at", "yesterday"])
