"""Mergeable partial states of the monitors' aggregates (issue 15, item 1).

A partial state summarises some rows (one file, one time bucket, one segment)
so that states of disjoint rows merge into the state of their union, and the
statistics finalised from a merged state equal a single pass over all the rows:
exactly for counts, min/max and order statistics under the size bound, to about
1e-12 for floating sums and moments, and within a stated rank error for the
sketches that take over above the bound. See docs/scaling.md.

* :mod:`~rulesengine.partials.scalars`: counts, sums, moments, extremes;
* :mod:`~rulesengine.partials.histograms`: fixed-cell histograms, category counts,
  confusion counts;
* :mod:`~rulesengine.partials.order`: value counts with a KLL sketch above the size
  bound; quantiles, CDF, KS, Mann–Whitney U, AUC;
* :mod:`~rulesengine.partials.collect`: the Polars queries that give partial states
  per group;
* :mod:`~rulesengine.partials.codec`: states as versioned bytes (no pickle).

The incremental executor (:mod:`rulesengine.engine.incremental`) merges them;
``rulesengine run`` and the daemon still evaluate in a single pass.
"""

from rulesengine.partials.codec import PartialStateError, dumps, loads
from rulesengine.partials.collect import keyed_states, merge_all, merge_by, partial_states
from rulesengine.partials.histograms import (
    CategoriesOf,
    CategoryCounts,
    CellCounts,
    CellsOf,
    Confusion,
    ConfusionOf,
)
from rulesengine.partials.order import (
    RANK_ERROR,
    SIZE_LIMIT,
    SKETCH_K,
    Estimate,
    ValueCounts,
    ValuesOf,
    auc,
    ks_statistic,
    mann_whitney_u,
)
from rulesengine.partials.scalars import (
    CoMoments,
    CoMomentsOf,
    Counts,
    CountsOf,
    Extremes,
    ExtremesOf,
    Moments,
    MomentsOf,
    Sum,
    SumOf,
)

__all__ = [
    "RANK_ERROR",
    "SIZE_LIMIT",
    "SKETCH_K",
    "CategoriesOf",
    "CategoryCounts",
    "CellCounts",
    "CellsOf",
    "CoMoments",
    "CoMomentsOf",
    "Confusion",
    "ConfusionOf",
    "Counts",
    "CountsOf",
    "Estimate",
    "Extremes",
    "ExtremesOf",
    "Moments",
    "MomentsOf",
    "PartialStateError",
    "Sum",
    "SumOf",
    "ValueCounts",
    "ValuesOf",
    "auc",
    "dumps",
    "keyed_states",
    "ks_statistic",
    "loads",
    "mann_whitney_u",
    "merge_all",
    "merge_by",
    "partial_states",
]
