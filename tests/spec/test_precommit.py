"""Files of two config directories in one call: ``validate`` groups them by the
engine file that governs each; ``run`` still refuses; and the pre-commit hook,
run through the real ``pre-commit try-repo``, reports the problems of both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rulesengine.spec.loader import group_by_root
from tests.conftest import ROOT, run_cli

MODEL = """version: 1
model: {name}
sources:
  requests: {{path: data/*.parquet}}
checks:
  - {{name: volume, source: requests, type: row_count, critical: {{below: 10}}}}
"""


def two_roots(base: Path) -> Path:
    """a/ and b/, each with its own engine.yaml and one model (the same model name
    in both: names are unique per config, not across configs)."""
    for root, model in (("a", "m"), ("b", "n")):
        (base / root / "models").mkdir(parents=True)
        (base / root / "engine.yaml").write_text("version: 1\n")
        (base / root / "models" / f"{model}.yaml").write_text(MODEL.format(name="same"))
    return base


def break_both(base: Path) -> None:
    m = base / "a" / "models" / "m.yaml"
    m.write_text(m.read_text().replace("below: 10", "belw: 10"))
    n = base / "b" / "models" / "n.yaml"
    n.write_text(n.read_text().replace("source: requests", "source: reqests"))


def test_group_by_root(tmp_path: Path) -> None:
    two_roots(tmp_path)
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "x.yaml").write_text(MODEL.format(name="x"))
    a_model, b_model = tmp_path / "a/models/m.yaml", tmp_path / "b/models/n.yaml"
    loose = tmp_path / "loose" / "x.yaml"
    groups = group_by_root([a_model, b_model, tmp_path / "a", loose, tmp_path / "b/engine.yaml"])
    assert groups == [[a_model, tmp_path / "a"], [b_model, tmp_path / "b/engine.yaml"], [loose]]


def test_validate_two_roots_reports_all_problems(tmp_path: Path) -> None:
    two_roots(tmp_path)
    files = ("a/models/m.yaml", "b/models/n.yaml")
    ok = run_cli("validate", *files, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "ok: 4 files valid"
    break_both(tmp_path)
    bad = run_cli("validate", *files, cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        "a/models/m.yaml:6:66: checks[0].critical.belw: unknown key 'belw' (did you mean 'below'?)",
        "b/models/n.yaml:6:28: checks[0].source: unknown source 'reqests' "
        "(did you mean 'requests'?)",
        "2 errors in 2 of 4 files",
    ]
    gh = run_cli("validate", "a", "b", "--format", "github", cwd=tmp_path)
    assert gh.returncode == 1
    assert [line.split(",")[0] for line in gh.stdout.splitlines()] == [
        "::error file=a/models/m.yaml",
        "::error file=b/models/n.yaml",
    ]


def test_run_still_refuses_two_roots(tmp_path: Path) -> None:
    two_roots(tmp_path)
    r = run_cli("run", "a", "b", cwd=tmp_path)
    assert r.returncode == 3
    assert "more than one engine config given (a/engine.yaml, b/engine.yaml)" in r.stderr
    assert "run one config directory at a time" in r.stderr


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=30)


@pytest.mark.timeout(600)
def test_pre_commit_try_repo_on_two_config_directories(tmp_path: Path) -> None:
    """The hook of .pre-commit-hooks.yaml as pre-commit runs it: it builds the
    hook's environment from this repository (pip install, which needs the package
    index) and passes the files of both directories in one call."""
    pre_commit = Path(sys.executable).parent / "pre-commit"
    assert pre_commit.is_file(), "pre-commit is in the test extra: pip install -e '.[test]'"
    repo = two_roots(tmp_path / "repo")
    _git(repo, "init", "-q", ".")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "two config directories")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env.pop("RULESENGINE_CACHE_DIR", None)

    def hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pre_commit), "try-repo", str(ROOT), "rulesengine-validate", "--files",
             "a/models/m.yaml", "b/models/n.yaml"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=540,
        )  # fmt: skip

    ok = hook()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "more than one engine config" not in ok.stdout
    assert "rulesengine validate" in ok.stdout and "Passed" in ok.stdout
    break_both(repo)
    bad = hook()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "a/models/m.yaml:6:66: checks[0].critical.belw: unknown key 'belw'" in bad.stdout
    assert "b/models/n.yaml:6:28: checks[0].source: unknown source 'reqests'" in bad.stdout
    assert "2 errors in 2 of 4 files" in bad.stdout
