"""``run --notify`` writes result history; ``rulesengine history`` reads it back.

Every expectation is worked out by hand from the rows in conftest.py.
"""

from __future__ import annotations

import json

from tests.history.conftest import AT1, AT2, Shop

WIDE = ("--since", "2026-11-27T00:00:00Z", "--until", "2026-11-28T00:00:00Z")

TEXT = """\
AT                    MONITOR       SEGMENT     COLUMN  VALUE  STATUS
2026-11-27T10:00:00Z  amount-nulls  (all)       amount  0.25   ok
2026-11-27T10:00:00Z  amount-nulls  version=v1  amount  0.5    warn
2026-11-27T10:00:00Z  amount-nulls  version=v2  amount  0      ok
2026-11-27T10:00:00Z  volume        (all)       -       4      ok
2026-11-27T12:00:00Z  amount-nulls  (all)       amount  0      ok
2026-11-27T12:00:00Z  amount-nulls  version=v1  amount  0      ok
2026-11-27T12:00:00Z  amount-nulls  version=v2  amount  0      ok
2026-11-27T12:00:00Z  volume        (all)       -       2      critical

shop: 8 rows
"""

W1 = {"start": "2026-11-27T09:00:00Z", "end": "2026-11-27T10:00:00Z"}
W2 = {"start": "2026-11-27T11:00:00Z", "end": "2026-11-27T12:00:00Z"}


def _nulls(at: str, segment: dict, value: float, status: str, rows: int, window: dict) -> dict:
    return {
        "at": at,
        "monitor": "amount-nulls",
        "kind": "check",
        "type": "null_rate",
        "segment": segment,
        "column": "amount",
        "value": value,
        "status": status,
        "rows": rows,
        "window": window,
    }


def _volume(at: str, value: float, status: str, window: dict) -> dict:
    return {
        "at": at,
        "monitor": "volume",
        "kind": "check",
        "type": "row_count",
        "segment": {},
        "column": None,
        "value": value,
        "status": status,
        "rows": int(value),
        "window": window,
    }


ROWS = [
    _nulls(AT1, {}, 0.25, "ok", 4, W1),
    _nulls(AT1, {"version": "v1"}, 0.5, "warn", 2, W1),
    _nulls(AT1, {"version": "v2"}, 0.0, "ok", 2, W1),
    _volume(AT1, 4, "ok", W1),
    _nulls(AT2, {}, 0.0, "ok", 2, W2),
    _nulls(AT2, {"version": "v1"}, 0.0, "ok", 1, W2),
    _nulls(AT2, {"version": "v2"}, 0.0, "ok", 1, W2),
    _volume(AT2, 2, "critical", W2),
]

# the segment is its JSON text, quoted by CSV; an empty field is a missing column
V1, V2 = '"{""version"": ""v1""}"', '"{""version"": ""v2""}"'
C1 = "2026-11-27T09:00:00Z,2026-11-27T10:00:00Z"
C2 = "2026-11-27T11:00:00Z,2026-11-27T12:00:00Z"
NULLS = "amount-nulls,check,null_rate"
CSV = "\n".join(
    [
        "at,monitor,kind,type,segment,column,value,status,rows,window_start,window_end",
        f"{AT1},{NULLS},{{}},amount,0.25,ok,4,{C1}",
        f"{AT1},{NULLS},{V1},amount,0.5,warn,2,{C1}",
        f"{AT1},{NULLS},{V2},amount,0.0,ok,2,{C1}",
        f"{AT1},volume,check,row_count,{{}},,4.0,ok,4,{C1}",
        f"{AT2},{NULLS},{{}},amount,0.0,ok,2,{C2}",
        f"{AT2},{NULLS},{V1},amount,0.0,ok,1,{C2}",
        f"{AT2},{NULLS},{V2},amount,0.0,ok,1,{C2}",
        f"{AT2},volume,check,row_count,{{}},,2.0,critical,2,{C2}",
        "",
    ]
)


def _two_ticks(shop: Shop) -> None:
    assert shop.run(AT1).returncode == 0
    assert shop.run(AT2).returncode == 1  # volume is critical at 12:00


def test_two_runs_in_every_format(shop: Shop):
    _two_ticks(shop)
    text = shop.history(*WIDE)
    assert (text.returncode, text.stdout, text.stderr) == (0, TEXT, "")
    doc = shop.history(*WIDE, "--format", "json")
    assert doc.returncode == 0, doc.stderr
    assert json.loads(doc.stdout) == {"model": "shop", "rows": ROWS}
    csv = shop.history(*WIDE, "--format", "csv")
    assert (csv.returncode, csv.stdout) == (0, CSV)


