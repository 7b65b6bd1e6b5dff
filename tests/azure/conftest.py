"""A real Azure Blob Storage emulator on loopback: Azurite (``azurite-blob``, from
npm; the README's test command installs it as root on Debian or Ubuntu, see
.ci/system-packages), one per session.

Nothing is mocked: Polars' object store and obstore's listing talk HTTP to
``127.0.0.1:PORT`` with the emulator's well-known development account
(``azure_storage_use_emulator``; ``AZURITE_BLOB_STORAGE_URL`` names the port).
The container is created with a SharedKey-signed request (the one call obstore
has no API for); objects are written and deleted through obstore.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_tool, start_server, stop_process
from tests.delivery.conftest import free_port

CONTAINER = "ml-logs"
START_TIMEOUT = 20.0  # seconds for the emulator to bind and answer
# Azurite's documented development account (public, the same for every install)
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
API_VERSION = "2021-08-06"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


@dataclass
class AzureServer:
    endpoint: str
    bucket: str = CONTAINER
    scheme: str = "az"
    _store: Any = field(default=None, repr=False)

    @property
    def storage_options(self) -> dict[str, str]:
        """Polars ``storage_options`` for the emulator (obstore takes the same)."""
        return {
            "azure_storage_account_name": ACCOUNT,
            "azure_storage_account_key": ACCOUNT_KEY,
            "azure_storage_use_emulator": "true",
        }

    @property
    def env(self) -> dict[str, str]:
        """What a subprocess needs to reach this emulator."""
        return {"AZURITE_BLOB_STORAGE_URL": self.endpoint, "NO_PROXY": "127.0.0.1,localhost"}

    def store(self) -> Any:
        if self._store is None:
            from obstore.store import from_url

            self._store = from_url(
                f"az://{self.bucket}",
                config=self.storage_options,  # type: ignore[arg-type]
                client_options={"allow_http": "true", "timeout": "10s"},
            )
        return self._store

    def put(self, key: str, body: bytes) -> None:
        import obstore

        obstore.put(self.store(), key, body)

    def delete(self, key: str) -> None:
        import obstore

        obstore.delete(self.store(), key)

    def create_container(self) -> None:
        """PUT ?restype=container, signed with the account key (SharedKey)."""
        headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
        content_type = "application/octet-stream"
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        resource = f"/{ACCOUNT}/{ACCOUNT}/{self.bucket}\nrestype:container"
        # VERB, then 11 standard headers (only Content-Type set), then the rest
        to_sign = f"PUT\n\n\n\n\n{content_type}\n" + "\n" * 6 + canonical + resource
        digest = hmac.new(base64.b64decode(ACCOUNT_KEY), to_sign.encode(), hashlib.sha256)
        signature = base64.b64encode(digest.digest()).decode()
        request = urllib.request.Request(
            f"{self.endpoint}/{ACCOUNT}/{self.bucket}?restype=container",
            data=b"",
            method="PUT",
            headers={
                **headers,
                "Content-Type": content_type,
                "Authorization": f"SharedKey {ACCOUNT}:{signature}",
            },
        )
        with _OPENER.open(request, timeout=10):
            pass


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """Azurite's blob service on 127.0.0.1 (a free port, in memory), with container
    ``ml-logs``; stopped at the end."""
    binary = need_tool("azurite-blob", "azurite (npm install -g azurite; Debian's npm)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    argv = [
        binary,
        *("--blobHost", "127.0.0.1", "--blobPort", str(port)),
        *("--inMemoryPersistence", "--skipApiVersionCheck", "--silent"),
    ]
    # it answers an unsigned listing with 403: up and serving
    proc = start_server(argv, log, f"{endpoint}/{ACCOUNT}?comp=list", START_TIMEOUT, (200, 403))
    try:
        server = AzureServer(endpoint)
        server.create_container()
        yield server
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True)
def _own_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every test runs in its own working directory (the engine keeps profiles
    under ./.rulesengine), pointed at this session's emulator, with no proxy for
    loopback and no Azure credentials from the environment."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("AZURE_")]:
        monkeypatch.delenv(key)
    if "azure_server" in request.fixturenames:
        server: AzureServer = request.getfixturevalue("azure_server")
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
