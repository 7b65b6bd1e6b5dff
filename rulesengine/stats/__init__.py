"""Drift statistics: pure functions over counts, histograms and samples."""
