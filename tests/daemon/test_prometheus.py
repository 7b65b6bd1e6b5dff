"""The operations kit (configs/grafana, configs/prometheus, configs/systemd,
configs/container) against the real tools: Debian's ``prometheus`` package
(``prometheus`` and ``promtool``) and systemd's ``systemd-analyze``.

* ``promtool check rules`` and ``promtool check config`` pass on the kit's files.
* A real ``rulesengine daemon --listen`` runs on a small config (a 1 s cadence, a
  loopback receiver) and a real Prometheus, started here on a free loopback port
  with its own storage, scrapes it every second and loads the kit's rules. Then
  every query of the Grafana dashboard and every alerting rule's expression
  returns at least one series through Prometheus' HTTP API, and the rule group
  is loaded and evaluates with health ``ok``.
* ``/metrics`` is parsed with prometheus-client's own parser, and every family
  of the contract is there with its labels; a few values are checked against
  hand-computed oracles (20 null amounts among 40 rows: a null rate of 0.5).

Without the package these tests skip, naming it; under ``CI=true`` they fail.
The README's test command installs it as root on Debian and Ubuntu
(``.ci/system-packages``).

How an alerting rule is turned into queries that must return data when the
daemon is healthy (an alert's expression is empty then, by design): the
expression is split at its top-level ``or``/``and``/``unless``; each part
(outer parentheses removed, then split again) ends in a comparison
``LEFT OP RIGHT`` at the top level (outside parentheses, braces, brackets and
strings); LEFT, and RIGHT unless it is a number, are queried.
``test_rule_operands_are_split_as_documented`` pins this on hand-written cases.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from rulesengine.cli import main
from tests.conftest import need_tool, stop_process
from tests.daemon.conftest import ENGINE
from tests.delivery.conftest import HOST, HttpReceiver, free_port, wait_until

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "configs"
DASHBOARD = KIT / "grafana" / "rulesengine.json"
RULES = KIT / "prometheus" / "rules.yml"
PROM_EXAMPLE = KIT / "prometheus" / "prometheus.yml"
UNIT = KIT / "systemd" / "rulesengine.service"
CONTAINERFILE = KIT / "container" / "Containerfile"
PACKAGE = "needs Debian's prometheus package (apt-get install prometheus)"
HEALTH_RULES = {
    "RulesengineDown",
    "RulesengineReloadFailed",
    "RulesengineTicksOverrunning",
    "RulesengineTicksMissed",
    "RulesengineTickErrors",
    "RulesengineOutboxGrowing",
    "RulesengineStale",
    "RulesengineStoreNotWritable",
}


def need(tool: str, package: str = PACKAGE, required_in_ci: bool = True) -> str:
    return need_tool(tool, package, required_in_ci)


# ----------------------------------------------------------- rule expressions

_OPEN, _CLOSE = "([{", ")]}"
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*bool\b)?")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _depths(expr: str) -> list[int | None]:
    """The nesting depth (parentheses, braces, brackets) at each character; None
    inside a string. A bracket has the depth outside it."""
    out: list[int | None] = []
    depth, quote = 0, ""
    for i, ch in enumerate(expr):
        if quote:
            out.append(None)
            if ch == quote and expr[i - 1] != "\\":
                quote = ""
        elif ch in "\"'`":
            quote = ch
            out.append(None)
        elif ch in _OPEN:
            out.append(depth)
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            out.append(depth)
        else:
            out.append(depth)
    return out


def _top_level(expr: str) -> list[bool]:
    """For each character: is it outside parentheses, braces, brackets and strings?"""
    return [d == 0 for d in _depths(expr)]


def _strip_parens(expr: str) -> str:
    """``(a + b)`` → ``a + b``; ``(a) + (b)`` stays."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        inner = [d for d in _depths(expr[1:-1]) if d is not None]
        if inner and (min(inner) < 0 or _depths(expr[1:-1] + " ")[-1] != 0):
            break
        expr = expr[1:-1].strip()
    return expr


