"""Hot reload on a real daemon subprocess: SIGHUP with a broken config keeps the
running one (and /metrics says the reload failed); a valid change takes effect;
an edited file is picked up without a signal, and alert state carries over."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.daemon.conftest import MODEL, DaemonProc, Site, stop_proc
from tests.daemon.test_http import sample
from tests.delivery.conftest import wait_until

pytestmark = pytest.mark.timeout(120)


def _edit(site: Site, old: str, new: str) -> Path:
    path = site.root / "models" / "m1.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text.replace(old, new), encoding="utf-8")
    tmp.rename(path)
    return path


def _logged(d: DaemonProc, msg: str, n: int = 1) -> None:
    wait_until(lambda: sum(ln["msg"] == msg for ln in d.lines()) >= n, 15, repr(msg))


def _firing(site: Site) -> DaemonProc:
    d = site.start()
    wait_until(d.serving, 20, "the HTTP endpoint")
    site.wait_ticks(1)
    site.append_nulls()
    site.receiver.wait_for(1, "/hook", timeout=20)
    # /api/alerts is published after the delivery pass that sent it
    wait_until(lambda: _alerts(d) == ["firing"], 10, "the firing alert in /api/alerts")
    return d


def _alerts(d: DaemonProc) -> list[str]:
    return [a["state"] for a in json.loads(d.get("/api/alerts")[1])["alerts"]]


def _statuses(site: Site, since: int) -> list[str]:
    return [s for _, _, s in site.history()[since:]]


def test_a_broken_reload_keeps_the_old_config_and_a_valid_one_takes_effect(site: Site) -> None:
    d = _firing(site)
    # an unknown key: invalid; the daemon logs where and keeps going as before
    _edit(site, "critical: {above: 0.05}", "critical: {abov: 0.05}")
    d.signal(signal.SIGHUP)
    _logged(d, "reload failed; keeping the running config")
    errors = [ln["error"] for ln in d.lines() if ln["msg"] == "config error"]
    assert errors and all(e.startswith("models/m1.yaml:") for e in errors), errors
    assert any(e.startswith("models/m1.yaml:8:17:") and "abov" in e for e in errors), errors
    assert sample(d, "rulesengine_config_last_reload_successful") == 0
    seen = len(site.history())
    site.wait_ticks(2)
    assert set(_statuses(site, seen)) == {"critical"}  # the old threshold still applies
    assert len(site.receiver.requests) == 1  # nothing new to say

    # a valid change: the threshold moves above 0.5, so the alert resolves
    _edit(site, "critical: {abov: 0.05}", "critical: {above: 0.9}")
    d.signal(signal.SIGHUP)
    _logged(d, "config reloaded")
    assert sample(d, "rulesengine_config_last_reload_successful") == 1
    # the alert resolves (its notification waits for the group's 5m interval)
    wait_until(
        lambda: (
            [a["state"] for a in json.loads(d.get("/api/alerts")[1])["alerts"]]
            in (["resolved"], [])
        ),
        15,
        "the alert to resolve",
    )
    [result] = json.loads(d.get("/api/results")[1])["models"][0]["results"]
    assert (result["status"], result["threshold"]) == ("ok", {"critical": {"above": 0.9}})
    assert stop_proc(d) < 5


def test_an_edited_file_reloads_without_a_signal_and_alert_state_carries_over(
    site: Site,
) -> None:
    d = _firing(site)
    [before] = json.loads(d.get("/api/alerts")[1])["alerts"]
    # another monitor beside the firing one; amount-nulls itself is unchanged
    extra = "\n  - {name: rows, source: requests, type: row_count, critical: {below: 1}}\n"
    path = site.root / "models" / "m1.yaml"
    path.write_text(MODEL.rstrip("\n") + extra, encoding="utf-8")
    _logged(d, "config reloaded")
    line = next(ln for ln in d.lines() if ln["msg"] == "config reloaded")
    assert (line["reason"], line["changed"]) == ("config file changed", ["m1"])
    wait_until(
        lambda: len(json.loads(d.get("/api/results")[1])["models"][0]["results"]) == 2,
        15,
        "a tick under the new config",
    )
    site.wait_ticks(2)
    [after] = json.loads(d.get("/api/alerts")[1])["alerts"]
    assert (after["id"], after["state"], after["since"]) == (
        before["id"],
        "firing",
        before["since"],
    )
    assert len(site.receiver.requests) == 1  # no second firing notification

    # moving the state file needs a restart: refused, the old config stays
    engine = site.root / "engine.yaml"
    engine.write_text(engine.read_text().replace("state/state.db", "elsewhere.db"))
    _logged(d, "reload failed; keeping the running config")
    failed = [ln for ln in d.lines() if ln["msg"].startswith("reload failed")]
    assert "restart the daemon" in failed[-1]["error"]
    assert not (site.root / "elsewhere.db").exists()
    assert stop_proc(d) < 5
