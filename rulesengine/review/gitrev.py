"""The two sides of ``rulesengine diff``: config paths, or one path at git revisions.

A revision's version of a path is materialised with ``git archive`` into a
temporary directory (the user's work tree and index are never touched), loaded
from there, and then re-rooted at the real checkout: every path the built spec
holds (log sources, the state file, a receiver's Apprise config file) points
where the working tree's version of the same config would point, so both sides
read the same logs and compare equal where the YAML is equal.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rulesengine.errors import RulesEngineError, SpecError
from rulesengine.spec.model import Config, ModelSpec, ReceiverSpec

GIT_TIMEOUT = 60


class DiffUsageError(RulesEngineError):
    """A revision, path or range ``diff`` refuses (exit 2, as click's usage errors)."""

    exit_code = 2


class SideInvalid(RulesEngineError):
    """One side's config is invalid (exit 3); the message says which side."""

    exit_code = 3


@dataclass(frozen=True)
class Side:
    """One side of the diff: its name (BASE or HEAD), what it is, and its config."""

    name: str
    label: str  # "configs/" or "main:configs"
    config: Config


def split_revs(spec: str) -> tuple[str, str | None]:
    """``main`` → (main, None: the working tree); ``A..B`` → (A, B)."""
    if ".." not in spec:
        return spec, None
    base, _, head = spec.partition("..")
    if not base or not head or ".." in head:
        raise DiffUsageError(f"--git '{spec}': write REV (against the working tree) or A..B")
    return base, head


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise DiffUsageError("--git needs the git command, which was not found") from None


def repo_of(path: Path) -> tuple[Path, str]:
    """The top of the git work tree holding ``path`` and ``path`` relative to it."""
    where = path if path.is_dir() else path.parent
    out = _git(["rev-parse", "--show-toplevel"], where)
    if out.returncode != 0:
        raise DiffUsageError(f"{path} is not inside a git work tree (needed by --git)")
    top = Path(out.stdout.decode().strip()).resolve()
    rel = os.path.relpath(path.resolve(), top)
    if rel.startswith(".."):
        raise DiffUsageError(f"{path} is outside the git work tree {top}")
    return top, rel


def check_rev(top: Path, rev: str) -> None:
    """Exit 2 unless ``rev`` names a commit of the repository."""
    if rev.startswith("-"):
        raise DiffUsageError(f"'{rev}' is not a revision")
    out = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top)
    if out.returncode != 0:
        raise DiffUsageError(f"'{rev}' is not a revision of the repository at {top}")


def materialise(top: Path, rev: str, rel: str, into: Path) -> Path:
    """Extract ``rel`` as it is at ``rev`` under ``into``; return its path there."""
    out = _git(["archive", "--format=tar", rev, "--", rel], top)
    if out.returncode != 0:
        raise DiffUsageError(f"'{rel}' does not exist at revision '{rev}'")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / rel


def _moved(path: str | None, old: str, new: str) -> str | None:
    if path is None or not (path == old or path.startswith(old + os.sep)):
        return path
    return new + path[len(old) :]


def reroot(config: Config, old: Path, new: Path) -> Config:
    """``config`` with every path under ``old`` moved under ``new``."""
    o, n = str(old), str(new)

    def model(m: ModelSpec) -> ModelSpec:
        sources = {k: replace(s, path=_moved(s.path, o, n)) for k, s in m.sources.items()}
        return replace(m, sources=sources, root=_moved(m.root, o, n), file=m.file)

    def receiver(r: ReceiverSpec) -> ReceiverSpec:
        return replace(r, config=_moved(r.config, o, n))

    engine = replace(
        config.engine,
        root=_moved(config.engine.root, o, n),
        state=_moved(config.engine.state, o, n),
        receivers={k: receiver(r) for k, r in config.engine.receivers.items()},
    )
    return replace(config, engine=engine, models=tuple(model(m) for m in config.models))


def load_side(
    name: str, label: str, path: Path, env: Mapping[str, str], shown: tuple[str, str] | None = None
) -> Side:
    """Load one side; an invalid config raises :class:`SideInvalid` naming the side.
    ``shown`` = (temporary prefix, what to show instead) for file names in errors."""
    from rulesengine.spec.loader import load

    try:
        config = load([path], env)
    except SpecError as exc:
        text = str(exc)
        if shown is not None:
            tmp, instead = shown
            for form in {tmp, os.path.relpath(tmp)}:
                text = text.replace(form + os.sep, instead)
        raise SideInvalid(f"{name} ({label}) is an invalid config:\n{text}") from None
    return Side(name, label, config)


@contextmanager
def sides(
    paths: tuple[str, ...], git: str | None, env: Mapping[str, str]
) -> Iterator[tuple[Side, Side]]:
    """BASE and HEAD for the command line: two paths, or one path and ``--git``.
    Temporary copies of revisions live until the block ends."""
    if git is None:
        if len(paths) != 2:
            raise DiffUsageError("give BASE and HEAD (two config paths), or one PATH with --git")
        yield (
            load_side("BASE", paths[0], Path(paths[0]), env),
            load_side("HEAD", paths[1], Path(paths[1]), env),
        )
        return
    if len(paths) != 1:
        raise DiffUsageError("with --git, give one config PATH (compared at two revisions)")
    path = Path(paths[0])
    base_rev, head_rev = split_revs(git)
    top, rel = repo_of(path)
    for rev in (base_rev, head_rev):
        if rev is not None:
            check_rev(top, rev)
    with tempfile.TemporaryDirectory(prefix="rulesengine-diff-") as scratch:
        out = []
        for name, rev in (("BASE", base_rev), ("HEAD", head_rev)):
            if rev is None:
                out.append(load_side(name, f"{paths[0]} (working tree)", path, env))
                continue
            into = Path(scratch) / name
            into.mkdir()
            where = materialise(top, rev, rel, into)
            side = load_side(name, f"{rev}:{rel}", where, env, (str(into.resolve()), f"{rev}:"))
            out.append(replace(side, config=reroot(side.config, into.resolve(), top)))
        yield out[0], out[1]
