"""``rulesengine backfill`` through the real command line.

Two oracles, neither of them the engine:

* the demo generator's own incident schedule (``incidents.json``: each incident's
  window, or the changed file's day) and the monitors' windows and delays read
  from the demo's YAML: every firing tick of an incident's monitor must have
  looked at the incident;
* a small config with one row every 10 seconds whose null and high-value spans
  are placed by hand, so the firing ticks, durations and notifications are
  counted here on paper (see ``test_hand_built_counts``).

Nothing may be delivered: the demo's receivers point at a real HTTP server on
127.0.0.1, which must get no request from a backfill (and gets some from a
``run --notify`` afterwards, so the address is right). The config's own state
file is never created or changed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.demo import DEMO_AT, generate
from rulesengine.daemon.backfill import count_ticks
from rulesengine.daemon.schedule import Cadence
from tests.conftest import CONFIGS, run_cli, run_cli_on_tty
from tests.delivery.conftest import HttpReceiver, free_port

pytestmark = pytest.mark.timeout(240)

ISO = "%Y-%m-%dT%H:%M:%SZ"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime(ISO)


def parse(text: str) -> datetime:
    return datetime.strptime(text, ISO).replace(tzinfo=UTC)


def monitors_of(doc: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    (m,) = [m for m in doc["models"] if m["model"] == model]
    return {x["monitor"]: x for x in m["monitors"]}


def state_files(root: Path) -> dict[str, bytes]:
    """Every file under the config's state folder, by name (the database, its WAL
    and shared memory, the lock, the profile cache)."""
    folder = root / "state"
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------------ the demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backfill-demo") / "configs"
    shutil.copytree(CONFIGS, root, ignore=shutil.ignore_patterns("data", ".rulesengine"))
    generate(root / "data")
    return root


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver(free_port())
    yield r
    r.close()


def _spec_monitor(root: Path, model: str, name: str) -> dict[str, Any]:
    """A monitor of the demo's YAML, with the window and delay it resolves to."""
    for path in (root / "models").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())
        if spec["model"] != model:
            continue
        for section in ("checks", "drift", "metrics", "kpis"):
            for m in spec.get(section, []):
                if m["name"] == name:
                    return {"window": m.get("window", spec["evaluation"]["window"]), **m}
    raise KeyError((model, name))


def _span(text: str) -> timedelta:
    """``30m``, ``1h``, ``2d``: the only spellings the demo's windows and delays use."""
    n, unit = int(text[:-1]), text[-1]
    unit_name = {"m": "minutes", "h": "hours", "d": "days"}[unit]
    return timedelta(**{unit_name: n})


def _looked_at(tick: datetime, monitor: dict[str, Any], start: datetime, end: datetime) -> bool:
    """Whether the monitor's window at ``tick``, (tick - delay - window, tick - delay],
    overlaps the incident's (start, end]."""
    hi = tick - _span(monitor.get("delay", "0m"))
    lo = hi - _span(monitor["window"])
    return lo < end and hi > start


def _assert_fired_on(root: Path, doc: dict[str, Any], model: str, name: str, span: tuple) -> None:
    got = monitors_of(doc, model)[name]
    assert got["firing_ticks"] > 0, (model, name, got)
    assert got["notifications"] > 0, (model, name, got)
    spec = _spec_monitor(root, model, name)
    first, last = parse(got["first_firing"]), parse(got["last_firing"])
    # the first firing tick and every later one looked at the incident
    assert _looked_at(first, spec, *span), (name, got["first_firing"], span)
    assert _looked_at(last, spec, *span), (name, got["last_firing"], span)


