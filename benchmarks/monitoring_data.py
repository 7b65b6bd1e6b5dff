"""Generate prediction logs for the data-check and general-monitor benchmarks.

    .venv/bin/python benchmarks/monitoring_data.py [--rows N] [--seed S] [--out DIR]

Writes, into ``DIR`` (default ``benchmarks/data/monitoring-N``):

* ``requests/part-KK.parquet``: N rows of a fraud model's request log in 8 files of
  consecutive time, every timestamp inside the one-day window that ends at ``AT``
  (2026-11-27T00:00:00Z). Columns: ``ts``, ``request_id`` (0..N-1), ``model_version``
  (three versions, 50/30/20%), ``amount`` (log-normal, 2% null), ``latency_ms``
  (gamma; 0.5% above 1000 and 0.1% negative, i.e. out of range), ``country`` (eight
  codes plus 0.3% unexpected ``XX``), ``score`` (in [0, 1]);
* ``labels/part-KK.parquet``: ground truth that arrives later: ``request_id``,
  ``is_fraud``, ``labeled_at`` (the request's time plus an exponential delay of mean
  8 h, so the last hours of the window are partly unlabelled at ``AT``); 3% of the
  requests are labelled twice (a correction, later, that flips the label);
* ``training.parquet``: a static reference of ``REFERENCE_ROWS`` rows of
  ``amount`` and ``country``, from slightly different distributions (PSI > 0);
* ``manifest.json``: seed, rows, ``at``, the country codes (written last).

Columns are drawn from NumPy generators seeded from ``(seed, column, part)``, so the
same seed and row count give the same files. Only Polars and NumPy are needed.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SEED = 20261207
AT = datetime(2026, 11, 27, tzinfo=UTC)  # the window is (AT - 1 day, AT]
WINDOW = timedelta(days=1)
PARTS = 8
REFERENCE_ROWS = 1_000_000
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR"]
COUNTRY_WEIGHTS = np.array([0.35, 0.15, 0.12, 0.1, 0.08, 0.08, 0.07, 0.05])
VERSIONS = ["v1", "v2", "v3"]
HERE = Path(__file__).resolve().parent


def _rng(seed: int, column: int, part: int) -> np.random.Generator:
    return np.random.default_rng([seed, column, part])


def _requests(
    seed: int, part: int, first: int, n: int, start_us: int, span_us: int
) -> pl.DataFrame:
    g = [_rng(seed, c, part) for c in range(8)]
    offsets = np.sort(g[0].integers(0, span_us, n)) + start_us + 1  # inside (start, end]
    amount = g[1].lognormal(4.0, 1.0, n)
    amount_null = g[1].random(n) < 0.02
    latency = g[2].gamma(4.0, 40.0, n)
    odd = g[2].random(n)
    latency[odd < 0.005] += 1000.0  # too slow
    latency[(odd >= 0.005) & (odd < 0.006)] *= -1  # a clock bug: negative
    codes = g[3].choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    country = np.asarray(COUNTRIES, dtype=object)[codes]
    country[g[3].random(n) < 0.003] = "XX"
    version = np.asarray(VERSIONS, dtype=object)[g[4].choice(3, size=n, p=[0.5, 0.3, 0.2])]
    score = g[5].beta(1.2, 6.0, n)
    start = pl.lit(AT - WINDOW, dtype=pl.Datetime("us", "UTC"))
    return pl.DataFrame(
        {
            "ts": pl.Series(offsets).cast(pl.Duration("us")),
            "request_id": np.arange(first, first + n, dtype=np.int64),
            "model_version": pl.Series(version, dtype=pl.String),
            "amount": pl.Series(amount).set(pl.Series(amount_null), None),
            "latency_ms": latency,
            "country": pl.Series(country, dtype=pl.String),
            "score": score,
        }
    ).with_columns((start + pl.col("ts")).alias("ts"))


def _labels(seed: int, part: int, requests: pl.DataFrame) -> pl.DataFrame:
    g = _rng(seed, 20, part)
    n = requests.height
    score = requests["score"].to_numpy()
    is_fraud = g.random(n) < np.clip(score * 1.6, 0, 1) * 0.35  # the score is informative
    delay_us = (g.exponential(8 * 3600, n) * 1e6).astype(np.int64)
    first = requests.select(
        "request_id",
        pl.Series("is_fraud", is_fraud),
        (pl.col("ts") + pl.Series(delay_us).cast(pl.Duration("us"))).alias("labeled_at"),
    )
    fix = g.random(n) < 0.03  # corrections: a later label with the other answer
    later = (g.exponential(4 * 3600, n) * 1e6).astype(np.int64) + 1
    second = first.filter(pl.Series(fix)).with_columns(
        ~pl.col("is_fraud"),
        pl.col("labeled_at") + pl.Series(later[fix]).cast(pl.Duration("us")),
    )
    return pl.concat([first, second]).sort("labeled_at")


def _reference(seed: int) -> pl.DataFrame:
    g = _rng(seed, 30, 0)
    n = REFERENCE_ROWS
    shifted = COUNTRY_WEIGHTS * np.r_[1.2, np.ones(6), 0.6]
    codes = g.choice(len(COUNTRIES), size=n, p=shifted / shifted.sum())
    return pl.DataFrame(
        {
            "amount": g.lognormal(3.9, 1.05, n),
            "country": pl.Series(np.asarray(COUNTRIES, dtype=object)[codes], dtype=pl.String),
        }
    )


def generate(out: Path, rows: int, seed: int = SEED) -> Path:
    """Write the data set (see the module docstring) into ``out``."""
    (out / "requests").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    span_us = int(WINDOW.total_seconds() * 1e6) // PARTS
    bounds = np.linspace(0, rows, PARTS + 1).astype(int)
    for part in range(PARTS):
        first, n = int(bounds[part]), int(bounds[part + 1] - bounds[part])
        req = _requests(seed, part, first, n, part * span_us, span_us)
        req.write_parquet(out / "requests" / f"part-{part:02d}.parquet")
        _labels(seed, part, req).write_parquet(out / "labels" / f"part-{part:02d}.parquet")
    _reference(seed).write_parquet(out / "training.parquet")
    manifest = {
        "seed": seed,
        "rows": rows,
        "at": AT.isoformat().replace("+00:00", "Z"),
        "countries": COUNTRIES,
        "versions": VERSIONS,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def data_dir(rows: int) -> Path:
    return HERE / "data" / f"monitoring-{rows}"


def ensure(rows: int, seed: int = SEED) -> Path:
    """The data set for ``rows``, generated if it is missing."""
    out = data_dir(rows)
    if not (out / "manifest.json").exists():
        generate(out, rows, seed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=7_200_000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    print(f"wrote {generate(args.out or data_dir(args.rows), args.rows, args.seed)}")


if __name__ == "__main__":
    main()
