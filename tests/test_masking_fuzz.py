"""Fuzz the URL masker: random URLs of every Apprise scheme with a random secret in
a random position (user, password, a path segment, a query value, the fragment),
raw, percent-encoded or escaped the way Apprise escapes it. The secret, in any of
those forms, must never show in ``mask_url``'s output nor in ``mask_text``'s output
of a sentence holding the URL, and neither may raise.

Examples hypothesis once found (and anything it finds later) are kept in
``REGRESSIONS`` below and run every time."""

from __future__ import annotations

import os
import string
from urllib.parse import quote

import apprise
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rulesengine.masking import mask_text, mask_url

# FUZZ_EXAMPLES=20000 pytest tests/test_masking_fuzz.py  for a longer hunt
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
_APPRISE = {
    p.lower()
    for plugin in apprise.Apprise().details(show_disabled=True)["schemas"]
    for key in ("protocols", "secure_protocols")
    for p in (plugin.get(key) or ())
    if p
}
SCHEMES = [*sorted(_APPRISE), "http", "https", "x-custom+v1"]
HOSTS = ["hooks.example.com", "127.0.0.1", "localhost", "[::1]", "ntfy.sh", "T0KEN", ""]
KEYS = ["to", ":field", "-X-Token", "+Authorization", "from", "mode", "%2BCookie", "k"]
# no whitespace: a URL inside prose ends at the first space, as any reader takes it
SYMBOLS = string.ascii_letters + string.digits + string.punctuation + "éß€"
FILLER = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
POSITIONS = ("user", "password", "path", "query", "fragment")


def forms(secret: str) -> set[str]:
    """The secret as a reader of the output could find it."""
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        apprise.URLBase.quote(secret, safe=""),
        apprise.URLBase.quote(secret),
    }


def encode(secret: str, how: str) -> str:
    if how == "percent":
        return quote(secret, safe="")
    if how == "apprise":
        return apprise.URLBase.quote(secret)
    return secret


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str, str]:
    """(URL with the secret, the secret, the same URL with a harmless value instead)."""
    secret = draw(
        st.text(SYMBOLS, min_size=6, max_size=24).filter(lambda s: sum(c.isalnum() for c in s) >= 3)
    )
    placed = encode(secret, draw(st.sampled_from(["raw", "percent", "apprise"])))
    where = draw(st.sampled_from(POSITIONS))
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.sampled_from(HOSTS)) + draw(st.sampled_from(["", ":8080", ":1"]))
    user = draw(st.sampled_from(["", "alerts", "ops"]))
    password = draw(st.sampled_from(["", "pw"]))
    segments = draw(st.lists(FILLER, max_size=4))
    at = draw(st.integers(0, len(segments)))
    query = [(draw(st.sampled_from(KEYS)), draw(FILLER)) for _ in range(draw(st.integers(0, 3)))]
    q_at, q_key = draw(st.integers(0, len(query))), draw(st.sampled_from(KEYS))
    fragment = draw(st.sampled_from(["", "chan"]))
    slash = draw(st.booleans())

    def build(value: str) -> str:
        u, pw, segs, q, frag = user, password, list(segments), list(query), fragment
        if where == "user":
            u = value
        elif where == "password":
            u, pw = u or "alerts", value
        elif where == "path":
            segs.insert(at, value)
        elif where == "query":
            q.insert(q_at, (q_key, value))
        else:
            frag = value
        auth = (u + (f":{pw}" if pw else "") + "@") if u or pw else ""
        url = f"{scheme}://{auth}{host}"
        if segs or slash:
            url += "/" + "/".join(segs)
        if q:
            url += "?" + "&".join(f"{k}={v}" for k, v in q)
        return url + (f"#{frag}" if frag else "")

    return build(placed), secret, build("Q")


def check(url: str, secret: str, baseline_url: str | None = None) -> None:
    masked = mask_url(url)
    in_text = mask_text(f"delivery to {url} failed; retrying '{url}'.")
    # what the output shows with a harmless value in the secret's place: a form of the
    # secret found there too (it spells a host name or a query key) is no leak
    base = baseline_url or "x://"
    baseline = mask_url(base) + mask_text(f"delivery to {base} failed; retrying '{base}'.")
    for form in forms(secret):
        if form in baseline:
            continue
        assert form not in masked, (url, masked)
        assert form not in in_text, (url, in_text)
    assert mask_url(masked) == masked


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(urls())
def test_no_secret_survives_masking(case: tuple[str, str, str]) -> None:
    check(*case)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=200), st.lists(st.text(max_size=12), max_size=3))
def test_mask_text_never_raises_and_removes_known_secrets(text: str, secrets: list[str]) -> None:
    out = mask_text(text, secrets)
    for secret in secrets:
        if len(secret) >= 4 and "*" not in secret:
            assert secret not in out


# (url, secret, the URL with a harmless value in the secret's place): shapes that
# hypothesis or a review found; the baseline tells a leak from a host name
REGRESSIONS = [
    ("json://u:ab/cd.example.com@hooks.example.com/x", "ab/cd.example.com", None),
    ("json://hooks.example.com/x?to=a&b=c#frag", "a&b=c#frag", None),
    ("slack://T0KEN0001/B0KEN0002/X0KEN0003/#chan", "X0KEN0003", None),
    ("46elks://user:Zq%2Fsecret@hooks.example.com", "Zq/secret", None),
    ("json://hooks.example.com/x?%2BCookie=session%3DZk9s3cret", "session=Zk9s3cret", None),
    ("ntfy://Zk9tok@en@ntfy.sh/topic", "Zk9tok@en", None),
    ("json://hooks.example.com/end#Zk9tail!)", "Zk9tail!)", None),
    ("json://[::1]:8080/Zk9[v6]", "Zk9[v6]", None),
    ("mailto://alerts:pa ss Zk9@127.0.0.1:25?to=x", "pa ss Zk9", None),
    # a fragment that spells part of the host: shown by the host, not leaked
    ("amqp://localhost#localh", "localh", "amqp://localhost#Q"),
]


@pytest.mark.parametrize(("url", "secret", "baseline"), REGRESSIONS)
def test_regressions(url: str, secret: str, baseline: str | None) -> None:
    if baseline is None:
        for form in forms(secret):
            assert form not in mask_url(url)
    if " " not in secret:
        check(url, secret, baseline)
