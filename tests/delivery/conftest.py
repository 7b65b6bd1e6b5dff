"""Real receivers on loopback for the delivery tests.

* ``http_receiver(port)``: a threaded HTTP server that records every POST (path,
  headers, raw body, and the body decoded as JSON or as a form) and answers 200.
* ``hanging_receiver(port)``: accepts connections, reads what is sent and never
  answers, so a sender is stuck until its own timeout (or until it is killed).
* ``trickling_receiver(port)``: starts a response and never finishes it, one
  header line at a time, so no per-read socket timeout ever fires.
* ``smtp_receiver(port, password=...)``: an aiosmtpd ``Controller`` that records
  each message, optionally with AUTH (LOGIN/PLAIN, allowed without TLS).
* ``scenario``: log data, a model and an ``engine.yaml`` in ``tmp_path``, and the
  real ``rulesengine`` command line run as a subprocess against them
  (``Scenario.run`` waits for it; ``Scenario.start_run`` gives a ``LiveRun`` whose
  stderr lines carry the time they arrived, to be killed by ``live_runs``).

Every server binds 127.0.0.1 only and is stopped at teardown.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import polars as pl
import pytest
import yaml

from tests.conftest import run_cli

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


# ------------------------------------------------------------------ HTTP


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        """The body as Apprise sent it: JSON (json://) or a urlencoded form (form://)."""
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            return json.loads(self.body)
        if "x-www-form-urlencoded" in ctype:
            return {
                k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()
            }
        raise AssertionError(f"unexpected Content-Type {ctype!r}")


class HttpReceiver:
    """Records POSTs and answers 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def at(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, n: int, path: str | None = None, timeout: float = 10) -> list[Request]:
        def enough() -> bool:
            with self._lock:
                return len([r for r in self.requests if path is None or r.path == path]) >= n

        wait_until(enough, timeout, f"{n} request(s) at {path or 'any path'} on port {self.port}")
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class HangingReceiver:
    """Accepts connections and reads requests but never answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_server((HOST, port))  # SO_REUSEADDR on POSIX
        self.sock.settimeout(0.1)
        self.received: list[bytearray] = []
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            buf = bytearray()
            with self._lock:
                self.connections.append(conn)
                self.received.append(buf)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                buf.extend(chunk)

    def complete_requests(self) -> int:
        """Requests received whole (headers and the Content-Length body)."""
        n = 0
        with self._lock:
            for buf in self.received:
                head, sep, body = bytes(buf).partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if len(body) >= length:
                    n += 1
        return n

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(5)
        with self._lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


class TricklingReceiver(HangingReceiver):
    """Reads a request, then starts a response and sends one more header line
    every ``every`` seconds, never finishing it: a per-read socket timeout never
    fires, so only a bound on the whole call ends the sender's wait."""

    def __init__(self, port: int, every: float = 0.5) -> None:
        self.every = every
        super().__init__(port)

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        conn.settimeout(0.2)
        started = False
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                with self._lock:
                    buf.extend(chunk)
            except TimeoutError:
                pass
            except OSError:
                return
            if not started and b"\r\n\r\n" in buf:
                started = True
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
            if started:
                try:
                    conn.sendall(b"X-Still-Thinking: yes\r\n")
                except OSError:
                    return
                time.sleep(self.every)


# ------------------------------------------------------------------ SMTP


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain", "html"))
        assert part is not None, self.message
        return part.get_content()


@dataclass
class SmtpReceiver:
    port: int
    password: str | None = None
    mails: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def wait_for(self, n: int, timeout: float = 10) -> list[Mail]:
        wait_until(lambda: len(self.mails) >= n, timeout, f"{n} mail(s) on port {self.port}")
        return list(self.mails)


@pytest.fixture
def http_receiver() -> Iterator[Callable[[int], HttpReceiver]]:
    started: list[HttpReceiver] = []

    def start(port: int) -> HttpReceiver:
        r = HttpReceiver(port)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


@pytest.fixture
def hanging_receiver() -> Iterator[Callable[[int], HangingReceiver]]:
    started: list[HangingReceiver] = []

    def start(port: int) -> HangingReceiver:
        r = HangingReceiver(port)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


@pytest.fixture
def trickling_receiver() -> Iterator[Callable[[int], TricklingReceiver]]:
    started: list[TricklingReceiver] = []

    def start(port: int) -> TricklingReceiver:
        r = TricklingReceiver(port)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


@pytest.fixture
def smtp_receiver() -> Iterator[Callable[..., SmtpReceiver]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    controllers: list[Any] = []

    def start(port: int, password: str | None = None) -> SmtpReceiver:
        rec = SmtpReceiver(port, password)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                rec.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
                return "250 Message accepted for delivery"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            login, pw = data.login.decode(), data.password.decode()
            rec.logins.append((login, pw))
            return AuthResult(success=pw == password)

        kwargs: dict[str, Any] = {}
        if password is not None:
            kwargs = {"authenticator": authenticator, "auth_require_tls": False}
        controller = Controller(Handler(), hostname=HOST, port=port, ready_timeout=10, **kwargs)
        controller.start()
        controllers.append(controller)
        return rec

    yield start
    for c in controllers:
        c.stop()


# ------------------------------------------------------------------ the scenario

MODEL = "fraud-detector"
NULLS_RUNBOOK = "https://wiki.example.com/runbooks/fraud-nulls"
DRIFT_RUNBOOK = "https://wiki.example.com/runbooks/fraud-drift"
COUNTRIES = ("US", "DE", "FR")


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _block(start: datetime, hours: int, bad: bool) -> list[dict[str, Any]]:
    """One row every 30 s from ``start``, model versions alternating. Bad rows:
    half of v2's amounts are null (v2 null rate 0.5, overall 0.25), the score is
    shifted to [0.7, 1) and every country is BR."""
    rows = []
    for i in range(hours * 120):
        version = "v2" if i % 2 else "v1"
        rows.append(
            {
                "ts": start + timedelta(seconds=30 * i + 15),
                "model_version": version,
                "amount": None if bad and i % 4 == 1 else float(10 + (i * 7) % 90),
                "score": (i * 0.618) % 1.0 * 0.3 + (0.7 if bad else 0.0),
                "country": "BR" if bad else COUNTRIES[i % 3],
            }
        )
    return rows


class Scenario:
    """Logs where monitors fire at ``at1`` (window (at1-1h, at1]) and stay firing
    until ``at1 + 1h``, then recover: ``at2 = at1 + 2h`` sees clean data.

    ``at1`` defaults to four whole hours before now, so every notification is
    queued well inside the delivery deadline (24 h) whatever day the tests run.
    """

    def __init__(self, root: Path, at1: datetime | None = None) -> None:
        self.root = root
        self.at1 = at1 or hour_floor(datetime.now(UTC)) - timedelta(hours=4)
        self.at2 = self.at1 + timedelta(hours=2)
        self.env: dict[str, str] = {}
        self._write_data()
        self._write_model()

    def _write_data(self) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        rows = _block(self.at1 - timedelta(hours=1), 2, bad=True)
        rows += _block(self.at1 + timedelta(hours=1), 2, bad=False)
        schema = {
            "ts": pl.Datetime("us", "UTC"),
            "model_version": pl.String,
            "amount": pl.Float64,
            "score": pl.Float64,
            "country": pl.String,
        }
        pl.DataFrame(rows, schema=schema).write_parquet(data / "requests.parquet")
        training = pl.DataFrame(
            {
                "score": [(i * 0.618) % 1.0 * 0.3 for i in range(600)],
                "country": [COUNTRIES[i % 3] for i in range(600)],
            }
        )
        training.write_ndjson(data / "training.ndjson")

    def _write_model(self) -> None:
        model = {
            "version": 1,
            "model": MODEL,
            "labels": {"team": "risk"},
            "sources": {
                "requests": {"path": "data/requests.parquet", "timestamp": "ts"},
                "training": {"path": "data/training.ndjson"},
            },
            "evaluation": {"every": "15m", "window": "1h", "min_rows": 10},
            "checks": [
                {
                    "name": "amount-nulls",
                    "source": "requests",
                    "type": "null_rate",
                    "column": "amount",
                    "segment_by": ["model_version"],
                    "warn": {"above": 0.01},
                    "critical": {"above": 0.05},
                    "runbook": NULLS_RUNBOOK,
                }
            ],
            "drift": [
                {
                    "name": "features",
                    "source": "requests",
                    "reference": "training",
                    "columns": ["score", "country"],
                    "drift_share": {"critical": {"at_or_above": 0.5}},
                    "runbook": DRIFT_RUNBOOK,
                }
            ],
        }
        path = self.root / "models" / "fraud-detector.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")

    def engine(
        self,
        receivers: dict[str, Any],
        *,
        routes: list[dict[str, Any]] | None = None,
        delivery: dict[str, str] | None = None,
        grouping: dict[str, Any] | None = None,
    ) -> Path:
        """Write engine.yaml; by default every receiver hears every alert of the team."""
        engine = {
            "version": 1,
            "state": "state/state.db",
            "receivers": receivers,
            "routes": routes or [{"match": {"team": "risk"}, "receivers": list(receivers)}],
            "grouping": grouping
            or {"by": ["model"], "wait": "30s", "interval": "5m", "repeat": "4h"},
            "delivery": {"timeout": "3s", "backoff": "1s", "run_budget": "2s", **(delivery or {})},
        }
        path = self.root / "engine.yaml"
        path.write_text(yaml.safe_dump(engine, sort_keys=False), encoding="utf-8")
        return path

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def state_bytes(self) -> bytes:
        """Every byte SQLite keeps: the database, its WAL and shared memory."""
        return b"".join(p.read_bytes() for p in sorted(self.state_dir.glob("*")) if p.is_file())

    def outbox(self) -> list[dict[str, Any]]:
        import sqlite3

        db = sqlite3.connect(self.state_dir / "state.db")  # read only, but WAL may need recovery
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM outbox ORDER BY id")]
        finally:
            db.close()

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = run_cli(*args, cwd=self.root, env=self.env, timeout=timeout)
        assert "internal error" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def run(self, at: datetime, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``rulesengine run . --notify --at AT``; exit 0 or 1 (violations), never worse."""
        proc = self.cli("run", ".", "--notify", "--at", iso(at), timeout=timeout)
        assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def start_run(self, at: datetime) -> LiveRun:
        """The same command, not waited for: its stderr lines arrive with the wall
        time they were read at, and it can be killed."""
        proc = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "rulesengine.cli",
                "run",
                ".",
                "--notify",
                "--at",
                iso(at),
            ],
            cwd=self.root,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return LiveRun(proc)


class LiveRun:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[tuple[datetime, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((datetime.now(UTC), line.rstrip("\n")))

    @property
    def stderr(self) -> str:
        return "\n".join(text for _, text in self.lines)

    def wait_line(self, prefix: str, timeout: float) -> datetime:
        """When a stderr line starting with ``prefix`` was read."""

        def seen() -> bool:
            return any(t.startswith(prefix) for _, t in self.lines) or self.proc.poll() is not None

        wait_until(seen, timeout, f"a stderr line starting {prefix!r}")
        self._reader.join(0.5 if self.proc.poll() is None else 5)
        found = [when for when, t in self.lines if t.startswith(prefix)]
        assert found, self.stderr
        return found[0]

    def exited_within(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)


@pytest.fixture
def live_runs() -> Iterator[list[LiveRun]]:
    """Runs a test started; any still running at teardown are killed."""
    runs: list[LiveRun] = []
    yield runs
    for r in runs:
        r.kill()
