"""Timing whole processes, for the benchmarks that compare commands (``checks_peers.py``,
``general_set.py``): standard library only, so the measuring process stays small.

Why it matters: a child's peak resident set (``ru_maxrss`` from ``os.wait4``) starts
from its parent's resident set at the fork, because Linux carries the old memory's
high-water mark across ``exec``. A parent that had imported Polars and generated
data (160 MiB here) made every child report at least that. This module imports
nothing heavy, and the scripts that use it generate their data in a subprocess.
The waiting and retry logic is ``run.py``'s (the drift benchmark), which measures
children far larger than its own process.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

OTHERS: list[float] = []  # cores other processes used, before and during each run
BUSY = 0.25  # cores in use by others above which the figures are inflated
IDLE_WAIT = 0.0  # --wait-idle: seconds to wait for quiet before each measured run
RETRIES = 3  # with --wait-idle, re-runs of a run that other processes disturbed


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def others_busy(interval: float = 1.0) -> float:
    """Cores kept busy by other processes, sampled while none of ours runs."""
    b0, t0 = _cpu_times()
    time.sleep(interval)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)


def wait_idle(limit_s: float) -> None:
    """Wait (at most ``limit_s``) until other processes use less than BUSY cores."""
    deadline = time.monotonic() + limit_s
    while (busy := others_busy(2.0)) >= BUSY and time.monotonic() < deadline:
        log(f"waiting for an idle machine: others use {busy:.2f} cores")
        time.sleep(10)


def measure(
    cmd: list[str], cwd: Path, label: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``cmd`` to completion: wall seconds, peak RSS (MiB), CPU, exit code, output,
    and the cores other processes kept busy before and during it. With ``IDLE_WAIT``,
    wait for a quiet machine first and re-run a run that other work disturbed."""
    for attempt in range(RETRIES + 1):
        if IDLE_WAIT:
            wait_idle(IDLE_WAIT)
        run = _measure_once(cmd, cwd, env)
        before, during = run["others_cores_before"], run["others_cores_during"]
        log(
            f"  {label}: {run['wall_s']:.2f} s, {run['peak_mib']:.0f} MiB peak "
            f"(others busy: {before:.2f} cores before, {during:.2f} during)"
        )
        if not IDLE_WAIT or max(before, during) < BUSY or attempt == RETRIES:
            break
        log(f"  {label}: disturbed by other processes, measuring again")
    OTHERS.extend([before, during])
    return run


def _measure_once(cmd: list[str], cwd: Path, env: dict[str, str] | None) -> dict[str, Any]:
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = others_busy()
        busy0, _ = _cpu_times()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy1, _ = _cpu_times()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    own = usage.ru_utime + usage.ru_stime
    return {
        "wall_s": wall,
        "peak_mib": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "exit": proc.returncode,
        "others_cores_before": before,
        "others_cores_during": max(0.0, (busy1 - busy0) / hz - own) / wall,
        "stdout": stdout,
        "stderr": stderr,
    }


def check(run: dict[str, Any], what: str) -> None:
    if run["exit"] != 0:
        sys.exit(f"{what} failed (exit {run['exit']}):\n{run['stderr'][-3000:]}")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max wall time, the largest and the median peak, every run."""
    walls = [r["wall_s"] for r in runs]
    keys = ("wall_s", "peak_mib", "user_s", "sys_s", "others_cores_before", "others_cores_during")
    return {
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "peak_mib": max(r["peak_mib"] for r in runs),
        "peak_mib_median": statistics.median(r["peak_mib"] for r in runs),
        "runs": [{k: r[k] for k in keys} for r in runs],
    }


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
    """a / b wall time within each round."""
    return [x["wall_s"] / y["wall_s"] for x, y in zip(a, b, strict=True)]


def rulesengine_exe(given: str | None = None) -> str:
    exe = Path(given) if given else Path(sys.executable).parent / "rulesengine"
    if not exe.exists():
        sys.exit("rulesengine is not installed here: run this with the main venv's python")
    return str(exe)


def rulesengine_source(commit: str | None) -> tuple[Path, str]:
    """Where the measured rulesengine is imported from, and what it is: with a
    commit, ``rulesengine/`` and ``schemas/`` as committed there, exported with
    ``git archive`` into ``data/src-SHA/`` (as ``soak.py`` does), so that other
    sessions' uncommitted edits in a shared checkout never reach a measurement;
    with None, the working tree. Byte-compiled either way, as installing a wheel
    does (this environment sets PYTHONDONTWRITEBYTECODE)."""
    import compileall

    if commit is None:
        root, what = REPO, "working tree"
    else:
        git = ["git", "-C", str(REPO)]
        sha = subprocess.run(
            [*git, "rev-parse", "--short", commit], capture_output=True, text=True, check=True
        ).stdout.strip()
        root, what = HERE / "data" / f"src-{sha}", sha
        if not (root / "rulesengine").exists():
            root.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                [*git, "archive", sha, "rulesengine", "schemas"], capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    if not compileall.compile_dir(root / "rulesengine", quiet=1):
        sys.exit(f"compileall failed on {root / 'rulesengine'}")
    return root, what


def rulesengine_env(data: Path, source: Path) -> dict[str, str]:
    """The environment of a measured rulesengine run: its package from ``source``
    (first on the path), its config cache under ``data``."""
    env = dict(os.environ, RULESENGINE_CACHE_DIR=str(data / ".rulesengine" / "cache"))
    env["PYTHONPATH"] = str(source)
    return env


def ensure_data(rows: int) -> Path:
    """``monitoring_data.py``'s data set for ``rows``, generated in a subprocess."""
    out = HERE / "data" / f"monitoring-{rows}"
    if not (out / "manifest.json").exists():
        log(f"generating {rows:,} rows into {out.relative_to(REPO)}")
        script = str(HERE / "monitoring_data.py")
        subprocess.run([sys.executable, script, "--rows", str(rows)], check=True)
    return out


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def machine() -> dict[str, Any]:
    cpu, mem_kb = "", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        pass

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "rulesengine_tree_dirty": bool(git("status", "--porcelain", "--", "rulesengine")),
    }
