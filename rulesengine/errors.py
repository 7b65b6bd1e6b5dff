"""The error tree and source positions.

Every user-facing failure is a :class:`RulesEngineError`. Config problems are
collected as :class:`Problem` values (file, line, column, key path, message) so a
file reports all of its mistakes at once; the CLI renders them and picks the exit
code in one place.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Pos:
    """A 1-based line and column in a file."""

    line: int
    col: int


def format_path(path: KeyPath) -> str:
    """Render a key path the way the user reads their file: ``checks[2].type``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class Problem:
    """One positioned config error."""

    file: str
    line: int
    col: int
    path: KeyPath
    message: str
    severity: str = "error"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.col, self.message)

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        key = format_path(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": format_path(self.path),
            "message": self.message,
            "severity": self.severity,
        }


class RulesEngineError(Exception):
    """Root of every error rulesengine raises on purpose."""

    exit_code = 1


class SpecError(RulesEngineError):
    """The configuration is invalid. Carries every problem found, sorted."""

    exit_code = 3

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(p.render() for p in self.problems))


class DataError(RulesEngineError):
    """A log file is missing, unreadable or does not fit the spec."""

    exit_code = 4


class StoreError(RulesEngineError):
    """The state file is corrupt, unreadable, or from a newer rulesengine.

    The message names the file and says what to do (move it aside, or restore it
    from a backup). ``run`` still prints its results before exiting with this code.
    """

    exit_code = 5


class DeliveryError(RulesEngineError):
    """A notification could not be delivered."""

    exit_code = 1


def position(
    positions: Mapping[KeyPath, Pos],
    key_positions: Mapping[KeyPath, Pos],
    path: KeyPath,
    *,
    key: bool = False,
) -> Pos:
    """Position of the value at ``path`` (or of its key), falling back to the
    nearest enclosing node that has one."""
    probe = tuple(path)
    while True:
        if key and probe in key_positions:
            return key_positions[probe]
        if probe in positions:
            return positions[probe]
        if not probe:
            return Pos(1, 1)
        probe = probe[:-1]


@dataclass
class ProblemList:
    """Collects problems for one file, positioned through a path → position map."""

    file: str
    positions: dict[KeyPath, Pos] = field(default_factory=dict)
    key_positions: dict[KeyPath, Pos] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def pos_of(self, path: KeyPath, *, key: bool = False) -> Pos:
        return position(self.positions, self.key_positions, path, key=key)

    def add(self, path: KeyPath, message: str, *, key: bool = False) -> None:
        pos = self.pos_of(path, key=key)
        self.problems.append(Problem(self.file, pos.line, pos.col, tuple(path), message))


def did_you_mean(word: str, candidates: Sequence[str] | Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    pool = [str(c) for c in candidates]
    matches = difflib.get_close_matches(str(word), pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if str(word).lower() in lowered:
            matches = [lowered[str(word).lower()]]
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def one_of(candidates: Iterable[str], limit: int = 12) -> str:
    """``'a', 'b' or 'c'`` for messages listing what is allowed."""
    items = [f"'{c}'" for c in candidates]
    if len(items) > limit:
        items = [*items[:limit], "…"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when empty): the
    one place that cuts a library's multi-line error down for a message of ours."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
