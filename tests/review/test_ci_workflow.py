"""configs/ci/rulesengine.yml, the pull-request workflow example: it parses, its
``rulesengine`` lines use only commands and options the real CLI has, and the
validate and diff lines run on this repository as written."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_cli

WORKFLOW = ROOT / "configs" / "ci" / "rulesengine.yml"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def steps() -> list[dict]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert data.get("on", data.get(True)) == {"pull_request": {"paths": ["configs/**"]}}
    assert data["permissions"]["pull-requests"] == "write"
    (job,) = data["jobs"].values()
    return job["steps"]


def rulesengine_lines() -> list[list[str]]:
    """Each ``run:`` line that calls rulesengine, as argv (up to a redirection),
    with ``${{ github.base_ref }}`` standing for a branch name."""
    out = []
    for step in steps():
        for line in str(step.get("run", "")).splitlines():
            if not line.startswith("rulesengine "):
                continue
            line = EXPRESSION.sub(lambda m: m.group(1).rsplit(".", 1)[-1], line)
            argv = shlex.split(line.split(">")[0])
            out.append(argv[1:])
    return out


def test_every_command_and_option_exists() -> None:
    lines = rulesengine_lines()
    assert [argv[0] for argv in lines] == ["validate", "test", "diff"]
    top = run_cli("--help").stdout
    for argv in lines:
        assert re.search(rf"^\s+{argv[0]}\s", top, re.M), f"no command {argv[0]}"
        helptext = run_cli(argv[0], "--help").stdout
        for token in argv[1:]:
            if token.startswith("--"):
                assert re.search(rf"(^|[\s,]){re.escape(token)}[\s=]", helptext), (argv[0], token)
    validate, test, diff = lines
    assert validate[validate.index("--format") + 1] == "github"
    assert diff[diff.index("--format") + 1] == "markdown"
    assert diff[diff.index("--git") + 1] == "origin/base_ref"
    assert sorted(glob.glob(str(ROOT / test[1]))), "configs/tests/*.yaml matches no file"


def test_the_comment_step_posts_the_diff_file() -> None:
    names = {s.get("name"): s for s in steps()}
    diff_run = names["What the change does"]["run"]
    comment = names["Comment on the pull request"]
    target = diff_run.split(">")[1].strip()
    assert comment["run"].startswith("gh pr comment ")
    assert comment["run"].endswith(f"--body-file {target}")
    assert comment["env"] == {"GH_TOKEN": "${{ github.token }}"}


def test_validate_and_diff_lines_run_here(tmp_path: Path) -> None:
    validate, _test, diff = rulesengine_lines()
    r = run_cli(*validate)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == ""  # github format: annotations only, none when valid
    argv = [a if a != "origin/base_ref" else "HEAD" for a in diff]
    d = run_cli(*argv)
    assert d.returncode == 0, d.stdout + d.stderr
    assert d.stdout.startswith("## rulesengine diff: `HEAD:configs`")
