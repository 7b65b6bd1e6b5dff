"""Generate the drift benchmark's data: a reference and a current file, with drift
injected in exactly five of 25 columns, plus the rulesengine model that watches them.

    .venv/bin/python benchmarks/generate.py [--rows N] [--seed S] [--out DIR]

Writes, into ``DIR`` (default ``benchmarks/data/rows-N``):

* ``reference.parquet``: N rows, 20 numeric and 5 categorical columns, no timestamp;
* ``current.parquet``: N rows, the same columns plus ``ts``, every timestamp inside
  the one-day window that ends at ``AT`` (2026-11-27T00:00:00Z);
* ``model.yaml``: a rulesengine model with one drift monitor over all 25 columns,
  ``method: auto`` (wasserstein for the numeric columns, jensenshannon for the
  categorical ones at this size);
* ``manifest.json``: the seed, row count, column types and the injected columns.

Every column is drawn from a NumPy ``Generator`` seeded from ``(seed, column index,
side)``, so a column's values do not depend on how the others are drawn and the same
seed always gives the same files. Only Polars and NumPy are needed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SEED = 20261127
ROWS = 1_000_000
AT = datetime(2026, 11, 27, tzinfo=UTC)  # the window is (AT - 1 day, AT]
WINDOW = timedelta(days=1)
HERE = Path(__file__).resolve().parent

Draw = Callable[[np.random.Generator, int], np.ndarray]


def _normal(mu: float, sigma: float) -> Draw:
    return lambda g, n: g.normal(mu, sigma, n)


def _mixture(base: Draw, other: Draw, share: float) -> Draw:
    """``share`` of the rows from ``other``, the rest from ``base``."""

    def draw(g: np.random.Generator, n: int) -> np.ndarray:
        out = base(g, n)
        pick = g.random(n) < share
        out[pick] = other(g, int(pick.sum()))
        return out

    return draw


def _zipf_weights(k: int, a: float = 1.0) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** a
    return w / w.sum()


# name → (reference draw, current draw or None when the column does not drift)
NUMERIC: dict[str, tuple[Draw, Draw | None, str]] = {
    "num_00": (_normal(0, 1), None, ""),
    "num_01": (_normal(100, 15), None, ""),
    "num_02": (lambda g, n: g.lognormal(0, 0.5, n), None, ""),
    "num_03": (lambda g, n: g.exponential(2.0, n), None, ""),
    # mean shift: +0.5 standard deviation (normed Wasserstein ≈ 0.5)
    "num_04": (_normal(50, 10), _normal(55, 10), "mean shift +0.5 sd"),
    "num_05": (lambda g, n: g.uniform(-3, 3, n), None, ""),
    "num_06": (lambda g, n: g.gamma(2.0, 1.5, n), None, ""),
    "num_07": (lambda g, n: g.poisson(30, n).astype(np.int64), None, ""),
    "num_08": (lambda g, n: g.standard_t(5, n), None, ""),
    # scale change: standard deviation ×1.6 (normed Wasserstein ≈ 0.48)
    "num_09": (_normal(0, 2), _normal(0, 3.2), "scale x1.6"),
    "num_10": (lambda g, n: g.beta(2, 5, n), None, ""),
    "num_11": (lambda g, n: g.integers(0, 1000, n, dtype=np.int64), None, ""),
    "num_12": (lambda g, n: g.weibull(1.5, n), None, ""),
    "num_13": (_mixture(_normal(-2, 1), _normal(2, 1), 0.5), None, ""),
    "num_14": (lambda g, n: g.laplace(0, 1, n), None, ""),
    # mixture: 20% of the rows move to a component 2.5 sd higher (≈ 0.5)
    "num_15": (_normal(10, 3), _mixture(_normal(10, 3), _normal(17.5, 3), 0.2), "mixture 20%"),
    "num_16": (lambda g, n: g.chisquare(4, n), None, ""),
    "num_17": (lambda g, n: g.lognormal(3, 1, n), None, ""),
    "num_18": (lambda g, n: g.negative_binomial(5, 0.1, n).astype(np.int64), None, ""),
    "num_19": (lambda g, n: g.logistic(0, 2, n), None, ""),
}

_W12 = _zipf_weights(12)
_W12_DRIFT = _W12 * np.r_[np.full(4, 0.6), np.ones(4), np.full(4, 2.2)]
# name → (categories, reference weights, current weights or None)
CATEGORICAL: dict[str, tuple[list[str], np.ndarray, np.ndarray | None, str]] = {
    "cat_0": (["a", "b", "c"], np.array([0.5, 0.3, 0.2]), None, ""),
    # re-weighted: a 15-point share moves from the first to the last category (JS ≈ 0.17)
    "cat_1": (
        ["web", "ios", "android", "tv", "other"],
        np.array([0.40, 0.25, 0.15, 0.12, 0.08]),
        np.array([0.25, 0.25, 0.15, 0.12, 0.23]),
        "re-weighted: 15 points from 'web' to 'other'",
    ),
    "cat_2": ([f"r{i}" for i in range(8)], _zipf_weights(8, 0.5), None, ""),
    # re-weighted: the head loses 40% of its weight, the tail more than doubles (≈ 0.18)
    "cat_3": (
        [f"c{i:02d}" for i in range(12)],
        _W12,
        _W12_DRIFT / _W12_DRIFT.sum(),
        "re-weighted: head x0.6, tail x2.2",
    ),
    "cat_4": ([f"k{i:02d}" for i in range(30)], _zipf_weights(30, 1.2), None, ""),
}

NUMERIC_COLUMNS = list(NUMERIC)
CATEGORICAL_COLUMNS = list(CATEGORICAL)
COLUMNS = NUMERIC_COLUMNS + CATEGORICAL_COLUMNS
INJECTED = {
    **{c: how for c, (_, cur, how) in NUMERIC.items() if cur is not None},
    **{c: how for c, (_, _, cur, how) in CATEGORICAL.items() if cur is not None},
}


def _rng(seed: int, column: int, side: int) -> np.random.Generator:
    return np.random.default_rng([seed, column, side])


def frame(rows: int, seed: int, current: bool) -> pl.DataFrame:
    side = 1 if current else 0
    data: dict[str, pl.Series] = {}
    for i, (name, (ref, cur, _)) in enumerate(NUMERIC.items()):
        draw = cur if current and cur is not None else ref
        data[name] = pl.Series(name, draw(_rng(seed, i, side), rows))
    for j, (name, (cats, ref_w, cur_w, _)) in enumerate(CATEGORICAL.items()):
        w = cur_w if current and cur_w is not None else ref_w
        codes = _rng(seed, 100 + j, side).choice(len(cats), size=rows, p=w)
        data[name] = pl.Series(name, np.asarray(cats, dtype=object)[codes], dtype=pl.String)
    df = pl.DataFrame(data)
    if current:
        # sorted event times strictly inside (AT - WINDOW, AT], as a log file would be
        span_us = int(WINDOW.total_seconds() * 1e6)
        offsets = np.sort(_rng(seed, 999, side).integers(1, span_us, rows))
        start = pl.lit(AT - WINDOW, dtype=pl.Datetime("us", "UTC"))
        df = df.with_columns(
            (start + pl.Series(offsets).cast(pl.Duration("us"))).alias("ts")
        ).select("ts", *COLUMNS)
    return df


MODEL = """\
# Generated by benchmarks/generate.py: one drift monitor over all 25 columns.
version: 1
model: drift-benchmark
sources:
  current: {{path: current.parquet, timestamp: ts}}
  reference: {{path: reference.parquet}}   # no timestamp: a static reference
evaluation: {{every: 1d, window: 1d, min_rows: 1}}
drift:
  - name: features
    source: current
    reference: reference
    method: auto        # wasserstein (numeric), jensenshannon (categorical) at this size
    columns: [{columns}]
"""


def generate(out: Path, rows: int = ROWS, seed: int = SEED) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    frame(rows, seed, current=False).write_parquet(out / "reference.parquet")
    frame(rows, seed, current=True).write_parquet(out / "current.parquet")
    (out / "model.yaml").write_text(MODEL.format(columns=", ".join(COLUMNS)))
    manifest = {
        "seed": seed,
        "rows": rows,
        "at": AT.isoformat().replace("+00:00", "Z"),
        "numeric": NUMERIC_COLUMNS,
        "categorical": CATEGORICAL_COLUMNS,
        "injected": INJECTED,
    }
    # written last: its presence means the data set is complete
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def data_dir(rows: int) -> Path:
    return HERE / "data" / f"rows-{rows}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=ROWS, help="rows per side (default 1M)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/data/rows-N")
    args = ap.parse_args()
    out = generate(args.out or data_dir(args.rows), args.rows, args.seed)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
