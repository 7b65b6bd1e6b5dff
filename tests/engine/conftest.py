"""Helpers for the engine oracle tests.

Every test writes its own small data files and one model YAML into ``tmp_path``,
loads it through the public loader and evaluates it at a fixed ``AT``. Expected
values always come from closed-form arithmetic or numpy/scipy, never from the
engine itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from rulesengine.engine.evaluate import evaluate
from rulesengine.engine.results import ModelResults, Result
from rulesengine.spec.loader import load

AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def minutes_ago(m: float) -> datetime:
    return AT - timedelta(minutes=m)


def write_frame(path: Path, df: pl.DataFrame) -> Path:
    """Write ``df`` by the extension of ``path`` (parquet, csv, ndjson)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix in (".parquet", ".pq"):
        df.write_parquet(path)
    elif suffix == ".csv":
        df.write_csv(path)
    elif suffix in (".ndjson", ".jsonl"):
        df.write_ndjson(path)
    else:  # pragma: no cover - helper misuse
        raise ValueError(path)
    return path


def write_ndjson_rows(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """NDJSON written by hand, so each file holds exactly the keys given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
    return path


class Harness:
    """Writes a model YAML beside the data and evaluates it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def frame(self, name: str, df: pl.DataFrame) -> Path:
        return write_frame(self.root / name, df)

    def model_yaml(self, spec: Mapping[str, Any], name: str = "model.yaml") -> Path:
        full = {"version": 1, "model": "m", **spec}
        path = self.root / name
        path.write_text(yaml.safe_dump(full, sort_keys=False), encoding="utf-8")
        return path

    def run_all(self, *specs: Mapping[str, Any], at: datetime = AT) -> list[ModelResults]:
        paths = [
            self.model_yaml({"model": spec.get("model", f"m{i}"), **spec}, f"model{i}.yaml")
            for i, spec in enumerate(specs)
        ]
        return evaluate(load(paths, env={}), at)

    def run(self, spec: Mapping[str, Any], at: datetime = AT) -> list[Result]:
        path = self.model_yaml(spec)
        (model,) = evaluate(load([path], env={}), at)
        return list(model.results)

    def run_model(self, spec: Mapping[str, Any], at: datetime = AT) -> ModelResults:
        path = self.model_yaml(spec)
        (model,) = evaluate(load([path], env={}), at)
        return model


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def get(
    results: Sequence[Result],
    monitor: str,
    segment: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> Result:
    """The one result of ``monitor`` for ``segment`` (default: overall)."""
    seg = dict(segment or {})
    found = [
        r
        for r in results
        if r.monitor == monitor
        and dict(r.segment) == seg
        and (column is None or r.column == column)
    ]
    assert len(found) == 1, f"{monitor} {seg}: {len(found)} results in {results!r}"
    return found[0]


def one(results: Sequence[Result], monitor: str) -> Result:
    """The single result of ``monitor`` (asserting there is only one)."""
    found = [r for r in results if r.monitor == monitor]
    assert len(found) == 1, f"{monitor}: {found!r}"
    return found[0]


def stamps(n: int, *, start_minutes: float = 55.0, step_minutes: float | None = None) -> list:
    """``n`` distinct timestamps inside the default 1h window ending at AT."""
    if step_minutes is None:
        step_minutes = start_minutes / max(n, 1)
    return [
        AT - timedelta(minutes=start_minutes) + timedelta(minutes=i * step_minutes)
        for i in range(n)
    ]


def src(path: str, timestamp: str | None = "ts", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path}
    if timestamp is not None:
        out["timestamp"] = timestamp
    out.update(extra)
    return out
