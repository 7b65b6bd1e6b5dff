"""The daemon's HTTP endpoint, on a real subprocess: /healthz, /readyz,
/api/results, /api/alerts and /metrics (read with prometheus-client's own
parser). Expected values are worked out by hand: the clean log has 20 present
amounts (null rate 0 / 20 = 0), the appended one 20 nulls (20 / 40 = 0.5, above
the critical 0.05: status 2, one firing alert, one notification)."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_cli
from tests.daemon.conftest import DaemonProc, Site, stop_proc
from tests.delivery.conftest import wait_until

pytestmark = pytest.mark.timeout(90)

SERIES = {
    "model": "m1",
    "monitor": "amount-nulls",
    "kind": "check",
    "segment": "",
    "column": "amount",
}


def samples(d: DaemonProc) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = d.get("/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(d: DaemonProc, name: str, **labels: str) -> float | None:
    return samples(d).get((name, tuple(sorted(labels.items()))))


def test_endpoints_before_and_after_an_incident(site: Site) -> None:
    d = site.start()
    wait_until(d.serving, 20, "the HTTP endpoint")
    assert d.get("/healthz") == (200, "ok\n")
    site.wait_ticks(2)
    code, body = d.get("/readyz")
    ready = json.loads(body)
    assert code == 200 and ready["ready"] is True
    assert ready["checks"]["models"]["m1"]["interval_seconds"] == 1.0
    doc = json.loads(d.get("/api/results")[1])
    [result] = doc["models"][0]["results"]
    assert (doc["models"][0]["model"], result["value"], result["status"]) == ("m1", 0.0, "ok")
    assert sample(d, "rulesengine_monitor_value", **SERIES) == 0.0
    assert sample(d, "rulesengine_monitor_status", **SERIES) == 0
    assert sample(d, "rulesengine_tick_interval_seconds", model="m1") == 1.0
    assert sample(d, "rulesengine_store_writable") == 1
    assert sample(d, "rulesengine_config_last_reload_successful") == 1
    assert sample(d, "rulesengine_alerts", model="m1", state="firing") == 0
    assert sample(d, "rulesengine_notifications_sent_total", receiver="hook") == 0
    assert sample(d, "rulesengine_rows_scanned_total", model="m1") >= 2 * 20

    site.append_nulls()
    site.receiver.wait_for(1, "/hook", timeout=20)
    wait_until(
        lambda: sample(d, "rulesengine_notifications_sent_total", receiver="hook") == 1,
        10,
        "the sent counter",
    )
    assert sample(d, "rulesengine_monitor_value", **SERIES) == 0.5
    assert sample(d, "rulesengine_monitor_status", **SERIES) == 2
    assert sample(d, "rulesengine_alerts", model="m1", state="firing") == 1
    assert sample(d, "rulesengine_notifications_queued", receiver="hook") == 0
    [alert] = json.loads(d.get("/api/alerts")[1])["alerts"]
    assert (alert["monitor"], alert["state"], alert["value"]) == ("amount-nulls", "firing", 0.5)
    ticks = sample(d, "rulesengine_ticks_total", model="m1")
    count = sample(d, "rulesengine_evaluation_duration_seconds_count", model="m1")
    assert ticks is not None and count is not None and count >= ticks >= 3
    assert d.get("/nope")[0] == 404
    assert stop_proc(d) < 5


def test_listen_errors_are_clear(site: Site) -> None:
    bad = run_cli("daemon", ".", "--listen", "localhost", cwd=site.root, timeout=30)
    assert bad.returncode == 2 and "is not HOST:PORT" in bad.stderr
    d = site.start()
    wait_until(d.serving, 20, "the HTTP endpoint")
    # another state file, the same port: the daemon says so and exits 1
    (site.root / "engine.yaml").write_text(
        (site.root / "engine.yaml").read_text().replace("state/state.db", "other.db")
    )
    taken = run_cli("daemon", ".", "--listen", f"127.0.0.1:{d.port}", cwd=site.root, timeout=30)
    assert taken.returncode == 1
    assert f"cannot listen on 127.0.0.1:{d.port}" in taken.stderr
    assert "Traceback" not in taken.stderr


def test_the_default_address_is_loopback_9108(site: Site) -> None:
    from rulesengine.spec.loader import load

    assert load([str(site.root)]).engine.listen == "127.0.0.1:9108"
    assert "127.0.0.1:9108" in run_cli("daemon", "--help", cwd=site.root, timeout=30).stdout
