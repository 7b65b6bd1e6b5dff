"""Find config files, load each through every stage, and report all problems.

Stages per file: safe YAML → ``${VAR}`` substitution → JSON Schema → meaning.
Typed objects are built only when no file has a problem.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rulesengine.errors import Problem, ProblemList, SpecError
from rulesengine.spec.build import build_engine, build_model
from rulesengine.spec.envsubst import substitute
from rulesengine.spec.model import Config, EngineSpec, Locator
from rulesengine.spec.schema import validate_structure
from rulesengine.spec.semantic import check_model
from rulesengine.spec.semantic_engine import check_engine
from rulesengine.spec.yamlsrc import load_yaml

ENGINE_NAMES = ("engine.yaml", "engine.yml")
YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 4 * 1024 * 1024  # a spec file; real ones are a few KiB (docs/spec.md, Limits)


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory if inside."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


@dataclass
class LoadedFile:
    path: Path
    kind: str  # model | engine
    data: Any
    problems: ProblemList
    secrets: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems.problems and self.data is not None


@dataclass
class LoadReport:
    """The outcome of loading: the config if everything is valid, and every problem."""

    config: Config | None
    problems: list[Problem]
    files: list[str]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors


def read_file(
    path: Path, kind: str, env: Mapping[str, str], root: Path | None = None
) -> LoadedFile:
    problems = ProblemList(display(path))
    loaded = LoadedFile(path, kind, None, problems)
    text = _read_text(path, problems)
    if text is None:
        return loaded
    parsed = load_yaml(text, problems.file)
    problems.positions.update(parsed.problems.positions)
    problems.key_positions.update(parsed.problems.key_positions)
    problems.problems.extend(parsed.problems.problems)
    if parsed.data is None:
        if not problems.problems:  # a document that is just null
            problems.add(
                (),
                "the file holds no settings: expected a mapping with version: and the other keys",
            )
        return loaded
    secret_paths: set[tuple[Any, ...]] = set()
    unresolved: set[tuple[Any, ...]] = set()
    data = substitute(
        parsed.data,
        env,
        problems,
        parsed.plain,
        secret_paths,
        skip=_is_template if kind == "engine" else lambda path: False,
        unresolved=unresolved,
    )
    loaded.secrets = {str(v) for k, v in env.items() if f"${{{k}" in text and v}
    before = len(problems.problems)
    oversize: list[tuple[Any, ...]] = []
    validate_structure(data, kind, problems, secret_paths, oversize)
    # a list or map beyond its bound is reported as such; its meaning (references,
    # did-you-mean hints: a cost of its size squared) is checked once it fits
    if not oversize and kind == "model":
        check_model(data, problems)
    elif not oversize:
        check_engine(data, problems, root or path.parent, loaded.secrets)
    # a missing variable or a refused value was reported already: its stand-in (the
    # raw ${VAR} text, null) is no value to complain about
    quiet = unresolved | parsed.refused
    later = problems.problems[before:]
    del problems.problems[before:]
    seen: set[tuple[int, int, tuple[Any, ...], str]] = set()
    for p in later:
        if _under(p.path, quiet):
            continue
        key = (p.line, p.col, p.path, p.message)
        if key in seen:  # one message once
            continue
        seen.add(key)
        own = _env_value(data, p.path, secret_paths)
        problems.problems.append(_redact(p, loaded.secrets, own))
    loaded.data = data
    return loaded


def _read_text(path: Path, problems: ProblemList) -> str | None:
    """The file's text, or None with a problem: not UTF-8, unreadable, or larger than
    :data:`MAX_FILE_BYTES` (read no further than that, whatever the file is)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block or never end
            problems.add((), "not a regular file: a spec is a YAML file")
            return None
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.add((), f"cannot read the file: {exc.strerror or exc}")
        return None
    if len(raw) > MAX_FILE_BYTES:
        problems.add(
            (),
            f"the file is too large (more than {MAX_FILE_BYTES // (1024 * 1024)} MiB): "
            "a spec is a few KiB; split it, or move data out of it",
        )
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add((), f"not UTF-8 text (byte {exc.start}): save the file as UTF-8")
        return None


def _under(path: tuple[Any, ...], quiet: set[tuple[Any, ...]]) -> bool:
    """Whether ``path`` or one of its prefixes is in ``quiet``: one set lookup per
    prefix, so the cost is the path's length, not the size of ``quiet``."""
    return any(path[:i] in quiet for i in range(len(path) + 1))


def _env_value(data: Any, path: tuple[Any, ...], secret_paths: set[tuple[Any, ...]]) -> str | None:
    """The text of the value at ``path`` if it came from the environment."""
    if path not in secret_paths:
        return None
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return None if node is None else str(node)


def _redact(p: Problem, secrets: set[str], own: str | None = None) -> Problem:
    """Never echo a value that came from the environment: the problem's own value
    when it was substituted (whatever its length), and any long substituted text."""
    message = p.message
    if own:
        message = re.sub(rf"(?<![\w.]){re.escape(own)}(?![\w.])", "***", message)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4 and not secret.isdigit() and secret in message:
            message = message.replace(secret, "***")
    if message == p.message:
        return p
    return Problem(p.file, p.line, p.col, p.path, message, p.severity)


def _is_template(path: tuple[Any, ...]) -> bool:
    """Notification templates keep their ``${field}``s for the template engine."""
    return (len(path) >= 2 and path[0] == "templates") or (
        len(path) == 3 and path[0] == "receivers" and path[2] in ("title", "body")
    )


