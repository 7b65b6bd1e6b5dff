"""The input contract of one request, derived from a model's spec.

A spec's checks judge logged rows after the fact; the same rules, applied to one
request as it arrives, refuse it at the door. :func:`derive` reads a source's
``schema`` check (columns and dtypes, ``strict``), its ``allowed_values`` and
``out_of_range`` checks and its ``null_count`` / ``null_rate`` checks, and keeps
each rule that **one bad request alone would trip**: logged by itself, the
request makes a window of one row, where a rate is 0 or 1 and a count 0 or 1, so
a rule is kept when its ``warn`` or ``critical`` threshold is violated at 1 and
not at 0 (``null_rate`` with ``critical: {above: 0.05}`` makes the column
not-null; with ``{above: 1}`` it does not). The :class:`Contract` becomes a JSON
Schema (draft 2020-12) or a plain-Python validator for the request path::

    >>> check = validator("configs/models/fraud-detector.yaml")   # doctest: +SKIP
    >>> [str(v) for v in check({"amount": -5, "country": "DE"})]  # doctest: +SKIP
    ["amount: value -5 is outside [0, 50000] (amount-range)", ...]

Left out: checks with a ``filter`` (SQL over rows), ``change`` and derived
thresholds, per-segment overrides, and the check types that need a reference or
many rows (``new_categories``, ``pattern``, ``outlier_rate``, ``duplicate_rate``).
"""

from rulesengine.contract.derive import (
    CONTRACT_CHECKS,
    ContractError,
    derive,
    json_schema_text,
    load_contract,
    validator,
)
from rulesengine.contract.dtypes import kind_of
from rulesengine.contract.rules import SCHEMA_DIALECT, Contract, Field, Violation, violations_json

__all__ = [
    "CONTRACT_CHECKS",
    "SCHEMA_DIALECT",
    "Contract",
    "ContractError",
    "Field",
    "Violation",
    "derive",
    "json_schema_text",
    "kind_of",
    "load_contract",
    "validator",
    "violations_json",
]
