"""Secrets never leave: the masker against every scheme Apprise ships, the URL shapes
that leaked before, the log filter, the listing of ``alerts``, and Apprise URL
validation (whose messages must never carry Apprise's own text)."""

from __future__ import annotations

import io
import logging
import random
import re
import string
from urllib.parse import quote

import apprise
import pytest

from rulesengine.masking import SecretFilter, install_secret_filter, mask_text, mask_url
from rulesengine.spec.semantic_engine import apprise_problem

HOST = "hooks.example.com"


def _protocols(plugin: dict) -> list[str]:
    out: list[str] = []
    for key in ("protocols", "secure_protocols"):
        value = plugin.get(key) or ()
        out += [p for p in ([value] if isinstance(value, str) else value) if p]
    return out


# Apprise's own list, disabled plugins included (windows, dbus, ... on this machine)
PLUGINS = apprise.Apprise().details(show_disabled=True)["schemas"]
SCHEMES = sorted({p.lower() for plugin in PLUGINS for p in _protocols(plugin)})
TEMPLATES = sorted(
    {
        (p.lower(), t)
        for plugin in PLUGINS
        for p in _protocols(plugin)
        for t in plugin["details"]["templates"]
    }
)
ENABLED = sorted(
    {p.lower() for plugin in PLUGINS if plugin.get("enabled", True) for p in _protocols(plugin)}
)


def token(rng: random.Random, n: int = 18) -> str:
    """A secret that cannot occur by chance in a masked URL."""
    return "Zq" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def assert_hidden(text: str, secrets: list[str]) -> None:
    for s in secrets:
        for form in {s, quote(s, safe=""), quote(s)}:
            assert form not in text, f"{form!r} shows in {text!r}"


def test_apprise_ships_the_schemes_we_test():
    assert len(SCHEMES) > 200 and len(TEMPLATES) > 500
    assert {"slack", "json", "ntfy", "mailto", "pagerduty", "discord", "tgram"} <= set(SCHEMES)


def _shapes(scheme: str, rng: random.Random) -> list[tuple[str, list[str]]]:
    """URLs with a secret in every position: user, password, each path segment, query
    values (plain, :field, -X-header, +header, bare), fragment; several hosts."""
    out = []
    for host in (HOST, f"{HOST}:8080", "127.0.0.1:8080", "localhost", "[::1]:8080", "T0KEN"):
        s = [token(rng) for _ in range(9)]
        url = (
            f"{scheme}://{s[0]}:{s[1]}@{host}/{s[2]}/{s[3]}/{s[4]}"
            f"?to={s[5]}&:field={s[6]}&-X-Token={s[7]}&+Authorization=Bearer%20{s[8]}"
        )
        out.append((url, s))
        t = [token(rng) for _ in range(4)]
        out.append((f"{scheme}://{t[0]}@{host}/{t[1]}/?{t[2]}#{t[3]}", t))
        u = [token(rng) for _ in range(3)]
        out.append((f"{scheme}://{u[0]}/{u[1]}/{u[2]}/", u))  # tokens where a host would be
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_hides_every_position(scheme):
    rng = random.Random(scheme)
    for url, secrets in _shapes(scheme, rng):
        masked = mask_url(url)
        assert_hidden(masked, secrets)
        assert masked.startswith(f"{scheme}://"), masked
        sentence = f"could not send to '{url}', giving up (next: {url}). Retrying {url}."
        assert_hidden(mask_text(sentence), secrets)
        assert mask_url(masked) == masked  # masking a masked URL changes nothing


