"""Runs rule tests: fixtures written as files, each evaluation time through the
real tick path, and what happened compared with what the test expects.

Per test: a temporary directory holds the fixture files and a fresh state file;
the config's sources of the tested model point at the fixtures, its ``state`` at
the temporary directory. Each evaluation time, oldest first, runs
:func:`~rulesengine.daemon.tick.evaluate_tick` then
:func:`~rulesengine.daemon.tick.record_tick` with the time as the clock (as
``run --notify --at T`` and ``backfill`` do). Nothing is delivered: the
notifications a time queued are read back from the outbox (the capturing
receiver). The temporary directory is removed after the test.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rulesengine.alerting.store import Store
from rulesengine.alerting.tracker import STALE_MONITOR, load_alerts
from rulesengine.daemon.tick import evaluate_tick, record_tick
from rulesengine.engine.results import Result, iso
from rulesengine.errors import did_you_mean, first_line, one_of
from rulesengine.masking import mask_text
from rulesengine.ruletest.fixtures import FixtureError, place
from rulesengine.ruletest.format import (
    AlertExp,
    Expectation,
    NoteExp,
    ResultExp,
    TestCase,
    TestFile,
    TestFileError,
)
from rulesengine.spec.loader import load
from rulesengine.spec.model import Config, ModelSpec


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold, at ``file:line``."""

    file: str
    line: int
    test: str
    at: datetime | None
    what: str
    expected: list[str]
    actual: list[str]


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest class

    file: str
    name: str
    line: int
    times: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Actual:
    """What one evaluation time produced."""

    results: list[Result]
    alerts: list[Any]  # AlertState of the tested model
    notes: list[dict[str, str]]  # receiver, title, body of the rows it queued


def _pick_model(tf: TestFile, t: TestCase, config: Config) -> ModelSpec:
    names = [m.model for m in config.models]
    if t.model is None:
        if len(names) == 1:
            return config.models[0]
        tf.problems.add(("tests", t.index), f"say which model: 'model' is one of {one_of(names)}")
        raise TestFileError(tf.problems.problems)
    for m in config.models:
        if m.model == t.model:
            return m
    hint = did_you_mean(t.model, names)
    tf.problems.add(
        t.model_path, f"unknown model '{t.model}'{hint}; the config has {one_of(names)}"
    )
    raise TestFileError(tf.problems.problems)


def check_names(tf: TestFile, config: Config) -> dict[int, ModelSpec]:
    """The model of each test; unknown models, sources, monitors or receivers are
    positioned problems (:class:`TestFileError`)."""
    models = {t.index: _pick_model(tf, t, config) for t in tf.tests}
    receivers = list(config.engine.receivers)
    for t in tf.tests:
        model = models[t.index]
        monitors = [m.name for m in model.monitors()] + [STALE_MONITOR]
        base = ("tests", t.index)
        for f in t.fixtures:
            if f.source not in model.sources:
                hint = did_you_mean(f.source, model.sources)
                tf.problems.add(
                    (*base, "sources", f.source),
                    f"'{model.model}' has no source '{f.source}'{hint}",
                    key=True,
                )
        for j, e in enumerate(t.expects):
            for key, items in (("results", e.results), ("alerts", e.alerts)):
                for k, x in enumerate(items):
                    if x.monitor not in monitors:
                        hint = did_you_mean(x.monitor, monitors)
                        tf.problems.add(
                            (*base, "expect", j, key, k, "monitor"),
                            f"'{model.model}' has no monitor '{x.monitor}'{hint}",
                        )
            for k, n in enumerate(e.notifications or ()):
                if n.receiver not in receivers:
                    hint = did_you_mean(n.receiver, receivers)
                    tf.problems.add(
                        (*base, "expect", j, "notifications", k, "receiver"),
                        f"no receiver '{n.receiver}'{hint}; the config has {one_of(receivers)}",
                    )
    if tf.problems.problems:
        raise TestFileError(tf.problems.problems)
    return models