def _split_sets(expr: str) -> list[str]:
    """``A or B and C`` → [A, B, C]: the parts joined by top-level set operators."""
    top = _top_level(expr)
    parts, start = [], 0
    for m in re.finditer(r"\b(or|and|unless)\b", expr):
        if top[m.start()]:
            parts.append(expr[start : m.start()])
            start = m.end()
    parts.append(expr[start:])
    return [_strip_parens(p) for p in parts]


def rule_operands(expr: str) -> list[str]:
    """The queries that must return data for a rule (see the module docstring)."""
    out: list[str] = []
    for part in _split_sets(_strip_parens(expr)):
        if len(_split_sets(part)) > 1:
            out += rule_operands(part)
            continue
        top = _top_level(part)
        found = [m for m in _COMPARISON.finditer(part) if top[m.start()]]
        assert found, f"no top-level comparison in {part!r}"
        last = found[-1]
        left, right = _strip_parens(part[: last.start()]), _strip_parens(part[last.end() :])
        out.append(left)
        if not _NUMBER.match(right):
            out.append(right)
    return out


def test_rule_operands_are_split_as_documented() -> None:
    assert rule_operands('up{job="x"} == 0') == ['up{job="x"}']
    assert rule_operands('a > 100 or (b{l=~"a|b",m!="or"} > 0 and c < bool d)') == [
        "a",
        'b{l=~"a|b",m!="or"}',
        "c",
        "d",
    ]
    assert rule_operands("(time() - max by (m) (t)) > 2 * max by (m) (i) and t > 0") == [
        "time() - max by (m) (t)",
        "2 * max by (m) (i)",
        "t",
    ]
    assert rule_operands("sum by (r) (delta(q[15m])) > 0") == ["sum by (r) (delta(q[15m]))"]


