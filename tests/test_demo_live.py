"""The demo generator's live mode (``examples/demo.py --live``) and the walkthrough
it serves: receiver, live generator and ``rulesengine daemon`` as real subprocesses.

Expected schedules and scaled durations are computed by hand here; file contents
are read back with plain Polars, as the engine's globs would find them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from examples.demo import LIVE_KINDS, _Live, live_schedule, scale_durations, write_live_config
from tests.conftest import run_cli
from tests.delivery.conftest import HttpReceiver, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo.py"
RECEIVER = ROOT / "examples" / "receiver.py"
S = 1_000_000  # µs per second
DAEMON = (sys.executable, "-m", "rulesengine.cli", "daemon")
# the walkthrough, faster: durations / 300 (the fraud model ticks every 3 s, its window
# is 12 s), one null burst 25 s after the start, for 20 s
FAST = ("--speed", "300", "--incident-every", "25", "--incident-length", "20")
FAST += ("--incidents", "null-burst")

# the sources' globs of configs/models/*.yaml, under the live folder's data/
GLOBS = {
    "data/fraud/requests/**/*.parquet": pl.read_parquet,
    "data/fraud/labels/*.ndjson": pl.read_ndjson,
    "data/demand/forecasts/*.csv": pl.read_csv,
    "data/demand/actuals/*.csv": pl.read_csv,
    "data/assistant/requests/*.ndjson": pl.read_ndjson,
    "data/assistant/feedback/*.ndjson": pl.read_ndjson,
}


def iso_us(text: str) -> int:
    t = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# --- pure parts, against hand-computed tables -------------------------------------
def test_scale_durations_divides_every_duration():
    text = "every: 15m\nwindow: 1h\noffset: 7d\ndelay: 2d\nabove: 30m\nfor: 2\ntier: '1'\nv4 p95"
    assert scale_durations(text, 60) == (
        "every: 15s\nwindow: 1m\noffset: 168m\ndelay: 48m\nabove: 30s\nfor: 2\ntier: '1'\nv4 p95"
    )
    assert scale_durations("window: 6h, 1d", 300) == "window: 72s, 288s"
    with pytest.raises(ValueError, match=r"5m / 180 is not a whole number of seconds"):
        scale_durations("every: 5m", 180)
    with pytest.raises(ValueError, match="30s / 60"):
        scale_durations("wait: 30s", 60)


def test_schedule_cycles_the_kinds():
    kinds = ("null-burst", "schema-change", "latency-spike")
    got = live_schedule(1000 * S, 60, 40, kinds, 1000 * S + 250 * S)
    assert [(i.kind, i.start_us // S, i.end_us // S) for i in got] == [
        ("null-burst", 1060, 1100),
        ("schema-change", 1120, 1160),
        ("latency-spike", 1180, 1220),
        ("null-burst", 1240, 1280),
    ]
    # only the incidents starting in (since, until]
    later = live_schedule(1000 * S, 60, 40, kinds, 1240 * S, since_us=1120 * S)
    assert [(i.kind, i.start_us // S) for i in later] == [
        ("latency-spike", 1180),
        ("null-burst", 1240),
    ]
    assert live_schedule(0, 60, 40, (), 10_000 * S) == []


def test_the_live_config_validates_and_keeps_row_counts_per_window(tmp_path: Path):
    files = write_live_config(tmp_path, 60)
    assert sorted(p.name for p in files) == [
        "demand-forecast.yaml",
        "engine.yaml",
        "fraud-detector.yaml",
        "support-assistant.yaml",
    ]
    result = run_cli("validate", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    fraud = (tmp_path / "models" / "fraud-detector.yaml").read_text()
    assert "every: 15s" in fraud and "window: 1m" in fraud and "delay: 48m" in fraud
    engine = (tmp_path / "engine.yaml").read_text()
    assert "every: 15s" in engine and "json://127.0.0.1:8765/alerts" in engine


def test_live_batches_are_deterministic(tmp_path: Path):
    t0 = 1_800_000_000 * S
    for name in ("a", "b"):
        state = _Live(tmp_path / name, 7, 60, (t0, 10 * S, 5 * S, LIVE_KINDS))
        for i in range(1, 4):
            rng = np.random.default_rng([7, 100, i])
            state.batch(rng, t0 + (i - 1) * 5 * S, t0 + i * 5 * S, f"{i}")
    a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert a == b and len(a) >= 6
    for rel in a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_receiver_prints_one_line_per_notification(procs):
    port = free_port()
    receiver = start(procs, [sys.executable, str(RECEIVER), "--port", str(port)])
    wait_until(lambda: receiver.matching("listening"), 10, "the receiver")
    message = (
        "[FIRING] m / nulls (check null_rate, warn)\nsegment: (all)\nvalue: 0.02\n\n"
        "[RESOLVED] m / nulls (check null_rate, warn)\nsegment: model_version=v4\nvalue: 0"
    )
    for body in (json.dumps({"title": "[warn] m / nulls", "message": message}), "plain\ntext"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/alerts", body.encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    wait_until(lambda: len(receiver.matching(" /alerts ")) == 2, 10, "two lines")
    first, second = (line.split(" ", 1)[1] for line in receiver.matching(" /alerts "))
    assert first == (
        "/alerts [warn] m / nulls | [FIRING] m / nulls (check null_rate, warn) "
        "| (all) firing, model_version=v4 resolved"
    )
    assert second == "/alerts  | plain"
    receiver.proc.send_signal(signal.SIGTERM)
    assert receiver.proc.wait(10) == 0
    busy = HttpReceiver(free_port())  # a port in use: one line, exit 1
    try:
        taken = start(procs, [sys.executable, str(RECEIVER), "--port", str(busy.port)])
        assert taken.proc.wait(10) == 1
    finally:
        busy.close()
    wait_until(lambda: taken.lines, 5, "the error line")
    assert taken.lines == [f"error: cannot listen on 127.0.0.1:{busy.port}: Address already in use"]


# --- the generator as a subprocess ------------------------------------------------
class Lines:
    """A subprocess's stdout lines, read by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines = proc, []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def matching(self, word: str) -> list[str]:
        with self._lock:
            return [line for line in self.lines if word in line]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def start(procs: list, cmd: list[str], env: dict[str, str] | None = None) -> Lines:
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    procs.append(proc)
    return Lines(proc)