def load_config(tf: TestFile) -> Config:
    """The config the file covers (:class:`~rulesengine.errors.SpecError`, exit 3,
    when it is invalid)."""
    return load([str(p) for p in tf.config])


def run_file(tf: TestFile) -> list[TestOutcome]:
    """Every test of ``tf``, in file order."""
    config = load_config(tf)
    models = check_names(tf, config)
    return [run_test(tf, t, config, models[t.index]) for t in tf.tests]


def _scratch(config: Config, model: ModelSpec, t: TestCase, tmp: Path) -> tuple[Config, ModelSpec]:
    fixtures = {f.source: f for f in t.fixtures}
    sources = {
        name: place(s, fixtures.get(name), tmp / "sources") for name, s in model.sources.items()
    }
    scratch_model = replace(model, sources=sources)
    engine = replace(config.engine, state=str(tmp / "state" / "state.db"))
    return replace(config, engine=engine, models=(scratch_model,)), scratch_model


def run_test(tf: TestFile, t: TestCase, config: Config, model: ModelSpec) -> TestOutcome:
    """One test: its evaluation times in order on a scratch store."""
    outcome = TestOutcome(tf.shown, t.name, t.line, len(t.times))
    expects: dict[datetime, list[Expectation]] = {}
    for e in t.expects:
        expects.setdefault(e.at, []).append(e)
    with tempfile.TemporaryDirectory(prefix="rulesengine-test-") as tmp:
        try:
            scratch, scratch_model = _scratch(config, model, t, Path(tmp))
        except (FixtureError, OSError) as exc:
            outcome.failures.append(
                Failure(tf.shown, t.line, t.name, None, "fixtures", [], [mask_text(str(exc))])
            )
            return outcome
        Path(tmp, "state").mkdir()
        with Store(scratch.engine.state) as store:
            for at in t.times:
                try:
                    actual = _tick(store, scratch, scratch_model, at)
                except Exception as exc:  # as the daemon: report, never a traceback
                    why = mask_text(first_line(exc))
                    outcome.failures.append(
                        Failure(tf.shown, t.line, t.name, at, "evaluation failed", [], [why])
                    )
                    return outcome
                for e in expects.get(at, []):
                    outcome.failures.extend(compare(tf.shown, t.name, e, actual))
    return outcome


def _tick(store: Store, config: Config, model: ModelSpec, at: datetime) -> Actual:
    top = store.row("SELECT COALESCE(MAX(id), 0) AS n FROM outbox")
    newest = top["n"] if top is not None else 0
    results = evaluate_tick(config, model, at)
    recorded = record_tick(store, config, model, at, results, queued_at=at).results
    rows = store.rows("SELECT receiver, title, body FROM outbox WHERE id > ? ORDER BY id", newest)
    alerts = [a for a in load_alerts(store).values() if a.model == model.model]
    return Actual(
        list((recorded or results).results),
        alerts,
        [{"receiver": r["receiver"], "title": r["title"], "body": r["body"]} for r in rows],
    )


# ------------------------------------------------------------------ comparing


def _same_segment(want: dict[str, Any] | None, got: Any) -> bool:
    if want is None:
        return True
    have = {str(k): str(v) for k, v in dict(got or {}).items()}
    return have == {str(k): str(v) for k, v in want.items()}


def _where(segment: Any, column: str | None) -> str:
    parts = []
    if segment:
        parts.append("segment " + ", ".join(f"{k}={v}" for k, v in dict(segment).items()))
    if column:
        parts.append(f"column {column}")
    return f" ({'; '.join(parts)})" if parts else ""


def _num(v: float | None) -> str:
    return "null" if v is None else f"{v:.10g}"


def _result_text(r: Result) -> str:
    return f"status={r.status} value={_num(r.value)}{_where(r.segment, r.column)}"


