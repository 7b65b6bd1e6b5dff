"""A real S3-compatible server on loopback: moto in server mode, one per session.

Nothing here is mocked: Polars' object store and boto3 talk HTTP to
``127.0.0.1:PORT``. Credentials are fake, instance-metadata lookup is disabled and
proxies are bypassed, so no request ever leaves the machine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BUCKET = "ml-logs"
REGION = "us-east-1"
KEY_ID = "testing"
SECRET = "testing"
START_TIMEOUT = 10.0  # seconds for the server to bind and answer

# Variables that must hold while anything talks to the server: fake credentials,
# no EC2 metadata lookups, no shared config files, no proxy for loopback.
FAKE_AWS_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def _apply_env(mp: pytest.MonkeyPatch) -> None:
    for key, value in FAKE_AWS_ENV.items():
        mp.setenv(key, value)
    for key in UNSET_AWS_ENV:
        mp.delenv(key, raising=False)


@dataclass
class S3Server:
    endpoint: str
    client: Any  # a boto3 S3 client pointed at the endpoint
    bucket: str = BUCKET
    scheme: str = "s3"

    @property
    def storage_options(self) -> dict[str, str]:
        """Polars ``storage_options`` for this server (see design/NOTES.md)."""
        return {
            "aws_endpoint_url": self.endpoint,
            "aws_access_key_id": KEY_ID,
            "aws_secret_access_key": SECRET,
            "aws_region": REGION,
            "aws_allow_http": "true",
        }

    @property
    def env(self) -> dict[str, str]:
        """Variables for ``load(env=...)`` and subprocesses: the spec's ``${S3_*}``
        references plus the fake-AWS settings."""
        return {
            **FAKE_AWS_ENV,
            "S3_ENDPOINT": self.endpoint,
            "S3_KEY_ID": KEY_ID,
            "S3_SECRET": SECRET,
        }

    def url(self, prefix: str, rest: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}/{rest}".rstrip("/")

    def upload_tree(self, root: Path, prefix: str) -> list[str]:
        """Upload every file under ``root`` to ``prefix/<relative path>``; the keys."""
        keys = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(root).as_posix()}"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def _start(server: Any) -> None:
    """``ThreadedMotoServer.start`` waits without a timeout; bound it."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.start()
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="moto-start").start()
    if not done.wait(START_TIMEOUT) or failure:
        raise RuntimeError(f"moto server did not start: {failure[0] if failure else 'timeout'}")


def _wait_until_answers(endpoint: str) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with opener.open(f"{endpoint}/moto-api/", timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"moto server at {endpoint} does not answer: {last}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.1 (a free port), with bucket ``ml-logs``; stopped at the end."""
    boto3 = pytest.importorskip("boto3")  # the `test` extra: moto[server], boto3
    moto_server = pytest.importorskip("moto.server")
    from botocore.config import Config as BotoConfig

    werkzeug_log = logging.getLogger("werkzeug")  # one INFO line per request otherwise
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    with pytest.MonkeyPatch.context() as mp:
        _apply_env(mp)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        try:
            _start(server)
        except BaseException:
            werkzeug_log.setLevel(level)
            raise
        try:
            host, port = server.get_host_and_port()
            assert host == "127.0.0.1"
            endpoint = f"http://127.0.0.1:{port}"
            _wait_until_answers(endpoint)
            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id=KEY_ID,
                aws_secret_access_key=SECRET,
                config=BotoConfig(
                    connect_timeout=2,
                    read_timeout=10,
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                    proxies={},
                ),
            )
            client.create_bucket(Bucket=BUCKET)
        except BaseException:
            server.stop()
            werkzeug_log.setLevel(level)
            raise
    try:
        yield S3Server(endpoint, client)
    finally:
        server.stop()
        werkzeug_log.setLevel(level)


@pytest.fixture(autouse=True)
def _fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test here runs with fake credentials, without metadata lookups, and in
    its own working directory (the engine keeps profiles under ./.rulesengine)."""
    _apply_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
