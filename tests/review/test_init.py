"""``rulesengine init --from-reference``: the numbers of the starter spec against
hand computations on a generated reference, the spec validates, and ``run`` with
the reference as the live source fires nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import run_cli

N = 2000
DEVICES = [f"dev-{k:02d}" for k in range(25)]  # 25 distinct: above the cutoff of 20


def reference_frame() -> pl.DataFrame:
    """Known nulls, ranges and categories (numbers worked out in the tests)."""
    t0 = datetime(2026, 11, 1)
    return pl.DataFrame(
        {
            "ts": [t0 + timedelta(minutes=i) for i in range(N)],
            # null every 40th row: 50 nulls; the others 12.5 .. 507.5 (i % 200 never 0)
            "amount": [None if i % 40 == 0 else 10 + (i % 200) * 2.5 for i in range(N)],
            "temp": [-20.0 + (i % 51) for i in range(N)],  # -20 .. 30, no nulls
            "age": [18 + (i % 73) for i in range(N)],  # 18 .. 90
            # null every 100th row: 20 nulls, rate 0.01
            "country": [
                None if i % 100 == 0 else ["DE", "FR", "São Tomé"][i % 3] for i in range(N)
            ],
            "device": [DEVICES[i % 25] for i in range(N)],
            "request_id": [f"r{i}" for i in range(N)],
            "odd col": [i % 2 == 0 for i in range(N)],
        }
    )


def spec_of(text: str) -> dict:
    return yaml.safe_load(text)


def checks_by_name(spec: dict) -> dict[str, dict]:
    return {c["name"]: c for c in spec["checks"]}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config directory whose defaults window covers the whole reference."""
    (tmp_path / "data").mkdir()
    reference_frame().write_parquet(tmp_path / "data" / "ref.parquet")
    (tmp_path / "engine.yaml").write_text(
        "version: 1\nstate: state.db\ndefaults: {window: 30d, min_rows: 10}\n"
    )
    return tmp_path