def _fill(template: str, scheme: str, rng: random.Random) -> tuple[str, list[str]]:
    """A URL from one of Apprise's own templates: every field a fresh secret, except
    the host (a host name) and the port."""
    secrets: list[str] = []

    def field(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "schema":
            return scheme
        if name == "host":
            return HOST
        if name == "port":
            return "8080"
        secrets.append(token(rng))
        return ("/" if name == "path" else "") + secrets[-1]

    return re.sub(r"\{(\w+)\}", field, template), secrets


@pytest.mark.parametrize(("scheme", "template"), TEMPLATES)
def test_urls_built_from_apprise_templates_keep_only_scheme_host_and_port(scheme, template):
    url, secrets = _fill(template, scheme, random.Random(f"{scheme}{template}"))
    masked = mask_url(url)
    assert_hidden(masked, secrets)
    assert_hidden(mask_text(f"sending to {url} failed"), secrets)
    assert masked.startswith(f"{scheme}://")
    if "{host}" in template:  # the receiver stays recognisable
        assert HOST in masked
        if "{port}" in template:
            assert f"{HOST}:8080" in masked


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # the shapes of issue 9, finding 3
        ("json://Tk9xSECRET@hooks.example.com", "json://***@hooks.example.com"),
        (
            "json://hooks.example.com/api/webhooks/42/Tk9xSECRET",
            "json://hooks.example.com/***/***/***/***",
        ),
        ("ntfy://Tk9xSECRET@ntfy.example.com/alerts", "ntfy://***@ntfy.example.com/***"),
        (
            "json://Tk9xSECRET@hooks.example.com:8080/a/b?:field=Tk9xSECRET",
            "json://***@hooks.example.com:8080/***/***?:field=***",
        ),
        (
            "json://127.0.0.1:8080/x?-X-Api-Key=Tk9xSECRET&+Authorization=Bearer%20Tk9xSECRET",
            "json://127.0.0.1:8080/***?-X-Api-Key=***&+Authorization=***",
        ),
        # tokens where a host would be: masked, whatever the scheme
        ("slack://TokenA/TokenB/TokenC/#channel", "slack://***/***/***/#***"),
        ("pagerduty://integration_key@api_key", "pagerduty://***@***"),
        ("discord://1234567890/webhook_token", "discord://***/***"),
        ("tgram://123456789:AAbbCC-dd/12345", "tgram://***:***/***"),
        ("mailto://user:pass@gmail.com", "mailto://***:***@gmail.com"),
        # a token with dots in the host position of a scheme whose URLs have no host
        ("slack://xoxb.example.com/B0/C0", "slack://***/***/***"),
        ("json://u:p@ss@host.example.com/x", "json://***:***@host.example.com/***"),
        ("json://[::1]:8080/x", "json://[::1]:8080/***"),
        ("json://localhost", "json://localhost"),
        ("json://Not.A-Host/x", "json://***/***"),
        ("json://host.example.com:toolong/x", "json://host.example.com:***/***"),
        ("slack://", "slack://"),
        ("not a url at all", "***"),
        ("", ""),
    ],
)
def test_known_shapes(url, expected):
    assert mask_url(url) == expected


def test_mask_text_masks_urls_in_prose_and_known_secrets():
    secret = "s3cr=et+value!"
    text = (
        f"error: json://u:{secret}@hooks.example.com/x failed; env had {secret}, "
        f"encoded {quote(secret, safe='')}; (see slack://A/B/C). Short ab stays."
    )
    out = mask_text(text, [secret, "ab"])
    assert_hidden(out, [secret])
    assert "json://***:***@hooks.example.com/***" in out
    assert "(see slack://***/***/***)." in out  # closing punctuation is not the URL's
    assert "Short ab stays." in out  # secrets under 4 characters are not searched for
    assert mask_text("nothing to hide here") == "nothing to hide here"


def test_secret_filter_masks_records_of_child_loggers_and_libraries():
    """Installed on a handler, the filter sees records of every logger that
    propagates there, including Apprise's own warnings about an invalid URL."""
    secret = "Sk9flockTOKEN42"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        flt = install_secret_filter(root, ["EnvOnlyS3cret"])
        assert isinstance(flt, SecretFilter)
        assert install_secret_filter(root) is flt  # once per handler
        child = logging.getLogger("rulesengine.delivery.test")
        child.warning("failed %s: %s", f"json://{secret}@hooks.example.com/a", "EnvOnlyS3cret")
        try:
            raise ValueError(f"boom at ntfy://{secret}@ntfy.example.com/t")
        except ValueError:
            child.exception("send failed")
        apprise.Apprise().add(f"flock://{secret}!!/")  # Apprise logs the token itself
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    out = stream.getvalue()
    assert "json://***@hooks.example.com/***: ***" in out
    assert "ValueError: boom at ntfy://***@ntfy.example.com/***" in out
    # Apprise's warning and error (they quote the token bare) in our words; debug dropped
    assert out.count("reported a problem; its text is not shown, as it may quote a token") == 2
    assert "apprise: Apprise (flock) reported a problem" in out
    assert "apprise: Apprise (locale)" not in out
    assert secret[:12] not in out and "EnvOnlyS3cret" not in out


@pytest.mark.parametrize(
    "shape",
    [
        "slack://{t}/{t}/#chan",
        "slack://{t}",
        "join://{t}",
        "twilio://{t}:{t}@{t}",
        "flock://{t}!!/",
        "kumulos://{t}",
        "json://{t}:{t}@:8080/x",
        "mailto://{t}:{t}@",
        "pagerduty://{t}",
        "discord://{t}",
    ],
)
def test_invalid_apprise_url_message_has_our_words_and_the_masked_url(shape, caplog):
    secret = "Jk8invalidTOKEN"
    url = shape.format(t=secret)
    with caplog.at_level(logging.DEBUG):
        why = apprise_problem(url)
    assert why is not None
    scheme = url.split("://")[0]
    assert why.startswith(f"not a valid Apprise URL for scheme '{scheme}': {mask_url(url)} ")
    assert secret[:8] not in why and "invalid" not in why.split(":", 2)[-1].lower()
    assert not [r for r in caplog.records if r.name.startswith("apprise")]


