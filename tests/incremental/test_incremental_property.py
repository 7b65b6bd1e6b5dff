"""Property: whatever files are appended, rewritten or deleted between ticks,
the incremental results equal a full rescan."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rulesengine.engine.incremental import Report
from tests.incremental.helpers import (
    AT,
    assert_same,
    both,
    hour_frame,
    load_model,
    model_spec,
    write_hour,
    write_reference,
)

step_st = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 2**16)),
    st.tuples(st.just("rewrite"), st.integers(0, 2**16)),
    st.tuples(st.just("delete"), st.integers(0, 2**16)),
    st.tuples(st.just("tick"), st.integers(1, 4)),
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fmt=st.sampled_from(["parquet", "csv"]), steps=st.lists(step_st, min_size=2, max_size=4))
# found by CI: a share of exactly 15/32 in kpi-1's round(avg(...), 4), which the
# merged mean (then Chan's running mean) put one ulp below the tie
@example(fmt="csv", steps=[("append", 65536), ("delete", 743)])
def test_incremental_equals_full_rescan(fmt: str, steps: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        logs = root / "logs"
        files = [write_hour(logs, AT - timedelta(hours=4 - h), 120, h, fmt) for h in range(4)]
        write_reference(root / "ref.parquet")
        model = load_model(root, model_spec(root, fmt, window="3h"))
        at = AT
        assert_same(*both(model, root / "cache", at))
        for op, n in steps:
            if op == "append":
                files.append(write_hour(logs, at - timedelta(minutes=30), 50 + n % 90, n, fmt))
            elif op == "rewrite" and files:
                victim = files[n % len(files)]
                start = at - timedelta(hours=1 + n % 3)
                df = hour_frame(start, 40 + n % 120, n)
                if fmt == "csv":
                    import polars as pl

                    ts = pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
                    df.with_columns(ts).write_csv(victim)
                else:
                    df.write_parquet(victim)
                st_ = victim.stat()
                os.utime(victim, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
            elif op == "delete" and len(files) > 1:
                files.pop(n % len(files)).unlink()
            elif op == "tick":
                at += timedelta(minutes=15 * n)
            report = Report()
            full, inc = both(model, root / "cache", at, report)
            assert_same(full, inc)
            assert "partials" in report.queries.values()
