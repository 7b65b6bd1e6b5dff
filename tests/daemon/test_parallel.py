"""A slow model never holds up the others, and its late ticks are counted and
skipped, not piled up: a real daemon subprocess where one model (``slow``) reads
500 small CSV files per tick, which takes seconds here, against a 1 s cadence and
a 300 ms deadline. The other model (``m1``) must tick every second meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from tests.daemon.conftest import Site, stop_proc
from tests.daemon.test_http import sample
from tests.delivery.conftest import wait_until

pytestmark = pytest.mark.timeout(90)

SLOW = """\
version: 1
model: slow
sources:
  requests: {path: "slow/*.csv", timestamp: ts}
evaluation: {every: 1s, window: 1h, min_rows: 1, deadline: 300ms}
checks:
  - {name: rows, source: requests, type: row_count, critical: {below: 1}}
"""


def _slow_site(site: Site, files: int = 500) -> None:
    folder = site.root / "slow"
    folder.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(files):
        rows = [f"{(now - timedelta(minutes=10, seconds=i)).isoformat()},{i}"]
        (folder / f"f{i:04d}.csv").write_text("ts,x\n" + "\n".join(rows) + "\n")
    (site.root / "models" / "slow.yaml").write_text(SLOW, encoding="utf-8")


def _ticks(site: Site, model: str) -> list[str]:
    return [r[0] for r in site.query(f"SELECT at FROM history WHERE model='{model}' ORDER BY at")]


def _seconds(ats: list[str]) -> list[datetime]:
    return [datetime.strptime(a, "%Y-%m-%dT%H:%M:%S.%fZ") for a in ats]


def test_a_slow_model_neither_starves_the_others_nor_piles_up(site: Site) -> None:
    _slow_site(site)
    d = site.start()
    wait_until(d.serving, 20, "the HTTP endpoint")
    wait_until(lambda: len(_ticks(site, "slow")) >= 3, 60, "three slow ticks")
    fast, slow = _seconds(_ticks(site, "m1")), _seconds(_ticks(site, "slow"))
    # m1 kept its every-second schedule across the slow model's long ticks
    during = [t for t in fast if slow[0] <= t <= slow[-1]]
    span = (slow[-1] - slow[0]).total_seconds()
    assert len(during) >= span - 1 >= 2
    # the slow model skipped ahead: never every second, never twice the same tick
    gaps = [(b - a).total_seconds() for a, b in pairwise(slow)]
    assert all(g >= 2 for g in gaps) and len(set(slow)) == len(slow)
    overrun = sample(d, "rulesengine_ticks_overrun_total", model="slow") or 0
    missed = sample(d, "rulesengine_ticks_missed_total", model="slow") or 0
    assert overrun >= len(slow) - 1 and missed >= sum(g - 1 for g in gaps)
    assert sample(d, "rulesengine_ticks_overrun_total", model="m1") == 0
    assert sample(d, "rulesengine_ticks_missed_total", model="m1") == 0
    lines = d.lines()
    assert any(ln["msg"] == "tick overrun" and ln["model"] == "slow" for ln in lines)
    assert any(ln["msg"] == "ticks missed" and ln["model"] == "slow" for ln in lines)
    # SIGTERM with a slow tick in flight: it finishes (or is abandoned after the
    # stated 10 s), and the daemon exits 0
    assert stop_proc(d, bound=20) < 15
