"""Meaning checks for ``engine.yaml``: receivers, routes, intervals, templates."""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rulesengine.durations import parse_duration
from rulesengine.errors import KeyPath, ProblemList, did_you_mean
from rulesengine.masking import mask_text, mask_url
from rulesengine.spec.semantic import (
    _dict,
    _list,
    _str,
    check_cadence,
    check_ref,
    check_timezone,
)

WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]  # as AM
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


@contextmanager
def _apprise_quiet() -> Iterator[None]:
    """Apprise logs why a URL is invalid, quoting its tokens: nothing of that may
    reach a handler while we validate (its messages are never shown, not even masked)."""
    log = logging.getLogger("apprise")
    was = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = was


def apprise_problem(url: str, secrets: Iterable[str] = ()) -> str | None:
    """Why Apprise cannot use ``url``, or None: in our own words, with the URL masked.
    Apprise's own messages are never used, as they may quote a token."""
    scheme = url.split("://", 1)[0].strip() if "://" in url else ""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9+.\-]{0,31}", scheme):  # no scheme to name
        return "not an Apprise URL: expected scheme://…, e.g. slack://…, mailto://…, json://…"
    if not _known_scheme(scheme) and scheme.lower() in _DISABLED:
        return (
            f"Apprise cannot send '{scheme}://' notifications on this machine "
            "(the library or desktop service they need is missing)"
        )
    if not _known_scheme(scheme):
        return f"unknown Apprise scheme '{scheme}://'{did_you_mean(scheme, _schemes())}"
    import apprise

    with _apprise_quiet():
        try:
            plugin = apprise.Apprise.instantiate(url)
        except Exception:  # a plugin bug is an invalid URL too; its text is not shown
            plugin = None
    if plugin is not None:
        return None
    hint = _template(scheme)
    return (
        f"not a valid Apprise URL for scheme '{scheme}': {mask_text(mask_url(url), secrets)} "
        "has a missing or malformed token, host or target"
        + (f"; expected a form like {hint}" if hint else "")
    )


_SCHEMES: list[str] = []
_TEMPLATES: dict[str, str] = {}
_DISABLED: set[str] = set()  # known to Apprise, but a library they need is missing


def _details() -> None:
    import apprise

    with _apprise_quiet():
        schemas = apprise.Apprise().details(show_disabled=True).get("schemas", [])
    for plugin in schemas:
        templates = plugin.get("details", {}).get("templates") or ()
        for key in ("protocols", "secure_protocols"):
            value = plugin.get(key) or []
            for proto in [value] if isinstance(value, str) else value:
                if proto and plugin.get("enabled", True) is False:
                    _DISABLED.add(proto.lower())
                elif proto:
                    _SCHEMES.append(proto)
                    if templates:
                        _TEMPLATES.setdefault(proto.lower(), templates[0])


def _schemes() -> list[str]:
    if not _SCHEMES:
        _details()
    return _SCHEMES


def _template(scheme: str) -> str | None:
    """Apprise's first URL template for ``scheme``: static text, never user data."""
    _schemes()
    template = _TEMPLATES.get(scheme.lower())
    return template.replace("{schema}", scheme.lower()) if template else None


def _known_scheme(scheme: str) -> bool:
    return scheme.lower() in _schemes()


def check_engine(data: Any, problems: ProblemList, root: Path, secrets: Iterable[str] = ()) -> None:
    """Add every semantic problem of engine.yaml's raw data."""
    if not isinstance(data, dict):
        return
    from rulesengine.spec.semantic import check_finite

    check_finite(problems, data)
    secrets = list(secrets)
    receivers = _dict(data, "receivers")
    for name, receiver in receivers.items():
        path: KeyPath = ("receivers", name)
        urls = receiver if isinstance(receiver, list) else _list(receiver, "urls")
        upath = path if isinstance(receiver, list) else (*path, "urls")
        for i, url in enumerate(urls):
            if isinstance(url, str) and "${" not in url:
                why = apprise_problem(url, secrets)
                if why:
                    problems.add((*upath, i), why)
        config = _str(receiver, "config")
        if config is not None and "://" not in config and not _is_file(root / config):
            problems.add(
                (*path, "config"),
                f"Apprise config file '{mask_text(config, secrets)}' not found "
                f"(relative to {root})",
            )
        if isinstance(receiver, dict):
            for key in ("title", "body"):
                _check_template(problems, receiver.get(key), (*path, key))
    intervals = _dict(data, "time_intervals")
    for name, spans in intervals.items():
        for i, span in enumerate(spans if isinstance(spans, list) else []):
            _check_interval(problems, span, ("time_intervals", name, i))
    _check_grouping(problems, data.get("grouping"), ("grouping",))
    for i, route in enumerate(_list(data, "routes")):
        _check_route(problems, route, ("routes", i), receivers, intervals)
    templates = _dict(data, "templates")
    for key, text in templates.items():
        _check_template(problems, text, ("templates", key))
    delivery = _dict(data, "delivery")
    for key, value in delivery.items():
        _positive(problems, value, ("delivery", key))
    defaults = _dict(data, "defaults")
    for key in ("every", "deadline"):
        _positive(problems, defaults.get(key), ("defaults", key))
    check_cadence(problems, defaults, ("defaults",))
    _positive(problems, _dict(data, "history").get("retention"), ("history", "retention"))
    _check_reports(problems, _list(data, "reports"), receivers)
    _check_executor(problems, data.get("executor"))
    listen = _str(_dict(data, "server"), "listen")
    if listen and re.match(r"^[^\s:]+:[0-9]{1,5}$", listen) and int(listen.rsplit(":")[1]) > 65535:
        problems.add(("server", "listen"), f"port must be at most 65535, got {listen}")


