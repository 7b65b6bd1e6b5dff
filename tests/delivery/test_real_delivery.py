"""Notifications delivered for real, on loopback, by the ``rulesengine`` command line.

Each test builds small logs in which the fraud-detector's monitors fire at
``at1`` (half of v2's amounts null; score and country drifted) and recover at
``at2``, writes an ``engine.yaml`` whose receivers are real servers started by
the test (HTTP for ``json://`` and ``form://``, aiosmtpd for ``mailto://``), and
runs ``rulesengine run . --notify --at …`` as a subprocess, as cron would.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from tests.delivery.conftest import (
    DRIFT_RUNBOOK,
    MODEL,
    NULLS_RUNBOOK,
    Scenario,
    free_port,
    hour_floor,
    iso,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

FIRING_TITLE = f"[FIRING] {MODEL} / amount-nulls (critical) and 2 more"
RESOLVED_TITLE = f"[RESOLVED] {MODEL} / amount-nulls and 2 more"
PENDING_NOTE = "still pending (left in the outbox for the next run or the daemon)"


def json_url(port: int, path: str, query: str = "") -> str:
    return f"json://127.0.0.1:{port}/{path}" + (f"?{query}" if query else "")


def mail_url(port: int, user: str = "") -> str:
    auth = f"{user}@" if user else ""
    return (
        f"mailto://{auth}127.0.0.1:{port}"
        "?from=rulesengine@example.com&to=oncall@example.com&mode=insecure"
    )


def parts(body: str) -> dict[str, str]:
    """A notification body's per-alert parts, keyed by their first two lines."""
    out = {}
    for part in body.split("\n\n"):
        lines = part.splitlines()
        assert len(lines) >= 2, f"an alert's part is one line: {part!r}"
        out[f"{lines[0]} | {lines[1]}"] = part
    return out


def check_firing_body(body: str, s: Scenario) -> None:
    """The grouped firing notification: both null-rate alerts (overall and the v2
    segment) and the drift alert with its top columns; the per-column drift warns
    are inhibited by the critical drift_share of the same monitor."""
    window = f"window: {iso(s.at1 - timedelta(hours=1))} – {iso(s.at1)}"
    got = parts(body)
    head = f"[FIRING] {MODEL} / amount-nulls (check null_rate, critical)"
    drift_head = f"[FIRING] {MODEL} / features (drift drift_share, critical)"
    assert sorted(got) == sorted(
        [
            f"{head} | segment: (all)",
            f"{head} | segment: model_version=v2",
            f"{drift_head} | segment: (all)",
        ]
    ), body
    overall = got[f"{head} | segment: (all)"].splitlines()
    assert overall[2:] == [
        "column: amount",
        "value: 0.25 (threshold: warn above 0.01; critical above 0.05)",
        window,
        f"runbook: {NULLS_RUNBOOK}",
    ], body
    v2 = got[f"{head} | segment: model_version=v2"].splitlines()
    assert v2[2:] == [
        "column: amount",
        "value: 0.5 (threshold: warn above 0.01; critical above 0.05)",
        window,
        f"runbook: {NULLS_RUNBOOK}",
    ], body
    drift = got[f"{drift_head} | segment: (all)"].splitlines()
    assert drift[2:5] == [
        "value: 1 (threshold: critical at or above 0.5)",
        window,
        f"runbook: {DRIFT_RUNBOOK}",
    ], body
    # Both columns drifted; the more significant first (country's p-value is 0).
    assert re.fullmatch(
        r"top drifting columns: country \(chisquare 0\), score \(ks \d(\.\d+)?e-\d+\)", drift[5]
    ), body


