"""What the drift monitor decides per column from the reference profile: how the
column is compared (numeric or categorical), by which method, under which threshold.

Kind: the override's ``type``; else a method that only fits one kind decides; else
numeric dtypes with more than 5 distinct reference values are numeric and
everything else categorical (as Evidently). ``auto`` counts the reference's
non-null values, as Evidently does after dropping missing ones.

The choices are made once per prepared reference, from the whole reference: the
window's needs and every segment's scoring read the same ones. They are kept
beside the profile (:class:`Reference`), never in it, so a profile stays plain
data that the cache stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from rulesengine.monitors.drift.methods import auto_method
from rulesengine.monitors.drift.profiles import ColumnProfile, Profile, as_categorical
from rulesengine.monitors.drift.vocabulary import CATEGORICAL_ONLY, METHODS, NUMERIC_ONLY
from rulesengine.spec.model import ColumnOverride, DriftSpec


@dataclass(frozen=True)
class ColumnChoice:
    """One column as compared: its reference profile (a numeric one seen as
    categories when compared so), the method and the threshold."""

    profile: ColumnProfile
    method: str
    threshold: float


@dataclass(frozen=True)
class Choices:
    """Per column: how it is compared, or why it cannot be (``errors``), or why
    there is nothing to compare it with (``empty``: no reference values)."""

    columns: dict[str, ColumnChoice]
    errors: dict[str, str]
    empty: dict[str, str]


@dataclass(frozen=True)
class Reference:
    """What the drift monitor prepares: the reference profile, and the choices
    made from it on first use (the window's needs), once."""

    spec: DriftSpec
    profile: Profile

    @cached_property
    def choices(self) -> Choices:
        return decide(self.spec, self.profile)


def decide(m: DriftSpec, profile: Profile) -> Choices:
    """The choices for every column of the reference profile."""
    choices = Choices({}, {}, {})
    for name, col in profile.columns.items():
        if col.n == 0:
            choices.empty[name] = "the reference has no non-null values"
            continue
        choice = _choose(m, name, col)
        if isinstance(choice, str):
            choices.errors[name] = choice
        else:
            choices.columns[name] = choice
    return choices


def _choose(m: DriftSpec, name: str, col: ColumnProfile) -> ColumnChoice | str:
    """How one column is compared, or why it cannot be."""
    override = m.overrides.get(name)
    method = override.method if override and override.method else m.method
    kind = _kind(override, col, method)
    if kind == "categorical" and col.kind == "numeric":
        col = as_categorical(col)
    elif kind == "numeric" and col.kind == "categorical":
        return f"column '{name}' is not numeric: it cannot be treated as numeric"
    if method == "auto":
        # a column declared numeric stays numeric whatever its distinct values
        unique = max(col.unique, 6) if kind == "numeric" else col.unique
        method = auto_method(kind == "numeric", col.n, unique)
    if kind == "categorical" and method in NUMERIC_ONLY:
        return f"method '{method}' needs a numeric column; '{name}' is categorical"
    if kind == "numeric" and method in CATEGORICAL_ONLY:
        return f"method '{method}' needs a categorical column; '{name}' is numeric"
    return ColumnChoice(col, method, _threshold(m, override, method))


def _kind(override: ColumnOverride | None, col: ColumnProfile, method: str) -> str:
    if override and override.type:
        return override.type
    if col.kind == "numeric" and method in NUMERIC_ONLY:
        return "numeric"
    if method in CATEGORICAL_ONLY:
        return "categorical"
    return "numeric" if col.kind == "numeric" and col.unique > 5 else "categorical"


def _threshold(m: DriftSpec, override: ColumnOverride | None, method: str) -> float:
    if override and override.threshold is not None:
        return float(override.threshold)
    if m.threshold is not None:
        return float(m.threshold)
    return float(METHODS[method][1])
