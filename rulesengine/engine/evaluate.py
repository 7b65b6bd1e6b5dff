"""Evaluate a model: compile, prepare the references, execute, score.

``evaluate(config, at)`` is what ``rulesengine run`` does: per model, reference
aggregates first (a small plan of their own, see :func:`prepare_references`), then
every monitor's aggregates over the window in one ``pl.collect_all`` per batch
(:func:`~rulesengine.engine.execute.execute`), scored into results
(:mod:`rulesengine.engine.score`). A failing query is retried alone so one bad
monitor never hides the others.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rulesengine.engine.derived import derive
from rulesengine.engine.execute import execute
from rulesengine.engine.plan import Plan, compile_model, reference_plan, window_plan
from rulesengine.engine.results import ModelResults
from rulesengine.engine.score import reference_values, score
from rulesengine.engine.sources import POLARS_ERRORS, reason
from rulesengine.spec.model import Config, ExecutorSpec, ModelSpec


def prepare_references(plan: Plan) -> Plan:
    """Run the reference phase of a compiled plan. Returns a new plan whose context
    holds each monitor's prepared reference (``MonitorType.prepared``) and whose
    monitors carry the error of a reference that cannot be read or profiled."""
    kept = _kept_references(plan)
    ref = reference_plan(replace(plan, ctx=replace(plan.ctx, prepared=kept)))
    frames = execute(ref.queries, plan.model)
    prepared: dict[str, Any] = dict(kept)
    monitors = []
    for mp in ref.monitors:
        error = mp.error
        if mp.ready and mp.bindings:
            assert mp.type is not None
            values = reference_values(ref, frames, mp)
            if isinstance(values, str):
                error = values
            else:
                try:
                    prepared[mp.monitor.name] = mp.type.prepared(mp.monitor, values, ref.ctx)
                except POLARS_ERRORS as exc:  # a reference that cannot be profiled
                    error = f"reference: {reason(exc)}"
        # the bindings point into the reference queries, not the window's
        monitors.append(replace(mp, bindings=(), error=error))
    return replace(plan, ctx=replace(plan.ctx, prepared=prepared), monitors=tuple(monitors))


def _kept_references(plan: Plan) -> dict[str, Any]:
    """The references kept from earlier runs (``MonitorType.cached``). A failure here
    is left to ``prepare``, which meets it again and reports it as the monitor's."""
    kept = {}
    for mp in plan.monitors:
        if not mp.ready:
            continue
        assert mp.type is not None
        try:
            found = mp.type.cached(mp.monitor, plan.ctx)
        except POLARS_ERRORS:
            continue
        if found is not None:
            kept[mp.monitor.name] = found
    return kept


def plan_model(model: ModelSpec, at: datetime, cache_dir: Path | None = None) -> Plan:
    """The window's plan of ``model`` as of ``at``, ready to execute: compiled, its
    references prepared (their queries run), the window's queries built."""
    prepared = prepare_references(compile_model(model, at, cache_dir=cache_dir))
    return window_plan(derive(prepared))  # derived thresholds: after the references


def evaluate_model(
    model: ModelSpec,
    at: datetime,
    cache_dir: Path | None = None,
    partials: Path | None = None,
    executor: ExecutorSpec | None = None,
) -> ModelResults:
    """Evaluate every enabled monitor of ``model`` as of ``at``. Reference profiles
    are cached in ``cache_dir`` when given; with ``partials``, the window's
    queries are answered from partial states cached there, scanning only new or
    changed files (:mod:`rulesengine.engine.incremental`), else in one pass.
    With a ``dask`` ``executor`` the window's work runs on that cluster
    (:mod:`rulesengine.engine.distributed`; Dask is imported only then)."""
    plan = plan_model(model, at, cache_dir)
    if partials is None and (executor is None or executor.type != "dask"):
        return score(plan, execute(plan.queries, model))
    from rulesengine.engine.incremental import Report, execute_incremental

    report = Report()
    if executor is not None and executor.type == "dask":
        from rulesengine.engine.distributed import execute_on

        results = score(plan, execute_on(executor, plan, model, partials, report=report))
    else:
        bound = (executor or ExecutorSpec()).cache_bytes
        collected = execute_incremental(plan, model, partials, max_bytes=bound, report=report)
        results = score(plan, collected)
    if report.starved is not None:
        results = replace(results, warnings=(*results.warnings, cache_warning(report.starved)))
    return results


def cache_warning(starved: tuple[int, int, int]) -> str:
    """The warning for a partial-state cache bound below what the window needs:
    its entries are deleted after each evaluation and recomputed at the next."""
    deleted, used, bound = starved
    mib = 2**20
    want = -(-used * 5 // 4 // mib)  # a quarter above this window's entries
    return (
        f"partial-state cache: this window's entries take {used / mib:,.1f} MiB, above "
        f"executor.cache_mib ({bound // mib:,} MiB); {deleted:,} of them were deleted and "
        f"their files will be read again at the next evaluation. Set executor.cache_mib "
        f"in engine.yaml to at least {want:,}"
    )


def evaluate(
    config: Config, at: datetime | None = None, *, cache: bool = True
) -> list[ModelResults]:
    """Evaluate every model of ``config`` as of ``at`` (default: now); without
    ``cache`` (``run --no-cache``), every window is scanned in one pass."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    profiles = profile_cache(config)
    partials = partials_cache(config) if cache else None
    executor = config.engine.executor
    return [evaluate_model(model, at, profiles, partials, executor) for model in config.models]


def profile_cache(config: Config) -> Path:
    """Where reference profiles are cached: beside the state database."""
    return Path(config.engine.state).parent / "profiles"


def partials_cache(config: Config) -> Path:
    """Where partial states are cached: beside the state database."""
    return Path(config.engine.state).parent / "partials"
