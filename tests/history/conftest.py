"""A small config with hand-countable logs for the history tests.

``shop``: one CSV source and two checks, evaluated at two ticks whose results are
worked out by hand below (window 1h, rows with ts in (at - 1h, at]):

* at 10:00 the window holds 4 rows: v1 (5, null), v2 (7, 8). volume = 4 (ok,
  critical below 3); amount null rate 1/4 = 0.25 overall (ok), v1 1/2 = 0.5
  (warn above 0.4), v2 0/2 = 0 (ok).
* at 12:00 the window holds 2 rows: v1 (1), v2 (2). volume = 2 (critical);
  null rate 0 everywhere (ok).
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

AT1 = "2026-11-27T10:00:00Z"
AT2 = "2026-11-27T12:00:00Z"

REQUESTS = """\
ts,version,amount
2026-11-27T09:10:00Z,v1,5
2026-11-27T09:20:00Z,v1,
2026-11-27T09:30:00Z,v2,7
2026-11-27T09:40:00Z,v2,8
2026-11-27T11:15:00Z,v1,1
2026-11-27T11:45:00Z,v2,2
"""

MODEL = """\
version: 1
model: shop
sources:
  requests: {path: data/requests.csv, timestamp: ts}
evaluation: {every: 1h, window: 1h, min_rows: 1}
checks:
  - {name: volume, source: requests, type: row_count, critical: {below: 3}}
  - {name: amount-nulls, source: requests, type: null_rate, column: amount,
     segment_by: [version], warn: {above: 0.4}}
"""


class Shop:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "data").mkdir(parents=True)
        (root / "models").mkdir()
        (root / "data" / "requests.csv").write_text(REQUESTS, encoding="utf-8")
        (root / "models" / "shop.yaml").write_text(MODEL, encoding="utf-8")
        self.engine()

    def engine(self, extra: str = "") -> None:
        text = f"version: 1\nstate: state/state.db\n{extra}"
        (self.root / "engine.yaml").write_text(text, encoding="utf-8")

    @property
    def db(self) -> Path:
        return self.root / "state" / "state.db"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = run_cli(*args, cwd=self.root, timeout=60)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def run(self, at: str, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = self.cli("run", ".", "--at", at, "--notify", *extra)
        assert proc.returncode in (0, 1), proc.stderr
        return proc

    def history(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli("history", ".", "--model", "shop", *args)

    def count(self, table: str) -> int:
        db = sqlite3.connect(self.db)
        try:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            db.close()


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path / "config")
