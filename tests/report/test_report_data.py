"""``rulesengine report --format json`` on a hand-countable config: the drift
counts over the test's own bins, trends from the history, the state file never
created, and the one-line message without matplotlib.

``shop``: a static reference of 10 rows and a window (ts in (11:00, 12:00]) of 6:

* ``channel`` (categorical, jensenshannon): reference web×6, app×4; window web×1,
  app×2, kiosk×3 (a category the reference never saw);
* ``amount`` (numeric, psi, bins: 2): reference 1..10, so the quantile edges are
  hand-checked below by counting the window's values per right-closed cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

AT = "2026-11-27T12:00:00Z"
REFERENCE = "amount,channel\n" + "".join(
    f"{a},{c}\n" for a, c in zip(range(1, 11), ["web"] * 6 + ["app"] * 4, strict=True)
)
WINDOW_VALUES = [(2, "web"), (3, "app"), (9, "app"), (15, "kiosk"), (20, "kiosk"), (1, "kiosk")]
REQUESTS = "ts,amount,channel\n" + "".join(
    f"2026-11-27T11:{10 + 5 * i}:00Z,{a},{c}\n" for i, (a, c) in enumerate(WINDOW_VALUES)
)
MODEL = """\
version: 1
model: shop
sources:
  requests: {path: data/requests.csv, timestamp: ts}
  training: {path: data/training.csv}
evaluation: {every: 1h, window: 1h, min_rows: 1}
checks:
  - {name: volume, source: requests, type: row_count, critical: {below: 3}}
drift:
  - name: features
    source: requests
    reference: training
    columns: [channel, amount]
    bins: 2
    method: psi
    overrides: {channel: {method: jensenshannon}}
kpis:
  - {name: mean-amount, source: requests, expr: "avg(amount)", warn: {above: 8}}
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "data" / "training.csv").write_text(REFERENCE, encoding="utf-8")
    (tmp_path / "data" / "requests.csv").write_text(REQUESTS, encoding="utf-8")
    (tmp_path / "models" / "shop.yaml").write_text(MODEL, encoding="utf-8")
    (tmp_path / "engine.yaml").write_text("version: 1\nstate: state/state.db\n", encoding="utf-8")
    return tmp_path


def _report(root: Path, *args: str) -> dict:
    proc = run_cli("report", ".", "--at", AT, "--format", "json", *args, cwd=root, timeout=90)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _model(doc: dict) -> dict:
    (model,) = doc["models"]
    assert model["model"] == "shop"
    return model


def test_drift_counts_over_the_tests_own_bins(shop: Path):
    model = _model(_report(shop))
    drift = {d["column"]: d for d in model["drift"]}
    channel = drift["channel"]
    # the reference's categories (sorted), then what the reference never saw
    assert channel["categories"] == ["app", "web", "(new)"]
    assert channel["reference"] == [4.0, 6.0, 0.0]
    assert channel["current"] == [2.0, 1.0, 3.0]
    assert channel["current_shares"] == pytest.approx([2 / 6, 1 / 6, 3 / 6])
    assert channel["threshold"] == 0.1 and channel["status"] == "warn"
    amount = drift["amount"]
    # two quantile bins of 1..10: one inner edge between 5 and 6
    assert len(amount["edges"]) == 1 and 5 <= amount["edges"][0] < 6
    assert amount["open_ends"] is True
    assert amount["reference"] == [5.0, 5.0]
    edge = amount["edges"][0]
    window = [a for a, _ in WINDOW_VALUES]
    # right-closed cells (-inf, edge] and (edge, inf), counted by hand
    assert amount["current"] == [sum(a <= edge for a in window), sum(a > edge for a in window)]
    assert amount["current"] == [3.0, 3.0]
    assert amount["statistic"] == pytest.approx(0.0)  # equal shares: PSI 0


def test_wasserstein_cells_and_no_chart_for_a_t_test(shop: Path):
    """wasserstein's chart counts the window's rows per inner fine cell (from the
    cells grouped by Polars); a t_test column has no chart (only counts, means
    and variances are collected), and the others keep theirs."""
    spec = MODEL.replace("    overrides: {channel: {method: jensenshannon}}\n", "")
    spec = spec.replace("columns: [channel, amount]", "columns: [amount]")
    spec = spec.replace("    method: psi\n", "    method: wasserstein\n")
    spec = spec.replace(
        "kpis:",
        """  - {name: means, source: requests, reference: training, columns: [amount],
     method: t_test}
kpis:""",
    )
    (shop / "models" / "shop.yaml").write_text(spec, encoding="utf-8")
    drift = {(d["monitor"], d["column"]): d for d in _model(_report(shop))["drift"]}
    assert ("means", "amount") not in drift
    w = drift[("features", "amount")]
    assert w["method"] == "wasserstein" and w["bins"] == "fine grid (inner cells)"
    inside = [a for a, _ in WINDOW_VALUES if 1 <= a <= 10]  # within the reference's range
    assert 0 < sum(w["current"]) <= len(WINDOW_VALUES)
    assert sum(w["current"]) >= len(inside) - 2  # the grid's ends may fall in the outer cells
    assert sum(w["reference"]) > 0


def test_summary_worst_first_with_thresholds(shop: Path):
    model = _model(_report(shop))
    statuses = [r["status"] for r in model["summary"]]
    rank = {"critical": 0, "warn": 1, "ok": 2}
    assert statuses == sorted(statuses, key=rank.__getitem__)
    kpi = next(r for r in model["summary"] if r["monitor"] == "mean-amount")
    assert kpi["value"] == pytest.approx((2 + 3 + 9 + 15 + 20 + 1) / 6)
    assert kpi["threshold"] == {"warn": {"above": 8.0}}