def _check_executor(problems: ProblemList, executor: Any) -> None:
    """A Dask executor names its scheduler; a local one has none to name."""
    if not isinstance(executor, dict):
        return
    kind, address = executor.get("type"), executor.get("address")
    if kind == "dask" and address is None:
        problems.add(
            ("executor",), "type dask needs address: the scheduler, e.g. tcp://127.0.0.1:8786"
        )
    if kind == "local" and address is not None:
        problems.add(
            ("executor", "address"), "a local executor has no address (did you mean type: dask?)"
        )
    port = re.fullmatch(r"(?:tcp|tls)://[^\s/]+:([0-9]{1,5})", address or "")
    if port and int(port.group(1)) > 65535:
        problems.add(("executor", "address"), f"port must be at most 65535, got {port.group(1)}")
    _positive(problems, executor.get("timeout"), ("executor", "timeout"))


def _check_reports(problems: ProblemList, reports: list[Any], receivers: dict[str, Any]) -> None:
    """Each report: one of every and cron, positive durations, a unique name,
    receivers that exist (with a did-you-mean)."""
    seen: set[str] = set()
    for i, report in enumerate(reports):
        if not isinstance(report, dict):
            continue
        path: KeyPath = ("reports", i)
        name = report.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.add((*path, "name"), f"report '{name}' is defined twice")
            seen.add(name)
        if "every" not in report and "cron" not in report:
            problems.add(path, "a report needs every or cron (when to send it)")
        for key in ("every", "since"):
            _positive(problems, report.get(key), (*path, key))
        check_cadence(problems, report, path)
        for j, receiver in enumerate(_list(report, "receivers")):
            check_ref(problems, receiver, receivers, (*path, "receivers", j), "receiver")


def _positive(problems: ProblemList, value: Any, path: KeyPath) -> None:
    if isinstance(value, str):
        try:
            if parse_duration(value).total_seconds() <= 0:
                problems.add(path, f"must be longer than zero, got '{value}'")
        except ValueError:
            pass


def _check_grouping(problems: ProblemList, grouping: Any, path: KeyPath) -> None:
    for key in ("wait", "interval", "repeat"):
        if isinstance(grouping, dict):
            value = grouping.get(key)
            if key != "wait":
                _positive(problems, value, (*path, key))


def _check_route(
    problems: ProblemList,
    route: Any,
    path: KeyPath,
    receivers: dict[str, Any],
    intervals: dict[str, Any],
) -> None:
    if not isinstance(route, dict):
        return
    for i, name in enumerate(_list(route, "receivers")):
        check_ref(problems, name, receivers, (*path, "receivers", i), "receiver")
    for i, name in enumerate(_list(route, "mute_time_intervals")):
        check_ref(problems, name, intervals, (*path, "mute_time_intervals", i), "time interval")
    for label, rx in _dict(route, "match_re").items():
        if isinstance(rx, str):
            try:
                re.compile(rx)
            except re.error as exc:
                problems.add((*path, "match_re", label), f"invalid regular expression: {exc}")
    _check_grouping(problems, route.get("grouping"), (*path, "grouping"))
    for i, child in enumerate(_list(route, "routes")):
        _check_route(problems, child, (*path, "routes", i), receivers, intervals)


def _check_interval(problems: ProblemList, span: Any, path: KeyPath) -> None:
    if not isinstance(span, dict):
        return
    for i, rng in enumerate(_list(span, "times")):
        start, end = _str(rng, "start"), _str(rng, "end")
        if start and end and start >= end:
            problems.add((*path, "times", i), f"start {start} must be before end {end}")
    for i, day in enumerate(_list(span, "weekdays")):
        if isinstance(day, str) and ":" in day:
            a, b = day.split(":", 1)
            if a in WEEKDAYS and b in WEEKDAYS and WEEKDAYS.index(a) > WEEKDAYS.index(b):
                problems.add(
                    (*path, "weekdays", i),
                    f"range '{day}' runs backwards: weeks start on sunday (as in "
                    f"Alertmanager); split it: [{_span(a, 'saturday')}, {_span('sunday', b)}]",
                )
    for i, month in enumerate(_list(span, "months")):
        if not isinstance(month, str | int) or isinstance(month, bool):
            continue
        for part in str(month).split(":"):
            if not (part in MONTHS or (part.isdigit() and 1 <= int(part) <= 12)):
                problems.add(
                    (*path, "months", i),
                    f"unknown month '{part}': use a name (january…december) or 1..12",
                )
    for i, day in enumerate(_list(span, "days_of_month")):
        if isinstance(day, str | int) and not isinstance(day, bool):
            for part in str(day).split(":"):
                if part.lstrip("-").isdigit() and not 1 <= abs(int(part)) <= 31:
                    problems.add(
                        (*path, "days_of_month", i),
                        f"day {part} is out of range (1..31, or -1..-31 from the month's end)",
                    )
    if "location" in span:
        check_timezone(problems, span.get("location"), (*path, "location"))


def _span(first: str, last: str) -> str:
    return f"'{first}'" if first == last else f"'{first}:{last}'"


def _check_template(problems: ProblemList, text: Any, path: KeyPath) -> None:
    if isinstance(text, str) and not string.Template(text).is_valid():
        problems.add(path, "invalid template: write $name or ${name}, and $$ for a literal $")


def _is_file(path: Path) -> bool:
    """A name the OS refuses (too long, say) has its own schema message; not ours."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return True