def _result_ok(e: ResultExp, r: Result) -> bool:
    if e.status is not None and r.status != e.status:
        return False
    if e.value is None:
        return True
    return r.value is not None and abs(r.value - e.value) <= e.tolerance


def check_result(e: ResultExp, results: list[Result]) -> tuple[list[str], list[str]] | None:
    """(expected, actual) lines when ``e`` does not hold, else None."""
    chosen = [
        r
        for r in results
        if r.monitor == e.monitor
        and _same_segment(e.segment, r.segment)
        and (e.column is None or r.column == e.column)
    ]
    if chosen and all(_result_ok(e, r) for r in chosen):
        return None
    want = []
    if e.status is not None:
        want.append(f"status={e.status}")
    if e.value is not None:
        want.append(f"value={_num(e.value)} ±{e.tolerance:g}")
    expected = [" ".join(want) + _where(e.segment, e.column)]
    actual = [_result_text(r) for r in chosen] or ["no result of this monitor"]
    return expected, actual


def _alert_state(e: AlertExp, a: Any) -> str:
    """The state an alert shows for ``e``: ``no_data`` compares the last result's
    status, the other states the alert's state."""
    if e.state == "no_data":
        return "no_data" if a.status == "no_data" else f"{a.state} (status {a.status})"
    return str(a.state)


def check_alert(e: AlertExp, alerts: list[Any]) -> tuple[list[str], list[str]] | None:
    chosen = [
        a
        for a in alerts
        if a.monitor == e.monitor
        and _same_segment(e.segment, a.segment)
        and (e.column is None or a.column == e.column)
    ]
    states = [_alert_state(e, a) for a in chosen]
    if not chosen and e.state == "inactive":
        return None
    if chosen and all(s == e.state for s in states):
        return None
    expected = [f"state={e.state}{_where(e.segment, e.column)}"]
    actual = [
        f"state={s}{_where(a.segment, a.column)}" for s, a in zip(states, chosen, strict=True)
    ] or ["no alert of this monitor (inactive)"]
    return expected, actual


def _note_matches(e: NoteExp, n: dict[str, str]) -> bool:
    return (
        n["receiver"] == e.receiver
        and (e.title is None or e.title in n["title"])
        and (e.body is None or e.body in n["body"])
    )


def _note_text(n: dict[str, str]) -> str:
    return f"{n['receiver']}: {mask_text(n['title'])}"


def check_note(e: NoteExp, notes: list[dict[str, str]]) -> tuple[list[str], list[str]] | None:
    got = sum(1 for n in notes if _note_matches(e, n))
    if got == e.count:
        return None
    want = f"{e.count} to {e.receiver}"
    if e.title is not None:
        want += f" with title containing {e.title!r}"
    if e.body is not None:
        want += f" with body containing {e.body!r}"
    actual = [f"{got} matching; queued at this time:"] + (
        [f"  {_note_text(n)}" for n in notes] or ["  (none)"]
    )
    return [want], actual


def compare(file: str, test: str, e: Expectation, actual: Actual) -> list[Failure]:
    """Every item of ``e`` that does not hold, at its own line."""
    out: list[Failure] = []
    for r in e.results:
        if bad := check_result(r, actual.results):
            out.append(Failure(file, r.line, test, e.at, f"result of {r.monitor}", *bad))
    for a in e.alerts:
        if bad := check_alert(a, actual.alerts):
            out.append(Failure(file, a.line, test, e.at, f"alert of {a.monitor}", *bad))
    if e.notifications == () and actual.notes:
        shown = [_note_text(n) for n in actual.notes]
        out.append(Failure(file, e.line, test, e.at, "notifications", ["none"], shown))
    for n in e.notifications or ():
        if bad := check_note(n, actual.notes):
            out.append(Failure(file, n.line, test, e.at, f"notifications to {n.receiver}", *bad))
    return out


def when(t: datetime | None) -> str:
    """An evaluation time as shown in reports."""
    return iso(t) or "-"
