"""``rulesengine init --from-reference``: a starter model spec from a reference dataset.

The reference file is read once (through the engine's own source reader, so the
dtypes are those the ``schema`` check sees) and profiled: null rates, numeric
ranges and the values of low-cardinality text columns. From that profile the
spec is written as YAML text by hand, so that every number carries a comment
saying where it came from, and loaded back through the real loader before it
is returned. The margins are the module constants below (documented in
docs/init.md); with them, evaluating the spec against the reference itself
fires nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import polars as pl

from rulesengine.errors import DataError, RulesEngineError

NULL_WARN_FACTOR, NULL_WARN_PLUS = 2, 0.01  # warn above max(rate × 2, rate + 0.01)
NULL_CRIT_FACTOR, NULL_CRIT_PLUS = 5, 0.05  # critical above max(rate × 5, rate + 0.05)
RANGE_MARGIN = 0.10  # min/max widened by 10 % of the observed range on each side
RANGE_WARN, RANGE_CRIT = 0.001, 0.01  # share of values outside [min, max]
CATEGORY_CUTOFF = 20  # text columns with at most this many distinct values
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


class InitError(RulesEngineError):
    """Bad input to ``init``: a one-line message, exit code 2."""

    exit_code = 2


@dataclass
class Column:
    """What the reference says about one column."""

    name: str
    dtype: pl.DataType
    family: str
    nulls: int
    low: float | None = None
    high: float | None = None
    values: list[str] = field(default_factory=list)
    distinct: int = 0


def family_of(dtype: pl.DataType) -> str:
    """The dtype family the ``schema`` check understands (docs/spec.md, schema)."""
    name = type(dtype).__name__ if not isinstance(dtype, type) else dtype.__name__
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if dtype.is_numeric():
        return "numeric"
    simple = {"String": "string", "Categorical": "string", "Enum": "string"}
    simple |= {"Boolean": "boolean", "Date": "date", "Datetime": "datetime"}
    simple |= {"Duration": "duration", "Time": "time"}
    return simple.get(name, name)  # List, Struct, Binary, Null: the exact Polars name


def read_reference(path: Path) -> tuple[pl.Schema, pl.DataFrame]:
    """The file's schema as the ``schema`` check reads it, and its rows."""
    from rulesengine.engine.sources import FILE_COLUMN, NoFiles, file_schema, scan
    from rulesengine.spec.model import SourceSpec
    from rulesengine.spec.semantic import format_of

    if not path.is_file():
        raise InitError(f"--from-reference: {path} is not a file")
    fmt = format_of(str(path))
    if fmt is None:
        raise InitError(
            f"--from-reference: cannot tell the format of {path.name} from its extension "
            "(.parquet, .csv, .tsv, .ndjson, .jsonl, .arrow)"
        )
    sep = "\t" if ".tsv" in path.name.lower() else ","
    source = SourceSpec("reference", str(path.resolve()), fmt, separator=sep)
    try:
        schema = file_schema(source, source.path)
        frame = scan(source).collect()
    except NoFiles:
        raise InitError(f"--from-reference: {path} is empty") from None
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return schema, frame.drop(FILE_COLUMN, strict=False)


def profile(schema: pl.Schema, frame: pl.DataFrame, timestamp: str | None) -> list[Column]:
    """Every column of the reference, with the numbers the spec is built from."""
    out = []
    for name, dtype in schema.items():
        s = frame.get_column(name) if name in frame.columns else pl.Series(name, [], dtype)
        col = Column(name, dtype, family_of(dtype), s.null_count())
        if name == timestamp:
            out.append(col)
            continue
        if dtype.is_numeric():
            finite = s.drop_nulls()
            if dtype.is_float():
                finite = finite.filter(finite.is_finite())
            if len(finite):
                col.low, col.high = float(finite.min()), float(finite.max())  # type: ignore[arg-type]
        elif col.family == "string":
            distinct = s.drop_nulls().cast(pl.String).unique()
            col.distinct = len(distinct)
            if col.distinct <= CATEGORY_CUTOFF:
                col.values = sorted(distinct.to_list())
        out.append(col)
    return out


def null_thresholds(rate: float) -> tuple[float, float]:
    """(warn, critical) for a null rate observed in the reference, computed in
    decimal (0.01 × 5 is 0.05, not 0.0500…01) and rounded up to 4 decimals."""
    r = Decimal(repr(rate))
    warn = max(r * NULL_WARN_FACTOR, r + Decimal(repr(NULL_WARN_PLUS)))
    crit = max(r * NULL_CRIT_FACTOR, r + Decimal(repr(NULL_CRIT_PLUS)))
    return _ceil4(warn), max(_ceil4(warn), _ceil4(crit))


def _ceil4(x: Decimal) -> float:
    return float(x.quantize(Decimal("0.0001"), rounding=ROUND_CEILING))


