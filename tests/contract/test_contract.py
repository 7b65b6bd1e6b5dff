"""rulesengine.contract and `rulesengine contract`: the JSON Schema passes the
metaschema, each kind of rule refuses a request naming the field (the fast validator
and jsonschema alike), and a request the contract allows passes the spec's checks
once the logger has written it."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rulesengine.contract import ContractError, load_contract, validator, violations_json
from rulesengine.logger import ModelLogger
from tests.conftest import ROOT, run_cli

SPEC = """\
version: 1
model: scorer
sources:
  requests: {path: logs/scorer/requests/**/*.parquet, timestamp: ts, partition_date: dt}
  other: {path: logs/other/*.parquet, timestamp: ts}
evaluation: {every: 5m, window: 1d, min_rows: 1}
checks:
  - {name: volume, source: requests, type: row_count, warn: {below: 1}}
  - name: request-schema
    source: requests
    type: schema
    strict: true
    expected_columns:
      request_id: string
      ts: datetime
      amount: numeric
      term: integer
      purpose: string
      vip: boolean
      note: string
      score: float
  - {name: amount-nulls, source: requests, type: null_rate, column: amount,
     critical: {above: 0.05}}
  - {name: note-nulls, source: requests, type: null_count, column: note, warn: {above: 1}}
  - {name: amount-range, source: requests, type: out_of_range, column: amount,
     min: 0, max: 1000, critical: {above: 0.01}}
  - {name: term-floor, source: requests, type: out_of_range, column: term, min: 6,
     warn: {above: 0}}
  - {name: purposes, source: requests, type: allowed_values, column: purpose,
     values: [car, home], critical: {above: 0}}
  - {name: terms, source: requests, type: allowed_values, column: term,
     values: [12, 24, 36], critical: {above: 0}}
  - {name: vip-purposes, source: requests, type: allowed_values, column: purpose,
     values: [home], filter: "vip", critical: {above: 0}}
  - {name: numeric-nulls, source: requests, type: null_rate, columns: numeric,
     exclude: [amount, score], critical: {above: 0.5}}
"""
GOOD = {"amount": 120.5, "term": 24, "purpose": "car", "vip": False, "note": None}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "engine.yaml").write_text("version: 1\nstate: .rulesengine/state.db\n")
    path = tmp_path / "models" / "scorer.yaml"
    path.write_text(SPEC)
    return path


def schema_errors(schema: dict[str, Any], request: dict[str, Any]) -> list[str]:
    v = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(request)]


# ------------------------------------------------------------------ the JSON Schema


def model_files() -> list[Path]:
    return [*sorted((ROOT / "configs" / "models").glob("*.yaml")),
            ROOT / "examples" / "serving" / "models" / "loan-scorer.yaml"]  # fmt: skip


@pytest.mark.parametrize("path", model_files(), ids=lambda p: p.name)
def test_every_shipped_model_gives_a_schema_that_passes_the_metaschema(path: Path) -> None:
    contract = load_contract(path)
    jsonschema.Draft202012Validator.check_schema(contract.json_schema())
    assert contract.fields


def test_the_command_prints_the_schema(spec: Path) -> None:
    out = run_cli("contract", str(spec), "--exclude", "score", "--format", "json-schema")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == load_contract(spec, exclude=["score"]).json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["amount", "term", "purpose", "vip", "note"]
    assert schema["additionalProperties"] is False
    amount = schema["properties"]["amount"]
    assert amount["type"] == "number" and (amount["minimum"], amount["maximum"]) == (0, 1000)
    assert schema["properties"]["term"]["enum"] == [12, 24, 36]  # numeric-nulls: not null
    assert schema["properties"]["purpose"]["enum"] == ["car", "home", None]  # no filter's rule
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert "ts" not in schema["required"] and "request_id" not in schema["required"]


def test_command_exit_codes(spec: Path, tmp_path: Path) -> None:
    unknown = run_cli("contract", str(spec), "--source", "requets")
    assert unknown.returncode == 2
    assert "no source 'requets' (did you mean 'requests'?)" in unknown.stderr
    nothing = run_cli("contract", str(spec), "--source", "other")
    assert nothing.returncode == 0  # a contract without rules: any object
    bad = tmp_path / "models" / "bad.yaml"
    bad.write_text(SPEC.replace("model: scorer", "model: bad").replace("min: 6", "min: 6, mni: 1"))
    invalid = run_cli("contract", str(bad))
    assert invalid.returncode == 3 and "unknown key 'mni'" in invalid.stderr
    usage = run_cli("contract", str(spec), "--format", "yaml")
    assert usage.returncode == 2


def test_no_rule_to_derive_or_several_sources_is_a_usage_error(spec: Path) -> None:
    text = SPEC.replace("type: row_count", "type: row_count").split("  - name: request-schema")[0]
    spec.write_text(text)
    with pytest.raises(ContractError, match="no check a single request can break"):
        load_contract(spec)
    spec.write_text(
        SPEC + "  - {name: o, source: other, type: null_rate, column: x, critical: {above: 0}}\n"
    )
    with pytest.raises(ContractError, match="choose one with --source"):
        load_contract(spec)


# ------------------------------------------------------------------ refusing requests

CASES = [
    # (what, change to GOOD, field, rule, message)
    ("missing", {"amount": ...}, "amount", "required", "missing column 'amount'"),
    ("dtype", {"term": "24"}, "term", "dtype", "column 'term' is string, expected integer"),
    ("dtype bool", {"vip": 1}, "vip", "dtype", "column 'vip' is integer, expected boolean"),
    (
        "unexpected",
        {"amout": 3},
        "amout",
        "unexpected",
        "unexpected column 'amout' (did you mean 'amount'?)",
    ),
    ("not null", {"amount": None}, "amount", "not_null", "null value in column 'amount'"),
    ("range", {"amount": 1000.5}, "amount", "range", "value 1000.5 is outside [0, 1000]"),
    ("min only", {"term": 3}, "term", "range", "value 3 is below min 6"),
    (
        "allowed",
        {"purpose": "boat"},
        "purpose",
        "allowed_values",
        "value 'boat' is not allowed: ['car', 'home']",
    ),
    (
        "allowed number",
        {"term": 48},
        "term",
        "allowed_values",
        "value 48 is not allowed: [12, 24, 36]",
    ),
]


@pytest.mark.parametrize(("what", "change", "field", "rule", "message"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_each_kind_of_rule_refuses_naming_the_field(
    spec: Path, what: str, change: dict[str, Any], field: str, rule: str, message: str
) -> None:
    contract = load_contract(spec, exclude=["score"])
    request = {k: v for k, v in {**GOOD, **change}.items() if v is not ...}
    found = contract.validator()(request)
    assert (field, rule, message) in [(v.field, v.rule, v.message) for v in found]
    assert {v.field for v in found} == {field}  # "24" for term also breaks its range and values
    assert any(str(v).startswith(f"{field}: {message} (") for v in found)
    errors = schema_errors(contract.json_schema(), request)
    assert errors and all(field in e for e in errors), errors


def test_every_violation_of_a_request_is_reported_at_once(spec: Path) -> None:
    check = validator(spec, exclude=["score"])
    request = {"amount": -1, "term": "x", "purpose": "boat", "vip": None, "extra": 1}
    found = check(request)
    assert sorted((v.field, v.rule) for v in found) == [
        ("amount", "range"),
        ("extra", "unexpected"),
        ("note", "required"),
        ("purpose", "allowed_values"),
        ("term", "allowed_values"),
        ("term", "dtype"),
        ("term", "range"),
    ]
    doc = json.loads(violations_json(found))
    assert doc["valid"] is False and {v["check"] for v in doc["violations"]} >= {"amount-range"}
    assert check(GOOD) == [] and json.loads(violations_json([])) == {
        "valid": True,
        "violations": [],
    }
    assert [v.rule for v in check(["not", "an", "object"])] == ["type"]  # type: ignore[arg-type]


def test_thresholds_decide_which_rules_a_single_request_can_break(spec: Path) -> None:
    contract = load_contract(spec, exclude=["score"])
    by_name = {f.name: f for f in contract.fields}
    assert by_name["amount"].not_null == "amount-nulls"  # a 5% rate: one null row is 100%
    assert by_name["note"].not_null is None  # one null is a count of 1, not above 1
    assert by_name["term"].not_null == "numeric-nulls"  # the selector, against the schema
    assert [c for *_, c in by_name["purpose"].allowed] == ["purposes"]  # the filtered one is out
    assert "score" not in by_name and "score" in contract.excluded
    assert contract.dtypes()["amount"].is_float()


def test_the_fast_validator_and_the_json_schema_agree(spec: Path) -> None:
    contract = load_contract(spec, exclude=["score"])
    check, schema = contract.validator(), contract.json_schema()
    rng = random.Random(16)
    values = [None, -5, 0, 6, 12, 24.0, 36, 500.5, 2000, "car", "home", "boat", "24", True, False]
    keys = ["amount", "term", "purpose", "vip", "note", "score", "extra"]
    for _ in range(400):
        request = {k: rng.choice(values) for k in keys if rng.random() < 0.8}
        assert (check(request) == []) == (schema_errors(schema, request) == []), request


# ------------------------------------------------------------------ logged, it passes


def test_requests_the_contract_allows_pass_the_specs_checks_when_logged(spec: Path) -> None:
    contract = load_contract(spec, exclude=["score"])
    check = contract.validator()
    rng = random.Random(7)
    allowed = []
    while len(allowed) < 200:
        request = {
            "amount": rng.choice([0, 1000, round(rng.uniform(0, 1000), 2), 7]),
            "term": rng.choice([12, 24, 36, 24.0]),
            "purpose": rng.choice(["car", "home", None]),
            "vip": rng.choice([True, False, None]),
            "note": rng.choice(["", "hello", None]),
        }
        if not check(request):
            allowed.append(request)
    root = spec.parent.parent / "logs"
    with ModelLogger(root, model="scorer", flush_rows=64, dtypes=contract.dtypes()) as lg:
        for request in allowed:
            lg.log(**request, score=rng.random())
    at = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = run_cli("run", str(spec.parent.parent), "--at", at, "--format", "json",
                  "--fail-on", "never")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads(out.stdout)["models"][0]["results"]
    status = {r["monitor"]: r["status"] for r in results}
    # left out of the contract, as documented: a check with a filter (SQL over rows),
    # and a count threshold, which one request cannot break but 200 together can
    status.pop("vip-purposes")
    assert status.pop("note-nulls") in ("ok", "warn")
    assert set(status.values()) == {"ok"}, status
    assert next(r for r in results if r["monitor"] == "volume")["value"] == 200


def test_one_allowed_request_logged_alone_passes_every_check(spec: Path) -> None:
    contract = load_contract(spec, exclude=["score"])
    request = {"amount": 1000, "term": 36.0, "purpose": None, "vip": True, "note": None}
    assert contract.validator()(request) == []
    with ModelLogger(spec.parent.parent / "logs", model="scorer", dtypes=contract.dtypes()) as lg:
        lg.log(**request, score=0.5)
    at = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = run_cli("run", str(spec.parent.parent), "--at", at, "--format", "json")
    results = json.loads(out.stdout)["models"][0]["results"]
    # passes: nothing at warn or above (a rate over no non-null value is insufficient_data)
    assert out.returncode == 0, results
    assert {r["status"] for r in results} <= {"ok", "insufficient_data"}, results
