"""From a model's checks to the contract of one request: which checks one bad
request alone can trip, and the rules they give each column."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rulesengine.contract.dtypes import CATEGORICAL, NUMERIC
from rulesengine.contract.rules import Contract, Field, Violation
from rulesengine.errors import RulesEngineError, did_you_mean, one_of

if TYPE_CHECKING:
    from rulesengine.spec.model import CheckSpec, ModelSpec

CONTRACT_CHECKS = ("schema", "allowed_values", "out_of_range", "null_count", "null_rate")


class ContractError(RulesEngineError):
    """The contract cannot be derived as asked (no such source, nothing to derive)."""

    exit_code = 2


def _trips(m: CheckSpec) -> bool:
    """Whether one bad request alone (a value of 1 in a window of one row) trips
    the check's warn or critical threshold, while a good one (0) does not."""
    for t in (m.thresholds.warn, m.thresholds.critical):
        if t is not None and t.violated(1.0) and not t.violated(0.0):
            return True
    return False


def _selected(m: CheckSpec, declared: Mapping[str, str], skip: set[str]) -> list[str]:
    """The columns a per-column check covers; a selector is resolved against the
    schema check's declared dtypes (a column declared ``any`` is not selected)."""
    if m.column is not None:
        return [m.column]
    if m.selector is None:
        return list(m.columns)
    left_out = skip | set(m.exclude) | set(m.segment_by)
    picked = []
    for c, dtype in declared.items():
        if c in left_out:
            continue
        numeric = dtype in NUMERIC and m.selector in ("numeric", "all")
        if numeric or (dtype in CATEGORICAL and m.selector in ("categorical", "all")):
            picked.append(c)
    return picked


def _contract_sources(model: ModelSpec) -> list[str]:
    return list(
        dict.fromkeys(
            m.source
            for m in model.checks
            if m.enabled and m.type in CONTRACT_CHECKS and m.filter is None and _trips(m)
        )
    )


def derive(model: ModelSpec, source: str | None = None, exclude: Iterable[str] = ()) -> Contract:
    """The contract of one request to ``model`` on ``source`` (by default the one
    source its contract checks cover). ``exclude``: columns a request does not
    carry, such as the model's outputs; their rules are left out. Raises
    :class:`ContractError` for an unknown source, or when there is no choice."""
    if source is None:
        candidates = _contract_sources(model)
        if not candidates:
            raise ContractError(
                f"model '{model.model}' has no check a single request can break "
                f"({', '.join(CONTRACT_CHECKS)} with thresholds that one bad row trips)"
            )
        if len(candidates) > 1:
            raise ContractError(
                f"model '{model.model}' has contract checks on sources {one_of(candidates)}: "
                "choose one with --source"
            )
        source = candidates[0]
    if source not in model.sources:
        raise ContractError(
            f"model '{model.model}' has no source '{source}'"
            + did_you_mean(source, model.sources)
            + f"; its sources are {one_of(model.sources)}"
        )
    spec = model.sources[source]
    excluded = frozenset(exclude)
    optional = frozenset({"request_id", *([spec.timestamp] if spec.timestamp else [])})
    partition = frozenset({spec.partition_date} if spec.partition_date else ())
    skip = set(optional | partition | excluded)
    checks = [
        m
        for m in model.checks
        if m.source == source
        and m.enabled
        and m.type in CONTRACT_CHECKS
        and m.filter is None
        and _trips(m)
    ]
    declared: dict[str, str] = {}
    dtype_of: dict[str, tuple[str, str]] = {}
    strict: str | None = None
    for m in checks:
        if m.type != "schema":
            continue
        if m.strict and strict is None:
            strict = m.name
        for column, dtype in m.expected_columns.items():
            declared.setdefault(column, dtype)
            if column not in partition and column not in excluded:
                dtype_of.setdefault(column, (dtype, m.name))
    order = [c for c in declared if c not in partition and c not in excluded]
    not_null: dict[str, str] = {}
    ranges: dict[str, list[tuple[float | None, float | None, str]]] = {}
    allowed: dict[str, list[tuple[tuple[Any, ...], str]]] = {}
    for m in checks:
        if m.type == "schema":
            continue
        for column in _selected(m, declared, skip - {"request_id"}):
            if column in partition or column in excluded:
                continue
            if column not in order:
                order.append(column)
            if m.type in ("null_count", "null_rate"):
                not_null.setdefault(column, m.name)
            elif m.type == "out_of_range":
                ranges.setdefault(column, []).append((m.min, m.max, m.name))
            else:
                allowed.setdefault(column, []).append((tuple(m.values), m.name))
    fields = tuple(
        Field(
            name=c,
            dtype=dtype_of[c][0] if c in dtype_of else None,
            dtype_check=dtype_of[c][1] if c in dtype_of else "",
            required=c in dtype_of and c not in optional,
            not_null=not_null.get(c),
            ranges=tuple(ranges.get(c, ())),
            allowed=tuple(allowed.get(c, ())),
        )
        for c in order
    )
    return Contract(
        model=model.model,
        source=source,
        fields=fields,
        strict=strict,
        optional=optional,
        excluded=excluded,
        partition=partition,
    )


def load_contract(
    model_file: str | os.PathLike[str],
    source: str | None = None,
    exclude: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Contract:
    """Load and validate one model file (raises :class:`SpecError` if invalid) and
    derive its contract (see :func:`derive`)."""
    from rulesengine.spec.loader import load

    config = load([model_file], env)
    if len(config.models) != 1:
        raise ContractError(f"{os.fspath(model_file)} is not one model file")
    return derive(config.models[0], source, exclude)


def validator(
    model_file: str | os.PathLike[str],
    source: str | None = None,
    exclude: Iterable[str] = (),
) -> Callable[[Mapping[str, Any]], list[Violation]]:
    """A fast callable for the request path: one request (a mapping) → the list of
    its :class:`Violation`\\ s, empty when it conforms.

    >>> check = validator("models/fraud-detector.yaml", exclude=["score"])  # doctest: +SKIP
    >>> check({"amount": 12.5, "country": "DE", "device": "ios"})           # doctest: +SKIP
    []
    """
    return load_contract(model_file, source, exclude).validator()


def json_schema_text(contract: Contract) -> str:
    """The JSON Schema as ``rulesengine contract`` prints it."""
    return json.dumps(contract.json_schema(), indent=2) + "\n"