def check_resolved_body(body: str, s: Scenario) -> None:
    window = f"window: {iso(s.at2 - timedelta(hours=1))} – {iso(s.at2)}"
    got = parts(body)
    head = f"[RESOLVED] {MODEL} / amount-nulls (check null_rate, critical)"
    drift_head = f"[RESOLVED] {MODEL} / features (drift drift_share, critical)"
    assert sorted(got) == sorted(
        [
            f"{head} | segment: (all)",
            f"{head} | segment: model_version=v2",
            f"{drift_head} | segment: (all)",
        ]
    ), body
    for key in got:
        assert window in got[key].splitlines(), body
    assert "value: 0 (" in got[f"{head} | segment: model_version=v2"], body
    assert "value: 0 (" in got[f"{drift_head} | segment: (all)"], body


def flat(text: str) -> str:
    return " ".join(text.split())


def summary(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("notifications:")]
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------------------------ content, repeat, resolve


def test_http_form_and_smtp_receivers_get_the_alert_then_one_resolved_message(
    scenario, http_receiver, smtp_receiver
):
    http_port, smtp_port = free_port(), free_port()
    web = http_receiver(http_port)
    smtp = smtp_receiver(smtp_port)
    scenario.engine(
        {
            "hook": [json_url(http_port, "alerts")],
            "form": [f"form://127.0.0.1:{http_port}/form"],
            "email": [mail_url(smtp_port)],
        }
    )

    first = scenario.run(scenario.at1)
    assert first.returncode == 1  # critical results
    assert summary(first.stderr) == "notifications: 3 queued, 3 sent", first.stderr

    (hook,) = web.at("/alerts")
    payload = hook.payload
    assert set(payload) == {"version", "title", "message", "attachments", "type"}
    assert payload["title"] == FIRING_TITLE
    check_firing_body(payload["message"], scenario)

    (form,) = web.at("/form")
    fields = form.payload
    assert fields["title"] == FIRING_TITLE
    check_firing_body(fields["message"], scenario)

    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ["oncall@example.com"]
    assert mail.mail_from == "rulesengine@example.com"
    assert mail.subject == FIRING_TITLE
    # The same facts; the line structure is test_mail_keeps_the_lines_of_the_body's.
    assert flat(mail.text) == flat(payload["message"])

    # Still firing, 30 minutes later: well within repeat (4h), nothing is sent.
    again = scenario.run(scenario.at1 + timedelta(minutes=30))
    assert summary(again.stderr) == "notifications: 0 queued, 0 sent", again.stderr
    assert len(web.requests) == 2 and len(smtp.mails) == 1

    # Fixed: exactly one resolved message per receiver.
    fixed = scenario.run(scenario.at2)
    assert fixed.returncode == 0
    assert summary(fixed.stderr) == "notifications: 3 queued, 3 sent", fixed.stderr
    for path in ("/alerts", "/form"):
        _firing, resolved = web.at(path)
        assert resolved.payload["title"] == RESOLVED_TITLE
        check_resolved_body(resolved.payload["message"], scenario)
    mails = smtp.wait_for(2)
    assert len(mails) == 2
    assert mails[1].subject == RESOLVED_TITLE
    assert flat(mails[1].text) == flat(web.at("/alerts")[1].payload["message"])


def test_mail_keeps_the_lines_of_the_body(smtp_receiver):
    """In-process, through the notifier `run --notify` uses (the first test shows the
    same flattened text/plain part in a mail sent by the command line)."""
    from rulesengine.alerting.delivery import AppriseNotifier

    port = free_port()
    smtp = smtp_receiver(port)
    body = (
        f"[FIRING] {MODEL} / amount-nulls (check null_rate, critical)\n"
        "segment: model_version=<b>v2</b> & co\n"
        "value: 0.5 (threshold: critical above 0.05)\n\n"
        f"[FIRING] {MODEL} / features (drift drift_share, critical)\n"
        "segment: (all)"
    )
    assert AppriseNotifier().send(mail_url(port), FIRING_TITLE, body, 10) is None
    (mail,) = smtp.wait_for(1)
    plain = mail.message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert plain.get_content().strip().replace("\r\n", "\n") == body
    html = mail.message.get_body(preferencelist=("html",))
    if html is not None:  # data (a segment value) must not become markup
        assert "<b>v2</b>" not in html.get_content()


