"""``silence add`` without ``$USER`` takes its author from ``--author`` or the
login name, never "(unknown)"."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

NAME_VARS = ("USER", "LOGNAME", "LNAME", "USERNAME")


def _cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in NAME_VARS}
    return subprocess.run(
        [sys.executable, "-m", "rulesengine.cli", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "engine.yaml").write_text("version: 1\nstate: state/state.db\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(
        "version: 1\nmodel: m\nsources: {s: {path: s.parquet}}\n"
        "checks:\n  - {name: rc, source: s, type: row_count, critical: {below: 1}}\n"
    )
    return tmp_path


def _author(config: Path, *extra: str, **env: str) -> str:
    args = ("silence", "add", "-c", str(config), "--match", "team=risk", "--for", "1h")
    added = _cli(config, *args, "--comment", "deploy", *extra, **env)
    assert added.returncode == 0, added.stderr
    listed = _cli(config, "silence", "list", "-c", str(config), "--format", "json")
    sid = added.stdout.strip()
    (row,) = [s for s in json.loads(listed.stdout) if s["id"] == sid]
    return row["created_by"]


def test_without_user_the_login_name_is_the_author(config):
    assert _author(config) == pwd.getpwuid(os.getuid()).pw_name


def test_author_flag_and_user_win(config):
    assert _author(config, "--author", "ana") == "ana"
    assert _author(config, USER="bo") == "bo"
    assert _author(config, LOGNAME="cy") == "cy"  # getpass reads LOGNAME before passwd
