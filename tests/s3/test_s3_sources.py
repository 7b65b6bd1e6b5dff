"""Sources on object storage, against a real S3 server (moto, server mode, loopback).

The same files are evaluated from a local folder and from the bucket, with model
files that differ only in their source paths and ``storage_options``; everything
the engine reports must be the same.
"""

from __future__ import annotations

import copy
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from rulesengine.engine.evaluate import evaluate
from rulesengine.spec.loader import load
from rulesengine.spec.validate import validate
from tests.conftest import run_cli
from tests.s3.conftest import S3Server

AT = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
AT_TEXT = "2026-11-27T18:00:00Z"
DAY0 = datetime(2026, 11, 26, tzinfo=UTC)
N_REQUESTS = 3000
N_EVENTS = 2400
N_TRAINING = 1500
CLI_TIMEOUT = 45

# storage_options as written in the S3 model file: secrets and the endpoint from ${VAR}
S3_OPTIONS = {
    "aws_endpoint_url": "${S3_ENDPOINT}",
    "aws_access_key_id": "${S3_KEY_ID}",
    "aws_secret_access_key": "${S3_SECRET}",
    "aws_region": "us-east-1",
    "aws_allow_http": "true",
}

# source name → path relative to the data root
PATHS = {
    "requests": "requests/**/*.parquet",
    "events": "events/*.csv",
    "labels": "labels/*.ndjson",
    "training": "training/training.parquet",
}

