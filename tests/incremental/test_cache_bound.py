"""``executor.cache_mib`` in engine.yaml bounds the partial-state cache of each
model: ``rulesengine run`` keeps the entries within it, and its results stay
those of a single pass."""

from __future__ import annotations

import json
import re
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


def _invoke(root: Path, *extra: str) -> tuple[list[dict], str]:
    """(results, stderr) of ``rulesengine run --format json``."""
    args = ["run", str(root), "--at", AT.isoformat(), "--format", "json", "--fail-on", "never"]
    got = CliRunner().invoke(main, [*args, *extra])
    assert got.exit_code == 0, got.output
    return json.loads(got.stdout)["models"][0]["results"], got.stderr


def _run(root: Path, *extra: str) -> list[dict]:
    return _invoke(root, *extra)[0]


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


def test_a_bound_below_the_window_is_a_warning_that_names_the_key(tmp_path: Path) -> None:
    """When the window's own entries do not fit, ``run`` says so on stderr, with
    their size and the cache_mib to set; the JSON on stdout is unchanged. With
    room enough, nothing is said."""
    small = _config(tmp_path / "small", 1)
    _results, err = _invoke(small)
    warning = [ln for ln in err.splitlines() if "partial-state cache" in ln]
    assert len(warning) == 1, err
    taken = re.search(r"entries take ([\d,]+)\.\d MiB", warning[0])
    wanted = re.search(r"at least ([\d,]+)$", warning[0])
    assert taken and wanted, warning
    size, want = (int(m.group(1).replace(",", "")) for m in (taken, wanted))
    assert size >= 1 and want > size  # a quarter above, rounded up
    assert "executor.cache_mib (1 MiB)" in warning[0] and warning[0].startswith("warning: m: ")
    roomy = _config(tmp_path / "roomy", want)
    assert "partial-state cache" not in _invoke(roomy)[1]
    assert "partial-state cache" not in _invoke(roomy)[1]  # filled: nothing deleted