def engine_near(path: Path) -> Path | None:
    """engine.yaml in a model file's directory or its parent."""
    for folder in (path.parent, path.parent.parent):
        for name in ENGINE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def _model_globs(engine: Path) -> list[str]:
    """engine.yaml's model globs, read without validating the file (that happens
    once, in :func:`load_report`)."""
    text = _read_text(engine, ProblemList(str(engine)))  # its problems are reported later
    data = load_yaml(text, str(engine)).data if text is not None else None
    globs = data.get("models") if isinstance(data, dict) else None
    if isinstance(globs, list) and all(isinstance(g, str) for g in globs):
        return globs
    return list(EngineSpec(None, ".").models)


def discover(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path], list[Problem]]:
    """(engine files, model files, problems) for the paths given by the user."""
    engines: list[Path] = []
    models: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            engine = next((p / n for n in ENGINE_NAMES if (p / n).is_file()), None)
            if engine:
                engines.append(engine)
                found: list[Path] = []
                for pattern in _model_globs(engine):
                    found.extend(sorted(q for q in p.glob(pattern) if q.is_file()))
            else:
                found = sorted(
                    q
                    for q in p.rglob("*")
                    if q.suffix in YAML_SUFFIXES and q.name not in ENGINE_NAMES and q.is_file()
                )
            if not found:
                problems.append(
                    Problem(
                        display(p),
                        1,
                        1,
                        (),
                        "no model files found here (expected models/*.yaml next to engine.yaml)",
                    )
                )
            models.extend(found)
        elif p.name in ENGINE_NAMES:
            engines.append(p)
            for pattern in _model_globs(p):
                models.extend(sorted(q for q in p.parent.glob(pattern) if q.is_file()))
        else:
            models.append(p)
            near = engine_near(p)
            if near:
                engines.append(near)
    dedup = lambda xs: list(dict.fromkeys(x.resolve() for x in xs))  # noqa: E731
    return dedup(engines), dedup(models), problems


def load_report(paths: Sequence[str | Path], env: Mapping[str, str] | None = None) -> LoadReport:
    """Load and check everything under ``paths``; never raises for bad input."""
    env = os.environ if env is None else env
    engine_paths, model_paths, problems = discover(paths)
    if len(engine_paths) > 1:
        listing = ", ".join(display(e) for e in engine_paths)
        problems.append(
            Problem(
                display(engine_paths[1]),
                1,
                1,
                (),
                f"more than one engine config given ({listing}): run one config "
                "directory at a time (validate takes several)",
            )
        )
    engine_file = read_file(engine_paths[0], "engine", env) if engine_paths else None
    root = engine_paths[0].parent if engine_paths else None
    files = [engine_file] if engine_file else []
    for mp in model_paths:
        files.append(read_file(mp, "model", env, root))
    _check_model_names(files)
    for f in files:
        problems.extend(f.problems.problems)
    names = [display(f.path) for f in files]
    if problems or not files:
        return LoadReport(None, sorted(problems, key=Problem.sort_key), names)
    engine = (
        build_engine(engine_file.data, file=display(engine_file.path), root=root)
        if engine_file and root
        else EngineSpec(None, str(Path.cwd()))
    )
    models = []
    for f in files:
        if f.kind != "model":
            continue
        model_root = root or f.path.parent
        locator = Locator(
            display(f.path), dict(f.problems.positions), dict(f.problems.key_positions)
        )
        models.append(
            build_model(
                f.data, file=display(f.path), root=model_root, base=engine.defaults, locator=locator
            )
        )
    # every model the engine's globs match: an engine file was found, and no path was
    # a single model file
    complete = bool(engine_paths) and all(
        Path(p).is_dir() or Path(p).name in ENGINE_NAMES for p in paths
    )
    return LoadReport(Config(engine, tuple(models), tuple(names), complete), [], names)


def config_root_of(path: str | Path) -> Path | None:
    """The engine file that governs ``path`` (resolved), or None: a directory's own
    engine file, an engine file itself, or a model file's :func:`engine_near`."""
    p = Path(path)
    if p.is_dir():
        found = next((p / n for n in ENGINE_NAMES if (p / n).is_file()), None)
    elif p.name in ENGINE_NAMES:
        found = p
    else:
        found = engine_near(p)
    return found.resolve() if found else None


def group_by_root(paths: Sequence[str | Path]) -> list[list[str | Path]]:
    """``paths`` grouped by the engine file that governs each (first-seen order);
    the paths no engine file governs form one group of their own."""
    groups: dict[Path | None, list[str | Path]] = {}
    for p in paths:
        groups.setdefault(config_root_of(p), []).append(p)
    return list(groups.values())


def load(paths: Sequence[str | Path], env: Mapping[str, str] | None = None) -> Config:
    """Load a config; raise :class:`SpecError` with every problem if it is invalid.

    >>> config = load(["configs/"])            # doctest: +SKIP
    >>> [m.model for m in config.models]       # doctest: +SKIP
    ['fraud-detector', ...]
    """
    report = load_report(paths, env)
    if report.config is None:
        raise SpecError(report.problems)
    return report.config


def _check_model_names(files: list[LoadedFile]) -> None:
    seen: dict[str, tuple[LoadedFile, Any]] = {}
    for f in files:
        if f.kind != "model" or not isinstance(f.data, dict):
            continue
        name = f.data.get("model")
        if not isinstance(name, str):
            continue
        if name in seen:
            other, pos = seen[name]
            f.problems.add(
                ("model",),
                f"model '{name}' is already defined in "
                f"{other.problems.file}:{pos.line}:{pos.col}; model names are "
                "unique across files",
            )
        else:
            seen[name] = (f, f.problems.pos_of(("model",)))