@pytest.mark.parametrize("scheme", ENABLED)
def test_validation_of_any_scheme_never_echoes_a_token(scheme, caplog):
    rng = random.Random(f"validate-{scheme}")
    for url, secrets in _shapes(scheme, rng)[:3]:
        with caplog.at_level(logging.DEBUG):
            why = apprise_problem(url)
        if why is not None:
            assert_hidden(why, secrets)
            assert why.startswith(f"not a valid Apprise URL for scheme '{scheme}': ")
    assert not [r for r in caplog.records if r.name.startswith("apprise")]


def test_validation_without_a_scheme_or_with_an_unknown_one():
    assert apprise_problem("Zz9SECRET@host").startswith("not an Apprise URL")
    assert apprise_problem("TOKEN value://x").startswith("not an Apprise URL")
    assert apprise_problem("slak://x") == "unknown Apprise scheme 'slak://' (did you mean 'slack'?)"
    assert apprise_problem("json://hooks.example.com/x") is None
    # a scheme Apprise knows but cannot use here (a desktop notifier on a server)
    disabled = sorted(set(SCHEMES) - set(ENABLED))
    assert "windows" in disabled
    assert apprise_problem("windows://").startswith(
        "Apprise cannot send 'windows://' notifications on this machine"
    )


# ------------------------------------------------------------------ end to end

MARK = "Mk7sekretTOKENq"
# inside whole URLs from the environment: the loader knows only the whole URL as a
# secret, and Apprise's messages quote a part of it ("Flock Access Key (TOKEN!!)")
IN_URL = "Wx4innerSECRETz"
ENV = {
    "TOK": MARK,
    "SLACK_URL": f"slack://T0/{IN_URL}/#chan",
    "FLOCK_URL": f"flock://{IN_URL}!!/",
    "BAD_JSON": f"json://{IN_URL}:pw@:8080/x",
}
RECEIVERS = {
    "slack": ["${SLACK_URL}"],
    "flock": ["${FLOCK_URL}"],
    "bad-json": ["${BAD_JSON}"],
    "join": ["join://${TOK}"],
    "kumulos": ["kumulos://${TOK}"],
    "twilio": ["twilio://${TOK}"],
    "user": ["json://${TOK}@hooks.example.com:8080/x"],
    "webhook": ["json://hooks.example.com/api/webhooks/42/${TOK}"],
    "ntfy": ["ntfy://${TOK}@ntfy.example.com/alerts"],
    "fields": ["json://hooks.example.com/x?:field=${TOK}&-X-Token=${TOK}"],
}


def _leaks(secret: str, texts: dict[str, str | bytes]) -> list[str]:
    """Where the secret, percent-encoded or not, or a part of it shows."""
    forms = {secret, quote(secret, safe=""), secret[:8], secret[-8:]}
    found = []
    for name, text in texts.items():
        data = text if isinstance(text, bytes) else text.encode()
        found += [name for form in forms if form.encode() in data]
    return found


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_validate_never_prints_a_token_from_the_environment(tmp_path, fmt):
    import json
    import os
    import subprocess
    import sys

    import yaml

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(
        "version: 1\nmodel: m\nsources: {s: {path: x.parquet}}\n", encoding="utf-8"
    )
    engine = {"version": 1, "receivers": RECEIVERS, "routes": [{"receivers": list(RECEIVERS)}]}
    (tmp_path / "engine.yaml").write_text(yaml.safe_dump(engine), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "rulesengine.cli", "validate", str(tmp_path), "--format", fmt],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    texts = {"stdout": proc.stdout, "stderr": proc.stderr}
    assert _leaks(MARK, texts) == [] and _leaks(IN_URL, texts) == []
    assert proc.stderr == ""  # nothing from Apprise's logger, masked or not
    out = proc.stdout
    if fmt == "json":
        messages = [p["message"] for p in json.loads(out)["problems"]]
        out = "\n".join(messages)
        assert len(messages) == 6
    for scheme in ("slack", "flock", "json", "join", "kumulos", "twilio"):
        assert f"not a valid Apprise URL for scheme '{scheme}'" in out
    assert "slack://***/***/#***" in out and "json://***:***@:8080/***" in out
    if fmt == "github":
        assert out.count("::error file=") == 6


