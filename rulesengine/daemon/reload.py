"""Hot reload: a new config on SIGHUP, or when a config file changes.

The loop calls :meth:`Reloader.check` on every pass (at least every
``poll_seconds``, 2 s). It reloads when SIGHUP asked for it, or when the config
files' fingerprint changed: the engine file and model files the paths resolve
to (the engine's ``models:`` globs are read again, so an added or removed model
file counts), each with its size and modification time. Polling is used rather
than inotify: it needs no dependency, works on every filesystem (NFS, container
mounts) and costs a few ``stat`` calls per check.

The new config is validated first. If it is invalid, the running config stays,
every positioned error is logged, and ``rulesengine_config_last_reload_successful``
drops to 0 until a later reload succeeds. A valid config that moves the state
file is refused the same way (it needs a restart); a new ``server.listen`` is
logged and takes effect at the next start. Alert state and watermarks live in
the store keyed by model and monitor name, so they carry over by themselves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from rulesengine.daemon.logs import event
from rulesengine.daemon.metrics import DaemonMetrics
from rulesengine.daemon.status import Status
from rulesengine.errors import SpecError, first_line
from rulesengine.spec.loader import discover, load
from rulesengine.spec.model import Config

POLL_SECONDS = 2.0
Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Sequence[str]) -> Fingerprint:
    """(path, size, mtime in ns) of every config file ``paths`` resolve to."""
    engines, models, problems = discover(paths)
    out = []
    for p in [*engines, *models]:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(p), -1, -1))
    out += [(p.message, -1, -1) for p in problems]
    return tuple(sorted(out))


class Reloader:
    def __init__(
        self,
        paths: Sequence[str],
        status: Status,
        metrics: DaemonMetrics,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.paths = tuple(paths)
        self.status = status
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.requested = threading.Event()
        self._seen = fingerprint(self.paths)
        self._next_poll = time.monotonic() + poll_seconds
        self.succeeded()

    def request(self) -> None:
        """Ask for a reload at the next pass (SIGHUP's handler)."""
        self.requested.set()

    def check(self, current: Config) -> Config | None:
        """The new config if a reload is due and it is valid; None otherwise."""
        asked = self.requested.is_set()
        if not asked and time.monotonic() < self._next_poll:
            return None
        self._next_poll = time.monotonic() + self.poll_seconds
        seen = fingerprint(self.paths)
        if not asked and seen == self._seen:
            return None
        self.requested.clear()
        self._seen = seen
        why = "SIGHUP" if asked else "config file changed"
        try:
            config = load(self.paths)
        except SpecError as exc:
            for p in exc.problems:
                event(logging.ERROR, "config error", error=p.render())
            return self.failed(why, f"{len(exc.problems)} error(s) in the new config")
        except Exception as exc:  # unreadable files and the like
            return self.failed(why, first_line(exc))
        if config.engine.state != current.engine.state:
            return self.failed(
                why,
                f"state: moved from {current.engine.state} to {config.engine.state}; "
                "restart the daemon to use another state file",
            )
        if config.engine.listen != current.engine.listen:
            event(
                logging.WARNING,
                "server.listen changed; it takes effect when the daemon restarts",
                listen=config.engine.listen,
            )
        self.succeeded()
        event(logging.INFO, "config reloaded", reason=why, **_changes(current, config))
        return config

    def succeeded(self) -> None:
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        self.status.reload_ok, self.status.reload_error = True, None

    def failed(self, why: str, error: str) -> None:
        self.metrics.reload_ok.set(0)
        self.status.reload_ok, self.status.reload_error = False, error
        event(logging.ERROR, "reload failed; keeping the running config", reason=why, error=error)
        return None


def _changes(old: Config, new: Config) -> dict[str, list[str]]:
    before = {m.model: m for m in old.models}
    after = {m.model: m for m in new.models}
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(m for m in set(before) & set(after) if before[m] != after[m]),
    }
