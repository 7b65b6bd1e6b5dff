"""Drift methods, computed from what a reference profile and the current window
provide: category/bin counts, per-cell sums, or the samples themselves.

Definitions follow Evidently's (same statistics, same default thresholds, same
zero smoothing), so results can be compared; every method is tested against
scipy on the raw samples.

* Histogram methods (psi, kl_div, jensenshannon, hellinger, tvd) and the
  categorical tests (chisquare, g_test, z, fisher_exact) work on aligned count
  vectors: categories (the reference's plus one "unseen" bucket) or bins fixed
  once from the reference.
* Exact sample methods (ks, anderson, cramer_von_mises, mannw, energy) receive
  the reference sample (sorted, exact up to the profile's sample cap) and the
  current window's values, and call scipy directly. t_test needs only each
  side's count, mean and variance (:class:`Summary`: the window's from mergeable
  moments), and gives scipy's ``ttest_ind`` from them.
* Estimated sample methods (ks, mannw, energy): when the window's values come
  from a KLL sketch (above the exact size bound of merged value counts), the
  window's side is :class:`Estimated`: order statistics of the sketch standing
  for the values, with their true count. The statistic is computed from them,
  its p-value with the true sizes, and ``bound`` holds how far the statistic can
  be from the exact one (:func:`estimated_sample_method`).
* wasserstein uses an equal-width fine grid fixed from the reference, with per-cell
  counts and sums on both sides: each cell's ∫F is exact, so the result is exact
  wherever F_ref − F_cur keeps its sign inside a cell; ``bound`` says how far off
  it can be otherwise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from rulesengine.monitors.drift.vocabulary import METHODS


def _scipy_stats():
    from scipy import stats

    return stats


def two_sided_normal_p(z: float) -> float:
    """2·P(Z > |z|), exact in the far tail (erfc, not 1 − Φ)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x·ln(x/y), 0 where x is 0 (scipy.special.rel_entr for positive y)."""
    out = np.zeros_like(x, dtype=float)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def drifted(method: str, value: float, threshold: float) -> bool:
    rule = METHODS[method][2]
    if rule == "le":
        return value <= threshold
    if rule == "lt":
        return value < threshold
    return value >= threshold


def threshold_op(method: str) -> str:
    """The threshold op (as in specs) under which a value means drift."""
    return {"le": "at_or_below", "lt": "below", "ge": "at_or_above"}[METHODS[method][2]]


def auto_method(numeric: bool, reference_rows: int, unique: int) -> str:
    """Evidently's choice: small references get tests, large ones distances;
    numeric columns with at most 5 distinct values count as categorical."""
    if reference_rows <= 1000:
        if numeric and unique > 5:
            return "ks"
        return "chisquare" if unique > 2 else "z"
    return "wasserstein" if numeric and unique > 5 else "jensenshannon"


@dataclass(frozen=True)
class Outcome:
    value: float  # p-value or distance: what the threshold is compared with
    statistic: float  # the test statistic (equals value for distances)
    p_value: float | None
    bound: float | None = None  # approximation bound, when not exact


# ------------------------------------------------------------------ histograms


def smooth(percents: np.ndarray) -> np.ndarray:
    """Evidently's zero filling: zeros become 1e-4, or min(nonzero)/1e6 when the
    smallest nonzero share is at most 1e-4."""
    out = percents.astype(float).copy()
    nonzero = out[out > 0]
    if nonzero.size == 0:
        return out
    low = nonzero.min()
    out[out == 0] = low / 1e6 if low <= 1e-4 else 1e-4
    return out


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def histogram_method(method: str, ref_counts: np.ndarray, cur_counts: np.ndarray) -> Outcome:
    """A histogram distance over aligned count vectors."""
    ref = np.asarray(ref_counts, dtype=float)
    cur = np.asarray(cur_counts, dtype=float)
    keep = (ref > 0) | (cur > 0)  # cells empty on both sides carry no information
    p, q = _shares(ref[keep]), _shares(cur[keep])
    if method == "psi":
        ps, qs = smooth(p), smooth(q)
        value = float(np.sum((qs - ps) * np.log(qs / ps)))
    elif method == "kl_div":
        ps, qs = _normalise(smooth(p)), _normalise(smooth(q))  # as scipy.stats.entropy
        value = float(np.sum(_rel_entr(ps, qs)))
    elif method == "jensenshannon":
        # as scipy.spatial.distance.jensenshannon (natural log)
        ps, qs = _normalise(smooth(p)), _normalise(smooth(q))
        mid = (ps + qs) / 2.0
        js = (np.sum(_rel_entr(ps, mid)) + np.sum(_rel_entr(qs, mid))) / 2.0
        value = float(np.sqrt(max(js, 0.0)))
    elif method == "hellinger":
        value = float(np.sqrt(max(0.0, 1.0 - min(1.0, float(np.sum(np.sqrt(p * q)))))))
    elif method == "tvd":
        value = float(0.5 * np.sum(np.abs(p - q)))
    else:
        raise ValueError(f"'{method}' is not a histogram method")
    return Outcome(value, value, None)


def categorical_test(method: str, ref_counts: np.ndarray, cur_counts: np.ndarray) -> Outcome:
    """chisquare / g_test (goodness of fit of the current counts to the reference
    shares), z (two proportions) and fisher_exact (2×2) over aligned counts."""
    ref = np.asarray(ref_counts, dtype=float)
    cur = np.asarray(cur_counts, dtype=float)
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]
    n_ref, n_cur = ref.sum(), cur.sum()
    if method in ("chisquare", "g_test"):
        expected = ref * (n_cur / n_ref)
        if np.any((expected == 0) & (cur > 0)):  # a category the reference never saw
            return Outcome(0.0, float("inf"), 0.0)
        lam = "pearson" if method == "chisquare" else "log-likelihood"
        res = _scipy_stats().power_divergence(cur, expected, lambda_=lam)
        return Outcome(float(res.pvalue), float(res.statistic), float(res.pvalue))
    if len(ref) > 2:
        raise ValueError(f"'{method}' needs a binary column, this one has {len(ref)} values")
    if len(ref) == 1:  # one and the same value on both sides
        return Outcome(1.0, 0.0, 1.0)
    if method == "z":
        p1, p2 = ref[1] / n_ref, cur[1] / n_cur
        pooled = (ref[1] + cur[1]) / (n_ref + n_cur)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
        z = 0.0 if se == 0 else (p1 - p2) / se
        p = two_sided_normal_p(float(z))
        return Outcome(p, float(z), p)
    if method == "fisher_exact":
        table = np.array([[cur[1], cur[0]], [ref[1], ref[0]]], dtype=np.int64)
        res = _scipy_stats().fisher_exact(table)
        return Outcome(float(res.pvalue), float(res.statistic), float(res.pvalue))
    raise ValueError(f"'{method}' is not a categorical test")


# ------------------------------------------------------------------ samples


def sample_method(method: str, reference: np.ndarray, current: np.ndarray) -> Outcome:
    """Exact tests on the samples, by scipy."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    stats = _scipy_stats()
    if method == "ks":
        res = stats.ks_2samp(ref, cur)
    elif method == "anderson":
        with warnings.catch_warnings():  # scipy caps p to [0.001, 0.25] and says so
            warnings.simplefilter("ignore", UserWarning)
            res = stats.anderson_ksamp([ref, cur], variant="midrank")
    elif method == "cramer_von_mises":
        res = stats.cramervonmises_2samp(ref, cur)
    elif method == "mannw":
        res = stats.mannwhitneyu(ref, cur)
    elif method == "t_test":
        res = stats.ttest_ind(ref, cur)
    elif method == "energy":
        value = float(stats.energy_distance(ref, cur))
        return Outcome(value, value, None)
    else:
        raise ValueError(f"'{method}' is not a sample method")
    return Outcome(float(res.pvalue), float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class Summary:
    """One side of a t-test: non-null count, mean and M2 = Σ(x − mean)²."""

    n: int
    mean: float
    m2: float

    @classmethod
    def of(cls, values: np.ndarray) -> Summary:
        x = np.asarray(values, dtype=float)
        if x.size == 0:
            return cls(0, math.nan, 0.0)
        mean = float(np.mean(x))
        return cls(int(x.size), mean, float(np.sum((x - mean) ** 2)))

    @property
    def variance(self) -> float:
        """The sample variance (ddof 1), NaN below two values (as NumPy's)."""
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan


def t_test(reference: Summary, current: Summary) -> Outcome:
    """Student's two-sample t-test (equal variances) from counts, means and
    variances: ``scipy.stats.ttest_ind(reference, current)``'s statistic and
    p-value, through ``ttest_ind_from_stats``."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _scipy_stats().ttest_ind_from_stats(
            reference.mean,
            math.sqrt(reference.variance),
            reference.n,
            current.mean,
            math.sqrt(current.variance),
            current.n,
        )
    return Outcome(float(res.pvalue), float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class Estimated:
    """The window's side of a sample test estimated from a sketch: ``sample``,
    sorted order statistics standing for the values (their CDF within
    ``cdf_error`` of the values' everywhere, and equal to it, 0 or 1, outside
    [sample[0], sample[-1]], the values' true minimum and maximum); ``n``, the
    true count; ``rank_error``, the sketch's own normalised rank error."""

    sample: np.ndarray
    n: int
    rank_error: float

    @property
    def cdf_error(self) -> float:
        return self.rank_error + 1.0 / self.sample.size


ESTIMATED_METHODS = frozenset({"ks", "mannw", "energy"})


def _cdf_gap(a: np.ndarray, b: np.ndarray) -> float:
    """sup |F_a − F_b| of two sorted samples."""
    at = np.concatenate([a, b])
    fa = np.searchsorted(a, at, side="right") / a.size
    fb = np.searchsorted(b, at, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def _tie_term(parts: list[tuple[np.ndarray, float]]) -> float:
    """Σ(t³ − t) over the distinct values of sorted samples, each value of a
    sample counting ``scale`` (its true size over its length)."""
    values = np.concatenate([v for v, _ in parts])
    weights = np.concatenate([np.full(v.size, w) for v, w in parts])
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    t = np.add.reduceat(weights, starts)
    return float(np.sum(t**3 - t))


def estimated_sample_method(
    method: str, reference: np.ndarray, n_ref: int, ref_error: float, current: Estimated
) -> Outcome:
    """ks, mannw or energy with the window's side from a sketch.

    ``reference`` is the reference's sorted sample, standing for ``n_ref`` values
    with a CDF within ``ref_error`` of theirs (0 when it holds every value). Both
    CDFs being off by at most δ = ref_error + current.cdf_error:

    * ks: D = sup|F_ref − F_cur| is within δ of the exact D; the p-value is
      scipy's asymptotic one (Smirnov's, as ``ks_2samp`` takes it above 10,000
      values) at the estimated D with the true sizes. ``bound``: δ.
    * mannw: U/(n_ref·n_cur) = P(X_ref > X_cur) + ½ P(=) is within δ (as for the
      AUC, see :func:`~rulesengine.partials.order.mann_whitney_u`), so U within
      δ·n_ref·n_cur, its ``bound``. The p-value is scipy's normal approximation
      (continuity and tie correction, the ties counted from both samples scaled
      to their true sizes) at the estimated U with the true sizes.
    * energy: √2·‖F_ref − F_cur‖₂ moves by at most √2·‖error‖₂, and each side's
      CDF error is at most its share of δ over at most its range of values:
      ``bound`` = √2·(current.cdf_error·√range_cur + ref_error·√range_ref).
    """
    ref = np.asarray(reference, dtype=float)
    cur = current.sample
    delta = ref_error + current.cdf_error
    stats = _scipy_stats()
    if method == "ks":
        d = _cdf_gap(ref, cur)
        m, n = sorted([float(n_ref), float(current.n)], reverse=True)
        p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
        return Outcome(p, d, p, delta)
    if method == "mannw":
        from scipy import special

        below = np.searchsorted(cur, ref, side="left")
        equal = np.searchsorted(cur, ref, side="right") - below
        share = float(np.sum(below + equal / 2.0)) / (ref.size * cur.size)
        n1, n2 = float(n_ref), float(current.n)
        u1 = share * n1 * n2
        u = max(u1, n1 * n2 - u1)
        ties = _tie_term([(ref, n1 / ref.size), (cur, n2 / cur.size)])
        total = n1 + n2
        s = math.sqrt(n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1))))
        z = (u - n1 * n2 / 2 - 0.5) / s if s > 0 else math.inf
        p = float(np.clip(2 * special.ndtr(-z), 0.0, 1.0))
        return Outcome(p, u1, p, delta * n1 * n2)
    if method == "energy":
        value = float(stats.energy_distance(ref, cur))
        spans = (float(cur[-1] - cur[0]), float(ref[-1] - ref[0]) if ref.size else 0.0)
        bound = math.sqrt(2.0) * (
            current.cdf_error * math.sqrt(spans[0]) + ref_error * math.sqrt(spans[1])
        )
        return Outcome(value, value, None, bound)
    raise ValueError(f"'{method}' has no estimate from a sketch")