# ----------------------------------------------------------- promtool


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules_file() -> None:
    promtool = need("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(HEALTH_RULES)} rules found" in done.stdout
    rules = _rules()
    assert {r["alert"] for r in rules} == HEALTH_RULES
    for rule in rules:
        notes = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(notes), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
    down = next(r for r in rules if r["alert"] == "RulesengineDown")
    assert (down["expr"], down["for"]) == ('up{job="rulesengine"} == 0', "5m")


def test_promtool_checks_the_example_config() -> None:
    """The example scrape config, with the rules file it names."""
    promtool = need("promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(PROM_EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
    scrape = yaml.safe_load(PROM_EXAMPLE.read_text(encoding="utf-8"))["scrape_configs"]
    assert [s["job_name"] for s in scrape] == ["rulesengine"]  # the rules' job="rulesengine"


# ----------------------------------------------------------- the dashboard


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows included."""
    out = []
    stack = list(dashboard()["panels"])
    while stack:
        panel = stack.pop(0)
        stack += panel.get("panels", [])
        out += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
    return out


def substitute(expr: str, model: str, receiver: str) -> str:
    """Grafana's variables as it would expand them: a model and a receiver (or
    ``.*``, the dashboard's All), and ``$__rate_interval`` as 30 s (four scrapes of
    the example config's interval would be 2 m; the test scrapes every second)."""
    for name, value in (
        ("__rate_interval", "30s"),
        ("__interval", "15s"),
        ("__range", "5m"),
        ("model", model),
        ("receiver", receiver),
    ):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"a variable the test does not know in {expr!r}"
    return expr


def test_the_dashboard_is_importable_and_complete() -> None:
    """The structure Grafana needs, and the panels issue 11 lists."""
    doc = dashboard()
    assert doc["schemaVersion"] >= 36
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    model = variables["model"]["query"]
    assert model["query"] == "label_values(rulesengine_ticks_total, model)"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    exprs = " ".join(e for _, e in dashboard_queries())
    for series in (
        "rulesengine_monitor_status",
        "rulesengine_monitor_value",
        "rulesengine_evaluation_duration_seconds_bucket",
        "rulesengine_ticks_total",
        "rulesengine_ticks_overrun_total",
        "rulesengine_ticks_missed_total",
        "rulesengine_tick_errors_total",
        "rulesengine_rows_scanned_total",
        "rulesengine_notifications_sent_total",
        "rulesengine_notifications_failed_total",
        "rulesengine_notifications_queued",
        "rulesengine_alerts",
        "rulesengine_config_last_reload_successful",
        "time() - max by (model) (rulesengine_last_tick_timestamp_seconds",
        "rulesengine_tick_interval_seconds",
    ):
        assert series in exprs, f"no panel queries {series}"
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs


# ----------------------------------------------------------- systemd and container


def _unit_directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _daemon_options() -> set[str]:
    command = main.commands["daemon"] if isinstance(main, click.Group) else None
    assert command is not None
    return {opt for p in command.params for opt in p.opts if opt.startswith("--")}


def test_the_systemd_unit_is_hardened_and_verifies(tmp_path: Path) -> None:
    d = _unit_directives()
    one = {k: v[-1] for k, v in d.items()}
    assert one["ProtectSystem"] == "strict" and one["NoNewPrivileges"] == "yes"
    assert one["Restart"] == "on-failure" and one["KillSignal"] == "SIGTERM"
    assert re.fullmatch(r"\d+s?", one["TimeoutStopSec"])
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "/var/lib/rulesengine" in one["ReadWritePaths"].split()
    assert one.get("DynamicUser") == "yes" or one["User"] not in ("root", "0")
    argv = shlex.split(one["ExecStart"])
    assert argv[1:3] == ["daemon", "/etc/rulesengine"]
    assert {a for a in argv if a.startswith("--")} <= _daemon_options()

    # not installed by the README's command (a container has no systemd): skipped
    # wherever it is missing, CI included
    analyze = need("systemd-analyze", "needs systemd (systemd-analyze)", required_in_ci=False)
    # verify checks that ExecStart's program exists: point it at this checkout's
    installed = Path(sys.executable).parent / "rulesengine"
    assert installed.is_file(), f"{installed} is missing: pip install -e ."
    unit = tmp_path / "rulesengine.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/rulesengine/bin/rulesengine", str(installed)
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # an unknown or misspelt directive is only a warning: any output fails the test
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuations joined."""
    lines, buf = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not buf:
            continue
        buf += raw.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
        buf = ""
    return lines


def test_the_containerfile_has_the_essentials() -> None:
    """Not built here (no container engine runs on this machine): its lines are."""
    steps = _instructions(CONTAINERFILE.read_text(encoding="utf-8"))
    get = lambda word: [arg for w, arg in steps if w == word]  # noqa: E731
    assert get("FROM") == ["python:3.11-slim"]
    user = get("USER")[-1].split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    assert get("EXPOSE") == ["9108"]
    assert get("STOPSIGNAL") == ["SIGTERM"]
    assert any("pip install ." in run for run in get("RUN"))
    for copy in get("COPY"):
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    health = get("HEALTHCHECK")[0]
    assert "urllib.request" in health and "http://127.0.0.1:9108/healthz" in health
    argv = json.loads(get("ENTRYPOINT")[-1]) + json.loads(get("CMD")[-1])
    assert argv[:2] == ["rulesengine", "daemon"]
    assert argv[argv.index("--listen") + 1] == "0.0.0.0:9108"
    assert {a for a in argv if a.startswith("--")} <= _daemon_options()


# ----------------------------------------------------------- docs/operations.md


def test_the_operations_doc_snippets_are_valid(tmp_path: Path) -> None:
    """Every YAML and JSON block parses; every Prometheus scrape config in it
    (the example's and the CloudWatch agent's) passes ``promtool check config``."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```(yaml|json)\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 5
    scrape = []
    for lang, body in blocks:
        doc = yaml.safe_load(body) if lang == "yaml" else json.loads(body)
        if isinstance(doc, dict) and "scrape_configs" in doc:
            scrape.append(body)
        if isinstance(doc, dict) and "instances" in doc:  # Datadog's OpenMetrics check
            assert doc["instances"][0]["openmetrics_endpoint"].endswith(":9108/metrics")
    assert len(scrape) == 2
    promtool = need("promtool")
    shutil.copy(RULES, tmp_path / "rules.yml")
    for i, body in enumerate(scrape):
        path = tmp_path / f"scrape-{i}.yml"
        path.write_text(body, encoding="utf-8")
        done = subprocess.run(
            [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------- the README's command


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("Install and run the whole test suite", 1)[1]
    command = block.split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert "\n" not in command.strip(), "the README's test command is one line"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == command.strip()
    assert command.startswith("sh .ci/system-packages && ")


# ----------------------------------------------------------- daemon + Prometheus

MODEL = """\
version: 1
model: m1
sources:
  requests: {path: "data/*.csv", timestamp: ts}
evaluation: {every: 1s, window: 1h, min_rows: 1, catch_up: latest}
checks:
  - {name: amount-nulls, source: requests, type: null_rate, column: amount,
     critical: {above: 0.05}}
  - {name: amount-nulls-slow, source: requests, type: null_rate, column: amount,
     critical: {above: 0.05}, for: 1h}
"""
PROMETHEUS = """\
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: rulesengine
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _up(url: str) -> bool:
    try:
        _get(url, 1)
        return True
    except OSError:
        return False


@dataclass
class Stack:
    """A daemon over 40 log rows (20 of them with a null amount, so both checks
    are critical: ``amount-nulls`` fires at once, ``amount-nulls-slow`` is pending
    for an hour), its receiver, and a Prometheus scraping it every second."""

    root: Path
    receiver: HttpReceiver
    daemon: subprocess.Popen[bytes]
    prometheus: subprocess.Popen[bytes]
    metrics_url: str
    api: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.api}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        doc = json.loads(_get(url))
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def rules(self) -> list[dict[str, Any]]:
        return json.loads(_get(f"{self.api}/api/v1/rules"))["data"]["groups"]

    def alive(self) -> None:
        for name, proc, log in (
            ("daemon", self.daemon, "daemon.log"),
            ("prometheus", self.prometheus, "prometheus.log"),
        ):
            if proc.poll() is not None:
                text = (self.root / log).read_text(encoding="utf-8", errors="replace")
                raise AssertionError(f"{name} exited {proc.returncode}:\n{text[-3000:]}")


def _write_site(root: Path, receiver_port: int) -> None:
    (root / "data").mkdir()
    (root / "models").mkdir()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    rows = ["ts,amount"] + [
        f"{(start + timedelta(seconds=i)).isoformat()},{'' if i % 2 else '10.5'}" for i in range(40)
    ]
    (root / "data" / "a.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "models" / "m1.yaml").write_text(MODEL, encoding="utf-8")
    (root / "engine.yaml").write_text(ENGINE.format(port=receiver_port), encoding="utf-8")


def _start(argv: list[str], cwd: Path, log: str) -> subprocess.Popen[bytes]:
    with open(cwd / log, "wb") as out:
        return subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = need("prometheus")
    need("promtool")
    root = tmp_path_factory.mktemp("prometheus")
    receiver = HttpReceiver(free_port())
    _write_site(root, receiver.port)
    port, prom_port = free_port(), free_port()
    argv = [sys.executable, "-m", "rulesengine.cli", "daemon", ".", "--listen", f"{HOST}:{port}"]
    daemon = _start(
        [*argv, "--log-format", "json"],
        root,
        "daemon.log",
    )
    (root / "prometheus.yml").write_text(
        PROMETHEUS.format(rules=RULES, port=port), encoding="utf-8"
    )
    flags = {
        "config.file": root / "prometheus.yml",
        "storage.tsdb.path": root / "tsdb",
        "web.listen-address": f"{HOST}:{prom_port}",
        "log.level": "warn",
    }
    server = _start(
        [prometheus, *(f"--{k}={v}" for k, v in flags.items())],
        root,
        "prometheus.log",
    )
    s = Stack(root, receiver, daemon, server, f"http://{HOST}:{port}/metrics", "")
    s.api = f"http://{HOST}:{prom_port}"
    try:
        _wait_for_data(s)
        yield s
    finally:
        _stop(server)
        _stop(daemon)
        receiver.close()


def _wait_for_data(s: Stack) -> None:
    """Until the daemon has ticked and alerted, Prometheus holds ten scrapes of it
    (rates over 30 s need two) and has evaluated every rule."""

    def ready(check: Any) -> Any:
        def probe() -> bool:
            s.alive()
            try:
                return bool(check())
            except OSError:
                return False

        return probe

    wait_until(ready(lambda: _up(s.metrics_url)), 60, "the daemon's /metrics")
    wait_until(ready(lambda: _up(f"{s.api}/-/ready")), 60, "Prometheus to be ready")
    wait_until(ready(lambda: s.receiver.at("/hook")), 60, "a notification at the receiver")
    wait_until(
        ready(lambda: s.query('count_over_time(up{job="rulesengine"}[1m]) >= 10')),
        60,
        "ten scrapes of the daemon",
    )
    wait_until(
        ready(
            lambda: (
                s.query('rulesengine_alerts{state="firing"}')
                and s.query("rulesengine_notifications_sent_total > 0")
            )
        ),
        30,
        "the firing alert and the sent notification in Prometheus",
    )
    wait_until(
        ready(lambda: all(r.get("health") == "ok" for g in s.rules() for r in g["rules"])),
        30,
        "every rule evaluated",
    )


@pytest.mark.parametrize("all_values", [False, True], ids=["one-model", "all"])
def test_every_dashboard_query_returns_data(stack: Stack, all_values: bool) -> None:
    model, receiver = (".*", ".*") if all_values else ("m1", "hook")
    empty = []
    for title, expr in dashboard_queries():
        query = substitute(expr, model, receiver)
        if not stack.query(query):
            empty.append(f"{title}: {query}")
    assert empty == [], "queries without data:\n" + "\n".join(empty)


def test_the_dashboard_variables_list_the_daemons_values(stack: Stack) -> None:
    for var in dashboard()["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((\w+), (\w+)\)", var["query"]["query"])
        assert m, var["query"]
        url = f"{stack.api}/api/v1/label/{m[2]}/values?" + urllib.parse.urlencode({"match[]": m[1]})
        values = json.loads(_get(url))["data"]
        assert values == {"model": ["m1"], "receiver": ["hook"]}[var["name"]]


def test_every_rule_is_loaded_healthy_and_its_operands_return_data(stack: Stack) -> None:
    groups = {g["name"]: g for g in stack.rules()}
    assert set(groups) == {"rulesengine-health"}
    loaded = {r["name"]: r for r in groups["rulesengine-health"]["rules"]}
    assert set(loaded) == HEALTH_RULES
    empty = []
    for name, rule in loaded.items():
        assert (rule["health"], rule.get("lastError", "")) == ("ok", ""), name
        for operand in rule_operands(rule["query"]):
            if not stack.query(operand):
                empty.append(f"{name}: {operand}")
    assert empty == [], "rule operands without data:\n" + "\n".join(empty)
    # A healthy daemon trips none of the rules about its state. (Left out: the
    # missed, overrun and stale rules, which a 1 s cadence on a busy machine
    # can trip for a moment; their `for` keeps that from firing.)
    quiet = HEALTH_RULES - {
        "RulesengineTicksMissed",
        "RulesengineTicksOverrunning",
        "RulesengineStale",
    }
    tripped = {name: stack.query(loaded[name]["query"]) for name in sorted(quiet)}
    assert {name: got for name, got in tripped.items() if got} == {}


def test_prometheus_sees_the_hand_computed_values(stack: Stack) -> None:
    """20 null amounts in 40 rows: a null rate of 0.5, critical (2) above 0.05, for
    both checks; one alert fires at once, the other waits an hour (``for: 1h``);
    the cadence is 1 s; a healthy daemon loaded its config and writes its state
    file."""

    def values(expr: str) -> list[float]:
        return sorted(float(v["value"][1]) for v in stack.query(expr))

    seen = {
        "value": values('rulesengine_monitor_value{monitor="amount-nulls"}'),
        "status": values('rulesengine_monitor_status{model="m1"}'),
        "firing": values('rulesengine_alerts{model="m1",state="firing"}'),
        "pending": values('rulesengine_alerts{model="m1",state="pending"}'),
        "interval": values('rulesengine_tick_interval_seconds{model="m1"}'),
        "reload": values("rulesengine_config_last_reload_successful"),
        "writable": values("rulesengine_store_writable"),
    }
    assert seen == {
        "value": [0.5],
        "status": [2.0, 2.0],
        "firing": [1.0],
        "pending": [1.0],
        "interval": [1.0],
        "reload": [1.0],
        "writable": [1.0],
    }
    sent = values('rulesengine_notifications_sent_total{receiver="hook"}')
    # every notification counted as sent reached the receiver
    assert len(sent) == 1 and 1 <= sent[0] <= len(stack.receiver.at("/hook"))


MONITOR = {"model", "monitor", "kind", "segment", "column"}
# family → (type, label names) as the daemon's /metrics contract states them
CONTRACT: dict[str, tuple[str, set[str]]] = {
    "rulesengine_build_info": ("gauge", {"version"}),
    "rulesengine_monitor_value": ("gauge", MONITOR),
    "rulesengine_monitor_status": ("gauge", MONITOR),
    "rulesengine_evaluation_duration_seconds": ("histogram", {"model"}),
    "rulesengine_rows_scanned": ("counter", {"model"}),
    "rulesengine_ticks": ("counter", {"model"}),
    "rulesengine_tick_errors": ("counter", {"model"}),
    "rulesengine_ticks_missed": ("counter", {"model"}),
    "rulesengine_ticks_overrun": ("counter", {"model"}),
    "rulesengine_last_tick_timestamp_seconds": ("gauge", {"model"}),
    "rulesengine_tick_interval_seconds": ("gauge", {"model"}),
    "rulesengine_notifications_sent": ("counter", {"receiver"}),
    "rulesengine_notifications_failed": ("counter", {"receiver"}),
    "rulesengine_notifications_given_up": ("counter", {"receiver"}),
    "rulesengine_notifications_queued": ("gauge", {"receiver"}),
    "rulesengine_alerts": ("gauge", {"model", "state"}),
    "rulesengine_config_last_reload_successful": ("gauge", set()),
    "rulesengine_config_last_reload_success_timestamp_seconds": ("gauge", set()),
    "rulesengine_store_writable": ("gauge", set()),
}
BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, float("inf")]


def test_metrics_parse_with_prometheus_clients_parser(stack: Stack) -> None:
    text = _get(stack.metrics_url).decode("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    missing = sorted(set(CONTRACT) - set(families))
    assert missing == [], f"families missing from /metrics: {missing}"
    for name, (kind, labels) in CONTRACT.items():
        family = families[name]
        assert family.type == kind, name
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        assert samples, f"{name} has no sample"
        for sample in samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
        if labels == {"model"}:
            assert {s.labels["model"] for s in samples} == {"m1"}, name
        if labels == {"receiver"}:
            assert {s.labels["receiver"] for s in samples} == {"hook"}, name
    buckets = [s for s in families["rulesengine_evaluation_duration_seconds"].samples]
    les = [float(s.labels["le"]) for s in buckets if s.name.endswith("_bucket")]
    assert les == BUCKETS
    info = families["rulesengine_build_info"].samples
    assert [(s.labels["version"], s.value) for s in info] == [(version("rulesengine"), 1.0)]
    assert "process_start_time_seconds" in families  # the process collector, on Linux
    value = {
        (s.labels["monitor"], s.labels["kind"], s.labels["segment"], s.labels["column"]): s.value
        for s in families["rulesengine_monitor_value"].samples
    }
    assert value == {
        ("amount-nulls", "check", "", "amount"): 0.5,
        ("amount-nulls-slow", "check", "", "amount"): 0.5,
    }
