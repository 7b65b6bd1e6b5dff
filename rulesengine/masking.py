"""Secrets never leave: one masker for every output path.

Apprise URLs carry tokens and passwords, and values substituted from ``${ENV}``
are secrets too. Every path that prints, logs or stores text about a receiver
goes through this module.
"""

from __future__ import annotations

import re

_HEADER = re.compile(
    r"([?&]\+?[^=&]*(?:auth|token|key|secret|pass|signature)[^=&]*=)[^&]*", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """The URL as Apprise prints it in privacy mode, with custom headers and
    secret-looking query values redacted too (Apprise leaves ``+Header=`` clear)."""
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url)
        text = plugin.url(privacy=True) if plugin is not None else url.split("://")[0] + "://…"
    except Exception:
        text = url.split("://")[0] + "://…"
    # every custom header (+Name=value, printed by Apprise as %2BName=value)
    text = re.sub(r"([?&](?:\+|%2B)[^=&]+=)[^&]*", r"\1***", text, flags=re.IGNORECASE)
    return _HEADER.sub(r"\1***", text)
