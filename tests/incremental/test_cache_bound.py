"""``executor.cache_mib`` in engine.yaml bounds the partial-state cache of each
model: ``rulesengine run`` keeps the entries within it, and its results stay
those of a single pass."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from rulesengine.cli import main
from rulesengine.engine.partial_cache import SUFFIX
from rulesengine.spec.loader import load
from tests.incremental.helpers import AT, model_spec, write_hour, write_reference


def _config(root: Path, cache_mib: int | None) -> Path:
    for h in range(24):
        write_hour(root / "logs", AT - timedelta(hours=24 - h), 2000, h)
    write_reference(root / "ref.parquet")
    (root / "models").mkdir()
    spec = model_spec(root, window="24h")
    (root / "models" / "m.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    engine: dict = {"version": 1, "state": str(root / "state" / "state.db")}
    if cache_mib is not None:
        engine["executor"] = {"type": "local", "cache_mib": cache_mib}
    (root / "engine.yaml").write_text(yaml.safe_dump(engine, sort_keys=False))
    return root


def _run(root: Path, *extra: str) -> list[dict]:
    args = ["run", str(root), "--at", AT.isoformat(), "--format", "json", "--fail-on", "never"]
    got = CliRunner().invoke(main, [*args, *extra])
    assert got.exit_code == 0, got.output
    return json.loads(got.output)["models"][0]["results"]


def _cache_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "state" / "partials").rglob(f"*{SUFFIX}"))


def test_cache_mib_reaches_the_executor_spec(tmp_path: Path) -> None:
    _config(tmp_path, 3)
    assert load([tmp_path], env={}).engine.executor.cache_bytes == 3 * 2**20
    (tmp_path / "engine.yaml").write_text("version: 1\n")
    assert load([tmp_path], env={}).engine.executor.cache_bytes == 256 * 2**20


def test_run_keeps_the_cache_within_cache_mib(tmp_path: Path) -> None:
    """With the default bound the run's entries stay; with ``cache_mib: 1`` the
    cache is cut to 1 MiB after the run, and the results equal --no-cache's."""
    big = _config(tmp_path / "big", None)
    _run(big)
    assert _cache_bytes(big) > 2**20  # the entries this data gives are larger
    small = _config(tmp_path / "small", 1)
    cached = _run(small)
    assert 0 < _cache_bytes(small) <= 2**20
    again = _run(small)
    single = _run(small, "--no-cache")
    for a, b, c in zip(cached, again, single, strict=True):
        assert (a["monitor"], a["status"]) == (c["monitor"], c["status"])
        assert (b["monitor"], b["status"]) == (c["monitor"], c["status"])
