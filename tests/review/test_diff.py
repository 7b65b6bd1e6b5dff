"""``rulesengine diff`` through the real command line, on a real git repository.

The repository is built here: a first commit holds a config whose one metric,
``x-high`` (``avg(x)``), fires above 50, and a CSV log with one row every 10 s
from 10:00 to 10:20 whose x is 100 in the minutes [10:05, 10:07) and
[10:12, 10:13) and 10 otherwise; the second commit loosens the threshold to
``above 150`` and adds a ``pager`` receiver (its URL carries ``${PAGER_TOKEN}``)
with a route for critical alerts. The oracle is the data, counted by hand (see
``test_replay_counts``), and the YAML we wrote, not the engine.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rulesengine.review.diff import direction
from rulesengine.spec.model import Change, Threshold
from tests.conftest import run_cli, run_cli_on_tty

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SECRET = "s3cr3t-t0ken-xyz"
ENV = {"PAGER_TOKEN": SECRET}
RANGE = "2026-03-02T10:00:00Z..2026-03-02T10:20:00Z"

MODEL = """\
version: 1
model: m1
sources:
  requests: {path: "data/requests.csv", timestamp: ts}
evaluation: {every: 1m, window: 1m, min_rows: 1}
metrics:
  - {name: x-high, source: requests, expr: "avg(x)", critical: {above: LIMIT}}
"""

ENGINE_BASE = """\
version: 1
state: state/state.db
receivers:
  hook: ["json://127.0.0.1:9/hook"]
routes:
  - {match: {model: m1}, receivers: [hook]}
grouping: {by: [model], wait: 30s, interval: 1m, repeat: 4h}
"""

ENGINE_HEAD = """\
version: 1
state: state/state.db
receivers:
  hook: ["json://127.0.0.1:9/hook"]
  pager: ["json://127.0.0.1:9/${PAGER_TOKEN}"]
routes:
  - {match: {severity: critical}, receivers: [pager], continue: true}
  - {match: {model: m1}, receivers: [hook]}
grouping: {by: [model], wait: 30s, interval: 1m, repeat: 4h}
"""


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def write_config(cfg: Path, limit: int, engine: str) -> None:
    (cfg / "models").mkdir(parents=True, exist_ok=True)
    (cfg / "models" / "m1.yaml").write_text(MODEL.replace("LIMIT", str(limit)))
    (cfg / "engine.yaml").write_text(engine)


def write_log(cfg: Path) -> None:
    lines = ["ts,x"]
    for i in range(20 * 6):
        ts = T0 + timedelta(seconds=10 * i + 5)
        minute = (ts - T0).seconds // 60
        lines.append(f"{ts.isoformat()},{100 if minute in (5, 6, 12) else 10}")
    (cfg / "data").mkdir(exist_ok=True)
    (cfg / "data" / "requests.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits: BASE (above 50, one receiver) and HEAD (above 150, + pager).
    The log is committed with BASE only; the working tree equals HEAD."""
    git(tmp_path, "init", "-q")
    cfg = tmp_path / "cfg"
    write_config(cfg, 50, ENGINE_BASE)
    write_log(cfg)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "tag", "base")
    write_config(cfg, 150, ENGINE_HEAD)
    git(tmp_path, "commit", "-qam", "loosen x-high, page on critical")
    return tmp_path


def diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("diff", *args, cwd=repo, env=ENV)


def check_doc(doc: dict) -> None:
    """What the change does, as we wrote it."""
    assert doc["thresholds"] == [
        {
            "model": "m1",
            "monitor": "x-high",
            "severity": "critical",
            "base": "above 50",
            "head": "above 150",
            "direction": "loosened",
        }
    ]
    assert doc["monitors"] == [
        {"model": "m1", "monitor": "x-high", "change": "changed", "keys": ["thresholds"]}
    ]
    (pager,) = doc["receivers"]
    assert (pager["receiver"], pager["change"], pager["base"]) == ("pager", "added", None)
    assert pager["head"]["urls"] == ["json://127.0.0.1:9/***"]
    assert doc["routes"] == {
        "removed": [],
        "added": ["match {severity=critical} -> pager (continue)"],
    }
    routed = {(r["monitor"], r["severity"]): (r["base"], r["head"]) for r in doc["routing"]}
    assert routed[("x-high", "critical")] == (["hook"], ["hook", "pager"])
    assert doc["summary"]["thresholds_loosened"] == 1
    assert doc["summary"]["thresholds_tightened"] == 0


