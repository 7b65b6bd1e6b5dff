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
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
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


def _fraud(rng: np.random.Generator, out: Path, at_us: int, days: int) -> dict[str, Any]:
    start = at_us - days * DAY_US
    ts = _arrivals(rng, start, at_us, FRAUD_PER_HOUR, 0.35, 15.0)
    n = ts.size
    stream = (rng.random(n) < FRAUD_V4_SHARE).astype(np.int64)  # 0: v3, 1: v4
    fraud = _by_stream(rng, stream, STEPS["fraud"], trim=0) < FRAUD_RATE
    feats = _fraud_features(rng, fraud, stream)

    # scores: legitimate rows below 0.5 except a few false positives
    u = _by_stream(rng, stream, STEPS["score"])
    score = np.minimum(_kumaraswamy(u, 0.65, 9.0), 0.4999)
    legit = np.flatnonzero(~fraud)
    fp = legit[rng.random(legit.size) < FRAUD_FP_RATE]
    score[fp] = rng.uniform(0.5, 0.85, fp.size)
    # fraud rows: an exact share per (version, period) is caught
    drop_lo, drop_hi = at_us - 3 * DAY_US, at_us - 2 * DAY_US
    in_drop = (ts > drop_lo) & (ts <= drop_hi)
    detected = np.zeros(n, dtype=bool)
    for s, version in enumerate(FRAUD_VERSIONS):
        for period in (False, True):
            idx = np.flatnonzero(fraud & (stream == s) & (in_drop == period))
            share = ACCURACY_DROP_RECALL if (version == "v4" and period) else FRAUD_RECALL[version]
            detected[_exact_choice(rng, idx, share)] = True
    hit = np.flatnonzero(detected)
    miss = np.flatnonzero(fraud & ~detected)
    score[hit] = 0.5 + 0.49 * rng.beta(2.0, 1.2, hit.size)
    score[miss] = 0.49 * rng.beta(2.5, 1.8, miss.size)

    # latency, with the spike in the last hour
    latency = rng.lognormal(math.log(42.0), 0.35, n)
    last_hour = ts > at_us - HOUR_US
    lh = np.flatnonzero(last_hour)
    slow = lh[rng.random(lh.size) < SPIKE_SLOW_SHARE]
    latency[slow] = rng.lognormal(math.log(SPIKE_SLOW_MEDIAN_MS), 0.3, slow.size)

    # amount nulls: a trickle, then exactly 8% per version in the last hour
    amount = feats["amount"].copy()
    null = rng.random(n) < FRAUD_BASE_NULL
    null[lh] = False
    for s in range(2):
        null[_exact_choice(rng, np.flatnonzero(last_hour & (stream == s)), NULL_BURST_SHARE)] = True
    amount[null] = np.nan

    requests = pl.DataFrame(
        {
            "request_id": pl.Series(np.arange(n)).cast(pl.String).str.zfill(8),
            "_us": ts,
            "amount": amount,
            "country": feats["country"],
            "device": feats["device"],
            "account_age_days": feats["account_age_days"],
            "score": np.round(score, 5),
            "model_version": np.asarray(FRAUD_VERSIONS)[stream],
            "latency_ms": np.round(latency, 1),
        }
    ).with_columns(
        request_id="tx-" + pl.col("request_id"),
        ts=_ts(),
        amount=pl.col("amount").fill_nan(None),
    )
    requests = requests.select(
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
    files = _write_daily(
        requests, "_us", _fresh(out / "fraud" / "requests"), "parquet", "dt={day}/part-0.{fmt}"
    )

    # labels: 95% arrive 10 minutes to 2 days later; only those known at `at` exist.
    # Low-discrepancy per class, so that the fraud rate among the labels of any
    # window (label drift) stays steady.
    cls = fraud.astype(np.int64)
    arrives = _by_stream(rng, cls, STEPS["arrive"], trim=0) >= LABEL_MISSING
    delay_u = _kumaraswamy(_by_stream(rng, cls, STEPS["delay"]), 1.5, 2.2)
    delay_s = LABEL_MIN_DELAY_S + (LABEL_MAX_DELAY_S - LABEL_MIN_DELAY_S) * delay_u
    labeled_s = (ts // US_PER_S) + delay_s.astype(np.int64)
    keep = arrives & (labeled_s * US_PER_S <= at_us)
    labels = (
        pl.DataFrame(
            {
                "request_id": requests["request_id"].filter(pl.Series(keep)),
                "is_fraud": fraud[keep],
                "model_version": requests["model_version"].filter(pl.Series(keep)),
                "_us": labeled_s[keep] * US_PER_S,
            }
        )
        .sort("_us", "request_id")
        .with_columns(labeled_at=_ts().dt.strftime(ISO_S))
    )
    labels = labels.select("request_id", "is_fraud", "labeled_at", "model_version", "_us")
    files |= _write_daily(labels, "_us", _fresh(out / "fraud" / "labels"), "ndjson")

    # training: the same feature distributions, i.i.d., with labels
    t_fraud = rng.random(FRAUD_TRAINING_ROWS) < FRAUD_RATE
    t = _fraud_features(rng, t_fraud, None)
    training = pl.DataFrame({**t, "is_fraud": t_fraud})
    training.write_parquet(out / "fraud" / "training.parquet", compression="zstd")
    files[str(out / "fraud" / "training.parquet")] = training.height

    # incident facts, from the generated rows
    facts: dict[str, Any] = {"null_rate": {}, "latency_p95": {}, "recall": {}}
    segs = {"": np.ones(n, dtype=bool)} | {v: stream == s for s, v in enumerate(FRAUD_VERSIONS)}
    for name, m in segs.items():
        sel = last_hour & m
        facts["null_rate"][name] = float(null[sel].mean())
        facts["latency_p95"][name] = float(np.quantile(np.round(latency, 1)[sel], 0.95))
        lab = in_drop & m & keep & fraud
        facts["recall"][name] = float((score[lab] >= 0.5).mean())
    return {"files": files, "facts": facts}


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

    # schema change: the file of at's day reports latency in seconds, as latency_s
    folder = _fresh(out / "assistant" / "requests")
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
    files |= changed

    # feedback: ~6% of answered requests get a thumbs up/down a minute or two later
    idx = np.flatnonzero(ok & (rng.random(n) < FEEDBACK_SHARE))
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
    feedback = feedback.with_columns(ts=_ts().dt.strftime(ISO_S)).select(
        "ts", "request_id", "model_version", "rating", "_us"
    )
    files |= _write_daily(feedback, "_us", _fresh(out / "assistant" / "feedback"), "ndjson")
    return {"files": files, "facts": {"changed_files": sorted(changed)}}


# --- manifest ---------------------------------------------------------------------
def _window(start_us: int, end_us: int) -> dict[str, str]:
    return {"start": _iso(start_us), "end": _iso(end_us)}


def _manifest(
    out: Path, at_us: int, days: int, seed: int, parts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    fraud = parts["fraud"]["facts"]
    seg = {"": {}} | {v: {"model_version": v} for v in FRAUD_VERSIONS}
    asst_seg = [{}] + [{"model_version": v} for v in ASSISTANT_VERSIONS]
    last_hour = _window(at_us - HOUR_US, at_us)
    drop = _window(at_us - 3 * DAY_US, at_us - 2 * DAY_US)
    changed = [
        Path(p).relative_to(out).as_posix() for p in parts["assistant"]["facts"]["changed_files"]
    ]
    incidents = [
        {
            "id": "null-burst",
            "description": f"fraud-detector amount is null in {NULL_BURST_SHARE:.0%} of the rows "
            "of the last hour (per model version)",
            "model": "fraud-detector",
            "monitor": "amount-nulls",
            "kind": "check",
            "source": "requests",
            "column": "amount",
            "window": last_hour,
            "expected": [
                {"segment": s, "status": "critical", "value": round(fraud["null_rate"][k], 6)}
                for k, s in seg.items()
            ],
            "alert": "firing at once (no `for`)",
        },
        {
            "id": "schema-change",
            "description": "support-assistant request files of at's day rename latency_ms to "
            "latency_s (seconds): latency_ms is absent from every row of the window, so "
            "latency-p95 cannot be computed; a run must not report ok: error (the column is "
            "missing from the window's files) is best; an engine that only sees an all-null "
            "column may say no_data or insufficient_data",
            "model": "support-assistant",
            "monitor": "latency-p95",
            "kind": "metric",
            "source": "requests",
            "column": "latency_ms",
            "renamed_to": "latency_s",
            "files": changed,
            "window": _window(at_us - 1800 * US_PER_S, at_us),
            "expected": [
                {
                    "segment": s,
                    "status": "error",
                    "acceptable": ["error", "no_data", "insufficient_data"],
                }
                for s in asst_seg
            ],
            "alert": "none with the default policy (keep_last for no_data, insufficient_data "
            "and error): the monitor goes blind silently unless the spec adds a schema check "
            "or `policy: {error: alert, ...}`",
        },
        {
            "id": "latency-spike",
            "description": f"{SPIKE_SLOW_SHARE:.0%} of fraud-detector requests of the last hour "
            f"take a degraded path (median {SPIKE_SLOW_MEDIAN_MS:.0f} ms)",
            "model": "fraud-detector",
            "monitor": "latency-p95",
            "kind": "metric",
            "source": "requests",
            "column": "latency_ms",
            "window": last_hour,
            "expected": [
                {"segment": s, "status": "critical", "value": round(fraud["latency_p95"][k], 1)}
                for k, s in seg.items()
            ],
            "alert": "firing at once (no `for`)",
        },
        {
            "id": "accuracy-drop",
            "description": f"fraud-detector v4 catches only {ACCURACY_DROP_RECALL:.0%} of fraud "
            "among the requests of (at-3d, at-2d], the window that recall/precision "
            "(window 1d, delay 2d) see at `at`; v3 and the overall recall stay above 0.7 "
            "(overall ok: the drop shows only per segment). precision stays ok in every "
            "segment.",
            "model": "fraud-detector",
            "monitor": "recall",
            "kind": "metric",
            "source": "requests",
            "window": drop,
            "expected": [
                {
                    "segment": s,
                    "status": "critical" if k == "v4" else "ok",
                    "value": round(fraud["recall"][k], 4),
                }
                for k, s in seg.items()
            ],
            "alert": "v4 pending after one run (`for: 2`), firing from the second violating "
            "evaluation",
        },
    ]
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
        "incidents": incidents,
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
    args = parser.parse_args(argv)
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
