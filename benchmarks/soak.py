"""Soak benchmark: the demo config under ``rulesengine daemon`` at a 1 s cadence.

    .venv/bin/python benchmarks/soak.py                # 2,000 daemon ticks (~20 min)
    .venv/bin/python benchmarks/soak.py --ticks 60     # a quick trial

Steps:

1. A copy of ``configs/`` (engine.yaml and models/*.yaml) in ``benchmarks/data/soak/``
   with every model's ``evaluation.every`` set to ``1s``, and the demo's logs
   written there by ``examples/demo.py``'s ``generate`` with ``--at`` = now (9 days,
   the four incidents in the last hour), so the windows hold data from the start.
   The receivers point at a loopback HTTP sink run by this script (``json://``),
   so delivery succeeds and costs what a real webhook costs.
2. ``rulesengine daemon <copy> --log-format json`` as a subprocess, until it has
   logged ``--ticks`` tick lines (one per model and tick, all models together); then
   SIGTERM. With ``--live`` the
   demo's live generator (``examples/demo.py --live --speed 1``) appends to the
   same logs meanwhile.
3. While it runs: the daemon's resident memory (``VmRSS`` in ``/proc/PID/status``)
   every ``--sample`` seconds, and each tick line's ``seconds`` (evaluation and
   recording of one model's tick) and lag (the line's time minus the tick's time).
4. After the daemon stopped, in this process and on the same copy: the
   evaluation alone (:func:`rulesengine.daemon.tick.evaluate_tick`, what
   ``rulesengine run --at TICK`` computes, without its start-up) for a sample of the
   same ticks, so the daemon's overhead per tick is its tick time minus that.

Writes ``benchmarks/results/soak-N.json`` and ``soak-N.md`` (N = ``--ticks``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "data" / "soak"
RESULTS = HERE / "results"
WARMUP_TICKS = 100
# --live: the demo's live generator at the demo's own pace, appending to the copy's logs
LIVE = ("--live", "--speed", "1", "--no-config", "--no-backfill")
# the rulesengine command line, run from the snapshot that PYTHONPATH names
CLI = "import sys; from rulesengine.cli import main; sys.argv[0] = 'rulesengine'; main()"


def snapshot(work: Path) -> Path:
    """``rulesengine/`` and ``schemas/`` as committed at HEAD, exported to ``work/src``: the soak
    measures a commit, not a working tree that others may be editing."""
    src = work / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "HEAD", "rulesengine", "schemas"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    (work / "commit").write_text(_commit())
    return src


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """A loopback HTTP server that answers 200 to every POST and counts them."""

    def __init__(self) -> None:
        self.count = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def prepare(work: Path, at: datetime) -> None:
    """The demo config at a 1 s cadence, and its logs ending at ``at``, in ``work``."""
    sys.path.insert(0, str(ROOT))
    from examples.demo import generate

    if work.exists():
        shutil.rmtree(work)
    (work / "models").mkdir(parents=True)
    # a text edit: every `every:` line of the demo config (evaluation and defaults)
    every = re.compile(r"(?m)^(\s+every:\s*)\S+")
    for rel in [
        "engine.yaml",
        *(f"models/{p.name}" for p in (ROOT / "configs" / "models").glob("*.yaml")),
    ]:
        text, n = every.subn(r"\g<1>1s", (ROOT / "configs" / rel).read_text())
        if n != 1:
            raise SystemExit(f"configs/{rel}: expected one `every:` line, found {n}")
        (work / rel).write_text(text)
    generate(work / "data", at=at)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, all its threads (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Watch:
    """Reads the daemon's JSON log lines and samples its RSS."""

    def __init__(self, proc: subprocess.Popen[str], log_path: Path, sample: float) -> None:
        self.proc = proc
        self.ticks: list[dict[str, Any]] = []
        self.other: dict[str, int] = {}
        # (elapsed s, tick lines so far, RSS KiB, CPU s)
        self.rss: list[tuple[float, int, int, float]] = []
        self.per_model: dict[str, int] = {}
        self.started = time.monotonic()
        self._log = log_path.open("w")
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, args=(sample,), daemon=True).start()

    def count(self) -> int:
        with self._lock:
            return len(self.ticks)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._log.write(line)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if rec.get("msg") == "tick":
                    self.ticks.append(rec)
                    self.per_model[rec["model"]] = self.per_model.get(rec["model"], 0) + 1
                else:
                    self.other[rec.get("msg", "?")] = self.other.get(rec.get("msg", "?"), 0) + 1
        self._log.close()

    def _sample(self, every: float) -> None:
        while self.proc.poll() is None:
            self.sample_now()
            time.sleep(every)

    def sample_now(self) -> None:
        kib, cpu = rss_kib(self.proc.pid), cpu_seconds(self.proc.pid)
        if kib is not None and cpu is not None:
            with self._lock:
                self.rss.append((time.monotonic() - self.started, len(self.ticks), kib, cpu))


