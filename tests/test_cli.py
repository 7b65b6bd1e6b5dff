"""The command line, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CONFIGS, ROOT


def test_validate_configs_passes(cli):
    result = cli("validate", "configs/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("files valid")


def test_validate_json_format(cli):
    result = cli("validate", str(CONFIGS), "--format", "json")
    doc = json.loads(result.stdout)
    assert result.returncode == 0
    assert doc["valid"] is True and doc["problems"] == []
    assert len(doc["files"]) == 4


def test_invalid_spec_exit_1_and_github_annotations(cli, write):
    path = write(
        "m.yaml",
        "version: 1\nmodel: m\nsources: {r: {path: x.parquet}}\n"
        "checks:\n  - {name: c, source: q, type: nul_rate, column: a}\n",
    )
    result = cli("validate", str(path), "--format", "github", cwd=path.parent)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        "::error file=m.yaml,line=5,col=5,title=checks[0]::no threshold: add warn: and/or "
        "critical:, e.g. critical: {above: 0.01}",
        "::error file=m.yaml,line=5,col=23,title=checks[0].source::unknown source 'q'; defined: r",
        "::error file=m.yaml,line=5,col=32,title=checks[0].type::unknown type 'nul_rate' (did "
        "you mean 'null_rate'?); expected 'row_count', 'null_count', 'null_rate', "
        "'freshness', 'schema', 'out_of_range', 'allowed_values', 'new_categories', "
        "'duplicate_rate', 'pattern', 'outlier_rate' or 'custom'",
    ]


def test_usage_errors_exit_2(cli):
    assert cli("validate").returncode == 2
    assert cli("validate", "does/not/exist.yaml").returncode == 2
    assert cli("validate", "configs/", "--format", "xml").returncode == 2


def test_unreadable_inputs_never_trace(cli, tmp_path: Path):
    binary = tmp_path / "m.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = cli("validate", str(binary))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "not UTF-8" in result.stdout


def test_schema_command_prints_the_shipped_schemas(cli):
    for kind in ("model", "engine"):
        result = cli("schema", kind)
        assert result.returncode == 0
        assert json.loads(result.stdout) == json.loads(
            (ROOT / "schemas" / f"{kind}.schema.json").read_text()
        )
    assert json.loads(cli("schema").stdout)["title"] == "rulesengine model spec"


def test_model_file_alone_uses_nearby_engine(cli):
    result = cli("validate", "configs/models/fraud-detector.yaml", "--format", "json")
    doc = json.loads(result.stdout)
    assert result.returncode == 0
    assert doc["files"] == ["configs/engine.yaml", "configs/models/fraud-detector.yaml"]
