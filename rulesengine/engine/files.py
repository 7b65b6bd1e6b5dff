"""Which local files a source covers: our own glob expansion (``**`` at any depth,
hidden names as :mod:`glob` treats them, each real file once, no symlink loop), and
files shown as the user would type them."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from rulesengine.spec.loader import display
from rulesengine.spec.model import SourceSpec


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def display_path(path: str) -> str:
    """A file as the user would type it: relative to the working directory when
    inside it (``logs/a.parquet``), an object-storage URL as it is."""
    if "://" in path and not path.startswith("file://"):
        return path
    return display(Path(path.removeprefix("file://")))


def _dir_names(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:  # unreadable or vanished: glob skips it too
        return []


def _visible(name: str, segment: str) -> bool:
    """Like glob: a wildcard matches a name starting with a dot only if it does too."""
    return not name.startswith(".") or segment.startswith(".")


def _walk(
    folder: str, segments: list[str], parents: frozenset[tuple[int, int, int]], out: list[str]
) -> None:
    """Append the files below ``folder`` matching ``segments`` (``**`` = any depth).
    Symlinks are followed, except into a folder that is already being walked with
    the same rest of the pattern (a link back to a parent: a loop). A folder reached
    twice otherwise is walked twice; :func:`_once` keeps each file once."""
    try:
        st = os.stat(folder)
    except OSError:
        return
    key = (st.st_dev, st.st_ino, len(segments))
    if key in parents:
        return
    parents = parents | {key}
    segment, rest = segments[0], segments[1:]
    if segment == "**":
        _walk(folder, rest or ["*"], parents, out)
        for name in _dir_names(folder):
            sub = os.path.join(folder, name)
            if _visible(name, "") and os.path.isdir(sub):
                _walk(sub, segments, parents, out)
        return
    if _has_glob(segment):
        names = [n for n in _dir_names(folder) if _visible(n, segment)]
        names = [n for n in names if fnmatch.fnmatchcase(n, segment)]
    else:
        names = [segment]
    for name in names:
        path = os.path.join(folder, name)
        if rest:
            if os.path.isdir(path):
                _walk(path, rest, parents, out)
        elif os.path.isfile(path):  # follows a file symlink; a FIFO or device is skipped
            out.append(path)


def _once(paths: list[str]) -> list[str]:
    """Each real file once (by device and inode), sorted. Of the paths to one file
    the one without symlinks wins, then the shortest: its folders are the ones a
    hive partition is read from."""
    best: dict[tuple[int, int], tuple[bool, int, str]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        rank = (os.path.realpath(path) != os.path.abspath(path), path.count(os.sep), path)
        key = (st.st_dev, st.st_ino)
        if key not in best or rank < best[key]:
            best[key] = rank
    return sorted(rank[2] for rank in best.values())


def expand(pattern: str) -> list[str]:
    """The local files a glob (or a directory: every file below it) matches,
    each real file once, sorted. ``**`` matches any depth; hidden names match only
    a pattern that starts with a dot, as in :mod:`glob`."""
    if not _has_glob(pattern):
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**", "*")
        else:
            return [pattern] if os.path.isfile(pattern) else []
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not _has_glob(parts[fixed]):
        fixed += 1
    base = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else ".")
    found: list[str] = []
    _walk(base, parts[fixed:], frozenset(), found)
    return _once(found)


def local_files(source: SourceSpec) -> list[str] | None:
    """The local files a source covers (see :func:`expand`); None for object
    storage (Polars expands remote globs itself)."""
    if source.is_remote:
        return None
    return expand(source.path.removeprefix("file://"))