def run_daemon(work: Path, src: Path, ticks: int, sample: float, live: bool) -> Watch:
    """Run the daemon until it logged ``ticks`` tick lines (all models), then SIGTERM it."""
    sink = Sink()
    url = f"json://127.0.0.1:{sink.port}"
    env = os.environ | {
        "ML_TEAM_WEBHOOK": f"{url}/alerts",
        "RETRAIN_HOOK": f"{url}/retrain",
        "ONCALL_EMAIL_URL": f"{url}/oncall",
        "RULESENGINE_CACHE_DIR": str(work / ".rulesengine" / "cache"),
    }
    env["PYTHONPATH"] = str(src)
    listen = f"127.0.0.1:{free_port()}"  # not 9108, which a demo daemon may hold
    cmd = [sys.executable, "-c", CLI, "daemon", str(work), "--log-format", "json"]
    cmd += ["--listen", listen]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, cwd=work)
    gen = None
    if live:
        gen = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "demo.py"), str(work / "data"), *LIVE],
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
    watch = Watch(proc, work / "daemon.log", sample)
    try:
        shown = 0
        while watch.count() < ticks and proc.poll() is None:
            time.sleep(1)
            if watch.count() // 100 > shown:
                shown = watch.count() // 100
                print(f"  {watch.count()} ticks", file=sys.stderr, flush=True)
    finally:
        watch.sample_now()  # the end figures, just before the stop
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        if gen is not None:
            gen.send_signal(signal.SIGTERM)
            gen.wait(30)
        time.sleep(0.2)
        watch.sink_count = sink.count  # type: ignore[attr-defined]
        sink.close()
    if proc.returncode != 0:
        raise SystemExit(f"the daemon exited {proc.returncode}; see {work / 'daemon.log'}")
    return watch


