"""A tiny webhook receiver for the live demo: prints each notification it gets.

    python examples/receiver.py [--port 8765]

Listens on 127.0.0.1 (stdlib only) and answers 200 to every POST. For each one it
prints a line: the time it arrived, the path (``/alerts``, ``/oncall``,
``/retrain`` in the live config), the notification's title, the first line of
its body (Apprise's ``json://`` sends ``{"title": ..., "message": ..., "type": ...}``)
and, for each alert in it, its segment and state (``firing`` or ``resolved``).
Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def summary(path: str, body: bytes) -> str:
    """One line for a received notification: time, path, title, first body line,
    then each alert's segment and state (a group is sent again when one changes)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        title = str(payload.get("title") or "").strip()
        message = str(payload.get("message") or "").strip()
    else:
        title, message = "", body.decode("utf-8", "replace").strip()
    first = (message.splitlines() or [""])[0]
    alerts = []
    for block in message.split("\n\n"):  # rulesengine's body: one block per alert
        lines = block.strip().splitlines()
        state = lines[0].split("]")[0].lstrip("[") if lines and "]" in lines[0] else ""
        segment = next((x[len("segment: ") :] for x in lines if x.startswith("segment: ")), "")
        if state and segment:
            alerts.append(f"{segment} {state.lower()}")
    now = datetime.now(UTC).strftime("%H:%M:%S")
    line = f"{now} {path} {title} | {first}"
    return f"{line} | {', '.join(alerts)}" if alerts else line


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print(summary(self.path, body), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:  # one line per notification only
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python examples/receiver.py", description="Print the notifications posted to it."
    )
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (8765)")
    args = parser.parse_args(argv)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"listening on http://127.0.0.1:{args.port}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
