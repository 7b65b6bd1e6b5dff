"""Secrets never leave: one masker for every output path.

Apprise URLs carry tokens and passwords, and values substituted from ``${ENV}``
are secrets too. Every path that prints, logs or stores text about a receiver
goes through this module.

The masked form is built from a plain parse of the text, not from Apprise, so it
works the same for valid and invalid URLs and for every scheme. What stays
visible is only what identifies a receiver without granting access to it: the
scheme, a host that looks like a host name or IP address, a numeric port, and
query keys. User, password, every path segment, every query value and the
fragment become ``***``: ``json://***@hooks.example.com:8080/***/***?:field=***``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote

MASK = "***"

_SCHEME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9+.\-]*)://(.*)\Z", re.DOTALL)
# a URL inside free text: scheme:// up to the next whitespace
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z0-9][A-Za-z0-9+.\-]*://\S*")
# punctuation that ends a sentence or closes a quote rather than the URL (at most
# two such characters are given back to the text, so no secret can hide there)
_TRAILING = ".,;:!?'\")]}>"
_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
# lower-case DNS names with an alphabetic top-level label: a token written where
# a host would be (slack://T0/B0/X0, tgram://123:ABC) is not one
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9\-]{{1,59}})\.?")
_QUERY_KEY = re.compile(r"[+\-:]?[A-Za-z][A-Za-z0-9_.\-]{0,39}")
_PORT = re.compile(r"[0-9]{1,5}")
# object-storage schemes of log sources (fsspec/object_store names; none is an Apprise
# scheme): their bucket and path stay readable, user, password and query values do not
# (a SAS token or a presigned signature lives in the query)
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,254}")
STORAGE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "file"})


def mask_url(url: str) -> str:
    """``url`` with user, password, path segments, query values and fragment masked.

    The scheme, a host name or IP address, a numeric port and query keys stay, so a
    person can tell which receiver it is. Text that is not ``scheme://…`` becomes
    ``***`` entirely. Never raises."""
    m = _SCHEME.match(url)
    if m is None:
        return MASK if url.strip() else url
    scheme, rest = m.group(1), m.group(2)
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    out = [f"{scheme}://", _mask_netloc(netloc, scheme)]
    if slash and scheme.lower() in STORAGE_SCHEMES:
        out.append("/" + path)  # a bucket and a key name a log file, they grant nothing
    elif slash:
        out.append("/" + "/".join(MASK if seg else "" for seg in path.split("/")))
    if qmark:
        out.append("?" + "&".join(_mask_query_item(item) for item in query.split("&")))
    if hash_:
        out.append("#" + (MASK if fragment else ""))
    return "".join(out)


def _mask_netloc(netloc: str, scheme: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    masked_user = ""
    if at:
        masked_user = (MASK if userinfo else "") + (":" + MASK if ":" in userinfo else "") + "@"
    if hostport.startswith("["):  # [IPv6]:port
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else None
        host_ok = _is_ip(host) and (tail == "" or tail.startswith(":"))
        host_text = f"[{host}]" if host_ok else MASK
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_text if colon else None
        if scheme.lower() in STORAGE_SCHEMES:
            host_ok = _BUCKET.fullmatch(host) is not None
        else:
            host_ok = _is_host(host) and _scheme_has_host(scheme)
        host_text = host if host_ok else (MASK if host else "")
    if port is not None:
        host_text += ":" + (port if _PORT.fullmatch(port) else MASK)
    return masked_user + host_text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_host(host: str) -> bool:
    return host == "localhost" or _HOSTNAME.fullmatch(host) is not None or _is_ip(host)


def _mask_query_item(item: str) -> str:
    if not item:
        return item
    key, eq, value = item.partition("=")
    if not eq:
        return MASK  # a bare value, e.g. ?TOKEN
    shown = unquote(key)
    key_text = shown if _QUERY_KEY.fullmatch(shown) else MASK
    return f"{key_text}={MASK if value else ''}"


# Apprise schemes none of whose URL templates has a {host}: whatever stands in the
# host position of these is a token (slack, discord, tgram, pagerduty, ...)
_NO_HOST: frozenset[str] | None = None
_LOADING = False


def _scheme_has_host(scheme: str) -> bool:
    global _NO_HOST, _LOADING
    if _NO_HOST is None:
        if _LOADING:  # Apprise logged while we asked it: the host-name rule alone
            return True
        _LOADING = True
        try:
            _NO_HOST = _schemes_without_host()
        finally:
            _LOADING = False
    return scheme.lower() not in _NO_HOST


def _schemes_without_host() -> frozenset[str]:
    try:
        import apprise

        schemas = apprise.Apprise().details(show_disabled=True).get("schemas", [])
    except Exception:  # no Apprise: the host-name rule alone decides
        return frozenset()
    out: set[str] = set()
    for plugin in schemas:
        templates = plugin.get("details", {}).get("templates") or ()
        if any("{host}" in t for t in templates):
            continue
        for key in ("protocols", "secure_protocols"):
            value = plugin.get(key) or ()
            out.update(p.lower() for p in ([value] if isinstance(value, str) else value) if p)
    return frozenset(out)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every ``scheme://…`` in it masked as :func:`mask_url` does, and
    every known secret of four or more characters (also percent-encoded) replaced
    by ``***``. For log lines, exception and problem messages."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(_mask_match, text)
    forms: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            forms.update({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= 4:
            text = text.replace(form, MASK)
    return text


def _mask_match(m: re.Match[str]) -> str:
    found = m.group(0)
    keep = len(found)
    while keep > len(found) - 2 and found[keep - 1] in _TRAILING:
        keep -= 1
    return mask_url(found[:keep]) + found[keep:]


class SecretFilter(logging.Filter):
    """Masks every record's final message (and its traceback) with :func:`mask_text`;
    Apprise's own records are replaced by a line in our words.

    Install it on handlers, not on a logger: a logger's filters see only records
    logged to that very logger, a handler's see those of every child logger and of
    libraries such as Apprise. ``secrets`` may be extended after installation."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "apprise" or record.name.startswith("apprise."):
            return self._apprise(record)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw text, masked
            message = f"{record.msg} {record.args}"
        record.msg = mask_text(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info, self.secrets)
        return True

    @staticmethod
    def _apprise(record: logging.LogRecord) -> bool:
        """Apprise's messages quote tokens bare, outside any URL ("An invalid Flock
        Access Key (TOKEN) was specified"), where no masker can tell them from words:
        only their level and the plugin's module are shown, in our words."""
        if record.levelno < logging.WARNING:
            return False
        record.msg = (
            f"Apprise ({record.module}) reported a problem; its text is not shown, "
            "as it may quote a token"
        )
        record.args = None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def install_secret_filter(
    logger: logging.Logger | None = None, secrets: Iterable[str] = ()
) -> SecretFilter:
    """Add one :class:`SecretFilter` to every handler of ``logger`` (the root logger
    by default) and return it, so secrets learnt later can be added to it."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        existing = next((f for f in handler.filters if isinstance(f, SecretFilter)), None)
        if existing is not None:
            existing.secrets.update(secrets)
            return existing
    flt = SecretFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(flt)
    return flt
