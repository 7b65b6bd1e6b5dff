"""``rulesengine test`` through the real command line: the shipped example tests,
a wrong expectation, transitions, no_data, and invalid test files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, run_cli

ENGINE = """\
version: 1
state: state/state.db
receivers:
  team: ["json://127.0.0.1:9/hook"]
  pager: ["json://127.0.0.1:9/page"]
routes:
  - {match: {severity: critical}, receivers: [pager], continue: true}
  - {match: {}, receivers: [team]}
grouping: {by: [model], wait: 0s, interval: 1m, repeat: 4h}
"""

MODEL = """\
version: 1
model: shop
sources:
  events: {path: logs/events/*.ndjson, timestamp: ts}
  other: {path: logs/other/*.csv, timestamp: ts}
evaluation: {every: 10m, window: 10m, min_rows: 5}
checks:
  - name: price-nulls
    source: events
    type: null_rate
    column: price
    critical: {above: 0.2}
    for: 2
  - {name: other-rows, source: other, type: row_count, warn: {below: 1}}
"""

# One event a minute from 10:00:00 (60 rows). price is null in every second row
# from 10:10 to 10:39 (the rows 10..39), present otherwise. Windows are (t-10m, t]:
#   10:10 -> rows 1..10: one null (row 10) of 10 = 0.1, ok
#   10:20 -> rows 11..20: nulls at 12,14,16,18,20 = 5/10 = 0.5 critical -> pending
#   10:30 -> rows 21..30: 5/10 = 0.5 -> firing (for: 2)
#   10:50 -> rows 41..50: none = 0 -> resolved;  11:00 -> rows 51..59: 0 -> inactive
TESTS = """\
config: {config}
tests:
  - name: nulls go pending, fire, resolve
    sources:
      events:
        columns:
          ts: "2026-11-27T10:00:00Z+1mx60"
          price: ["1.5x10", "cycle(null,2.5)x30", "3x20"]
    at: "2026-11-27T10:10:00Z+10mx6"
    expect:
      - at: "2026-11-27T10:10:00Z"
        results: [{{monitor: price-nulls, status: ok, value: 0.1}}]
        alerts: [{{monitor: price-nulls, state: inactive}}]
        notifications: []
      - at: "2026-11-27T10:20:00Z"
        results: [{{monitor: price-nulls, status: critical, value: 0.5}}]
        alerts: [{{monitor: price-nulls, state: pending}}]
        notifications: []
      - at: "2026-11-27T10:30:00Z"
        alerts: [{{monitor: price-nulls, state: {firing}}}]
        notifications:
          - {{receiver: pager, count: 1, title: price-nulls}}
          - {{receiver: team, count: 1}}
      - at: "2026-11-27T10:50:00Z"
        results: [{{monitor: price-nulls, status: ok, value: 0}}]
        alerts: [{{monitor: price-nulls, state: resolved}}]
      - at: "2026-11-27T11:00:00Z"
        alerts: [{{monitor: price-nulls, state: inactive}}]
  - name: a source without rows has no data
    sources:
      events: {{rows: [{{ts: "2026-11-27T10:05:00Z", price: 1.0}}]}}
    at: ["2026-11-27T10:10:00Z"]
    expect:
      - at: "2026-11-27T10:10:00Z"
        results:
          - {{monitor: other-rows, status: no_data}}
          - {{monitor: price-nulls, status: insufficient_data}}
        alerts: [{{monitor: other-rows, state: no_data}}]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "models").mkdir(parents=True)
    (tmp_path / "conf" / "engine.yaml").write_text(ENGINE)
    (tmp_path / "conf" / "models" / "shop.yaml").write_text(MODEL)
    return tmp_path


def _tests(project: Path, firing: str = "firing", text: str | None = None) -> Path:
    path = project / "tests" / "shop.test.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text or TESTS.format(config="../conf", firing=firing))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_shipped_example_tests_pass() -> None:
    files = sorted(str(p) for p in (CONFIGS / "tests").glob("*.yaml"))
    assert len(files) >= 3
    r = run_cli("test", *files, timeout=110)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"(\d+) test\(s\): \1 passed, 0 failed", r.stdout)
    for name in ("fraud-detector", "demand-forecast", "support-assistant"):
        assert f"configs/tests/{name}.test.yaml" in r.stdout


def test_transitions_and_no_data_pass(project: Path) -> None:
    path = _tests(project)
    r = run_cli("test", str(path), cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS tests/shop.test.yaml:3: nulls go pending, fire, resolve (6 evaluation" in r.stdout
    second = _line_of(path, "- name: a source without rows")
    assert f"PASS tests/shop.test.yaml:{second}: a source without rows has no data" in r.stdout
    assert "2 test(s): 2 passed, 0 failed" in r.stdout
    assert not (project / "conf" / "state").exists()  # the config's state is never touched


def test_a_wrong_expectation_fails_at_its_line(project: Path) -> None:
    path = _tests(project, firing="pending")
    r = run_cli("test", str(path), cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = path.read_text().splitlines()
    line = [i for i, t in enumerate(lines, 1) if "state: pending" in t][1]  # the 10:30 one
    assert f"tests/shop.test.yaml:{line}: 'nulls go pending, fire, resolve' at " in r.stdout
    assert "2026-11-27T10:30:00Z: alert of price-nulls" in r.stdout
    assert "  - expected: state=pending" in r.stdout
    assert "  + actual:   state=firing (column price)" in r.stdout
    assert "1 test(s): 0" not in r.stdout and "2 test(s): 1 passed, 1 failed" in r.stdout


def test_wrong_value_and_notification_show_both_sides(project: Path) -> None:
    text = TESTS.format(config="../conf", firing="firing")
    text = text.replace("status: ok, value: 0.1}", "status: ok, value: 0.11, tolerance: 0.001}")
    text = text.replace("{receiver: team, count: 1}", "{receiver: team, count: 2}")
    path = _tests(project, text=text)
    r = run_cli("test", str(path), cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    value_line = _line_of(path, "value: 0.11")
    assert f"tests/shop.test.yaml:{value_line}: " in r.stdout
    assert "  - expected: status=ok value=0.11 ±0.001" in r.stdout
    assert "  + actual:   status=ok value=0.1 (column price)" in r.stdout
    note_line = _line_of(path, "count: 2")
    assert f"tests/shop.test.yaml:{note_line}: " in r.stdout
    assert "  - expected: 2 to team" in r.stdout
    assert "  + actual:   1 matching; queued at this time:" in r.stdout


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (("name: nulls", "nmae: nulls"), "nmae", "unknown key 'nmae' (did you mean 'name'?)"),
        (
            ("1.5x10", "1.5x11"),
            'ts: "2026',
            "columns differ in length: 'ts' has 60, 'price' has 61",
        ),
        (("state: resolved", "state: gone"), "state: gone", "'gone' is not one of"),
        (
            ("monitor: price-nulls, status: ok, value: 0}", "monitor: price-null, status: ok}"),
            "price-null,",
            "has no monitor 'price-null' (did you mean 'price-nulls'?)",
        ),
        (
            ("receiver: pager", "receiver: pagr"),
            "pagr",
            "no receiver 'pagr' (did you mean 'pager'?)",
        ),
        (("      events: {", "      evnts: {"), "evnts", "has no source 'evnts'"),
        (
            ('at: ["2026-11-27T10:10:00Z"]', 'at: ["2026-11-27T10:20:00Z"]'),
            '- at: "2026-11-27T10:10:00Z"\n        results:\n          - {monitor: other',
            "not one of the test's 'at' times",
        ),
    ],
)
def test_invalid_test_files_exit_2_with_positions(
    project: Path, edit: tuple[str, str], where: str, message: str
) -> None:
    text = TESTS.format(config="../conf", firing="firing")
    assert edit[0] in text
    text = text.replace(edit[0], edit[1], 1)
    path = _tests(project, text=text)
    r = run_cli("test", str(path), cwd=project)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert re.search(r"tests/shop\.test\.yaml:\d+:\d+: ", r.stderr)
    if "\n" not in where:
        assert f"tests/shop.test.yaml:{_line_of(path, where)}:" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_invalid_config_exits_3(project: Path) -> None:
    model = project / "conf" / "models" / "shop.yaml"
    model.write_text(MODEL.replace("type: null_rate", "type: nul_rate"))
    r = run_cli("test", str(_tests(project)), cwd=project)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "conf/models/shop.yaml:" in r.stderr


def test_unreadable_yaml_and_missing_config(project: Path) -> None:
    r = run_cli("test", str(_tests(project, text="config: [\n")), cwd=project)
    assert r.returncode == 2 and "tests/shop.test.yaml:" in r.stderr
    r = run_cli("test", str(_tests(project, text="config: ../nope\ntests: []\n")), cwd=project)
    assert r.returncode == 2
    assert "tests/shop.test.yaml:1:9: config: no such path: ../nope" in r.stderr