def test_git_rev_against_working_tree(repo: Path):
    result = diff(repo, "cfg", "--git", "base", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["base"], doc["head"]) == ("base:cfg", "cfg (working tree)")
    check_doc(doc)
    assert SECRET not in result.stdout + result.stderr
    assert git(repo, "status", "--porcelain") == ""  # nothing of the tree was touched


def test_two_revisions_and_two_paths(repo: Path, tmp_path_factory: pytest.TempPathFactory):
    result = diff(repo, "cfg", "--git", "base..HEAD", "--format", "json")
    assert result.returncode == 0, result.stderr
    check_doc(json.loads(result.stdout))
    old = tmp_path_factory.mktemp("old") / "cfg"
    write_config(old, 50, ENGINE_BASE)
    write_log(old)
    result = diff(repo, str(old), "cfg", "--format", "json")
    assert result.returncode == 0, result.stderr
    check_doc(json.loads(result.stdout))


def test_text_names_direction_and_masks(repo: Path):
    result = diff(repo, "cfg", "--git", "base")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "critical: above 50 → above 150  loosened" in out
    assert "json://127.0.0.1:9/***" in out
    assert SECRET not in out + result.stderr
    # and the reverse change tightens
    back = diff(repo, "cfg", "--git", "HEAD..base")
    assert "critical: above 150 → above 50  tightened" in back.stdout
    assert SECRET not in back.stdout + back.stderr


def test_replay_counts(repo: Path):
    """Ticks 10:01 … 10:20, each seeing the six rows of the minute before it.
    avg(x) is 100 at ticks 10:06, 10:07 and 10:13, 10 elsewhere. BASE (above 50):
    firing at those 3 ticks, starting twice (10:06, 10:13); each incident gives a
    firing and a resolved notification (interval 1m, wait 30 s): 4. HEAD (above
    150): 100 never crosses it: nothing fires, nothing is sent."""
    result = diff(repo, "cfg", "--git", "base", "--replay", RANGE, "--format", "json")
    assert result.returncode == 0, result.stderr
    rp = json.loads(result.stdout)["replay"]
    assert (rp["from"], rp["to"]) == ("2026-03-02T10:00:00Z", "2026-03-02T10:20:00Z")
    assert rp["base"] == {"ticks": 20, "notifications": 4}
    assert rp["head"] == {"ticks": 20, "notifications": 0}
    (row,) = [r for r in rp["monitors"] if r["monitor"] == "x-high"]
    assert row["base"] == {
        "fired": 2,
        "firing_ticks": 3,
        "firing_seconds": 180.0,
        "notifications": 4,
    }
    assert row["head"] == {"fired": 0, "firing_ticks": 0, "firing_seconds": 0.0, "notifications": 0}
    assert result.stderr == ""  # not a terminal: no progress


def test_markdown(repo: Path):
    result = diff(repo, "cfg", "--git", "base", "--replay", RANGE, "--format", "markdown")
    assert result.returncode == 0, result.stderr
    md = result.stdout
    assert md.startswith("## rulesengine diff: `base:cfg` → `cfg (working tree)`\n")
    assert "**0 monitor(s) added, 0 removed, 1 changed; 1 threshold(s) loosened" in md
    assert "| m1 | x-high | critical: above 50 → above 150 | loosened |" in md
    assert "| pager | added | - | json://127.0.0.1:9/*** |" in md
    assert "```diff\n+ match {severity=critical} -> pager (continue)\n```" in md
    assert "| m1 | x-high | critical | hook | hook, pager |" in md
    assert "| m1 | x-high | 2 → 0 | 3 → 0 | 4 → 0 |" in md
    assert SECRET not in md


