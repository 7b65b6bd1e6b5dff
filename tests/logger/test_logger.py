"""rulesengine.logger: real files in temp folders, real `rulesengine run` subprocesses,
a real SIGKILL, and moto's S3 server on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rulesengine.logger import Flush, LoggerError, ModelLogger
from tests.conftest import ROOT, run_cli
from tests.s3.conftest import S3Server, _apply_env

MODEL_SPEC = """\
version: 1
model: scorer
sources:
  requests:
    path: {requests}
    timestamp: ts
    partition_date: dt
{options}
  labels:
    path: {labels}
    timestamp: ts
{options}
evaluation: {{every: 5m, window: 7d, min_rows: 1}}
checks:
  - {{name: volume, source: requests, type: row_count, warn: {{below: 1}}}}
  - name: request-schema
    source: requests
    type: schema
    strict: true
    expected_columns: {{request_id: string, ts: datetime, amount: float, country: string}}
  - {{name: label-volume, source: labels, type: row_count, warn: {{below: 1}}}}
"""


def write_spec(folder: Path, root: str, options: dict[str, str] | None = None) -> Path:
    """A one-model config over the layout ModelLogger(root, model="scorer") writes."""
    opts = ""
    if options:
        inner = ", ".join(f"{k}: {json.dumps(v)}" for k, v in options.items())
        opts = f"    storage_options: {{{inner}}}"
    text = MODEL_SPEC.format(
        requests=f"{root}/scorer/requests/**/*.parquet",
        labels=f"{root}/scorer/labels/**/*.parquet",
        options=opts,
    )
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "engine.yaml").write_text("version: 1\nstate: .rulesengine/state.db\n")
    (folder / "models" / "scorer.yaml").write_text(text)
    return folder


def run_json(config: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`rulesengine run --format json` one minute from now: monitor -> result."""
    at = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = run_cli("run", str(config), "--at", at, "--format", "json", "--fail-on", "never", env=env)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["models"][0]["results"]
    return {r["monitor"]: r for r in results}


def visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


# ------------------------------------------------------------------ basics


def test_rows_land_in_hive_day_folders_with_filled_ids_and_times(tmp_path: Path) -> None:
    flushes: list[Flush] = []
    day1 = datetime(2026, 11, 26, 23, 59, tzinfo=UTC)
    with ModelLogger(tmp_path / "logs", model="scorer", on_flush=flushes.append) as lg:
        ids = [lg.log(amount=float(i), country="DE") for i in range(5)]
        lg.log("given-id", amount=1.5, country="FR", ts=day1)
        lg.log(amount=2.5, country="FR", ts="2026-11-27T00:00:01Z")
        lg.log_label(ids[0], defaulted=True)
        assert lg.pending == 8
    assert len(set(ids)) == 5 and all(isinstance(i, str) for i in ids)
    req = tmp_path / "logs" / "scorer" / "requests"
    folders = sorted(p.name for p in req.iterdir())
    today = datetime.now(UTC).date().isoformat()
    assert folders == sorted({"dt=2026-11-26", "dt=2026-11-27", f"dt={today}"})
    df = pl.read_parquet(req / "**" / "*.parquet", hive_partitioning=True)
    assert df.height == 7
    assert df.columns[:2] == ["request_id", "ts"]
    assert df.schema["ts"] == pl.Datetime("us", "UTC") and df.schema["dt"] == pl.Date
    assert "given-id" in df["request_id"].to_list()
    # each row's folder is its own UTC date
    assert (df["ts"].dt.date() == df["dt"]).all()
    labels = pl.read_parquet(tmp_path / "logs" / "scorer" / "labels" / "**" / "*.parquet")
    assert labels.select("request_id", "defaulted").rows() == [(ids[0], True)]
    assert sum(f.rows for f in flushes) == 8
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.name.startswith(".")]
    with pytest.raises(LoggerError, match="closed"):
        lg.log(amount=1.0)