def test_demo_backfill_reports_the_four_incidents_and_sends_nothing(
    demo: Path, receiver: HttpReceiver
):
    manifest = json.loads((demo / "data" / "incidents.json").read_text())
    at = parse(manifest["at"])
    assert at == DEMO_AT
    env = {
        var: f"json://127.0.0.1:{receiver.port}/{var.lower()}"
        for var in ("ML_TEAM_WEBHOOK", "ONCALL_EMAIL_URL", "RETRAIN_HOOK")
    }
    # (at - 75m, at]: fraud ticks at-60m .. at; the first sees none of the last hour
    start = at - timedelta(minutes=75)
    args = ("backfill", ".", "--from", iso(start), "--to", iso(at), "--format", "json")
    result = run_cli(*args, cwd=demo, env=env, timeout=200)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar
    doc = json.loads(result.stdout)
    assert doc["notifications"] > 0 and doc["unattributed_notifications"] == 0
    incidents = {i["id"]: i for i in manifest["incidents"]}
    assert set(incidents) == {"null-burst", "schema-change", "latency-spike", "accuracy-drop"}

    for name in ("null-burst", "latency-spike", "accuracy-drop"):
        i = incidents[name]
        span = (parse(i["window"]["start"]), parse(i["window"]["end"]))
        _assert_fired_on(demo, doc, i["model"], i["monitor"], span)
    # the tick at at-60m saw none of the last hour: the last-hour incidents start after it
    fraud = monitors_of(doc, "fraud-detector")
    assert parse(fraud["amount-nulls"]["first_firing"]) > at - timedelta(hours=1)
    assert parse(fraud["latency-p95"]["first_firing"]) > at - timedelta(hours=1)
    assert fraud["recall"]["worst_status"] == "critical"

    # the schema change: latency-p95 goes blind (never ok, no alert under the default
    # policy, as the manifest says), and the schema check fires on the changed file's day
    i = incidents["schema-change"]
    acceptable = set(i["expected"][0]["acceptable"])
    asst = monitors_of(doc, "support-assistant")
    assert set(asst[i["monitor"]]["statuses"]) <= acceptable, asst[i["monitor"]]
    assert asst[i["monitor"]]["firing_ticks"] == 0
    (changed,) = i["files"]
    day = datetime.strptime(Path(changed).stem, "%Y-%m-%d").replace(tzinfo=UTC)
    _assert_fired_on(demo, doc, "support-assistant", "request-schema", (day, day + timedelta(1)))

    assert receiver.requests == []  # nothing was delivered
    assert not (demo / ".rulesengine").exists()  # the live state was not even created

    # the same receivers do get the run's notifications: the addresses were right
    notify = run_cli("run", ".", "--notify", "--at", iso(at), cwd=demo, env=env, timeout=200)
    assert notify.returncode == 1, notify.stderr
    assert len(receiver.wait_for(1, timeout=30)) >= 1


def test_demo_day_before_is_quiet(demo: Path):
    """A control: a day before, the incidents' monitors are ok, so what the main
    test sees is the incidents and not a monitor that always fires."""
    at = DEMO_AT - timedelta(days=1)
    start = at - timedelta(minutes=15)
    args = ("backfill", ".", "--from", iso(start), "--to", iso(at), "--format", "json")
    result = run_cli(*args, cwd=demo, timeout=200)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    fraud, asst = monitors_of(doc, "fraud-detector"), monitors_of(doc, "support-assistant")
    for m in (fraud["amount-nulls"], fraud["latency-p95"], fraud["recall"]):
        assert m["ticks"] == 1 and m["worst_status"] == "ok", m
    for m in (asst["latency-p95"], asst["request-schema"]):
        assert m["ticks"] == 3 and m["worst_status"] == "ok", m
    assert doc["notifications"] == 0


# ------------------------------------------------------------------ by hand

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

MODEL = """\
version: 1
model: m1
sources:
  requests: {path: "data/requests.csv", timestamp: ts}
evaluation: {every: 1m, window: 1m, min_rows: 1}
checks:
  - {name: nulls, source: requests, type: null_rate, column: x, critical: {above: 0.4}, for: 2}
  - {name: volume, source: requests, type: row_count, critical: {below: 1}}
metrics:
  - {name: x-high, source: requests, expr: "avg(x)", critical: {above: 50}}
"""

ENGINE = """\
version: 1
state: state/state.db
receivers:
  hook: {{urls: ["json://127.0.0.1:{port}/hook"]}}
routes: [{{match: {{model: m1}}, receivers: [hook]}}]
grouping: {{by: [model], wait: 30s, interval: 1m, repeat: 4h}}
"""


