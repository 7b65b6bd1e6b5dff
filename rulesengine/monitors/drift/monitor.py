"""The drift monitor: each column of the window against a reference profile.

Phase 1 (``prepare``) reduces the reference to a
:class:`~rulesengine.monitors.drift.profiles.Profile` once, or loads it from the
profile cache; phase 2 (``needs``) adds the window's side of every column to the
fused plan (:mod:`~rulesengine.monitors.drift.planning`). Scoring gives one result
per column and one ``drift_share`` result per segment
(:mod:`~rulesengine.monitors.drift.scoring`).
"""

from __future__ import annotations

from typing import Any

from rulesengine.engine.files import local_files
from rulesengine.monitors.base import EvalContext, FrameKey, MonitorType, Need, Scored, register
from rulesengine.monitors.drift import profile_cache
from rulesengine.monitors.drift.choices import Reference
from rulesengine.monitors.drift.planning import (
    drift_columns,
    reference_frame,
    reference_needs,
    reference_profile,
    split_baseline,
    window_needs,
)
from rulesengine.monitors.drift.scoring import Rows, Segment, Values, score_columns
from rulesengine.spec.model import DriftSpec


@register
class Drift(MonitorType):
    kind = "drift"
    names = ("drift",)
    # marks its own estimates from sketches, column by column (see scoring)
    own_rank_errors = True

    def cached(self, m: DriftSpec, ctx: EvalContext) -> Reference | None:
        columns = drift_columns(m, ctx)
        frame = reference_frame(m, ctx)
        ref_schema = ctx.schemas[frame.source]
        slot = _cache_slot(m, ctx, columns, frame)
        profile = slot.load({c for c in columns if c in ref_schema}) if slot else None
        return Reference(m, profile) if profile is not None else None

    def prepare(self, m: DriftSpec, ctx: EvalContext) -> list[Need]:
        frame = reference_frame(m, ctx)
        return reference_needs(m, frame, drift_columns(m, ctx), ctx.schemas[frame.source])

    def prepared(self, m: DriftSpec, values: dict[str, Any], ctx: EvalContext) -> Reference:
        frame = reference_frame(m, ctx)
        profile = reference_profile(m, values, split_baseline(m, frame, ctx.schemas[frame.source]))
        slot = _cache_slot(m, ctx, drift_columns(m, ctx), frame)
        if slot is not None:
            slot.save(profile)
        return Reference(m, profile)

    def needs(self, m: DriftSpec, ctx: EvalContext) -> list[Need]:
        reference: Reference = ctx.prepared[m.name]
        return window_needs(m, ctx, reference.choices)

    def score(self, m: DriftSpec, values: Values, rows: Rows, ctx: EvalContext) -> Scored:
        """The monitor's summary: its drift_share result (score_all gives every one)."""
        return self.score_all(m, values, rows, ctx)[-1]

    def score_all(
        self, m: DriftSpec, values: Values, rows: Rows, ctx: EvalContext, segment: Segment = ()
    ) -> list[Scored]:
        reference: Reference = ctx.prepared[m.name]
        columns = drift_columns(m, ctx)
        return score_columns(m, reference, values, rows, columns, ctx.schemas[m.source], segment)


def _cache_slot(
    m: DriftSpec, ctx: EvalContext, columns: list[str], frame: FrameKey
) -> profile_cache.Slot | None:
    """Where the reference's profile is kept between runs, if anywhere."""
    if ctx.cache_dir is None or frame.end is not None:
        return None  # a trailing baseline moves every tick: not worth keeping
    source = ctx.model.sources[frame.source]
    files = local_files(source)
    shape = {
        "path": source.path,
        "columns": {c: str(ctx.schemas[frame.source].get(c)) for c in columns},
        "bins": m.bins,
        "filter": frame.filter,
        "start": frame.start,
        "end": frame.end,
        "timestamp": source.timestamp,
    }
    return profile_cache.slot(ctx.cache_dir, files, shape)
