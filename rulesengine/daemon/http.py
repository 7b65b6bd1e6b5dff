"""The daemon's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``,
``/api/results`` and ``/api/alerts``, on the standard library's threading server.

Handlers only read :class:`rulesengine.daemon.status.Status` and the metrics
registry; they never touch the store or the loop, so a slow scrape cannot
delay a tick and a tick cannot delay a scrape. Only GET (and HEAD) is served.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from rulesengine.daemon.metrics import DaemonMetrics
from rulesengine.daemon.status import Status
from rulesengine.engine.results import to_json
from rulesengine.errors import RulesEngineError

DEFAULT_LISTEN = "127.0.0.1:9108"


class ListenError(RulesEngineError):
    """A ``--listen``/``server.listen`` value that is malformed or cannot be bound."""

    exit_code = 1


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9108`` for IPv6) → (host, port)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError(f"--listen {value!r} is not HOST:PORT (e.g. 127.0.0.1:9108)")
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        route = {
            "/metrics": self._metrics,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/api/results": self._results,
            "/api/alerts": self._alerts,
            "/": self._index,
        }.get(path)
        if route is None:
            self._send(404, b"not found: try /metrics, /healthz, /readyz, /api/results\n")
            return
        route()

    do_HEAD = do_GET

    def _metrics(self) -> None:
        self._send(200, self.server.metrics.text(), CONTENT_TYPE_LATEST)

    def _healthz(self) -> None:
        self._send(200, b"ok\n")

    def _readyz(self) -> None:
        ready, checks = self.server.status.readiness(datetime.now(UTC))
        self._json(200 if ready else 503, {"ready": ready, "checks": checks})

    def _results(self) -> None:
        body = to_json(self.server.status.latest_results()) + "\n"
        self._send(200, body.encode(), "application/json")

    def _alerts(self) -> None:
        self._json(200, self.server.status.alerts())

    def _index(self) -> None:
        links = ["/metrics", "/healthz", "/readyz", "/api/results", "/api/alerts"]
        self._send(200, ("rulesengine daemon\n" + "\n".join(links) + "\n").encode())

    def _json(self, code: int, doc: Any) -> None:
        self._send(code, (json.dumps(doc, indent=2) + "\n").encode(), "application/json")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("rulesengine.http").debug(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    status: Status
    metrics: DaemonMetrics


class _Server6(_Server):
    address_family = socket.AF_INET6


def start_http(listen: str, status: Status, metrics: DaemonMetrics) -> _Server:
    """Bind ``listen`` and serve in a background thread; ``shutdown()`` stops it."""
    host, port = parse_listen(listen)
    cls = _Server6 if ":" in host else _Server
    try:
        server = cls((host, port), _Handler)
    except OSError as exc:
        raise ListenError(
            f"cannot listen on {listen}: {exc.strerror or exc}; pass --listen HOST:PORT "
            "or set server.listen in engine.yaml"
        ) from exc
    server.status, server.metrics = status, metrics
    threading.Thread(target=server.serve_forever, name="rulesengine-http", daemon=True).start()
    return server