def test_dtypes_keep_declared_types_for_int_and_null_batches(tmp_path: Path) -> None:
    dtypes = {"amount": pl.Float64(), "country": pl.String()}
    with ModelLogger(tmp_path, model="scorer", dtypes=dtypes) as lg:
        lg.log(amount=3, country=None)
        lg.log(amount=4, country=None)
    (path,) = visible_files(tmp_path)
    assert pl.read_parquet_schema(path) == {
        "request_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "amount": pl.Float64,
        "country": pl.String,
    }


def test_a_column_with_mixed_values_is_written_as_text(tmp_path: Path) -> None:
    with ModelLogger(tmp_path, model="scorer") as lg:
        lg.log(amount=1.5)
        lg.log(amount="n/a")
    (path,) = visible_files(tmp_path)
    assert pl.read_parquet(path)["amount"].to_list() == ["1.5", "n/a"]


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    lg = ModelLogger(blocker, model="scorer", flush_seconds=60)
    given = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    rid = lg.log(amount=1.0, ts=given)
    lg.log("second", amount=2.0)
    with pytest.raises(LoggerError, match="cannot write 2 row"):
        lg.flush()
    assert lg.pending == 2
    blocker.unlink()
    lg.close()
    assert lg.pending == 0 and lg.rows_written == 2
    df = pl.concat([pl.read_parquet(p) for p in visible_files(blocker)]).sort("amount")
    assert df["request_id"].to_list() == [rid, "second"]  # ids and times kept for the retry
    assert df["ts"][0] == given and df["ts"][1] > given


def test_flushes_by_row_count_and_by_time(tmp_path: Path) -> None:
    flushed = threading.Event()
    lg = ModelLogger(tmp_path, model="scorer", flush_rows=10, flush_seconds=60,
                     on_flush=lambda f: flushed.set())  # fmt: skip
    for i in range(10):
        lg.log(amount=float(i))
    assert flushed.wait(5), "flush_rows did not trigger a flush"
    lg.close()
    flushed.clear()
    lg = ModelLogger(tmp_path, model="scorer", flush_seconds=0.1, on_flush=lambda f: flushed.set())
    lg.log(amount=1.0)
    assert flushed.wait(5), "flush_seconds did not trigger a flush"
    lg.close()
    assert sum(pl.read_parquet(p).height for p in visible_files(tmp_path)) == 11


def test_async_use_never_blocks_and_aflush_writes(tmp_path: Path) -> None:
    async def serve() -> int:
        async with ModelLogger(tmp_path, model="scorer", flush_seconds=60) as lg:
            for i in range(100):
                lg.log(amount=float(i))
                await asyncio.sleep(0)
            done = await lg.aflush()
            lg.log(amount=0.5)
            return sum(f.rows for f in done)

    assert asyncio.run(serve()) == 100
    assert sum(pl.read_parquet(p).height for p in visible_files(tmp_path)) == 101


def test_atexit_flushes_what_a_script_did_not_close(tmp_path: Path) -> None:
    script = "from rulesengine.logger import ModelLogger\n"
    script += f"lg = ModelLogger({str(tmp_path)!r}, model='scorer', flush_seconds=600)\n"
    script += "for i in range(7): lg.log(amount=float(i))\n"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30, cwd=ROOT)
    assert sum(pl.read_parquet(p).height for p in visible_files(tmp_path)) == 7


# ------------------------------------------------------------------ concurrency