def range_bounds(low: float, high: float, integer: bool) -> tuple[float, float]:
    """[min, max] for an observed range: widened by RANGE_MARGIN of its width (of
    |value|, or 1, when the range is a single value), kept ≥ 0 when no value was
    negative, rounded outward (to integers for integer columns, else to 6
    significant digits)."""
    span = high - low
    margin = RANGE_MARGIN * (span if span > 0 else (abs(high) or 1.0))
    lo, hi = low - margin, high + margin
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        return float(math.floor(lo)), float(math.ceil(hi))
    return _round_out(lo, ROUND_FLOOR), _round_out(hi, ROUND_CEILING)


def _round_out(x: float, mode: str) -> float:
    if x == 0:
        return 0.0
    exp = math.floor(math.log10(abs(x))) - 5
    return float(Decimal(repr(x)).quantize(Decimal(f"1e{exp}"), rounding=mode))


def q(text: str) -> str:
    """A YAML scalar for ``text``: plain when safe, else a JSON (double-quoted) string."""
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def num(x: float) -> str:
    """A number as YAML: integers without a fraction."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def is_identifier(c: Column, rows: int) -> bool:
    """A text column above the category cutoff whose non-null values are all
    different (an id): left out of drift, where every new id would drift."""
    return c.family == "string" and c.distinct > CATEGORY_CUTOFF and c.distinct == rows - c.nulls


def monitor_name(prefix: str, column: str, taken: set[str]) -> str:
    """``prefix-column``, made a valid and unique monitor name."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", f"{prefix}-{column}")[:120]
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _header(model: str, ref: Path, rows: int, ref_path: str, timestamp: str | None) -> list[str]:
    ext = "".join(ref.suffixes[-2:]) if ref.suffix in (".gz", ".zst", ".bz2") else ref.suffix
    lines = [
        f"# Starter spec written by `rulesengine init --from-reference {ref.name}`",
        f"# from {rows:,} rows of {ref.name}. Every number below says where it came from;",
        "# tighten or loosen them once you have seen real traffic. No row_count or",
        "# freshness check: add them once you know the model's volume and cadence.",
        "version: 1",
        f"model: {q(model)}",
        "",
        "sources:",
        "  requests:",
        "    # placeholder: point this at the model's live logs (edit me)",
        f"    path: {q(f'data/{model}/requests/*{ext}')}",
    ]
    if timestamp is not None:
        lines.append(f"    timestamp: {q(timestamp)}")
    lines += [
        "  reference:",
        "    # the reference the numbers below come from; no timestamp: read whole",
        f"    path: {q(ref_path)}",
        "",
        "# evaluation: every/window/min_rows come from engine.yaml's defaults; set them",
        "# here to override.",
    ]
    return lines


def _schema_check(cols: list[Column], taken: set[str]) -> list[str]:
    taken.add("schema")
    lines = [
        "  # dtype families as read from the reference (an Int32 log column still",
        "  # fits 'integer'); write an exact Polars dtype (Int64) to pin the width",
        "  - name: schema",
        "    source: requests",
        "    type: schema",
        "    expected_columns:",
    ]
    lines += [f"      {q(c.name)}: {q(c.family)}" for c in cols]
    return lines


def _null_checks(cols: list[Column], rows: int, taken: set[str]) -> list[str]:
    lines = []
    for c in cols:
        rate = c.nulls / rows if rows else 0.0
        warn, crit = null_thresholds(rate)
        lines += [
            f"  # observed null rate {rate:.4g} ({c.nulls:,} of {rows:,} rows);"
            f" warn above max(rate x {NULL_WARN_FACTOR}, rate + {NULL_WARN_PLUS}),"
            f" critical above max(rate x {NULL_CRIT_FACTOR}, rate + {NULL_CRIT_PLUS})",
            f"  - {{name: {monitor_name('nulls', c.name, taken)}, source: requests,"
            f" type: null_rate, column: {q(c.name)},",
            f"     warn: {{above: {num(warn)}}}, critical: {{above: {num(crit)}}}}}",
        ]
    return lines


def _range_checks(cols: list[Column], taken: set[str]) -> list[str]:
    lines = []
    for c in cols:
        if c.low is None or c.high is None:
            continue
        lo, hi = range_bounds(c.low, c.high, c.family == "integer")
        lines += [
            f"  # observed min {num(c.low)}, max {num(c.high)}; widened by"
            f" {RANGE_MARGIN:.0%} of the range on each side"
            + (" (not below 0: no negative value seen)" if c.low >= 0 else ""),
            f"  - {{name: {monitor_name('range', c.name, taken)}, source: requests,"
            f" type: out_of_range, column: {q(c.name)},",
            f"     min: {num(lo)}, max: {num(hi)},"
            f" warn: {{above: {num(RANGE_WARN)}}}, critical: {{above: {num(RANGE_CRIT)}}}}}",
        ]
    return lines