@pytest.fixture
def small(tmp_path: Path, receiver: HttpReceiver) -> Path:
    """One row every 10 s at :05, :15, … :55 from 10:00 to 10:20. Rows at
    [10:05, 10:09) alternate null and 10 (null rate 0.5), rows at [10:14, 10:16)
    have x = 100; every other row x = 10."""
    lines = ["ts,x"]
    for i in range(20 * 6):
        ts = T0 + timedelta(seconds=10 * i + 5)
        x = "10"
        if T0 + timedelta(minutes=5) <= ts < T0 + timedelta(minutes=9) and i % 2 == 0:
            x = ""
        elif T0 + timedelta(minutes=14) <= ts < T0 + timedelta(minutes=16):
            x = "100"
        lines.append(f"{ts.isoformat()},{x}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "requests.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m1.yaml").write_text(MODEL)
    (tmp_path / "engine.yaml").write_text(ENGINE.format(port=receiver.port))
    return tmp_path


def minute(m: int) -> str:
    return iso(T0 + timedelta(minutes=m))


def test_hand_built_counts(small: Path, receiver: HttpReceiver):
    """Ticks 10:01 … 10:20 (--from 10:00 is not a tick of the backfill), each seeing
    the six rows of the minute before it.

    * nulls: ticks 10:06-10:09 see a null rate of 0.5 (critical); ``for: 2`` makes
      10:06 pending and 10:07-10:09 firing: 3 firing ticks of 1 min = 180 s; 10:10
      resolves it. Notifications: firing (10:07, or 10:08 if ``wait`` is honoured)
      and resolved (10:10, 1 min ``interval`` later): 2.
    * x-high: ticks 10:15 and 10:16 see avg 100 (critical), firing at once: 2 firing
      ticks, 120 s; resolved at 10:17. Notifications: firing and resolved: 2. The
      group was forgotten after 10:10's resolution, so these do not name ``nulls``.
    * volume: 6 rows every tick, ok.
    """
    args = ("backfill", ".", "--from", minute(0), "--to", minute(20), "--format", "json")
    result = run_cli(*args, cwd=small)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["from"], doc["to"], doc["ticks"]) == (minute(0), minute(20), 20)
    (m1,) = doc["models"]
    assert (m1["model"], m1["cadence"], m1["ticks"]) == ("m1", "every 1m", 20)
    assert (m1["first_tick"], m1["last_tick"]) == (minute(1), minute(20))
    assert m1["failed_ticks"] == []
    mons = monitors_of(doc, "m1")
    assert [m["monitor"] for m in m1["monitors"]] == ["nulls", "x-high", "volume"]  # worst first
    assert mons["nulls"] == {
        "monitor": "nulls",
        "kind": "check",
        "ticks": 20,
        "statuses": {"critical": 4, "ok": 16},
        "worst_status": "critical",
        "firing_ticks": 3,
        "fired": 1,
        "firing_seconds": 180.0,
        "first_firing": minute(7),
        "last_firing": minute(9),
        "notifications": 2,
    }
    high = mons["x-high"]
    assert (high["statuses"], high["firing_ticks"], high["firing_seconds"]) == (
        {"critical": 2, "ok": 18},
        2,
        120.0,
    )
    assert (high["first_firing"], high["last_firing"], high["notifications"]) == (
        minute(15),
        minute(16),
        2,
    )
    assert mons["volume"]["statuses"] == {"ok": 20} and mons["volume"]["firing_ticks"] == 0
    assert (m1["notifications"], doc["notifications"], doc["delivered"]) == (4, 4, 0)
    assert receiver.requests == []
    assert not (small / "state").exists()


def test_text_output_and_a_narrower_range(small: Path):
    """(10:08, 10:12]: ticks 10:09-10:12. nulls is critical at 10:09 only, pending
    (``for: 2`` needs a second violation): it never fires in this range."""
    result = run_cli("backfill", ".", "--from", minute(8), "--to", minute(12), cwd=small)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"backfill {minute(8)} .. {minute(12)}: 4 tick(s), 0 notification(s) would have "
        "been queued; none was sent"
    )
    assert lines[2] == f"m1: every 1m, 4 tick(s) ({minute(9)} .. {minute(12)}), 0 notification(s)"
    assert lines[3].split() == [
        "MONITOR", "WORST", "TICKS", "FIRING", "FIRED", "FIRING", "FOR",
        "FIRST", "FIRING", "LAST", "FIRING", "NOTIFIED",
    ]  # fmt: skip
    assert lines[4].split() == ["nulls", "critical", "4", "0", "0", "-", "-", "-", "0"]


