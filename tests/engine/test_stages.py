"""The engine's stages hand over new objects: compiling gives a complete plan (its
frames included, no queries yet), each phase returns a new plan, and preparing the
references yields a new plan without touching the compiled one."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from conftest import AT, src, stamps

from rulesengine.engine.evaluate import plan_model, prepare_references
from rulesengine.engine.execute import execute
from rulesengine.engine.explain import explain_plan
from rulesengine.engine.frames import Frames
from rulesengine.engine.plan import compile_model, reference_plan, window_plan
from rulesengine.engine.score import score
from rulesengine.engine.sources import matched_nothing, reason
from rulesengine.errors import first_line
from rulesengine.spec.loader import load

NEW = {
    "name": "new",
    "source": "s",
    "type": "new_categories",
    "column": "country",
    "reference": "train",
    "warn": {"above": 0.25},
}
ROW_COUNT = {"name": "rc", "source": "s", "type": "row_count", "critical": {"below": 1}}


def _model(h, checks):
    h.frame("train.parquet", pl.DataFrame({"country": ["DE", "FR", "IT", None, "DE"]}))
    df = pl.DataFrame({"ts": stamps(7), "country": ["DE", "ES", "FR", None, "ES", "PL", "IT"]})
    h.frame("d.parquet", df)
    sources = {"s": src("d.parquet"), "train": src("train.parquet", timestamp=None)}
    path = h.model_yaml({"sources": sources, "checks": checks})
    (model,) = load([path], env={}).models
    return model


def test_compiling_gives_a_complete_plan_with_its_frames_and_no_queries(h):
    plan = compile_model(_model(h, [NEW, ROW_COUNT]), AT)
    assert isinstance(plan.frames, Frames)
    assert set(plan.frames.base) == {"s", "train"}
    assert plan.ctx.schemas is plan.frames.schemas
    assert plan.queries == ()
    assert [mp.monitor.name for mp in plan.monitors] == ["new", "rc"]
    assert all(mp.bindings == () and mp.ready for mp in plan.monitors)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.queries = ()  # type: ignore[misc]


def test_each_phase_is_a_new_plan_and_leaves_its_input_alone(h):
    plan = compile_model(_model(h, [NEW, ROW_COUNT]), AT)
    before = plan.monitors
    ref = reference_plan(plan)
    assert ref is not plan and plan.monitors is before and plan.queries == ()
    roles = {mp.monitor.name: [b.role for b in mp.bindings] for mp in ref.monitors}
    assert roles == {"new": ["main"], "rc": []}  # only new_categories reads a reference
    assert [q.frame.source for q in ref.queries] == ["train"]
    assert all(q.lazy is not None for q in ref.queries)


def test_preparing_the_references_yields_a_new_plan(h):
    plan = compile_model(_model(h, [NEW, ROW_COUNT]), AT)
    prepared = prepare_references(plan)
    assert prepared is not plan and prepared.ctx is not plan.ctx
    assert plan.ctx.prepared == {}  # the compiled plan is as it was
    assert sorted(prepared.ctx.prepared["new"]["values"]) == ["DE", "FR", "IT"]
    assert all(mp.bindings == () and mp.error is None for mp in prepared.monitors)
    window = window_plan(prepared)
    assert {q.frame.source for q in window.queries} == {"s"}
    (new, rc) = score(window, execute(window.queries, window.model)).results
    assert (new.value, new.status) == (3 / 6, "warn")
    assert rc.value == 7


def test_a_reference_that_cannot_be_read_is_an_error_of_the_new_plan_only(h):
    model = _model(h, [NEW, ROW_COUNT])
    (h.root / "train.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    plan = compile_model(model, AT)
    prepared = prepare_references(plan)
    by_name = {mp.monitor.name: mp for mp in prepared.monitors}
    assert "train.parquet" in (by_name["new"].error or "")
    assert by_name["rc"].error is None
    assert all(mp.error is None for mp in plan.monitors)  # the compiled plan is as it was


def test_explain_prints_the_plan_that_evaluation_runs(h):
    plan = plan_model(_model(h, [NEW, ROW_COUNT]), AT)
    text = explain_plan(plan, polars_plan=False)
    assert text.startswith(f"model {plan.model.model} at 2026-11-27T15:00:00Z")
    assert "new (check new_categories) -> main: q0 [a0, a1]" in text
    assert "rc (check row_count) -> main: q0 [rows]" in text


def test_one_sniffer_for_a_path_that_matched_nothing():
    empty = "ComputeError: expanded paths were empty (path expansion input: …)"
    assert matched_nothing(empty)
    assert not matched_nothing("object not found")
    assert matched_nothing("Object Not Found", "not found")
    assert matched_nothing("No such file or directory (os error 2)", "no such file")


def test_reason_is_the_first_line_with_paths_shortened_and_panics_named(tmp_path):
    plain = ValueError("bad value\nmore detail")
    assert reason(plain) == first_line(plain) == "bad value"
    assert reason(ValueError("")) == "ValueError"
    panic = pl.exceptions.PanicException("index out of bounds\nbacktrace")
    assert reason(panic) == "Polars panicked: index out of bounds"
