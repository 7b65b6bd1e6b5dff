"""The reference profile cache: profiles kept on disk and reused across runs and
daemon ticks.

A profile is keyed by the reference files' fingerprint (path, size, mtime) plus
everything that shapes it (columns, types, bins, filter, window), and stored as
``<key>.npz`` in the cache folder; profiles unused for ``KEEP_DAYS`` days are
deleted. References on object storage (no cheap fingerprint) get no slot and are
profiled on every run. The monitor uses :func:`slot` and the slot's ``load`` and
``save``; the rest is how a profile is laid out in its file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rulesengine.monitors.drift.profiles import (
    GRID_CELLS,
    GRID_TAIL,
    SAMPLE_CAP,
    ColumnProfile,
    Profile,
)

PROFILE_VERSION = 4
KEEP_DAYS = 30  # profiles unused this long are deleted when a new one is saved


@dataclass(frozen=True)
class Slot:
    """Where the profile of one reference is kept."""

    path: Path

    def load(self, columns: set[str]) -> Profile | None:
        """The kept profile if there is one with exactly these columns, else None
        (then the reference is profiled again)."""
        if not self.path.exists():
            return None
        profile = read(self.path)
        return profile if profile is not None and set(profile.columns) == columns else None

    def save(self, profile: Profile) -> None:
        """Keep ``profile``, unless it has no rows (nothing worth reusing)."""
        if profile.rows > 0:
            write(profile, self.path)


def slot(folder: Path, files: list[str] | None, shape: Mapping[str, Any]) -> Slot | None:
    """The slot of the reference read from ``files`` (None: not local, no slot),
    with ``shape`` the settings its profile depends on."""
    fp = fingerprint(files)
    if fp is None:
        return None
    return Slot(folder / f"{cache_key({'files': fp, **shape})}.npz")


def fingerprint(files: list[str] | None) -> list[Any] | None:
    if files is None:
        return None
    out = []
    for f in files:
        st = os.stat(f)
        out.append([f, st.st_size, st.st_mtime_ns])
    return out


def cache_key(parts: Mapping[str, Any]) -> str:
    text = json.dumps(
        {"v": PROFILE_VERSION, "cap": SAMPLE_CAP, "grid": [GRID_CELLS, GRID_TAIL], **parts},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_ARRAYS = (
    "sample",
    "counts",
    "edges",
    "bin_counts",
    "fine_edges",
    "fine_counts",
    "fine_sums",
    "tail_low",
    "tail_high",
)
_EAGER = tuple(a for a in _ARRAYS if a != "sample")  # read on load, all in one array


def write(profile: Profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"rows": profile.rows, "columns": {}}
    arrays: dict[str, np.ndarray] = {}
    eager: list[np.ndarray] = []  # every small array, back to back: one read to load
    at = 0
    for i, (name, c) in enumerate(profile.columns.items()):
        meta["columns"][name] = {
            "i": i,
            "kind": c.kind,
            "n": c.n,
            "nulls": c.nulls,
            "unique": c.unique,
            "exact": c.exact,
            "categories": c.categories,
            "minimum": c.minimum,
            "maximum": c.maximum,
            "std": c.std,
            "grid_lo": c.grid_lo,
            "grid_scale": c.grid_scale,
            "sum_origin": c.sum_origin,
            "spans": {},
        }
        arrays[f"{i}_sample"] = np.asarray(c.sample, dtype=float)
        for a in _EAGER:
            values = np.asarray(getattr(c, a), dtype=float)
            meta["columns"][name]["spans"][a] = [at, at + values.size]
            at += values.size
            eager.append(values)
    arrays["eager"] = np.concatenate(eager) if eager else np.empty(0)
    arrays["meta"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    prune(path.parent)


def prune(folder: Path, now: float | None = None) -> int:
    """Delete cached profiles not used for ``KEEP_DAYS`` days; returns how many."""
    limit = (now or time.time()) - KEEP_DAYS * 86400
    gone = 0
    for f in folder.glob("*.npz"):
        try:
            if f.stat().st_mtime < limit:
                f.unlink()
                gone += 1
        except OSError:
            continue
    return gone


def read(path: Path) -> Profile | None:
    """The cached profile, or None if absent or unreadable (then it is rebuilt).
    A hit refreshes the file's mtime, which is what :func:`prune` goes by."""
    try:
        os.utime(path)
    except OSError:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            eager = data["eager"]
            columns = {}
            for name, m in meta["columns"].items():
                i = m.pop("i")
                arrays = {a: eager[lo:hi] for a, (lo, hi) in m.pop("spans").items()}
                columns[name] = ColumnProfile(
                    name=name, **m, **arrays, sample_ref=(str(path), f"{i}_sample")
                )
            return Profile(meta["rows"], columns)
    except (OSError, ValueError, KeyError, TypeError):
        return None
