"""The drift method vocabulary, defined once: the spec validator and the drift
monitor both read it (this module imports nothing heavy, so validation stays fast).
"""

from __future__ import annotations

# method → (kind, default threshold, drift rule): "p" is a p-value (smaller is
# drift), "d" a distance (larger is drift); "le"/"lt"/"ge" compare with threshold.
METHODS: dict[str, tuple[str, float, str]] = {
    "ks": ("p", 0.05, "le"),
    "chisquare": ("p", 0.05, "lt"),
    "z": ("p", 0.05, "lt"),
    "g_test": ("p", 0.1, "lt"),
    "fisher_exact": ("p", 0.1, "lt"),
    "anderson": ("p", 0.1, "lt"),
    "cramer_von_mises": ("p", 0.1, "le"),
    "mannw": ("p", 0.05, "lt"),
    "t_test": ("p", 0.05, "lt"),
    "psi": ("d", 0.1, "ge"),
    "kl_div": ("d", 0.1, "ge"),
    "jensenshannon": ("d", 0.1, "ge"),
    "hellinger": ("d", 0.1, "ge"),
    "wasserstein": ("d", 0.1, "ge"),
    "tvd": ("d", 0.1, "ge"),
    "energy": ("d", 0.1, "ge"),
}
NUMERIC_ONLY = frozenset(
    {"ks", "anderson", "cramer_von_mises", "mannw", "t_test", "wasserstein", "energy"}
)
CATEGORICAL_ONLY = {"chisquare", "z", "g_test", "fisher_exact"}
SAMPLE_METHODS = {"ks", "anderson", "cramer_von_mises", "mannw", "t_test", "energy"}
HISTOGRAM_METHODS = {"psi", "kl_div", "jensenshannon", "hellinger", "tvd"}
PVALUE_METHODS = frozenset(m for m, (kind, _, _) in METHODS.items() if kind == "p")