MODEL: dict[str, Any] = {
    "version": 1,
    "model": "checkout-fraud",
    "labels": {"team": "risk"},
    "sources": {
        # parquet in hive folders dt=YYYY-MM-DD; windows also prune on dt
        "requests": {"timestamp": "ts", "partition_date": "dt"},
        "events": {"timestamp": "event_time"},  # CSV, naive ISO strings
        "labels": {"timestamp": "labeled_at"},  # NDJSON, epoch milliseconds
        "training": {},  # static parquet reference
    },
    "evaluation": {"window": "1d", "segment_by": ["model_version"], "min_rows": 20},
    "checks": [
        {"name": "volume", "source": "requests", "type": "row_count", "critical": {"below": 100}},
        {
            "name": "amount-nulls",
            "source": "requests",
            "type": "null_rate",
            "column": "amount",
            "warn": {"above": 0.03},
            "critical": {"above": 0.06},
        },
        {
            "name": "country-nulls",
            "source": "requests",
            "type": "null_count",
            "column": "country",
            "warn": {"above": 50},
        },
        {
            "name": "amount-range",
            "source": "requests",
            "type": "out_of_range",
            "column": "amount",
            "min": 0,
            "max": 300,
            "warn": {"above": 0.01},
        },
        {
            "name": "status-codes",
            "source": "requests",
            "type": "allowed_values",
            "column": "status",
            "values": [200, 400, 500],
            "warn": {"above": 0.0},
        },
        {
            "name": "new-countries",
            "source": "requests",
            "type": "new_categories",
            "column": "country",
            "reference": "training",
            "warn": {"above": 0.05},
        },
        {
            "name": "latency-outliers",
            "source": "requests",
            "type": "outlier_rate",
            "column": "latency_ms",
            "reference": "training",
            "method": "iqr",
            "warn": {"above": 0.02},
        },
        {
            "name": "freshness",
            "source": "requests",
            "type": "freshness",
            "critical": {"above": "30m"},
        },
        {
            "name": "request-schema",
            "source": "requests",
            "type": "schema",
            "expected_columns": {
                "request_id": "string",
                "ts": "datetime",
                "amount": "float",
                "status": "integer",
                "dt": "date",
                "score": "Float32",  # a problem, reported per file (paths differ)
            },
        },
        {
            "name": "items-nulls",
            "source": "events",
            "type": "null_rate",
            "column": "items",
            "critical": {"above": 0.1},
        },
        {
            "name": "channel-nulls",
            "source": "events",
            "type": "null_count",
            "column": "channel",
            "segment_by": ["channel"],
            "warn": {"above": 0},
        },
        {
            "name": "event-duplicates",
            "source": "events",
            "type": "duplicate_rate",
            "columns": ["request_id"],
            "warn": {"above": 0.01},
        },
        {
            "name": "label-volume",
            "source": "labels",
            "type": "row_count",
            "segment_by": [],
            "warn": {"below": 2000},
        },
    ],
    "metrics": [
        {
            "name": "latency-p95",
            "source": "requests",
            "type": "quantile",
            "column": "latency_ms",
            "q": 0.95,
            "warn": {"above": 150},
            "critical": {"above": 250},
        },
        {
            "name": "recall",
            "source": "requests",
            "type": "recall",
            "prediction": "score >= 0.3",
            "target": "is_fraud",
            "join": {"source": "labels", "on": "request_id"},
            "delay": "12h",
            "min_label_coverage": 0.5,
            "critical": {"below": 0.7},
        },
        {
            "name": "auc",
            "source": "requests",
            "type": "roc_auc",
            "score": "score",
            "target": "is_fraud",
            "join": {"source": "labels", "on": ["request_id"]},
            "delay": "12h",
            "warn": {"below": 0.8},
        },
        {
            "name": "error-rate",
            "source": "requests",
            "expr": "avg(CAST(status >= 500 AS DOUBLE))",
            "critical": {"above": 0.05},
        },
        {
            "name": "amount-mean",
            "source": "requests",
            "type": "mean",
            "column": "amount",
            "filter": "country IS NOT NULL AND country <> 'US'",
            "warn": {"outside": [10, 60]},
        },
        {
            "name": "items-mean",
            "source": "events",
            "type": "mean",
            "column": "items",
            "warn": {"above": 4},
        },
    ],
    "drift": [
        {
            "name": "features",
            "source": "requests",
            "reference": "training",
            "columns": ["amount", "country", "latency_ms"],
            "drift_share": {"warn": {"at_or_above": 0.3}, "critical": {"at_or_above": 0.6}},
        },
        {
            "name": "score-shift",
            "source": "requests",
            "reference": {"source": "requests", "offset": "12h"},
            "columns": ["score"],
            "method": "psi",
            "segment_by": [],
        },
    ],
    "kpis": [
        {
            "name": "missed-fraud",
            "source": "requests",
            "expr": "sum(CASE WHEN is_fraud AND score < 0.5 THEN amount ELSE 0 END)",
            "join": {"source": "labels", "on": "request_id"},
            "critical": {"above": 2000},
        },
        {
            "name": "revenue-change",
            "source": "requests",
            "expr": "sum(amount)",
            "compare": {"offset": "12h"},
            "segment_by": [],
            "warn": {"outside": [-0.2, 0.2]},
        },
        {
            "name": "items-per-event",
            "source": "events",
            "expr": "sum(items) / count(*)",
            "segment_by": ["channel"],
            "warn": {"below": 1},
        },
    ],
}


# ------------------------------------------------------------------ the data