# ------------------------------------------------------------------ crash in delivery


def test_sigkill_during_delivery_delivers_once_after_restart(
    scenario, http_receiver, hanging_receiver, live_runs
):
    port = free_port()
    stuck = hanging_receiver(port)
    scenario.engine({"hook": [json_url(port, "alerts")]}, delivery={"timeout": "30s"})

    run = scenario.start_run(scenario.at1)
    live_runs.append(run)
    # Evaluated, tracked, queued and now sending: the receiver has the whole request.
    wait_until(lambda: stuck.complete_requests() >= 1, 40, "the stuck receiver to get the request")
    run.kill()  # SIGKILL
    assert run.proc.returncode == -signal.SIGKILL
    assert not any(t.startswith("notifications:") for _, t in run.lines)  # died in delivery
    (row,) = scenario.outbox()
    assert row["state"] == "pending" and row["sent_at"] is None

    stuck.close()
    web = http_receiver(port)  # a healthy receiver on the same port
    restart = scenario.run(scenario.at1 + timedelta(minutes=15))
    assert summary(restart.stderr) == "notifications: 0 queued, 1 sent", restart.stderr
    (delivered,) = web.at("/alerts")
    assert delivered.payload["title"] == FIRING_TITLE
    check_firing_body(delivered.payload["message"], scenario)

    third = scenario.run(scenario.at1 + timedelta(minutes=30))
    assert summary(third.stderr) == "notifications: 0 queued, 0 sent", third.stderr
    assert len(web.requests) == 1  # the log says sent: nothing re-sent
    assert [r["state"] for r in scenario.outbox()] == ["sent"]


# ------------------------------------------------------------------ isolation and run budget

RETRY_LINE = re.compile(r"failed \(attempt (\d+)\), retrying at (\S+): (.*)$")


def test_a_hanging_receiver_never_blocks_another_and_retries_stop_at_the_run_budget(
    scenario, http_receiver, hanging_receiver, live_runs
):
    stuck_port, up_port = free_port(), free_port()
    stuck = hanging_receiver(stuck_port)
    web = http_receiver(up_port)
    budget, timeout = 2.0, 1.0
    scenario.engine(
        {"stuck": [json_url(stuck_port, "stuck")], "hook": [json_url(up_port, "alerts")]},
        routes=[{"match": {"team": "risk"}, "receivers": ["stuck", "hook"]}],  # stuck first
        delivery={"timeout": "1s", "backoff": "500ms", "run_budget": "2s"},
    )

    run = scenario.start_run(scenario.at1)
    live_runs.append(run)
    run.wait_line("notifications:", 45)
    # Everything is committed once it says so; whether the process then exits at
    # once is test_a_one_shot_run_exits_soon_after_its_run_budget's question.
    run.kill()
    stderr = run.stderr

    # The healthy receiver got it in the same run, despite the stuck one before it.
    (got,) = web.at("/alerts")
    assert got.payload["title"] == FIRING_TITLE
    assert summary(stderr) == f"notifications: 2 queued, 1 sent, 1 {PENDING_NOTE}"

    # The stuck one was retried, each attempt cut at the timeout, within the budget.
    retries = [m for ln in stderr.splitlines() if (m := RETRY_LINE.search(ln))]
    assert all("to stuck (" in ln for ln in stderr.splitlines() if RETRY_LINE.search(ln))
    attempts = [int(m.group(1)) for m in retries]
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 2, stderr
    assert all(m.group(3) == f"timed out after {timeout:g}s" for m in retries), stderr
    # Retries stop at the budget: every attempt lasts its whole timeout (the
    # receiver never answers) and one starts only while the budget lasts, so there
    # are at most budget / timeout + 1 of them; a slow machine makes fewer, never
    # more. Without the budget they would go on until the row's deadline (24h),
    # and the summary line would not come within the wait above.
    assert len(attempts) <= budget / timeout + 1, stderr
    assert stuck.complete_requests() == len(attempts)
    (left,) = [r for r in scenario.outbox() if r["state"] == "pending"]
    assert left["receiver"] == "stuck" and left["attempts"] == len(attempts)