def eval_only(
    work: Path, ticks: list[dict[str, Any]], per_model: int
) -> dict[str, dict[str, list[float]]]:
    """For ``per_model`` ticks per model, spread over the ticks the daemon evaluated
    (one untimed warm-up call first): the wall and CPU seconds of
    :func:`evaluate_tick` alone (what ``run --at TICK`` computes, without start-up),
    and the wall seconds of :func:`record_tick` into a scratch store."""
    os.environ["RULESENGINE_CACHE_DIR"] = str(work / ".rulesengine" / "cache")
    from rulesengine.alerting.store import Store
    from rulesengine.daemon.tick import evaluate_tick, record_tick
    from rulesengine.spec.loader import load

    config = load([work])
    out: dict[str, dict[str, list[float]]] = {}
    scratch = work / ".rulesengine" / "scratch.db"
    scratch.unlink(missing_ok=True)
    with Store(scratch) as store:
        for model in config.models:
            mine = [datetime.fromisoformat(t["tick"]) for t in ticks if t["model"] == model.model]
            sample = mine[:: max(1, len(mine) // per_model)][:per_model]
            evaluate_tick(config, model, sample[0])
            times: dict[str, list[float]] = {"wall": [], "cpu": [], "record": []}
            for tick in sample:
                wall, cpu = time.monotonic(), time.process_time()
                results = evaluate_tick(config, model, tick)
                times["wall"].append(time.monotonic() - wall)
                times["cpu"].append(time.process_time() - cpu)
                wall = time.monotonic()
                record_tick(store, config, model, tick, results, datetime.now(UTC))
                times["record"].append(time.monotonic() - wall)
            out[model.model] = times
    return out


def _per_model(ticks: list[dict[str, Any]], evals: dict[str, dict[str, list[float]]]) -> dict:
    out: dict[str, Any] = {}
    for name, e in sorted(evals.items()):
        mine = [t["seconds"] for t in ticks if t["model"] == name]
        out[name] = {
            "ticks": len(mine),
            "tick_p50_s": _quantile(mine, 0.5),
            "tick_p99_s": _quantile(mine, 0.99),
            "eval_only_p50_s": _quantile(e["wall"], 0.5),
            "eval_only_cpu_mean_s": statistics.fmean(e["cpu"]),
            "record_p50_s": _quantile(e["record"], 0.5),
            "samples": len(e["wall"]),
            "tick_minus_eval_p50_s": _quantile(mine, 0.5) - _quantile(e["wall"], 0.5),
        }
    return out


def summarize(watch: Watch, evals: dict[str, dict[str, list[float]]], args: Any) -> dict:
    ticks = watch.ticks
    secs = [t["seconds"] for t in ticks]
    lag = [
        (datetime.fromisoformat(t["ts"]) - datetime.fromisoformat(t["tick"])).total_seconds()
        for t in ticks
    ]
    warm = next((s for s in watch.rss if s[1] >= WARMUP_TICKS), watch.rss[0])
    end = watch.rss[-1]
    models = _per_model(ticks, evals)
    n = sum(m["ticks"] for m in models.values())
    # CPU per tick after warm-up: the daemon's (all threads), and the evaluation's
    # alone for the same mix of models
    daemon_cpu = (end[3] - warm[3]) / max(1, end[1] - warm[1])
    eval_cpu = sum(m["eval_only_cpu_mean_s"] * m["ticks"] for m in models.values()) / n
    return {
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": (WORK / "commit").read_text(),  # the snapshot's
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "ticks_target": args.ticks,
        "live_generator": args.live,
        "wall_s": round(end[0], 1),
        "tick_lines": len(ticks),
        "other_lines": watch.other,
        "notifications_received": getattr(watch, "sink_count", 0),
        "tick_p50_s": _quantile(secs, 0.5),
        "tick_p99_s": _quantile(secs, 0.99),
        "tick_max_s": max(secs),
        "lag_p50_s": _quantile(lag, 0.5),
        "lag_p99_s": _quantile(lag, 0.99),
        "rss_warm_kib": warm[2],
        "rss_warm_at_tick": warm[1],
        "rss_end_kib": end[2],
        "rss_end_at_tick": end[1],
        "rss_max_kib": max(s[2] for s in watch.rss),
        "rss_min_after_warm_kib": min(s[2] for s in watch.rss if s[1] >= warm[1]),
        "rss_growth": (end[2] - warm[2]) / warm[2],
        "cpu_per_tick_daemon_s": daemon_cpu,
        "cpu_per_tick_eval_only_s": eval_cpu,
        "cpu_overhead_per_tick_s": daemon_cpu - eval_cpu,
        "record_p50_s": _quantile([x for e in evals.values() for x in e["record"]], 0.5),
        "models": models,
        "rss_samples": watch.rss,
    }


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return "?"


def _fifths(samples: list[list[float]], warm: int, end: int) -> tuple[float, float]:
    """Mean RSS (MiB) of the samples in the first and the last fifth of the tick lines
    between warm-up and the end: RSS swings with the evaluations in flight, so
    single samples are noisy."""
    cut = (end - warm) / 5
    first = [x[2] / 1024 for x in samples if warm <= x[1] <= warm + cut]
    last = [x[2] / 1024 for x in samples if end - cut <= x[1] <= end]
    return statistics.fmean(first), statistics.fmean(last)


def render(s: dict[str, Any]) -> str:
    mib = lambda k: s[k] / 1024  # noqa: E731
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    first, last = _fifths(s["rss_samples"], s["rss_warm_at_tick"], s["rss_end_at_tick"])
    lines = [
        f"# Soak: {s['ticks_target']} daemon ticks at a 1 s cadence",
        "",
        f"Finished {s['finished']}; rulesengine at commit `{s['commit']}` ({s['machine']}); "
        f"{s['tick_lines']} tick lines in {s['wall_s']} s; live generator: "
        f"{'yes' if s['live_generator'] else 'no'}; notifications received: "
        f"{s['notifications_received']}; other log lines: {s['other_lines']}.",
        "",
        "| Figure | Value |",
        "|---|---:|",
        f"| RSS after warm-up (tick line {s['rss_warm_at_tick']}) "
        f"| {mib('rss_warm_kib'):.1f} MiB |",
        f"| RSS at the end (tick line {s['rss_end_at_tick']}) | {mib('rss_end_kib'):.1f} MiB |",
        f"| RSS growth after warm-up | {s['rss_growth']:+.1%} |",
        f"| RSS mean, first / last fifth of the ticks after warm-up | {first:.1f} / "
        f"{last:.1f} MiB ({last / first - 1:+.1%}) |",
        f"| RSS min / max after warm-up | {mib('rss_min_after_warm_kib'):.1f} / "
        f"{mib('rss_max_kib'):.1f} MiB |",
        f"| Tick latency p50 / p99 / max (all models) | {ms(s['tick_p50_s'])} / "
        f"{ms(s['tick_p99_s'])} / {ms(s['tick_max_s'])} |",
        f"| Lag (log line - tick time) p50 / p99 | {ms(s['lag_p50_s'])} / {ms(s['lag_p99_s'])} |",
        f"| CPU per tick: daemon / evaluation alone / overhead | {ms(s['cpu_per_tick_daemon_s'])} "
        f"/ {ms(s['cpu_per_tick_eval_only_s'])} / {ms(s['cpu_overhead_per_tick_s'])} "
        f"({s['cpu_overhead_per_tick_s'] / s['cpu_per_tick_eval_only_s']:+.1%}) |",
        f"| Recording a tick (record_tick), p50 | {ms(s['record_p50_s'])} |",
        "",
        "| Model | Ticks | Tick p50 | Tick p99 | Evaluation alone p50 | Evaluation CPU mean "
        "| record_tick p50 | Tick - evaluation p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in s["models"].items():
        lines.append(
            f"| {name} | {m['ticks']} | {ms(m['tick_p50_s'])} | {ms(m['tick_p99_s'])} "
            f"| {ms(m['eval_only_p50_s'])} | {ms(m['eval_only_cpu_mean_s'])} "
            f"| {ms(m['record_p50_s'])} | {ms(m['tick_minus_eval_p50_s'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/soak.py", description=__doc__)
    parser.add_argument(
        "--ticks", type=int, default=2000, help="tick lines to run, all models together (2000)"
    )
    parser.add_argument("--sample", type=float, default=2.0, help="RSS sampling period, s")
    parser.add_argument("--eval-samples", type=int, default=100, help="ticks per model")
    parser.add_argument("--live", action="store_true", help="run the live generator too")
    parser.add_argument("--eval-only", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite soak-N.md from soak-N.json"
    )
    args = parser.parse_args(argv)
    if args.render_only:
        base = RESULTS / f"soak-{args.ticks}"
        if not base.with_suffix(".json").is_file():
            parser.error(f"no {base.with_suffix('.json')}; run the soak first")
        md = render(json.loads(base.with_suffix(".json").read_text()))
        base.with_suffix(".md").write_text(md)
        print(md)
        return 0
    if args.eval_only:  # step 4, in a child whose PYTHONPATH is the snapshot
        ticks = json.loads((WORK / "ticks.json").read_text())
        evals = eval_only(WORK, ticks, args.eval_only)
        (WORK / "evals.json").write_text(json.dumps(evals))
        return 0
    if args.ticks < 2:
        parser.error("--ticks must be at least 2")
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    print(f"preparing {WORK} (logs ending at {at:%H:%M:%S}Z)", file=sys.stderr, flush=True)
    prepare(WORK, at)
    print("running the daemon", file=sys.stderr, flush=True)
    src = snapshot(WORK)
    watch = run_daemon(WORK, src, args.ticks, args.sample, args.live)
    print("timing the evaluation alone", file=sys.stderr, flush=True)
    (WORK / "ticks.json").write_text(json.dumps(watch.ticks))
    subprocess.run(
        [sys.executable, __file__, "--eval-only", str(args.eval_samples)],
        env=os.environ | {"PYTHONPATH": str(src)},
        check=True,
    )
    evals = json.loads((WORK / "evals.json").read_text())
    summary = summarize(watch, evals, args)
    RESULTS.mkdir(exist_ok=True)
    base = RESULTS / f"soak-{args.ticks}"
    base.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    md = render(summary)
    base.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