def batch_lines(gen: Lines) -> list[str]:
    return [line for line in gen.matching(" batch ") if " start: " not in line]


def read_all(root: Path) -> dict[str, pl.DataFrame]:
    """Every file the sources' globs match, read whole (raises on a partial file)."""
    out = {}
    for pattern, reader in GLOBS.items():
        frames = [reader(p) for p in sorted(root.glob(pattern))]
        out[pattern] = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return out


@pytest.mark.timeout(60)
def test_live_appends_whole_files_with_incidents_on_schedule(tmp_path, procs):
    cmd = [sys.executable, str(DEMO), str(tmp_path), "--live", "--interval", "1"]
    cmd += ["--speed", "600", "--no-config", "--no-backfill", "--incident-every", "4"]
    cmd += ["--incident-length", "3", "--incidents", "null-burst,schema-change"]
    gen = start(procs, cmd)
    wait_until(lambda: len(batch_lines(gen)) >= 1, 30, "the first batch")
    reads = 0
    while len(batch_lines(gen)) < 10:  # read everything while files arrive
        read_all(tmp_path)
        reads += 1
        assert gen.proc.poll() is None, gen.lines
    gen.proc.send_signal(signal.SIGTERM)
    assert gen.proc.wait(15) == 0
    wait_until(lambda: gen.matching("stopped after"), 5, "the stop line")
    assert reads >= 3
    assert not [p for p in tmp_path.rglob("*.tmp")], "temporary files left behind"

    t0 = iso_us(gen.matching(" start: ")[0].split()[0])
    starts = [line.split() for line in gen.matching("incident start")]
    assert len(starts) >= 2
    # incident k starts at t0 + (k + 1) * 4 s; null-burst, schema-change, null-burst, ...
    assert [(iso_us(w[0]) - t0) // S for w in starts] == [4 * (k + 1) for k in range(len(starts))]
    kinds = ["null-burst", "schema-change"]
    assert [w[3].rstrip(":") for w in starts] == [kinds[k % 2] for k in range(len(starts))]
    ends = [iso_us(line.split()[0]) - t0 for line in gen.matching("incident end")]
    assert ends == [(4 * (k + 1) + 3) * S for k in range(len(ends))]
    batches = [iso_us(line.split()[0]) - t0 for line in batch_lines(gen)]
    assert batches == [(i + 1) * S for i in range(len(batches))]

    data = read_all(tmp_path)
    req = data["data/fraud/requests/**/*.parquet"].with_columns(
        us=pl.col("ts").dt.epoch("us"), null=pl.col("amount").is_null()
    )
    burst = req.filter((pl.col("us") >= t0 + 4 * S) & (pl.col("us") < t0 + 7 * S))
    calm = req.filter(pl.col("us") < t0 + 4 * S)
    assert burst.height > 300 and calm.height > 300  # 1600/h at 600x: 267 rows/s
    assert 0.05 < burst["null"].mean() < 0.17  # 10% of the rows
    assert calm["null"].mean() < 0.01
    # the schema change: request files of [t0+8, t0+11) have latency_s, not latency_ms
    asst = data["data/assistant/requests/*.ndjson"]
    renamed = asst.filter(pl.col("latency_s").is_not_null())["ts"] * 1000
    assert renamed.len() > 0
    assert renamed.min() >= t0 + 8 * S and renamed.max() < t0 + 11 * S
    # delayed labels: each one is for an earlier request (10 min at 600x: 1 s or more)
    labels = data["data/fraud/labels/*.ndjson"]
    assert labels.height > 0
    joined = labels.join(req.select("request_id", "us"), on="request_id", how="left")
    assert joined["us"].null_count() == 0
    lag = joined["labeled_at"].str.to_datetime(time_zone="UTC").dt.epoch("us") - joined["us"]
    assert lag.min() >= 0  # never before its request (label times are whole seconds)


NULLS = "fraud-detector / amount-nulls"


@pytest.mark.timeout(150)  # the waits below add up to 30 + 45 + 20 + 25 s at worst
def test_walkthrough_alert_arrives_once(tmp_path, procs):
    """Receiver, live generator and daemon, as the README's walkthrough runs them
    (faster): a null burst's alert reaches the webhook, and every notification the
    daemon says it sent was received exactly once."""
    hook = HttpReceiver(free_port())
    try:
        side = free_port()
        receiver = start(procs, [sys.executable, str(RECEIVER), "--port", str(side)])
        wait_until(lambda: receiver.matching("listening"), 10, "the receiver")
        gen = start(
            procs,
            [sys.executable, str(DEMO), str(tmp_path), "--live", "--interval", "1", *FAST],
        )
        wait_until(lambda: gen.matching("backfill"), 30, "the backfill")
        env = {
            "ML_TEAM_WEBHOOK": f"json://127.0.0.1:{hook.port}/alerts",
            "ONCALL_WEBHOOK": f"json://127.0.0.1:{hook.port}/oncall",
            "RETRAIN_HOOK": f"json://127.0.0.1:{side}/retrain",
        }
        daemon = start(
            procs,
            [
                *DAEMON,
                str(tmp_path),
                "--log-format",
                "json",
                "--listen",
                f"127.0.0.1:{free_port()}",
            ],
            env,
        )
        # the null burst's alert (waiting for it, not for any, names what came instead)
        wait_until(
            lambda: any(NULLS in r.payload["title"] for r in hook.at("/alerts")),
            45,
            "the null burst's alert",
        )
        time.sleep(2)  # anything sent twice would arrive now
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(20) == 0, daemon.lines
        gen.proc.send_signal(signal.SIGTERM)
        receiver.proc.send_signal(signal.SIGTERM)
        assert gen.proc.wait(15) == 0 and receiver.proc.wait(10) == 0
    finally:
        hook.close()
    bodies = [r.payload for r in hook.at("/alerts")]
    # the first notification is the null burst's, firing: nothing else alerts
    # outside the incidents (demand-forecast's forecasts once did, when the
    # generator wrote rows after their time: tests/test_demo_live_seam.py)
    assert NULLS in bodies[0]["title"] and "FIRING" in bodies[0]["message"], bodies
    for path in ("/alerts", "/oncall"):  # each body names its alerts' values and windows
        keys = [(r.payload["title"], r.payload["message"]) for r in hook.at(path)]
        assert len(keys) == len(set(keys)), f"a notification arrived twice at {path}"
    retrain = [line for line in receiver.lines if " /retrain " in line]
    logs = [json.loads(line) for line in daemon.lines if line.startswith("{")]
    sent = sum(rec.get("sent", 0) for rec in logs if rec["msg"] == "delivery")
    assert sent == len(hook.requests) + len(retrain)  # each one received exactly once
    assert not [rec for rec in logs if rec["msg"] == "tick failed"]
