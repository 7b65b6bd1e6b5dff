"""Golden-file tests for ``rulesengine validate``.

Every directory under ``tests/fixtures/invalid/`` is one case: YAML file(s) (``model.yaml``,
or ``engine.yaml`` + ``models/*.yaml``), ``expected.txt`` with the exact problem lines
(``file:line:col: key.path: message``, paths relative to the case directory, sorted as
the tool sorts them, no summary line), optionally ``env.json`` (the environment for
``${VAR}`` substitution, default empty) and optionally ``xfail.txt``: the case documents
a known loader bug, ``expected.txt`` holds what the output *should* be, and the test is a
strict xfail whose reason is the text of ``xfail.txt``.

Directories under ``tests/fixtures/valid/`` must validate cleanly (``xfail.txt`` works the
same way there).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rulesengine.spec.loader import LoadReport, load_report
from rulesengine.spec.yamlsrc import MAX_NODES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
INVALID = sorted(p for p in (FIXTURES / "invalid").iterdir() if p.is_dir())
VALID = sorted(p for p in (FIXTURES / "valid").iterdir() if p.is_dir())
CONFIGS = ROOT / "configs"
YAML_SUFFIXES = (".yaml", ".yml")


def case_paths(case: Path) -> list[str]:
    """What the user would pass: the directory when it has an engine.yaml, else its files."""
    if (case / "engine.yaml").is_file():
        return ["."]
    return sorted(p.name for p in case.iterdir() if p.suffix in YAML_SUFFIXES)


def case_env(case: Path) -> dict[str, str]:
    env_file = case / "env.json"
    return json.loads(env_file.read_text(encoding="utf-8")) if env_file.is_file() else {}


def expected_lines(case: Path) -> list[str]:
    return (case / "expected.txt").read_text(encoding="utf-8").splitlines()


def load_case(case: Path, monkeypatch: pytest.MonkeyPatch) -> LoadReport:
    monkeypatch.chdir(case)
    return load_report(case_paths(case), env=case_env(case))


def params(cases: list[Path]) -> list[object]:
    out = []
    for case in cases:
        marks = []
        reason_file = case / "xfail.txt"
        if reason_file.is_file():
            reason = reason_file.read_text(encoding="utf-8").strip()
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


def scrubbed_environ(*folders: Path) -> dict[str, str]:
    """os.environ without the variables the given configs reference, so a developer's
    shell cannot change the outcome."""
    names: set[str] = set()
    for folder in folders:
        for f in folder.rglob("*"):
            if f.suffix in YAML_SUFFIXES:
                names.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", f.read_text("utf-8")))
    return {k: v for k, v in os.environ.items() if k not in names}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "rulesengine.cli", *args],
        cwd=cwd,
        env=env if env is not None else scrubbed_environ(cwd),
        capture_output=True,
        text=True,
        timeout=120,
    )


# ----------------------------------------------------------------- the corpus itself


def test_corpus_is_complete():
    assert len(INVALID) >= 35
    assert len(VALID) >= 4
    for case in INVALID:
        assert (case / "expected.txt").is_file(), case.name
        assert expected_lines(case), f"{case.name}: expected.txt is empty"
        assert case_paths(case), f"{case.name}: no YAML file"
        for line in expected_lines(case):
            assert re.match(r"^[^:\s][^:]*:\d+:\d+: \S", line), f"{case.name}: {line!r}"
            assert "Traceback" not in line


# ----------------------------------------------------------------- invalid specs


@pytest.mark.parametrize("case", params(INVALID))
def test_invalid_case(case: Path, monkeypatch: pytest.MonkeyPatch):
    report = load_case(case, monkeypatch)
    rendered = [p.render() for p in report.problems]
    assert rendered == expected_lines(case)
    assert report.config is None
    assert not report.ok
    for p in report.problems:
        assert p.line >= 1 and p.col >= 1 and p.message.strip()
        assert not Path(p.file).is_absolute(), p.file


def test_alias_bomb_fails_with_bounded_work(
    monkeypatch: pytest.MonkeyPatch, values_built: SimpleNamespace
):
    """The bomb expands to 9**9 values; the loader builds at most MAX_NODES (plus the
    siblings left in the lists it is inside), so the later stages see no more."""
    case = FIXTURES / "invalid" / "06-alias-bomb"
    report = load_case(case, monkeypatch)
    assert any("too many aliases" in p.message for p in report.problems)
    assert MAX_NODES < values_built.n <= MAX_NODES + 9 * 10, values_built.n


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("02-python-object-tag", ["!!python/object/apply:os.system"]),
        ("03-binary-tag", ["!!binary"]),
        ("04-custom-and-set-tags", ["!Labels", "!!set"]),
    ],
)
def test_forbidden_tags_are_reported_never_built(
    name: str, tags: list[str], monkeypatch: pytest.MonkeyPatch
):
    """Holds even while these cases are xfail for an extra, spurious message."""
    report = load_case(FIXTURES / "invalid" / name, monkeypatch)
    assert report.config is None
    messages = [p.message for p in report.problems]
    for tag in tags:
        assert any(m.startswith(f"tag '{tag}' is not allowed") for m in messages), messages


def test_problems_never_echo_secret_values(monkeypatch: pytest.MonkeyPatch):
    """Values that came from the environment never appear in messages of cases whose
    expected output is not a known bug."""
    for case in INVALID:
        if (case / "xfail.txt").is_file():
            continue
        secrets = [v for v in case_env(case).values() if len(v) >= 6]
        if not secrets:
            continue
        report = load_case(case, monkeypatch)
        for p in report.problems:
            for secret in secrets:
                assert secret not in p.render(), f"{case.name}: {p.render()}"


# ----------------------------------------------------------------- valid specs


@pytest.mark.parametrize("case", params(VALID))
def test_valid_case(case: Path, monkeypatch: pytest.MonkeyPatch):
    report = load_case(case, monkeypatch)
    assert [p.render() for p in report.problems] == []
    assert report.ok and report.config is not None
    assert report.config.models


def test_valid_unusual_features_are_read_as_written(monkeypatch: pytest.MonkeyPatch):
    anchors = load_case(FIXTURES / "valid" / "01-anchors-and-merge-keys", monkeypatch).config
    assert anchors is not None
    model = anchors.models[0]
    clicks = model.sources["clicks"]
    assert (clicks.timestamp, clicks.format, clicks.separator) == ("ts", "csv", ";")
    by_name = {c.name: c for c in model.checks}
    assert by_name["click-volume"].source == "clicks"
    assert by_name["click-volume"].thresholds.critical.value == 100
    warn_check = by_name["click-volume-warn"]
    assert warn_check.thresholds.critical.value == 10  # written here: overrides the merge
    assert warn_check.thresholds.warn.value == 100
    assert dict(warn_check.labels) == {"team": "risk", "tier": "1"}

    typed = load_case(FIXTURES / "valid" / "02-env-defaults-typed", monkeypatch).config
    assert typed is not None
    model = typed.models[0]
    ev = model.evaluation
    assert (ev.min_rows, ev.max_segments, ev.stale_after) == (500, 20, 3)
    assert all(type(x) is int for x in (ev.min_rows, ev.max_segments, ev.stale_after))
    assert ev.window.total_seconds() == 7200
    assert model.model == "env-typed"
    assert model.description == "costs ${DOLLARS} and nothing"
    assert model.sources["requests"].required is False
    assert model.sources["requests"].timezone == "Europe/Berlin"
    assert model.checks[0].enabled is True
    assert model.checks[0].thresholds.warn.value == 250.5

    strings = load_case(FIXTURES / "valid" / "03-yes-no-strings-every-check-type", monkeypatch)
    assert strings.config is not None
    model = strings.config.models[0]
    assert dict(model.labels) == {"team": "risk", "country": "NO", "paging": "yes", "legacy": "off"}
    answers = next(c for c in model.checks if c.name == "answers")
    assert answers.values == ("yes", "no", "NO", "on", "off", "y", "n", True, 0, 1.5)
    from rulesengine.spec.model import CheckSpec

    types = {c.type for c in model.checks if isinstance(c, CheckSpec)}
    assert len(types) == 12

    metrics = load_case(FIXTURES / "valid" / "04-every-metric-type", monkeypatch).config
    assert metrics is not None
    assert len({m.type for m in metrics.models[0].metrics}) == 23

    engine = load_case(FIXTURES / "valid" / "05-engine-nested-routes", monkeypatch).config
    assert engine is not None
    assert sorted(m.model for m in engine.models) == ["demand-eu", "fraud-detector"]
    route = engine.engine.routes[0]
    assert route.continue_ is True and route.send_resolved is False
    assert route.routes[0].routes[0].receivers == ("from-config", "webhooks")
    assert engine.engine.receivers["from-config"].tags == ("ops", "NO")


def test_configs_directory_validates(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    report = load_report(["configs"], env={})
    assert [p.render() for p in report.problems] == []
    assert report.ok
    assert len(report.config.models) == 3


# ----------------------------------------------------------------- the real command line


def test_cli_formats_on_an_invalid_case():
    case = FIXTURES / "invalid" / "46-five-mistakes"
    expected = expected_lines(case)
    positions = [re.match(r"^(.+?):(\d+):(\d+): ", line).groups() for line in expected]

    text = run_cli("validate", "model.yaml", cwd=case)
    assert text.returncode == 1, text.stderr
    lines = text.stdout.splitlines()
    assert lines[:-1] == expected
    assert lines[-1] == "5 errors in 1 of 1 file"

    github = run_cli("validate", "model.yaml", "--format", "github", cwd=case)
    assert github.returncode == 1, github.stderr
    annotations = github.stdout.splitlines()
    assert len(annotations) == len(expected) == 5
    for line, (file, ln, col) in zip(annotations, positions, strict=True):
        assert line.startswith(f"::error file={file},line={ln},col={col}"), line
        assert re.match(r"^::error file=[^,]+,line=\d+,col=\d+(,title=[^:]+)?::\S", line), line

    as_json = run_cli("validate", "model.yaml", "--format", "json", cwd=case)
    assert as_json.returncode == 1, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["valid"] is False
    assert doc["files"] == ["model.yaml"]
    rebuilt = [
        f"{p['file']}:{p['line']}:{p['col']}: {p['path']}: {p['message']}" for p in doc["problems"]
    ]
    assert rebuilt == expected
    assert all(p["severity"] == "error" for p in doc["problems"])

    for result in (text, github, as_json):
        assert "Traceback" not in result.stdout + result.stderr


def test_cli_on_engine_case_and_hostile_inputs():
    for name in ("40-engine-unknown-receiver", "06-alias-bomb", "02-python-object-tag"):
        case = FIXTURES / "invalid" / name
        result = run_cli("validate", *case_paths(case), "--format", "github", cwd=case)
        assert result.returncode == 1, result.stderr
        assert result.stdout.startswith("::error file=")
        assert "Traceback" not in result.stdout + result.stderr


def test_cli_valid_cases_and_configs_exit_zero():
    for case in [CONFIGS.parent, *VALID]:
        if (case / "xfail.txt").is_file():
            continue
        paths = ["configs"] if case == CONFIGS.parent else case_paths(case)
        env = scrubbed_environ(case if case != CONFIGS.parent else CONFIGS)
        env.update(case_env(case) if case != CONFIGS.parent else {})
        result = run_cli("validate", *paths, cwd=case, env=env)
        assert result.returncode == 0, f"{case.name}: {result.stdout}{result.stderr}"
        assert result.stdout.strip().startswith("ok: ")
        assert "Traceback" not in result.stdout + result.stderr