def test_numbers_match_hand_computations(config: Path) -> None:
    out = config / "models" / "fraud.yaml"
    r = run_cli(
        "init", "--from-reference", "data/ref.parquet", "--model", "fraud",
        "--timestamp", "ts", "--out", str(out), cwd=config,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "note:" not in r.stderr  # engine.yaml governs models/
    text = out.read_text()
    spec = spec_of(text)
    assert spec["sources"]["reference"] == {"path": "data/ref.parquet"}  # relative to the root
    assert spec["sources"]["requests"]["timestamp"] == "ts"
    assert "placeholder" in text
    checks = checks_by_name(spec)
    assert checks["schema"]["expected_columns"] == {
        "ts": "datetime", "amount": "float", "temp": "float", "age": "integer",
        "country": "string", "device": "string", "request_id": "string", "odd col": "boolean",
    }  # fmt: skip
    # amount: 50 nulls in 2000 rows = 0.025; warn max(0.05, 0.035), critical max(0.125, 0.075)
    assert checks["nulls-amount"]["warn"] == {"above": 0.05}
    assert checks["nulls-amount"]["critical"] == {"above": 0.125}
    assert "# observed null rate 0.025 (50 of 2,000 rows)" in text
    # country: 0.01; warn max(0.02, 0.02), critical max(0.05, 0.06)
    assert checks["nulls-country"]["warn"] == {"above": 0.02}
    assert checks["nulls-country"]["critical"] == {"above": 0.06}
    # no nulls: warn 0 + 0.01, critical 0 + 0.05
    assert checks["nulls-age"]["warn"] == {"above": 0.01}
    assert checks["nulls-age"]["critical"] == {"above": 0.05}
    assert checks["nulls-odd_col"]["column"] == "odd col"
    assert "nulls-ts" not in checks
    # amount 12.5 .. 507.5: width 495, margin 49.5 → [-37, 557], min kept at 0
    assert (checks["range-amount"]["min"], checks["range-amount"]["max"]) == (0, 557)
    assert "# observed min 12.5, max 507.5" in text
    # temp -20 .. 30: margin 5 → [-25, 35]
    assert (checks["range-temp"]["min"], checks["range-temp"]["max"]) == (-25, 35)
    # age 18 .. 90: margin 7.2 → [10.8, 97.2], integers rounded outward → [10, 98]
    assert (checks["range-age"]["min"], checks["range-age"]["max"]) == (10, 98)
    assert checks["range-age"]["warn"] == {"above": 0.001}
    # three countries (at most 20): allowed values; 25 devices and unique ids: none
    assert checks["values-country"]["values"] == ["DE", "FR", "São Tomé"]
    assert checks["values-country"]["warn"] == {"above": 0}
    assert not any(n.startswith("values-device") or n.startswith("values-request") for n in checks)
    assert not any(n.startswith("range-") and "odd" in n for n in checks)  # booleans: no range
    (drift,) = spec["drift"]
    assert drift["method"] == "auto" and drift["reference"] == "reference"
    assert drift["columns"] == ["amount", "temp", "age", "country", "device", "odd col"]
    assert "left out: request_id" in text


def test_starter_validates_and_fires_nothing_on_its_reference(config: Path) -> None:
    out = config / "models" / "fraud.yaml"
    r = run_cli(
        "init", "--from-reference", "data/ref.parquet", "--model", "fraud",
        "--timestamp", "ts", "--out", str(out), cwd=config,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    v = run_cli("validate", str(config))
    assert v.returncode == 0, v.stdout + v.stderr
    # the user's edit: the live source is the reference itself
    text = out.read_text().replace('"data/fraud/requests/*.parquet"', "data/ref.parquet")
    out.write_text(text)
    last = datetime(2026, 11, 1) + timedelta(minutes=N - 1)
    r = run_cli("run", str(config), "--at", f"{last:%Y-%m-%dT%H:%M:%S}Z", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    (doc,) = json.loads(r.stdout)["models"]
    results = doc["results"]
    statuses = {(x["monitor"], x.get("column")): x["status"] for x in results}
    # 1 schema + 7 null rates + 3 ranges + 1 allowed values + 6 drift columns + share
    assert len(statuses) == 19, statuses
    assert set(statuses.values()) == {"ok"}, statuses
    rows = {x["monitor"]: x.get("rows") for x in results if x["monitor"] == "nulls-amount"}
    assert rows == {"nulls-amount": N}  # the whole reference was evaluated


def test_csv_reference_to_stdout_runs_static(tmp_path: Path) -> None:
    """A CSV reference without --timestamp: the spec goes to stdout, names the
    reference by its absolute path; both sources static, nothing fires."""
    ref = tmp_path / "ref.csv"
    reference_frame().drop("ts").write_csv(ref)
    r = run_cli("init", "--from-reference", str(ref), "--model", "m1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spec = spec_of(r.stdout)
    assert spec["sources"]["reference"]["path"] == str(ref.resolve())
    assert "timestamp" not in spec["sources"]["requests"]
    assert checks_by_name(spec)["range-age"]["max"] == 98
    model = tmp_path / "m1.yaml"
    model.write_text(r.stdout.replace('"data/m1/requests/*.csv"', json.dumps(str(ref))))
    run = run_cli("run", str(model), "--format", "json", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    statuses = {x["status"] for x in json.loads(run.stdout)["models"][0]["results"]}
    assert statuses == {"ok"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timestamp", "when"], "--timestamp: ref.parquet has no column 'when'"),
        (["--model", "bad name!"], "--model: 'bad name!' is not a valid name"),
        (["--from-reference", "nope.parquet"], "nope.parquet is not a file"),
        (["--from-reference", "notes.txt"], "cannot tell the format of notes.txt"),
        (["--out", "taken.yaml"], "taken.yaml exists; init never overwrites a file"),
        (["--from-reference", "empty.parquet"], "empty.parquet has no rows"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    reference_frame().head(10).write_parquet(tmp_path / "ref.parquet")
    (tmp_path / "notes.txt").write_text("a\n")
    (tmp_path / "taken.yaml").write_text("keep me\n")
    reference_frame().head(0).write_parquet(tmp_path / "empty.parquet")
    base = {"--from-reference": "ref.parquet", "--model": "m"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    r = run_cli("init", *[x for kv in base.items() for x in kv], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert (tmp_path / "taken.yaml").read_text() == "keep me\n"


def test_note_when_no_engine_governs_the_output(tmp_path: Path) -> None:
    reference_frame().head(50).write_parquet(tmp_path / "ref.parquet")
    r = run_cli(
        "init", "--from-reference", "ref.parquet", "--model", "m", "--out", "specs/m.yaml",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "note: no engine.yaml" in r.stderr
    spec = spec_of((tmp_path / "specs" / "m.yaml").read_text())
    assert spec["sources"]["reference"]["path"] == str((tmp_path / "ref.parquet").resolve())


def test_unreadable_reference_exits_4(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet\n")
    r = run_cli("init", "--from-reference", "bad.parquet", "--model", "m", cwd=tmp_path)
    assert r.returncode == 4
    assert r.stderr.startswith("error: source 'reference': cannot read bad.parquet:")
    assert r.stdout == ""
