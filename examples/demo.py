"""Deterministic demo data for the example configs (``configs/models/*.yaml``).

``generate(out_dir)`` writes a few days of prediction and label logs for the three
example models, ending at ``at``, with exactly the layout the specs expect when
``out_dir`` is ``configs/data`` (labels and feedback carry ``model_version`` too, as
the specs segment every monitor by it)::

    fraud/requests/dt=YYYY-MM-DD/part-0.parquet   fraud/labels/YYYY-MM-DD.ndjson
    fraud/training.parquet
    demand/forecasts/YYYY-MM-DD.csv               demand/actuals/YYYY-MM-DD.csv
    assistant/requests/YYYY-MM-DD.ndjson          assistant/feedback/YYYY-MM-DD.ndjson
    incidents.json

Normal traffic stays comfortably inside every threshold of the specs. Four incidents
are injected shortly before ``at`` (see :func:`generate` and ``incidents.json``):

1. ``null-burst``: fraud-detector ``amount`` is null in 8% of the rows of the last
   hour;
2. ``schema-change``: the support-assistant request file dated ``at``'s day renames
   ``latency_ms`` to ``latency_s`` (seconds);
3. ``latency-spike``: fraud-detector latency p95 far above 250 ms in the last hour;
4. ``accuracy-drop``: fraud-detector v4 recall 0.5 on the requests of (at-3d, at-2d],
   the window a ``window: 1d, delay: 2d`` metric sees at ``at``; v3 and the overall
   recall stay above 0.7.

Identical arguments give byte-identical files. Drift-monitored columns are drawn from
a low-discrepancy sequence (a shuffled Kronecker sequence per model version), so that
every window, however short, matches the reference distribution closely: with plain
i.i.d. samples, Evidently-style default drift thresholds flag a few hundred rows of
undrifted data quite often, which would blur the incidents.

Run ``python examples/demo.py configs/data [--at ISO] [--seed N] [--days N]`` from a
checkout (the demo is not part of the installed package).

Live mode, ``python examples/demo.py configs/data/live --live`` (see :func:`live` and
the README's "Watch it live"), writes a config directory for ``rulesengine daemon``
(the demo config with every duration divided by ``--speed``) and keeps appending
every source's logs, timestamped now (each batch written as its interval begins),
with incidents on a schedule. It writes new files only, each under a temporary name
first and then renamed, and never touches the batch mode's output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import special

DEMO_AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

US_PER_S = 1_000_000
HOUR_US = 3600 * US_PER_S
DAY_US = 24 * HOUR_US
ISO_S = "%Y-%m-%dT%H:%M:%SZ"

# --- fraud-detector ---------------------------------------------------------------
FRAUD_PER_HOUR = 1600.0  # mean; daily cycle ±35%, peak 15:00 UTC
FRAUD_VERSIONS = ("v3", "v4")
FRAUD_V4_SHARE = 0.35
FRAUD_RATE = 0.01
FRAUD_RECALL = {"v3": 0.93, "v4": 0.94}  # share of fraud scored >= 0.5
FRAUD_FP_RATE = 0.0012  # share of legitimate requests scored >= 0.5
FRAUD_BASE_NULL = 0.0003
FRAUD_TRAINING_ROWS = 60_000
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "IN", "MX", "PL")
COUNTRY_P = (0.33, 0.12, 0.10, 0.08, 0.06, 0.05, 0.04, 0.05, 0.05, 0.04, 0.05, 0.03)
COUNTRY_P_FRAUD = (0.30, 0.10, 0.06, 0.06, 0.04, 0.04, 0.03, 0.04, 0.12, 0.08, 0.10, 0.03)
DEVICES = ("ios", "android", "web", "pos")
DEVICE_P = (0.38, 0.35, 0.23, 0.04)
DEVICE_P_FRAUD = (0.15, 0.25, 0.55, 0.05)
LABEL_MISSING = 0.05  # labels that never arrive
LABEL_MIN_DELAY_S = 600
LABEL_MAX_DELAY_S = 2 * 86400 - 600  # every label arrives within two days

# incidents
NULL_BURST_SHARE = 0.08
SPIKE_SLOW_SHARE = 0.25  # share of last-hour requests on the degraded path
SPIKE_SLOW_MEDIAN_MS = 380.0
ACCURACY_DROP_RECALL = 0.50
DESCRIPTIONS = {  # as incidents.json words them
    "null-burst": f"fraud-detector amount is null in {NULL_BURST_SHARE:.0%} of the rows "
    "of the last hour (per model version)",
    "schema-change": "support-assistant request files of at's day rename latency_ms to "
    "latency_s (seconds): latency_ms is absent from every row of the window, so "
    "latency-p95 cannot be computed; a run must not report ok: error (the column is "
    "missing from the window's files) is best; an engine that only sees an all-null "
    "column may say no_data or insufficient_data",
    "latency-spike": f"{SPIKE_SLOW_SHARE:.0%} of fraud-detector requests of the last hour "
    f"take a degraded path (median {SPIKE_SLOW_MEDIAN_MS:.0f} ms)",
    "accuracy-drop": f"fraud-detector v4 catches only {ACCURACY_DROP_RECALL:.0%} of fraud "
    "among the requests of (at-3d, at-2d], the window that recall/precision "
    "(window 1d, delay 2d) see at `at`; v3 and the overall recall stay above 0.7 "
    "(overall ok: the drop shows only per segment). precision stays ok in every "
    "segment.",
}

# --- demand-forecast --------------------------------------------------------------
REGIONS = ("north", "south", "west")
STORES_PER_REGION = 4
SKUS = 20
WEEKDAY_FACTOR = (0.92, 0.90, 0.94, 1.00, 1.12, 1.28, 0.84)  # Monday..Sunday
DEMAND_TREND_PER_DAY = 0.002

# --- support-assistant ------------------------------------------------------------
ASSISTANT_PER_HOUR = 1400.0  # mean; daily cycle ±40%, peak 14:00 UTC
ASSISTANT_MAX_DAYS = 2  # its monitors look back at most 1d + 30m; its logs are bulky
ASSISTANT_VERSIONS = ("asst-1.4", "asst-1.5")
ASSISTANT_MAX_TOKENS = 1024
FEEDBACK_SHARE = 0.06
STATUS_CODES = (200, 400, 429, 500, 503)
STATUS_P = (0.9868, 0.005, 0.007, 0.0008, 0.0004)
ANSWERS = (
    "You can reset your password under Settings > Security > Reset password.",
    "Your order has shipped and should arrive within 2-3 business days.",
    "I've opened a ticket for the billing team; they will email you within a day.",
    "Refunds go back to the original payment method within 5-7 days.",
    "To change your plan, open Billing and choose Change plan.",
    "Yes, the export includes all invoices from the selected period.",
    "Two-factor authentication can be enabled from the Security page.",
    "The outage is resolved; please retry and let me know if it persists.",
    "You can add team members from Admin > Users > Invite.",
    "Invoices are available as PDF under Billing > History.",
)
REFUSAL = "I'm sorry, but I can't help with that request."
TRUNCATED = "Here is a detailed walkthrough of every setting on the page, step by step:"

# Irrational steps for the Kronecker sequences, one per column.
STEPS = {
    "amount": (math.sqrt(5) - 1) / 2,
    "age": math.sqrt(2) - 1,
    "country": math.sqrt(3) - 1,
    "device": math.sqrt(13) - 3,
    "score": math.sqrt(10) - 3,
    "prompt": (math.sqrt(5) - 1) / 2,
    "fraud": math.sqrt(6) - 2,
    "arrive": math.sqrt(7) - 2,
    "delay": math.sqrt(11) - 3,
}


# --- helpers ----------------------------------------------------------------------
def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _us(t: datetime) -> int:
    return (_utc(t) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).strftime(ISO_S)


def _day(us: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).date()


def _arrivals(
    rng: np.random.Generator,
    start_us: int,
    end_us: int,
    per_hour: float,
    amplitude: float,
    peak_hour: float,
) -> np.ndarray:
    """Sorted event times (epoch µs) in (start, end] of a Poisson process whose
    rate follows a daily cycle."""
    step = 60 * US_PER_S
    edges = np.arange(start_us, end_us, step, dtype=np.int64)
    ends = np.minimum(edges + step, end_us)
    mid_h = ((edges + ends) // 2 % DAY_US) / HOUR_US
    rate = per_hour * (1 + amplitude * np.cos(2 * np.pi * (mid_h - peak_hour) / 24))
    counts = rng.poisson(rate * (ends - edges) / HOUR_US)
    bin_end = np.repeat(ends, counts)
    width = np.repeat(ends - edges, counts)
    ts = bin_end - np.floor(rng.random(bin_end.size) * width).astype(np.int64)
    return np.sort(ts)


def _lowdisc(
    rng: np.random.Generator, n: int, step: float, *, trim: float = 0.001, block: int = 16
) -> np.ndarray:
    """n uniforms in (trim, 1 - trim) whose every run of consecutive values covers
    the interval evenly: a Kronecker sequence with a random start, shuffled in blocks
    of ``block`` so that neighbours look unrelated. ``trim`` cuts the extreme tails."""
    u = (rng.random() + np.arange(n) * step) % 1.0
    blocks = -(-n // block)
    order = rng.permuted(np.arange(blocks * block).reshape(blocks, block), axis=1).ravel()
    order = order[order < n]
    return trim + (1 - 2 * trim) * u[order]


def _by_stream(
    rng: np.random.Generator, stream: np.ndarray, step: float, *, trim: float = 0.001
) -> np.ndarray:
    """Low-discrepancy uniforms, one sequence per stream value (rows in time order)."""
    u = np.empty(stream.size)
    for s in np.unique(stream):
        idx = np.flatnonzero(stream == s)
        u[idx] = _lowdisc(rng, idx.size, step, trim=trim)
    return u


def _weibull(u: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """The Weibull quantile function (closed form, unlike the gamma's)."""
    return scale * (-np.log1p(-u)) ** (1 / shape)


def _kumaraswamy(u: np.ndarray, a: float, b: float) -> np.ndarray:
    """The Kumaraswamy quantile function: a beta-like law on (0, 1) in closed form."""
    return (1 - (1 - u) ** (1 / b)) ** (1 / a)


def _categorical(u: np.ndarray, p: tuple[float, ...]) -> np.ndarray:
    cdf = np.cumsum(np.asarray(p) / sum(p))
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(p) - 1)


