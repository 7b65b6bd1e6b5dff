"""A tiny model server that is monitored from its first request (not installed).

Each request is checked against the input contract that the spec
``models/loan-scorer.yaml`` defines (``rulesengine.contract.validator``), scored
by a toy model, and logged with its prediction (``rulesengine.logger``) into
``data/``, which is exactly where the spec's sources read. A refused request
gets HTTP 422 with every violation, each naming its field.

    python examples/serving/serve.py                     # HTTP on 127.0.0.1:8000
    curl -s localhost:8000/predict -d '{"amount": 12000, "term_months": 36,
        "income": 52000, "purpose": "car", "channel": "web"}'
    curl -s localhost:8000/label -d '{"request_id": "…", "defaulted": false}'
    python examples/serving/serve.py --simulate 2000     # the same handlers, no HTTP
    rulesengine run examples/serving                     # what the logs say

Stop the server with Ctrl-C or SIGTERM: the logger flushes what it holds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rulesengine.contract import Violation, load_contract
from rulesengine.logger import ModelLogger

HERE = Path(__file__).resolve().parent
MODEL = "loan-scorer"
VERSION = "v1"
OUTPUTS = ("score", "latency_ms", "model_version")  # the model's side of a logged row


class Service:
    """The request path: validate, predict, log. Thread-safe (the logger is)."""

    def __init__(self, config: Path, *, flush_seconds: float = 2.0) -> None:
        spec = config / "models" / f"{MODEL}.yaml"
        contract = load_contract(spec, "requests", exclude=OUTPUTS)
        self.check: Callable[[Mapping[str, Any]], list[Violation]] = contract.validator()
        self.logger = ModelLogger(
            config / "data",  # the spec's paths are relative to its config root
            model=MODEL,
            flush_seconds=flush_seconds,
            dtypes=contract.dtypes(),  # a batch of ints still writes Float64 where declared
        )
        self.accepted = 0
        self.refused = 0

    def predict(self, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, response body) for one scoring request."""
        started = time.perf_counter()
        violations = self.check(request)
        if violations:
            self.refused += 1
            return 422, {"violations": [v.as_dict() for v in violations]}
        score = _toy_model(request)
        latency_ms = (time.perf_counter() - started) * 1000
        request_id = self.logger.log(
            **request, score=score, latency_ms=latency_ms, model_version=VERSION
        )
        self.accepted += 1
        return 200, {"request_id": request_id, "score": score}

    def label(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Ground truth for an earlier request: ``{"request_id", "defaulted"}``."""
        request_id, defaulted = body.get("request_id"), body.get("defaulted")
        if not isinstance(request_id, str) or not isinstance(defaulted, bool):
            return 422, {"error": "need request_id (string) and defaulted (boolean)"}
        self.logger.log_label(request_id, defaulted=defaulted)
        return 200, {"ok": True}

    def close(self) -> None:
        self.logger.close()


def _toy_model(r: Mapping[str, Any]) -> float:
    """A logistic score: larger loans against smaller incomes over longer terms."""
    burden = r["amount"] / max(float(r["income"]), 1.0)
    z = -2.0 + 4.0 * burden + 0.01 * (r.get("term_months") or 36)
    return round(1.0 / (1.0 + math.exp(-z)), 4)


def _request(rng: random.Random) -> dict[str, Any]:
    return {
        "amount": round(rng.uniform(1000, 40000), 2),
        "term_months": rng.choice([12, 24, 36, 48, 60]),
        "income": round(rng.uniform(20000, 120000), 2),
        "purpose": rng.choice(["car", "home", "education", "business", "other"]),
        "channel": rng.choice(["web", "app", "branch"]),
    }


def _broken(rng: random.Random) -> dict[str, Any]:
    """A request that breaks the contract in one of several ways."""
    r = _request(rng)
    way = rng.randrange(4)
    if way == 0:
        r["amount"] = -50.0
    elif way == 1:
        r["channel"] = "fax"
    elif way == 2:
        del r["income"]
    else:
        r["term_months"] = "36"
    return r


def simulate(service: Service, n: int, seed: int, bad_share: float = 0.05) -> dict[str, Any]:
    """``n`` scoring requests through the same handlers as HTTP (a share of them
    broken), then a label for every accepted one."""
    rng = random.Random(seed)
    ids, refusals = [], []
    for _ in range(n):
        request = _broken(rng) if rng.random() < bad_share else _request(rng)
        status, body = service.predict(request)
        if status == 200:
            ids.append((body["request_id"], body["score"]))
        else:
            refusals.append(body["violations"])
    for request_id, score in ids:
        defaulted = rng.random() < (0.8 if score >= 0.5 else 0.1)
        service.label({"request_id": request_id, "defaulted": defaulted})
    return {"accepted": service.accepted, "refused": service.refused, "labels": len(ids)}


class _Handler(BaseHTTPRequestHandler):
    service: Service

    def do_POST(self) -> None:
        routes = {"/predict": self.service.predict, "/label": self.service.label}
        handler = routes.get(self.path)
        if handler is None:
            return self._reply(404, {"error": f"no route {self.path}"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(min(length, 1_000_000)) or b"null")
        except ValueError:
            return self._reply(400, {"error": "the body is not JSON"})
        if not isinstance(body, dict):
            return self._reply(400, {"error": "the body is not a JSON object"})
        self._reply(*handler(body))

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE, help="the config root (logs: data/)")
    parser.add_argument("--listen", default="127.0.0.1:8000", help="HOST:PORT")
    parser.add_argument("--simulate", type=int, metavar="N", help="N requests without HTTP")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    service = Service(args.config)
    if args.simulate is not None:
        try:
            summary = simulate(service, args.simulate, args.seed)
        finally:
            service.close()
        print(json.dumps(summary))
        return 0
    host, _, port = args.listen.rpartition(":")
    _Handler.service = service
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # finally: below still runs
    print(f"serving {MODEL} on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