def test_threads_log_while_rulesengine_run_reads_in_a_loop(tmp_path: Path) -> None:
    """Eight threads log (flushing about every 50 ms) while
    `rulesengine run` reads the same folder again and again: every run reads only
    whole files (no error result, the schema check passes) and the last count is
    exact."""
    config = write_spec(tmp_path / "config", str(tmp_path / "logs"))
    lg = ModelLogger(tmp_path / "logs", model="scorer", flush_rows=500, flush_seconds=0.05)
    stop = threading.Event()
    counts = [0] * 8

    def worker(k: int) -> None:
        while not stop.is_set():
            lg.log(amount=float(counts[k]), country="DE")
            counts[k] += 1
            if counts[k] % 50 == 0:
                time.sleep(0.005)  # leave the CPU to the runs too (2 cores)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    seen = []
    try:
        for _ in range(2):
            results = run_json(config)
            assert {r["status"] for r in results.values()} <= {"ok", "warn", "no_data"}, results
            assert results["request-schema"]["status"] in ("ok", "no_data"), results
            seen.append(results["volume"]["value"])
    finally:
        stop.set()
        for t in threads:
            t.join()
        lg.close()
    total = sum(counts)
    print(f"{total} rows in {lg.files_written} files; runs saw {seen}")
    assert lg.rows_written == total and lg.files_written > 3
    assert all(v <= total for v in seen) and seen[-1] > 0
    on_disk = sum(pl.read_parquet(p).height for p in visible_files(tmp_path / "logs"))
    assert on_disk == total
    final = run_json(config)
    assert final["volume"]["value"] == total and final["request-schema"]["status"] == "ok"


CHILD = textwrap.dedent(
    """
    import json, sys
    from rulesengine.logger import ModelLogger

    def report(f):
        print(json.dumps({"rows": f.rows, "files": f.files}), flush=True)

    lg = ModelLogger(sys.argv[1], model="scorer", flush_rows=300, flush_seconds=0.02,
                     on_flush=report)
    i = 0
    while True:
        lg.log(amount=float(i), country="DE")
        i += 1
    """
)


def test_sigkill_loses_only_unflushed_rows_and_leaves_readable_files(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    reported: list[dict[str, Any]] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 20
        while len(reported) < 8 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            reported.append(json.loads(line))
    finally:
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    reported += [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(reported) >= 8
    files = {p.as_posix(): pl.read_parquet(p).height for p in visible_files(root)}
    named = {f for r in reported for f in r["files"]}
    assert named <= set(files)
    assert sum(files[f] for f in named) == sum(r["rows"] for r in reported)
    # a flush may have renamed its file just before the kill, without reporting it
    assert len(set(files) - named) <= 1
    config = write_spec(tmp_path / "config", str(root))
    results = run_json(config)
    assert results["volume"]["value"] == sum(files.values())
    assert results["request-schema"]["status"] == "ok"


# ------------------------------------------------------------------ object storage


def test_logging_to_s3_through_moto(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply_env(monkeypatch)
    root = s3_server.url("logger-test")
    with ModelLogger(root, model="scorer", storage_options=s3_server.storage_options) as lg:
        for i in range(250):
            rid = lg.log(amount=float(i), country="DE")
        lg.log_label(rid, defaulted=False)
    listed = s3_server.client.list_objects_v2(Bucket=s3_server.bucket, Prefix="logger-test/")
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert len(keys) == 2 and all("/dt=" in k and k.endswith(".parquet") for k in keys)
    options = {
        "aws_endpoint_url": "${S3_ENDPOINT}",
        "aws_access_key_id": "${S3_KEY_ID}",
        "aws_secret_access_key": "${S3_SECRET}",
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    config = write_spec(tmp_path / "config", root, options)
    results = run_json(config, env=s3_server.env)
    assert results["volume"]["value"] == 250
    assert results["label-volume"]["value"] == 1
    assert results["request-schema"]["status"] == "ok"


def test_a_flush_that_fails_on_one_day_keeps_only_that_days_rows(tmp_path: Path) -> None:
    blocked = tmp_path / "scorer" / "requests" / "dt=2026-11-28"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the day folder should be")
    lg = ModelLogger(tmp_path, model="scorer", flush_seconds=60)
    lg.log("a", amount=1.0, ts=datetime(2026, 11, 27, 23, 0, tzinfo=UTC))
    lg.log("b", amount=2.0, ts=datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    with pytest.raises(LoggerError, match="cannot write 1 row"):
        lg.flush()
    assert lg.pending == 1 and lg.rows_written == 1
    blocked.unlink()
    lg.close()
    df = pl.read_parquet(tmp_path / "scorer" / "requests" / "**" / "*.parquet")
    assert sorted(df["request_id"].to_list()) == ["a", "b"]  # each row once
