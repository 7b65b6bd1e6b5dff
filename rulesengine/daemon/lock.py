"""One daemon per state file: an OS lock (``flock``) on a file beside it.

The lock is held for the life of the process and released by the kernel when
the process ends, however it ends (kill -9 included), so a stale lock never
blocks a restart. ``run --notify`` does not take it: it is already safe beside a
daemon (outbox leases and store transactions).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from rulesengine.errors import RulesEngineError

LOCK_SUFFIX = ".lock"


class AlreadyRunning(RulesEngineError):
    """Another daemon holds the state file's lock."""

    exit_code = 6


def lock_path(state: str | Path) -> Path:
    """The lock file of a state file: ``state.db`` -> ``state.db.lock``."""
    state = Path(state)
    return state.with_name(state.name + LOCK_SUFFIX)


def acquire(state: str | Path) -> IO[str]:
    """Take the lock for ``state`` without waiting and return the open lock file;
    keep it open for as long as the lock must be held. Raises
    :class:`AlreadyRunning` when another process holds it."""
    path = lock_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(
            f"another rulesengine daemon is already running on state file {state} "
            f"(it holds the lock {path}); stop it first, or point `state:` in "
            "engine.yaml at another file"
        ) from None
    # the holder's pid, for people looking at the file; the lock itself is the flock
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