def _exact_choice(rng: np.random.Generator, idx: np.ndarray, share: float) -> np.ndarray:
    """A random subset of ``idx`` holding exactly round(share * len) elements."""
    k = round(share * idx.size)
    return np.sort(rng.permutation(idx)[:k])


def _ts() -> pl.Expr:
    """The ``_us`` column (epoch µs) as a UTC datetime."""
    return pl.from_epoch(pl.col("_us"), time_unit="us").dt.replace_time_zone("UTC")


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _write_daily(
    df: pl.DataFrame, day_col: str, folder: Path, fmt: str, name: str = "{day}.{fmt}"
) -> dict[str, int]:
    """Write one file per UTC day of ``day_col`` (epoch µs); returns rows per file."""
    days = (pl.Series(df[day_col]) // DAY_US).to_numpy()
    out: dict[str, int] = {}
    for d in np.unique(days):
        part = df.filter(pl.Series(days == d)).drop(day_col)
        day = (date(1970, 1, 1) + timedelta(days=int(d))).isoformat()
        path = folder / name.format(day=day, fmt=fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            part.write_parquet(path, compression="zstd", statistics=True)
        elif fmt == "csv":
            part.write_csv(path)
        else:
            part.write_ndjson(path)
        out[str(path)] = part.height
    return out


# --- fraud-detector ---------------------------------------------------------------
def _fraud_features(
    rng: np.random.Generator, fraud: np.ndarray, stream: np.ndarray | None
) -> dict[str, np.ndarray]:
    """amount, country, device, account_age_days from low-discrepancy uniforms (one
    sequence per stream for legitimate rows, one for fraud rows), or i.i.d. when
    ``stream`` is None (the training set)."""
    n = fraud.size

    def uni(key: str) -> np.ndarray:
        if stream is None:
            return 0.001 + 0.998 * rng.random(n)
        return _by_stream(rng, stream, STEPS[key])

    amount = np.exp(3.7 + 0.95 * special.ndtri(uni("amount")))
    age = _weibull(uni("age"), 1.3, 640.0)
    country = _categorical(uni("country"), COUNTRY_P)
    device = _categorical(uni("device"), DEVICE_P)
    f = np.flatnonzero(fraud)
    if stream is None:
        fu = [0.001 + 0.998 * rng.random(f.size) for _ in range(4)]
    else:
        fu = [_lowdisc(rng, f.size, STEPS[k]) for k in ("amount", "age", "country", "device")]
    amount[f] = np.exp(4.9 + 0.6 * special.ndtri(fu[0]))
    age[f] = _weibull(fu[1], 0.8, 35.0)
    country[f] = _categorical(fu[2], COUNTRY_P_FRAUD)
    device[f] = _categorical(fu[3], DEVICE_P_FRAUD)
    return {
        "amount": np.round(amount, 2),
        "country": np.asarray(COUNTRIES)[country],
        "device": np.asarray(DEVICES)[device],
        "account_age_days": np.floor(age).astype(np.int64),
    }


@dataclass(frozen=True)
class _FraudRows:
    """The fraud-detector's requests as arrays, one entry per request in time order."""

    ts: np.ndarray  # epoch µs
    stream: np.ndarray  # 0: v3, 1: v4
    fraud: np.ndarray
    feats: dict[str, np.ndarray]
    score: np.ndarray
    latency: np.ndarray
    null: np.ndarray  # amount is null
    last_hour: np.ndarray  # the latency spike and the null burst
    in_drop: np.ndarray  # the accuracy drop


def _fraud(rng: np.random.Generator, out: Path, at_us: int, days: int) -> dict[str, Any]:
    rows = _fraud_rows(rng, at_us, days)
    requests = _fraud_requests(rows)
    files = _write_daily(
        requests, "_us", _fresh(out / "fraud" / "requests"), "parquet", "dt={day}/part-0.{fmt}"
    )
    labels, keep = _fraud_labels(rng, rows, requests, at_us)
    files |= _write_daily(labels, "_us", _fresh(out / "fraud" / "labels"), "ndjson")
    files |= _fraud_training(rng, out / "fraud" / "training.parquet")
    return {"files": files, "facts": _fraud_facts(rows, keep)}


def _fraud_rows(rng: np.random.Generator, at_us: int, days: int) -> _FraudRows:
    ts = _arrivals(rng, at_us - days * DAY_US, at_us, FRAUD_PER_HOUR, 0.35, 15.0)
    stream = (rng.random(ts.size) < FRAUD_V4_SHARE).astype(np.int64)
    fraud = _by_stream(rng, stream, STEPS["fraud"], trim=0) < FRAUD_RATE
    feats = _fraud_features(rng, fraud, stream)
    score, in_drop = _fraud_scores(rng, ts, stream, fraud, at_us)

    # latency, with the spike in the last hour
    latency = rng.lognormal(math.log(42.0), 0.35, ts.size)
    last_hour = ts > at_us - HOUR_US
    lh = np.flatnonzero(last_hour)
    slow = lh[rng.random(lh.size) < SPIKE_SLOW_SHARE]
    latency[slow] = rng.lognormal(math.log(SPIKE_SLOW_MEDIAN_MS), 0.3, slow.size)

    # amount nulls: a trickle, then exactly 8% per version in the last hour
    null = rng.random(ts.size) < FRAUD_BASE_NULL
    null[lh] = False
    for s in range(2):
        null[_exact_choice(rng, np.flatnonzero(last_hour & (stream == s)), NULL_BURST_SHARE)] = True
    return _FraudRows(ts, stream, fraud, feats, score, latency, null, last_hour, in_drop)


def _fraud_scores(
    rng: np.random.Generator, ts: np.ndarray, stream: np.ndarray, fraud: np.ndarray, at_us: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores, and which requests lie in the accuracy drop's window."""
    # legitimate rows below 0.5 except a few false positives
    u = _by_stream(rng, stream, STEPS["score"])
    score = np.minimum(_kumaraswamy(u, 0.65, 9.0), 0.4999)
    legit = np.flatnonzero(~fraud)
    fp = legit[rng.random(legit.size) < FRAUD_FP_RATE]
    score[fp] = rng.uniform(0.5, 0.85, fp.size)
    # fraud rows: an exact share per (version, period) is caught
    drop_lo, drop_hi = at_us - 3 * DAY_US, at_us - 2 * DAY_US
    in_drop = (ts > drop_lo) & (ts <= drop_hi)
    detected = np.zeros(ts.size, dtype=bool)
    for s, version in enumerate(FRAUD_VERSIONS):
        for period in (False, True):
            idx = np.flatnonzero(fraud & (stream == s) & (in_drop == period))
            share = ACCURACY_DROP_RECALL if (version == "v4" and period) else FRAUD_RECALL[version]
            detected[_exact_choice(rng, idx, share)] = True
    hit = np.flatnonzero(detected)
    miss = np.flatnonzero(fraud & ~detected)
    score[hit] = 0.5 + 0.49 * rng.beta(2.0, 1.2, hit.size)
    score[miss] = 0.49 * rng.beta(2.5, 1.8, miss.size)
    return score, in_drop


def _fraud_requests(rows: _FraudRows) -> pl.DataFrame:
    amount = rows.feats["amount"].copy()
    amount[rows.null] = np.nan
    requests = pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(rows.ts.size)).cast(pl.String).str.zfill(8),
            "_us": rows.ts,
            "amount": amount,
            "country": rows.feats["country"],
            "device": rows.feats["device"],
            "account_age_days": rows.feats["account_age_days"],
            "score": np.round(rows.score, 5),
            "model_version": np.asarray(FRAUD_VERSIONS)[rows.stream],
            "latency_ms": np.round(rows.latency, 1),
        }
    ).with_columns(
        request_id="tx-" + pl.col("request_id"),
        ts=_ts(),
        amount=pl.col("amount").fill_nan(None),
    )
    return requests.select(
        "request_id",
        "ts",
        "amount",
        "country",
        "device",
        "account_age_days",
        "score",
        "model_version",
        "latency_ms",
        "_us",
    )