def test_run_notify_and_alerts_never_show_a_token(tmp_path):
    """Receivers down, URLs of the shapes that once leaked: the warnings on stderr,
    ``alerts`` (text and JSON) and every byte of the state file stay clean."""
    from tests.delivery.conftest import Scenario, free_port

    port = free_port()  # nothing listens: every send fails and is logged
    scenario = Scenario(tmp_path)
    scenario.env = {"TOK": MARK}
    base = f"127.0.0.1:{port}"
    scenario.engine(
        {
            "user": [f"json://${{TOK}}@{base}/x"],
            "webhook": [f"json://{base}/api/webhooks/42/${{TOK}}"],
            "ntfy": [f"ntfy://${{TOK}}@{base}/alerts"],
            "fields": [f"json://{base}/x?:field=${{TOK}}&-X-Token=${{TOK}}"],
        },
        delivery={"timeout": "2s", "backoff": "1h", "run_budget": "3s"},
    )
    run = scenario.run(scenario.at1)
    assert "notifications: 4 queued" in run.stderr, run.stderr
    listing = scenario.cli("alerts", "-c", ".")
    as_json = scenario.cli("alerts", "--format", "json", "-c", ".")
    texts = {
        "run stdout": run.stdout,
        "run stderr": run.stderr,
        "alerts": listing.stdout + listing.stderr,
        "alerts json": as_json.stdout + as_json.stderr,
        "state files": scenario.state_bytes(),
    }
    assert _leaks(MARK, texts) == []
    # the receivers stay recognisable: scheme, host and port
    assert f"json://***@{base}/***" in listing.stdout
    assert f"json://{base}/***/***/***/***" in listing.stdout
    assert f"ntfy://***@{base}/***" in listing.stdout
    assert f"json://{base}/***?:field=***&-X-Token=***" in listing.stdout


def test_apprise_warnings_at_send_time_never_show_a_token(tmp_path):
    """Apprise parses the URL again when it sends and warns, quoting the value bare,
    about an option it does not know; only the log filter can catch that."""
    from tests.delivery.conftest import Scenario, free_port

    scenario = Scenario(tmp_path)
    scenario.env = {"TOK": MARK}
    base = f"127.0.0.1:{free_port()}"
    scenario.engine(
        {"hook": [f"json://{base}/x?format=${{TOK}}&overflow=${{TOK}}"]},
        delivery={"timeout": "2s", "backoff": "1h", "run_budget": "3s"},
    )
    run = scenario.run(scenario.at1)
    assert "notifications: 1 queued" in run.stderr, run.stderr
    assert _leaks(MARK, {"run stderr": run.stderr, "run stdout": run.stdout}) == []
    assert "Apprise (base) reported a problem" in run.stderr


def test_validate_masks_urls_quoted_in_any_problem(tmp_path):
    """A URL written into the file by mistake (a string for a list, a URL for a
    receiver name) is quoted by schema messages; it must show masked."""
    from rulesengine.spec.validate import render, validate

    literal = "json://Lt5literalSECRET@hooks.example.com/x"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(
        "version: 1\nmodel: m\nsources: {s: {path: x.parquet}}\n", encoding="utf-8"
    )
    (tmp_path / "engine.yaml").write_text(
        f'version: 1\nreceivers:\n  a: {{urls: "{literal}"}}\n'
        f'routes:\n  - {{receivers: [a, "{literal}"]}}\n',
        encoding="utf-8",
    )
    report = validate([tmp_path], env={})
    outputs = {fmt: render(report, fmt) for fmt in ("text", "json", "github")}
    assert all("json://***@hooks.example.com/***" in out for out in outputs.values())
    assert _leaks("Lt5literalSECRET", outputs) == []


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("s3://ml-logs/shared/data/*.ndjson", "s3://ml-logs/shared/data/*.ndjson"),
        ("s3://AKIAEXAMPLE:wJalrSECRET@ml-logs/a/b.parquet", "s3://***:***@ml-logs/a/b.parquet"),
        ("az://logs/x.csv?sv=2024-01-01&sig=SASSECRET", "az://logs/x.csv?sv=***&sig=***"),
        ("gs://bucket/p/", "gs://bucket/p/"),
        ("file:///var/log/m/*.parquet", "file:///var/log/m/*.parquet"),
    ],
)
def test_storage_paths_stay_readable_but_credentials_do_not(url, masked):
    """A log source's bucket and key name a file and grant nothing; an operator needs
    them in messages. User, password and query values (SAS tokens, signatures) are
    masked as in any URL."""
    assert mask_url(url) == masked
    assert mask_text(f"no files match '{url}' yet") == f"no files match '{masked}' yet"
