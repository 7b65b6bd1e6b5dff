"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def pytest_configure(config: pytest.Config) -> None:
    """The cache of valid configs lives in a fresh folder per test run (inherited
    by every subprocess), never in the user's ~/.cache."""
    import tempfile

    if "RULESENGINE_CACHE_DIR" not in os.environ:
        os.environ["RULESENGINE_CACHE_DIR"] = tempfile.mkdtemp(prefix="rulesengine-cache-")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``rulesengine`` command line in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rulesengine.cli", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_on_tty(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, bytes, str]:
    """Run the real command line with stderr on a pseudo-terminal (as in a shell):
    (exit code, stdout, what the terminal showed)."""
    import pty
    import threading

    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rulesengine.cli", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child_fd,
        env={**os.environ, **(env or {}), "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(child_fd)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(main_fd, 4096)
            except OSError:  # EIO once the child side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=timeout)
    reader.join(10)
    os.close(main_fd)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def start_server(
    argv: list[str], log: Path, url: str, timeout: float, ok: tuple[int, ...] = (200,)
) -> subprocess.Popen[bytes]:
    """Start a server the tests need (output to ``log``) and wait until ``url``
    answers with a status in ``ok`` (no proxy); RuntimeError with the log's tail
    when it exits or does not answer within ``timeout`` seconds (then stopped)."""
    import time
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{Path(argv[0]).name} exited with {proc.returncode}: {said}")
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status in ok:
                    return proc
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return proc
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError(f"{Path(argv[0]).name} at {url} does not answer: {last}")


def stop_process(proc: subprocess.Popen[bytes], wait: float = 10) -> None:
    """Terminate a server the tests started, then kill it if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def need_tool(tool: str, package: str, required_in_ci: bool = True) -> str:
    """The path of a system program the tests need; else skip naming its package
    (``package`` says which), or fail under ``CI=true`` when the README's test
    command installs it there (``required_in_ci``)."""
    import shutil

    path = shutil.which(tool)
    if path:
        return path
    message = f"{package}: `{tool}` is not on PATH"
    if required_in_ci and os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def write(tmp_path: Path):
    """write("models/x.yaml", text) → path, creating folders under tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