def test_without_a_state_file_it_is_not_created(shop: Path):
    doc = _report(shop)
    assert "does not exist yet" in doc["history"]
    # (the profile cache beside it is written, as `run` writes it)
    assert not (shop / "state" / "state.db").exists()
    assert _model(doc)["trends"][0]["series"] == []


def test_trends_and_timeline_from_the_history(shop: Path):
    # 11:27: rows 11:10..11:25, amounts 2, 3, 9, 15: mean 7.25 (ok); 12:00: 8.33 (warn)
    for at in ("2026-11-27T11:27:00Z", AT):
        proc = run_cli("run", ".", "--at", at, "--notify", cwd=shop, timeout=90)
        assert proc.returncode in (0, 1), proc.stderr
    model = _model(_report(shop, "--since", "1d"))
    (trend,) = model["trends"]
    assert trend["monitor"] == "mean-amount" and trend["threshold"] == {"warn": {"above": 8.0}}
    (series,) = trend["series"]
    assert series["segment"] == "(all)"
    points = [(p["at"], p["value"], p["status"]) for p in series["points"]]
    assert points == [
        ("2026-11-27T11:27:00Z", pytest.approx(7.25), "ok"),
        (AT, pytest.approx(50 / 6), "warn"),
    ]
    spans = {(t["monitor"], t["column"]): t["spans"] for t in model["timeline"]}
    # no `for:`: the first warn fires at once, and still fires
    assert spans[("mean-amount", None)] == [
        {"state": "firing", "severity": "warn", "start": AT, "end": None}
    ]
    assert {a["monitor"] for a in model["alerts"]} >= {"mean-amount"}


# hourly windows whose mean amount is 5, 10, 10, 12, 5, 5: with `for: 2` the
# alert is pending at 02:00, fires (warn) at 03:00, escalates (critical above 11)
# at 04:00, resolves at 05:00 and is inactive again at 06:00
HOURLY = [5, 10, 10, 12, 5, 5]
STEPS = """version: 1
model: steps
sources:
  requests: {path: data/requests.csv, timestamp: ts}
evaluation: {every: 1h, window: 1h, min_rows: 1}
kpis:
  - {name: mean-amount, source: requests, expr: "avg(amount)", for: 2,
     warn: {above: 8}, critical: {above: 11}}
"""


def _hour(h: int) -> str:
    return f"2026-11-27T{h:02d}:00:00Z"


@pytest.fixture
def steps(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    rows = "".join(
        f"2026-11-27T{h:02d}:{m:02d}:00Z,{mean + d}\n"
        for h, mean in enumerate(HOURLY)
        for m, d in ((20, -1), (40, 1))
    )
    (tmp_path / "data" / "requests.csv").write_text("ts,amount\n" + rows, encoding="utf-8")
    (tmp_path / "models" / "steps.yaml").write_text(STEPS, encoding="utf-8")
    (tmp_path / "engine.yaml").write_text("version: 1\nstate: state/state.db\n", encoding="utf-8")
    for h in range(1, len(HOURLY) + 1):
        proc = run_cli("run", ".", "--at", _hour(h), "--notify", cwd=tmp_path, timeout=90)
        assert proc.returncode in (0, 1), proc.stderr
    return tmp_path


def test_timeline_has_pending_firing_and_resolved_spans(steps: Path):
    proc = run_cli(
        "report", ".", "--at", _hour(6), "--since", "1d", "--format", "json", cwd=steps, timeout=90
    )
    assert proc.returncode == 0, proc.stderr
    (model,) = json.loads(proc.stdout)["models"]
    (row,) = model["timeline"]
    assert (row["monitor"], row["segment"], row["column"]) == ("mean-amount", {}, None)
    assert row["spans"] == [
        {"state": "pending", "severity": None, "start": _hour(2), "end": _hour(3)},
        {"state": "firing", "severity": "warn", "start": _hour(3), "end": _hour(4)},
        {"state": "firing", "severity": "critical", "start": _hour(4), "end": _hour(5)},
        {"state": "resolved", "severity": None, "start": _hour(5), "end": _hour(6)},
    ]
    # a range starting mid-episode keeps the state the alert was in at its start
    proc = run_cli(
        "report",
        ".",
        "--at",
        _hour(6),
        "--since",
        "2h30m",
        "--format",
        "json",
        cwd=steps,
        timeout=90,
    )
    (model,) = json.loads(proc.stdout)["models"]
    (row,) = model["timeline"]
    assert [(s["state"], s["start"]) for s in row["spans"]] == [
        ("firing", _hour(3)),
        ("firing", _hour(4)),
        ("resolved", _hour(5)),
    ]


def test_summary_lists_each_episode_once(steps: Path):
    from rulesengine.report.summary import summary_markdown

    proc = run_cli(
        "report", ".", "--at", _hour(6), "--since", "1d", "--format", "json", cwd=steps, timeout=90
    )
    text = summary_markdown(json.loads(proc.stdout), "daily")
    # the escalation to critical is not a second firing
    assert f"Fired: mean-amount warn at {_hour(3)}\n" in text
    assert f"Resolved: mean-amount at {_hour(5)}\n" in text


def test_html_without_matplotlib_names_the_extra(shop: Path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from rulesengine.cli import main; "
        f"sys.argv = ['rulesengine', 'report', '.', '--at', '{AT}', '--out', 'r.html']; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=shop, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: the report needs matplotlib: pip install 'rulesengine[report]'"
    ]
    assert not (shop / "r.html").exists()


def test_bad_since_is_one_line(shop: Path):
    proc = run_cli("report", ".", "--since", "lately", cwd=shop, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--since" in proc.stderr
    assert ROOT.is_dir()
