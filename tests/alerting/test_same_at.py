"""An evaluation at a time already evaluated is the same evaluation again (as in
Prometheus): nothing counts twice, for ``for: N``, ``fire_after`` or the
stale-data count."""

from __future__ import annotations

import pytest
from alerting_harness import alerting_factory

TWO_MONITORS = """\
checks:
  - {name: nulls, source: requests, type: null_rate, column: amount, critical: {above: 0.01},
     fire_after: {violations: 2, of_last: 3}}
  - {name: volume, source: requests, type: row_count, critical: {below: 10}, for: 2}
"""


@pytest.fixture
def alerting(tmp_path):
    yield from alerting_factory(tmp_path)


def test_rerunning_one_time_counts_nothing_again(alerting):
    h = alerting(TWO_MONITORS)
    for _ in range(3):  # one evaluation, three runs
        h.step(0, h.result("nulls", 0.5), h.result("volume", 1))
    assert (h.state("nulls"), h.state("volume")) == ("pending", "pending")
    assert h.alert("nulls").history == [True]
    assert h.alert("volume").streak == 1
    h.step(15, h.result("nulls", 0.5), h.result("volume", 1))  # the second evaluation
    assert (h.state("nulls"), h.state("volume")) == ("firing", "firing")


def test_rerunning_one_empty_time_counts_one_stale_evaluation(alerting):
    h = alerting(TWO_MONITORS)

    def empty():
        return [h.result("nulls", "no_data"), h.result("volume", "no_data")]

    for _ in range(3):  # stale_after: 3, but this is one evaluation
        assert h.step(0, *empty()).summary == ""
    assert h.store.row("SELECT empty_streak FROM source_health")["empty_streak"] == 1
    assert h.step(15, *empty()).summary == ""
    assert h.step(30, *empty()).summary == "FIRING>slack"  # the third evaluation
    assert h.store.row("SELECT empty_streak FROM source_health")["empty_streak"] == 3