def test_a_one_shot_run_exits_soon_after_its_run_budget(scenario, trickling_receiver, live_runs):
    port = free_port()
    trickling_receiver(port)
    scenario.engine(
        {"hook": [json_url(port, "alerts")]},
        delivery={"timeout": "1s", "backoff": "1h", "max_backoff": "2h", "run_budget": "1s"},
    )
    run = scenario.start_run(scenario.at1)
    live_runs.append(run)
    run.wait_line("notifications:", 45)
    assert summary(run.stderr) == f"notifications: 1 queued, 0 sent, 1 {PENDING_NOTE}"
    # The receiver never finishes its answer, so a process that waited for the
    # send its timeout cut off would never exit; the bound only spares a slow box.
    assert run.exited_within(30), "still running 30s after leaving the rest in the outbox"
    assert run.proc.returncode == 1  # the violations, as without --notify


# ------------------------------------------------------------------ down for a while; secrets

HOOK_TOKEN = "hk-9f3c2e7a1b-s3cret"
SMTP_PASSWORD = "pw-41d8e2c7-s3cret"


def _leaks(secret: str, texts: dict[str, str | bytes]) -> list[str]:
    forms = {secret, quote(secret), quote(secret, safe="")}
    out = []
    for name, text in texts.items():
        data = text if isinstance(text, bytes) else text.encode()
        out += [name for f in forms if f.encode() in data]
    return out


def test_receiver_down_then_back_delivers_the_pending_one_first_and_never_shows_secrets(
    scenario, http_receiver, smtp_receiver
):
    """The webhook is down for a while, the mail server is up; both URLs carry a
    secret from the environment (a bearer token header, an SMTP password)."""
    hook_port, smtp_port = free_port(), free_port()  # nothing listens on hook_port yet
    smtp = smtp_receiver(smtp_port, password=SMTP_PASSWORD)
    scenario.env = {"HOOK_TOKEN": HOOK_TOKEN, "SMTP_PASSWORD": SMTP_PASSWORD}
    scenario.engine(
        {
            "hook": [json_url(hook_port, "hook", "+Authorization=Bearer%20${HOOK_TOKEN}")],
            "email": [mail_url(smtp_port, "alerts:${SMTP_PASSWORD}")],
        },
        # A long backoff: the next run must deliver it whatever its backoff says.
        delivery={"backoff": "1h", "max_backoff": "2h", "run_budget": "1s"},
    )

    down = scenario.run(scenario.at1)
    assert summary(down.stderr) == f"notifications: 2 queued, 1 sent, 1 {PENDING_NOTE}"
    # The failing webhook did not hold up the mail, and the secret reached the server.
    (mail,) = smtp.wait_for(1)
    assert mail.subject == FIRING_TITLE
    assert smtp.logins == [("alerts", SMTP_PASSWORD)]
    assert "notification 1 to hook (json://127.0.0.1:" in down.stderr  # logged, masked

    listing = scenario.cli("alerts", "--format", "json", "-c", ".")
    assert listing.returncode == 0, listing.stderr
    doc = json.loads(listing.stdout)
    assert {(a["monitor"], a["state"]) for a in doc["alerts"]} == {
        ("amount-nulls", "firing"),
        ("features", "firing"),
    }
    (pending,) = doc["outbox"]
    assert pending["receiver"] == "hook"
    assert pending["target"] == f"json://127.0.0.1:{hook_port}/***?+Authorization=***"
    assert pending["kind"] == "firing"
    assert pending["title"] == FIRING_TITLE
    assert pending["attempts"] == 1
    assert pending["last_error"]
    retry_at = datetime.fromisoformat(pending["next_attempt_at"])
    assert retry_at > datetime.now(UTC) + timedelta(minutes=50)  # backed off an hour

    web = http_receiver(hook_port)  # the webhook is back
    back = scenario.run(scenario.at2)
    # The pending firing notification first, then this run's resolved ones.
    assert summary(back.stderr) == "notifications: 2 queued, 3 sent", back.stderr
    first, second = web.at("/hook")
    assert first.payload["title"] == FIRING_TITLE
    check_firing_body(first.payload["message"], scenario)
    assert second.payload["title"] == RESOLVED_TITLE
    assert first.headers["Authorization"] == f"Bearer {HOOK_TOKEN}"
    assert [m.subject for m in smtp.wait_for(2)] == [FIRING_TITLE, RESOLVED_TITLE]
    assert [r["state"] for r in scenario.outbox()] == ["sent"] * 4

    texts: dict[str, str | bytes] = {
        "run 1 stdout": down.stdout,
        "run 1 stderr": down.stderr,
        "alerts stdout": listing.stdout,
        "alerts stderr": listing.stderr,
        "run 2 stdout": back.stdout,
        "run 2 stderr": back.stderr,
        "state files": scenario.state_bytes(),
    }
    assert _leaks(HOOK_TOKEN, texts) == []
    assert _leaks(SMTP_PASSWORD, texts) == []