def test_live_state_is_left_byte_for_byte(small: Path):
    """A live store with a silence in it: the backfill neither reads nor writes it."""
    add = run_cli(
        "silence", "add", "-c", ".", "--match", "monitor=volume", "--for", "1h",
        "--comment", "kept", cwd=small,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    before = state_files(small)
    assert "state.db" in before
    stamps = {p: p.stat().st_mtime_ns for p in (small / "state").rglob("*")}
    result = run_cli("backfill", ".", "--from", minute(0), "--to", minute(20), cwd=small)
    assert result.returncode == 0, result.stderr
    assert state_files(small) == before
    assert {p: p.stat().st_mtime_ns for p in (small / "state").rglob("*")} == stamps


def test_progress_bar_on_a_terminal_only(small: Path):
    code, out, bar = run_cli_on_tty(
        "backfill", ".", "--from", minute(0), "--to", minute(20), cwd=small
    )
    assert code == 0
    assert "backfill" in bar and "20/20" in bar, bar
    assert re.search(r"\b19 left, m1 2026-03-02T10:01Z", bar), bar  # ticks left, last tick
    assert out.decode().startswith("backfill 2026-03-02T10:00:00Z")  # the report on stdout

    piped = run_cli("backfill", ".", "--from", minute(0), "--to", minute(20), cwd=small)
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "yesterday", "--to", "2026-03-02T10:20:00Z"), "--from"),
        (("--from", "2026-03-02T10:00:00Z", "--to", "soon"), "--to"),
        (("--from", "2026-03-02T10:20:00Z", "--to", "2026-03-02T10:20:00Z"), "is not before --to"),
        (("--from", "1h", "--to", "2026-03-02T10:20:00Z", "--model", "m2"), "unknown model 'm2'"),
        (
            ("--from", "1h", "--to", "2026-03-02T10:20:00Z", "--max-ticks", "59"),
            "holds 60 ticks (m1: 60), more than --max-ticks 59",
        ),
    ],
)
def test_usage_errors_exit_2(small: Path, args: tuple[str, ...], message: str):
    result = run_cli("backfill", ".", *args, cwd=small)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (small / "state").exists()


def test_tick_counts_by_hand():
    """(10:00, 11:00]: every 5m and */5 cron both tick at 10:05 … 11:00 (12 ticks); 7m
    ticks count whole 7-minute steps since the epoch (checked with datetime arithmetic);
    a cron count stops at limit + 1; 10:00 itself is not counted."""
    start, end = T0, T0 + timedelta(hours=1)
    assert count_ticks(Cadence(every=timedelta(minutes=5)), start, end, 3) == 12
    assert count_ticks(Cadence(cron="*/5 * * * *"), start, end, 100) == 12
    assert count_ticks(Cadence(cron="*/5 * * * *"), start, end, 5) == 6
    # epoch-aligned 7m ticks in the hour: 10:03, 10:10, … 10:59
    assert count_ticks(Cadence(every=timedelta(minutes=7)), start, end, 100) == 9
    assert count_ticks(Cadence(every=timedelta(hours=2)), start, end, 100) == 0


def test_relative_from_counts_back_from_to(small: Path):
    result = run_cli(
        "backfill", ".", "--from", "5m", "--to", minute(20), "--format", "json", cwd=small
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["from"], doc["ticks"]) == (minute(15), 5)


def test_invalid_config_exits_3_with_positions(small: Path):
    (small / "models" / "m1.yaml").write_text(MODEL.replace("type: null_rate", "type: nul_rate"))
    result = run_cli("backfill", ".", "--from", minute(0), "--to", minute(20), cwd=small)
    assert result.returncode == 3, result.stderr
    assert re.search(r"m1\.yaml:\d+:\d+: ", result.stderr), result.stderr
    assert not (small / "state").exists()
