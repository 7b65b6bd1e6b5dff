"""``validate --check-sources``: check a valid spec against its sources' schemas.

Reads no data: parquet/IPC metadata, the CSV header, the first NDJSON lines.
Every column a monitor names, and every column its SQL uses, must exist with a
dtype that fits (a quantile over a numeric column, a regex over strings).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from rulesengine.engine.sources import SourceSchema, read_schema
from rulesengine.errors import DataError, KeyPath, Problem, did_you_mean, first_line
from rulesengine.spec.loader import display
from rulesengine.spec.model import (
    CheckSpec,
    Config,
    DriftSpec,
    KpiSpec,
    MetricSpec,
    ModelSpec,
    MonitorSpec,
)
from rulesengine.spec.sql import SqlError, compile_sql

NUMERIC_CHECKS = {"out_of_range", "outlier_rate"}
NUMERIC_METRICS = {"mean", "std", "min", "max", "quantile"}


def _family(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_temporal():
        return "temporal"
    if dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return "string"
    if dtype == pl.Boolean:
        return "boolean"
    return str(dtype)


class _Checker:
    def __init__(self, model: ModelSpec) -> None:
        self.model = model
        self.problems: list[Problem] = []
        self.schemas: dict[str, SourceSchema] = {}
        self.seen: set[tuple[KeyPath, str]] = set()

    def add(self, path: KeyPath, message: str, severity: str = "error") -> None:
        loc = self.model.locator
        pos = loc.pos(path) if loc else None
        if (path, message) in self.seen:
            return
        self.seen.add((path, message))
        self.problems.append(
            Problem(
                self.model.file,
                pos.line if pos else 1,
                pos.col if pos else 1,
                path,
                message,
                severity,
            )
        )

    def schema(self, name: str) -> pl.Schema | None:
        return self.schemas[name].schema if name in self.schemas else None

    def run(self) -> list[Problem]:
        for name, source in self.model.sources.items():
            path: KeyPath = ("sources", name, "path")
            try:
                found = read_schema(source)
            except DataError as exc:
                self.add(path, str(exc))
                continue
            self.schemas[name] = found
            shown = source.path if source.is_remote else display(Path(source.path))
            if found.schema is None:
                if source.required:
                    self.add(path, f"no files match '{shown}' and the source is required")
                else:
                    self.add(
                        path,
                        f"no files match '{shown}' yet: columns not checked "
                        "(monitors will report no_data)",
                        "warning",
                    )
                continue
            if source.timestamp:
                self._timestamp(name, source.timestamp)
            if source.partition_date:
                self._column(("sources", name, "partition_date"), name, source.partition_date)
        for monitor in self.model.monitors():
            if monitor.enabled:
                self._monitor(monitor)
        return self.problems

    def _timestamp(self, source: str, column: str) -> None:
        schema = self.schema(source)
        path: KeyPath = ("sources", source, "timestamp")
        if schema is None:
            return
        if column not in schema:
            self._missing(path, column, source, schema)
        elif _family(schema[column]) not in ("temporal", "numeric", "string"):
            self.add(
                path,
                f"timestamp column '{column}' is {schema[column]}: use a datetime, "
                "an epoch number or an ISO string",
            )

    def _missing(self, path: KeyPath, column: str, source: str, schema: pl.Schema) -> None:
        self.add(
            path,
            f"column '{column}' not found in source '{source}'"
            f"{did_you_mean(column, schema.names())}",
        )

    def _column(
        self, path: KeyPath, source: str, column: str | None, family: str | None = None
    ) -> None:
        schema = self.schema(source)
        if schema is None or column is None:
            return
        if column not in schema:
            self._missing(path, column, source, schema)
            return
        got = _family(schema[column])
        if family and got != family:
            self.add(
                path,
                f"column '{column}' of source '{source}' is {schema[column]}, "
                f"but this needs a {family} column",
            )

    def _columns(self, path: KeyPath, source: str, columns: Iterable[str]) -> None:
        for i, column in enumerate(columns):
            self._column((*path, i), source, column)

    def _frame(self, monitor: MonitorSpec) -> pl.DataFrame | None:
        """An empty frame with the monitor's columns (joined label columns included)."""
        schema = self.schema(monitor.source)
        if schema is None:
            return None
        columns = dict(schema)
        join = getattr(monitor, "join", None)
        if join is not None:
            other = self.schema(join.source)
            if other is None:
                return None
            for name, dtype in other.items():
                columns.setdefault(name, dtype)
        return pl.DataFrame(schema=columns)

    def _sql(self, monitor: MonitorSpec, key: str, text: str | None, shape: str) -> None:
        if text is None:
            return
        frame = self._frame(monitor)
        if frame is None:
            return
        path = (*monitor.path, key)
        try:
            # compile_sql allowlists the text first: nothing it names is ever opened, and
            # the frame is empty, so this checks the schema without reading a row.
            expr = compile_sql(text).expr
        except SqlError:
            return  # already reported, with its reason, by the spec's own validation
        try:
            out = frame.lazy().filter(expr) if shape == "filter" else frame.lazy().select(expr)
            result = out.collect()
        except (Exception, pl.exceptions.PanicException) as exc:  # a panic is a BaseException
            first = first_line(exc)
            if "unable to find column" in first:
                missing = first.split('"')[1] if '"' in first else "?"
                self._missing(path, missing, monitor.source, frame.schema)
            else:
                self.add(path, f"does not fit the source's columns: {first}")
            return
        if shape == "aggregate" and result.height != 1:
            self.add(
                path,
                "must aggregate the rows to one value (e.g. avg(...), sum(...)); "
                "this is a per-row expression",
            )
        if shape == "row" and result.height != 0:
            self.add(path, "must be a per-row expression; this one aggregates the rows")

    def _monitor(self, m: MonitorSpec) -> None:
        src = m.source
        own = self.model.locator is not None and (*m.path, "segment_by") in (
            self.model.locator.positions
        )
        if own:
            self._columns((*m.path, "segment_by"), src, m.segment_by)
        else:  # inherited from evaluation: report there, once per source
            self._columns(("evaluation", "segment_by"), src, m.segment_by)
        self._sql(m, "filter", m.filter, "filter")
        if isinstance(m, CheckSpec):
            family = (
                "numeric"
                if m.type in NUMERIC_CHECKS
                else ("string" if m.type == "pattern" else None)
            )
            if m.type == "freshness" and m.column:
                self._column((*m.path, "column"), src, m.column)
            elif m.type != "freshness":
                self._column((*m.path, "column"), src, m.column, family)
            self._columns((*m.path, "columns"), src, m.columns)
            if m.reference:
                self._column((*m.path, "column"), m.reference, m.column, family)
            self._sql(m, "expr", m.expr, "aggregate")
        elif isinstance(m, MetricSpec):
            self._column(
                (*m.path, "column"), src, m.column, "numeric" if m.type in NUMERIC_METRICS else None
            )
            for key in ("prediction", "target", "score", "predicate"):
                self._sql(m, key, getattr(m, key), "row")
            self._sql(m, "expr", m.expr, "aggregate")
            self._join(m)
        elif isinstance(m, KpiSpec):
            self._sql(m, "expr", m.expr, "aggregate")
            self._join(m)
        elif isinstance(m, DriftSpec):
            self._columns((*m.path, "columns"), src, m.columns)
            ref = m.reference.source
            if ref != src:
                self._columns((*m.path, "columns"), ref, m.columns)
            for column in m.overrides:
                self._column((*m.path, "overrides", column), src, column)

    def _join(self, m: Any) -> None:
        if m.join is None:
            return
        for source in (m.source, m.join.source):
            for column in m.join.on:
                self._column((*m.path, "join", "on"), source, column)


def check_sources(config: Config) -> list[Problem]:
    """Problems (errors and warnings) found by comparing specs with source schemas."""
    problems: list[Problem] = []
    for model in config.models:
        problems.extend(_Checker(model).run())
    return problems