def _category_checks(cols: list[Column], taken: set[str]) -> list[str]:
    lines = []
    for c in cols:
        if c.family != "string" or not c.values:
            continue
        values = ", ".join(json.dumps(v, ensure_ascii=False) for v in c.values)
        lines += [
            f"  # the {c.distinct} distinct values seen in the reference"
            f" (text columns with at most {CATEGORY_CUTOFF} get this check)",
            f"  - {{name: {monitor_name('values', c.name, taken)}, source: requests,"
            f" type: allowed_values, column: {q(c.name)},",
            f"     values: [{values}],",
            "     warn: {above: 0}, critical: {above: 0.01}}",
        ]
    return lines


def _drift(features: list[Column], ids: list[Column], taken: set[str]) -> list[str]:
    if not features:
        return []
    names = ", ".join(q(c.name) for c in features)
    left_out = [f"  # left out: {c.name} (every value distinct: an id)" for c in ids]
    return [
        "",
        "drift:",
        "  # every feature against the reference (not the timestamp, temporal or nested",
        "  # columns); auto picks the method per column (docs/drift.md)",
        *left_out,
        f"  - name: {monitor_name('features', 'drift', taken)}",
        "    source: requests",
        "    reference: reference",
        f"    columns: [{names}]",
        "    method: auto",
    ]


def starter_spec(reference: Path, model: str, timestamp: str | None, ref_path: str) -> str:
    """The starter spec's YAML text for ``reference``; ``ref_path`` is how the spec
    names the reference file (relative to the config root, or absolute)."""
    if not _NAME.match(model):
        raise InitError(
            f"--model: '{model}' is not a valid name: letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, at most 128 characters"
        )
    schema, frame = read_reference(reference)
    if frame.height == 0:
        raise InitError(f"--from-reference: {reference.name} has no rows: nothing to learn from")
    if timestamp is not None and timestamp not in schema:
        raise InitError(
            f"--timestamp: {reference.name} has no column '{timestamp}' "
            f"(it has {', '.join(schema.names()[:20])})"
        )
    cols = profile(schema, frame, timestamp)
    rest = [c for c in cols if c.name != timestamp]
    kinds = ("integer", "float", "numeric", "string", "boolean")
    features = [c for c in rest if c.family in kinds and not is_identifier(c, frame.height)]
    taken: set[str] = set()
    lines = _header(model, reference, frame.height, ref_path, timestamp)
    lines += ["", "checks:", *_schema_check(cols, taken)]
    lines += _null_checks(rest, frame.height, taken)
    lines += _range_checks(rest, taken)
    lines += _category_checks(rest, taken)
    lines += _drift(features, [c for c in rest if is_identifier(c, frame.height)], taken)
    text = "\n".join(lines) + "\n"
    check_text(text)
    return text


def check_text(text: str) -> None:
    """Load ``text`` back through the real loader (YAML, schema, meaning); a problem
    here is a bug in ``init``, reported as such rather than written out."""
    from rulesengine.spec.loader import read_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "starter.yaml"
        path.write_text(text, encoding="utf-8")
        loaded = read_file(path, "model", {}, Path(tmp))
    errors = [p for p in loaded.problems.problems if p.severity == "error"]
    if errors or loaded.data is None:
        first = errors[0] if errors else None
        where = f"line {first.line}: {first.message}" if first else "no data"
        raise RulesEngineError(f"init wrote a spec that does not validate ({where}); a bug")


def reference_path(reference: Path, out: Path | None) -> str:
    """How the spec names the reference: relative to the config root that will
    govern ``out`` when the file lies inside it, else absolute."""
    ref = reference.resolve()
    if out is None:
        return str(ref)
    root = config_root(out)
    try:
        return ref.relative_to(root).as_posix()
    except ValueError:
        return str(ref)


def config_root(out: Path) -> Path:
    """The directory relative paths of the spec at ``out`` resolve against: that of
    the engine.yaml in its directory or the parent, else its own (docs/spec.md)."""
    from rulesengine.spec.loader import engine_near

    out = out.resolve()
    engine = engine_near(out)
    return engine.parent if engine else out.parent


def engine_note(out: Path) -> str | None:
    """A note when no engine.yaml governs ``out``: the model then runs alone."""
    from rulesengine.spec.loader import engine_near

    if engine_near(out.resolve()) is not None:
        return None
    return (
        f"note: no engine.yaml in {out.parent} or its parent: the model runs alone, with "
        "the built-in defaults and no receivers (see docs/spec.md, File layout)"
    )


def write(text: str, out: Path) -> None:
    """Write ``text`` to ``out`` atomically; an existing file is never overwritten."""
    if out.exists():
        raise InitError(f"--out: {out} exists; init never overwrites a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