def _ts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Epoch microseconds spread over two days from DAY0."""
    start = int(DAY0.timestamp() * 1_000_000)
    return start + rng.integers(0, 2 * 86_400 * 1_000_000, n)


def build_dataset(root: Path) -> None:
    """A few thousand rows per source over two days: hive parquet, CSV, NDJSON, a
    static parquet reference; with nulls, a segment column and labels to join."""
    rng = np.random.default_rng(20261127)
    n = N_REQUESTS
    ts_us = np.sort(_ts(rng, n))
    score = rng.beta(1.2, 6.0, n)
    is_fraud = rng.random(n) < np.clip(score * 1.1, 0, 1)
    amount = np.round(rng.lognormal(3.2, 0.8, n), 2)
    countries = np.array(["DE", "FR", "US", "NL", "BR"])
    requests = pl.DataFrame(
        {
            "request_id": [f"r{i:05d}" for i in range(n)],
            "ts": pl.Series(ts_us).cast(pl.Datetime("us", "UTC")),
            "model_version": rng.choice(["v1", "v2", "v3"], n, p=[0.5, 0.3, 0.2]),
            "country": pl.Series(rng.choice(countries, n, p=[0.4, 0.25, 0.2, 0.1, 0.05])),
            "amount": pl.Series(amount),
            "latency_ms": np.round(rng.gamma(4.0, 25.0, n), 3),
            "score": score,
            "status": rng.choice([200, 400, 500, 503], n, p=[0.93, 0.03, 0.03, 0.01]),
        }
    ).with_columns(
        amount=pl.when(pl.Series(rng.random(n) < 0.04)).then(None).otherwise(pl.col("amount")),
        country=pl.when(pl.Series(rng.random(n) < 0.02)).then(None).otherwise(pl.col("country")),
    )
    for day, part in requests.group_by(pl.col("ts").dt.date(), maintain_order=True):
        folder = root / "requests" / f"dt={day[0].isoformat()}"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part.parquet")

    # labels: ~75% of requests, 1-30 h after the request, some relabelled later
    labelled = np.nonzero(rng.random(n) < 0.75)[0]
    delay_ms = rng.integers(3_600_000, 30 * 3_600_000, len(labelled))
    labels = pl.DataFrame(
        {
            "request_id": [f"r{i:05d}" for i in labelled],
            "labeled_at": ts_us[labelled] // 1000 + delay_ms,
            "is_fraud": is_fraud[labelled],
        }
    )
    relabel = labels.sample(120, seed=3).with_columns(
        pl.col("labeled_at") + 7_200_000, ~pl.col("is_fraud")
    )
    labels = pl.concat([labels, relabel]).sample(fraction=1.0, shuffle=True, seed=4)
    (root / "labels").mkdir()
    half = labels.height // 2
    labels[:half].write_ndjson(root / "labels" / "part-0.ndjson")
    labels[half:].write_ndjson(root / "labels" / "part-1.ndjson")

    # events: CSV per day, naive ISO timestamps, nulls as empty fields, some duplicates
    m = N_EVENTS
    ev_us = np.sort(_ts(rng, m))
    events = pl.DataFrame(
        {
            "event_time": pl.Series(ev_us)
            .cast(pl.Datetime("us"))
            .dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"),
            "request_id": [f"r{i:05d}" for i in rng.integers(0, n, m)],
            "model_version": rng.choice(["v1", "v2", "v3"], m, p=[0.5, 0.3, 0.2]),
            "channel": rng.choice(["web", "app", "api"], m),
            "items": rng.poisson(2.5, m),
        }
    ).with_columns(
        channel=pl.when(pl.Series(rng.random(m) < 0.05)).then(None).otherwise(pl.col("channel")),
        items=pl.when(pl.Series(rng.random(m) < 0.08)).then(None).otherwise(pl.col("items")),
    )
    (root / "events").mkdir()
    for day, part in events.group_by(pl.col("event_time").str.slice(0, 10), maintain_order=True):
        part.write_csv(root / "events" / f"{day[0]}.csv")

    # training: the static reference
    t = N_TRAINING
    (root / "training").mkdir()
    pl.DataFrame(
        {
            "amount": np.round(rng.lognormal(3.2, 0.8, t), 2),
            "country": rng.choice(countries[:4], t),
            "latency_ms": np.round(rng.gamma(4.0, 25.0, t), 3),
        }
    ).write_parquet(root / "training" / "training.parquet")


def model_yaml(
    base: str,
    storage_options: dict[str, str] | None = None,
    *,
    edit: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The model file with every source under ``base`` (a relative folder or an
    ``s3://`` URL); ``edit`` updates individual sources."""
    spec = copy.deepcopy(MODEL)
    for name, source in spec["sources"].items():
        source["path"] = f"{base}/{PATHS[name]}"
        if storage_options is not None:
            source["storage_options"] = dict(storage_options)
        source.update((edit or {}).get(name, {}))
    return yaml.safe_dump(spec, sort_keys=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3data") / "data"
    root.mkdir()
    build_dataset(root)
    return root


@pytest.fixture(scope="module")
def uploaded(s3_server: S3Server, dataset: Path) -> str:
    """The dataset in the bucket under its own prefix (same layout); the base URL."""
    s3_server.upload_tree(dataset, "shared/data")
    return s3_server.url("shared/data")


@pytest.fixture(scope="module")
def specs(
    tmp_path_factory: pytest.TempPathFactory, dataset: Path, uploaded: str
) -> dict[str, Path]:
    """The local model file (next to the data) and its S3 twin."""
    local = dataset.parent / "local.yaml"
    local.write_text(model_yaml("data"), encoding="utf-8")
    remote = tmp_path_factory.mktemp("s3spec") / "s3.yaml"
    remote.write_text(model_yaml(uploaded, S3_OPTIONS), encoding="utf-8")
    return {"local": local, "s3": remote}


def _by_key(model: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    out = {}
    for r in model["results"]:
        key = (r["monitor"], json.dumps(r["segment"], sort_keys=True), r["column"])
        assert key not in out, f"duplicate result {key}"
        out[key] = r
    return out


def assert_same(actual: Any, expected: Any, where: str = "") -> None:
    """Equal, with floats compared to 1e-12 (relative, or absolute near zero)."""
    if isinstance(expected, float) or isinstance(actual, float):
        assert isinstance(actual, int | float) and isinstance(expected, int | float), where
        if math.isnan(expected):
            assert math.isnan(actual), where
            return
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), (
            f"{where}: {actual!r} != {expected!r}"
        )
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(actual)}"
        for k in expected:
            assert_same(actual[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: {actual!r} != {expected!r}"
        )
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_same_results(s3_doc: dict[str, Any], local_doc: dict[str, Any]) -> None:
    assert s3_doc["model"] == local_doc["model"]
    assert s3_doc["at"] == local_doc["at"]
    local, remote = _by_key(local_doc), _by_key(s3_doc)
    assert list(remote) == list(local), "different results, or in a different order"
    for key, expected in local.items():
        assert_same(remote[key], expected, "/".join(str(k) for k in key if k))


def _normalise(doc: Any, *paths: str) -> Any:
    """``doc`` (JSON text, or a JSON value) with the data root written as <DATA>."""
    text = doc if isinstance(doc, str) else json.dumps(doc)
    for p in paths:
        text = text.replace(json.dumps(p)[1:-1], "<DATA>")
        if "://" not in p:  # a local file inside the working directory shows relative
            text = re.sub(rf'(?<=[\s"]){re.escape(Path(p).name)}/', "<DATA>/", text)
    return text if isinstance(doc, str) else json.loads(text)


def _evaluate(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Evaluate one model file at AT, in its own folder (profiles go to ./.rulesengine)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path.parent)
        models = evaluate(load([path], env=env), AT)
    assert len(models) == 1
    return models[0].as_dict()


# -------------------------------------------------------------- 1. same results


@pytest.fixture(scope="module")
def local_doc(specs: dict[str, Path], s3_server: S3Server) -> dict[str, Any]:
    """The local evaluation: what every S3 evaluation is compared with."""
    return _evaluate(specs["local"], s3_server.env)


def test_dataset_sanity(local_doc: dict[str, Any], dataset: Path) -> None:
    """The local evaluation is meaningful: most monitors have a value, none fails."""
    doc = local_doc
    statuses = [r["status"] for r in doc["results"]]
    assert "error" not in statuses, [r for r in doc["results"] if r["status"] == "error"]
    assert "critical" in statuses
    with_value = [r for r in doc["results"] if r["value"] is not None]
    assert len(with_value) >= 0.9 * len(doc["results"])
    monitors = {r["monitor"] for r in doc["results"]}
    assert len(monitors) == sum(len(MODEL[k]) for k in ("checks", "drift", "metrics", "kpis"))
    segments = {json.dumps(r["segment"]) for r in doc["results"]}
    assert {'{"model_version": "v1"}', '{"channel": "web"}', "{}"} <= segments
    assert {"ok", "warn"} <= set(statuses)
    (schema,) = _results(doc)["request-schema"]
    assert schema["details"]["files"] == 2
    assert schema["details"]["problems"] == [
        "column 'score' is Float64, expected Float32 in 2 of 2 file(s): "
        f"{dataset.name}/requests/dt=2026-11-26/part.parquet, "  # relative to the cwd
        f"{dataset.name}/requests/dt=2026-11-27/part.parquet"
    ]


def test_s3_results_equal_local(
    local_doc: dict[str, Any],
    specs: dict[str, Path],
    dataset: Path,
    uploaded: str,
    s3_server: S3Server,
) -> None:
    """Same statuses, values (to 1e-12), rows, segments and details; only file
    names differ (a local path or an s3:// URL)."""
    remote = _evaluate(specs["s3"], s3_server.env)
    assert_same_results(_normalise(remote, uploaded), _normalise(local_doc, str(dataset)))


def test_s3_storage_options_come_from_env(specs: dict[str, Path], s3_server: S3Server) -> None:
    text = specs["s3"].read_text()
    assert s3_server.endpoint not in text and "${S3_ENDPOINT}" in text
    config = load([specs["s3"]], env=s3_server.env)
    source = config.models[0].sources["requests"]
    assert source.is_remote
    assert dict(source.storage_options) == s3_server.storage_options


# ------------------------------------------------- 2. validate --check-sources


def _validate(path: Path, s3: S3Server) -> Any:
    return run_cli(
        "validate", str(path), "--check-sources", env=s3.env, cwd=path.parent, timeout=CLI_TIMEOUT
    )


def test_validate_check_sources_on_s3(specs: dict[str, Path], s3_server: S3Server) -> None:
    result = _validate(specs["s3"], s3_server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok: 1 file valid"


def test_validate_check_sources_finds_s3_problems(
    tmp_path: Path, uploaded: str, s3_server: S3Server
) -> None:
    """Column typos are found from the objects' metadata or first lines (parquet,
    CSV); an empty prefix is a warning, or an error for a required source."""
    missing_labels = f"{uploaded}/no-labels-yet/*.ndjson"
    missing_training = f"{uploaded}/no-training/*.parquet"
    text = model_yaml(
        uploaded,
        S3_OPTIONS,
        edit={
            "labels": {"path": missing_labels},
            "training": {"path": missing_training, "required": True},
        },
    )
    text = text.replace("column: amount\n", "column: amuont\n", 1)  # parquet
    text = text.replace("column: items\n", "column: item\n", 1)  # CSV
    path = tmp_path / "problems.yaml"
    path.write_text(text, encoding="utf-8")
    result = _validate(path, s3_server)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "column 'amuont' not found in source 'requests' (did you mean 'amount'?)" in out
    assert "column 'item' not found in source 'events' (did you mean 'items'?)" in out
    assert f"no files match '{missing_labels}' yet: columns not checked" in out
    assert f"no files match '{missing_training}' and the source is required" in out
    assert out.strip().endswith("3 errors in 1 of 1 file"), out
    assert s3_server.endpoint not in out + result.stderr


def test_validate_check_sources_s3_ndjson_join_columns(
    tmp_path: Path, uploaded: str, s3_server: S3Server
) -> None:
    """In-process: a typo in a column of the joined NDJSON label source."""
    text = model_yaml(uploaded, S3_OPTIONS).replace("target: is_fraud\n", "target: is_frau\n", 1)
    path = tmp_path / "join.yaml"
    path.write_text(text, encoding="utf-8")
    report = validate([path], check_sources=True, env=s3_server.env)
    errors = [p.message for p in report.problems if p.severity == "error"]
    assert errors == ["column 'is_frau' not found in source 'requests' (did you mean 'is_fraud'?)"]


# ------------------------------------------------- 3. missing and broken data


def _results(doc: dict[str, Any]) -> dict[str, list[dict]]:
    """Results by monitor."""
    out: dict[str, list[dict]] = {}
    for r in doc["results"]:
        out.setdefault(r["monitor"], []).append(r)
    return out


def _monitors_on(*sources: str) -> list[str]:
    """Monitors that read ``sources`` (as their source, join or reference)."""
    out = []
    for kind in ("checks", "drift", "metrics", "kpis"):
        for m in MODEL[kind]:
            ref = m.get("reference")
            used = {
                m["source"],
                (m.get("join") or {}).get("source"),
                ref if isinstance(ref, str) else (ref or {}).get("source"),
            }
            if used & set(sources):
                out.append(m["name"])
    return out


REQUESTS_MONITORS = _monitors_on("requests")
LABELS_MONITORS = _monitors_on("labels")
# monitors whose planning reads the source's schema before the engine checks that
# the source has files: KeyError('requests') surfaces as the error "'requests'"
SCHEMA_FIRST = {"status-codes", "freshness", "features", "score-shift"}
BUG_SCHEMA_FIRST = (
    "BUG: monitors whose prepare()/needs() read ctx.schemas[source] (allowed_values, "
    "freshness, drift) fail with KeyError('requests') -> error \"'requests'\" before "
    "plan._plan_needs checks that the source has files"
)


@pytest.fixture(scope="module")
def missing_prefix_docs(uploaded: str, s3_server: S3Server, tmp_path_factory) -> dict[str, Any]:
    """Evaluations with ``requests`` pointing at an empty S3 prefix, optional and
    required."""
    folder = tmp_path_factory.mktemp("missing")
    missing = f"{uploaded}/nothing-here/**/*.parquet"
    docs = {}
    for name, extra in (("optional", {}), ("required", {"required": True})):
        path = folder / f"{name}.yaml"
        edit = {"requests": {"path": missing, **extra}}
        path.write_text(model_yaml(uploaded, S3_OPTIONS, edit=edit), encoding="utf-8")
        docs[name] = _evaluate(path, s3_server.env)
    docs["missing"] = missing
    return docs


def _xfail_schema_first(names: list[str]) -> list[Any]:
    # SCHEMA_FIRST monitors read the source's schema while planning; they once
    # failed with a KeyError here (BUG_SCHEMA_FIRST), now they report no_data too
    return list(names)


@pytest.mark.parametrize("monitor", _xfail_schema_first(REQUESTS_MONITORS))
def test_missing_s3_prefix_is_no_data(missing_prefix_docs: dict[str, Any], monitor: str) -> None:
    results = _results(missing_prefix_docs["optional"])[monitor]
    assert len(results) == 1  # no segments without data
    (r,) = results
    assert r["status"] == "no_data", r
    assert r["details"] == {"reason": f"no files match {missing_prefix_docs['missing']}"}
    assert r["value"] is None


@pytest.mark.parametrize("monitor", _xfail_schema_first(REQUESTS_MONITORS))
def test_missing_required_s3_prefix_is_error(
    missing_prefix_docs: dict[str, Any], monitor: str
) -> None:
    (r,) = _results(missing_prefix_docs["required"])[monitor]
    assert r["status"] == "error", r
    assert r["details"] == {"error": f"no files match {missing_prefix_docs['missing']}"}


def test_missing_s3_prefix_leaves_other_sources_alone(
    missing_prefix_docs: dict[str, Any], local_doc: dict[str, Any], dataset: Path, uploaded: str
) -> None:
    full = _results(_normalise(local_doc, str(dataset)))
    for kind in ("optional", "required"):
        got = _results(_normalise(missing_prefix_docs[kind], uploaded))
        others = [m for m in full if m not in REQUESTS_MONITORS]
        assert others
        for name in others:
            assert_same(got[name], full[name], f"{kind}/{name}")


def test_missing_s3_object_without_glob_is_no_data(
    tmp_path: Path, uploaded: str, s3_server: S3Server
) -> None:
    missing = f"{uploaded}/labels/not-yet.ndjson"
    path = tmp_path / "m.yaml"
    path.write_text(
        model_yaml(uploaded, S3_OPTIONS, edit={"labels": {"path": missing}}), encoding="utf-8"
    )
    # validate --check-sources already promises this
    report = validate([path], check_sources=True, env=s3_server.env)
    assert any("monitors will report no_data" in p.message for p in report.problems)
    got = _results(_evaluate(path, s3_server.env))
    for name in LABELS_MONITORS:
        assert [r["status"] for r in got[name]] == ["no_data"], got[name]


def _truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]  # an interrupted upload


CORRUPT = {
    # case → (key of the bad object under the data root, the source it belongs to)
    "requests-last": ("requests/dt=2026-11-27/part-0001.parquet", "requests"),
    "requests-first": ("requests/dt=2026-11-26/a-part.parquet", "requests"),
    "labels": ("labels/part-2.ndjson", "labels"),
}


@pytest.fixture(scope="module", params=sorted(CORRUPT))
def corrupt_case(
    request: pytest.FixtureRequest,
    dataset: Path,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The dataset in its own prefix plus one corrupt object; the evaluation."""
    key, source = CORRUPT[request.param]
    prefix = f"corrupt-{request.param}/data"
    s3_server.upload_tree(dataset, prefix)
    if source == "requests":
        body = _truncated(dataset / "requests" / "dt=2026-11-27" / "part.parquet")
    else:
        body = b'{"request_id": "r00001", "labeled_at": 1795000000000, "is_fraud": tru\n'
    s3_server.put(f"{prefix}/{key}", body)
    path = tmp_path_factory.mktemp("corrupt") / "model.yaml"
    path.write_text(model_yaml(s3_server.url(prefix), S3_OPTIONS), encoding="utf-8")
    return {
        "source": source,
        "key": f"{prefix}/{key}",
        "base": s3_server.url(prefix),
        "doc": _evaluate(path, s3_server.env),
    }


def test_corrupt_s3_object_is_an_error_and_others_still_evaluate(
    corrupt_case: dict[str, Any], local_doc: dict[str, Any], dataset: Path
) -> None:
    broken = _monitors_on(corrupt_case["source"])
    got = _results(_normalise(corrupt_case["doc"], corrupt_case["base"]))
    full = _results(_normalise(local_doc, str(dataset)))
    assert list(got) == list(full)
    for name in broken:
        assert [r["status"] for r in got[name]] == ["error"], got[name]
        assert got[name][0]["details"]["error"]
    others = [m for m in full if m not in broken]
    assert len(others) >= 5
    for name in others:
        assert_same(got[name], full[name], name)


def test_corrupt_s3_object_error_names_it(
    corrupt_case: dict[str, Any], s3_server: S3Server
) -> None:
    # Polars' own listing finds the objects; each is then read alone until one fails
    url = s3_server.url(corrupt_case["key"])
    got = _results(corrupt_case["doc"])
    for name in _monitors_on(corrupt_case["source"]):
        error = got[name][0]["details"]["error"]
        assert error.startswith(f"source '{corrupt_case['source']}': cannot read {url}: "), error


# ------------------------------------------------------- 4. the run command


def test_cli_run_json_same_on_s3_and_local(
    specs: dict[str, Path],
    local_doc: dict[str, Any],
    dataset: Path,
    uploaded: str,
    s3_server: S3Server,
) -> None:
    def run(path: Path) -> Any:
        return run_cli(
            "run",
            str(path),
            "--at",
            AT_TEXT,
            "--format",
            "json",
            env=s3_server.env,
            cwd=path.parent,
            timeout=CLI_TIMEOUT,
        )

    with ThreadPoolExecutor(2) as pool:  # two interpreters start faster side by side
        local, remote = pool.map(run, [specs["local"], specs["s3"]])
    for result in (local, remote):
        assert result.returncode in (0, 1), result.stdout + result.stderr
    assert remote.returncode == local.returncode == 1  # criticals, no errors
    paths = (str(dataset), uploaded)
    assert _normalise(remote.stderr, *paths) == _normalise(local.stderr, *paths)
    cli_local = json.loads(_normalise(local.stdout, *paths))
    cli_s3 = json.loads(_normalise(remote.stdout, *paths))
    assert list(cli_s3) == list(cli_local) == ["models"]
    assert len(cli_s3["models"]) == len(cli_local["models"]) == 1
    assert_same_results(cli_s3["models"][0], cli_local["models"][0])
    # and the command line says what the library says
    assert_same_results(cli_local["models"][0], _normalise(local_doc, *paths))
