"""Scheduled reports (engine.yaml ``reports``): ``rulesengine daemon`` as a real
subprocess sends the report to a real SMTP server (aiosmtpd; the HTML page as an
attachment) and to a loopback webhook (the markdown summary as the body), and a
daemon stopped across a send time sends that time exactly once after its restart.
A 3s cadence stands in for a weekly one."""

from __future__ import annotations

import base64
import re
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.daemon.conftest import Site, stop_proc
from tests.delivery.conftest import SmtpReceiver, free_port, wait_until

pytest.importorskip("matplotlib")

EVERY = 3  # seconds
ENGINE = """\
version: 1
state: state/state.db
receivers:
  hook: {{urls: ["json://127.0.0.1:{port}/report"]}}
  mail: {{urls: ["mailto://127.0.0.1:{smtp}?from=rulesengine@example.com&to=ops@example.com"]}}
delivery: {{timeout: 5s, backoff: 1s, run_budget: 5s}}
reports:
  - {{name: weekly, every: {every}s, receivers: [mail, hook]}}
"""
STAMP = re.compile(r"Report weekly as of (\S+) \(since (\S+)\)")


def _configure(site: Site, smtp: SmtpReceiver | None = None) -> None:
    text = ENGINE.format(port=site.receiver.port, smtp=smtp.port if smtp else 9, every=EVERY)
    if smtp is None:
        text = text.replace("[mail, hook]", "[hook]")
    (site.root / "engine.yaml").write_text(text, encoding="utf-8")


def _due_times(site: Site) -> list[datetime]:
    """The send time stamped in each webhook body, in arrival order."""
    out = []
    for req in site.receiver.at("/report"):
        m = STAMP.search(req.payload["message"])
        assert m, req.payload
        out.append(datetime.fromisoformat(m.group(1)))
    return out


def _aligned(t: datetime) -> bool:
    return t.timestamp() % EVERY == 0


@pytest.mark.timeout(90)
def test_report_reaches_smtp_as_attachment_and_webhook_as_body(
    site: Site, smtp_receiver: Callable[..., SmtpReceiver]
) -> None:
    smtp = smtp_receiver(free_port())
    _configure(site, smtp)
    started = datetime.now(UTC)
    site.start()
    mail = smtp.wait_for(1, timeout=45)[0]
    site.receiver.wait_for(1, "/report", timeout=30)

    m = re.fullmatch(r"rulesengine report weekly as of (\S+)", mail.subject)
    assert m, mail.subject
    at = datetime.fromisoformat(m.group(1))
    # a report new to the store goes out at its next send time, not at start
    assert at > started and _aligned(at)
    assert "## m1" in mail.text and "Worst drift:" in mail.text
    files = [p for p in mail.message.iter_attachments() if p.get_filename()]
    assert len(files) == 1, [p.get_filename() for p in mail.message.iter_attachments()]
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    assert files[0].get_filename() == f"rulesengine-report-weekly-{stamp}.html"
    page = files[0].get_payload(decode=True).decode()
    assert page.startswith("<!DOCTYPE html>") and "<h2" in page and "m1" in page

    body = site.receiver.at("/report")[0].payload
    assert body["title"] == mail.subject
    lines = body["message"].splitlines()
    # since defaults to the cadence: the summary covers the 3s before the send time
    since = datetime.fromtimestamp(at.timestamp() - EVERY, UTC)
    assert STAMP.search(lines[0]).groups() == (m.group(1), since.isoformat().replace("+00:00", "Z"))
    # the model's check is clean and nothing fired: the summary says so
    assert "Fired: none" in lines and "Resolved: none" in lines
    assert "Worst drift: none" in lines
    # Apprise's json:// carries the page too, base64-encoded
    (sent,) = body["attachments"]
    assert sent["filename"] == files[0].get_filename()
    assert base64.b64decode(sent["base64"]).decode() == page


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_restart_across_a_send_time_sends_it_exactly_once(site: Site, sig: int) -> None:
    _configure(site)
    first = site.start()
    site.receiver.wait_for(1, "/report", timeout=45)
    # a kill between a send and its row being marked sent sends it again after the
    # restart (delivery is at least once, as for alerts): kill once it is marked
    unsent = "SELECT count(*) FROM outbox WHERE state != 'sent'"
    wait_until(lambda: site.query(unsent) == [(0,)], 20, "the report's row marked sent")
    if sig == signal.SIGTERM:
        stop_proc(first, bound=20)
    else:
        first.kill()
    down = datetime.now(UTC)
    before = len(site.receiver.at("/report"))
    time.sleep(2 * EVERY + 1)  # at least two send times pass while it is down
    restart = datetime.now(UTC)
    newest_missed = datetime.fromtimestamp(restart.timestamp() // EVERY * EVERY, UTC)
    assert newest_missed > down
    site.start()
    site.receiver.wait_for(before + 1, "/report", timeout=45)
    # and one more regular send after the catch-up
    site.receiver.wait_for(before + 2, "/report", timeout=45)
    times = _due_times(site)
    assert len(times) == len(set(times)), times  # none sent twice
    assert all(_aligned(t) for t in times)
    missed = [t for t in times if down < t <= restart]
    # only the newest missed send time goes out (catch-up latest); the restarted
    # daemon's first pass may come after another send time passed
    caught = [t for t in times if down < t]
    assert len(missed) <= 1 and caught[0] >= newest_missed, (times, down, restart)
    # in the store too: no send time queued twice
    twice = (
        "SELECT title FROM outbox WHERE group_key='report:weekly'"
        " GROUP BY title HAVING count(*) > 1"
    )
    assert site.query(twice) == []