def _fraud_labels(
    rng: np.random.Generator, rows: _FraudRows, requests: pl.DataFrame, at_us: int
) -> tuple[pl.DataFrame, np.ndarray]:
    """The labels known at ``at``, and which requests have one.

    95% arrive 10 minutes to 2 days later. Low-discrepancy per class, so that the
    fraud rate among the labels of any window (label drift) stays steady."""
    cls = rows.fraud.astype(np.int64)
    arrives = _by_stream(rng, cls, STEPS["arrive"], trim=0) >= LABEL_MISSING
    delay_u = _kumaraswamy(_by_stream(rng, cls, STEPS["delay"]), 1.5, 2.2)
    delay_s = LABEL_MIN_DELAY_S + (LABEL_MAX_DELAY_S - LABEL_MIN_DELAY_S) * delay_u
    labeled_s = (rows.ts // US_PER_S) + delay_s.astype(np.int64)
    keep = arrives & (labeled_s * US_PER_S <= at_us)
    labels = (
        pl.DataFrame(
            {
                "request_id": requests["request_id"].filter(pl.Series(keep)),
                "is_fraud": rows.fraud[keep],
                "model_version": requests["model_version"].filter(pl.Series(keep)),
                "_us": labeled_s[keep] * US_PER_S,
            }
        )
        .sort("_us", "request_id")
        .with_columns(labeled_at=_ts().dt.strftime(ISO_S))
    )
    return labels.select("request_id", "is_fraud", "labeled_at", "model_version", "_us"), keep


def _fraud_training(rng: np.random.Generator, path: Path) -> dict[str, int]:
    """The training set: the same feature distributions, i.i.d., with labels."""
    t_fraud = rng.random(FRAUD_TRAINING_ROWS) < FRAUD_RATE
    t = _fraud_features(rng, t_fraud, None)
    training = pl.DataFrame({**t, "is_fraud": t_fraud})
    training.write_parquet(path, compression="zstd")
    return {str(path): training.height}


def _fraud_facts(rows: _FraudRows, keep: np.ndarray) -> dict[str, Any]:
    """The incidents' values, measured on the generated rows, per segment."""
    facts: dict[str, Any] = {"null_rate": {}, "latency_p95": {}, "recall": {}}
    segs = {"": np.ones(rows.ts.size, dtype=bool)}
    segs |= {v: rows.stream == s for s, v in enumerate(FRAUD_VERSIONS)}
    for name, m in segs.items():
        sel = rows.last_hour & m
        facts["null_rate"][name] = float(rows.null[sel].mean())
        facts["latency_p95"][name] = float(np.quantile(np.round(rows.latency, 1)[sel], 0.95))
        lab = rows.in_drop & m & keep & rows.fraud
        facts["recall"][name] = float((rows.score[lab] >= 0.5).mean())
    return facts


# --- demand-forecast --------------------------------------------------------------
def _demand(rng: np.random.Generator, out: Path, at_us: int, days: int) -> dict[str, Any]:
    stores = [f"S{i + 1:02d}" for i in range(len(REGIONS) * STORES_PER_REGION)]
    region = [REGIONS[i // STORES_PER_REGION] for i in range(len(stores))]
    skus = [f"SKU-{1001 + k}" for k in range(SKUS)]
    base = np.clip(
        np.exp(rng.normal(math.log(55.0), 0.45, (len(stores), SKUS))), 20.0, 160.0
    ) * rng.uniform(0.9, 1.1, (len(stores), 1))
    first_day = _day(at_us - days * DAY_US)
    rows_f: list[pl.DataFrame] = []
    rows_a: list[pl.DataFrame] = []
    si, ki = np.meshgrid(np.arange(len(stores)), np.arange(SKUS), indexing="ij")
    si, ki = si.ravel(), ki.ravel()
    for offset in range(days + 1):
        day = first_day + timedelta(days=offset)
        day_us = _us(datetime(day.year, day.month, day.day, tzinfo=UTC))
        predicted = day_us + 2 * HOUR_US + si * 90 * US_PER_S + ki * 2 * US_PER_S
        trend = 1 + DEMAND_TREND_PER_DAY * (day - first_day).days
        expected = base[si, ki] * WEEKDAY_FACTOR[day.weekday()] * trend
        forecast = np.round(expected * np.exp(rng.normal(0.0, 0.05, si.size)), 1)
        sold = np.maximum(rng.poisson(expected * np.exp(rng.normal(0.0, 0.03, si.size))), 1)
        recorded = day_us + DAY_US + 30 * 60 * US_PER_S + si * 60 * US_PER_S + ki * US_PER_S
        common = {
            "store_id": np.asarray(stores)[si],
            "sku": np.asarray(skus)[ki],
            "horizon_date": [day.isoformat()] * si.size,
        }
        fk = (predicted > at_us - days * DAY_US) & (predicted <= at_us)
        if fk.any():
            rows_f.append(
                pl.DataFrame(
                    {
                        "_us": predicted,
                        **common,
                        "region": np.asarray(region)[si],
                        "forecast": forecast,
                    }
                ).filter(pl.Series(fk))
            )
        ak = fk & (recorded <= at_us)
        if ak.any():
            rows_a.append(
                pl.DataFrame({"_us": recorded, **common, "units_sold": sold}).filter(pl.Series(ak))
            )
    forecasts = pl.concat(rows_f).sort("_us", "store_id", "sku")
    forecasts = forecasts.with_columns(predicted_at=_ts().dt.strftime(ISO_S)).select(
        "predicted_at", "store_id", "sku", "horizon_date", "region", "forecast", "_us"
    )
    actuals = pl.concat(rows_a).sort("_us", "store_id", "sku")
    actuals = actuals.with_columns(recorded_at=_ts().dt.strftime(ISO_S)).select(
        "recorded_at", "store_id", "sku", "horizon_date", "units_sold", "_us"
    )
    files = _write_daily(forecasts, "_us", _fresh(out / "demand" / "forecasts"), "csv")
    files |= _write_daily(actuals, "_us", _fresh(out / "demand" / "actuals"), "csv")
    return {"files": files, "facts": {}}


# --- support-assistant ------------------------------------------------------------
def _assistant(rng: np.random.Generator, out: Path, at_us: int, days: int) -> dict[str, Any]:
    span = min(days, ASSISTANT_MAX_DAYS)
    ts_us = _arrivals(rng, at_us - span * DAY_US, at_us, ASSISTANT_PER_HOUR, 0.4, 14.0)
    requests = _assistant_requests(rng, ts_us)
    files, changed = _write_assistant_requests(
        requests, _fresh(out / "assistant" / "requests"), at_us
    )
    feedback = _assistant_feedback(rng, requests, at_us)
    files |= _write_daily(feedback, "_us", _fresh(out / "assistant" / "feedback"), "ndjson")
    return {"files": files, "facts": {"changed_files": sorted(changed)}}


def _assistant_requests(rng: np.random.Generator, ts_us: np.ndarray) -> pl.DataFrame:
    n = ts_us.size
    stream = (rng.random(n) < 0.5).astype(np.int64)
    prompt = np.round(np.exp(6.1 + 0.55 * special.ndtri(_by_stream(rng, stream, STEPS["prompt"]))))
    status = np.asarray(STATUS_CODES)[_categorical(rng.random(n), STATUS_P)]
    ok = status == 200
    finish_u = rng.random(n)
    finish = np.where(finish_u < 0.008, "refusal", np.where(finish_u < 0.023, "length", "stop"))
    completion = np.minimum(np.round(np.exp(rng.normal(4.9, 0.5, n))), ASSISTANT_MAX_TOKENS - 1)
    completion = np.where(finish == "refusal", np.round(rng.uniform(10, 20, n)), completion)
    completion = np.where(finish == "length", ASSISTANT_MAX_TOKENS, completion)
    completion = np.where(ok, completion, 0).astype(np.int64)
    latency = (120.0 + 0.1 * prompt + 3.5 * completion) * rng.lognormal(0.0, 0.18, n)
    latency = np.where(status == 429, rng.uniform(3, 12, n), latency)
    latency = np.where(status == 400, rng.uniform(20, 60, n), latency)
    latency = np.where(status >= 500, rng.uniform(200, 2000, n), latency)
    text = np.asarray(ANSWERS)[rng.integers(0, len(ANSWERS), n)]
    text = np.where(finish == "refusal", REFUSAL, np.where(finish == "length", TRUNCATED, text))
    requests = pl.DataFrame(
        {
            "ts": ts_us // 1000,
            "request_id": pl.Series(np.arange(n)).cast(pl.String).str.zfill(7),
            "model_version": np.asarray(ASSISTANT_VERSIONS)[stream],
            "prompt_tokens": prompt.astype(np.int64),
            "completion_tokens": completion,
            "latency_ms": np.round(latency, 1),
            "status": status.astype(np.int64),
            "finish_reason": pl.Series(finish).set(pl.Series(~ok), None),
            "response_text": pl.Series(text).set(pl.Series(~ok), None),
            "_us": ts_us,
        }
    ).with_columns(request_id="req-" + pl.col("request_id"))
    return requests


def _write_assistant_requests(
    requests: pl.DataFrame, folder: Path, at_us: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per file written, and those of the schema change: the file of at's day
    reports latency in seconds, as latency_s."""
    cut = _us(datetime.combine(_day(at_us), datetime.min.time(), tzinfo=UTC))
    old = requests.filter(pl.col("_us") < cut)
    new = (
        requests.filter(pl.col("_us") >= cut)
        .with_columns(latency_s=(pl.col("latency_ms") / 1000).round(4))
        .select(
            "ts",
            "request_id",
            "model_version",
            "prompt_tokens",
            "completion_tokens",
            "latency_s",
            "status",
            "finish_reason",
            "response_text",
            "_us",
        )
    )
    files = _write_daily(old, "_us", folder, "ndjson") if old.height else {}
    changed = _write_daily(new, "_us", folder, "ndjson") if new.height else {}
    return files | changed, changed


def _assistant_feedback(
    rng: np.random.Generator, requests: pl.DataFrame, at_us: int
) -> pl.DataFrame:
    """~6% of answered requests get a thumbs up/down a minute or two later."""
    ts_us = requests["_us"].to_numpy()
    ok = (requests["status"] == 200).to_numpy()
    finish = requests["finish_reason"].to_numpy()  # None where not answered
    idx = np.flatnonzero(ok & (rng.random(ts_us.size) < FEEDBACK_SHARE))
    fb_us = (
        ts_us[idx] + 20 * US_PER_S + (rng.exponential(90.0, idx.size) * US_PER_S).astype(np.int64)
    )
    p_up = np.where(finish[idx] == "refusal", 0.3, np.where(finish[idx] == "length", 0.6, 0.87))
    rating = np.where(rng.random(idx.size) < p_up, "up", "down")
    fb_us = fb_us // US_PER_S * US_PER_S
    feedback = (
        pl.DataFrame(
            {
                "_us": fb_us,
                "request_id": requests["request_id"].gather(idx),
                "model_version": requests["model_version"].gather(idx),
                "rating": rating,
            }
        )
        .filter(pl.col("_us") <= at_us)
        .sort("_us", "request_id")
    )
    return feedback.with_columns(ts=_ts().dt.strftime(ISO_S)).select(
        "ts", "request_id", "model_version", "rating", "_us"
    )


# --- manifest ---------------------------------------------------------------------
def _window(start_us: int, end_us: int) -> dict[str, str]:
    return {"start": _iso(start_us), "end": _iso(end_us)}


def _incident(
    name: str,
    monitor: tuple[str, str, str],
    window: dict[str, str],
    expected: list[dict[str, Any]],
    alert: str,
    **more: Any,
) -> dict[str, Any]:
    """One entry of incidents.json: ``monitor`` is (model, kind, monitor name); ``more``
    (column, ...) goes between the monitor's source and the window."""
    model, kind, monitor_name = monitor
    return {
        "id": name,
        "description": DESCRIPTIONS[name],
        "model": model,
        "monitor": monitor_name,
        "kind": kind,
        "source": "requests",
        **more,
        "window": window,
        "expected": expected,
        "alert": alert,
    }


def _fraud_expected(
    values: dict[str, float], digits: int, critical: tuple[str, ...] = ("", *FRAUD_VERSIONS)
) -> list[dict[str, Any]]:
    """The expected result per fraud-detector segment (overall, then each version):
    ``critical`` in the segments named, ``ok`` elsewhere, with the measured value."""
    segments = {"": {}} | {v: {"model_version": v} for v in FRAUD_VERSIONS}
    return [
        {
            "segment": segment,
            "status": "critical" if key in critical else "ok",
            "value": round(values[key], digits),
        }
        for key, segment in segments.items()
    ]


def _incidents(out: Path, at_us: int, parts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    fraud = parts["fraud"]["facts"]

    def last_hour(
        name: str, kind: str, monitor: str, column: str, fact: str, digits: int
    ) -> dict[str, Any]:
        """A fraud-detector incident of the last hour: critical in every segment, at once."""
        expected = _fraud_expected(fraud[fact], digits)
        window = _window(at_us - HOUR_US, at_us)
        at_once = "firing at once (no `for`)"
        return _incident(
            name, ("fraud-detector", kind, monitor), window, expected, at_once, column=column
        )

    changed = [
        Path(p).relative_to(out).as_posix() for p in parts["assistant"]["facts"]["changed_files"]
    ]
    blind = ["error", "no_data", "insufficient_data"]
    asst_segments = [{}] + [{"model_version": v} for v in ASSISTANT_VERSIONS]
    return [
        last_hour("null-burst", "check", "amount-nulls", "amount", "null_rate", 6),
        _incident(
            "schema-change",
            ("support-assistant", "metric", "latency-p95"),
            _window(at_us - 1800 * US_PER_S, at_us),
            [{"segment": s, "status": "error", "acceptable": blind} for s in asst_segments],
            "none with the default policy (keep_last for no_data, insufficient_data "
            "and error): the monitor goes blind silently unless the spec adds a schema check "
            "or `policy: {error: alert, ...}`",
            column="latency_ms",
            renamed_to="latency_s",
            files=changed,
        ),
        last_hour("latency-spike", "metric", "latency-p95", "latency_ms", "latency_p95", 1),
        _incident(
            "accuracy-drop",
            ("fraud-detector", "metric", "recall"),
            _window(at_us - 3 * DAY_US, at_us - 2 * DAY_US),
            _fraud_expected(fraud["recall"], 4, critical=("v4",)),
            "v4 pending after one run (`for: 2`), firing from the second violating evaluation",
        ),
    ]


def _manifest(
    out: Path, at_us: int, days: int, seed: int, parts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    caveats = []
    if days < 8:
        caveats = [
            "demand-forecast/forecast-volume-wow: no forecasts a week before at "
            "(insufficient_data)",
            "fraud-detector/score-drift: no baseline a week before at (no data to compare)",
        ]
    return {
        "at": _iso(at_us),
        "days": days,
        "seed": seed,
        "incidents": _incidents(out, at_us, parts),
        "otherwise": "ok: every other (model, monitor, segment) result of a run at `at` is ok",
        "caveats": caveats,
        "files": {
            Path(p).relative_to(out).as_posix(): rows
            for part in parts.values()
            for p, rows in sorted(part["files"].items())
        },
    }


def generate(
    out_dir: Path, *, at: datetime = DEMO_AT, days: int = 9, seed: int = 7
) -> dict[str, Any]:
    """Write the demo logs into ``out_dir`` (meant to be ``configs/data``) and return
    the incidents manifest, also written to ``out_dir/incidents.json``.

    The folders ``fraud``, ``demand`` and ``assistant`` under ``out_dir`` are
    replaced. Fraud and demand logs cover (at - days, at]; the assistant's logs the
    last min(days, 2) days.
    """
    if days < 4:
        raise ValueError("days must be at least 4 (the accuracy drop lies 2-3 days before at)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    at_us = _us(at)
    at_us -= at_us % 1000  # the assistant logs hold milliseconds
    parts = {
        "fraud": _fraud(np.random.default_rng([seed, 1]), out, at_us, days),
        "demand": _demand(np.random.default_rng([seed, 2]), out, at_us, days),
        "assistant": _assistant(np.random.default_rng([seed, 3]), out, at_us, days),
    }
    manifest = _manifest(out, at_us, days, seed, parts)
    (out / "incidents.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# --- live mode --------------------------------------------------------------------
# ``--live`` keeps appending logs timestamped about now, at ``speed`` times the demo's
# pace, into a ready-to-run config directory whose durations are divided by
# ``speed`` (see :func:`live`).
LIVE_KINDS = ("null-burst", "schema-change", "latency-spike", "accuracy-drop")
LIVE_NULL_SHARE = 0.10  # of fraud-detector rows during a null burst
LIVE_DESCRIPTIONS = {
    "null-burst": f"fraud-detector amount is null in {LIVE_NULL_SHARE:.0%} of the requests",
    "schema-change": "support-assistant request files rename latency_ms to latency_s",
    "latency-spike": f"{SPIKE_SLOW_SHARE:.0%} of fraud-detector requests take a degraded "
    f"path (median {SPIKE_SLOW_MEDIAN_MS:.0f} ms)",
    "accuracy-drop": f"fraud-detector v4 catches only {ACCURACY_DROP_RECALL:.0%} of fraud",
}
LIVE_BACKFILL_DAYS = 9  # demo days written before the first batch (7d offsets + 1d windows)
LIVE_BACKFILL_CHUNK_S = 600  # real seconds of backfill per file
_DURATION = re.compile(r"(?<![\w.\-/])([0-9]+)(ms|s|m|h|d|w)(?![\w])")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LIVE_ENGINE = """\
# Written by `python examples/demo.py --live`: configs/engine.yaml for the live demo,
# durations divided by {speed}; every receiver posts to examples/receiver.py.
version: 1
state: .rulesengine/state.db

defaults:
  every: {every}
  window: {window}
  min_rows: 50

receivers:
  ml-team: ["${{ML_TEAM_WEBHOOK:-json://127.0.0.1:8765/alerts}}"]
  oncall: ["${{ONCALL_WEBHOOK:-json://127.0.0.1:8765/oncall}}"]
  retrain: ["${{RETRAIN_HOOK:-json://127.0.0.1:8765/retrain}}"]

routes:
  - {{match: {{severity: critical}}, receivers: [oncall], continue: true}}
  - {{match: {{kind: drift}}, receivers: [retrain], continue: true}}
  - {{match_re: {{team: "risk|forecasting|assistant"}}, receivers: [ml-team]}}

grouping: {{by: [model], wait: 1s, interval: 5s, repeat: 24h}}

templates:
  title: "[$severity] $model / $monitor"
"""


def scale_durations(text: str, speed: int) -> str:
    """``text`` (a model file) with every duration divided by ``speed``, written in
    the largest unit that divides it; a result under one second is an error."""

    def one(m: re.Match[str]) -> str:
        ms = round(int(m[1]) * _UNIT_S[m[2]] * 1000)
        if ms % speed or ms // speed < 1000 or ms // speed % 1000:
            raise ValueError(f"{m[0]} / {speed} is not a whole number of seconds")
        s = ms // speed // 1000
        for unit in ("d", "h", "m"):
            if s % _UNIT_S[unit] == 0:
                return f"{s // _UNIT_S[unit]}{unit}"
        return f"{s}s"

    return _DURATION.sub(one, text)


def write_live_config(out: Path, speed: int, configs: Path | None = None) -> list[Path]:
    """engine.yaml and models/*.yaml for the live demo in ``out`` (see :func:`live`)."""
    configs = configs or Path(__file__).resolve().parents[1] / "configs"
    texts: dict[Path, str] = {}
    for path in sorted((configs / "models").glob("*.yaml")):
        lines = path.read_text().splitlines(keepends=True)
        text = "".join(line for line in lines if "yaml-language-server" not in line)
        try:
            texts[out / "models" / path.name] = scale_durations(text, speed)
        except ValueError as exc:  # nothing is written then
            raise ValueError(f"--speed {speed}: {exc} (60 divides every demo duration)") from None
    every, window = scale_durations("15m 1h", speed).split()
    texts[out / "engine.yaml"] = LIVE_ENGINE.format(speed=speed, every=every, window=window)
    (out / "models").mkdir(parents=True, exist_ok=True)
    for target, text in texts.items():
        _atomic_text(target, text)
    return sorted(texts, key=lambda p: (p.name != "engine.yaml", p.name))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class LiveIncident:
    kind: str
    start_us: int
    end_us: int


def live_schedule(
    t0_us: int,
    every_s: float,
    length_s: float,
    kinds: tuple[str, ...],
    until_us: int,
    since_us: int | None = None,
) -> list[LiveIncident]:
    """The incidents that start in (since, until] (since defaults to t0): incident k
    (k = 0, 1, ...) starts at t0 + (k + 1) * every, lasts ``length`` seconds, and is
    of kind ``kinds[k % len(kinds)]``."""
    every, length = round(every_s * US_PER_S), round(length_s * US_PER_S)
    since = t0_us if since_us is None else since_us
    out, k = [], max(0, (since - t0_us) // every - 1)
    while kinds:
        start = t0_us + (k + 1) * every
        if start > until_us:
            break
        if start > since:
            out.append(LiveIncident(kinds[k % len(kinds)], start, start + length))
        k += 1
    return out


class _Live:
    """The live generator's state: pending labels and feedback, the demand base."""

    def __init__(self, data: Path, seed: int, speed: int, schedule: tuple[Any, ...]):
        self.data, self.seed, self.speed = data, seed, speed
        # (t0 µs, every µs, length µs, kinds): see live_schedule
        self.t0, self.every, self.length, self.kinds = schedule
        self.pending: dict[str, list[pl.DataFrame]] = {"labels": [], "feedback": []}
        rng = np.random.default_rng([seed, 2])
        n_stores = len(REGIONS) * STORES_PER_REGION
        self.demand_base = np.clip(
            np.exp(rng.normal(math.log(55.0), 0.45, (n_stores, SKUS))), 20.0, 160.0
        ) * rng.uniform(0.9, 1.1, (n_stores, 1))

    def active(self, ts: np.ndarray, kind: str) -> np.ndarray:
        """Which of the times ``ts`` (epoch µs) fall in an incident of ``kind``."""
        if kind not in self.kinds:
            return np.zeros(ts.size, dtype=bool)
        rel = ts - self.t0 - self.every  # incident k starts at rel = k * every
        k = np.maximum(rel, 0) // self.every
        which = np.asarray(self.kinds)[k % len(self.kinds)]
        return (rel >= 0) & (rel - k * self.every < self.length) & (which == kind)

    def batch(
        self, rng: np.random.Generator, t0: int, t1: int, tag: str, assistant: bool = True
    ) -> int:
        """Write every source's rows of (t0, t1] (epoch µs) and the labels and feedback
        due by t1; returns the rows written. ``assistant=False`` skips its requests."""
        rows = self.fraud(rng, t0, t1, tag)
        rows += self.demand(t0, t1, tag)
        if assistant:
            rows += self.assistant(rng, t0, t1, tag)
        for name, folder, fmt in (
            ("labels", self.data / "fraud" / "labels", "ndjson"),
            ("feedback", self.data / "assistant" / "feedback", "ndjson"),
        ):
            due = pl.concat(self.pending[name]) if self.pending[name] else None
            if due is None:
                continue
            now = due.filter(pl.col("_us") <= t1).sort("_us")
            self.pending[name] = [due.filter(pl.col("_us") > t1)]
            rows += _append_daily(now, folder, fmt, tag)
        return rows

    def fraud(self, rng: np.random.Generator, t0: int, t1: int, tag: str) -> int:
        ts = np.sort(rng.integers(t0 + 1, t1 + 1, rng.poisson(self._n(FRAUD_PER_HOUR, t0, t1))))
        stream = (rng.random(ts.size) < FRAUD_V4_SHARE).astype(np.int64)
        fraud = _by_stream(rng, stream, STEPS["fraud"], trim=0) < FRAUD_RATE
        feats = _fraud_features(rng, fraud, stream)
        score = np.minimum(_kumaraswamy(_by_stream(rng, stream, STEPS["score"]), 0.65, 9.0), 0.4999)
        fp = ~fraud & (rng.random(ts.size) < FRAUD_FP_RATE)
        score[fp] = rng.uniform(0.5, 0.85, int(fp.sum()))
        recall = np.where(stream == 1, FRAUD_RECALL["v4"], FRAUD_RECALL["v3"])
        recall = np.where((stream == 1) & self.active(ts, "accuracy-drop"), 0.5, recall)
        hit = fraud & (rng.random(ts.size) < recall)
        score[hit] = 0.5 + 0.49 * rng.beta(2.0, 1.2, int(hit.sum()))
        miss = fraud & ~hit
        score[miss] = 0.49 * rng.beta(2.5, 1.8, int(miss.sum()))
        latency = rng.lognormal(math.log(42.0), 0.35, ts.size)
        slow = self.active(ts, "latency-spike") & (rng.random(ts.size) < SPIKE_SLOW_SHARE)
        latency[slow] = rng.lognormal(math.log(SPIKE_SLOW_MEDIAN_MS), 0.3, int(slow.sum()))
        share = np.where(self.active(ts, "null-burst"), LIVE_NULL_SHARE, FRAUD_BASE_NULL)
        null = rng.random(ts.size) < share
        rows = _FraudRows(ts, stream, fraud, feats, score, latency, null, null, null)
        requests = _fraud_requests(rows).with_columns(
            request_id=pl.lit(f"tx-{tag}-") + pl.col("request_id")
        )
        written = _append_daily(
            requests, self.data / "fraud" / "requests", "parquet", tag, "dt={day}/part-{tag}"
        )
        # labels: 95% arrive 10 minutes to 2 days (demo time) later
        arrives = rng.random(ts.size) >= LABEL_MISSING
        delay_s = rng.uniform(LABEL_MIN_DELAY_S, LABEL_MAX_DELAY_S, ts.size) / self.speed
        labels = pl.DataFrame(
            {
                "request_id": requests["request_id"],
                "is_fraud": fraud,
                "model_version": requests["model_version"],
                "_us": (ts + (delay_s * US_PER_S).astype(np.int64)) // US_PER_S * US_PER_S,
            }
        ).filter(pl.Series(arrives))
        self.pending["labels"].append(
            labels.with_columns(labeled_at=_ts().dt.strftime(ISO_S)).select(
                "request_id", "is_fraud", "labeled_at", "model_version", "_us"
            )
        )
        return written

    def _n(self, per_hour: float, t0: int, t1: int) -> float:
        return per_hour * self.speed * (t1 - t0) / HOUR_US

    def demand(self, t0: int, t1: int, tag: str) -> int:
        """Each demo day k (real length DAY / speed) has one forecast per store and SKU,
        issued from 02:00 demo time, and its actual a demo day and 30 minutes later;
        ``horizon_date`` names the demo day (``day-<k>``)."""
        n_stores = len(REGIONS) * STORES_PER_REGION
        si, ki = np.meshgrid(np.arange(n_stores), np.arange(SKUS), indexing="ij")
        si, ki = si.ravel(), ki.ravel()
        day_real = DAY_US // self.speed
        forecasts, actuals = [], []
        for k in range((t0 - 2 * day_real) // day_real, t1 // day_real + 1):
            v0 = k * DAY_US  # the demo day's start, in demo µs
            # whole seconds, as the files hold them; a row belongs to the batch of
            # its written time (rounding after the cut would defer the rows of
            # (t1 - 1 s, t1] to the next batch, after their time has come)
            predicted = (v0 + 2 * HOUR_US + si * 90 * US_PER_S + ki * 2 * US_PER_S) // self.speed
            predicted = predicted // US_PER_S * US_PER_S
            recorded = (
                v0 + DAY_US + 1800 * US_PER_S + si * 60 * US_PER_S + ki * US_PER_S
            ) // self.speed
            recorded = recorded // US_PER_S * US_PER_S
            rng = np.random.default_rng([self.seed, 20, k])
            expected = self.demand_base[si, ki] * WEEKDAY_FACTOR[k % 7]
            forecast = np.round(expected * np.exp(rng.normal(0.0, 0.05, si.size)), 1)
            sold = np.maximum(rng.poisson(expected * np.exp(rng.normal(0.0, 0.03, si.size))), 1)
            common = {
                "store_id": [f"S{i + 1:02d}" for i in si],
                "sku": [f"SKU-{1001 + j}" for j in ki],
                "horizon_date": [f"day-{k}"] * si.size,
            }
            f = (predicted > t0) & (predicted <= t1)
            if f.any():
                region = np.asarray([REGIONS[i // STORES_PER_REGION] for i in si])
                forecasts.append(
                    pl.DataFrame(
                        {
                            "_us": predicted,
                            **common,
                            "region": region,
                            "forecast": forecast,
                        }
                    ).filter(pl.Series(f))
                )
            a = (recorded > t0) & (recorded <= t1)
            if a.any():
                actuals.append(
                    pl.DataFrame({"_us": recorded, **common, "units_sold": sold}).filter(
                        pl.Series(a)
                    )
                )
        written = 0
        if forecasts:
            df = (
                pl.concat(forecasts).sort("_us").with_columns(predicted_at=_ts().dt.strftime(ISO_S))
            )
            df = df.select(
                "predicted_at", "store_id", "sku", "horizon_date", "region", "forecast", "_us"
            )
            written += _append_daily(df, self.data / "demand" / "forecasts", "csv", tag)
        if actuals:
            df = pl.concat(actuals).sort("_us").with_columns(recorded_at=_ts().dt.strftime(ISO_S))
            df = df.select("recorded_at", "store_id", "sku", "horizon_date", "units_sold", "_us")
            written += _append_daily(df, self.data / "demand" / "actuals", "csv", tag)
        return written

    def assistant(self, rng: np.random.Generator, t0: int, t1: int, tag: str) -> int:
        n = rng.poisson(self._n(ASSISTANT_PER_HOUR, t0, t1))
        ts = -(-np.sort(rng.integers(t0 + 1, t1 + 1, n)) // 1000) * 1000  # ms, in (t0, t1]
        requests = _assistant_requests(rng, ts).with_columns(
            request_id=pl.lit(f"req-{tag}-") + pl.col("request_id").str.slice(4)
        )
        feedback = _assistant_feedback(rng, requests, np.iinfo(np.int64).max)
        # the feedback delay (20 s + ~90 s, demo time) runs at speed too
        fb = feedback.join(requests.select("request_id", t="_us"), on="request_id")
        fb = fb.with_columns(
            _us=(pl.col("t") + (pl.col("_us") - pl.col("t")) // self.speed) // US_PER_S * US_PER_S
        ).with_columns(ts=_ts().dt.strftime(ISO_S))
        self.pending["feedback"].append(
            fb.select("ts", "request_id", "model_version", "rating", "_us")
        )
        changed = self.active(ts, "schema-change")
        written = 0
        for part, renamed in (
            (requests.filter(pl.Series(~changed)), False),
            (requests.filter(pl.Series(changed)), True),
        ):
            if renamed:
                part = part.with_columns(latency_s=(pl.col("latency_ms") / 1000).round(4)).drop(
                    "latency_ms"
                )
            written += _append_daily(
                part, self.data / "assistant" / "requests", "ndjson", tag + ("s" if renamed else "")
            )
        return written


def _append_daily(
    df: pl.DataFrame, folder: Path, fmt: str, tag: str, name: str = "{day}-{tag}"
) -> int:
    """Write ``df``'s rows, one new file per UTC day of ``_us``, each atomically (a
    temporary name in the same folder, then a rename); returns the rows written."""
    if df.height == 0:
        return 0
    days = (df["_us"] // DAY_US).to_numpy()
    for d in np.unique(days):
        part = df.filter(pl.Series(days == d)).drop("_us")
        day = (date(1970, 1, 1) + timedelta(days=int(d))).isoformat()
        path = folder / f"{name.format(day=day, tag=tag)}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        if fmt == "parquet":
            part.write_parquet(tmp, compression="zstd", statistics=True)
        elif fmt == "csv":
            part.write_csv(tmp)
        else:
            part.write_ndjson(tmp)
        os.replace(tmp, path)
    return df.height


def live(
    out_dir: Path,
    *,
    interval: float = 5.0,
    speed: int = 60,
    incident_every: float = 60.0,
    incident_length: float = 40.0,
    kinds: tuple[str, ...] = LIVE_KINDS,
    seed: int = 7,
    backfill: bool = True,
    config: bool = True,
    stop: threading.Event | None = None,
    echo: Any = print,
) -> int:
    """Append demo logs to ``out_dir/data`` every ``interval`` seconds until ``stop``.

    ``out_dir`` gets ``engine.yaml`` and ``models/*.yaml``: the demo config with every
    duration divided by ``speed`` (``every: 15m`` becomes 15s at 60), all receivers on
    ``json://127.0.0.1:8765`` (examples/receiver.py), state in ``out_dir/.rulesengine``.
    Traffic runs ``speed`` times faster, so each window holds as many rows as in
    the batch demo. ``data/`` is replaced, then backfilled with
    ``LIVE_BACKFILL_DAYS`` demo days ending now (t0). Batch i holds the rows
    timestamped in (t0 + (i-1) * interval, t0 + i * interval] and is written as soon
    as that interval begins, one interval ahead: every row is on disk by its time,
    so a daemon evaluating a window that ends now never misses rows still to come
    (demand-forecast's forecasts come in a burst that starts on a tick: a burst
    missing from the current window and not from the week-earlier one made
    ``forecast-volume-wow`` and ``forecast-volume`` fire). The ``backfill …`` line is
    printed once the batches have caught up with now, the backfill having taken its
    time. Incident k lasts (t0 + (k+1) * incident_every, + incident_length]. Rows
    come from ``numpy.random.default_rng([seed, 100, i])``: the same seed and start
    give the same rows. Returns the number of batches written.
    """
    if not 0 < incident_length < incident_every:
        raise ValueError("--incident-length must be positive and shorter than --incident-every")
    if interval <= 0 or speed < 1:
        raise ValueError("--interval must be positive and --speed at least 1")
    stop = stop or threading.Event()
    out = Path(out_dir)
    data = out / "data"
    if config:
        write_live_config(out, speed)
        echo(f"config {out}/ (durations / {speed}); run: rulesengine daemon {out}")
    t0 = _us(datetime.now(UTC)) // US_PER_S * US_PER_S
    step = round(interval * US_PER_S)
    every_us, length_us = round(incident_every * US_PER_S), round(incident_length * US_PER_S)
    state = _Live(data, seed, speed, (t0, every_us, length_us, kinds))
    echo(
        f"{_iso(t0)} start: a batch every {interval:g}s at {speed}x; an incident every "
        f"{incident_every:g}s for {incident_length:g}s, cycling {', '.join(kinds) or 'none'}"
    )
    ready = None  # the backfill line, printed once the logs reach past now
    if backfill:
        rows = _backfill(state, t0, stop)
        if rows is None:
            echo("stopped during the backfill")
            return 0
        ready = f"backfill {rows} rows ({LIVE_BACKFILL_DAYS} demo days) ending {_iso(t0)}"
    i = 0
    while True:
        i += 1
        t1 = t0 + i * step
        # a batch is written as its interval begins, so that every row is on disk by
        # its time: a tick evaluated at its time finds its window whole
        wait = (t1 - step - _us(datetime.now(UTC))) / US_PER_S
        if ready and wait > 0:  # caught up: the backfill took its time
            echo(f"{ready}; logs written up to {_iso(t1 - step)}, ready for the daemon")
            ready = None
        if stop.wait(max(wait, 0.0)):
            break
        for inc in live_schedule(t0, incident_every, incident_length, kinds, t1, t1 - step):
            echo(f"{_iso(inc.start_us)} incident start {inc.kind}: {LIVE_DESCRIPTIONS[inc.kind]}")
        rows = state.batch(np.random.default_rng([seed, 100, i]), t1 - step, t1, f"{t1 // 1000}")
        echo(f"{_iso(t1)} batch {i}: {rows} rows")
        since = t1 - step - length_us
        for inc in live_schedule(t0, incident_every, incident_length, kinds, t1 - length_us, since):
            echo(f"{_iso(inc.end_us)} incident end {inc.kind}")
    echo(f"stopped after {i - 1} batches")
    return i - 1


def _backfill(state: _Live, t0: int, stop: threading.Event) -> int | None:
    """Replace the logs under ``state.data`` with LIVE_BACKFILL_DAYS demo days ending
    at ``t0`` (the assistant's last ASSISTANT_MAX_DAYS only, as in the batch demo),
    in files of LIVE_BACKFILL_CHUNK_S real seconds; the rows written, or None if
    stopped meanwhile."""
    data, seed, speed = state.data, state.seed, state.speed
    for sub in ("fraud", "demand", "assistant"):
        _fresh(data / sub)
    _fraud_training(np.random.default_rng([seed, 1]), data / "fraud" / "training.parquet")
    span = LIVE_BACKFILL_DAYS * DAY_US // speed
    chunk = LIVE_BACKFILL_CHUNK_S * US_PER_S
    rows = 0
    for j, start in enumerate(range(t0 - span, t0, chunk)):
        if stop.is_set():
            return None
        rng = np.random.default_rng([seed, 99, j])
        recent = start >= t0 - ASSISTANT_MAX_DAYS * DAY_US // speed
        rows += state.batch(rng, start, min(start + chunk, t0), f"b{j:04d}", recent)
    return rows


def _live_main(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kinds = tuple(k.strip() for k in args.incidents.split(",") if k.strip())
    unknown = [k for k in kinds if k not in LIVE_KINDS]
    if unknown:
        raise ValueError(f"unknown incident kind {unknown[0]!r}; known: {', '.join(LIVE_KINDS)}")
    live(
        args.out_dir,
        interval=args.interval,
        speed=args.speed,
        incident_every=args.incident_every,
        incident_length=args.incident_length,
        kinds=kinds,
        seed=args.seed,
        backfill=not args.no_backfill,
        config=not args.no_config,
        stop=stop,
        echo=lambda line: print(line, flush=True),
    )
    return 0


def _parse_at(text: str) -> datetime:
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python examples/demo.py",
        description="Write deterministic demo logs (with injected incidents) for configs/.",
    )
    parser.add_argument("out_dir", type=Path, help="output folder, e.g. configs/data")
    parser.add_argument(
        "--at",
        type=_parse_at,
        default=DEMO_AT,
        help=f"end of the logs (default {_iso(_us(DEMO_AT))})",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--days", type=int, default=9, help="days of history (default 9)")
    live_opts = parser.add_argument_group("live mode (--live)")
    live_opts.add_argument(
        "--live", action="store_true", help="keep appending logs and write a live config"
    )
    live_opts.add_argument("--interval", type=float, default=5.0, help="seconds (default 5)")
    live_opts.add_argument("--speed", type=int, default=60, help="time scale (default 60)")
    live_opts.add_argument(
        "--incident-every", type=float, default=60.0, help="seconds (default 60)"
    )
    live_opts.add_argument(
        "--incident-length", type=float, default=40.0, help="seconds (default 40)"
    )
    live_opts.add_argument(
        "--incidents", default=",".join(LIVE_KINDS), help="kinds to cycle, comma-separated"
    )
    live_opts.add_argument("--no-backfill", action="store_true", help="append only")
    live_opts.add_argument("--no-config", action="store_true", help="write no config")
    args = parser.parse_args(argv)
    if args.live:
        try:
            return _live_main(args)
        except ValueError as exc:
            parser.error(str(exc))
    started = time.perf_counter()
    try:
        manifest = generate(args.out_dir, at=args.at, days=args.days, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    files = manifest["files"]
    print(
        f"wrote {len(files)} files ({sum(files.values()):,} rows) to {args.out_dir} "
        f"in {time.perf_counter() - started:.1f}s; incidents: "
        + ", ".join(i["id"] for i in manifest["incidents"]),
        file=sys.stderr,
    )
    print(args.out_dir / "incidents.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