def test_a_secret_in_any_custom_header_is_masked(scenario, caplog):
    """In-process, through the enqueue, deliver and listing code `run --notify` and
    `alerts` use (a CLI run shows the same in its stderr and state file)."""
    from rulesengine.alerting.admin import alert_listing, listing_text
    from rulesengine.alerting.delivery import AppriseNotifier, deliver, enqueue
    from rulesengine.alerting.store import Store
    from rulesengine.spec.loader import load

    secret = "sess-77a1c9e0d4-s3cret"
    port = free_port()  # down, so the failure is logged with the target
    scenario.engine({"hook": [json_url(port, "hook", "+Cookie=session%3D${SESSION_COOKIE}")]})
    config = load([scenario.root], env={"SESSION_COOKIE": secret})
    now = datetime.now(UTC)
    with Store(config.engine.state) as store:
        with store.transaction():
            enqueue(
                store,
                config.engine,
                group_key="g",
                receiver="hook",
                kind="firing",
                title=FIRING_TITLE,
                body="body",
                now=now,
            )
        with caplog.at_level(logging.WARNING):
            report = deliver(store, config.engine, AppriseNotifier(), clock=lambda: now)
        listing = alert_listing(store, now)
    assert report.pending == 1
    assert "to hook (json://127.0.0.1:" in caplog.text
    texts: dict[str, str | bytes] = {
        "log": caplog.text,
        "alerts": listing_text(listing) + json.dumps(listing),
        "state files": scenario.state_bytes(),
    }
    assert _leaks(secret, texts) == []


# ------------------------------------------------------------------ backfill and the deadline


def test_a_run_for_an_earlier_time_still_delivers_its_notifications(tmp_path, http_receiver):
    s = Scenario(tmp_path, at1=hour_floor(datetime.now(UTC)) - timedelta(days=2))
    up_port, down_port = free_port(), free_port()
    web = http_receiver(up_port)
    s.engine(
        {"up": [json_url(up_port, "alerts")], "down": [json_url(down_port, "alerts")]},
        delivery={"backoff": "1h", "max_backoff": "2h", "run_budget": "1s"},
    )
    proc = s.run(s.at1)
    assert summary(proc.stderr) == f"notifications: 2 queued, 1 sent, 1 {PENDING_NOTE}"
    (got,) = web.at("/alerts")
    assert got.payload["title"] == FIRING_TITLE
    assert sorted(r["state"] for r in s.outbox()) == ["pending", "sent"]
