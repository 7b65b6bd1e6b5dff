"""``rulesengine run``'s exit-code policy, on hand-built outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rulesengine.engine.results import ModelResults, Result
from rulesengine.errors import StoreError
from rulesengine.runner import FAIL_ON, RunOutcome, exit_code


def outcome(*statuses: str, store_error: StoreError | None = None) -> RunOutcome:
    results = tuple(
        Result(monitor=f"m{i}", kind="check", type="row_count", source="s", status=status)
        for i, status in enumerate(statuses)
    )
    at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    return RunOutcome([ModelResults("fraud", at, results)], store_error=store_error)


@pytest.mark.parametrize(
    ("statuses", "fail_on", "code"),
    [
        ((), "critical", 0),
        (("ok", "no_data", "insufficient_data"), "warn", 0),
        (("ok", "warn"), "critical", 0),
        (("ok", "warn"), "warn", 1),
        (("critical",), "critical", 1),
        (("critical",), "warn", 1),
        (("critical",), "never", 0),
        (("critical", "error"), "critical", 4),  # an error outranks violations
        (("error",), "never", 4),  # whatever --fail-on says
    ],
)
def test_fail_on_decides_between_0_and_1_and_errors_are_4(statuses, fail_on, code):
    assert exit_code(outcome(*statuses), fail_on) == code


@pytest.mark.parametrize("fail_on", list(FAIL_ON))
def test_a_store_error_outranks_everything(fail_on):
    broken = outcome("critical", "error", store_error=StoreError("state file x is corrupt"))
    assert exit_code(broken, fail_on) == 5


def test_the_choices_are_the_documented_ones():
    assert list(FAIL_ON) == ["warn", "critical", "never"]
