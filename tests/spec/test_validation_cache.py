"""The cache of structurally valid documents: it skips jsonschema (and its import)
for an unchanged config, and never holds a document built from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rulesengine.spec import schema
from rulesengine.spec.loader import load_report

MODEL = """\
version: 1
model: cached
sources:
  preds:
    path: data/*.parquet
    timestamp: ts
checks:
  - name: rows
    type: row_count
    source: preds
    window: 1h
    critical:
      below: 1
"""

PROBE = (
    "import sys; from rulesengine.spec.loader import load_report; "
    "r = load_report([sys.argv[1]]); "
    "print(len(r.problems), 'jsonschema' in sys.modules)"
)


def probe(path: Path, cache: Path, **env: str) -> tuple[int, bool]:
    """(problems, whether jsonschema was imported) for a fresh process loading ``path``."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        env={**os.environ, "RULESENGINE_CACHE_DIR": str(cache), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    problems, imported = out.stdout.split()
    return int(problems), imported == "True"


def digests(cache: Path) -> list[str]:
    path = cache / "valid-documents"
    return path.read_text().split() if path.exists() else []


def test_an_unchanged_valid_file_is_not_validated_again(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text(MODEL)
    cache = tmp_path / "cache"
    assert probe(model, cache) == (0, True)
    assert len(digests(cache)) == 1
    assert probe(model, cache) == (0, False)  # jsonschema not even imported
    model.write_text(MODEL.replace("below: 1", "below: 2"))
    assert probe(model, cache) == (0, True)  # a changed document is validated
    assert len(digests(cache)) == 2


def test_invalid_documents_are_never_remembered(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text(MODEL.replace("window: 1h", "windw: 1h"))
    cache = tmp_path / "cache"
    for _ in range(2):
        problems, imported = probe(model, cache)
        assert problems >= 1 and imported
    assert digests(cache) == []


def test_documents_with_environment_values_are_never_remembered(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text(MODEL.replace("below: 1", "below: ${MIN_ROWS}"))
    cache = tmp_path / "cache"
    for _ in range(2):
        assert probe(model, cache, MIN_ROWS="5") == (0, True)
    assert digests(cache) == []


def test_the_digest_covers_the_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("RULESENGINE_CACHE_DIR", str(tmp_path / "cache"))
    data = {"version": 1, "model": "x"}
    schema.remember_valid(data, "model")
    assert schema.remembered_valid(data, "model")
    assert not schema.remembered_valid({**data, "model": "y"}, "model")
    assert not schema.remembered_valid(data, "engine")
    shipped = schema.schema_text("model")
    monkeypatch.setattr(schema, "schema_text", lambda kind: shipped + " ")
    assert not schema.remembered_valid(data, "model")


def test_the_cache_keeps_a_bounded_number_of_digests(tmp_path, monkeypatch):
    monkeypatch.setenv("RULESENGINE_CACHE_DIR", str(tmp_path))
    for i in range(schema._REMEMBER + 20):
        schema.remember_valid({"n": i}, "model")
    kept = digests(tmp_path)
    assert len(kept) == schema._REMEMBER
    assert schema.remembered_valid({"n": schema._REMEMBER + 19}, "model")
    assert not schema.remembered_valid({"n": 0}, "model")


def test_a_document_with_a_lone_surrogate_escape_loads(tmp_path, monkeypatch):
    # "\ud800" is valid YAML but cannot be encoded as UTF-8: the digest must not fail
    monkeypatch.setenv("RULESENGINE_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model.yaml"
    model.write_text(MODEL.replace("model: cached", 'model: cached\nlabels: {team: "a\\ud800b"}'))
    for _ in range(2):
        report = load_report([model])
        assert report.problems == [] and report.config is not None
    assert len(digests(tmp_path / "cache")) == 1


@pytest.mark.parametrize("broken", ["file_in_the_way", "garbage"])
def test_an_unusable_cache_is_no_error(tmp_path, monkeypatch, broken):
    cache = tmp_path / "cache"
    if broken == "file_in_the_way":
        cache.write_text("not a folder")
    else:
        cache.mkdir()
        (cache / "valid-documents").write_bytes(b"\xff\xfe binary \x00")
    monkeypatch.setenv("RULESENGINE_CACHE_DIR", str(cache))
    model = tmp_path / "model.yaml"
    model.write_text(MODEL)
    for _ in range(2):
        report = load_report([model])
        assert report.problems == [] and report.config is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text(MODEL.replace("window: 1h", "windw: 1h"))
    assert load_report([bad]).problems