# ------------------------------------------------------------------ wasserstein


def cell_integrals(
    edges: np.ndarray, counts: np.ndarray, sums: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell (lo, e1], (e1, e2], …, (ek, hi]: the width, the CDF at the cell's left
    end, and ∫F over the cell (exact: F rises by 1/n at each value inside)."""
    bounds = np.r_[lo, edges, hi]
    widths = np.diff(bounds)
    n = counts.sum()
    shares = counts / n
    cdf_left = np.r_[0.0, np.cumsum(shares)[:-1]]
    right = bounds[1:]
    # Σ over values x in the cell of (right − x) / n
    inside = (counts * right - sums) / n
    return widths, cdf_left, cdf_left * widths + inside


def step_gap(
    a: np.ndarray,
    b: np.ndarray,
    starts: tuple[float, float],
    sizes: tuple[float, float],
    left: float,
    right: float,
) -> float:
    """∫|F_a − F_b| over [left, right], exactly, for the step functions
    F_x(t) = (start_x + #{v in x: v ≤ t}) / size_x of sorted ``a`` and ``b``."""
    # repeated points add empty intervals (np.unique would import numpy.ma: 60 ms)
    points = np.sort(np.concatenate([[left], a, b, [right]]))
    if points.size < 2:
        return 0.0
    at = points[:-1]
    f_a = (starts[0] + np.searchsorted(a, at, side="right")) / sizes[0]
    f_b = (starts[1] + np.searchsorted(b, at, side="right")) / sizes[1]
    return float(np.sum(np.abs(f_a - f_b) * np.diff(points)))


def wasserstein_cells(
    edges: np.ndarray,
    ref_counts: np.ndarray,
    ref_sums: np.ndarray,
    cur_counts: np.ndarray,
    cur_sums: np.ndarray,
    lo: float,
    hi: float,
    ref_std: float,
    tails: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Outcome:
    """W1(ref, cur) / max(std_ref, 0.001) from per-cell counts and sums.

    W1 = ∫|F_ref − F_cur| dx. Per cell we know ∫F_ref and ∫F_cur exactly, so
    Σ|∫(F_ref − F_cur)| equals W1 when the difference keeps its sign inside each
    cell, and otherwise undershoots by at most 2·width·min(max(0, d + p_ref),
    max(0, p_cur − d)) per cell (d: the difference at the cell's left end); the sum
    of those is ``bound`` (also divided by the norm).

    ``tails`` = (reference below edges[0], reference at or above edges[-1], the
    same for the current side), each sorted: the two outer cells are then
    integrated exactly from those values, and add nothing to the bound.
    """
    w, f_ref, i_ref = cell_integrals(edges, ref_counts, ref_sums, lo, hi)
    _, f_cur, i_cur = cell_integrals(edges, cur_counts, cur_sums, lo, hi)
    gaps = np.abs(i_ref - i_cur)
    n_ref, n_cur = ref_counts.sum(), cur_counts.sum()
    p_ref = ref_counts / n_ref
    p_cur = cur_counts / n_cur
    # inside a cell D = F_ref − F_cur stays within [d − p_cur, d + p_ref] (d its value
    # at the cell's left end); |∫D| falls short of ∫|D| only where D takes both
    # signs, by at most twice the smaller side
    d_left = f_ref - f_cur
    up = np.maximum(0.0, d_left + p_ref)
    down = np.maximum(0.0, p_cur - d_left)
    shortfall = 2 * w * np.minimum(up, down)
    if tails is not None:
        ref_low, ref_high, cur_low, cur_high = tails
        sizes = (n_ref, n_cur)
        # below edges[0] both CDFs start at 0; beyond the last value both are 1
        low = np.concatenate([ref_low, cur_low])
        first = float(low.min()) if low.size else float(edges[0])
        gaps[0] = step_gap(ref_low, cur_low, (0, 0), sizes, first, float(edges[0]))
        high = np.concatenate([ref_high, cur_high])
        last = float(high.max()) if high.size else float(edges[-1])
        below = (n_ref - ref_high.size, n_cur - cur_high.size)
        gaps[-1] = step_gap(ref_high, cur_high, below, sizes, float(edges[-1]), last)
        shortfall[0] = shortfall[-1] = 0.0
    value = float(np.sum(gaps))
    bound = float(np.sum(shortfall))
    norm = max(ref_std, 0.001)
    return Outcome(value / norm, value / norm, None, bound / norm)