def test_monitor_since_and_until_select_rows(shop: Shop):
    _two_ticks(shop)
    only = shop.history("--monitor", "volume", *WIDE, "--format", "json")
    assert json.loads(only.stdout)["rows"] == [ROWS[3], ROWS[7]]
    # a duration counts back from --until; both ends are inclusive
    both = shop.history("--since", "2h", "--until", AT2, "--format", "json")
    assert json.loads(both.stdout)["rows"] == ROWS
    last = shop.history("--since", "119m", "--until", AT2, "--format", "json")
    assert json.loads(last.stdout)["rows"] == ROWS[4:]
    first = shop.history("--since", "1h", "--until", AT1, "--format", "json")
    assert json.loads(first.stdout)["rows"] == ROWS[:4]
    before = shop.history("--since", "1h", "--until", "2026-11-27T09:59:59Z", "--format", "csv")
    assert before.stdout == CSV.splitlines()[0] + "\n"


def test_a_rerun_at_the_same_time_replaces_its_rows(shop: Shop):
    shop.run(AT1)
    assert shop.count("history") == 4
    # the 09:20 row gets an amount: at 10:00 nothing is null any more
    data = shop.root / "data" / "requests.csv"
    data.write_text(data.read_text().replace("09:20:00Z,v1,\n", "09:20:00Z,v1,6\n"))
    shop.run(AT1)
    assert shop.count("history") == 4
    rows = json.loads(shop.history(*WIDE, "--format", "json").stdout)["rows"]
    assert [(r["segment"], r["value"], r["status"]) for r in rows[:3]] == [
        ({}, 0.0, "ok"),
        ({"version": "v1"}, 0.0, "ok"),
        ({"version": "v2"}, 0.0, "ok"),
    ]


def test_without_notify_nothing_is_written(shop: Shop):
    plain = shop.cli("run", ".", "--at", AT1)
    assert plain.returncode == 0
    missing = shop.history(*WIDE)
    assert missing.returncode == 1
    assert missing.stderr == (
        f"error: no history yet: state file {shop.db} does not exist. History is written"
        " by `rulesengine run --notify` (and by the daemon)\n"
    )
    assert not shop.db.exists()  # asking did not create a store
    shop.run(AT1)
    shop.cli("run", ".", "--at", AT2)
    assert shop.count("history") == 4


def test_retention_from_the_engine_config(shop: Shop):
    # 2h: at 12:00 the cutoff is 10:00 itself, which stays (older than, not at)
    shop.engine("history: {retention: 2h}\n")
    _two_ticks(shop)
    assert shop.count("history") == 8
    # 1h: the 10:00 tick is older than 12:00 - 1h and goes in the 12:00 write
    shop.engine("history: {retention: 1h}\n")
    shop.run(AT2)
    rows = json.loads(shop.history(*WIDE, "--format", "json").stdout)["rows"]
    assert rows == ROWS[4:]


def test_unknown_model_or_monitor_names_the_known_ones(shop: Shop):
    shop.run(AT1)
    model = shop.cli("history", ".", "--model", "shpo")
    assert model.returncode == 1
    assert (
        model.stderr == "error: unknown model 'shpo' (did you mean 'shop'?); known models: 'shop'\n"
    )
    monitor = shop.history("--monitor", "volum")
    assert monitor.returncode == 1
    assert monitor.stderr == (
        "error: model 'shop' has no monitor 'volum' (did you mean 'volume'?); "
        "known monitors: 'amount-nulls' or 'volume'\n"
    )


def test_a_damaged_store_exits_5(shop: Shop):
    shop.db.parent.mkdir()
    shop.db.write_bytes(b"this is not an SQLite database, just text" * 100)
    proc = shop.history(*WIDE)
    assert proc.returncode == 5
    assert f"state file {shop.db} is corrupt" in proc.stderr


def test_bad_since_is_a_usage_error(shop: Shop):
    proc = shop.history("--since", "yesterday")
    assert proc.returncode == 2
    assert "'yesterday' is neither a duration (e.g. 7d, 12h) nor an ISO-8601 time" in proc.stderr


def test_bad_until_is_a_usage_error_named_after_until(shop: Shop):
    proc = shop.history("--until", "noon")
    assert proc.returncode == 2
    assert "Invalid value for --until: 'noon' is not an ISO-8601 time" in proc.stderr