@pytest.mark.parametrize(
    "args",
    [
        ("cfg", "--git", "no-such-rev"),
        ("cfg", "--git", "base.."),
        ("cfg", "cfg", "--git", "base"),
        ("cfg",),
        ("cfg", "--git", "base", "--replay", "yesterday"),
        ("cfg", "--git", "base", "--replay", "2026-03-02T11:00:00Z..2026-03-02T10:00:00Z"),
    ],
)
def test_usage_errors(repo: Path, args: tuple[str, ...]):
    result = diff(repo, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


def test_path_missing_at_revision(repo: Path):
    (repo / "other").mkdir()
    write_config(repo / "other", 50, ENGINE_BASE)
    result = diff(repo, "other", "--git", "base")
    assert result.returncode == 2
    assert "'other' does not exist at revision 'base'" in result.stderr


def test_invalid_side_exits_3(repo: Path):
    broken = MODEL.replace("LIMIT", "50") + (
        '  - {name: bad, source: nope, expr: "avg(x)", critical: {above: 1}}\n'
    )
    (repo / "cfg" / "models" / "m1.yaml").write_text(broken)
    git(repo, "commit", "-qam", "broken")
    result = diff(repo, "cfg", "--git", "base..HEAD")
    assert result.returncode == 3
    assert result.stderr.startswith("error: HEAD (HEAD:cfg) is an invalid config:\n")
    assert (
        "HEAD:cfg/models/m1.yaml:8:" in result.stderr and "unknown source 'nope'" in result.stderr
    )
    assert SECRET not in result.stderr


def t(op: str, value: float | tuple[float, float], change: Change | None = None) -> Threshold:
    return Threshold(op, value, change)


@pytest.mark.parametrize(
    ("base", "head", "expected"),
    [
        (t("above", 0.05), t("above", 0.10), "loosened"),
        (t("above", 0.10), t("above", 0.05), "tightened"),
        (t("above", 1), t("at_or_above", 1), "tightened"),  # 1 itself now fires
        (t("below", 0.8), t("below", 0.7), "loosened"),
        (t("at_or_below", 0.8), t("below", 0.8), "loosened"),
        (t("outside", (0, 1)), t("outside", (-1, 2)), "loosened"),
        (t("outside", (0, 1)), t("outside", (0.2, 1)), "tightened"),
        (t("outside", (0, 1)), t("outside", (0.5, 1.5)), "changed"),  # shifted
        (t("between", (2, 3)), t("between", (2.2, 2.8)), "loosened"),
        (t("between", (2, 3)), t("between", (1, 4)), "tightened"),
        (t("between", (2, 3)), t("between", (2.5, 3.5)), "changed"),
        (t("above", 5), t("below", 1), "changed"),
        (t("above", 5), t("outside", (0, 5)), "tightened"),  # (5, ∞) ⊂ below 0 or above 5
        (None, t("above", 1), "added"),
        (t("above", 1), None, "removed"),
        (t("above", 1), t("above", 1), None),
    ],
)
def test_direction(base: Threshold | None, head: Threshold | None, expected: str | None):
    assert direction(base, head) == expected


def test_direction_of_change_thresholds():
    week = Change(timedelta(days=7))
    day = Change(timedelta(days=1))
    assert direction(t("below", -0.1, week), t("below", -0.2, week)) == "loosened"
    assert direction(t("below", -0.1, week), t("below", -0.2, day)) == "changed"  # other offset
    assert direction(t("below", -0.1), t("below", -0.1, week)) == "changed"


def test_replay_progress_on_a_terminal(repo: Path):
    """stderr a terminal: click's bar counts both sides' ticks (20 + 20); stdout
    still holds only the document."""
    code, out, bar = run_cli_on_tty(
        "diff", "cfg", "--git", "base", "--replay", RANGE, "--format", "json",
        cwd=repo, env=ENV, timeout=100,
    )  # fmt: skip
    assert code == 0
    assert "replay" in bar and "40/40" in bar and "HEAD m1" in bar, bar
    assert json.loads(out)["replay"]["base"]["ticks"] == 20
    assert SECRET not in bar
